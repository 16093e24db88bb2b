// The HLS segmenter: a SubscriberSink that cuts one stream into media segments held in memory, and
// renders the playlists that list them. One segmenter per (stream, segment type) serves every player of
// that stream: the bytes are built once, when the frames arrive, and handed out as they are.
//
// MPEG-TS segments ('ts'): a PAT/PMT at the start of each segment, then one PES per video frame and one
// PES per small group of audio frames (a PES per 23 ms AAC frame would spend half the bytes on headers).
//
// fMP4 segments ('fmp4', CMAF): each segment is a run of partial segments ("parts", ~`part` ms, one
// moof+mdat each, carrying every track); the segment's bytes are its parts back to back. The same
// segmenter feeds `/hls/{path}.m3u8?fmp4` (whole segments) and `/llhls/{path}/index.m3u8` (parts too).
//
// Segments start at a keyframe of the video track once the current one has lasted `fragment` ms (an
// audio-only stream cuts at any audio frame). A publisher change or a codec change starts a new segment
// with EXT-X-DISCONTINUITY at the next keyframe.

import { type CodecConfig, type Frame, sameBytes, type Track } from '../../src/plugin.ts';
import type { Subscriber, SubscriberSink } from '../../src/plugin.ts';
import { TsMuxer } from '../../src/format/ts.ts';
import { defaultFrameDuration, type Fmp4Frame, type Fmp4Track, fragment, initSegment, trackFragment } from '../../src/format/fmp4.ts';

export type SegmentKind = 'ts' | 'fmp4';

/** See Segmenter.align. */
const ALIGN_SHIFT_SEC = 0.25;

export interface SegmenterSettings {
  /** Target segment duration (ms). */
  fragment: number;
  /** Segments listed in the playlist. */
  window: number;
  /** Segments still served after they leave the playlist (players that lag). */
  extra: number;
  /** Target part duration (ms), fMP4 only. */
  part: number;
}

export interface Part {
  /** Index within its segment (0-based). */
  index: number;
  /** Seconds. */
  duration: number;
  /** Starts with a keyframe (or is audio-only). */
  independent: boolean;
  chunks: Uint8Array[];
  bytes: number;
}

export interface Segment {
  /** Media sequence number. */
  msn: number;
  /** Media time of the first frame (seconds, the segmenter's timeline). */
  start: number;
  /** Seconds; set when the segment is complete. */
  duration: number;
  /** Wall-clock time of the first frame (ms since the epoch), for EXT-X-PROGRAM-DATE-TIME. */
  programDate: number;
  discontinuity: boolean;
  /** Discontinuities before this segment (EXT-X-DISCONTINUITY-SEQUENCE of a playlist starting here). */
  discSeq: number;
  /** fMP4: which init segment this segment needs. */
  initVersion: number;
  /** TS: the packets; fMP4: every part's chunks, in order. */
  chunks: Uint8Array[];
  parts: Part[];
  bytes: number;
  complete: boolean;
  /** The whole segment in one buffer, built on the first request after it completed. */
  body?: Uint8Array;
}

/** Audio frames grouped into one TS PES: up to this many, or until a video frame comes. */
const TS_AUDIO_GROUP = 5;
/** Video codecs and audio codecs each container carries here. */
export const TS_VIDEO = new Set(['h264', 'h265']);
export const TS_AUDIO = new Set(['aac', 'mp3', 'opus']);
export const MP4_VIDEO = new Set(['h264', 'h265']);
export const MP4_AUDIO = new Set(['aac', 'mp3', 'opus']);

const VIDEO_ID = 1;
const AUDIO_ID = 2;

interface PendingPart {
  index: number;
  start: number;
  independent: boolean;
  video: Fmp4Frame[];
  audio: Fmp4Frame[];
}

