// A Publisher is the single writer of a stream. Protocol plugins get one from engine.publish(), add
// tracks, and write frames. The publisher tames timestamps: the stream's timeline continues
// monotonically across publisher reconnects and across jumps in the source's clock, so subscribers that
// outlive a publisher see no timestamp going back.

import type { PublishConfig } from './config.ts';
import { type CodecConfig, Frame, type Track, type TrackKind } from './frame.ts';
import type { Stream } from './stream.ts';

let pubIds = 0;

/** A source timestamp jump larger than this (forward) is a discontinuity, not a gap. */
const MAX_FORWARD_JUMP_SEC = 10;
/** A backward step larger than this is a discontinuity (a smaller one is clamped). */
const MAX_BACKWARD_SEC = 1;
/** Default minimum time between two keyframe requests forwarded to a source (RTCP PLI/FIR pacing). */
export const KEYFRAME_REQUEST_INTERVAL_MS = 1000;

export interface PublisherInfo {
  id: number;
  protocol: string;
  type: string;
  remote?: string;
  startTime: string;
  paused: boolean;
  args: Record<string, string>;
  /** Keyframe requests from subscribers, and how many were forwarded to the source. */
  keyframeRequests: number;
  keyframeRequestsSent: number;
  /** Source-specific counters a plugin adds (RTP sources: `rtp` per track lost/late/reordered...). */
  [extra: string]: unknown;
}

export class Publisher {
  readonly id = ++pubIds;
  readonly startTime = Date.now();
  closed = false;
  closeReason = '';
  paused = false;
  /** Last time a frame was written (ms), for publishtimeout. */
  lastWrite = Date.now();
  /** Called when the engine ends this publisher (kicked, timeout, API stop): close the connection. */
  onStop: ((reason: string) => void) | null = null;

  /**
   * Set by a plugin whose source can make a keyframe on request (RTCP PLI/FIR to an RTSP/RTP/WebRTC
   * source, a GB28181 IDR request). Called by requestKeyframe(), at most once per
   * `keyframeRequestInterval` ms; `reason` says who asked.
   */
  onKeyframeRequest: ((reason: string) => void) | null = null;
  /** Minimum time between two onKeyframeRequest calls (ms). */
  keyframeRequestInterval = KEYFRAME_REQUEST_INTERVAL_MS;
  /** Keyframe requests received, and how many reached onKeyframeRequest (the rest were rate-limited). */
  keyframeRequests = 0;
  keyframeRequestsSent = 0;
  private lastKeyframeRequest = -Infinity;
  /** Set by a plugin: extra fields for info() (/api/stream/info), e.g. RTP loss counters. */
  extraInfo: (() => Record<string, unknown>) | null = null;

  /**
   * Keep the source's own timestamps when they are ahead of the stream's timeline instead of continuing
   * the timeline right after its end (set before the first frame). A transcode rendition sets it: its
   * ffmpeg keeps the source's timestamps (-copyts), so the rendition shares its source's timeline and
   * HLS can cut every rendition at the same times.
   */
  keepSourceTime = false;
  /** Offset in seconds added to this publisher's source timestamps (NaN until the first frame). */
  private offsetSec = NaN;
  private paceStartWall = 0;
  private paceStartSec = NaN;
  private readonly tracks: Track[] = [];

  constructor(
    readonly stream: Stream,
    readonly config: PublishConfig,
    readonly protocol: string,
    readonly type: string,
    readonly args: Record<string, string>,
    readonly remote?: string,
  ) {}

  /**
   * Declare a track (or update its codec config). Tracks are matched by kind and index, so a publisher that
   * reconnects writes into the same tracks and subscribers carry on.
   */
  addTrack(kind: TrackKind, cfg: CodecConfig, opts: { clockRate?: number; index?: number } = {}): Track {
    const clock = opts.clockRate ?? (kind === 'video' ? 90000 : kind === 'audio' ? (cfg.sampleRate ?? 48000) : 1000);
    const t = this.stream.adoptTrack(kind, opts.index ?? 0, clock, cfg);
    if (!this.tracks.includes(t)) this.tracks.push(t);
    return t;
  }

  /** Replace a track's codec config (new SPS/PPS, new AudioSpecificConfig). */
  setConfig(track: Track, cfg: CodecConfig): void {
    track.setConfig(cfg);
  }

