// One RTSP server connection: requests (OPTIONS, DESCRIBE, ANNOUNCE, SETUP, PLAY, RECORD, PAUSE,
// TEARDOWN, GET_PARAMETER, SET_PARAMETER), interleaved RTP/RTCP on the same socket, and the sessions it
// created. URLs follow MediaMTX/Monibuca: rtsp://host:8554/<app>/<name>[?args], tracks as
// <url>/trackID=N (ours) or whatever control the publisher's SDP names (ffmpeg: streamid=N).
//
// Auth: the plugin's username/password (Basic or Digest) when set, then the engine's one auth gate
// (publish.key / subscribe.key and the auth hooks) through ctx.describe / ctx.publish / ctx.subscribe.
// When the engine refuses, the answer is 401 with a Basic challenge and Basic credentials are mapped to
// the key args (user = expire, password = secret) unless the URL carries them already; the same
// connection may retry.

import type { Logger, PluginContext, Track } from '../../src/plugin.ts';
import { EngineError } from '../../src/plugin.ts';
import { FormatError } from '../../src/format/bytes.ts';
import type { TcpConn } from '../../src/net/types.ts';
import type { UdpDemux } from '../../src/net/udp.ts';
import {
  basicChallenge, checkAuthorization, digestChallenge, parseAuthorization, parseNptRange, parseSession, parseTransport,
  RtspHeaders, RtspParser, type RtspRequest, serializeResponse, formatTransport, type Transport, formatRtpInfo,
} from '../../src/format/rtsp/index.ts';
import { parseSdp } from '../../src/format/sdp/index.ts';
import { sdpTracks } from '../../src/format/sdp/codec.ts';
import { RtpIngest } from './ingest.ts';
import { rtpCanCarry, sdpForStream } from './packets.ts';
import { RtspSession } from './session.ts';
import { RtpPlaySink, type RtpTransport } from './sink.ts';
import type { MulticastSenders } from './multicast.ts';

export interface ServerEnv {
  ctx: PluginContext<any>;
  logger: Logger;
  cfg: {
    username: string; password: string; realm: string; sessiontimeout: number; rtpreorderbufferlen: number; mtu: number;
    maxbodysize: number;
  };
  /** Shared UDP listeners (null: UDP transport off). */
  rtp: UdpDemux | null;
  rtcp: UdpDemux | null;
  /** Multicast play (null: multicastiprange is empty). */
  multicast: MulticastSenders | null;
  sessions: Map<string, RtspSession>;
}

const PUBLIC = 'OPTIONS, DESCRIBE, ANNOUNCE, SETUP, PLAY, RECORD, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER';
/** Sessions one connection may hold. */
const MAX_SESSIONS_PER_CONN = 8;

const randomId = () => {
  let s = '';
  for (let i = 0; i < 4; i++) s += ((Math.random() * 0x100000000) >>> 0).toString(16).padStart(8, '0');
  return s;
};

/** Stream path, args and track control from a request URI. */
export function parseRtspUri(uri: string): { path: string; args: Record<string, string>; control: string } {
  let rest = uri;
  if (/^rtsps?:\/\//i.test(rest)) {
    rest = rest.replace(/^rtsps?:\/\/[^/?]*/i, '');
  }
  let query = '';
  const q = rest.indexOf('?');
  if (q >= 0) { query = rest.slice(q + 1); rest = rest.slice(0, q); }
  let control = '';
  // ffmpeg appends the control after the query ("...?secret=a/streamid=0").
  const qs = query.lastIndexOf('/');
  if (qs >= 0) { control = query.slice(qs + 1); query = query.slice(0, qs); }
  let path = rest.replace(/^\/+|\/+$/g, '');
  try { path = decodeURIComponent(path); } catch { /* keep as is */ }
  if (!control) {
    const m = /^(.*)\/((?:trackID|streamid|track|stream)=?\d+)$/i.exec(path);
    if (m) { path = m[1]!; control = m[2]!; }
  }
  const args: Record<string, string> = {};
  if (query) {
    try {
      for (const [k, v] of new URLSearchParams(query)) if (k.length <= 64 && k !== '__proto__') args[k] = v.slice(0, 1024);
    } catch { /* no args */ }
  }
  return { path, args, control };
}

