// One recorded segment file per format: what is written when it opens, for each frame, and when it
// closes. Every writer is append-only while it records, so a crash loses at most what had not reached
// the file yet: fMP4 (and MP4, which records as fMP4 into `.part` and is rewritten with a front moov on
// close) writes one fragment per keyframe or per second, FLV and TS one tag / PES per frame.

import type { CodecConfig, Frame, Track } from '../../src/core/frame.ts';
import { defaultFrameDuration, type Fmp4Track, fragment, initSegment, trackFragment, type Fmp4Frame } from '../../src/format/fmp4.ts';
import { FLV_TAG_SCRIPT, flvHeader, flvTag } from '../../src/format/flv.ts';
import { flvBody, flvCanCarry, flvMetaData, flvSequenceHeader, flvTagType } from '../../src/format/flv-media.ts';
import { TsMuxer } from '../../src/format/ts.ts';

export type RecordType = 'fmp4' | 'mp4' | 'flv' | 'hls';
export const RECORD_TYPES: readonly RecordType[] = ['fmp4', 'mp4', 'flv', 'hls'];

export const FMP4_VIDEO = new Set(['h264', 'h265']);
export const FMP4_AUDIO = new Set(['aac', 'opus', 'mp3']);
export const TS_VIDEO = new Set(['h264', 'h265']);
export const TS_AUDIO = new Set(['aac', 'mp3', 'opus']);

/** The file extension of a segment of this type. */
export function extensionOf(type: RecordType): string {
  return type === 'flv' ? '.flv' : type === 'hls' ? '.ts' : '.mp4';
}

/** Longest time frames wait in an fMP4 writer before they are written as one fragment (ms). */
export const FMP4_FLUSH_MS = 1000;

export interface SegmentWriter {
  /** Bytes that start the file. */
  open(): Uint8Array[];
  /** A frame (dts on the recording's timeline, track clock). Returns bytes to append (may be none yet). */
  frame(f: Frame, dts: number): Uint8Array[];
  /** Bytes that end the file (frames still held). */
  close(): Uint8Array[];
  /** Whether the segment's tracks can be recorded in this format (reason when not). */
  readonly unsupported?: string;
}

export function pickTracks(tracks: Track[], video: Set<string>, audio: Set<string>): { video?: Track; audio?: Track } {
  return {
    video: tracks.find((t) => t.kind === 'video' && video.has(t.codec) && !!t.config.data),
    audio: tracks.find((t) => t.kind === 'audio' && audio.has(t.codec) && (t.codec !== 'aac' || !!t.config.data)),
  };
}

// ------------------------------------------------------------------------------------------- fMP4

export class Fmp4Writer implements SegmentWriter {
  private seq = 1;
  private held = new Map<number, { frames: Fmp4Frame[]; typical: number }>();
  private heldSince = -1;
  private readonly ids = new Map<Track, number>();
  readonly unsupported?: string;

  constructor(private readonly tracks: { video?: Track; audio?: Track }, firstSeq = 1) {
    this.seq = firstSeq;
    if (tracks.video) this.ids.set(tracks.video, 1);
    if (tracks.audio) this.ids.set(tracks.audio, 2);
    if (!this.ids.size) this.unsupported = `no track fMP4 carries (${[...FMP4_VIDEO, ...FMP4_AUDIO].join('/')})`;
  }

  open(): Uint8Array[] {
    const list: Fmp4Track[] = [];
    for (const [t, id] of this.ids) list.push({ id, kind: t.kind as 'video' | 'audio', timescale: t.clockRate, config: t.config });
    return [initSegment(list)];
  }

  frame(f: Frame, dts: number): Uint8Array[] {
    const id = this.ids.get(f.track);
    if (!id) return [];
    const ms = (dts * 1000) / f.track.clockRate;
    // A video keyframe starts a new fragment (each fragment of a segment but the first begins with one);
    // so does a second of held frames.
    let out: Uint8Array[] = [];
    if (this.heldSince >= 0 && ((f.key && f.track.kind === 'video') || ms - this.heldSince >= FMP4_FLUSH_MS)) {
      out = this.flushHeld(f.track, dts);
    }
    let h = this.held.get(id);
    if (!h) this.held.set(id, (h = { frames: [], typical: 0 }));
    h.frames.push({ dts, cts: f.cts, key: f.key, data: f.data });
    h.typical = f.track.frameDuration > 0 ? f.track.frameDuration : defaultFrameDuration(f.config, f.track.clockRate);
    if (this.heldSince < 0) this.heldSince = ms;
    return out;
  }

