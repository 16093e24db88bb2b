// m7s's own HTTP/1.1 and WebSocket server over a connection's bytes: the default HTTP server on Node
// (node:net, adapters/node/socket-server.ts) and on Bun (Bun.listen, adapters/bun/socket-server.ts).
// Deno keeps node:http (adapters/deno/runtime.ts says why).
//
// Why not the runtimes' own servers:
// - Bun.serve shows no connection to its caller, so it can neither cap connections nor close silent
//   ones (issue 9: at the descriptor limit silent sockets locked every player out). Bun's node:http
//   built a socket object, an IncomingMessage and, for a WebSocket, an EventEmitter per connection:
//   a join cost Bun ~180 µs against Bun.serve's ~70 µs (bench/ws-join-cost.mjs).
// - Node's node:http builds an IncomingMessage, a ServerResponse and its header machinery per request,
//   and @hono/node-server a Request and a response writer on top; a live body's head went out as a
//   write of its own, the catch-up GOP as another. In a 1000-player join storm the server's core is
//   the limit, and what a join costs sets when the last player gets its first frame (issue 19).
// What they gave (HTTP parsing, WebSocket framing) comes from src/format/http1.ts and
// src/format/websocket.ts, which throw FormatError only and are fuzzed.
//
// Per connection: the connection guard (adapters/node/conn-guard.ts: cap, oldest silent evicted), a
// header timeout from the first byte of a head (and from accept), an idle timeout between keep-alive
// requests. Requests on one connection are served in order; bytes that come while one is being
// answered wait (at most MAX_PIPELINED, reading paused beyond). Each request's `signal` aborts when
// the client leaves before its response ended. Request bodies (Content-Length or chunked) are streams
// with backpressure (reading pauses while the handler does not read). Responses: Content-Length when
// the handler set it, else chunked (HTTP/1.1) or close-delimited (HTTP/1.0). Live bodies written
// through streamResponse() and WebSocket messages go to the connection as they are; the head of a live
// body waits for its first chunk (one write for both, in the same turn). A Wire's buffered count is
// real (what the kernel has not taken): backpressure and slow-viewer handling read it.

import { FormatError } from '../src/format/bytes.ts';
import { bodyFraming, type BodyFraming, ChunkedDecoder, headerValue, HttpHeadParser, responseHead, type HttpRequestHead } from '../src/format/http1.ts';
import { checkUpgradeRequest } from '../src/format/websocket.ts';
import { WS_GUID, WsSession, type WsTransport } from '../src/net/ws-session.ts';
import { framingHead, type Framing } from '../src/net/framing.ts';
import type { ByteSink } from '../src/net/body.ts';
import type { FetchHandler, HttpLimits, PeerInfo, StreamedResponse, WsHandler } from '../src/net/types.ts';
import { ConnGuard, type GuardEntry } from './node/conn-guard.ts';
import { createHash } from 'node:crypto';

/** Bytes a connection reads ahead while a request is being answered (pipelining); reading pauses beyond. */
const MAX_PIPELINED = 64 * 1024;
/** A request body the handler does not read: reading pauses once this much waits in its stream. */
const BODY_HWM = 256 * 1024;
/** A response body from a ReadableStream: the next chunk is read only while less than this is queued. */
const RESPONSE_HWM = 1 << 20;
const EMPTY = new Uint8Array(0);
const CRLF = new Uint8Array([13, 10]);
const LAST_CHUNK = new TextEncoder().encode('0\r\n\r\n');
const CONTINUE_100 = new TextEncoder().encode('HTTP/1.1 100 Continue\r\n\r\n');

let dateText = '';
let dateSecond = -1;
/** The Date header's value (RFC 9110 §6.6.1: an origin server with a clock sends it), made once a second. */
function httpDate(): string {
  const now = Date.now();
  const sec = Math.floor(now / 1000);
  if (sec !== dateSecond) { dateSecond = sec; dateText = new Date(sec * 1000).toUTCString(); }
  return dateText;
}

