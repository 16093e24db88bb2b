// A Recorder is a no-skip subscriber that writes its stream to segment files: it cuts a new segment at
// the first video keyframe after `fragment` (or after `maxsize` bytes), writes through one ordered,
// bounded write queue, and reports each segment to the index when it opens and closes.
//
// No-skip: while the queue holds more than `writebuffer` bytes, flush() answers false and the engine
// keeps the frames in the ring (the subscriber is 'blocked'); once the disk has taken them, it resumes.
// Only when the ring itself has to drop what the recorder has not written yet does it lose frames: each
// such skip is counted (framesDropped), logged and reported as the 'behind' callback.
//
// A write error (ENOSPC, EIO, …) ends the recording: the open segment keeps what was written (every
// format here is readable up to its last whole fragment/tag), the error is logged once with the file
// and the reason, and the recorder stops.

import type { CodecConfig, Frame, Track } from '../../src/core/frame.ts';
import type { Subscriber, SubscriberSink } from '../../src/core/subscriber.ts';
import type { Logger } from '../../src/log.ts';
import type { Runtime } from '../../src/net/types.ts';
import { readFragmented, progressiveMp4 } from '../../src/format/mp4-file.ts';
import {
  extensionOf, FlvWriter, FMP4_AUDIO, FMP4_VIDEO, Fmp4Writer, pickTracks, type RecordType, type SegmentWriter, TS_AUDIO,
  TS_VIDEO, TsWriter,
} from './formats.ts';

export interface RecordSettings {
  type: RecordType;
  /** Path template without extension ({streamPath}, {time}, {unix} filled per segment). */
  filepath: string;
  /** Segment length (ms); 0 = one segment for the whole recording. */
  fragment: number;
  /** Segment size limit (bytes); 0 = none. */
  maxsize: number;
  /** Bytes queued for the disk above which the recorder holds frames in the ring. */
  writebuffer: number;
  /** Start this far back in the ring (ms; Infinity = its oldest keyframe). */
  history?: number;
  /** Event recording: stop once the stream's timeline passes this time (s). */
  stopAtSec?: number;
  /** Event recording: the event's name (kept in the index). */
  event?: string;
  /** Continue an existing file of the same name (fmp4, flv); segments are not cut then. */
  append?: boolean;
}

/** Where an appended recording continues: the file's media end (ms) and, for fMP4, its init and next sequence number. */
export interface AppendPoint { path: string; endMs: number; size: number; init?: Uint8Array; seq?: number }

export interface SegmentInfo {
  streamPath: string;
  type: RecordType;
  /** The playable file (an MP4 being recorded is written to `path + '.part'` until it closes). */
  path: string;
  /** Wall-clock start and end (ms since epoch). */
  start: number;
  end: number;
  /** Media duration (ms). */
  duration: number;
  size: number;
  codecs: string[];
  /** HLS: the recording's playlist. */
  playlist?: string;
  /** fMP4: bytes of the init segment (ftyp + moov) at the start of the file. */
  init?: number;
  /** Event recordings: the event's name. */
  event?: string;
}

export interface RecorderHost {
  runtime: Runtime;
  logger: Logger;
  resolvePath(p: string): string;
  segmentOpened(seg: SegmentInfo): void;
  segmentClosed(seg: SegmentInfo): void;
  /** The recorder could not keep up and lost `frames` frames. */
  behind(rec: Recorder, frames: number): void;
  /** The recorder ended (reason; `error` when a write failed). */
  ended(rec: Recorder, reason: string, error?: string): void;
}

let recIds = 0;

