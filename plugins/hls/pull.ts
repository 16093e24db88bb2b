// HLS pull: an external live (or VOD) HLS media playlist becomes a local stream. The job polls the
// playlist, fetches the segments it has not seen in media-sequence order, demuxes them (MPEG-TS with
// TsDemuxer, fMP4 with ./fmp4demux.ts) and publishes their frames paced at real time by their timestamps,
// so players of the local stream see a steady stream rather than a burst every few seconds.
//
// Everything fetched is hostile: playlists and segments are read with size limits and timeouts, URIs
// must resolve to http(s), a malformed segment is skipped (counted), and failures back off up to
// `retrymax` before polling again.

import { type OutboundOrigin, SOURCE_UNAVAILABLE } from '../../src/core/outbound.ts';
import { EngineError } from '../../src/plugin.ts';
import type { CodecConfig, Track } from '../../src/plugin.ts';
import type { Publisher } from '../../src/plugin.ts';
import { TsDemuxer, type TsAccessUnit } from '../../src/format/ts.ts';
import { parseAvcC, parseH264Sps } from '../../src/codec/h264.ts';
import type { Logger } from '../../src/log.ts';
import type { PluginContext } from '../../src/plugin.ts';
import { type Mp4InTrack, parseInit, parseSegment } from './fmp4demux.ts';

export interface PullSettings {
  /** Largest playlist (bytes). */
  maxplaylistsize: number;
  /** Largest segment (bytes). */
  maxsegmentsize: number;
  /** Per-request timeout (ms). */
  timeout: number;
  retrymax: number;
}

// ---------------------------------------------------------------------------------------------------
// Playlist parsing (RFC 8216 §4): only the tags a pull needs.

export interface PlaylistSegment { uri: string; duration: number; msn: number; discontinuity: boolean; map?: string }
export type Playlist =
  | { master: true; variants: { uri: string; bandwidth: number }[] }
  | { master: false; targetDuration: number; mediaSequence: number; endList: boolean; segments: PlaylistSegment[] };

const MAX_LINES = 100_000;

/** Parse a playlist; URIs are resolved against `base` and must be http(s). */
export function parsePlaylist(text: string, base: string): Playlist {
  const lines = text.split(/\r?\n/, MAX_LINES + 1);
  if (lines.length > MAX_LINES) throw new Error('playlist has too many lines');
  if (!lines[0]?.replace(/^\uFEFF/, '').startsWith('#EXTM3U')) throw new Error('not an M3U8 playlist (no #EXTM3U)');
  const resolve = (u: string) => {
    const r = new URL(u.trim(), base);
    if (r.protocol !== 'http:' && r.protocol !== 'https:') throw new Error(`unsupported URI scheme in playlist: ${r.protocol}`);
    return r.href;
  };
  const attr = (s: string, name: string) => new RegExp(`(?:^|,)${name}=("([^"]*)"|[^,]*)`).exec(s)?.[2] ?? new RegExp(`(?:^|,)${name}=("([^"]*)"|[^,]*)`).exec(s)?.[1];
  const variants: { uri: string; bandwidth: number }[] = [];
  const segments: PlaylistSegment[] = [];
  let targetDuration = 0, mediaSequence = 0, endList = false;
  let duration = -1, disc = false, map: string | undefined, pendingVariant: number | null = null;
  for (const raw of lines) {
    const line = raw.trim();
    if (!line) continue;
    if (line.startsWith('#')) {
      const colon = line.indexOf(':');
      const tag = colon < 0 ? line : line.slice(0, colon);
      const val = colon < 0 ? '' : line.slice(colon + 1);
      switch (tag) {
        case '#EXT-X-STREAM-INF': pendingVariant = Number(attr(val, 'BANDWIDTH')) || 0; break;
        case '#EXT-X-TARGETDURATION': targetDuration = clampNum(Number(val), 0, 3600); break;
        case '#EXT-X-MEDIA-SEQUENCE': mediaSequence = Math.trunc(clampNum(Number(val), 0, Number.MAX_SAFE_INTEGER / 2)); break;
        case '#EXTINF': duration = clampNum(parseFloat(val), 0, 3600); break;
        case '#EXT-X-DISCONTINUITY': disc = true; break;
        case '#EXT-X-ENDLIST': endList = true; break;
        case '#EXT-X-MAP': { const u = attr(val, 'URI'); if (u) map = resolve(u); break; }
      }
      continue;
    }
    if (pendingVariant !== null) {
      variants.push({ uri: resolve(line), bandwidth: pendingVariant });
      pendingVariant = null;
    } else if (duration >= 0) {
      segments.push({ uri: resolve(line), duration, msn: mediaSequence + segments.length, discontinuity: disc, map });
      duration = -1;
      disc = false;
    }
  }
  if (variants.length) return { master: true, variants };
  return { master: false, targetDuration, mediaSequence, endList, segments };
}

