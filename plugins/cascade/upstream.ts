// One upstream of an edge: the single pull that feeds a stream from an origin, shared by every viewer
// of that stream on this node. It tries the origins in order (failover) and keeps going while someone
// watches; between two connections the engine keeps the viewers waiting (subscribe.waittimeout) and the
// next connection's publisher adopts them, so their timestamps continue (src/core/publisher.ts offset).
//
// Transports: HTTP-FLV (fetch + the FLV demuxer and ingest of src/format) and RTMP (the rtmp plugin's
// client, as Monibuca's edge plugin used the rtmp plugin's puller).

import type { Logger, PluginContext, Publisher } from '../../src/plugin.ts';
import { FlvDemuxer } from '../../src/format/flv.ts';
import { FlvIngest } from '../../src/format/flv-media.ts';
import { MSG, UC } from '../rtmp/chunk.ts';
import { decodeData } from '../rtmp/conn.ts';
import { parseRtmpUrl, RtmpClient } from '../rtmp/client.ts';
import { forEachAggregate } from '../rtmp/session.ts';

export interface UpstreamSettings {
  /** Origins, tried in order. */
  origins: string[];
  /** Wait before a new round over the origins after all failed. */
  retryinterval: number;
  /** Connect/handshake/answer timeout and no-data timeout for one connection. */
  timeout: number;
  /** Extra query string sent to the origin (its auth secret). */
  query: string;
}

