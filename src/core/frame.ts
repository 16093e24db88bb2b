// Frames and tracks: the canonical form every protocol plugin demuxes into and muxes out of.
//
// A Frame is one access unit. Its payload is in the codec's canonical form:
//   H.264 / H.265: 4-byte length-prefixed NAL units (AVCC/HVCC style)
//   AV1: OBUs (low-overhead format), VP9: frames
//   AAC: one raw frame (no ADTS), Opus / G.711 / MP3: one packet
// `dts` and `cts` (= pts - dts) are integers in the track's clock rate (90 kHz video, the sample rate for
// audio, 1000 for data). A frame also carries a lazily filled cache of its packagings (an FLV tag, RTMP
// chunks at a chunk size, RTP packets, ...): the first subscriber of a format builds it, every other
// subscriber of that format reuses the same bytes.

import { codecStringOf } from '../codec/codec-string.ts';

export type TrackKind = 'video' | 'audio' | 'data';

import type { CodecConfig } from '../codec/config.ts';
export type { CodecConfig };

/** `cfg` with its codecs string filled in when the source left it out (MP3, G.711, pulled fMP4, ...). */
function withCodecString(cfg: CodecConfig): CodecConfig {
  if (cfg.codecString) return cfg;
  const s = codecStringOf(cfg.codec, cfg.data);
  return s ? { ...cfg, codecString: s } : cfg;
}


/** Derived tracks (src/core/bridge.ts) take indexes from here, so a publisher's own tracks (0, 1, …) never collide with them. */
export const DERIVED_INDEX_BASE = 100;

let trackIds = 0;

export class Track {
  readonly id = ++trackIds;
  /** Bumps every time `config` is replaced; subscribers resend sequence headers when it changes. */
  configVersion = 0;
  /** Frames and payload bytes written so far. */
  frames = 0;
  bytes = 0;
  /** Keyframes written (video). */
  keyframes = 0;
  /** Last dts written (after timestamp taming), -Infinity before the first frame. */
  lastDts = -Infinity;
  /** Typical frame duration in clock units, learned from dts deltas. */
  frameDuration = 0;
  /** Rates over the last stats window (updated by the stream's 1 s tick). */
  fps = 0;
  bps = 0;
  lastWrite = 0;
  /** Ring position of this track's newest frame (-1 before the first). */
  lastSeq = -1;
  /** The track this one is made from (an audio bridge's transcoded track), null for a publisher's own. */
  derivedFrom: Track | null = null;
  private winFrames = 0;
  private winBytes = 0;
  private winStart = 0;

  constructor(
    readonly kind: TrackKind,
    /** Position among the stream's tracks of the same kind (0 = main). */
    readonly index: number,
    readonly clockRate: number,
    private _config: CodecConfig,
  ) {
    this._config = withCodecString(_config);
  }

  get codec(): string { return this._config.codec; }
  get config(): CodecConfig { return this._config; }

  /** Replace the codec config. Returns true when it actually changed (bytes or codec). */
  setConfig(cfg: CodecConfig): boolean {
    const a = this._config;
    if (a.codec === cfg.codec && sameBytes(a.data, cfg.data) && a.width === cfg.width && a.height === cfg.height &&
        a.sampleRate === cfg.sampleRate && a.channels === cfg.channels) {
      return false;
    }
    this._config = withCodecString(cfg);
    this.configVersion++;
    return true;
  }

  /** @internal stats bookkeeping, called by the stream for each written frame. */
  account(bytes: number, now: number): void {
    this.frames++;
    this.bytes += bytes;
    this.winFrames++;
    this.winBytes += bytes;
    this.lastWrite = now;
  }

  /** @internal recompute fps/bps, called once a second. */
  rollStats(now: number): void {
    const dt = now - this.winStart;
    if (dt > 0 && this.winStart > 0) {
      this.fps = Math.round((this.winFrames * 1000 / dt) * 10) / 10;
      this.bps = Math.round(this.winBytes * 8000 / dt);
    }
    this.winStart = now;
    this.winFrames = 0;
    this.winBytes = 0;
  }

  info(): Record<string, unknown> {
    const c = this._config;
    return {
      id: this.id, kind: this.kind, index: this.index, codec: c.codec, codecString: c.codecString,
      clockRate: this.clockRate, width: c.width, height: c.height, sampleRate: c.sampleRate, channels: c.channels,
      frames: this.frames, keyframes: this.keyframes, bytes: this.bytes, fps: this.fps, bps: this.bps,
      lastDts: Number.isFinite(this.lastDts) ? this.lastDts : null,
      ...(this.derivedFrom ? { derivedFrom: this.derivedFrom.id } : {}),
    };
  }
}

export function sameBytes(a?: Uint8Array, b?: Uint8Array): boolean {
  if (a === b) return true;
  if (!a || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class Frame {
  /** Position in the stream's ring; set when written. */
  seq = -1;
  /** Ring position of the previous frame of the same track (-1 for a track's first frame). A subscriber
   * that sent that frame can use packagings that encode this frame relative to it (RTMP type-1 chunk
   * headers carry the delta, so they are the same for every subscriber). */
  prevSeq = -1;
  /** dts - previous frame's dts in the same track (0 for the first). */
  delta = 0;
  /** The track config in force when this frame was written. */
  readonly config: CodecConfig;
  readonly configVersion: number;
  private cache: Map<string, unknown> | undefined;

  constructor(
    readonly track: Track,
    /** Decode timestamp in track clock units (tamed: monotonic within the stream). */
    readonly dts: number,
    /** Composition offset (pts - dts) in track clock units. */
    readonly cts: number,
    /** A random-access point (IDR/IRAP for video; always true for audio). */
    readonly key: boolean,
    readonly data: Uint8Array,
    /** Wall-clock arrival time in ms (Date.now()). */
    readonly arrival: number,
  ) {
    this.config = track.config;
    this.configVersion = track.configVersion;
  }

  get pts(): number { return this.dts + this.cts; }

  /**
   * The frame packaged for `format` (a key that includes every parameter of the packaging, e.g.
   * "rtmp:4096" for RTMP chunks at chunk size 4096), built once by `build` and shared afterwards.
   */
  pack<T>(format: string, build: (f: Frame) => T): T {
    let c = this.cache;
    if (c === undefined) this.cache = c = new Map();
    let v = c.get(format) as T | undefined;
    if (v === undefined) {
      v = build(this);
      c.set(format, v);
    }
    return v;
  }

  /** Whether a packaging exists already (tests, metrics). */
  hasPack(format: string): boolean { return this.cache?.has(format) ?? false; }
}