function clampNum(x: number, lo: number, hi: number): number { return Number.isFinite(x) ? Math.min(hi, Math.max(lo, x)) : lo; }

/** Fetch `url` with a size limit and a timeout; the body as bytes. */
async function fetchBytes(url: string, limit: number, timeoutMs: number, signal: AbortSignal, redirect: RequestRedirect = 'follow'): Promise<Uint8Array> {
  const ac = new AbortController();
  const onAbort = () => ac.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  try {
    const res = await fetch(url, { signal: ac.signal, headers: { 'user-agent': 'm7s-hls-pull' }, redirect });
    if (!res.ok || !res.body) { await res.body?.cancel().catch(() => {}); throw new Error(`GET ${url}: HTTP ${res.status}`); }
    const declared = Number(res.headers.get('content-length'));
    if (declared > limit) { await res.body.cancel().catch(() => {}); throw new Error(`GET ${url}: ${declared} bytes is over the ${limit} byte limit`); }
    const reader = res.body.getReader();
    const parts: Uint8Array[] = [];
    let n = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      n += value.byteLength;
      if (n > limit) { await reader.cancel().catch(() => {}); throw new Error(`GET ${url}: body is over the ${limit} byte limit`); }
      parts.push(value);
    }
    const out = new Uint8Array(n);
    let o = 0;
    for (const p of parts) { out.set(p, o); o += p.byteLength; }
    return out;
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
  }
}

// ---------------------------------------------------------------------------------------------------
// The job

interface OutFrame { kind: 'video' | 'audio'; sec: number; dts: number; cts: number; key: boolean; data: Uint8Array }

const TS_WRAP = 2 ** 33;

export class HlsPullJob {
  readonly startTime = Date.now();
  state: 'connecting' | 'pulling' | 'retrying' | 'stopped' = 'connecting';
  stopReason = '';
  segments = 0;
  badSegments = 0;
  bytes = 0;
  frames = 0;
  lastError = '';
  readonly done: Promise<void>;

  private readonly ac = new AbortController();
  private pub: Publisher | null = null;
  private video: Track | null = null;
  private audio: Track | null = null;
  private lastMsn = -1;
  private init: { uri: string; tracks: Mp4InTrack[] } | null = null;
  private readonly mp4Next = new Map<number, number>();
  /** TS timestamps: the last raw 90 kHz dts and the wrap offset, across segments. */
  private tsLast = -1;
  private tsWrap = 0;
  /** Frames waiting for their time, and the pacing anchor (wall ms ↔ media s). */
  private queue: OutFrame[] = [];
  private anchorWall = 0;
  private anchorSec = NaN;
  /** Pending sleeps (the fetch loop's and the pacer's): stop() and new frames end them early. */
  private readonly sleepers = new Set<() => void>();

  constructor(
    readonly id: number,
    readonly streamPath: string,
    readonly url: string,
    private readonly ctx: PluginContext<any>,
    private readonly settings: () => PullSettings,
    private readonly log: Logger,
    /** Who asked (global.outbound): API jobs check every URL they fetch (playlists, variants, segments). */
    readonly origin: OutboundOrigin = 'config',
  ) {
    this.done = this.run().catch((err) => {
      this.lastError = (err as Error)?.message ?? String(err);
      this.stopReason ||= this.lastError;
    }).finally(() => {
      this.state = 'stopped';
      this.pub?.close(this.stopReason || 'pull ended');
    });
  }

  get stopped(): boolean { return this.state === 'stopped' || this.ac.signal.aborted; }

  stop(reason: string): void {
    if (this.ac.signal.aborted) return;
    this.stopReason ||= reason;
    this.ac.abort();
    this.wakeAll();
  }

  private wakeAll(): void { for (const fn of [...this.sleepers]) fn(); }

  info(): Record<string, unknown> {
    return {
      id: this.id, streamPath: this.streamPath, url: this.url, state: this.state, startTime: new Date(this.startTime).toISOString(),
      segments: this.segments, badSegments: this.badSegments, bytes: this.bytes, frames: this.frames,
      lastError: this.lastError ? this.shown(this.lastError) : undefined, stopReason: this.stopReason ? this.shown(this.stopReason) : undefined,
    };
  }

  /** API jobs: the remote's answer and the kind of failure stay in the log (docs/security.md). */
  private shown(text: string): string {
    if (this.origin !== 'api' || /^(stopped by API|server shutting down|nobody is watching|stream stopped)/.test(text)) return text;
    return /^gave up/.test(text) ? `gave up: ${SOURCE_UNAVAILABLE}` : SOURCE_UNAVAILABLE;
  }

