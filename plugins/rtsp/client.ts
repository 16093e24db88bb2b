// The RTSP client: pull (DESCRIBE/SETUP/PLAY from a camera or another server into a local stream) and push
// (ANNOUNCE/SETUP/RECORD of a local stream to another server), over TCP interleaved or UDP, with Basic and
// Digest auth, keep-alives, and a job that reconnects with backoff. While a pull reconnects, the local
// stream's viewers wait (subscribe.waittimeout) and carry on with continuous timestamps.
//
// transport auto (pull): UDP first; when no packet arrives within `udptimeout`, TCP (and TCP for the
// retries of this job, as a camera behind NAT will not start sending UDP later).

import type { Logger, PluginContext, Publisher, SessionHandle, Subscriber, Track } from '../../src/plugin.ts';
import { FormatError } from '../../src/format/bytes.ts';
import type { TcpConn, UdpSocket } from '../../src/net/types.ts';
import {
  type AuthChallenge, authorizationFor, parseChallenges, parseSession, parseTransport, RtspHeaders, RtspParser,
  type RtspResponse, serializeRequest, formatTransport,
} from '../../src/format/rtsp/index.ts';
import { controlUrl, parseSdp } from '../../src/format/sdp/index.ts';
import { sdpTracks, type SdpTrack } from '../../src/format/sdp/codec.ts';
import { INGEST_CODECS, RtpIngest } from './ingest.ts';
import { rtpCanCarry, sdpForStream } from './packets.ts';
import { RtpPlaySink, type RtpTransport, type TrackOut } from './sink.ts';

export interface ClientEnv {
  ctx: PluginContext<any>;
  logger: Logger;
  mtu: number;
  reorder: number;
  udpTimeout: number;
  udpRange: string;
  retryCount: number;
  retryInterval: number;
  timeout: number;
  tlsVerify: boolean;
}

export interface RtspUrl { tls: boolean; host: string; port: number; username: string; password: string; /** The URL without credentials. */ url: string }

export function parseClientUrl(url: string): RtspUrl {
  const m = /^(rtsps?):\/\/(?:([^:@/]*)(?::([^@/]*))?@)?(\[[^\]]+\]|[^:/?]+)(?::(\d{1,5}))?([/?].*)?$/i.exec(url);
  if (!m) throw new Error(`not an rtsp:// or rtsps:// URL: ${url.slice(0, 200)}`);
  const tls = m[1]!.toLowerCase() === 'rtsps';
  const host = m[4]!.replace(/^\[|\]$/g, '');
  const port = m[5] ? Number(m[5]) : tls ? 322 : 554;
  const dec = (s: string | undefined) => { try { return decodeURIComponent(s ?? ''); } catch { return s ?? ''; } };
  const hostPart = m[4]!.includes(':') && !m[4]!.startsWith('[') ? `[${m[4]}]` : m[4]!;
  return { tls, host, port, username: dec(m[2]), password: dec(m[3]), url: `${m[1]}://${hostPart}${m[5] ? ':' + m[5] : ''}${m[6] ?? '/'}` };
}

/** One RTSP client connection: requests with auth retry, responses by CSeq, interleaved data. */
export class RtspClientConn {
  private readonly parser = new RtspParser({ maxBodyBytes: 1 << 20 });
  private cseq = 0;
  private readonly waiting = new Map<number, { resolve(r: RtspResponse): void; reject(e: Error): void; timer: ReturnType<typeof setTimeout> }>();
  private challenge: AuthChallenge | null = null;
  private nc = 0;
  session = '';
  sessionTimeout = 60;
  closed = false;
  closeReason = '';
  onInterleaved: ((channel: number, data: Uint8Array) => void) | null = null;
  readonly done: Promise<string>;
  private resolveDone!: (r: string) => void;
  private queue: Uint8Array[] = [];

