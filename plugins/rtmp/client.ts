// The RTMP client: pull a remote stream into a local one, push a local stream to a remote server.
// rtmp:// and rtmps:// (TLS). A job retries with exponential backoff until it is stopped, its stream
// is stopped from the engine's side, or the server shuts down.
//
// URL convention (as ffmpeg and OBS): rtmp://host[:port]/app/name[?query] — the first path segment is the
// app, the rest (with the query) is the stream name.

import { FlvIngest } from '../../src/format/flv-media.ts';
import { FormatError } from '../../src/format/bytes.ts';
import type { Publisher } from '../../src/plugin.ts';
import type { Subscriber } from '../../src/plugin.ts';
import type { Logger } from '../../src/log.ts';
import type { PluginContext, SessionHandle } from '../../src/plugin.ts';
import { MSG, type RtmpMessage, UC } from './chunk.ts';
import { type OutboundOrigin, SOURCE_UNAVAILABLE } from '../../src/core/outbound.ts';
import { decodeData, type RtmpCommand, RtmpConnection } from './conn.ts';
import { forEachAggregate } from './session.ts';
import { RtmpPlaySink } from './sink.ts';

export interface ClientEnv {
  ctx: PluginContext<any>;
  logger: Logger;
  chunkSize: number;
  maxMessageSize: number;
  /** Verify rtmps:// server certificates. */
  tlsVerify: boolean;
  /** Retries after a failure (-1 = forever). */
  retryCount: number;
  /** First retry delay (ms); doubles up to 30 s. */
  retryInterval: number;
  /** Command replies and the handshake must arrive within this (ms). */
  timeout: number;
  /** Who asked (global.outbound): API jobs are checked on every connect and see generic errors. */
  origin?: OutboundOrigin;
}

export interface RtmpUrl { tls: boolean; host: string; port: number; app: string; name: string; tcUrl: string }

/** Parse rtmp(s)://host[:port]/app/name?query. Throws on anything else. */
export function parseRtmpUrl(url: string): RtmpUrl {
  const m = /^(rtmps?):\/\/(\[[^\]]+\]|[^/:?#]+)(?::(\d+))?\/([^/?#]+)\/([^#]+)$/.exec(url);
  if (!m) throw new Error(`not an rtmp:// URL with app and stream name: ${url}`);
  const tls = m[1] === 'rtmps';
  const host = m[2].replace(/^\[|\]$/g, '');
  const port = m[3] ? parseInt(m[3], 10) : tls ? 443 : 1935;
  if (!(port > 0 && port < 65536)) throw new Error(`bad port in ${url}`);
  return { tls, host, port, app: m[4], name: m[5], tcUrl: `${m[1]}://${m[2]}${m[3] ? ':' + m[3] : ''}/${m[4]}` };
}

/** One client connection: handshake, connect, then commands with replies. */
export class RtmpClient extends RtmpConnection {
  private txn = 1;
  private readonly pending = new Map<number, { resolve(c: RtmpCommand): void; reject(e: Error): void }>();
  private readonly statusWaiters = new Set<(info: Record<string, unknown>, streamId: number) => void>();
  private handshakeWaiter: (() => void) | null = null;
  /** Resolved with the reason when the connection has closed. */
  readonly done: Promise<string>;
  private resolveDone!: (r: string) => void;
  /** Media handler (pull). */
  onMediaMessage: ((m: RtmpMessage) => void) | null = null;
  /** onStatus events after the start (e.g. the remote stream was unpublished). */
  onStatusEvent: ((info: Record<string, unknown>) => void) | null = null;

  constructor(conn: ConstructorParameters<typeof RtmpConnection>[0], logger: Logger, maxMessageSize: number) {
    super(conn, { role: 'client', logger, maxMessageSize });
    this.done = new Promise((r) => { this.resolveDone = r; });
  }

  /** Handshake, Set Chunk Size, connect. */
  async open(u: RtmpUrl, chunkSize: number, timeout: number): Promise<void> {
    const hs = new Promise<void>((resolve) => { this.handshakeWaiter = resolve; });
    this.startHandshake();
    await this.within(hs, timeout, 'handshake');
    this.setOutChunkSize(chunkSize);
    await this.call(timeout, 'connect', {
      app: u.app, flashVer: 'FMLE/3.0 (compatible; m7s)', tcUrl: u.tcUrl, fpad: false, capabilities: 15,
      audioCodecs: 0x0fff, videoCodecs: 0x00ff, videoFunction: 1, objectEncoding: 0,
      fourCcList: ['hvc1', 'av01', 'vp09'],
    });
  }

  protected override onHandshake(): void { this.handshakeWaiter?.(); }

  /** Send a command and wait for its _result (rejects on _error, close or timeout). */
  call(timeout: number, name: string, obj: unknown, ...args: unknown[]): Promise<RtmpCommand> {
    const txn = ++this.txn;
    const p = new Promise<RtmpCommand>((resolve, reject) => this.pending.set(txn, { resolve, reject }));
    this.sendCommand(0, name, txn, obj, ...args);
    return this.within(p, timeout, name);
  }

  /** Wait for an onStatus on `streamId` whose code matches `ok` (resolves) or has level error (rejects). */
  waitStatus(streamId: number, ok: RegExp, timeout: number): Promise<Record<string, unknown>> {
    let fn!: (info: Record<string, unknown>, sid: number) => void;
    const p = new Promise<Record<string, unknown>>((resolve, reject) => {
      fn = (info, sid) => {
        if (sid !== streamId && sid !== 0) return;
        const code = String(info.code ?? '');
        if (ok.test(code)) resolve(info);
        else if (info.level === 'error') reject(new Error(`${code}: ${String(info.description ?? '')}`));
      };
      this.statusWaiters.add(fn);
    });
    return this.within(p, timeout, 'onStatus').finally(() => this.statusWaiters.delete(fn));
  }

  private within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
    let t: ReturnType<typeof setTimeout> | undefined;
    const timer = new Promise<never>((_, reject) => { t = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms); });
    const closed = this.done.then((r) => { throw new Error(`${what}: connection closed (${r})`); });
    return Promise.race([p, timer, closed]).finally(() => clearTimeout(t));
  }

  protected onCommand(cmd: RtmpCommand): void {
    if (cmd.name === '_result' || cmd.name === '_error') {
      const w = this.pending.get(cmd.txn);
      if (!w) return;
      this.pending.delete(cmd.txn);
      if (cmd.name === '_result') w.resolve(cmd);
      else {
        const info = (cmd.args[0] ?? {}) as Record<string, unknown>;
        w.reject(new Error(`${String(info.code ?? '_error')}: ${String(info.description ?? '')}`));
      }
      return;
    }
    if (cmd.name === 'onStatus') {
      const info = (cmd.args[0] && typeof cmd.args[0] === 'object' ? cmd.args[0] : {}) as Record<string, unknown>;
      for (const w of [...this.statusWaiters]) w(info, cmd.streamId);
      this.onStatusEvent?.(info);
    }
    // onBWDone, onFCPublish, |RtmpSampleAccess...: nothing to do.
  }

  protected onMedia(m: RtmpMessage): void { this.onMediaMessage?.(m); }

  protected override onStreamEnded(): void { this.close('server sent Stream EOF'); }

  protected onClosed(reason: string): void {
    for (const w of this.pending.values()) w.reject(new Error(`connection closed (${reason})`));
    this.pending.clear();
    this.resolveDone(reason);
  }
}