  /** One GET, checked against global.outbound first for API jobs (no redirects followed for them). */
  private async get(url: string, limit: number, timeoutMs: number): Promise<Uint8Array> {
    const api = this.origin === 'api';
    if (api) await this.ctx.outbound.checkUrl(url, 'api');
    return fetchBytes(url, limit, timeoutMs, this.ac.signal, api ? 'error' : 'follow');
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise<void>((r) => {
      const done = () => { clearTimeout(t); this.sleepers.delete(done); r(); };
      const t = setTimeout(done, ms);
      this.sleepers.add(done);
    });
  }

  private async run(): Promise<void> {
    let url = this.url;
    let failures = 0;
    const pacer = this.pace();
    try {
      while (!this.stopped) {
        const s = this.settings();
        let pl: Playlist;
        try {
          const bytes = await this.get(url, s.maxplaylistsize, s.timeout);
          pl = parsePlaylist(new TextDecoder().decode(bytes), url);
          if (pl.master) {
            // Take the highest-bandwidth variant: one stream per pull.
            const best = [...pl.variants].sort((a, b) => b.bandwidth - a.bandwidth)[0]!;
            url = best.uri;
            continue;
          }
        } catch (err) {
          if (this.stopped) break;
          failures++;
          this.lastError = (err as Error)?.message ?? String(err);
          this.state = 'retrying';
          this.log.warn('hls pull: playlist failed', { stream: this.streamPath, url, error: this.lastError, failures });
          if (this.origin === 'api' && (failures > this.ctx.outbound.retryCap('api', 0, () => true) || (err as { code?: string }).code === 'Forbidden')) {
            this.stop(`gave up after ${failures - 1} retries`);
            break;
          }
          await this.sleep(Math.min(s.retrymax, 500 * 2 ** Math.min(failures, 10)));
          continue;
        }
        failures = 0;
        const fresh = pl.segments.filter((x) => x.msn > this.lastMsn);
        // First time on a live playlist: start near the live edge (the last two segments).
        const start = this.lastMsn < 0 && !pl.endList ? Math.max(0, fresh.length - 2) : 0;
        if (this.lastMsn >= 0 && pl.segments.length && pl.segments[pl.segments.length - 1]!.msn < this.lastMsn - 1000) this.lastMsn = -1; // source restarted
        for (const seg of fresh.slice(start)) {
          if (this.stopped) break;
          await this.segment(seg, s);
          this.lastMsn = seg.msn;
          // Don't fetch far ahead of what is being played.
          while (!this.stopped && this.queuedSec() > Math.max(4, 2 * pl.targetDuration)) await this.sleep(100);
        }
        if (pl.endList && fresh.length === 0) {
          while (!this.stopped && this.queue.length) await this.sleep(100);
          this.stopReason ||= 'playlist ended';
          break;
        }
        await this.sleep(Math.max(300, (fresh.length ? pl.targetDuration : pl.targetDuration / 2) * 1000 / 2));
      }
    } finally {
      this.stop(this.stopReason || 'stopped');
      await pacer;
    }
  }

  private queuedSec(): number {
    const q = this.queue;
    return q.length ? q[q.length - 1]!.sec - q[0]!.sec : 0;
  }

  /** Fetch and demux one segment into the queue. */
  private async segment(seg: PlaylistSegment, s: PullSettings): Promise<void> {
    let bytes: Uint8Array;
    try {
      if (seg.map && this.init?.uri !== seg.map) {
        const init = await this.get(seg.map, s.maxsegmentsize, s.timeout);
        this.init = { uri: seg.map, tracks: parseInit(init) };
        if (!this.init.tracks.length) throw new Error('init segment has no track we can carry');
      }
      bytes = await this.get(seg.uri, s.maxsegmentsize, s.timeout);
    } catch (err) {
      if (this.stopped) return;
      this.badSegments++;
      this.lastError = (err as Error)?.message ?? String(err);
      this.log.warn('hls pull: segment failed', { stream: this.streamPath, url: seg.uri, error: this.lastError });
      return;
    }
    this.bytes += bytes.length;
    const out: OutFrame[] = [];
    try {
      if (seg.map && this.init) this.demuxMp4(bytes, out);
      else this.demuxTs(bytes, out);
    } catch (err) {
      this.badSegments++;
      this.lastError = `bad segment ${seg.uri}: ${(err as Error)?.message ?? String(err)}`;
      this.log.warn('hls pull: bad segment', { stream: this.streamPath, error: this.lastError });
      return;
    }
    this.segments++;
    this.state = 'pulling';
    // Interleave the tracks by time (stable: each track keeps its own order).
    out.sort((a, b) => a.sec - b.sec);
    for (const f of out) this.queue.push(f);
    this.wakeAll();
  }