export class Segmenter implements SubscriberSink {
  /** Opus sources (WHIP) get AAC segments through the audio bridge when it runs (plugins/audiobridge). */
  readonly audioCodecs = ['aac', 'mp3'];
  /** Completed segments still held (oldest first), then possibly the one being written. */
  readonly segments: Segment[] = [];
  /** The segment being written (also the last entry of `segments`), null between streams. */
  current: Segment | null = null;
  /** Largest segment duration seen (s), for EXT-X-TARGETDURATION (which must never shrink). */
  maxDuration = 0;
  /** Init segments by version (fMP4). */
  readonly inits = new Map<number, Uint8Array>();
  initVersion = -1;
  /** Set when the stream ended (sink closed). */
  ended = false;
  endReason = '';
  /** Bytes held in segments (for the API and memory tests). */
  bytes = 0;
  /** Called once when the segmenter ends (stream closed, stopped, or failed). */
  onEnd: (() => void) | null = null;

  private videoTrack: Track | null = null;
  private audioTrack: Track | null = null;
  private muxer: TsMuxer | null = null;
  /** Media sequence numbers start at the wall clock in seconds, so a segmenter started again later for
   * the same stream never reuses a segment URL a CDN may still hold (segments are ≥ 1 s apart in time
   * with any fragment ≥ 1 s). */
  private nextMsn = Math.floor(Date.now() / 1000);
  private discCount = 0;
  /** A discontinuity is pending (publisher or codec changed): the next segment gets the tag. */
  private pendingDisc = false;
  /** Configs changed: rebuild the TS muxer / init segment at the next segment. */
  private configDirty = true;
  /** The tracks and configs the current TS muxer / init segment carries. */
  private builtVideo: { track: Track; config: CodecConfig } | null = null;
  private builtAudio: { track: Track; config: CodecConfig } | null = null;
  private publishCount = -1;
  /** Wall clock ↔ media time anchor for PROGRAM-DATE-TIME (re-anchored at each discontinuity). */
  private anchorWall = 0;
  private anchorSec = NaN;
  private audioGroup: { dts: number; frames: Uint8Array[] } | null = null;
  private partNow: PendingPart | null = null;
  private fragSeq = 1;
  private readonly listeners = new Set<() => void>();

  constructor(readonly kind: SegmentKind, readonly settings: SegmenterSettings) {}

  // ------------------------------------------------------------------ SubscriberSink

  begin(sub: Subscriber): void {
    this.publishCount = sub.stream.publishCount;
    this.pickTracks(sub);
  }

  config(track: Track, cfg: CodecConfig, sub: Subscriber): number {
    // A track can appear after begin() (audio announced late); a changed config needs a new muxer/init.
    // The subscriber calls this before each track's first frame too: a config the current muxer / init
    // segment was built with already is no change (no discontinuity, no second identical init).
    this.pickTracks(sub);
    if (track === this.videoTrack || track === this.audioTrack) {
      const built = track === this.videoTrack ? this.builtVideo : this.builtAudio;
      if (!this.configDirty && built && built.track === track && sameConfig(built.config, cfg)) return 0;
      if (this.current) this.pendingDisc = true;
      this.configDirty = true;
    }
    return 0;
  }

  frame(f: Frame, dts: number, sub: Subscriber): number {
    try {
      return this.frameInner(f, dts, sub);
    } catch (err) {
      // Bad codec data must not reach the publisher (this runs inside its write): end this segmenter.
      this.endReason = `segmenter failed: ${(err as Error)?.message ?? String(err)}`;
      this.end();
      queueMicrotask(() => sub.close(this.endReason));
      return 0;
    }
  }

  private frameInner(f: Frame, dts: number, sub: Subscriber): number {
    if (this.ended) return 0;
    const t = f.track;
    const isVideo = t === this.videoTrack;
    if (!isVideo && t !== this.audioTrack) return 0;
    if (sub.stream.publishCount !== this.publishCount) {
      this.publishCount = sub.stream.publishCount;
      if (this.current) this.pendingDisc = true;
    }
    const sec = dts / t.clockRate;
    const drivesCuts = isVideo || !this.videoTrack;
    const cur = this.current;
    if (drivesCuts && (isVideo ? f.key : true)) {
      const due = !cur || this.pendingDisc || this.configDirty || (this.align ? this.crossesGrid(cur.start, sec) : sec - cur.start >= this.settings.fragment / 1000 - 1e-6);
      if (due) this.cut(sec, f.arrival);
    }
    if (!this.current) return 0; // before the first keyframe: nothing to attach to
    if (this.kind === 'ts') this.tsFrame(f, dts, isVideo);
    else this.mp4Frame(f, dts, sec, isVideo, drivesCuts);
    return f.data.length;
  }

