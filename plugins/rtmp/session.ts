// One RTMP server connection: the NetConnection commands (connect, createStream, ...) and, per message
// stream, a publisher (publish) or a player (play).
//
// StreamPath = app + '/' + stream name. Query arguments (auth: ?secret=..&expire=..) may come on the
// tcUrl / app of connect or on the stream name of publish/play; all are passed on, the stream name's
// winning.

import { EngineError } from '../../src/plugin.ts';
import type { Publisher } from '../../src/plugin.ts';
import type { Subscriber } from '../../src/plugin.ts';
import { FlvIngest, FormatError } from '../../src/format/flv-media.ts';
import type { Logger } from '../../src/log.ts';
import type { TcpConn } from '../../src/net/types.ts';
import type { PluginContext, SessionHandle } from '../../src/plugin.ts';
import { MSG, type PendingBudget, type RtmpMessage, UC } from './chunk.ts';
import { decodeData, type RtmpCommand, RtmpConnection } from './conn.ts';
import { RtmpPlaySink } from './sink.ts';

/** What the session needs from the plugin. */
export interface SessionEnv {
  ctx: PluginContext<any>;
  logger: Logger;
  chunkSize: number;
  maxMessageSize: number;
  /** Largest message before `publish` (rtmp.maxcommandsize). */
  maxCommandSize: number;
  /** Server-wide budget for unfinished messages (rtmp.maxpendingbytes). */
  budget: PendingBudget;
}

/** Most message streams (createStream) per connection. */
const MAX_STREAMS = 8;
/** Media messages held while a publish is being authorised (bounded). */
const MAX_EARLY_MESSAGES = 512;

/** A message stream created by createStream. */
interface NetStream {
  id: number;
  name: string;
  path: string;
  state: 'idle' | 'starting' | 'publishing' | 'playing';
  pub?: Publisher;
  ingest?: FlvIngest;
  sub?: Subscriber;
  sink?: RtmpPlaySink;
  /** Media that arrived while publish was being authorised. */
  early?: RtmpMessage[];
  earlyBytes?: number;
  /** Aborted when the stream id or the connection ends: a play still waiting for its stream gives up. */
  ac?: AbortController;
}

export class RtmpSession extends RtmpConnection {
  /** This connection in the server's session registry (GET /rtmp/api/list `sessions`). */
  readonly handle: SessionHandle<RtmpSession>;
  app = '';
  tcUrl = '';
  /** Args from the connect (tcUrl/app query). */
  private connectArgs: Record<string, string> = {};
  private connected = false;
  private readonly streams = new Map<number, NetStream>();
  private nextStreamId = 1;

  constructor(conn: TcpConn, private readonly env: SessionEnv) {
    super(conn, { role: 'server', logger: env.logger.child({ conn: conn.id, remote: `${conn.remoteAddress}:${conn.remotePort}` }), maxMessageSize: env.maxMessageSize,
      maxCommandSize: env.maxCommandSize, budget: env.budget });
    this.handle = env.ctx.sessions.add({
      kind: 'session', group: 'sessions', remote: `${conn.remoteAddress}:${conn.remotePort}`, ref: this,
      stop: (r) => this.close(r), info: () => this.info(),
    });
  }

  get id(): number { return this.handle.id; }

  /** Whether `connect` was accepted (the handshake timeout covers it too). */
  get isConnected(): boolean { return this.connected; }

  /** Whether any stream of this connection is playing (idle timeout does not apply to players). */
  get playing(): boolean {
    for (const s of this.streams.values()) if (s.state === 'playing') return true;
    return false;
  }

  info(): Record<string, unknown> {
    return {
      id: this.id, remote: `${this.conn.remoteAddress}:${this.conn.remotePort}`, app: this.app, tcUrl: this.tcUrl, handshake: this.handshakeMode,
      startTime: new Date(this.startTime).toISOString(), bytesIn: this.reader.bytesIn, buffered: this.conn.buffered,
      streams: [...this.streams.values()].map((s) => ({ id: s.id, state: s.state, path: s.path })),
    };
  }