  constructor(readonly conn: TcpConn, readonly u: RtspUrl, private readonly timeout: number) {
    this.done = new Promise((r) => { this.resolveDone = r; });
    conn.onData = (d) => {
      let msgs;
      try { msgs = this.parser.push(d); } catch (e) { this.close(`bad data from the server: ${(e as Error).message}`); return; }
      for (const m of msgs) {
        if (m.kind === 'data') this.onInterleaved?.(m.channel, m.data);
        else if (m.kind === 'response') {
          const w = this.waiting.get(m.headers.cseq ?? -1);
          if (w) { this.waiting.delete(m.headers.cseq!); clearTimeout(w.timer); w.resolve(m); }
        }
        // requests from the server (GET_PARAMETER, ANNOUNCE): ignored
      }
    };
    conn.onClose = (err) => this.close(err ? `connection error: ${err.message}` : 'server closed the connection');
  }

  /** Send a request; a 401 is answered once with credentials from the URL. Non-2xx throws. */
  async request(method: string, uri: string, headers: Record<string, string> = {}, body?: string): Promise<RtspResponse> {
    let r = await this.send(method, uri, headers, body);
    if (r.status === 401 && (this.u.username || this.u.password)) {
      const ch = parseChallenges(r.headers.getAll('WWW-Authenticate'));
      const pick = ch.find((c) => c.scheme === 'digest') ?? ch.find((c) => c.scheme === 'basic');
      if (pick) {
        this.challenge = pick;
        this.nc = 0;
        r = await this.send(method, uri, headers, body);
      }
    }
    if (r.status < 200 || r.status >= 300) throw new Error(`${method} ${uri}: ${r.status} ${r.reason}`);
    const s = r.headers.get('Session');
    if (s) { const p = parseSession(s); this.session = p.id; if (p.timeout) this.sessionTimeout = p.timeout; }
    return r;
  }

  private send(method: string, uri: string, headers: Record<string, string>, body?: string): Promise<RtspResponse> {
    if (this.closed) return Promise.reject(new Error(`connection closed: ${this.closeReason}`));
    const cseq = ++this.cseq;
    const h = new RtspHeaders({ CSeq: cseq, 'User-Agent': 'm7s', ...headers });
    if (this.session && !h.has('Session')) h.set('Session', this.session);
    if (this.challenge) h.set('Authorization', authorizationFor(this.challenge, { username: this.u.username, password: this.u.password }, method, uri, { nc: ++this.nc }));
    if (body !== undefined && !h.has('Content-Type')) h.set('Content-Type', 'application/sdp');
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.waiting.delete(cseq); reject(new Error(`${method}: no answer within ${this.timeout} ms`)); }, this.timeout);
      this.waiting.set(cseq, { resolve, reject, timer });
      this.flush();
      this.conn.write(serializeRequest({ method, uri, headers: h, body }));
    });
  }

  queueBytes(b: Uint8Array): void { this.queue.push(b); }
  flush(): boolean {
    if (!this.queue.length) return !this.closed;
    const q = this.queue;
    this.queue = [];
    if (this.closed) return false;
    return this.conn.writev(q);
  }

  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    for (const w of this.waiting.values()) { clearTimeout(w.timer); w.reject(new Error(`connection closed: ${reason}`)); }
    this.waiting.clear();
    this.conn.onData = null;
    if (!this.conn.closed) this.conn.destroy();
    this.resolveDone(reason);
  }
}

type JobState = 'connecting' | 'running' | 'retrying' | 'stopped' | 'failed';

/** Thrown when UDP brought nothing (auto: retry at once over TCP). */
class NoUdpError extends Error {}

export class RtspJob {
  readonly handle: SessionHandle<RtspJob>;
  state: JobState = 'connecting';
  retries = 0;
  lastError = '';
  readonly startTime = Date.now();
  /** The transport in use (auto turns into udp or tcp). */
  current: 'tcp' | 'udp' = 'tcp';
  private stopped = false;
  private client: RtspClientConn | null = null;
  private wake: (() => void) | null = null;
  private readonly log: Logger;
  private ingest: RtpIngest | null = null;
  private sink: RtpPlaySink | null = null;
  private forceTcp = false;

  constructor(readonly kind: 'pull' | 'push', readonly streamPath: string, readonly url: string, readonly transport: 'tcp' | 'udp' | 'auto', private readonly env: ClientEnv) {
    this.log = env.logger.child({ [kind]: parseClientUrl(url).url, stream: streamPath });
    this.handle = env.ctx.sessions.add({
      kind, group: kind === 'pull' ? 'pulls' : 'pushes', streamPath, ref: this,
      stop: (r) => this.stop(r), info: () => this.info(),
    });
  }