  flush(): boolean { return true; }

  /**
   * Aligned cutting (renditions of one source, ABR): cut at the first keyframe past each multiple of
   * `fragment` on the stream's timeline instead of `fragment` after the segment's own start, so
   * segmenters of streams on the same timeline with keyframes at the same times cut at the same frames
   * whenever each started. The grid is shifted by ALIGN_SHIFT_SEC so keyframes at round times (a
   * timeline that starts with a keyframe, a GOP of whole seconds) sit well inside a cell, not on an
   * edge where a millisecond of rounding between renditions would put them on different sides.
   */
  align = false;
  /** Aligned segmenters see the stream's own timeline (not one starting at 0 for this subscriber), the
   * timeline renditions share with their source. */
  get streamTimeline(): boolean { return this.align; }
  private crossesGrid(start: number, sec: number): boolean {
    const f = this.settings.fragment / 1000;
    return Math.floor((sec + ALIGN_SHIFT_SEC) / f) > Math.floor((start + ALIGN_SHIFT_SEC) / f);
  }

  close(reason: string): void {
    if (!this.ended) this.endReason = reason;
    this.end();
  }

  private end(): void {
    this.ended = true;
    this.notify();
    const fn = this.onEnd;
    this.onEnd = null;
    fn?.();
  }

  // ------------------------------------------------------------------ cutting

  private pickTracks(sub: Subscriber): void {
    const vset = this.kind === 'ts' ? TS_VIDEO : MP4_VIDEO;
    const aset = this.kind === 'ts' ? TS_AUDIO : MP4_AUDIO;
    for (const t of sub.tracks()) {
      if (t.kind === 'video' && !this.videoTrack && vset.has(t.codec)) this.videoTrack = t;
      if (t.kind === 'audio' && !this.audioTrack && aset.has(t.codec)) this.audioTrack = t;
    }
    // A track replaced by the stream (new clock rate on reconnect) is picked up again.
    for (const t of sub.stream.tracks) {
      if (t.kind === 'video' && this.videoTrack && t !== this.videoTrack && t.index === this.videoTrack.index && sub.wants(t)) this.videoTrack = t;
      if (t.kind === 'audio' && this.audioTrack && t !== this.audioTrack && t.index === this.audioTrack.index && sub.wants(t)) this.audioTrack = t;
    }
  }

  /** Close the current segment at media time `sec` and open the next one. */
  private cut(sec: number, arrival: number): void {
    const prev = this.current;
    if (prev) {
      if (this.kind === 'ts') this.flushAudio();
      else {
        // A part that would outlast the part target is split (see closePart).
        for (let rest = this.closePart(sec, undefined); rest; rest = this.closePart(sec, undefined)) this.partNow = rest;
      }
      prev.duration = Math.max(0, sec - prev.start);
      prev.complete = true;
      if (prev.duration > this.maxDuration) this.maxDuration = prev.duration;
    }
    const disc = this.pendingDisc && prev !== null;
    if (disc) this.discCount++;
    if (disc || this.anchorSec !== this.anchorSec) {
      this.anchorSec = sec;
      this.anchorWall = arrival;
    }
    this.pendingDisc = false;
    if (this.configDirty) {
      this.configDirty = false;
      this.rebuild();
    }
    const seg: Segment = {
      msn: this.nextMsn++, start: sec, duration: 0,
      programDate: Math.round(this.anchorWall + (sec - this.anchorSec) * 1000),
      // discSeq counts the discontinuities *before* this segment's own tag.
      discontinuity: disc, discSeq: disc ? this.discCount - 1 : this.discCount, initVersion: this.initVersion,
      chunks: [], parts: [], bytes: 0, complete: false,
    };
    this.current = seg;
    this.segments.push(seg);
    if (this.kind === 'ts') this.push(seg, this.muxer!.tables());
    else this.partNow = { index: 0, start: sec, independent: true, video: [], audio: [] };
    this.evict();
    if (prev) this.notify();
  }