const pad = (n: number, w = 2) => String(n).padStart(w, '0');
/** UTC YYYYMMDDhhmmss (Monibuca's layout 20060102150405). */
export function timeName(ms: number): string {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}`;
}

/** The segment path for a template (no extension). */
export function expandPath(template: string, streamPath: string, startMs: number): string {
  return template.replaceAll('{streamPath}', streamPath).replaceAll('{time}', timeName(startMs)).replaceAll('{unix}', String(startMs));
}

function dirname(p: string): string {
  const i = p.lastIndexOf('/');
  return i > 0 ? p.slice(0, i) : i === 0 ? '/' : '.';
}

/** An ordered write queue to one file at a time. */
class WriteQueue {
  queued = 0;
  written = 0;
  private chain: Promise<void> = Promise.resolve();
  failed: Error | null = null;
  constructor(private readonly onDrain: () => void, private readonly onError: (err: Error) => void, private readonly low: number) {}

  run(job: () => Promise<void>, bytes = 0): void {
    this.queued += bytes;
    this.chain = this.chain.then(async () => {
      if (this.failed) return;
      try { await job(); } catch (err) {
        this.failed = err as Error;
        this.onError(err as Error);
        return;
      } finally {
        this.queued -= bytes;
        this.written += bytes;
      }
      if (this.queued <= this.low) this.onDrain();
    });
  }

  idle(): Promise<void> { return this.chain; }
}

export class Recorder implements SubscriberSink {
  readonly id = ++recIds;
  readonly startTime = Date.now();
  sub: Subscriber | null = null;
  state: 'recording' | 'stopped' = 'recording';
  stopReason = '';
  error = '';
  segments = 0;
  bytes = 0;
  /** Times the recorder fell behind the stream and lost frames. */
  behindCount = 0;
  private writer: SegmentWriter | null = null;
  private file: { write(d: Uint8Array): Promise<void>; close(): Promise<void> } | null = null;
  private seg: SegmentInfo | null = null;
  private segStartDts = 0;
  private segFirstDtsMs = NaN;
  private segLastDtsMs = 0;
  private wallBase = 0;
  private readonly queue: WriteQueue;
  private lastDropped = 0;
  private playlist: { path: string; entries: { name: string; dur: number }[] } | null = null;
  private blocked = false;

  get history(): number { return this.settings.history ?? 0; }

  constructor(readonly streamPath: string, readonly settings: RecordSettings, private readonly host: RecorderHost) {
    this.queue = new WriteQueue(() => this.drained(), (err) => this.failed(err), settings.writebuffer / 2);
  }

  info(): Record<string, unknown> {
    return {
      id: this.id, streamPath: this.streamPath, type: this.settings.type, state: this.state, file: this.seg?.path,
      ...(this.settings.event ? { event: this.settings.event, stopAtSec: this.settings.stopAtSec } : {}),
      segments: this.segments, bytes: this.bytes, queued: this.queue.queued, behind: this.behindCount,
      framesDropped: this.sub?.framesDropped ?? 0, startTime: new Date(this.startTime).toISOString(),
      ...(this.stopReason ? { reason: this.stopReason } : {}), ...(this.error ? { error: this.error } : {}),
    };
  }

  // --------------------------------------------------------------------- SubscriberSink

  begin(sub: Subscriber): void {
    this.sub = sub;
    sub.bufferedFn = () => this.queue.queued;
  }

  config(_track: Track, _cfg: CodecConfig): number { return 0; }

  frame(f: Frame, dts: number, sub: Subscriber): number {
    if (this.state !== 'recording') return 0;
    if (sub.framesDropped > this.lastDropped) {
      const n = sub.framesDropped - this.lastDropped;
      this.lastDropped = sub.framesDropped;
      this.behindCount++;
      this.host.behind(this, n);
    }
    const t = f.track;
    if (this.settings.stopAtSec !== undefined && f.dts / t.clockRate >= this.settings.stopAtSec) {
      void this.stop('event recording complete (afterduration)');
      return 0;
    }
    const ms = (dts * 1000) / t.clockRate;
    // Wall-clock time of the recording's start: the first frame's arrival (it may come from the ring's
    // history); every later time is that plus media time.
    if (!this.wallBase) this.wallBase = f.arrival - ms;
    const isVideoKey = t.kind === 'video' && f.key;
    const videoLed = sub.tracks().some((x) => x.kind === 'video');
    const cutPoint = videoLed ? isVideoKey : true;
    if (this.writer && cutPoint && !this.settings.append) {
      const s = this.settings;
      const long = s.fragment > 0 && ms - this.segStartDts >= s.fragment;
      const big = s.maxsize > 0 && this.seg!.size >= s.maxsize;
      // A new codec config needs a new init segment / file header.
      const changed = f.configVersion !== this.cfgVersion.get(t);
      if (long || big || changed) this.closeSegment();
    }
    if (!this.writer) {
      if (videoLed && !isVideoKey) return 0; // a segment starts at a keyframe
      if (!this.openSegment(sub, ms)) return 0;
    }
    if (t.kind !== 'data') this.cfgVersion.set(t, f.configVersion);
    // Each fMP4/MP4/FLV file starts at time 0; TS segments keep the recording's timeline (one HLS playlist).
    let segDts = this.settings.type === 'hls' ? dts : Math.max(0, dts - Math.round((this.segStartDts * t.clockRate) / 1000));
    if (this.appendMs) segDts += Math.round((this.appendMs * t.clockRate) / 1000);
    const parts = this.writer!.frame(f, segDts);
    if (this.segFirstDtsMs !== this.segFirstDtsMs) this.segFirstDtsMs = ms;
    const dur = t.frameDuration > 0 ? t.frameDuration : 0;
    this.segLastDtsMs = Math.max(this.segLastDtsMs, ms + (dur * 1000) / t.clockRate);
    return this.append(parts);
  }
  private readonly cfgVersion = new Map<Track, number>();
  /** Set by the plugin before the recorder subscribes (settings.append with an existing file). */
  appendPoint: AppendPoint | undefined;
  /** Media time (ms) the appended file already holds: added to this recording's timestamps. */
  private appendMs = 0;

  flush(): boolean {
    if (this.queue.queued > this.settings.writebuffer) { this.blocked = true; return false; }
    return true;
  }

  close(reason: string): void { void this.stop(reason); }

  // --------------------------------------------------------------------- segments

  private openSegment(sub: Subscriber, ms: number): boolean {
    const s = this.settings;
    const tracks = sub.tracks();
    const start0 = this.wallBase + ms;
    const target = this.host.resolvePath(expandPath(s.filepath, this.streamPath, start0) + extensionOf(s.type));
    const ap = this.appendPoint && this.appendPoint.path === target ? this.appendPoint : undefined;
    this.appendPoint = undefined;
    const writer = s.type === 'flv' ? new FlvWriter(tracks, !!ap)
      : s.type === 'hls' ? new TsWriter(pickTracks(tracks, TS_VIDEO, TS_AUDIO))
      : new Fmp4Writer(pickTracks(tracks, FMP4_VIDEO, FMP4_AUDIO), ap?.seq ?? 1);
    if (writer.unsupported) {
      void this.stop(`cannot record ${this.streamPath} as ${s.type}: ${writer.unsupported}`, writer.unsupported);
      return false;
    }
    let head = writer.open();
    let path = target;
    let appending = !!ap;
    if (ap && s.type === 'fmp4' && !(ap.init && sameBytes(concat(head, head.reduce((n, b) => n + b.length, 0)), ap.init))) {
      // Other tracks or codec settings than the file has: a file of its own instead.
      this.host.logger.warn(`cannot append to ${target}: its tracks differ from ${this.streamPath}'s; recording to a new file`, { stream: this.streamPath });
      path = target.replace(/(\.[a-z0-9]+)$/, `-${Math.round(start0)}$1`);
      appending = false;
    }
    if (appending && s.type === 'fmp4') head = [];
    this.appendMs = appending ? ap!.endMs + 40 : 0;
    const start = appending ? start0 - ap!.endMs : start0;
    const codecs = tracks.filter((t) => t.kind !== 'data').map((t) => t.codec);
    this.seg = { streamPath: this.streamPath, type: s.type, path, start, end: start, duration: 0, size: 0, codecs, ...(s.event ? { event: s.event } : {}) };
    if (s.type === 'hls') {
      if (!this.playlist) this.playlist = { path: path.replace(/\.ts$/, '.m3u8'), entries: [] };
      this.seg.playlist = this.playlist.path;
    }
    this.writer = writer;
    this.segStartDts = ms;
    this.segFirstDtsMs = NaN;
    this.segLastDtsMs = ms;
    this.segments++;
    const seg = this.seg;
    const filePath = s.type === 'mp4' ? path + '.part' : path;
    const rt = this.host.runtime;
    this.queue.run(async () => {
      await rt.mkdir(dirname(filePath));
      // A new segment never writes into an old file of the same name (append continues one on purpose).
      if (!appending) await rt.remove(filePath);
      this.file = await rt.openWrite(filePath);
    });
    if (s.type === 'fmp4') seg.init = appending ? ap!.init!.length : head.reduce((n, b) => n + b.length, 0);
    if (appending) seg.size = ap!.size;
    this.host.segmentOpened({ ...seg });
    this.append(head);
    return true;
  }

  private append(parts: Uint8Array[]): number {
    if (!parts.length) return 0;
    let n = 0;
    for (const p of parts) n += p.length;
    this.seg!.size += n;
    this.bytes += n;
    // One write per batch: the parts are copied into one buffer (a fragment/tag is never split across writes).
    const buf = parts.length === 1 ? parts[0]! : concat(parts, n);
    this.queue.run(() => this.file!.write(buf), n);
    return n;
  }

  private closeSegment(): void {
    const w = this.writer, seg = this.seg;
    if (!w || !seg) return;
    this.append(w.close());
    this.writer = null;
    this.seg = null;
    // An appended file holds what it had before this recording too.
    const durMs = Math.max(0, this.segLastDtsMs - (this.segFirstDtsMs === this.segFirstDtsMs ? this.segFirstDtsMs : this.segStartDts)) + this.appendMs;
    seg.duration = Math.round(durMs);
    seg.end = seg.start + seg.duration;
    const rt = this.host.runtime;
    const pl = this.playlist;
    this.queue.run(async () => {
      const f = this.file;
      this.file = null;
      await f?.close();
      if (seg.type === 'mp4') seg.size = await finalizeMp4(rt, seg.path);
      if (pl) {
        pl.entries.push({ name: seg.path.slice(seg.path.lastIndexOf('/') + 1), dur: seg.duration / 1000 });
        await rt.writeFile(pl.path, playlistText(pl.entries, this.state !== 'recording'));
      }
      this.host.segmentClosed(seg);
    });
  }

  /** Stop recording: close the open segment and wait for the disk. */
  async stop(reason: string, error?: string): Promise<void> {
    if (this.state === 'stopped') return this.queue.idle();
    if (this.queue.failed) error ??= this.queue.failed.message;
    if (!this.queue.failed) {
      this.state = 'stopped';
      this.closeSegment();
    }
    this.state = 'stopped';
    this.stopReason = reason;
    if (error) this.error = error;
    this.sub?.close(reason);
    await this.queue.idle();
    // The HLS playlist ends (VOD) once the last segment is in.
    if (this.playlist && !this.queue.failed) {
      await this.host.runtime.writeFile(this.playlist.path, playlistText(this.playlist.entries, true)).catch(() => {});
    }
    this.host.ended(this, reason, error);
  }

  private drained(): void {
    if (!this.blocked) return;
    this.blocked = false;
    this.sub?.resume();
  }

  private failed(err: Error): void {
    const code = (err as { code?: string }).code;
    const file = this.seg?.path ?? '';
    const why = code === 'ENOSPC' ? 'disk full (ENOSPC)' : `${code ?? 'write error'}: ${err.message}`;
    this.host.logger.error(`recording of ${this.streamPath} stopped: ${why} writing ${file}`, { stream: this.streamPath, file, error: err });
    this.error = why;
    const f = this.file;
    this.file = null;
    void f?.close().catch(() => {});
    this.writer = null;
    this.seg = null;
    Promise.resolve().then(() => this.stop(`write failed: ${why}`, why));
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function concat(parts: readonly Uint8Array[], n: number): Uint8Array {
  const out = new Uint8Array(n);
  let p = 0;
  for (const x of parts) { out.set(x, p); p += x.length; }
  return out;
}

export function playlistText(entries: { name: string; dur: number }[], ended: boolean): string {
  const target = Math.max(1, ...entries.map((e) => Math.ceil(e.dur)));
  const lines = ['#EXTM3U', '#EXT-X-VERSION:3', `#EXT-X-TARGETDURATION:${target}`, '#EXT-X-MEDIA-SEQUENCE:0',
    `#EXT-X-PLAYLIST-TYPE:${ended ? 'VOD' : 'EVENT'}`];
  for (const e of entries) lines.push(`#EXTINF:${e.dur.toFixed(3)},`, e.name);
  if (ended) lines.push('#EXT-X-ENDLIST');
  return lines.join('\n') + '\n';
}

/**
 * Rewrite `path.part` (fragments) as `path` (a progressive MP4 with the moov in front) and remove the
 * part file. The part file goes only once the MP4 is whole: a crash in between leaves both, and the
 * next start does it again. Returns the MP4's size.
 */
export async function finalizeMp4(rt: Runtime, path: string): Promise<number> {
  const part = await rt.readFile(path + '.part');
  const file = readFragmented(part);
  const { header, mdatSize } = progressiveMp4(file);
  await rt.remove(path);
  const out = await rt.openWrite(path);
  try {
    await out.write(header);
    // Samples in file order, written in runs of adjacent bytes.
    let i = 0;
    const s = file.samples;
    while (i < s.length) {
      let j = i + 1, end = s[i]!.offset + s[i]!.size;
      while (j < s.length && s[j]!.offset === end && end - s[i]!.offset < 4 << 20) { end += s[j]!.size; j++; }
      await out.write(part.subarray(s[i]!.offset, end));
      i = j;
    }
  } finally {
    await out.close();
  }
  await rt.remove(path + '.part');
  return header.length + mdatSize;
}