  /**
   * Write one frame. `dts`/`cts` in the track's clock, as the source gives them. Returns the frame, or
   * undefined when it was dropped (pubaudio/pubvideo off, or the publisher is closed).
   */
  write(track: Track, dts: number, cts: number, key: boolean, data: Uint8Array): Frame | undefined {
    if (this.closed) return undefined;
    if (track.kind === 'audio' && !this.config.pubaudio) return undefined;
    if (track.kind === 'video' && !this.config.pubvideo) return undefined;
    const clock = track.clockRate;
    const now = Date.now();
    this.lastWrite = now;
    if (this.offsetSec !== this.offsetSec) {
      // First frame of this publisher: continue where the stream's timeline ended (or start at 0).
      const end = this.stream.timelineEndSec();
      this.offsetSec = this.keepSourceTime && dts / clock >= end ? 0 : end - dts / clock;
    }
    let t = Math.round(dts + this.offsetSec * clock);
    const last = track.lastDts;
    if (last !== -Infinity) {
      const step = t - last;
      if (step > MAX_FORWARD_JUMP_SEC * clock || step < -MAX_BACKWARD_SEC * clock) {
        // Discontinuity in the source: re-base this publisher so the frame lands one frame after the last.
        const target = last + (track.frameDuration || Math.round(clock / (track.kind === 'video' ? 30 : 50)));
        this.offsetSec += (target - t) / clock;
        t = target;
      } else if (step <= 0) {
        t = last + 1; // small reorder/duplicate: keep strictly increasing
      } else {
        // Learn the typical frame duration (smoothed).
        track.frameDuration = track.frameDuration ? Math.round((track.frameDuration * 7 + step) / 8) : step;
      }
    }
    if (t < 0) t = 0;
    track.lastDts = t;
    const f = new Frame(track, t, cts, track.kind !== 'video' || key, data, now);
    this.stream.write(f);
    return f;
  }

  /**
   * For paced sources (files, VOD; `publish.speed` > 0): how many ms to wait before writing a frame with
   * this source dts so that output runs at `speed` × real time. 0 = write now. Rewinds (loops) restart.
   */
  paceDelay(track: Track, dts: number): number {
    const speed = this.config.speed;
    if (!(speed > 0)) return 0;
    const sec = dts / track.clockRate;
    const now = Date.now();
    if (this.paceStartSec !== this.paceStartSec || sec < this.paceStartSec || sec - this.paceStartSec > 86400) {
      this.paceStartSec = sec;
      this.paceStartWall = now;
      return 0;
    }
    const due = this.paceStartWall + ((sec - this.paceStartSec) * 1000) / speed;
    const wait = due - now;
    if (wait < -500) { // fell far behind (slow disk, paused process): restart the clock rather than burst
      this.paceStartSec = sec;
      this.paceStartWall = now;
      return 0;
    }
    return wait > 0 ? Math.min(wait, 1000) : 0;
  }

  /**
   * Ask the source for a keyframe (a subscriber that lost data, a new RTSP/WebRTC viewer). Returns true
   * when onKeyframeRequest was called, false when there is none, the publisher is closed, or an earlier
   * request was forwarded less than keyframeRequestInterval ago.
   */
  requestKeyframe(reason = 'subscriber'): boolean {
    this.keyframeRequests++;
    const fn = this.onKeyframeRequest;
    if (!fn || this.closed) return false;
    const now = Date.now();
    if (now - this.lastKeyframeRequest < this.keyframeRequestInterval) return false;
    this.lastKeyframeRequest = now;
    this.keyframeRequestsSent++;
    try { fn(reason); } catch { /* the plugin's problem; the request is counted as sent */ }
    return true;
  }

  pause(): void { this.paused = true; this.lastWrite = Date.now(); }
  resume(): void { this.paused = false; this.lastWrite = Date.now(); }

  /** The source ended or its connection closed. Subscribers wait `waittimeout` for a new publisher. */
  close(reason = 'publisher closed'): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    this.stream.detachPublisher(this, reason);
  }

  /** @internal The engine ends it (kick, timeout, API): detach and tell the plugin to close its side. */
  stop(reason: string): void {
    if (this.closed) return;
    this.close(reason);
    try { this.onStop?.(reason); } catch { /* plugin's problem */ }
  }

  info(): PublisherInfo {
    return {
      id: this.id, protocol: this.protocol, type: this.type, remote: this.remote,
      startTime: new Date(this.startTime).toISOString(), paused: this.paused, args: this.args,
      keyframeRequests: this.keyframeRequests, keyframeRequestsSent: this.keyframeRequestsSent,
      ...(this.extraInfo ? safeExtra(this.extraInfo) : {}),
    };
  }
}

function safeExtra(fn: () => Record<string, unknown>): Record<string, unknown> {
  try { return fn(); } catch { return {}; }
}