/** What the fetch handler sees as `env` (hono's c.env): how upgradeWebSocket, streamResponse and connInfo find the connection. */
export class SocketRequestEnv {
  /** Set when the handler took the connection (a WebSocket, or a body written by streamResponse). */
  taken: 'ws' | 'stream' | null = null;
  constructor(readonly conn: Conn, readonly head: HttpRequestHead) {}
  /** The peer in the shape src/http/peer.ts reads from Deno's ServeHandlerInfo. */
  get remoteAddr(): { hostname: string; port: number } { return { hostname: this.conn.peer.address, port: this.conn.peer.port }; }
}

const envOf = (c: unknown): SocketRequestEnv | undefined => {
  const env = (c as { env?: unknown } | null)?.env;
  return env instanceof SocketRequestEnv ? env : undefined;
};

/**
 * A connection's bytes as the runtime gives them: what the server writes to, pauses and closes. The
 * binding feeds the connection's Conn (onData, onDrain when the wire can take more, onClose once).
 */
export interface Wire {
  readonly peer: PeerInfo;
  /** Bytes accepted but not yet taken by the kernel. */
  readonly buffered: number;
  /** writev() reaches the kernel without a copy (else an array of parts costs one). */
  readonly gathers: boolean;
  /** Writes after the wire closed are dropped. */
  write(b: Uint8Array): void;
  writev(chunks: readonly Uint8Array[]): void;
  /** Close once what was written is out. */
  end(): void;
  /** Close now. */
  terminate(): void;
  pause(): void;
  resume(): void;
}

type ConnState = 'head' | 'request' | 'ws' | 'closed';

/** One accepted connection. */
export class Conn {
  state = 'head' as ConnState;
  readonly entry: GuardEntry | null;
  readonly peer: PeerInfo;
  #parser: HttpHeadParser;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Bytes that came while a request was being answered (pipelined), parsed after it. */
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #paused = false;
  /** The request being answered: its body feed and abort. */
  #body: BodyFeed | null = null;
  #abort: AbortController | null = null;
  #responseDone = true;
  /** Called when the socket can take more (response bodies, sinks, WebSockets). */
  readonly drainWaiters = new Set<() => void>();
  /** Called once when the connection closes. */
  readonly closeWaiters = new Set<() => void>();
  ws: WsSession | null = null;

  /** Refused by the connection guard: check `isClosed` after constructing (the wire is terminated). */
  constructor(readonly out: Wire, readonly server: SocketServer) {
    this.peer = out.peer;
    this.#parser = new HttpHeadParser();
    this.entry = server.guard.admit(() => this.destroy());
    if (!this.entry) { this.state = 'closed'; out.terminate(); return; }
    server.conns.add(this);
    this.#arm(server.limits.readHeaderTimeout);
  }