class ReplyError extends Error {
  constructor(readonly status: number, message: string, readonly headers: Record<string, string | string[]> = {}) { super(message); }
}

export class RtspServerConn implements RtpTransport {
  readonly id: number;
  readonly remote: string;
  private readonly parser: RtspParser;
  private readonly log: Logger;
  private closed_ = false;
  private readonly nonce = randomId();
  readonly sessions = new Set<RtspSession>();
  /** Interleaved channel → (session, SDP media index, RTCP?). */
  private readonly channels = new Map<number, { s: RtspSession; index: number; rtcp: boolean }>();
  /** DESCRIBE answers on this connection (args and tracks for SETUP/PLAY). */
  private readonly described = new Map<string, { args: Record<string, string>; tracks: Track[] }>();
  /** ANNOUNCE on this connection, waiting for SETUP. */
  private announced: RtspSession | null = null;
  private queue: Uint8Array[] = [];
  /** Requests are handled one at a time (some wait for the engine); later ones queue. */
  private pending: RtspRequest[] = [];
  private busy = false;
  lastRead = Date.now();

  constructor(readonly conn: TcpConn, private readonly env: ServerEnv) {
    this.id = conn.id;
    this.remote = `${conn.remoteAddress}:${conn.remotePort}`;
    this.log = env.logger.child({ conn: conn.id, remote: this.remote });
    this.parser = new RtspParser({ maxBodyBytes: env.cfg.maxbodysize });
    conn.onData = (d) => this.onData(d);
    conn.onDrain = () => { for (const s of this.sessions) s.sub?.resume(); };
    conn.onClose = (err) => this.close(err ? `connection error: ${err.message}` : 'peer closed the connection');
  }

  get closed(): boolean { return this.closed_ || this.conn.closed; }
  get buffered(): number { return this.conn.buffered; }

  // RtpTransport ---------------------------------------------------------------------------------
  tcpQueue(b: Uint8Array): void { this.queue.push(b); }
  tcpFlush(): boolean {
    if (this.queue.length === 0) return !this.closed;
    const q = this.queue;
    this.queue = [];
    if (this.closed) return false;
    return this.conn.writev(q);
  }
  sendUdpRtp(data: Uint8Array, out: { rtpPort: number; address: string }): void { this.env.rtp?.send(data, out.rtpPort, out.address); }
  sendUdpRtcp(data: Uint8Array, out: { rtcpPort: number; address: string }): void { this.env.rtcp?.send(data, out.rtcpPort, out.address); }

  // ----------------------------------------------------------------------------------------------

  private onData(d: Uint8Array): void {
    if (this.closed_) return;
    this.lastRead = Date.now();
    let msgs;
    try {
      msgs = this.parser.push(d);
    } catch (err) {
      this.log.warn('closing RTSP connection: ' + (err as Error).message);
      this.respondRaw(400, 0, {});
      this.close(`bad request: ${(err as Error).message}`);
      return;
    }
    for (const m of msgs) {
      if (this.closed_) return;
      if (m.kind === 'data') { this.onInterleaved(m.channel, m.data); continue; }
      if (m.kind === 'response') continue; // answers to nothing we asked: ignore
      this.pending.push(m);
    }
    if (this.pending.length > 64) { this.close('too many pipelined requests'); return; }
    void this.drain();
  }

  private onInterleaved(ch: number, data: Uint8Array): void {
    const c = this.channels.get(ch);
    if (!c) return;
    c.s.touch();
    const ing = c.s.ingest;
    if (!ing) return; // RTCP receiver reports of a viewer, or RTP before RECORD
    if (c.rtcp) ing.rtcp(c.index, data);
    else ing.rtp(c.index, data);
  }