  private flushHeld(nextTrack?: Track, nextDts?: number): Uint8Array[] {
    const trafs = [];
    for (const [id, h] of [...this.held].sort((a, b) => a[0] - b[0])) {
      if (!h.frames.length) continue;
      const next = nextTrack && this.ids.get(nextTrack) === id ? nextDts : undefined;
      trafs.push(trackFragment(id, h.frames, next, h.typical));
      h.frames = [];
    }
    this.heldSince = -1;
    return trafs.length ? fragment(this.seq++, trafs) : [];
  }

  close(): Uint8Array[] { return this.flushHeld(); }
}

// -------------------------------------------------------------------------------------------- FLV

export class FlvWriter implements SegmentWriter {
  private readonly sent = new Map<Track, CodecConfig>();
  readonly unsupported?: string;
  private readonly list: Track[];

  /** `continues`: the file exists (append): no file header, the sequence headers only. */
  constructor(tracks: Track[], private readonly continues = false) {
    this.list = tracks.filter((t) => flvCanCarry(t));
    if (!this.list.length) this.unsupported = 'no track FLV carries';
  }

  open(): Uint8Array[] {
    const hasA = this.list.some((t) => t.kind === 'audio'), hasV = this.list.some((t) => t.kind === 'video');
    if (this.continues) return [];
    const meta = flvMetaData(this.list);
    return [flvHeader({ audio: hasA, video: hasV }), ...flvTag(FLV_TAG_SCRIPT, 0, [meta])];
  }

  frame(f: Frame, dts: number): Uint8Array[] {
    const t = f.track;
    if (!this.list.includes(t) || (t.kind === 'video' && t.index !== 0) || (t.kind === 'audio' && t.index !== 0)) return [];
    const ms = Math.round((dts * 1000) / t.clockRate);
    const out: Uint8Array[] = [];
    if (this.sent.get(t) !== f.config) {
      this.sent.set(t, f.config);
      const sh = flvSequenceHeader(t, f.config);
      if (sh) out.push(...flvTag(flvTagType(t.kind), ms, sh.parts));
    }
    out.push(...flvTag(flvTagType(t.kind), ms, flvBody(f).parts));
    return out;
  }

  close(): Uint8Array[] { return []; }
}

// --------------------------------------------------------------------------------------------- TS

export class TsWriter implements SegmentWriter {
  private readonly mux: TsMuxer | null;
  readonly unsupported?: string;
  private readonly tracks: { video?: Track; audio?: Track };
  private frames = 0;

  constructor(tracks: { video?: Track; audio?: Track }) {
    this.tracks = tracks;
    if (!tracks.video && !tracks.audio) { this.unsupported = 'no track MPEG-TS carries'; this.mux = null; return; }
    this.mux = new TsMuxer({
      video: tracks.video ? { config: tracks.video.config, clockRate: tracks.video.clockRate } : undefined,
      audio: tracks.audio ? { config: tracks.audio.config, clockRate: tracks.audio.clockRate } : undefined,
    });
  }

  open(): Uint8Array[] { return this.mux ? [this.mux.tables()] : []; }

  frame(f: Frame, dts: number): Uint8Array[] {
    const mux = this.mux;
    if (!mux) return [];
    const t = f.track;
    // 1.4 s offset: players start TS timestamps above 0 (room for B-frames' pts below dts would be needed otherwise).
    const off = Math.round(1.4 * t.clockRate);
    if (t === this.tracks.video) {
      const out = [];
      if (f.key && this.frames++ > 0) out.push(mux.tables());
      out.push(mux.video(dts + off, f.cts, f.key, f.data));
      return out;
    }
    if (t === this.tracks.audio) return [mux.audio(dts + off, f.data)];
    return [];
  }

  close(): Uint8Array[] { return []; }
}
