// A small Redis client (RESP2) over the Runtime's TCP seam (src/net/types.ts connectTcp), so that it
// runs on Node, Bun and Deno alike. Commands are pipelined on one connection and answered in order;
// a lost connection fails what is in flight and the next command reconnects (AUTH and SELECT again).
// `subscribe()` opens a second connection in pub/sub mode that resubscribes after a reconnect.
// The reply parser takes hostile bytes: bounded sizes and depth, FormatError on anything malformed.

import { concat, FormatError } from '../format/bytes.ts';
import type { ConnectOptions, TcpConn } from '../net/types.ts';

export type RespValue = string | number | null | RespValue[] | RespError;

export class RespError extends Error {
  constructor(message: string) { super(message); this.name = 'RespError'; }
}

const CRLF = 0x0d;
const MAX_BULK = 64 * 1024 * 1024;
const MAX_ITEMS = 1 << 20;
const MAX_DEPTH = 8;
const dec = new TextDecoder();
const enc = new TextEncoder();

/** Incremental RESP2 reply parser: push bytes, take complete values. Throws FormatError on bad input. */
export class RespParser {
  private buf: Uint8Array = new Uint8Array(0);
  private pos = 0;

  push(chunk: Uint8Array): RespValue[] {
    if (this.pos < this.buf.length) {
      const b = new Uint8Array(this.buf.length - this.pos + chunk.length);
      b.set(this.buf.subarray(this.pos));
      b.set(chunk, this.buf.length - this.pos);
      this.buf = b;
    } else this.buf = chunk;
    this.pos = 0;
    const out: RespValue[] = [];
    for (;;) {
      const start = this.pos;
      const v = this.value(0);
      if (v === undefined) { this.pos = start; break; }
      out.push(v);
    }
    return out;
  }

  /** A line without its CRLF, or undefined when incomplete. */
  private line(): string | undefined {
    const b = this.buf;
    for (let i = this.pos; i + 1 < b.length; i++) {
      if (b[i] === CRLF) {
        if (b[i + 1] !== 0x0a) throw new FormatError('RESP: CR without LF');
        const s = dec.decode(b.subarray(this.pos, i));
        this.pos = i + 2;
        return s;
      }
      if (i - this.pos > 64 * 1024) throw new FormatError('RESP: line too long');
    }
    return undefined;
  }

  private int(s: string): number {
    if (!/^-?\d{1,15}$/.test(s)) throw new FormatError(`RESP: bad integer ${JSON.stringify(s.slice(0, 20))}`);
    return Number(s);
  }

  private value(depth: number): RespValue | undefined {
    if (this.pos >= this.buf.length) return undefined;
    if (depth > MAX_DEPTH) throw new FormatError('RESP: nested too deep');
    const type = this.buf[this.pos++];
    const l = this.line();
    if (l === undefined) return undefined;
    switch (type) {
      case 0x2b: return l; // +
      case 0x2d: return new RespError(l); // -
      case 0x3a: return this.int(l); // :
      case 0x24: { // $
        const n = this.int(l);
        if (n === -1) return null;
        if (n < 0 || n > MAX_BULK) throw new FormatError(`RESP: bad bulk length ${n}`);
        if (this.pos + n + 2 > this.buf.length) return undefined;
        if (this.buf[this.pos + n] !== CRLF || this.buf[this.pos + n + 1] !== 0x0a) throw new FormatError('RESP: bulk string not followed by CRLF');
        const s = dec.decode(this.buf.subarray(this.pos, this.pos + n));
        this.pos += n + 2;
        return s;
      }
      case 0x2a: { // *
        const n = this.int(l);
        if (n === -1) return null;
        if (n < 0 || n > MAX_ITEMS) throw new FormatError(`RESP: bad array length ${n}`);
        const a: RespValue[] = [];
        for (let i = 0; i < n; i++) {
          const v = this.value(depth + 1);
          if (v === undefined) return undefined;
          a.push(v);
        }
        return a;
      }
      default: throw new FormatError(`RESP: unknown type byte 0x${type.toString(16)}`);
    }
  }
}