/** The URL of `streamPath` on an origin given as a base: http(s)://host[:port][/prefix/] or rtmp(s)://host[:port][/]. */
export function originUrl(origin: string, streamPath: string, query = ''): string {
  // An origin may carry its own query (worker peers: "?m7sworker=1&waittimeout=1s"); both are sent.
  const qi = origin.indexOf('?');
  const own = qi >= 0 ? origin.slice(qi + 1) : '';
  if (qi >= 0) origin = origin.slice(0, qi);
  const all = [own, query.replace(/^\?/, '')].filter(Boolean).join('&');
  const q = all ? '?' + all : '';
  const base = origin.replace(/\/+$/, '');
  if (/^https?:\/\//i.test(origin)) {
    const u = new URL(origin);
    // A bare host means the flv plugin's default mount: /flv/{path}.flv.
    const prefix = u.pathname === '/' || u.pathname === '' ? base + '/flv' : base;
    return `${prefix}/${streamPath}.flv${q}`;
  }
  if (/^rtmps?:\/\//i.test(origin)) return `${base}/${streamPath}${q}`;
  throw new Error(`cascade origin must be http(s):// or rtmp(s)://, got ${JSON.stringify(origin)}`);
}

export type UpstreamState = 'connecting' | 'pulling' | 'retrying' | 'stopped';

export class Upstream {
  state: UpstreamState = 'connecting';
  /** The origin feeding the stream now (or last). */
  origin = '';
  connects = 0;
  failovers = 0;
  bytes = 0;
  lastError = '';
  stopReason = '';
  stopped = false;
  readonly startTime = Date.now();
  readonly done: Promise<void>;
  private pub: Publisher | null = null;
  private closeConn: ((reason: string) => void) | null = null;
  private wake: (() => void) | null = null;

  constructor(
    readonly streamPath: string,
    private readonly ctx: PluginContext<any>,
    /** Read before every round over the origins (a directory lookup may answer differently each time). */
    private readonly settings: () => UpstreamSettings | Promise<UpstreamSettings>,
    private readonly log: Logger,
    /** Is anyone still watching? (counted subscribers, waiting viewers included) */
    private readonly watched: () => boolean,
  ) {
    this.done = this.run();
  }

  stop(reason: string): void {
    if (this.stopped) return;
    this.stopped = true;
    this.stopReason = reason;
    this.state = 'stopped';
    this.closeConn?.(reason);
    this.wake?.();
    if (this.pub && !this.pub.closed) this.pub.close(reason);
  }

  /** Try again now instead of after the retry wait (the directory announced the stream). */
  poke(): void { if (this.state === 'retrying') this.wake?.(); }

  info(): Record<string, unknown> {
    return {
      streamPath: this.streamPath, origin: this.origin, state: this.state, connects: this.connects, failovers: this.failovers,
      bytes: this.bytes, lastError: this.lastError || undefined, stopReason: this.stopReason || undefined,
      startTime: new Date(this.startTime).toISOString(),
    };
  }

  private async run(): Promise<void> {
    let lastGood = -1;
    while (!this.stopped) {
      let s: UpstreamSettings;
      try { s = await this.settings(); } catch (err) {
        this.lastError = (err as Error)?.message ?? String(err);
        s = { origins: [], retryinterval: 1000, timeout: 5000, query: '' };
      }
      let delivered = false;
      for (let i = 0; i < s.origins.length && !this.stopped; i++) {
        const origin = s.origins[i];
        if (lastGood >= 0 && i !== lastGood) this.failovers++;
        this.origin = origin;
        this.state = 'connecting';
        let got = 0;
        try {
          got = await this.once(originUrl(origin, this.streamPath, s.query), s);
          if (!this.stopped) this.lastError = 'origin ended the stream';
        } catch (err) {
          got = (err as { got?: number }).got ?? 0;
          if (!this.stopped) {
            this.lastError = (err as Error)?.message ?? String(err);
            this.log.warn('cascade pull failed', { stream: this.streamPath, origin, error: this.lastError });
          }
        } finally {
          if (this.pub && !this.pub.closed) this.pub.close(this.stopReason || `origin ${origin} lost`);
          this.pub = null;
        }
        if (got > 0) { delivered = true; lastGood = i; break; }
      }
      if (this.stopped) break;
      if (!this.watched()) { this.stop('nobody is watching'); break; }
      // After a connection that carried media, go again at once (the primary first); after a round
      // where every origin failed, wait.
      this.state = 'retrying';
      await new Promise<void>((r) => {
        const t = setTimeout(r, delivered ? 50 : s.retryinterval);
        this.wake = () => { clearTimeout(t); r(); };
      });
      this.wake = null;
    }
    this.state = 'stopped';
  }

  /** Publish locally, then read `url` into the publisher until the connection ends. Returns media bytes received. */
  private async once(url: string, s: UpstreamSettings): Promise<number> {
    return /^rtmps?:/i.test(url) ? this.onceRtmp(url, s) : this.onceHttp(url, s);
  }

  private async publish(url: string): Promise<Publisher> {
    const pub = await this.ctx.publish(this.streamPath, { type: 'pull', remote: url });
    if (this.stopped) { pub.close(this.stopReason); throw new Error('stopped'); }
    this.pub = pub;
    this.connects++;
    pub.onStop = (reason) => {
      // A stalled origin (publishtimeout) is worth another try; any other stop (API, kick, no audience) is final.
      if (/publishtimeout|pausetimeout/.test(reason)) this.closeConn?.(reason);
      else this.stop(`stream stopped: ${reason}`);
    };
    return pub;
  }

  private async onceHttp(url: string, s: UpstreamSettings): Promise<number> {
    const ac = new AbortController();
    this.closeConn = (r) => ac.abort(new Error(r));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => { clearTimeout(timer); timer = setTimeout(() => ac.abort(new Error(`no data for ${s.timeout} ms`)), s.timeout); };
    let got = 0;
    try {
      arm();
      const res = await fetch(url, { signal: ac.signal, headers: { 'user-agent': 'm7s-cascade' } });
      if (!res.ok || !res.body) { await res.body?.cancel().catch(() => {}); throw new Error(`HTTP ${res.status}`); }
      const pub = await this.publish(url);
      this.state = 'pulling';
      const ingest = new FlvIngest(pub, { warn: (m) => this.log.warn(m, { stream: this.streamPath }) });
      const demux = new FlvDemuxer((t) => { if (t.type !== 18) got++; ingest.tag(t.type, t.timestamp, t.data); });
      const reader = res.body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done || this.stopped) break;
          arm();
          this.bytes += value.byteLength;
          demux.push(value);
        }
      } finally { reader.cancel().catch(() => {}); }
      return got;
    } catch (err) {
      const e = ac.signal.aborted && ac.signal.reason instanceof Error ? ac.signal.reason : err as Error;
      throw Object.assign(e instanceof Error ? e : new Error(String(e)), { got });
    } finally {
      clearTimeout(timer);
      this.closeConn = null;
    }
  }

  private async onceRtmp(url: string, s: UpstreamSettings): Promise<number> {
    const u = parseRtmpUrl(url);
    const conn = await this.ctx.connectTcp({ host: u.host, port: u.port, timeout: s.timeout, tls: u.tls ? { servername: u.host } : undefined });
    const c = new RtmpClient(conn, this.log, 16 * 1024 * 1024);
    this.closeConn = (r) => c.close(r);
    let got = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => { clearTimeout(timer); timer = setTimeout(() => c.close(`no data for ${s.timeout} ms`), s.timeout); };
    try {
      if (this.stopped) throw new Error('stopped');
      await c.open(u, 4096, s.timeout);
      const r = await c.call(s.timeout, 'createStream', null);
      const sid = Number(r.args[0]);
      if (!(sid > 0 && sid < 2 ** 31)) throw new Error(`createStream answered stream id ${String(r.args[0])}`);
      const pub = await this.publish(url);
      const ingest = new FlvIngest(pub, { warn: (m) => this.log.warn(m, { stream: this.streamPath }) });
      c.onMediaMessage = (m) => {
        arm();
        this.bytes += m.payload.byteLength;
        if (m.type === MSG.AUDIO || m.type === MSG.VIDEO) { got++; ingest.tag(m.type, m.timestamp, m.payload); }
        else if (m.type === MSG.AGGREGATE) forEachAggregate(m, (type, ts, body) => { got++; ingest.tag(type, ts, body); });
        else {
          const v = decodeData(m);
          if (v[0] === 'onMetaData') ingest.tag(18, m.timestamp, m.type === MSG.DATA_AMF3 ? m.payload.subarray(1) : m.payload);
        }
      };
      c.onStatusEvent = (info) => {
        if (/Play\.(Stop|UnpublishNotify)$/.test(String(info.code))) c.close(`origin stream ended (${String(info.code)})`);
      };
      c.sendUserControl(UC.SET_BUFFER_LENGTH, sid, 1000);
      c.sendCommand(sid, 'play', 0, null, u.name, -2000);
      await c.waitStatus(sid, /Play\.Start$/, s.timeout);
      this.state = 'pulling';
      arm();
      const reason = await c.done;
      if (got === 0) throw new Error(`connection ended: ${reason}`);
      return got;
    } catch (err) {
      throw Object.assign(err instanceof Error ? err : new Error(String(err)), { got });
    } finally {
      clearTimeout(timer);
      c.close('cascade pull ended');
      this.closeConn = null;
    }
  }
}
