// What every depacketizer shares: the frame it emits, loss detection from sequence numbers, bounded
// frame sizes, and a reset of partial state when a packet is malformed.

import type { CodecConfig } from '../../codec/config.ts';
import { FormatError } from '../bytes.ts';
import { type RtpPacket, seqDiff } from './packet.ts';

/** One access unit in the engine's canonical form, stamped with the RTP timestamp of its packets. */
export interface RtpFrame {
  /** 32-bit RTP timestamp (feed it to the timeline for a continuous dts/pts). */
  timestamp: number;
  data: Uint8Array;
  key: boolean;
  /** Codec configuration, on the first frame and whenever it changes. */
  config?: CodecConfig;
}

export interface DepacketizerStats {
  packets: number;
  frames: number;
  /** Sequence numbers missing between packets handed in (after any reorder buffer). */
  lostPackets: number;
  /** Partial frames or fragments thrown away because a packet of them was lost or malformed. */
  droppedFrames: number;
  /** Packets that did not parse (FormatError). */
  errors: number;
}

export interface DepacketizerOptions {
  /** Largest access unit accepted, in bytes [8 MiB]. */
  maxFrameSize?: number;
}

export const DEFAULT_MAX_FRAME = 8 << 20;

export abstract class Depacketizer {
  readonly stats: DepacketizerStats = { packets: 0, frames: 0, lostPackets: 0, droppedFrames: 0, errors: 0 };
  protected readonly maxFrameSize: number;
  private lastSeq = -1;

  constructor(opts: DepacketizerOptions = {}) {
    this.maxFrameSize = opts.maxFrameSize ?? DEFAULT_MAX_FRAME;
  }

  /**
   * Hand in the next packet (in sequence order; a gap is taken as loss). Returns the frames completed by
   * it. A malformed packet throws FormatError after dropping any partial frame, so the next good packet
   * starts clean.
   */
  push(pkt: RtpPacket): RtpFrame[] {
    this.stats.packets++;
    if (this.lastSeq >= 0) {
      const d = seqDiff(this.lastSeq, pkt.sequenceNumber);
      if (d !== 1) {
        if (d > 1) this.stats.lostPackets += d - 1;
        this.discontinuity();
      }
    }
    this.lastSeq = pkt.sequenceNumber;
    const out: RtpFrame[] = [];
    try {
      this.handle(pkt, out);
    } catch (e) {
      if (e instanceof FormatError) {
        this.stats.errors++;
        this.discontinuity();
      }
      throw e;
    }
    this.stats.frames += out.length;
    return out;
  }

  /** Forget any partial frame (counted as dropped when there was one). */
  protected abstract discontinuity(): void;
  protected abstract handle(pkt: RtpPacket, out: RtpFrame[]): void;

  protected checkSize(n: number): void {
    if (n > this.maxFrameSize) throw new FormatError(`RTP frame of ${n}+ bytes exceeds the ${this.maxFrameSize}-byte limit`);
  }
}

/** Largest RTP packet a packetizer builds, header included [1400: fits a 1500-byte MTU with IP/UDP and a TCP interleave]. */
export const DEFAULT_RTP_MTU = 1400;
