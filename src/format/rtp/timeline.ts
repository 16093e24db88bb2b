// The timeline stage for RTP sources: from 32-bit RTP timestamps with random bases (one per track, each
// in its own clock) to times that start near 0, keep growing past the 32-bit wrap and put audio and video
// on one time axis.
//
// Alignment: before any RTCP sender report, every track's first packet is taken to be at the same wall
// time (time 0). The first SR fixes the session's NTP origin without moving the track it came with; from
// then on each track whose SR has arrived is placed by its NTP<->RTP mapping (a track seen before its first
// SR may jump once, by its true A/V offset, when that SR arrives). Later SRs only move a track when it
// drifted by more than `resyncMs` from the first mapping (a sender that re-based its clock).

import type { CodecConfig } from '../../codec/config.ts';
import { DtsExtractor } from '../../codec/dts.ts';
import { parseAvcC } from '../../codec/h264.ts';
import { parseHvcC } from '../../codec/h265.ts';
import { FormatError } from '../bytes.ts';
import { ntpSeconds } from '../rtcp/index.ts';

/** Extends 32-bit RTP timestamps into a number that keeps growing (or falling) across wraps. */
export class RtpTimestampUnwrapper {
  private last = NaN;

  /** The extended value of `ts` nearest the previous one. */
  unwrap(ts: number): number {
    ts >>>= 0;
    if (Number.isNaN(this.last)) {
      this.last = ts;
      return ts;
    }
    this.last = this.peek(ts);
    return this.last;
  }

  /** Like unwrap without moving the reference (for SR timestamps). */
  peek(ts: number): number {
    if (Number.isNaN(this.last)) return ts >>> 0;
    const d = ((ts >>> 0) - (this.last % 4294967296 + 4294967296) % 4294967296) | 0; // signed 32-bit step
    return this.last + d;
  }
}

interface TrackState {
  clockRate: number;
  unwrap: RtpTimestampUnwrapper;
  /** Added to the extended RTP timestamp to get the output time (undefined before the first packet). */
  offset?: number;
  /** The NTP mapping from this track's first SR. */
  sr?: { ntp: number; ext: number };
}

export interface RtpTimelineOptions {
  /** A later SR moves a track only when it disagrees by more than this [200 ms]. */
  resyncMs?: number;
}

export class RtpTimeline {
  private readonly tracks: TrackState[] = [];
  /** NTP seconds at output time 0 (set by the first SR). */
  private ntpBase?: number;
  private readonly resyncMs: number;
  /** SR re-alignments applied after a track's first SR (sender clock jumps). */
  resyncs = 0;

  constructor(opts: RtpTimelineOptions = {}) {
    this.resyncMs = opts.resyncMs ?? 200;
  }

  /** Register a track; returns its index for `time` and `senderReport`. */
  addTrack(clockRate: number): number {
    if (!(clockRate > 0)) throw new RangeError(`clock rate ${clockRate}`);
    this.tracks.push({ clockRate, unwrap: new RtpTimestampUnwrapper() });
    return this.tracks.length - 1;
  }

  private track(i: number): TrackState {
    const t = this.tracks[i];
    if (!t) throw new RangeError(`no timeline track ${i}`);
    return t;
  }

  /** Output time (in the track's clock) of a packet or frame with this RTP timestamp. */
  time(track: number, rtpTimestamp: number): number {
    const t = this.track(track);
    const ext = t.unwrap.unwrap(rtpTimestamp);
    if (t.offset === undefined) t.offset = this.offsetFromSr(t) ?? -ext;
    return ext + t.offset;
  }

  /** An RTCP sender report for this track: its NTP time and the RTP timestamp of the same instant. */
  senderReport(track: number, ntpSec: number, ntpFrac: number, rtpTimestamp: number): void {
    const t = this.track(track);
    const ntp = ntpSeconds(ntpSec, ntpFrac);
    const ext = t.unwrap.peek(rtpTimestamp);
    const first = !t.sr;
    t.sr = { ntp, ext };
    if (this.ntpBase === undefined) {
      // The first SR keeps its own track where it is: NTP origin = this SR's instant minus its output time.
      if (t.offset === undefined) t.offset = -ext;
      this.ntpBase = ntp - (ext + t.offset) / t.clockRate;
      return;
    }
    const want = this.offsetFromSr(t)!;
    if (t.offset === undefined) { t.offset = want; return; }
    if (first) { t.offset = want; return; }
    if (Math.abs(want - t.offset) > (this.resyncMs / 1000) * t.clockRate) {
      t.offset = want;
      this.resyncs++;
    }
  }

  private offsetFromSr(t: TrackState): number | undefined {
    if (!t.sr || this.ntpBase === undefined) return undefined;
    return Math.round((t.sr.ntp - this.ntpBase) * t.clockRate) - t.sr.ext;
  }
}

/**
 * The whole timeline stage for one track, in front of `Publisher.write`: RTP frame timestamps to `dts`
 * and `cts` (= pts - dts) in the track clock. Video H.264/H.265 gets its dts from the DtsExtractor (fed
 * the parameter sets of each new config); other codecs have dts = pts.
 */
export class RtpFrameClock {
  private readonly track: number;
  private readonly dts?: DtsExtractor;

  constructor(readonly timeline: RtpTimeline, readonly codec: string, readonly clockRate: number) {
    this.track = timeline.addTrack(clockRate);
    if (codec === 'h264' || codec === 'h265') this.dts = new DtsExtractor(codec, clockRate);
  }

  /** Pass an RTCP SR for this track's source on to the timeline. */
  senderReport(ntpSec: number, ntpFrac: number, rtpTimestamp: number): void {
    this.timeline.senderReport(this.track, ntpSec, ntpFrac, rtpTimestamp);
  }

  /** Timestamps for a depacketized frame (call in decode order, i.e. the order frames come out). */
  stamp(frame: { timestamp: number; data: Uint8Array; config?: CodecConfig }): { dts: number; cts: number } {
    const pts = this.timeline.time(this.track, frame.timestamp);
    if (!this.dts) return { dts: pts, cts: 0 };
    if (frame.config?.data) {
      try {
        if (this.codec === 'h264') {
          const a = parseAvcC(frame.config.data);
          if (a.sps[0]) this.dts.setParameterSets(a.sps[0]);
        } else {
          const h = parseHvcC(frame.config.data);
          if (h.sps[0]) this.dts.setParameterSets(h.sps[0], h.pps[0]);
        }
      } catch (e) {
        if (!(e instanceof FormatError)) throw e; // without usable parameter sets, dts = pts
      }
    }
    const dts = this.dts.extract(frame.data, pts);
    return { dts, cts: pts - dts };
  }
}