  protected onCommand(cmd: RtmpCommand, m: RtmpMessage): void {
    const log = this.log;
    log.debug('command', { name: cmd.name, txn: cmd.txn, stream: m.streamId });
    switch (cmd.name) {
      case 'connect': return this.onConnect(cmd);
      case 'createStream': return this.onCreateStream(cmd);
      case 'releaseStream':
      case 'FCPublish':
        if (cmd.name === 'FCPublish') this.sendCommand(0, 'onFCPublish', 0, null, { code: 'NetStream.Publish.Start', description: String(cmd.args[0] ?? '') });
        if (cmd.txn) this.sendCommand(0, '_result', cmd.txn, null, undefined);
        return;
      case 'FCUnpublish':
        this.sendCommand(0, 'onFCUnpublish', 0, null, { code: 'NetStream.Unpublish.Success', description: String(cmd.args[0] ?? '') });
        if (cmd.txn) this.sendCommand(0, '_result', cmd.txn, null, undefined);
        return;
      case 'publish': return void this.onPublish(cmd);
      case 'play': return void this.onPlay(cmd);
      case 'deleteStream': {
        const id = Number(cmd.args[0]);
        this.endStream(id, 'deleteStream');
        this.streams.delete(id);
        return;
      }
      case 'closeStream':
        this.endStream(cmd.streamId, 'closeStream');
        return;
      case 'getStreamLength':
        if (cmd.txn) this.sendCommand(0, '_result', cmd.txn, null, 0);
        return;
      case '_checkbw':
        if (cmd.txn) this.sendCommand(0, '_result', cmd.txn, null, undefined);
        return;
      case 'receiveAudio': case 'receiveVideo': case 'pause': case 'seek': case '_result': case '_error': case 'onBWDone':
        return;
      default:
        if (cmd.txn) this.sendCommand(0, '_error', cmd.txn, null, { level: 'error', code: 'NetConnection.Call.Failed', description: `unknown command ${cmd.name}` });
    }
  }

  private onConnect(cmd: RtmpCommand): void {
    if (this.connected) throw new FormatError('connect sent twice');
    const o = (cmd.obj && typeof cmd.obj === 'object' ? cmd.obj : {}) as Record<string, unknown>;
    let app = typeof o.app === 'string' ? o.app : '';
    const tcUrl = typeof o.tcUrl === 'string' ? o.tcUrl.slice(0, 8192) : '';
    const args: Record<string, string> = {};
    // Query args on the tcUrl (rtmp://h/live?secret=..) and on the app ("live?secret=..").
    const tq = tcUrl.indexOf('?');
    if (tq >= 0) addQuery(args, tcUrl.slice(tq + 1));
    const aq = app.indexOf('?');
    if (aq >= 0) { addQuery(args, app.slice(aq + 1)); app = app.slice(0, aq); }
    app = app.replace(/^\/+|\/+$/g, '');
    if (!validApp(app)) {
      this.sendCommand(0, '_error', cmd.txn, null, { level: 'error', code: 'NetConnection.Connect.Rejected', description: `invalid app "${app.slice(0, 64)}"` });
      this.log.warn('connect rejected: invalid app', { app: app.slice(0, 64) });
      this.close('invalid app');
      return;
    }
    this.app = app;
    // Shown by the API: without its query (it may carry credentials: ?user=&pass=, ?jwt=, ?secret=).
    this.tcUrl = tq >= 0 ? tcUrl.slice(0, tq) : tcUrl;
    this.connectArgs = args;
    this.connected = true;
    this.sendWindowAck();
    this.sendPeerBandwidth();
    this.setOutChunkSize(this.env.chunkSize);
    this.sendCommand(0, '_result', cmd.txn, { fmsVer: 'FMS/3,5,7,7009', capabilities: 31, mode: 1 }, {
      level: 'status', code: 'NetConnection.Connect.Success', description: 'Connection succeeded.',
      objectEncoding: typeof o.objectEncoding === 'number' ? o.objectEncoding : 0,
    });
  }

  private onCreateStream(cmd: RtmpCommand): void {
    if (!this.connected) throw new FormatError('createStream before connect');
    if (this.streams.size >= MAX_STREAMS) {
      this.sendCommand(0, '_error', cmd.txn, null, { level: 'error', code: 'NetConnection.Call.Failed', description: `too many streams (${MAX_STREAMS})` });
      return;
    }
    let id = this.nextStreamId++;
    while (this.streams.has(id)) id = this.nextStreamId++;
    this.streams.set(id, { id, name: '', path: '', state: 'idle' });
    this.sendCommand(0, '_result', cmd.txn, null, id);
  }

  /** The stream a publish/play addresses (message stream id of the command). */
  private netStream(cmd: RtmpCommand): NetStream | null {
    if (!this.connected) throw new FormatError(`${cmd.name} before connect`);
    const s = this.streams.get(cmd.streamId);
    if (!s) {
      this.sendStatus(cmd.streamId, 'error', cmd.name === 'publish' ? 'NetStream.Publish.Failed' : 'NetStream.Play.Failed', `no stream ${cmd.streamId} (createStream first)`);
      return null;
    }
    if (s.state !== 'idle') {
      this.sendStatus(cmd.streamId, 'error', cmd.name === 'publish' ? 'NetStream.Publish.Failed' : 'NetStream.Play.Failed', `stream ${cmd.streamId} is already in use`);
      return null;
    }
    return s;
  }