export function encodeCommand(args: (string | number)[]): Uint8Array {
  const parts: Uint8Array[] = [enc.encode(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = enc.encode(String(a));
    parts.push(enc.encode(`$${b.length}\r\n`), b, enc.encode('\r\n'));
  }
  return concat(parts);
}

export interface RedisOptions {
  host: string;
  port: number;
  password?: string;
  username?: string;
  db?: number;
  tls?: boolean;
  /** Connect / reply timeout (ms). */
  timeout?: number;
}

/** redis://[user:password@]host[:port][/db] or rediss:// (TLS). */
export function parseRedisUrl(url: string): RedisOptions {
  const u = new URL(url);
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new Error(`not a redis:// URL: ${url}`);
  const db = u.pathname.replace(/^\//, '');
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port ? Number(u.port) : 6379, tls: u.protocol === 'rediss:',
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db: db ? Number(db) : undefined,
  };
}

type Connect = (o: ConnectOptions) => Promise<TcpConn>;

/** One connection, pipelined; reconnects on demand. */
export class RedisClient {
  private conn: TcpConn | null = null;
  private connecting: Promise<TcpConn> | null = null;
  private waiting: { resolve(v: RespValue): void; reject(e: Error): void }[] = [];
  private closed = false;
  /** Pub/sub mode: messages go here instead of to waiting commands. */
  onPush: ((v: RespValue[]) => void) | null = null;
  /** Called after every (re)connect, once AUTH/SELECT passed. */
  onConnect: (() => void) | null = null;
  private pubsub = false;

  constructor(private readonly connect: Connect, readonly opts: RedisOptions) {}

  get connected(): boolean { return !!this.conn && !this.conn.closed; }

  private async open(): Promise<TcpConn> {
    const o = this.opts;
    const c = await this.connect({ host: o.host, port: o.port, timeout: o.timeout ?? 5000, tls: o.tls ? { servername: o.host } : undefined });
    if (this.closed) { c.destroy(); throw new Error('redis client closed'); }
    const parser = new RespParser();
    c.onData = (chunk) => {
      let vals: RespValue[];
      try { vals = parser.push(chunk); } catch (err) { c.destroy(err as Error); return; }
      for (const v of vals) {
        if (this.pubsub && Array.isArray(v) && (v[0] === 'message' || v[0] === 'pmessage') && this.onPush) { this.onPush(v); continue; }
        const w = this.waiting.shift();
        if (w) w.resolve(v);
      }
    };
    c.onClose = (err) => {
      if (this.conn === c) this.conn = null;
      const ws = this.waiting.splice(0);
      for (const w of ws) w.reject(new Error(`redis connection closed${err ? ': ' + err.message : ''}`));
      if (this.pubsub) this.resubscribeLater();
    };
    c.setNoDelay(true);
    this.conn = c;
    try {
      if (o.password) await this.send(o.username ? ['AUTH', o.username, o.password] : ['AUTH', o.password]);
      if (o.db) await this.send(['SELECT', o.db]);
    } catch (err) {
      c.destroy();
      throw err;
    }
    return c;
  }

  private ensure(): Promise<TcpConn> {
    if (this.closed) return Promise.reject(new Error('redis client closed'));
    if (this.conn && !this.conn.closed) return Promise.resolve(this.conn);
    this.connecting ??= this.open().then((c) => { this.onConnect?.(); return c; }).finally(() => { this.connecting = null; });
    return this.connecting;
  }

  /** Send on the current connection (no reconnect). Rejects with RespError on an error reply. */
  private send(args: (string | number)[]): Promise<RespValue> {
    const c = this.conn;
    if (!c || c.closed) return Promise.reject(new Error('redis not connected'));
    const t = this.opts.timeout ?? 5000;
    return new Promise<RespValue>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`redis: no reply to ${String(args[0])} within ${t} ms`)); c.destroy(); }, t);
      this.waiting.push({
        resolve: (v) => { clearTimeout(timer); v instanceof RespError ? reject(v) : resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      c.write(encodeCommand(args));
    });
  }

  /** Run a command (connecting first when needed). */
  async command(...args: (string | number)[]): Promise<RespValue> {
    await this.ensure();
    return this.send(args);
  }

  /** Pub/sub: subscribe this client to `channels`; messages reach onMessage. Resubscribes after reconnects. */
  async subscribe(channels: string[], onMessage: (channel: string, message: string) => void): Promise<void> {
    this.pubsub = true;
    this.onPush = (v) => { if (v[0] === 'message') onMessage(String(v[1]), String(v[2])); };
    this.onConnect = () => { this.send(['SUBSCRIBE', ...channels]).catch(() => {}); };
    await this.ensure().catch((err) => { this.resubscribeLater(); throw err; });
  }

  private retry: ReturnType<typeof setTimeout> | undefined;
  /** A pub/sub connection has nobody sending commands: it reconnects by itself, every second until it can. */
  private resubscribeLater(): void {
    if (this.closed || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      this.ensure().catch(() => this.resubscribeLater());
    }, 1000);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retry);
    this.conn?.destroy();
    this.conn = null;
  }
}