  private async drain(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      while (this.pending.length && !this.closed_) {
        const req = this.pending.shift()!;
        await this.handle(req);
      }
    } finally {
      this.busy = false;
    }
  }

  private respondRaw(status: number, cseq: number | undefined, headers: Record<string, string | string[]>, body?: string, extra?: RtspHeaders): void {
    if (this.closed) return;
    const h = extra ?? new RtspHeaders();
    if (cseq !== undefined) h.set('CSeq', cseq);
    h.set('Server', 'm7s');
    for (const [k, v] of Object.entries(headers)) {
      if (Array.isArray(v)) for (const x of v) h.append(k, x);
      else h.set(k, v);
    }
    if (body) h.set('Content-Length', 0); // replaced by the real length
    this.tcpFlush();
    this.conn.write(serializeResponse({ status, headers: h, body }));
  }

  private async handle(req: RtspRequest): Promise<void> {
    const cseq = req.headers.cseq ?? 0;
    const sessionHeader = req.headers.get('Session');
    let session: RtspSession | undefined;
    try {
      if (sessionHeader !== undefined) {
        const id = parseSession(sessionHeader).id;
        session = this.env.sessions.get(id);
        if (!session || !this.sessions.has(session)) throw new ReplyError(454, `session ${id} not found`);
        session.touch();
      }
      const out = await this.dispatch(req, session);
      if (out === null) return; // answered elsewhere (PLAY from the sink's begin)
      const headers = { ...out.headers };
      if (session && !headers['Session']) headers['Session'] = `${session.id};timeout=${Math.round(this.env.cfg.sessiontimeout / 1000)}`;
      this.respondRaw(out.status ?? 200, cseq, headers, out.body);
    } catch (err) {
      let status = 500, message = (err as Error)?.message ?? String(err), headers: Record<string, string | string[]> = {};
      if (err instanceof ReplyError) { status = err.status; headers = err.headers; }
      else if (err instanceof EngineError) {
        status = ({ Unauthorized: 401, NotFound: 404, Timeout: 404, BadPath: 400, DuplicatePublish: 403, Closed: 404 } as Record<string, number>)[err.code] ?? 500;
        if (status === 401) headers = { 'WWW-Authenticate': this.challenges(true) };
      } else if (err instanceof FormatError) status = 400;
      else this.log.error('RTSP request failed', { method: req.method, error: err });
      if (status !== 401) this.log.info('RTSP request refused', { method: req.method, uri: req.uri.slice(0, 200), status, reason: message });
      this.respondRaw(status, cseq, headers);
    }
  }

  /** WWW-Authenticate values: Digest (when the plugin has credentials) and Basic. */
  private challenges(engine = false): string[] {
    const realm = this.env.cfg.realm;
    const out: string[] = [];
    if (!engine && (this.env.cfg.username || this.env.cfg.password)) out.push(digestChallenge(realm, this.nonce));
    out.push(basicChallenge(realm));
    return out;
  }

  /** Check the plugin's own credentials (username/password). Returns Basic credentials for the key mapping. */
  private authenticate(req: RtspRequest): { username: string; password: string } | null {
    const cfg = this.env.cfg;
    const value = req.headers.get('Authorization');
    let parsed = null;
    if (value !== undefined) {
      try { parsed = parseAuthorization(value); } catch { parsed = null; }
    }
    if (cfg.username || cfg.password) {
      const ok = parsed && parsed.username === cfg.username &&
        checkAuthorization(parsed, { method: req.method, realm: cfg.realm, password: cfg.password, nonceOk: (n) => n === this.nonce });
      if (!ok) {
        this.env.ctx.logger.warn('RTSP authentication failed', { remote: this.remote, user: parsed?.username?.slice(0, 64) });
        throw new ReplyError(401, 'authentication required', { 'WWW-Authenticate': this.challenges() });
      }
      return null; // the credentials were the plugin's: they are not stream keys
    }
    if (parsed?.scheme === 'basic') return { username: parsed.username, password: parsed.password ?? '' };
    return null;
  }

  /** Args for the engine: the URL's, plus Basic credentials as the key args when the URL has none. */
  private engineArgs(args: Record<string, string>, cred: { username: string; password: string } | null, kind: 'publish' | 'subscribe'): Record<string, string> {
    if (!cred) return args;
    const conf = kind === 'publish' ? this.env.ctx.config.publish : this.env.ctx.config.subscribe;
    const out = { ...args };
    if (out[conf.secretargname] === undefined) out[conf.secretargname] = cred.password;
    if (out[conf.expireargname] === undefined) out[conf.expireargname] = cred.username;
    return out;
  }

  private async dispatch(req: RtspRequest, session: RtspSession | undefined): Promise<{ status?: number; headers: Record<string, string | string[]>; body?: string } | null> {
    switch (req.method) {
      case 'OPTIONS':
        return { headers: { Public: PUBLIC } };
      case 'GET_PARAMETER':
      case 'SET_PARAMETER':
        return { headers: {} };
      case 'DESCRIBE': return this.describe(req);
      case 'ANNOUNCE': return this.announce(req);
      case 'SETUP': return this.setup(req, session);
      case 'PLAY': return this.play(req, session);
      case 'RECORD': return this.record(session);
      case 'PAUSE': {
        if (!session) throw new ReplyError(454, 'PAUSE without a session');
        if (session.mode === 'play') session.pausePlay();
        return { headers: {} };
      }
      case 'TEARDOWN': {
        if (session) {
          this.respondRaw(200, req.headers.cseq ?? 0, { Session: session.id });
          session.close('TEARDOWN');
        } else this.respondRaw(200, req.headers.cseq ?? 0, {});
        return null;
      }
      default:
        throw new ReplyError(501, `method ${req.method} is not implemented`, { Public: PUBLIC });
    }
  }

  private async describe(req: RtspRequest): Promise<{ headers: Record<string, string>; body: string }> {
    const u = parseRtspUri(req.uri);
    if (!u.path.includes('/')) throw new ReplyError(404, `stream path "${u.path}" must be app/name`);
    const cred = this.authenticate(req);
    const args = this.engineArgs(u.args, cred, 'subscribe');
    const d = await this.env.ctx.describe(u.path, { args, remote: this.remote });
    const tracks = d.tracks.filter(rtpCanCarry);
    if (!tracks.length) throw new ReplyError(415, `stream ${u.path} has no track RTP can carry (${d.tracks.map((t) => t.codec).join(', ') || 'none'})`);
    if (this.described.size > 16) this.described.clear();
    this.described.set(u.path, { args, tracks });
    const sdp = sdpForStream(tracks, { sessionName: u.path });
    const base = req.uri.replace(/\?.*$/, '').replace(/\/?$/, '/');
    return { headers: { 'Content-Type': 'application/sdp', 'Content-Base': base }, body: sdp };
  }

  private async announce(req: RtspRequest): Promise<{ headers: Record<string, string> }> {
    const u = parseRtspUri(req.uri);
    if (!u.path.includes('/')) throw new ReplyError(400, `stream path "${u.path}" must be app/name`);
    const ct = (req.headers.get('Content-Type') ?? 'application/sdp').toLowerCase();
    if (!ct.includes('sdp')) throw new ReplyError(415, `ANNOUNCE body of type ${ct}`);
    const tracks = sdpTracks(parseSdp(req.body));
    if (!tracks.length) throw new ReplyError(415, 'ANNOUNCE SDP without a usable media section');
    const cred = this.authenticate(req);
    if (this.sessions.size >= MAX_SESSIONS_PER_CONN) throw new ReplyError(453, 'too many sessions on this connection');
    if (this.announced) { this.announced.close('ANNOUNCE again'); this.announced = null; }
    const args = this.engineArgs(u.args, cred, 'publish');
    const pub = await this.env.ctx.publish(u.path, { remote: this.remote, args });
    if (this.closed_) { pub.close('connection closed'); throw new ReplyError(500, 'closed'); }
    const s = this.newSession('record', u.path, args);
    s.pub = pub;
    s.sdpTracks = tracks;
    pub.onStop = (reason) => { s.close(`publisher stopped: ${reason}`); };
    // Tracks with a config in the SDP are known at once (DESCRIBE of viewers can answer before RECORD).
    s.ingest = new RtpIngest(pub, tracks, { reorder: 0, logger: this.log, sendRtcp: (i, d) => this.sendRtcpTo(s, i, d) });
    this.announced = s;
    return { headers: {} };
  }

  private newSession(mode: 'play' | 'record', path: string, args: Record<string, string>): RtspSession {
    if (this.sessions.size >= MAX_SESSIONS_PER_CONN) throw new ReplyError(453, 'too many sessions on this connection');
    const s = new RtspSession(randomId(), mode, path, args, this.remote, (x) => {
      this.sessions.delete(x);
      this.env.sessions.delete(x.id);
      for (const [ch, c] of this.channels) if (c.s === x) this.channels.delete(ch);
      if (this.announced === x) this.announced = null;
    });
    this.sessions.add(s);
    this.env.sessions.set(s.id, s);
    s.handle = this.env.ctx.sessions.add({
      kind: mode === 'play' ? 'player' : 'publisher', group: mode === 'play' ? 'players' : 'publishers', streamPath: path, remote: this.remote, ref: s,
      stop: (r: string) => s.close(r), info: () => s.info(),
    });
    return s;
  }

  private sendRtcpTo(s: RtspSession, index: number, data: Uint8Array): void {
    const st = s.setups.get(index);
    if (!st || this.closed) return;
    if (st.out.kind === 'tcp') {
      this.tcpQueue(Uint8Array.of(0x24, st.out.channel + 1, data.length >> 8, data.length & 0xff));
      this.tcpQueue(data);
      this.tcpFlush();
    } else {
      this.env.rtcp?.send(data, st.out.rtcpPort, st.out.address);
    }
  }

  private async setup(req: RtspRequest, session: RtspSession | undefined): Promise<{ headers: Record<string, string> }> {
    const u = parseRtspUri(req.uri);
    const th = req.headers.get('Transport');
    if (!th) throw new ReplyError(461, 'SETUP without a Transport header');
    const alts = parseTransport(th);
    let s = session;
    if (!s && this.announced && (u.path === this.announced.path || u.path.startsWith(this.announced.path + '/'))) s = this.announced;
    let path = u.path, control = u.control;
    if (s && !control && path.startsWith(s.path + '/')) { control = path.slice(s.path.length + 1); path = s.path; }
    if (s && path !== s.path && !path.startsWith(s.path)) throw new ReplyError(455, `session is for ${s.path}, not ${path}`);
    // Which SDP media the URL names.
    let index = -1;
    if (s?.mode === 'record') {
      index = s.sdpTracks.findIndex((t) => t.control !== undefined && (t.control === control || req.uri.endsWith('/' + t.control) || req.uri === t.control));
      if (index < 0 && s.sdpTracks.length === 1) index = 0;
      if (index < 0) throw new ReplyError(404, `no announced track "${control}"`);
    } else {
      if (!s) {
        if (!path.includes('/')) throw new ReplyError(404, `stream path "${path}" must be app/name`);
        this.authenticate(req);
        let d = this.described.get(path);
        if (!d) {
          const args = this.engineArgs(u.args, this.authenticate(req), 'subscribe');
          const desc = await this.env.ctx.describe(path, { args, remote: this.remote });
          d = { args, tracks: desc.tracks.filter(rtpCanCarry) };
          this.described.set(path, d);
        }
        s = this.newSession('play', path, d.args);
        s.playTracks = d.tracks;
      }
      const m = /(\d+)$/.exec(control);
      index = m ? Number(m[1]) : s.playTracks.length === 1 ? 0 : -1;
      if (index < 0 || index >= s.playTracks.length) throw new ReplyError(404, `no track "${control}" in ${s.path}`);
    }
    if (s.setups.has(index)) throw new ReplyError(455, `track ${index} is already set up`);
    // Pick the first transport we can do.
    let chosen: Transport | undefined;
    let reply = '';
    for (const t of alts) {
      if (!t.protocol.startsWith('RTP/AVP')) continue;
      if (t.lower === 'TCP') {
        if (s.transport === 'udp') continue;
        let ch = t.interleaved;
        if (!ch) { let c = 0; while (this.channels.has(c)) c += 2; ch = [c, c + 1]; }
        if (this.channels.has(ch[0]) || this.channels.has(ch[1])) throw new ReplyError(400, `interleaved channels ${ch[0]}-${ch[1]} are in use`);
        this.channels.set(ch[0], { s, index, rtcp: false });
        this.channels.set(ch[1], { s, index, rtcp: true });
        s.setups.set(index, { index, control, out: { kind: 'tcp', channel: ch[0] }, unregister: [] });
        reply = formatTransport({ protocol: 'RTP/AVP/TCP', cast: 'unicast', interleaved: ch, mode: t.mode });
        chosen = t;
        break;
      }
      if (t.cast === 'multicast') {
        const mc = this.env.multicast;
        if (!mc || s.mode !== 'play' || (s.transport && s.transport !== 'multicast')) continue;
        const track = s.playTracks[index]!;
        const path = s.path, sess = s;
        const g = mc.join(path, track, sess);
        if (!g) throw new ReplyError(453, 'every multicast address of multicastiprange is in use');
        s.setups.set(index, { index, control, out: { kind: 'multicast', ...g }, unregister: [() => mc.release(path, sess)] });
        reply = formatTransport({ protocol: 'RTP/AVP', cast: 'multicast', destination: g.address, port: [g.rtpPort, g.rtcpPort], ttl: g.ttl, mode: t.mode });
        chosen = t;
        break;
      }
      if (!t.clientPort || !this.env.rtp || !this.env.rtcp) continue;
      if (s.transport === 'tcp') continue;
      const address = this.conn.remoteAddress;
      const [rtpPort, rtcpPort] = t.clientPort;
      const unregister: (() => void)[] = [];
      const sess = s;
      try {
        if (sess.mode === 'record') unregister.push(this.env.rtp.register(address, rtpPort, (d) => { sess.touch(); sess.ingest?.rtp(index, d); }));
        else unregister.push(this.env.rtp.register(address, rtpPort, () => sess.touch()));
        unregister.push(this.env.rtcp.register(address, rtcpPort, (d) => { sess.touch(); if (sess.mode === 'record') sess.ingest?.rtcp(index, d); }));
      } catch (e) {
        for (const f of unregister) f();
        throw new ReplyError(400, (e as Error).message);
      }
      s.setups.set(index, { index, control, out: { kind: 'udp', address, rtpPort, rtcpPort }, unregister });
      reply = formatTransport({ protocol: 'RTP/AVP', cast: 'unicast', clientPort: t.clientPort, serverPort: [this.env.rtp.socket.port, this.env.rtcp.socket.port], mode: t.mode });
      chosen = t;
      break;
    }
    if (!chosen) throw new ReplyError(461, `no supported transport in "${th.slice(0, 200)}"${this.env.rtp ? '' : ' (UDP is off on this server)'}`);
    if (s.state === 'init') s.state = 'ready';
    s.touch();
    return { headers: { Transport: reply, Session: `${s.id};timeout=${Math.round(this.env.cfg.sessiontimeout / 1000)}` } };
  }

  private async play(req: RtspRequest, s: RtspSession | undefined): Promise<{ headers: Record<string, string> } | null> {
    if (!s) throw new ReplyError(454, 'PLAY without a session (SETUP first)');
    if (s.mode !== 'play') throw new ReplyError(455, 'PLAY on a publishing session');
    if (!s.setups.size) throw new ReplyError(455, 'PLAY before SETUP');
    const range = req.headers.get('Range');
    if (range) { try { parseNptRange(range); } catch { /* other units: live anyway */ } }
    if (s.state === 'playing') return { headers: { Range: 'npt=now-' } };
    const outs = new Map<Track, import('./sink.ts').TrackOut>();
    for (const st of s.setups.values()) {
      const t = s.playTracks[st.index];
      if (t) { st.track = t; outs.set(t, st.out); }
    }
    const cseq = req.headers.cseq ?? 0;
    const base = req.uri.replace(/\?.*$/, '').replace(/\/$/, '');
    let answered = false;
    const sink = new RtpPlaySink(this, outs, this.env.cfg.mtu, {
      begin: () => {
        answered = true;
        s.state = 'playing';
        const info = [...s.setups.values()].map((st) => ({ url: `${base}/${st.control || 'trackID=' + st.index}` }));
        this.respondRaw(200, cseq, { Session: `${s.id};timeout=${Math.round(this.env.cfg.sessiontimeout / 1000)}`, Range: 'npt=now-', 'RTP-Info': formatRtpInfo(info) });
      },
      end: (reason) => {
        if (s.sink === sink) s.close(`stream ended: ${reason}`);
        // The viewer learns the end from the closed connection (RTSP has no in-band end for live).
        if (s.transport === 'tcp' || !this.sessions.size) this.close(`stream ended: ${reason}`);
      },
    });
    s.sink = sink;
    try {
      if (s.transport === 'multicast') await this.env.multicast!.start(s.path, s.args);
      if (s.closed || s.sink !== sink) { sink.dispose(); return { headers: {} }; }
      const sub = await this.env.ctx.subscribe(s.path, { remote: this.remote, args: s.args, sink });
      if (s.closed || s.sink !== sink) { sink.dispose(); sub.close(s.closeReason || 'session closed'); return answered ? null : { headers: {} }; }
      s.sub = sub;
    } catch (err) {
      s.sink = null;
      throw err;
    }
    return answered ? null : { headers: { Range: 'npt=now-' } };
  }

  private async record(s: RtspSession | undefined): Promise<{ headers: Record<string, string> }> {
    if (!s) throw new ReplyError(454, 'RECORD without a session');
    if (s.mode !== 'record' || !s.pub) throw new ReplyError(455, 'RECORD on a playing session (ANNOUNCE first)');
    if (!s.setups.size) throw new ReplyError(455, 'RECORD before SETUP');
    if (s.state !== 'recording') {
      s.ingest?.close();
      const udp = s.transport === 'udp';
      s.ingest = new RtpIngest(s.pub, s.sdpTracks, { reorder: udp ? this.env.cfg.rtpreorderbufferlen : 0, logger: this.log, sendRtcp: (i, d) => this.sendRtcpTo(s, i, d) });
      s.state = 'recording';
      if (this.announced === s) this.announced = null;
    }
    return { headers: {} };
  }

  /** Close the connection and every session it holds. Idempotent. */
  close(reason: string): void {
    if (this.closed_) return;
    this.closed_ = true;
    for (const s of [...this.sessions]) s.close(reason);
    this.conn.onData = null;
    this.conn.onDrain = null;
    if (!this.conn.closed) {
      this.tcpFlush();
      this.conn.end();
      const t = setTimeout(() => { if (!this.conn.closed) this.conn.destroy(); }, 3000);
      this.conn.onClose = () => clearTimeout(t);
    }
    this.onClosed?.(reason);
  }

  onClosed: ((reason: string) => void) | null = null;
}