export type JobState = 'connecting' | 'running' | 'retrying' | 'stopped' | 'failed';

/** A pull or push that keeps itself alive. */
export class RtmpJob {
  /** Listed by GET /rtmp/api/list as a pull or push; its id is the registry's (one id space). */
  readonly handle: SessionHandle<RtmpJob>;
  state: JobState = 'connecting';
  retries = 0;
  lastError = '';
  readonly startTime = Date.now();
  private stopped = false;
  private client: RtmpClient | null = null;
  private wake: (() => void) | null = null;
  private readonly log: Logger;

  constructor(readonly kind: 'pull' | 'push', readonly streamPath: string, readonly url: string, private readonly env: ClientEnv) {
    this.log = env.logger.child({ [kind]: url, stream: streamPath });
    this.handle = env.ctx.sessions.add({
      kind, group: kind === 'pull' ? 'pulls' : 'pushes', streamPath, ref: this,
      stop: (r) => this.stop(r), info: () => this.info(),
    });
  }

  get id(): number { return this.handle.id; }

  info(): Record<string, unknown> {
    // API jobs: the remote's answer and the kind of failure stay in the log (docs/security.md).
    const lastError = this.env.origin === 'api' && this.lastError ? SOURCE_UNAVAILABLE : this.lastError;
    return { id: this.id, kind: this.kind, streamPath: this.streamPath, url: this.url, state: this.state, retries: this.retries, lastError, startTime: new Date(this.startTime).toISOString() };
  }

  /** Stop for good (API, server shutdown, the stream ended). */
  stop(reason = 'stopped'): void {
    if (this.stopped) return;
    this.stopped = true;
    this.state = 'stopped';
    this.log.info(`${this.kind} stopped`, { reason });
    this.client?.close(reason);
    this.wake?.();
    this.handle.remove(reason);
  }

  /** Run until stopped. Never throws. */
  async run(): Promise<void> {
    let backoff = 0;
    while (!this.stopped) {
      let ranFor = 0;
      try {
        this.state = 'connecting';
        const t0 = Date.now();
        await (this.kind === 'pull' ? this.pullOnce() : this.pushOnce());
        ranFor = Date.now() - t0;
      } catch (err) {
        this.lastError = (err as Error)?.message ?? String(err);
        if (!this.stopped) this.log.warn(`${this.kind} failed`, { error: this.lastError });
        if ((err as { code?: string }).code === 'Forbidden') { this.state = 'failed'; this.handle.remove('source not allowed'); return; }
      } finally {
        this.client = null;
      }
      if (this.stopped) break;
      const limit = this.env.retryCount;
      if (limit >= 0 && this.retries >= limit) {
        this.state = 'failed';
        this.handle.remove('gave up');
        this.log.warn(`${this.kind} gave up after ${this.retries} retries`);
        return;
      }
      // A session that ran for a while starts the backoff over.
      if (ranFor > 30_000) backoff = 0;
      const delay = Math.min(this.env.retryInterval * 2 ** backoff, 30_000);
      backoff = Math.min(backoff + 1, 16);
      this.retries++;
      this.state = 'retrying';
      await new Promise<void>((r) => { const t = setTimeout(r, delay); this.wake = () => { clearTimeout(t); r(); }; });
      this.wake = null;
    }
  }