  /** StreamPath and args for a stream name ("x?secret=.."). */
  private pathOf(name: string): { path: string; args: Record<string, string> } {
    const args: Record<string, string> = { ...this.connectArgs };
    const q = name.indexOf('?');
    if (q >= 0) { addQuery(args, name.slice(q + 1)); name = name.slice(0, q); }
    return { path: this.app + '/' + name.replace(/^\/+/, ''), args };
  }

  private async onPublish(cmd: RtmpCommand): Promise<void> {
    const s = this.netStream(cmd);
    if (!s) return;
    const name = typeof cmd.args[0] === 'string' ? cmd.args[0].slice(0, 8192) : '';
    const { path, args } = this.pathOf(name);
    s.name = name;
    s.path = path;
    s.state = 'starting';
    s.early = [];
    s.earlyBytes = 0;
    // Media may follow: from now on messages up to rtmp.maxmessagesize are accepted.
    this.raiseLimits();
    let pub: Publisher;
    try {
      pub = await this.env.ctx.publish(path, { remote: `${this.conn.remoteAddress}:${this.conn.remotePort}`, ip: this.conn.remoteAddress, args });
    } catch (err) {
      s.state = 'idle';
      s.early = undefined;
      const e = err as Error;
      const code = err instanceof EngineError
        ? ({ DuplicatePublish: 'NetStream.Publish.BadName', Unauthorized: 'NetStream.Publish.Unauthorized', Forbidden: 'NetStream.Publish.Unauthorized', BadPath: 'NetStream.Publish.BadName' } as Record<string, string>)[err.code] ?? 'NetStream.Publish.Failed'
        : 'NetStream.Publish.Failed';
      this.log.warn('publish refused', { stream: path, code, reason: e.message });
      if (!this.closed) {
        this.sendStatus(cmd.streamId, 'error', code, e.message);
        // The client learned why; close so that it does not stream into the void.
        this.close(`publish refused: ${e.message}`);
      }
      return;
    }
    if (this.closed || s.state !== 'starting') { pub.close(this.closed ? this.closeReason : 'stream deleted'); return; }
    s.pub = pub;
    s.state = 'publishing';
    s.ingest = new FlvIngest(pub, { warn: (msg) => this.log.warn(msg, { stream: path }) });
    pub.onStop = (reason) => {
      if (this.closed) return;
      this.sendStatus(s.id, 'status', 'NetStream.Unpublish.Success', reason);
      this.close(`publisher stopped: ${reason}`);
    };
    this.sendUserControl(UC.STREAM_BEGIN, s.id);
    this.sendStatus(cmd.streamId, 'status', 'NetStream.Publish.Start', `${path} is now published.`, { details: path });
    const early = s.early ?? [];
    s.early = undefined;
    try { for (const m of early) this.ingest(s, m); } catch (err) { this.fail(err); }
  }

  private async onPlay(cmd: RtmpCommand): Promise<void> {
    const s = this.netStream(cmd);
    if (!s) return;
    const name = typeof cmd.args[0] === 'string' ? cmd.args[0].slice(0, 8192) : '';
    const { path, args } = this.pathOf(name);
    s.name = name;
    s.path = path;
    s.state = 'starting';
    // Players of stream id 1 (the usual) use csids 4..6 and share chunks; other stream ids get their own.
    const sink = new RtmpPlaySink(this, s.id, 4 + (s.id - 1) * 3, {
      begin: () => {
        s.state = 'playing';
        // The same bytes for every player of this path on this stream id: encoded once (sendShared).
        this.sendShared(`play\0${s.id}\0${path}`, () => {
          this.sendUserControl(UC.STREAM_BEGIN, s.id);
          this.sendStatus(s.id, 'status', 'NetStream.Play.Reset', `Playing and resetting ${path}.`, { details: path });
          this.sendStatus(s.id, 'status', 'NetStream.Play.Start', `Started playing ${path}.`, { details: path });
          this.sendData(5, s.id, '|RtmpSampleAccess', true, true);
        });
      },
      end: (reason) => {
        if (this.closed) return;
        this.sendStatus(s.id, 'status', 'NetStream.Play.UnpublishNotify', reason);
        this.sendStatus(s.id, 'status', 'NetStream.Play.Stop', reason);
        this.close(`stream ended: ${reason}`);
      },
    });
    s.sink = sink;
    const ac = s.ac = new AbortController();
    try {
      s.sub = await this.env.ctx.subscribe(path, { remote: `${this.conn.remoteAddress}:${this.conn.remotePort}`, ip: this.conn.remoteAddress, args, sink, signal: ac.signal });
    } catch (err) {
      s.state = 'idle';
      const e = err as Error;
      const code = err instanceof EngineError
        ? ({ NotFound: 'NetStream.Play.StreamNotFound', Timeout: 'NetStream.Play.StreamNotFound', Unauthorized: 'NetStream.Play.Unauthorized', Forbidden: 'NetStream.Play.Unauthorized', BadPath: 'NetStream.Play.StreamNotFound' } as Record<string, string>)[err.code] ?? 'NetStream.Play.Failed'
        : 'NetStream.Play.Failed';
      this.log.info('play refused', { stream: path, code, reason: e.message });
      if (!this.closed) {
        this.sendStatus(cmd.streamId, 'error', code, e.message, { details: path });
        this.close(`play refused: ${e.message}`);
      }
      return;
    }
    // The connection closed or the stream was deleted while we waited for the publisher.
    if (this.closed || this.streams.get(s.id) !== s) { this.subscribers.delete(s.sub); s.sub.close(this.closeReason || 'stream deleted'); }
  }

