// MPEG-TS over RTP (RFC 2250, payload type 33 / "MP2T"): each payload is a whole number of 188-byte TS
// packets. Depacketizing checks that and hands the packets to the TS demuxer, whose access units carry
// their own PES timestamps (the RTP timestamp only orders packets).

import { FormatError } from '../bytes.ts';
import { TS_PACKET_SIZE, TS_SYNC, TsDemuxer, type TsAccessUnit, type TsDemuxerOptions } from '../ts.ts';
import { type RtpPacket, seqDiff } from './packet.ts';

/** The TS packets of one MP2T RTP payload (validated: whole packets, each starting with the sync byte). */
export function mp2tPayload(payload: Uint8Array): Uint8Array {
  if (payload.length === 0 || payload.length % TS_PACKET_SIZE !== 0) {
    throw new FormatError(`MP2T RTP payload of ${payload.length} bytes is not a whole number of TS packets`);
  }
  for (let p = 0; p < payload.length; p += TS_PACKET_SIZE) {
    if (payload[p] !== TS_SYNC) throw new FormatError(`MP2T RTP payload lost TS sync at ${p}`);
  }
  return payload;
}

export class Mp2tDepacketizer {
  readonly stats = { packets: 0, lostPackets: 0, errors: 0 };
  readonly demuxer: TsDemuxer;
  private units: TsAccessUnit[] = [];
  private lastSeq = -1;

  constructor(opts: TsDemuxerOptions = {}) {
    this.demuxer = new TsDemuxer((u) => this.units.push(u), opts);
  }

  /** Access units completed by this packet (video units complete when the next PES starts). */
  push(pkt: RtpPacket): TsAccessUnit[] {
    this.stats.packets++;
    if (this.lastSeq >= 0) {
      const d = seqDiff(this.lastSeq, pkt.sequenceNumber);
      if (d > 1) this.stats.lostPackets += d - 1;
    }
    this.lastSeq = pkt.sequenceNumber;
    try {
      this.demuxer.push(mp2tPayload(pkt.payload));
    } catch (e) {
      if (e instanceof FormatError) this.stats.errors++;
      throw e;
    }
    const out = this.units;
    this.units = [];
    return out;
  }
}
