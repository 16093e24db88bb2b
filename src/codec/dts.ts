// PTS -> DTS for H.264 and H.265 streams with B-frames, for sources that carry only presentation times
// (RTP). After mediacommon's dts_extractor: read each picture's POC from its first slice header (using
// the SPS/PPS), compare it with the POC the picture would have without reordering, and place the decode
// time that many frame durations before the presentation time, minus the stream's reordering depth.
//
//   dts = pts - (pocDiff + reorder) * frameDuration
//
// where pocDiff = (presentation index - decode index) since the last IDR, `reorder` comes from the SPS
// (max_num_reorder_frames / sps_max_num_reorder_pics) or is learned, and frameDuration is learned from
// the pts of pictures after the IDR (or the SPS timing, to begin with). The output always rises strictly
// and never exceeds the pts: when a guess was wrong the dts is nudged by one tick.

import { BitReader, FormatError } from '../format/bytes.ts';
import { forEachNalu, parseH264Sps, unescapeRbsp, type H264Sps } from './h264.ts';
import { parseH265Sps, type H265Sps } from './h265.ts';

interface SliceInfo {
  idr: boolean;
  /** pic_order_cnt_lsb, or -1 when the stream has no reordering information (POC type 2). */
  pocLsb: number;
}

/** H.265 PPS fields the slice header layout depends on. */
interface H265PpsInfo { dependentSlices: boolean; outputFlag: boolean; extraBits: number }

function parseH265PpsInfo(nal: Uint8Array): H265PpsInfo {
  const br = new BitReader(unescapeRbsp(nal), 2);
  br.ueMax(63, 'pps_pic_parameter_set_id');
  br.ueMax(15, 'pps_seq_parameter_set_id');
  return { dependentSlices: br.bool(), outputFlag: br.bool(), extraBits: br.bits(3) };
}

export class DtsExtractor {
  private h264Sps?: H264Sps;
  private h265Sps?: H265Sps;
  private h265Pps?: H265PpsInfo;
  private reorder = 0;
  /** The reorder depth came from the SPS (do not grow it from positive POC jumps). */
  private reorderKnown = false;
  private frameDuration = 0;
  private prevDts = -Infinity;
  private ptsIdr = 0;
  private pocBase = 0;
  private decodeIndex = 0;
  private started = false;
  /** H.264 encoders step the POC by 2 per frame (x264) or by 1. */
  private pocStep: number;
  /** Frames whose dts had to be nudged to stay strictly rising / not above the pts. */
  corrections = 0;

  constructor(readonly codec: 'h264' | 'h265', readonly clockRate = 90000) {
    this.pocStep = codec === 'h264' ? 2 : 1;
  }

  /** Set the parameter sets (SPS, and for H.265 the PPS) the slices refer to. */
  setParameterSets(sps: Uint8Array, pps?: Uint8Array): void {
    if (this.codec === 'h264') {
      const s = parseH264Sps(sps);
      this.h264Sps = s;
      this.applyReorder(s.maxNumReorderFrames, s.fps ? this.clockRate / s.fps : 0);
    } else {
      const s = parseH265Sps(sps);
      this.h265Sps = s;
      if (pps) this.h265Pps = parseH265PpsInfo(pps);
      this.applyReorder(s.log2MaxPocLsb ? s.maxNumReorderPics : undefined, 0);
    }
  }

  private applyReorder(n: number | undefined, duration: number): void {
    if (n !== undefined) {
      this.reorder = Math.max(this.reorder, n);
      this.reorderKnown = true;
    }
    if (duration > 0 && !this.frameDuration) this.frameDuration = duration;
  }

  /**
   * The dts of a canonical access unit (4-byte length-prefixed NAL units) with this pts. Without
   * parameter sets or a slice, the dts is the pts (kept strictly rising).
   */
  extract(au: Uint8Array, pts: number): number {
    let info: SliceInfo | undefined;
    try {
      info = this.slice(au);
    } catch (e) {
      if (!(e instanceof FormatError)) throw e;
    }
    let dts = pts;
    if (info && info.pocLsb >= 0) dts = this.fromPoc(info, pts);
    dts = Math.round(dts);
    if (dts > pts) { dts = pts; this.corrections++; }
    if (dts <= this.prevDts) { dts = this.prevDts + 1; this.corrections++; }
    this.prevDts = dts;
    return dts;
  }