  /** New TS muxer / init segment for the current track configs. */
  private rebuild(): void {
    const v = this.videoTrack, a = this.audioTrack;
    this.builtVideo = v ? { track: v, config: v.config } : null;
    this.builtAudio = a && (this.kind !== 'ts' || this.muxerHasAudio()) ? { track: a, config: a.config } : null;
    if (this.kind === 'ts') {
      this.muxer = new TsMuxer({
        video: v ? { config: v.config, clockRate: v.clockRate } : undefined,
        audio: a && this.muxerHasAudio() ? { config: a.config, clockRate: a.clockRate } : undefined,
      });
      return;
    }
    const tracks: Fmp4Track[] = [];
    if (v) tracks.push({ id: VIDEO_ID, kind: 'video', timescale: v.clockRate, config: v.config });
    if (a) tracks.push({ id: AUDIO_ID, kind: 'audio', timescale: a.clockRate, config: a.config });
    this.initVersion++;
    this.inits.set(this.initVersion, initSegment(tracks));
    for (const k of this.inits.keys()) if (k < this.initVersion - 2) this.inits.delete(k);
  }

  private evict(): void {
    const keep = this.settings.window + this.settings.extra + 1; // + the one being written
    while (this.segments.length > keep) {
      const s = this.segments.shift()!;
      this.bytes -= s.bytes;
    }
  }

  private push(seg: Segment, b: Uint8Array): void {
    seg.chunks.push(b);
    seg.bytes += b.length;
    this.bytes += b.length;
  }

  // ------------------------------------------------------------------ TS

  private tsFrame(f: Frame, dts: number, isVideo: boolean): void {
    const seg = this.current!, mux = this.muxer!;
    if (isVideo) {
      this.flushAudio();
      this.push(seg, mux.video(dts, f.cts, f.key, f.data));
      return;
    }
    if (!this.muxerHasAudio()) return;
    const g = this.audioGroup;
    if (g) {
      g.frames.push(f.data);
      if (g.frames.length >= TS_AUDIO_GROUP) this.flushAudio();
    } else {
      this.audioGroup = { dts, frames: [f.data] };
      if (!this.videoTrack) this.flushAudio();
    }
  }

  private muxerHasAudio(): boolean {
    const a = this.audioTrack;
    return !!a && (a.codec !== 'aac' || a.config.data !== undefined);
  }

  private flushAudio(): void {
    const g = this.audioGroup;
    if (!g || !this.current || !this.muxer) return;
    this.audioGroup = null;
    this.push(this.current, this.muxer.audio(g.dts, g.frames));
  }

  // ------------------------------------------------------------------ fMP4

  private mp4Frame(f: Frame, dts: number, sec: number, isVideo: boolean, drivesCuts: boolean): void {
    let p = this.partNow!;
    if (drivesCuts && (p.video.length || p.audio.length)) {
      // Close the part when it has reached the target (within half a frame, so parts stay ≤ the target).
      const fd = f.track.frameDuration > 0 ? f.track.frameDuration / f.track.clockRate : 0;
      if (sec - p.start >= this.settings.part / 1000 - fd / 2 - 1e-6) {
        const rest = this.closePart(sec, isVideo ? dts : undefined);
        p = this.partNow = rest ?? { index: p.index + 1, start: sec, independent: isVideo ? f.key : true, video: [], audio: [] };
      }
    }
    if (p.video.length === 0 && p.audio.length === 0) p.independent = isVideo ? f.key : !this.videoTrack;
    const fr: Fmp4Frame = { dts, cts: f.cts, key: f.key, data: f.data };
    if (isVideo) p.video.push(fr);
    else p.audio.push(fr);
  }