  get id(): number { return this.handle.id; }

  info(): Record<string, unknown> {
    return {
      id: this.id, kind: this.kind, streamPath: this.streamPath, url: parseClientUrl(this.url).url, transport: this.transport, current: this.current,
      state: this.state, retries: this.retries, lastError: this.lastError, startTime: new Date(this.startTime).toISOString(),
      rtp: this.ingest?.stats(), frames: this.sink?.frames, packets: this.sink?.packets,
    };
  }

  stop(reason = 'stopped'): void {
    if (this.stopped) return;
    this.stopped = true;
    this.state = 'stopped';
    this.log.info(`${this.kind} stopped`, { reason });
    this.client?.close(reason);
    this.wake?.();
    this.handle.remove(reason);
  }

  async run(): Promise<void> {
    let backoff = 0;
    while (!this.stopped) {
      let ranFor = 0;
      let again = false;
      try {
        this.state = 'connecting';
        const t0 = Date.now();
        await (this.kind === 'pull' ? this.pullOnce() : this.pushOnce());
        ranFor = Date.now() - t0;
      } catch (err) {
        this.lastError = (err as Error)?.message ?? String(err);
        if (err instanceof NoUdpError && this.transport === 'auto') { this.forceTcp = true; again = true; }
        if (!this.stopped) this.log.warn(`${this.kind} failed`, { error: this.lastError });
      } finally {
        this.client?.close('ended');
        this.client = null;
      }
      if (this.stopped) break;
      if (again) continue;
      const limit = this.env.retryCount;
      if (limit >= 0 && this.retries >= limit) {
        this.state = 'failed';
        this.handle.remove('gave up');
        this.log.warn(`${this.kind} gave up after ${this.retries} retries`);
        return;
      }
      if (ranFor > 30_000) backoff = 0;
      const delay = Math.min(this.env.retryInterval * 2 ** backoff, 30_000);
      backoff = Math.min(backoff + 1, 16);
      this.retries++;
      this.state = 'retrying';
      await new Promise<void>((r) => { const t = setTimeout(r, delay); this.wake = () => { clearTimeout(t); r(); }; });
      this.wake = null;
    }
  }

  private async open(): Promise<RtspClientConn> {
    const u = parseClientUrl(this.url);
    const env = this.env;
    const conn = await env.ctx.connectTcp({ host: u.host, port: u.port, timeout: env.timeout, tls: u.tls ? { servername: u.host, rejectUnauthorized: env.tlsVerify } : undefined });
    const c = new RtspClientConn(conn, u, env.timeout);
    this.client = c;
    if (this.stopped) { c.close('stopped'); throw new Error('stopped'); }
    return c;
  }

  /** Keep the server's session alive: GET_PARAMETER at half its timeout (OPTIONS when refused). */
  private keepAlive(c: RtspClientConn, uri: string): ReturnType<typeof setInterval> {
    const every = Math.max(1000, Math.min(30_000, (c.sessionTimeout * 1000) / 2));
    let method = 'GET_PARAMETER';
    return setInterval(() => {
      c.request(method, uri).catch(() => { method = 'OPTIONS'; });
    }, every);
  }

