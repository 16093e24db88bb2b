// From a list of NAL units (an Annex B access unit, or the NAL units one RTP timestamp carried) to the
// engine's canonical video frame: length-prefixed NAL units without access unit delimiters and parameter
// sets, a keyframe flag, and the avcC/hvcC record built from the parameter sets the unit carried.
// Shared by every demuxer that sees raw NAL units (MPEG-TS, RTP, PS) so they agree on one form.

import { FormatError } from '../format/bytes.ts';
import {
  buildAvcC, H264_NAL_AUD, H264_NAL_IDR, H264_NAL_PPS, H264_NAL_SPS, joinAvcc,
} from './h264.ts';
import { buildHvcC, H265_NAL_AUD, H265_NAL_PPS, H265_NAL_SPS, H265_NAL_VPS, isH265Irap } from './h265.ts';

export interface NaluAccessUnit {
  /** Length-prefixed (4-byte) NAL units without AUD and parameter sets; null when nothing else was left. */
  data: Uint8Array | null;
  /** An IDR (H.264) or IRAP (H.265) picture is in the unit. */
  key: boolean;
  /** Parameter sets found in the unit (views into the input). */
  vps: Uint8Array[];
  sps: Uint8Array[];
  pps: Uint8Array[];
}

/** Sort the NAL units of one access unit: parameter sets out, AUDs dropped, the rest length-prefixed. */
export function accessUnitFromNalus(codec: 'h264' | 'h265', nalus: readonly Uint8Array[]): NaluAccessUnit {
  const h265 = codec === 'h265';
  const keep: Uint8Array[] = [];
  const vps: Uint8Array[] = [], sps: Uint8Array[] = [], pps: Uint8Array[] = [];
  let key = false;
  for (const nal of nalus) {
    if (nal.length === 0) continue;
    if (h265) {
      if (nal.length < 2) throw new FormatError('H.265 NAL unit shorter than its 2-byte header');
      const type = (nal[0]! >> 1) & 0x3f;
      if (type === H265_NAL_AUD) continue;
      if (type === H265_NAL_VPS) { vps.push(nal); continue; }
      if (type === H265_NAL_SPS) { sps.push(nal); continue; }
      if (type === H265_NAL_PPS) { pps.push(nal); continue; }
      if (isH265Irap(type)) key = true;
    } else {
      const type = nal[0]! & 0x1f;
      if (type === H264_NAL_AUD) continue;
      if (type === H264_NAL_SPS) { sps.push(nal); continue; }
      if (type === H264_NAL_PPS) { pps.push(nal); continue; }
      if (type === H264_NAL_IDR) key = true;
    }
    keep.push(nal);
  }
  return { data: keep.length ? joinAvcc(keep) : null, key, vps, sps, pps };
}

/**
 * Keeps the latest parameter sets of a video stream (they may arrive in band, out of band or in
 * different units than the pictures) and builds the avcC/hvcC record when a complete set changes.
 */
export class ParameterSetTracker {
  vps?: Uint8Array;
  sps?: Uint8Array;
  pps?: Uint8Array;
  /** The current record (avcC / hvcC), once a complete set was seen. */
  record?: Uint8Array;
  private key = '';

  constructor(readonly codec: 'h264' | 'h265') {}

  /**
   * Take the parameter sets of one unit (the first of each kind is kept). Returns the new record when it
   * differs from the previous one, else undefined. A set that does not parse is a FormatError.
   */
  update(vps: readonly Uint8Array[], sps: readonly Uint8Array[], pps: readonly Uint8Array[]): Uint8Array | undefined {
    if (vps[0]) this.vps = vps[0].slice();
    if (sps[0]) this.sps = sps[0].slice();
    if (pps[0]) this.pps = pps[0].slice();
    if (!this.sps || !this.pps || (this.codec === 'h265' && !this.vps)) return undefined;
    if (!vps.length && !sps.length && !pps.length && this.record) return undefined;
    let rec: Uint8Array;
    try {
      rec = this.codec === 'h265' ? buildHvcC([this.vps!], [this.sps], [this.pps]) : buildAvcC([this.sps], [this.pps]);
    } catch (e) {
      // A set that does not parse is forgotten, so the next good one is not blocked by it.
      this.vps = this.sps = this.pps = undefined;
      throw e;
    }
    let k = '';
    for (let i = 0; i < rec.length; i++) k += String.fromCharCode(rec[i]!);
    if (k === this.key) return undefined;
    this.key = k;
    this.record = rec;
    return rec;
  }
}