  /**
   * Turn the pending part into a moof+mdat ending at media time `endSec`. A part never lasts longer than
   * the part target (PART-TARGET): when the frame at `endSec` comes late (irregular or jittered
   * timestamps), the part ends at its last frame that keeps it within the target instead, and that frame
   * and the ones after it (of the track that drives the cuts) start a new pending part, which is
   * returned (null when the whole pending part was closed). Only a single frame longer than the target
   * (a gap in the source) makes a longer part.
   */
  private closePart(endSec: number, nextVideoDts: number | undefined): PendingPart | null {
    const p = this.partNow, seg = this.current;
    if (!p || !seg || (p.video.length === 0 && p.audio.length === 0)) return null;
    this.partNow = null;
    const target = this.settings.part / 1000;
    const driver = this.videoTrack ?? this.audioTrack;
    const drive = this.videoTrack ? p.video : p.audio;
    let rest: PendingPart | null = null;
    if (driver && endSec - p.start > target + 1e-6 && drive.length > 1) {
      const clock = driver.clockRate;
      let j = drive.length - 1;
      while (j > 0 && drive[j]!.dts / clock - p.start > target + 1e-6) j--;
      if (j > 0) {
        const tail = drive.splice(j);
        const at = tail[0]!.dts / clock;
        rest = { index: p.index + 1, start: at, independent: this.videoTrack ? tail[0]!.key : true,
          video: this.videoTrack ? tail : [], audio: this.videoTrack ? [] : tail };
        endSec = at;
        if (this.videoTrack) nextVideoDts = tail[0]!.dts;
      }
    }
    const trafs = [];
    const v = this.videoTrack, a = this.audioTrack;
    if (p.video.length && v) {
      const next = nextVideoDts ?? Math.round(endSec * v.clockRate);
      trafs.push(trackFragment(VIDEO_ID, p.video, next, v.frameDuration || defaultFrameDuration(v.config, v.clockRate)));
    }
    if (p.audio.length && a) trafs.push(trackFragment(AUDIO_ID, p.audio, undefined, defaultFrameDuration(a.config, a.clockRate)));
    const chunks = fragment(this.fragSeq++, trafs);
    let bytes = 0;
    for (const c of chunks) bytes += c.length;
    const part: Part = { index: seg.parts.length, duration: Math.max(0, endSec - p.start), independent: p.independent, chunks, bytes };
    seg.parts.push(part);
    for (const c of chunks) seg.chunks.push(c);
    seg.bytes += bytes;
    this.bytes += bytes;
    this.notify();
    return rest;
  }

  // ------------------------------------------------------------------ queries

  /** Wake blocked requests: a part or a segment was completed, or the stream ended. */
  private notify(): void {
    for (const fn of [...this.listeners]) fn();
  }

