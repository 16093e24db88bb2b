// Codecs whose RTP payload is one frame as is: Opus (RFC 7587, one packet per RTP packet) and G.711
// PCMA/PCMU (RFC 3551, any number of 8-bit samples per packet).

import type { CodecConfig } from '../../codec/config.ts';
import { FormatError } from '../bytes.ts';
import { DEFAULT_RTP_MTU, Depacketizer, type DepacketizerOptions, type RtpFrame } from './common.ts';
import type { RtpPacket, RtpWriter } from './packet.ts';

export class FrameDepacketizer extends Depacketizer {
  private pendingConfig?: CodecConfig;
  constructor(readonly codec: string, config?: CodecConfig, opts: DepacketizerOptions = {}) {
    super(opts);
    this.pendingConfig = config;
  }

  protected discontinuity(): void {}

  protected handle(pkt: RtpPacket, out: RtpFrame[]): void {
    if (pkt.payload.length === 0) throw new FormatError(`empty ${this.codec} RTP payload`);
    this.checkSize(pkt.payload.length);
    const f: RtpFrame = { timestamp: pkt.timestamp, data: pkt.payload.slice(), key: true };
    if (this.pendingConfig) {
      f.config = this.pendingConfig;
      this.pendingConfig = undefined;
    }
    out.push(f);
  }
}

/** Opus: one packet per RTP packet (the marker bit stays clear: no DTX talk-spurt signalling here). */
export class OpusPacketizer {
  constructor(readonly writer: RtpWriter) {}
  packetize(packet: Uint8Array, timestamp: number): Uint8Array[] {
    return [this.writer.packet(timestamp, false, packet)];
  }
}

/** G.711: frames longer than one packet are split; timestamps advance one per sample byte. */
export class G711Packetizer {
  private readonly maxPayload: number;
  constructor(readonly writer: RtpWriter, opts: { mtu?: number; channels?: number } = {}) {
    const ch = opts.channels ?? 1;
    this.maxPayload = Math.floor(((opts.mtu ?? DEFAULT_RTP_MTU) - 12) / ch) * ch;
    this.channels = ch;
  }
  private readonly channels: number;
  packetize(frame: Uint8Array, timestamp: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let p = 0; p < frame.length; p += this.maxPayload) {
      const end = Math.min(frame.length, p + this.maxPayload);
      out.push(this.writer.packet(timestamp + p / this.channels, false, frame.subarray(p, end)));
    }
    return out;
  }
}