  private fromPoc(info: SliceInfo, pts: number): number {
    const maxPoc = 2 ** (this.codec === 'h264' ? this.h264Sps!.log2MaxPocLsb : this.h265Sps!.log2MaxPocLsb);
    if (info.idr || !this.started) {
      this.started = true;
      this.decodeIndex = 0;
      this.pocBase = info.pocLsb;
      this.ptsIdr = pts;
      return this.frameDuration ? pts - this.reorder * this.frameDuration : pts;
    }
    this.decodeIndex++;
    if (this.pocStep === 2 && ((info.pocLsb - this.pocBase) & 1)) this.pocStep = 1;
    const expected = (this.pocBase + this.decodeIndex * this.pocStep) % maxPoc;
    let d = (info.pocLsb - expected) % maxPoc;
    if (d >= maxPoc / 2) d -= maxPoc;
    else if (d < -maxPoc / 2) d += maxPoc;
    const pocDiff = Math.trunc(d / this.pocStep);
    const presentIndex = this.decodeIndex + pocDiff;
    if (presentIndex > 0 && pts > this.ptsIdr) this.frameDuration = (pts - this.ptsIdr) / presentIndex;
    if (pocDiff < 0 && -pocDiff > this.reorder) this.reorder = -pocDiff;
    if (pocDiff > 0 && !this.reorderKnown && pocDiff > this.reorder) this.reorder = pocDiff;
    if (!this.frameDuration) return pts;
    return pts - (pocDiff + this.reorder) * this.frameDuration;
  }

  /** IDR flag and POC lsb of the first slice in the unit, or undefined when there is none / no SPS. */
  private slice(au: Uint8Array): SliceInfo | undefined {
    let out: SliceInfo | undefined;
    forEachNalu(au, 4, (s, e) => {
      const nal = au.subarray(s, e);
      if (this.codec === 'h264') {
        const type = nal[0]! & 0x1f;
        if (type >= 1 && type <= 5) { out = this.h264Slice(nal, type === 5); return true; }
      } else {
        const type = (nal[0]! >> 1) & 0x3f;
        if (type <= 31) { out = this.h265Slice(nal, type); return true; }
      }
      return false;
    });
    return out;
  }

  private h264Slice(nal: Uint8Array, idr: boolean): SliceInfo | undefined {
    const sps = this.h264Sps;
    if (!sps) return undefined;
    if (sps.pocType !== 0) return { idr, pocLsb: -1 }; // type 2: no reordering; type 1: not followed
    const br = new BitReader(unescapeRbsp(nal.subarray(0, 64)), 1);
    br.ue(); // first_mb_in_slice
    br.ue(); // slice_type
    br.ue(); // pic_parameter_set_id
    if (sps.separateColourPlane) br.skip(2);
    br.skip(sps.log2MaxFrameNum); // frame_num
    if (sps.interlaced && br.bool()) return { idr, pocLsb: -1 }; // field pictures: not followed
    if (idr) br.ue(); // idr_pic_id
    return { idr, pocLsb: br.bits(sps.log2MaxPocLsb) };
  }

  private h265Slice(nal: Uint8Array, type: number): SliceInfo | undefined {
    const sps = this.h265Sps;
    const pps = this.h265Pps;
    if (!sps || !pps || !sps.log2MaxPocLsb) return undefined;
    const idr = type === 19 || type === 20;
    if (idr) return { idr, pocLsb: 0 };
    const br = new BitReader(unescapeRbsp(nal.subarray(0, 64)), 2);
    if (!br.bool()) return undefined; // not the first slice segment of the picture
    if (type >= 16 && type <= 23) br.skip(1); // no_output_of_prior_pics_flag
    br.ue(); // slice_pic_parameter_set_id
    br.skip(pps.extraBits); // slice_reserved_flag[]
    br.ue(); // slice_type
    if (pps.outputFlag) br.skip(1); // pic_output_flag
    if (sps.separateColourPlane) br.skip(2);
    return { idr, pocLsb: br.bits(sps.log2MaxPocLsb) };
  }
}