  protected onMedia(m: RtmpMessage): void {
    const s = this.streams.get(m.streamId);
    if (!s) return; // media for a stream that does not exist: ignore
    if (s.state === 'starting' && s.early) {
      s.earlyBytes = (s.earlyBytes ?? 0) + m.payload.length;
      if (s.early.length >= MAX_EARLY_MESSAGES || s.earlyBytes > 2 * this.opts.maxMessageSize) throw new FormatError('too much media before the publish was accepted');
      s.early.push(m);
      return;
    }
    if (s.state !== 'publishing') return;
    this.ingest(s, m);
  }

  /** Feed one media message into the stream's publisher. A malformed body throws (closes the connection). */
  private ingest(s: NetStream, m: RtmpMessage): void {
    const ing = s.ingest!;
    if (m.type === MSG.AUDIO || m.type === MSG.VIDEO) { ing.tag(m.type, m.timestamp, m.payload); return; }
    if (m.type === MSG.AGGREGATE) { forEachAggregate(m, (type, ts, body) => ing.tag(type, ts, body)); return; }
    // Data: "@setDataFrame", "onMetaData", {...}  →  "onMetaData", {...}
    const values = decodeData(m);
    if (values[0] === '@setDataFrame') values.shift();
    if (values[0] === 'onMetaData') {
      const p = m.type === MSG.DATA_AMF3 && m.payload[0] === 0 ? m.payload.subarray(1) : m.payload;
      ing.tag(18, m.timestamp, p[0] === 2 && p[1] === 0 && p[2] === 13 ? p.subarray(16) : p);
    }
  }

  /** Stop whatever runs on a stream id. */
  private endStream(id: number, reason: string): void {
    const s = this.streams.get(id);
    if (!s) return;
    s.pub?.close(reason);
    s.ac?.abort();
    s.ac = undefined;
    if (s.sub) { this.subscribers.delete(s.sub); s.sub.close(reason); }
    s.pub = s.sub = s.ingest = s.sink = undefined;
    s.early = undefined;
    s.state = 'idle';
  }

  protected onClosed(reason: string): void {
    this.log.debug('RTMP connection closed', { reason });
    for (const id of [...this.streams.keys()]) this.endStream(id, reason);
    this.handle.remove(reason);
  }
}

/** Split an aggregate message (FLV tags: 11-byte header, body, 4-byte size) into its tags. */
export function forEachAggregate(m: RtmpMessage, fn: (type: number, ts: number, body: Uint8Array) => void): void {
  const p = m.payload;
  let i = 0;
  let first = -1;
  while (i + 11 <= p.length) {
    const type = p[i] & 0x1f;
    const size = (p[i + 1] << 16) | (p[i + 2] << 8) | p[i + 3];
    const ts = ((p[i + 7] << 24) | (p[i + 4] << 16) | (p[i + 5] << 8) | p[i + 6]) >>> 0;
    if (i + 11 + size > p.length) throw new FormatError('aggregate message: sub-tag runs past the end');
    if (first < 0) first = ts;
    fn(type, (m.timestamp + ts - first) >>> 0, p.subarray(i + 11, i + 11 + size));
    i += 11 + size + 4;
  }
}

function addQuery(into: Record<string, string>, q: string): void {
  try {
    for (const [k, v] of new URLSearchParams(q)) if (k.length <= 64 && k !== '__proto__') into[k] = v.slice(0, k === 'jwt' || k === 'pass' ? 8192 : 1024);
  } catch { /* unparsable query: no args */ }
}

/** An app is one or more path segments of safe characters. */
function validApp(app: string): boolean {
  if (!app || app.length > 128) return false;
  return app.split('/').every((s) => s !== '.' && s !== '..' && /^[A-Za-z0-9._~@=+,:!$()*-]+$/.test(s));
}