  /** Resolves true once `ready()` holds, false after `timeoutMs` or when the stream ends. */
  waitFor(ready: () => boolean, timeoutMs: number): Promise<boolean> {
    if (ready()) return Promise.resolve(true);
    if (this.ended) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (v: boolean) => { clearTimeout(timer); this.listeners.delete(check); resolve(v); };
      const check = () => { if (ready()) done(true); else if (this.ended) done(false); };
      const timer = setTimeout(() => done(false), timeoutMs);
      this.listeners.add(check);
    });
  }

  /** Completed segments, oldest first. */
  complete(): Segment[] { return this.segments.filter((s) => s.complete); }

  /** The segments a playlist lists: the last `window` complete ones. */
  listed(): Segment[] {
    const done = this.complete();
    return done.slice(Math.max(0, done.length - this.settings.window));
  }

  segment(msn: number): Segment | undefined {
    const first = this.segments[0];
    if (!first) return undefined;
    return this.segments[msn - first.msn];
  }

  /** Whether part `part` of segment `msn` exists (a complete segment has all its parts). */
  hasPart(msn: number, part: number): boolean {
    const s = this.segment(msn);
    if (s) return s.complete || part < s.parts.length;
    const last = this.segments[this.segments.length - 1];
    return !!last && msn < last.msn;
  }

  /** The complete body of a segment (built once and kept). */
  body(s: Segment): Uint8Array {
    if (s.body) return s.body;
    const out = concat(s.chunks, s.bytes);
    if (s.complete) s.body = out;
    return out;
  }

  /** EXT-X-TARGETDURATION: the configured fragment or the longest segment, rounded up. */
  targetDuration(): number {
    return Math.max(1, Math.ceil(this.settings.fragment / 1000 - 1e-3), Math.round(this.maxDuration + 0.499));
  }

  /**
   * The media playlist. `prefix` goes before every URI (e.g. "x/" for /hls/live/x.m3u8); `ll` adds the
   * LL-HLS tags, the parts of the recent segments and a preload hint.
   */
  playlist(prefix: string, ll: boolean): string {
    const segs = this.listed();
    const fmp4 = this.kind === 'fmp4';
    const td = this.targetDuration();
    const partTarget = this.settings.part / 1000;
    const lines = ['#EXTM3U', `#EXT-X-VERSION:${fmp4 ? (ll ? 9 : 7) : 3}`, `#EXT-X-TARGETDURATION:${td}`];
    if (ll) {
      lines.push(`#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=${fmt(partTarget * 3)}`);
      lines.push(`#EXT-X-PART-INF:PART-TARGET=${fmt(partTarget)}`);
    }
    const first = segs[0] ?? this.current;
    lines.push(`#EXT-X-MEDIA-SEQUENCE:${first ? first.msn : 0}`);
    if (first && first.discSeq > 0) lines.push(`#EXT-X-DISCONTINUITY-SEQUENCE:${first.discSeq}`);
    let init = -1;
    // Parts are listed for segments in the last three target durations (and the one being written).
    let partsFrom = Infinity;
    if (ll) {
      let acc = 0;
      partsFrom = segs.length;
      for (let i = segs.length - 1; i >= 0 && acc < 3 * td; i--) { acc += segs[i]!.duration; partsFrom = i; }
    }
    const all = ll && this.current && !this.current.complete ? [...segs, this.current] : segs;
    for (let i = 0; i < all.length; i++) {
      const s = all[i]!;
      // Also on the first listed segment: the tag goes only when its segment scrolls out, and then
      // EXT-X-DISCONTINUITY-SEQUENCE (the first segment's discSeq) counts it (RFC 8216 6.2.2).
      if (s.discontinuity) lines.push('#EXT-X-DISCONTINUITY');
      if (fmp4 && s.initVersion !== init) {
        init = s.initVersion;
        lines.push(`#EXT-X-MAP:URI="${prefix}init-${init}.mp4"`);
      }
      lines.push(`#EXT-X-PROGRAM-DATE-TIME:${new Date(s.programDate).toISOString()}`);
      if (ll && i >= partsFrom) {
        for (const p of s.parts) {
          lines.push(`#EXT-X-PART:DURATION=${fmt(p.duration)},URI="${prefix}${s.msn}.${p.index}.m4s"${p.independent ? ',INDEPENDENT=YES' : ''}`);
        }
      }
      if (s.complete) lines.push(`#EXTINF:${fmt(s.duration)},`, `${prefix}${s.msn}.${fmp4 ? 'm4s' : 'ts'}`);
    }
    if (ll && this.current && !this.ended) {
      const c = this.current;
      const next = c.complete ? `${c.msn + 1}.0` : `${c.msn}.${c.parts.length}`;
      lines.push(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="${prefix}${next}.m4s"`);
    }
    return lines.join('\n') + '\n';
  }
}

function fmt(sec: number): string { return sec.toFixed(3); }

/** Whether two codec configs describe the same setup (what Track.setConfig counts as no change). */
function sameConfig(a: CodecConfig, b: CodecConfig): boolean {
  return a === b || (a.codec === b.codec && sameBytes(a.data, b.data) && a.width === b.width && a.height === b.height &&
    a.sampleRate === b.sampleRate && a.channels === b.channels);
}

export function concat(chunks: readonly Uint8Array[], total?: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  let n = total ?? 0;
  if (total === undefined) for (const c of chunks) n += c.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const c of chunks) { out.set(c, o); o += c.length; }
  return out;
}