  private async ensurePublisher(): Promise<Publisher> {
    if (this.pub) return this.pub;
    const pub = await this.ctx.publish(this.streamPath, { type: 'pull' });
    pub.onStop = (reason) => this.stop(reason);
    this.pub = pub;
    return pub;
  }

  private demuxTs(bytes: Uint8Array, out: OutFrame[]): void {
    const units: TsAccessUnit[] = [];
    const d = new TsDemuxer((u) => units.push(u));
    d.push(bytes);
    d.end();
    for (const u of units) {
      if (u.config) this.pendingConfig(u.codec === 'aac' ? 'audio' : 'video', u.config);
      const kind = u.codec === 'h264' || u.codec === 'h265' ? 'video' : u.codec === 'aac' ? 'audio' : null;
      if (!kind) continue;
      // Unwrap 33-bit timestamps across segments (each segment has its own demuxer).
      let dts = u.dts % TS_WRAP;
      if (this.tsLast >= 0 && dts + this.tsWrap < this.tsLast - TS_WRAP / 2) this.tsWrap += TS_WRAP;
      dts += this.tsWrap;
      if (kind === 'video') this.tsLast = Math.max(this.tsLast, dts);
      const cts = Math.max(0, u.pts - u.dts);
      const sec = dts / 90000;
      if (kind === 'video') out.push({ kind, sec, dts, cts, key: u.key, data: u.data });
      else {
        const rate = this.configs.audio?.sampleRate ?? 48000;
        out.push({ kind, sec, dts: Math.round(sec * rate), cts: 0, key: true, data: u.data });
      }
    }
  }

  private demuxMp4(bytes: Uint8Array, out: OutFrame[]): void {
    const tracks = this.init!.tracks;
    for (const t of tracks) this.pendingConfig(t.kind, t.config);
    for (const s of parseSegment(bytes, tracks, this.mp4Next)) {
      const t = s.track;
      const sec = s.dts / t.timescale;
      const clock = t.kind === 'video' ? 90000 : (t.config.sampleRate ?? t.timescale);
      out.push({ kind: t.kind, sec, dts: Math.round(sec * clock), cts: Math.round((s.cts / t.timescale) * clock), key: s.key, data: s.data });
    }
  }

  /** Codec configs seen in the input, applied to the tracks when the frames after them are written. */
  private configs: { video?: CodecConfig; audio?: CodecConfig } = {};
  private applied: { video?: CodecConfig; audio?: CodecConfig } = {};
  private pendingConfig(kind: 'video' | 'audio', cfg: CodecConfig): void {
    if (kind === 'video' && cfg.codec === 'h264' && cfg.data && !cfg.width) {
      try {
        const sps = parseAvcC(cfg.data).sps[0];
        if (sps) { const { width, height } = parseH264Sps(sps); cfg = { ...cfg, width, height }; }
      } catch { /* leave the size unknown */ }
    }
    this.configs[kind] = cfg;
  }

  /** Write queued frames when their time comes (real time, by media timestamps). */
  private async pace(): Promise<void> {
    while (!this.stopped) {
      const f = this.queue[0];
      if (!f) { await this.sleep(200); continue; }
      const now = Date.now();
      if (this.anchorSec !== this.anchorSec || f.sec < this.anchorSec || (f.sec - this.anchorSec) * 1000 + this.anchorWall < now - 1000) {
        // Start, a jump back (discontinuity), or far behind: re-anchor here.
        this.anchorSec = f.sec;
        this.anchorWall = now;
      }
      const due = this.anchorWall + (f.sec - this.anchorSec) * 1000;
      if (due > now + 5) { await this.sleep(Math.min(due - now, 1000)); continue; }
      this.queue.shift();
      try {
        await this.write(f);
      } catch (err) {
        this.stopReason ||= (err as Error)?.message ?? String(err);
        this.stop(this.stopReason);
        if (err instanceof EngineError) this.log.warn('hls pull: publish failed', { stream: this.streamPath, error: err.message });
      }
    }
  }

  private async write(f: OutFrame): Promise<void> {
    const cfg = this.configs[f.kind];
    if (!cfg) return;
    const pub = await this.ensurePublisher();
    let t = f.kind === 'video' ? this.video : this.audio;
    if (!t || this.applied[f.kind] !== cfg) {
      this.applied[f.kind] = cfg;
      if (!t) {
        t = pub.addTrack(f.kind, cfg, f.kind === 'audio' ? { clockRate: cfg.sampleRate ?? 48000 } : {});
        if (f.kind === 'video') this.video = t; else this.audio = t;
      } else pub.setConfig(t, cfg);
    }
    pub.write(t, f.dts, f.cts, f.key, f.data);
    this.frames++;
  }
}