  #arm(ms: number): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (ms > 0) {
      this.#timer = setTimeout(() => this.destroy(), ms);
      (this.#timer as unknown as { unref?: () => void }).unref?.();
    }
  }

  /** A getter: TypeScript narrows `state` across awaits and calls that may close the connection. */
  get isClosed(): boolean { return this.state === 'closed'; }

  pause(): void { if (!this.#paused) { this.#paused = true; this.out.pause(); } }
  resume(): void { if (this.#paused && this.state !== 'closed') { this.#paused = false; this.out.resume(); } }

  onData(chunk: Uint8Array): void {
    switch (this.state) {
      case 'ws': this.ws!.onData(chunk); return;
      case 'request':
        if (this.#body && !this.#body.done) { this.#feedBody(chunk); return; }
        this.#queuePending(chunk);
        return;
      case 'head': this.#parseHeads(chunk); return;
      default:
    }
  }

  #queuePending(chunk: Uint8Array): void {
    if (!chunk.byteLength) return;
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.byteLength;
    if (this.#pendingBytes > MAX_PIPELINED) this.pause();
  }

  #feedBody(chunk: Uint8Array): void {
    const body = this.#body!;
    let rest: Uint8Array;
    try {
      rest = body.feed(chunk);
    } catch (e) {
      body.fail(e instanceof Error ? e : new Error(String(e)));
      this.#abort?.abort(new Error('bad request body'));
      this.destroy();
      return;
    }
    if (body.done) {
      // Bytes after the body: the next request (keep-alive, pipelined), read once this one is answered.
      if (this.#responseDone) { this.#finishRequest(rest); return; }
      this.#queuePending(rest);
    } else if (body.backedUp) this.pause();
  }

  #parseHeads(chunk: Uint8Array): void {
    if (this.#parser.buffered === 0 && chunk.byteLength) this.#arm(this.server.limits.readHeaderTimeout);
    let got: { head: HttpRequestHead; rest: Uint8Array } | null;
    try {
      got = this.#parser.push(chunk);
    } catch (e) {
      this.#refuse(e);
      return;
    }
    if (!got) return;
    this.#arm(0);
    if (this.entry) this.entry.active = true;
    // Served at once, not paced per event-loop turn as node:http's requests were on Bun (adapters/node/
    // runtime.ts paceRequests): with this server the publisher's socket is read between players' heads
    // anyway, and pacing cost 1000 joining WS-FLV players ~0.2 s of first frame and live edge for
    // ~0.04 s of display delay (BENCHMARKS, tenth pass).
    this.#startRequest(got.head, got.rest);
  }

  /** A head we cannot serve: one short answer, then close (not logged: a flood of bad requests would flood the log). */
  #refuse(e: unknown): void {
    const msg = e instanceof FormatError ? e.message : 'bad request';
    const status = /request head exceeds|header fields/.test(msg) ? 431 : /unsupported HTTP version/.test(msg) ? 505
      : /transfer coding|does not end with chunked/.test(msg) ? 501 : 400;
    this.respondAndClose(status, msg);
  }

  respondAndClose(status: number, text: string): void {
    const body = new TextEncoder().encode(text + '\n');
    this.out.writev([responseHead(status, [['content-type', 'text/plain; charset=utf-8'], ['content-length', String(body.byteLength)], ['date', httpDate()], ['connection', 'close']]), body]);
    this.endAfterFlush();
  }

  #startRequest(head: HttpRequestHead, rest: Uint8Array): void {
    let framing: BodyFraming;
    let url: string;
    try {
      framing = bodyFraming(head);
      url = requestUrl(head, this.server.tls);
    } catch (e) {
      this.#refuse(e);
      return;
    }
    this.state = 'request';
    this.#responseDone = false;
    const hasBody = framing.kind !== 'none' && !(framing.kind === 'length' && framing.length === 0);
    const method = head.method;
    const bodyless = method === 'GET' || method === 'HEAD';
    let body: ReadableStream<Uint8Array> | null = null;
    if (hasBody && framing.kind !== 'none') {
      this.#body = new BodyFeed(framing, this);
      if (!bodyless) body = this.#body.stream;
      else this.#body.discard = true; // GET/HEAD with a body: read and dropped, to keep the framing
      if (!bodyless && /100-continue/i.test(headerValue(head, 'expect') ?? '')) this.out.write(CONTINUE_100);
    } else this.#body = null;
    const ac = (this.#abort = new AbortController());
    let req: Request;
    try {
      req = this.server.makeRequest(url, method, head.headers, body, ac.signal);
    } catch {
      this.#refuse(new FormatError('malformed request'));
      return;
    }
    const env = new SocketRequestEnv(this, head);
    if (rest.byteLength) this.onData(rest);
    let res: Response | Promise<Response>;
    try {
      res = this.server.fetch(req, env);
    } catch (e) {
      res = Promise.reject(e);
    }
    if (res instanceof Response) this.#respond(env, res);
    else res.then((r) => this.#respond(env, r), (e) => this.#failed(env, e));
  }

  /** The handler threw (hono's own onError answers most failures before this): 500, as node:http and Bun.serve do. */
  #failed(env: SocketRequestEnv, _e: unknown): void {
    if (this.state === 'closed' || env.taken) return;
    this.respondAndClose(500, 'internal error');
  }

  async #respond(env: SocketRequestEnv, res: Response): Promise<void> {
    if (this.state === 'closed' || env.taken) return; // a WebSocket or a live body took the connection
    const head = env.head;
    const isHead = head.method === 'HEAD';
    const keepAlive = wantsKeepAlive(head) && !res.headers.get('connection')?.toLowerCase().includes('close');
    const status = res.status;
    const bodiless = status === 204 || status === 304 || (status >= 100 && status < 200);
    const headers: [string, string][] = [];
    let length: string | null = null;
    let dated = false;
    for (const [k, v] of res.headers) {
      if (k === 'content-length') { length = v; continue; }
      if (k === 'transfer-encoding' || k === 'connection' || k === 'keep-alive') continue;
      if (k === 'date') dated = true;
      headers.push([k, v]);
    }
    if (!dated) headers.push(['date', httpDate()]);
    // A body without a length that ends at once (a string or bytes, as most API answers) gets one; a
    // longer or live body goes out chunked (HTTP/1.1) or until the connection closes (HTTP/1.0).
    let body: PeekedBody | null = null;
    if (!bodiless && res.body) {
      body = await peekBody(res.body, length === null);
      if (this.isClosed) { body.reader.cancel().catch(() => {}); return; }
      if (length === null && body.done) length = String(body.first.reduce((n, c) => n + c.byteLength, 0));
    }
    let chunked = false;
    if (length !== null && !bodiless) headers.push(['content-length', length]);
    else if (body === null) { if (!bodiless && !isHead) headers.push(['content-length', '0']); } // HEAD: hono drops the body, the length is unknown
    else if (head.version === '1.1') { chunked = true; headers.push(['transfer-encoding', 'chunked']); }
    const close = !keepAlive || (body !== null && !chunked && length === null && !isHead);
    headers.push(['connection', close ? 'close' : 'keep-alive']);
    let headBytes: Uint8Array;
    try {
      headBytes = responseHead(status, headers, res.statusText || undefined);
    } catch (e) {
      body?.reader.cancel().catch(() => {});
      this.#failed(env, e);
      return;
    }
    this.out.write(headBytes);
    if (body && isHead) body.reader.cancel().catch(() => {});
    else if (body) {
      const ok = await this.#pipe(body, chunked);
      if (!ok) { this.destroy(); return; }
      if (chunked) this.out.write(LAST_CHUNK);
    }
    if (close) { this.endAfterFlush(); return; }
    this.#responseDone = true;
    if (!this.#body || this.#body.done) { this.#finishRequest(EMPTY); return; }
    // Answered before its body was read (a refusal): the rest of the body is read and dropped.
    this.#body.discard = true;
    this.resume();
  }

  /** A response body from a ReadableStream, with backpressure. False when the client left or the stream failed. */
  async #pipe(body: PeekedBody, chunked: boolean): Promise<boolean> {
    const { reader } = body;
    const put = (v: Uint8Array) => {
      if (!v.byteLength) return;
      if (chunked) this.out.writev([framingHead('chunked', v.byteLength), v, CRLF]);
      else this.out.write(v);
    };
    for (const c of body.first) put(c);
    if (body.done) return !this.isClosed;
    const onClose = () => { reader.cancel(new Error('client disconnected')).catch(() => {}); };
    this.closeWaiters.add(onClose);
    let next = body.next;
    try {
      for (;;) {
        if (this.out.buffered >= RESPONSE_HWM) await this.waitDrain(RESPONSE_HWM / 2);
        if (this.isClosed) return false;
        const { done, value } = await (next ?? reader.read());
        next = null;
        if (done) return !this.isClosed;
        if (this.isClosed) return false;
        put(value instanceof Uint8Array ? value : new Uint8Array(value as ArrayBuffer));
      }
    } catch {
      return false;
    } finally {
      this.closeWaiters.delete(onClose);
      try { reader.releaseLock(); } catch { /* still reading */ }
    }
  }

  /** Resolves once the queue is at or below `below` bytes, or the connection closed. */
  waitDrain(below: number): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.state === 'closed' || this.out.buffered <= below) { this.drainWaiters.delete(check); this.closeWaiters.delete(check); resolve(); }
      };
      this.drainWaiters.add(check);
      this.closeWaiters.add(check);
    });
  }

  /** The request and its response are done: the connection waits for the next head. */
  #finishRequest(rest: Uint8Array): void {
    this.#body = null;
    this.#abort = null;
    this.state = 'head';
    if (this.entry) this.entry.active = false;
    this.#arm(this.server.limits.idleTimeout);
    const pending = this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.resume();
    if (rest.byteLength) this.#parseHeads(rest);
    for (const p of pending) {
      if (this.isClosed) return;
      this.onData(p);
    }
  }

  /** Called by the body feed when all of the body was read. */
  bodyDone(): void {
    if (this.#responseDone && this.state === 'request') this.#finishRequest(EMPTY);
  }

  /** Bytes that came after the head of a request that took the connection (a client's first WebSocket frames). */
  takePending(): Uint8Array[] {
    const p = this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    return p;
  }

  /** The handler took the connection for a live body or a WebSocket: no more requests on it. */
  take(env: SocketRequestEnv, as: 'ws' | 'stream'): void {
    env.taken = as;
    this.#arm(0);
    if (this.entry) this.entry.active = true;
  }

  /** The wire can take more. */
  onDrain(): void {
    if (this.#ending) return;
    for (const w of [...this.drainWaiters]) w();
  }

  #ending = false;
  /** Close once the queue is written (a short answer, a WebSocket close). */
  endAfterFlush(): void {
    if (this.state === 'closed' || this.#ending) return;
    this.#ending = true;
    this.pause();
    this.out.end();
  }

  destroy(): void {
    try { this.out.terminate(); } catch { /* gone */ }
    this.onClose();
  }

  onClose(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.#timer);
    if (this.entry) this.server.guard.remove(this.entry);
    this.server.conns.delete(this);
    this.#abort?.abort(new Error('client disconnected'));
    this.#body?.fail(new Error('client disconnected'));
    for (const w of [...this.closeWaiters]) { try { w(); } catch { /* the waiter's problem */ } }
    this.closeWaiters.clear();
    this.drainWaiters.clear();
    this.ws?.onSocketClose();
  }
}

/** A request body: bytes from the socket into a ReadableStream, reading paused while it is not read. */
class BodyFeed {
  done = false;
  discard = false;
  readonly stream: ReadableStream<Uint8Array>;
  #ctl!: ReadableStreamDefaultController<Uint8Array>;
  #left: number;
  #chunked: ChunkedDecoder | null;
  #failed = false;
  constructor(framing: { kind: 'length'; length: number } | { kind: 'chunked' }, private readonly conn: Conn) {
    this.#left = framing.kind === 'length' ? framing.length : -1;
    this.#chunked = framing.kind === 'chunked' ? new ChunkedDecoder() : null;
    this.stream = new ReadableStream<Uint8Array>({
      start: (c) => { this.#ctl = c; },
      pull: () => { conn.resume(); },
      cancel: () => { this.discard = true; conn.resume(); },
    }, { highWaterMark: BODY_HWM, size: (c) => c.byteLength });
  }

  get backedUp(): boolean { return !this.discard && (this.#ctl.desiredSize ?? 0) <= 0; }

  /** Bytes from the socket; returns those past the end of the body. Throws FormatError on a bad chunked body. */
  feed(chunk: Uint8Array): Uint8Array {
    if (this.#chunked) {
      const r = this.#chunked.push(chunk);
      for (const d of r.data) this.#enqueue(d);
      if (r.done) this.#end();
      return r.done ? r.rest : EMPTY;
    }
    const take = Math.min(this.#left, chunk.byteLength);
    if (take) this.#enqueue(take === chunk.byteLength ? chunk : chunk.subarray(0, take));
    this.#left -= take;
    if (this.#left === 0) this.#end();
    return chunk.subarray(take);
  }

  #enqueue(d: Uint8Array): void {
    if (this.discard || !d.byteLength) return;
    try { this.#ctl.enqueue(d); } catch { this.discard = true; }
  }

  #end(): void {
    this.done = true;
    if (!this.discard) { try { this.#ctl.close(); } catch { /* cancelled */ } }
    queueMicrotask(() => this.conn.bodyDone());
  }

  fail(err: Error): void {
    if (this.done || this.#failed) return;
    this.#failed = true;
    try { this.#ctl.error(err); } catch { /* closed */ }
  }
}

/** A response body's first chunk(s), and whether it already ended. */
interface PeekedBody {
  reader: ReadableStreamDefaultReader<Uint8Array>;
  first: Uint8Array[];
  done: boolean;
  /** A read in flight (the body did not end within the peek). */
  next: Promise<ReadableStreamReadResult<Uint8Array>> | null;
}

/** Microtask turns a body's end may take after its only chunk (a Response made from a string or bytes: two on Bun 1.4). */
const PEEK_TURNS = 4;

/** Read a body's first chunk and, when `wantEnd`, see whether it ends within a few microtask turns. */
async function peekBody(stream: ReadableStream<Uint8Array>, wantEnd: boolean): Promise<PeekedBody> {
  const reader = stream.getReader();
  const toU8 = (v: unknown) => (v instanceof Uint8Array ? v : new Uint8Array(v as ArrayBuffer));
  let r: ReadableStreamReadResult<Uint8Array>;
  try { r = await reader.read(); } catch { return { reader, first: [], done: true, next: null }; }
  if (r.done) return { reader, first: [], done: true, next: null };
  const first = [toU8(r.value)];
  if (!wantEnd) return { reader, first, done: false, next: null };
  let settled: ReadableStreamReadResult<Uint8Array> | null = null;
  let failed = false;
  const next = reader.read();
  next.then((x) => { settled = x; }, () => { failed = true; });
  for (let i = 0; i < PEEK_TURNS && !settled && !failed; i++) await Promise.resolve();
  const got = settled as ReadableStreamReadResult<Uint8Array> | null;
  if (got?.done) return { reader, first, done: true, next: null };
  if (got) return { reader, first: [...first, toU8(got.value)], done: false, next: null };
  return { reader, first, done: false, next };
}

function wantsKeepAlive(head: HttpRequestHead): boolean {
  const c = (headerValue(head, 'connection') ?? '').toLowerCase();
  if (head.version === '1.0') return /(^|,)\s*keep-alive\s*(,|$)/.test(c);
  return !/(^|,)\s*close\s*(,|$)/.test(c);
}

/** The request's absolute URL from its target and Host (FormatError when they make none). */
function requestUrl(head: HttpRequestHead, tls: boolean): string {
  const t = head.target;
  if (t.startsWith('/')) {
    const host = headerValue(head, 'host') ?? 'localhost';
    const u = `${tls ? 'https' : 'http'}://${host}${t}`;
    if (!URL.canParse(u)) throw new FormatError('malformed Host or request target');
    return u;
  }
  if (t === '*' && head.method === 'OPTIONS') return `${tls ? 'https' : 'http'}://${headerValue(head, 'host') ?? 'localhost'}/`;
  if (/^https?:\/\//i.test(t) && URL.canParse(t)) return t;
  throw new FormatError('malformed request target');
}

// ---- WebSocket --------------------------------------------------------------------------------------

/** A connection's queue as a WebSocket's transport (src/net/ws-session.ts). */
/**
 * A connection as a WebSocket's transport (src/net/ws-session.ts). The 101 head waits for the first
 * message when that comes in the same turn (a player's catch-up GOP does): one write and one send
 * instead of two; `flushHead` writes it alone else.
 */
function wsTransport(conn: Conn, head: Uint8Array): WsTransport & { flushHead(): void } {
  let pending: Uint8Array | null = head;
  const take = () => { const h = pending; pending = null; return h; };
  return {
    get buffered() { return conn.out.buffered; },
    get gathers() { return conn.out.gathers; },
    write: (b) => { const h = take(); if (h) conn.out.writev([h, b]); else conn.out.write(b); },
    writev: (parts) => { const h = take(); conn.out.writev(h ? [h, ...parts] : parts); },
    endAfterFlush: () => { const h = take(); if (h) conn.out.write(h); conn.endAfterFlush(); },
    destroy: () => conn.destroy(),
    flushHead: () => { const h = take(); if (h) conn.out.write(h); },
  };
}

/** What a route returns for a WebSocket it took: 101 where the runtime's Response takes it (Node's refuses 1xx; the server ignores it either way). */
const SWITCHING = (() => { try { new Response(null, { status: 101 }); return 101; } catch { return 200; } })();
export const switchingResponse = (): Response => new Response(null, { status: SWITCHING });

/** Runtime.upgradeWebSocket for requests served here: the handshake (RFC 6455 §4.2.2) at once, then onOpen. */
export function socketUpgradeWebSocket(c: unknown, handler: WsHandler): Response | undefined {
  const env = envOf(c);
  if (!env) return undefined;
  const { conn, head } = env;
  if (!/(^|,)\s*websocket\s*(,|$)/i.test(headerValue(head, 'upgrade') ?? '')) return undefined;
  const bad = checkUpgradeRequest(head.method, head.headers);
  if (bad) return new Response(`${bad}\n`, { status: 400, headers: { 'content-type': 'text/plain; charset=utf-8' } });
  if (conn.state !== 'request') return new Response(null, { status: 500 });
  const accept = createHash('sha1').update(headerValue(head, 'sec-websocket-key')! + WS_GUID).digest('base64');
  conn.take(env, 'ws');
  conn.state = 'ws';
  const transport = wsTransport(conn, responseHead(101, [['upgrade', 'websocket'], ['connection', 'Upgrade'], ['sec-websocket-accept', accept]]));
  const ws = (conn.ws = new WsSession(transport, handler));
  conn.resume();
  // Frames a client sent right behind its handshake (before our 101) waited with the request.
  queueMicrotask(() => { ws.open(conn.takePending()); transport.flushHead(); });
  return switchingResponse();
}

// ---- Live response bodies ---------------------------------------------------------------------------

class SocketSink implements ByteSink {
  onDrain: (() => void) | null = null;
  onClose: ((err?: Error) => void) | null = null;
  readonly framing: Framing = 'chunked';
  get gathers(): boolean { return this.conn.out.gathers; }
  #closed = false;
  #waiting = false;
  readonly #check = () => {
    if (!this.#waiting || this.#closed || this.conn.out.buffered > this.hwm / 2) return;
    this.#waiting = false;
    try { this.onDrain?.(); } catch { /* the producer's problem */ }
  };
  readonly #gone = () => this.#finish(new Error('client disconnected'));
  /** The response head until it is written: with the first chunk when that comes in the same turn (a
   * player's catch-up GOP does), one write and one send instead of two; alone at the turn's end else. */
  #head: Uint8Array | null;
  constructor(private readonly conn: Conn, private readonly hwm: number, head: Uint8Array) {
    this.#head = head;
    conn.drainWaiters.add(this.#check);
    conn.closeWaiters.add(this.#gone);
    queueMicrotask(() => this.#sendHead());
  }
  #sendHead(): void {
    const h = this.#head;
    this.#head = null;
    if (h && !this.#closed) this.conn.out.write(h);
  }
  get buffered(): number { return this.#closed ? 0 : this.conn.out.buffered; }
  get closed(): boolean { return this.#closed; }
  write(chunk: Uint8Array): boolean { return this.writev([chunk]); }
  writev(chunks: Uint8Array[]): boolean {
    if (this.#closed) return false;
    let size = 0;
    for (const c of chunks) size += c.byteLength;
    if (!size) return this.#pushback();
    const h = this.#head;
    this.#head = null;
    this.conn.out.writev(h ? [h, framingHead('chunked', size), ...chunks, CRLF] : [framingHead('chunked', size), ...chunks, CRLF]);
    return this.#pushback();
  }
  writeFramed(framed: Uint8Array): boolean {
    if (this.#closed) return false;
    const h = this.#head;
    this.#head = null;
    if (h) this.conn.out.writev([h, framed]);
    else this.conn.out.write(framed);
    return this.#pushback();
  }
  end(): void {
    if (this.#closed) return;
    this.#sendHead();
    this.conn.out.write(LAST_CHUNK);
    this.conn.endAfterFlush();
    this.#finish();
  }
  #pushback(): boolean {
    if (this.conn.out.buffered < this.hwm) return true;
    this.#waiting = true;
    return false;
  }
  #finish(err?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.conn.drainWaiters.delete(this.#check);
    this.conn.closeWaiters.delete(this.#gone);
    const cb = this.onClose;
    this.onClose = null;
    this.onDrain = null;
    try { cb?.(err); } catch { /* gone either way */ }
  }
}

/** Runtime.streamResponse for requests served here (HTTP/1.1): the head with the first chunk (or at the turn's end), body chunks straight to the connection. */
export function socketStreamResponse(c: unknown, status: number, headers: Record<string, string>, hwm: number): StreamedResponse | undefined {
  const env = envOf(c);
  if (!env || env.taken || env.head.version !== '1.1' || env.conn.state !== 'request' || env.head.method === 'HEAD') return undefined;
  const list: [string, string][] = [];
  for (const [k, v] of Object.entries(headers)) {
    const lk = k.toLowerCase();
    if (lk !== 'content-length' && lk !== 'transfer-encoding' && lk !== 'connection' && lk !== 'date') list.push([lk, v]);
  }
  list.push(['date', httpDate()], ['transfer-encoding', 'chunked'], ['connection', 'close']);
  const head = responseHead(status, list);
  const conn = env.conn;
  conn.take(env, 'stream');
  return { sink: new SocketSink(conn, hwm, head), response: new Response(null, { status: 200 }) };
}

/** Runtime.connInfo for requests served here. */
export function socketConnInfo(c: unknown): PeerInfo | undefined {
  return envOf(c)?.conn.peer;
}

// ---- The server --------------------------------------------------------------------------------------

/** How a server makes the Request its handler gets (a runtime's own, or a lighter one: ./light-request.ts). */
export type MakeRequest = (url: string, method: string, headers: [string, string][], body: ReadableStream<Uint8Array> | null, signal: AbortSignal) => Request;

/** The runtime's own Request. */
export const nativeRequest: MakeRequest = (url, method, headers, body, signal) =>
  new Request(url, { method, headers, body, signal, ...(body ? { duplex: 'half' } : {}) } as RequestInit);

/** What the connections of one listener share. */
export class SocketServer {
  readonly conns = new Set<Conn>();
  readonly guard: ConnGuard;
  constructor(readonly fetch: FetchHandler, readonly limits: HttpLimits, readonly tls: boolean, what: string, readonly makeRequest: MakeRequest = nativeRequest) {
    this.guard = new ConnGuard(what, limits.maxConnections);
  }
}