  private async open(): Promise<{ c: RtmpClient; u: RtmpUrl }> {
    const u = parseRtmpUrl(this.url);
    const env = this.env;
    if (env.origin === 'api') await env.ctx.outbound.checkUrl(this.url, 'api');
    const conn = await env.ctx.connectTcp({
      host: u.host, port: u.port, timeout: env.timeout,
      tls: u.tls ? { servername: u.host, rejectUnauthorized: env.tlsVerify } : undefined,
    });
    const c = new RtmpClient(conn, this.log, env.maxMessageSize);
    this.client = c;
    if (this.stopped) { c.close('stopped'); throw new Error('stopped'); }
    await c.open(u, env.chunkSize, env.timeout);
    return { c, u };
  }

  /** One pull session: returns when the connection ends. */
  private async pullOnce(): Promise<void> {
    const { c, u } = await this.open();
    const env = this.env;
    let pub: Publisher | null = null;
    try {
      const r = await c.call(env.timeout, 'createStream', null);
      const sid = Number(r.args[0]);
      if (!(sid > 0 && sid < 2 ** 31)) throw new FormatError(`createStream answered stream id ${String(r.args[0])}`);
      // Publish locally before asking for the stream, so that its first messages have a place to go.
      pub = await env.ctx.publish(this.streamPath, { type: 'pull', remote: this.url });
      const ingest = new FlvIngest(pub, { warn: (msg) => this.log.warn(msg) });
      pub.onStop = (reason) => {
        // A stalled source (publishtimeout) is worth retrying; any other stop (API, kick, no audience) is final.
        if (/publishtimeout|pausetimeout/.test(reason)) c.close(reason);
        else this.stop(`stream stopped: ${reason}`);
      };
      c.onMediaMessage = (m) => {
        if (m.type === MSG.AUDIO || m.type === MSG.VIDEO) ingest.tag(m.type, m.timestamp, m.payload);
        else if (m.type === MSG.AGGREGATE) forEachAggregate(m, (type, ts, body) => ingest.tag(type, ts, body));
        else {
          const v = decodeData(m);
          if (v[0] === 'onMetaData') ingest.tag(18, m.timestamp, m.type === MSG.DATA_AMF3 ? m.payload.subarray(1) : m.payload);
        }
      };
      c.onStatusEvent = (info) => {
        if (/Play\.(Stop|UnpublishNotify)$/.test(String(info.code))) c.close(`remote stream ended (${String(info.code)})`);
      };
      c.sendUserControl(UC.SET_BUFFER_LENGTH, sid, 1000);
      c.sendCommand(sid, 'play', 0, null, u.name, -2000);
      await c.waitStatus(sid, /Play\.Start$/, env.timeout);
      this.state = 'running';
      this.log.info('pulling');
      const reason = await c.done;
      throw new Error(`connection ended: ${reason}`);
    } finally {
      c.close('pull ended');
      if (pub && !pub.closed) pub.close(`pull from ${this.url} ended`);
    }
  }

  /** One push session: returns when the connection or the stream ends. */
  private async pushOnce(): Promise<void> {
    const { c, u } = await this.open();
    const env = this.env;
    let sub: Subscriber | null = null;
    try {
      c.sendCommand(0, 'releaseStream', 0, null, u.name);
      c.sendCommand(0, 'FCPublish', 0, null, u.name);
      const r = await c.call(env.timeout, 'createStream', null);
      const sid = Number(r.args[0]);
      if (!(sid > 0 && sid < 2 ** 31)) throw new FormatError(`createStream answered stream id ${String(r.args[0])}`);
      c.sendCommand(sid, 'publish', 0, null, u.name, 'live');
      await c.waitStatus(sid, /Publish\.Start$/, env.timeout);
      let ended = '';
      const sink = new RtmpPlaySink(c, sid, 4, {
        setDataFrame: true,
        end: (reason) => { ended = reason; c.close(`local stream ended: ${reason}`); },
      });
      sub = await env.ctx.subscribe(this.streamPath, { type: 'push', sink });
      this.state = 'running';
      this.log.info('pushing');
      const reason = await c.done;
      if (ended) { this.stop(`stream ended: ${ended}`); return; }
      throw new Error(`connection ended: ${reason}`);
    } finally {
      sub?.close('push ended');
      c.close('push ended');
    }
  }
}