  private async pullOnce(): Promise<void> {
    const c = await this.open();
    const env = this.env;
    const url = c.u.url;
    const useUdp = this.transport === 'udp' || (this.transport === 'auto' && !this.forceTcp);
    this.current = useUdp ? 'udp' : 'tcp';
    let pub: Publisher | null = null;
    const sockets: UdpSocket[] = [];
    let ka: ReturnType<typeof setInterval> | undefined;
    let watchdog: ReturnType<typeof setTimeout> | undefined;
    try {
      await c.request('OPTIONS', url).catch(() => undefined);
      const d = await c.request('DESCRIBE', url, { Accept: 'application/sdp' });
      const base = d.headers.get('Content-Base') ?? d.headers.get('Content-Location') ?? url;
      const sdp = parseSdp(d.body);
      const all = sdpTracks(sdp);
      const use = all.filter((t) => (t.kind === 'video' || t.kind === 'audio') && INGEST_CODECS.has(t.codec));
      if (!use.length) throw new FormatError(`no track we can take in ${url} (${all.map((t) => t.encoding).join(', ') || 'none'})`);
      const chan = new Map<number, { index: number; rtcp: boolean }>();
      const udpPeers: { index: number; rtp: UdpSocket; rtcp: UdpSocket; serverRtcp?: number; host: string }[] = [];
      let ingest: RtpIngest | null = null;
      const sendRtcp = (index: number, data: Uint8Array) => {
        const p = udpPeers.find((x) => x.index === index);
        if (p) { if (p.serverRtcp) p.rtcp.send(data, p.serverRtcp, p.host); return; }
        for (const [ch, x] of chan) if (x.index === index && x.rtcp) { c.queueBytes(Uint8Array.of(0x24, ch, data.length >> 8, data.length & 0xff)); c.queueBytes(data); c.flush(); }
      };
      for (let i = 0; i < use.length; i++) {
        const t = use[i]!;
        const index = all.indexOf(t);
        const turl = controlUrl(base.replace(/\/$/, '') || url, t.control);
        if (useUdp) {
          const pair = await env.ctx.bindUdpPair(env.udpRange, { what: 'RTSP pull RTP' });
          sockets.push(pair.rtp, pair.rtcp);
          let r: RtspResponse;
          try {
            r = await c.request('SETUP', turl, { Transport: formatTransport({ protocol: 'RTP/AVP', cast: 'unicast', clientPort: [pair.rtp.port, pair.rtcp.port] }) });
          } catch (e) {
            // A server without UDP (461 Unsupported Transport): auto goes on with TCP at once.
            if (this.transport === 'auto') throw new NoUdpError(`UDP refused: ${(e as Error).message}`);
            throw e;
          }
          const tr = parseTransport(r.headers.get('Transport') ?? 'RTP/AVP')[0]!;
          const peer = { index, rtp: pair.rtp, rtcp: pair.rtcp, serverRtcp: tr.serverPort?.[1], host: tr.source ?? c.u.host };
          udpPeers.push(peer);
          pair.rtp.onMessage = (data) => ingest?.rtp(index, data);
          pair.rtcp.onMessage = (data) => ingest?.rtcp(index, data);
          // Open the NAT towards the server's ports (as ffmpeg does).
          if (tr.serverPort) {
            const punch = Uint8Array.of(0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
            pair.rtp.send(punch, tr.serverPort[0], peer.host);
          }
        } else {
          const r = await c.request('SETUP', turl, { Transport: formatTransport({ protocol: 'RTP/AVP/TCP', cast: 'unicast', interleaved: [2 * i, 2 * i + 1] }) });
          const tr = parseTransport(r.headers.get('Transport') ?? 'RTP/AVP/TCP')[0]!;
          const ch = tr.interleaved ?? [2 * i, 2 * i + 1];
          chan.set(ch[0], { index, rtcp: false });
          chan.set(ch[1], { index, rtcp: true });
        }
      }
      pub = await env.ctx.publish(this.streamPath, { type: 'pull', remote: url });
      const p = pub;
      ingest = new RtpIngest(pub, all, { reorder: useUdp ? env.reorder : 0, logger: this.log, sendRtcp });
      this.ingest = ingest;
      c.onInterleaved = (ch, data) => {
        const x = chan.get(ch);
        if (!x) return;
        if (x.rtcp) ingest!.rtcp(x.index, data); else ingest!.rtp(x.index, data);
      };
      p.onStop = (reason) => {
        if (/publishtimeout|pausetimeout/.test(reason)) c.close(reason);
        else this.stop(`stream stopped: ${reason}`);
      };
      await c.request('PLAY', url, { Range: 'npt=0.000-' });
      this.state = 'running';
      this.log.info('pulling', { transport: this.current });
      ka = this.keepAlive(c, url);
      if (useUdp) {
        const ing = ingest;
        const noUdp = new Promise<never>((_, reject) => {
          watchdog = setTimeout(() => { if (ing.received === 0) { c.close('no UDP packets'); reject(new NoUdpError(`no RTP packet over UDP within ${env.udpTimeout} ms`)); } }, env.udpTimeout);
        });
        const reason = await Promise.race([c.done, noUdp]);
        throw new Error(`connection ended: ${reason}`);
      }
      const reason = await c.done;
      throw new Error(`connection ended: ${reason}`);
    } finally {
      clearInterval(ka);
      clearTimeout(watchdog);
      this.ingest?.close();
      if (!c.closed) c.request('TEARDOWN', c.u.url).catch(() => undefined); // best effort: run() closes the connection
      for (const s of sockets) void s.close();
      if (pub && !pub.closed) pub.close(`pull from ${c.u.url} ended`);
    }
  }

  private async pushOnce(): Promise<void> {
    const c = await this.open();
    const env = this.env;
    const url = c.u.url;
    const useUdp = this.transport === 'udp';
    this.current = useUdp ? 'udp' : 'tcp';
    let sub: Subscriber | null = null;
    const sockets: UdpSocket[] = [];
    let ka: ReturnType<typeof setInterval> | undefined;
    try {
      const d = await env.ctx.describe(this.streamPath, {});
      const tracks = d.tracks.filter(rtpCanCarry);
      if (!tracks.length) throw new Error(`stream ${this.streamPath} has no track RTP can carry`);
      await c.request('OPTIONS', url).catch(() => undefined);
      await c.request('ANNOUNCE', url, { 'Content-Type': 'application/sdp' }, sdpForStream(tracks, { sessionName: this.streamPath }));
      const outs = new Map<Track, TrackOut>();
      for (let i = 0; i < tracks.length; i++) {
        const turl = `${url.replace(/\/$/, '')}/trackID=${i}`;
        if (useUdp) {
          const pair = await env.ctx.bindUdpPair(env.udpRange, { what: 'RTSP push RTP' });
          sockets.push(pair.rtp, pair.rtcp);
          const r = await c.request('SETUP', turl, { Transport: formatTransport({ protocol: 'RTP/AVP', cast: 'unicast', clientPort: [pair.rtp.port, pair.rtcp.port], mode: 'record' }) });
          const tr = parseTransport(r.headers.get('Transport') ?? '')[0];
          if (!tr?.serverPort) throw new Error('SETUP answer without server_port');
          outs.set(tracks[i]!, { kind: 'udp', address: tr.source ?? c.u.host, rtpPort: tr.serverPort[0], rtcpPort: tr.serverPort[1], from: { rtp: pair.rtp, rtcp: pair.rtcp } });
        } else {
          const r = await c.request('SETUP', turl, { Transport: formatTransport({ protocol: 'RTP/AVP/TCP', cast: 'unicast', interleaved: [2 * i, 2 * i + 1], mode: 'record' }) });
          const tr = parseTransport(r.headers.get('Transport') ?? '')[0];
          outs.set(tracks[i]!, { kind: 'tcp', channel: tr?.interleaved?.[0] ?? 2 * i });
        }
      }
      await c.request('RECORD', url, { Range: 'npt=0.000-' });
      // Datagrams leave from the pair set up for their track (servers match the client port).
      const transport: RtpTransport = {
        tcpQueue: (b) => c.queueBytes(b),
        tcpFlush: () => c.flush(),
        get buffered() { return c.conn.buffered; },
        get closed() { return c.closed; },
        sendUdpRtp: (data, out) => out.from?.rtp.send(data, out.rtpPort, out.address),
        sendUdpRtcp: (data, out) => out.from?.rtcp.send(data, out.rtcpPort, out.address),
      };
      let ended = '';
      const sink = new RtpPlaySink(transport, outs, env.mtu, { end: (reason) => { ended = reason; c.close(`local stream ended: ${reason}`); } });
      this.sink = sink;
      c.conn.onDrain = () => sub?.resume();
      sub = await env.ctx.subscribe(this.streamPath, { type: 'push', sink });
      this.state = 'running';
      this.log.info('pushing', { transport: this.current });
      ka = this.keepAlive(c, url);
      const reason = await c.done;
      if (ended) { this.stop(`stream ended: ${ended}`); return; }
      throw new Error(`connection ended: ${reason}`);
    } finally {
      clearInterval(ka);
      this.sink?.dispose();
      sub?.close('push ended');
      if (!c.closed) c.request('TEARDOWN', url).catch(() => undefined); // best effort: run() closes the connection
      for (const s of sockets) void s.close();
    }
  }
}

export type { SdpTrack };
