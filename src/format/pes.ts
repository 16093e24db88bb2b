// PES (ISO/IEC 13818-1 2.4.3.6) pieces shared by the MPEG-TS (ts.ts) and MPEG-PS (ps.ts) code:
// timestamps, the PES header, and the Annex-B video payload → canonical access unit step.

import { FormatError } from './bytes.ts';
import type { CodecConfig } from '../codec/config.ts';
import { accessUnitFromNalus } from '../codec/access-unit.ts';
import { buildAvcC, splitAnnexB } from '../codec/h264.ts';
import { buildHvcC } from '../codec/h265.ts';

export const PTS_MOD = 2 ** 33;

/** A PES timestamp: 4-bit prefix, then 33 bits in 3 marker-separated pieces. */
export function writePesTs(b: Uint8Array, p: number, prefix: number, v: number): void {
  v = ((v % PTS_MOD) + PTS_MOD) % PTS_MOD;
  const top = Math.floor(v / 2 ** 30) & 7;
  b[p] = (prefix << 4) | (top << 1) | 1;
  const mid = Math.floor(v / 2 ** 15) & 0x7fff;
  b[p + 1] = mid >> 7;
  b[p + 2] = ((mid & 0x7f) << 1) | 1;
  const low = v & 0x7fff;
  b[p + 3] = low >> 7;
  b[p + 4] = ((low & 0x7f) << 1) | 1;
}

export function readPesTs(b: Uint8Array, p: number): number {
  return (
    ((b[p]! >> 1) & 7) * 2 ** 30 +
    ((b[p + 1]! << 7) | (b[p + 2]! >> 1)) * 2 ** 15 +
    ((b[p + 3]! << 7) | (b[p + 4]! >> 1))
  );
}

export interface PesHeader {
  streamId: number;
  /** 6 + PES_packet_length, or 0 when unbounded. */
  size: number;
  pts?: number;
  dts?: number;
  /** Offset of the payload from the packet start. */
  payloadOffset: number;
}

/** Parse an MPEG-2 PES header at `b[0]` (the 00 00 01 start code included). */
export function parsePesHeader(b: Uint8Array): PesHeader {
  if (b.length < 9 || b[0] !== 0 || b[1] !== 0 || b[2] !== 1) throw new FormatError('PES packet without a start code');
  const streamId = b[3]!;
  const len = (b[4]! << 8) | b[5]!;
  if ((b[6]! & 0xc0) !== 0x80) throw new FormatError('PES header is not MPEG-2');
  const flags = b[7]!;
  const hdrLen = b[8]!;
  const payloadOffset = 9 + hdrLen;
  if (payloadOffset > b.length || (len && payloadOffset > 6 + len)) throw new FormatError('PES header overflows the packet');
  const ptsDts = flags >> 6;
  if (ptsDts === 1) throw new FormatError('forbidden PTS_DTS_flags');
  const h: PesHeader = { streamId, size: len ? 6 + len : 0, payloadOffset };
  if (ptsDts >= 2) {
    if (hdrLen < (ptsDts === 3 ? 10 : 5)) throw new FormatError('PES header too short for its timestamps');
    h.pts = readPesTs(b, 9);
    h.dts = ptsDts === 3 ? readPesTs(b, 14) : h.pts;
  }
  return h;
}

/** A PES header (9 bytes + 5 per timestamp) for `payloadLen` bytes; length 0 (unbounded) when too big. */
export function buildPesHeader(streamId: number, payloadLen: number, pts?: number, dts?: number): Uint8Array {
  const withPts = pts !== undefined;
  const withDts = withPts && dts !== undefined && dts !== pts;
  const hdrLen = withDts ? 10 : withPts ? 5 : 0;
  const h = new Uint8Array(9 + hdrLen);
  h[2] = 1;
  h[3] = streamId;
  const len = 3 + hdrLen + payloadLen;
  const field = len > 0xffff ? 0 : len;
  h[4] = field >> 8;
  h[5] = field & 0xff;
  h[6] = 0x80;
  h[7] = withDts ? 0xc0 : withPts ? 0x80 : 0;
  h[8] = hdrLen;
  if (withPts) writePesTs(h, 9, withDts ? 3 : 2, pts!);
  if (withDts) writePesTs(h, 14, 1, dts!);
  return h;
}

/**
 * An Annex-B video payload (one access unit) as a canonical frame: length-prefixed NALUs without
 * parameter sets, the keyframe flag, and an avcC/hvcC record when the parameter sets came with it.
 */
export function annexBVideoUnit(codec: 'h264' | 'h265', payload: Uint8Array): { data: Uint8Array | null; key: boolean; config?: CodecConfig } {
  const { data, key, vps, sps, pps } = accessUnitFromNalus(codec, splitAnnexB(payload));
  let config: CodecConfig | undefined;
  if (sps.length && pps.length && (codec === 'h264' || vps.length)) {
    config = { codec, data: codec === 'h265' ? buildHvcC(vps, sps, pps) : buildAvcC(sps, pps) };
  }
  return { data: data ?? null, key, config };
}
