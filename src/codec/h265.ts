// H.265 / HEVC: NAL unit types, the HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1), a
// sequence parameter set parser (ITU-T H.265 7.3.2.2) for picture size and profile/tier/level, and the
// RFC 6381 / ISO 14496-15 Annex E codec string. Framing (Annex B <-> length-prefixed) is shared with
// H.264: see splitAnnexB, annexBToAvcc, splitAvcc in h264.ts.

import { BitReader, FormatError } from '../format/bytes.ts';
import { forEachNalu, unescapeRbsp } from './h264.ts';

export const H265_NAL_TRAIL_N = 0;
export const H265_NAL_TRAIL_R = 1;
export const H265_NAL_BLA_W_LP = 16;
export const H265_NAL_BLA_W_RADL = 17;
export const H265_NAL_BLA_N_LP = 18;
export const H265_NAL_IDR_W_RADL = 19;
export const H265_NAL_IDR_N_LP = 20;
export const H265_NAL_CRA = 21;
export const H265_NAL_VPS = 32;
export const H265_NAL_SPS = 33;
export const H265_NAL_PPS = 34;
export const H265_NAL_AUD = 35;
export const H265_NAL_EOS = 36;
export const H265_NAL_EOB = 37;
export const H265_NAL_FD = 38;
export const H265_NAL_SEI_PREFIX = 39;
export const H265_NAL_SEI_SUFFIX = 40;

/** nal_unit_type of a NAL unit (bits 1..6 of its first byte). */
export function h265NalType(nal: Uint8Array): number {
  if (nal.length === 0) throw new FormatError('empty H.265 NAL unit');
  return (nal[0]! >> 1) & 0x3f;
}

/** IRAP pictures (BLA, IDR, CRA: types 16..21) are random access points, i.e. keyframes. */
export function isH265Irap(nalType: number): boolean {
  return nalType >= H265_NAL_BLA_W_LP && nalType <= H265_NAL_CRA;
}

/** True if the length-prefixed access unit contains an IRAP picture. Malformed lengths are a FormatError. */
export function isKeyframeHvcc(bytes: Uint8Array, lengthSize = 4): boolean {
  let key = false;
  forEachNalu(bytes, lengthSize, (s) => {
    const t = (bytes[s]! >> 1) & 0x3f;
    return (key = t >= H265_NAL_BLA_W_LP && t <= H265_NAL_CRA);
  });
  return key;
}

// ---------------------------------------------------------------------------------------------------
// Profile, tier and level

/** The general profile_tier_level fields shared by the SPS and the hvcC record. */
export interface HevcPtl {
  profileSpace: number;
  /** 0 Main tier, 1 High tier. */
  tier: number;
  profile: number;
  /** general_profile_compatibility_flags as a 32-bit number (flag 0 is the most significant bit). */
  compat: number;
  /** general_constraint_indicator_flags: 6 bytes (progressive/interlaced/... flags first). */
  constraint: Uint8Array;
  /** general_level_idc (30 x level, e.g. 93 = level 3.1, 120 = level 4). */
  level: number;
}

function reverseBits32(v: number): number {
  let r = 0;
  for (let i = 0; i < 32; i++) {
    r = (r << 1) | (v & 1);
    v >>>= 1;
  }
  return r >>> 0;
}

/** Codec string 'hvc1.P.C.TL.CC...' (ISO/IEC 14496-15 Annex E), e.g. 'hvc1.1.6.L93.B0'. */
export function h265CodecString(ptl: HevcPtl, sampleEntry: 'hvc1' | 'hev1' = 'hvc1'): string {
  const space = ['', 'A', 'B', 'C'][ptl.profileSpace & 3]!;
  let s = `${sampleEntry}.${space}${ptl.profile}.${reverseBits32(ptl.compat).toString(16).toUpperCase()}.${ptl.tier ? 'H' : 'L'}${ptl.level}`;
  let last = ptl.constraint.length;
  while (last > 0 && ptl.constraint[last - 1] === 0) last--;
  for (let i = 0; i < last; i++) s += '.' + ptl.constraint[i]!.toString(16).toUpperCase();
  return s;
}

// ---------------------------------------------------------------------------------------------------
// HEVCDecoderConfigurationRecord

export interface HevcNalArray {
  type: number;
  /** array_completeness: all parameter sets of this type are in the record (none in-band). */
  complete: boolean;
  nalus: Uint8Array[];
}

export interface HevcConfig extends HevcPtl {
  minSpatialSegmentation: number;
  parallelismType: number;
  chromaFormat: number;
  bitDepthLuma: number;
  bitDepthChroma: number;
  avgFrameRate: number;
  constantFrameRate: number;
  numTemporalLayers: number;
  temporalIdNested: boolean;
  /** NAL length size in bytes: 1, 2 or 4. */
  lengthSize: number;
  arrays: HevcNalArray[];
  vps: Uint8Array[];
  sps: Uint8Array[];
  pps: Uint8Array[];
}

/** Parse an HEVCDecoderConfigurationRecord ('hvcC' / the E-RTMP hvc1 sequence start). NAL units are views. */
export function parseHvcC(rec: Uint8Array): HevcConfig {
  const n = rec.length;
  if (n < 23) throw new FormatError(`hvcC of ${n} bytes is shorter than 23`);
  if (rec[0] !== 1) throw new FormatError(`hvcC configurationVersion ${rec[0]} (expected 1)`);
  const lengthSize = (rec[21]! & 3) + 1;
  if (lengthSize === 3) throw new FormatError('hvcC lengthSizeMinusOne = 2 is not allowed');
  const cfg: HevcConfig = {
    profileSpace: rec[1]! >> 6,
    tier: (rec[1]! >> 5) & 1,
    profile: rec[1]! & 0x1f,
    compat: ((rec[2]! << 24) | (rec[3]! << 16) | (rec[4]! << 8) | rec[5]!) >>> 0,
    constraint: rec.subarray(6, 12),
    level: rec[12]!,
    minSpatialSegmentation: ((rec[13]! & 0x0f) << 8) | rec[14]!,
    parallelismType: rec[15]! & 3,
    chromaFormat: rec[16]! & 3,
    bitDepthLuma: (rec[17]! & 7) + 8,
    bitDepthChroma: (rec[18]! & 7) + 8,
    avgFrameRate: (rec[19]! << 8) | rec[20]!,
    constantFrameRate: rec[21]! >> 6,
    numTemporalLayers: (rec[21]! >> 3) & 7,
    temporalIdNested: (rec[21]! & 4) !== 0,
    lengthSize,
    arrays: [],
    vps: [],
    sps: [],
    pps: [],
  };
  const numArrays = rec[22]!;
  let p = 23;
  for (let a = 0; a < numArrays; a++) {
    if (n - p < 3) throw new FormatError(`hvcC truncated in NAL array #${a}`);
    const type = rec[p]! & 0x3f;
    const complete = (rec[p]! & 0x80) !== 0;
    const count = (rec[p + 1]! << 8) | rec[p + 2]!;
    p += 3;
    if (count * 2 > n - p) throw new FormatError(`hvcC NAL array #${a} claims ${count} units in ${n - p} bytes`);
    const nalus: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      if (n - p < 2) throw new FormatError(`hvcC truncated in NAL array #${a} unit #${i}`);
      const len = (rec[p]! << 8) | rec[p + 1]!;
      p += 2;
      if (len > n - p) throw new FormatError(`hvcC NAL unit of ${len} bytes exceeds the ${n - p} left`);
      if (len === 0) throw new FormatError(`hvcC NAL array #${a} unit #${i} is empty`);
      nalus.push(rec.subarray(p, p + len));
      p += len;
    }
    cfg.arrays.push({ type, complete, nalus });
    if (type === H265_NAL_VPS) cfg.vps.push(...nalus);
    else if (type === H265_NAL_SPS) cfg.sps.push(...nalus);
    else if (type === H265_NAL_PPS) cfg.pps.push(...nalus);
  }
  return cfg;
}

/**
 * Build an HEVCDecoderConfigurationRecord from parameter sets (NAL units with their 2-byte headers, no
 * start codes). Profile/tier/level, chroma format, bit depths and temporal layering come from the first
 * SPS. Extra arrays (e.g. prefix SEI) may be appended via `extra`.
 */
export function buildHvcC(
  vps: readonly Uint8Array[],
  sps: readonly Uint8Array[],
  pps: readonly Uint8Array[],
  extra: readonly HevcNalArray[] = [],
): Uint8Array {
  if (vps.length === 0 || sps.length === 0 || pps.length === 0) throw new FormatError('hvcC needs at least one VPS, SPS and PPS');
  const info = parseH265Sps(sps[0]!);
  const arrays: HevcNalArray[] = [
    { type: H265_NAL_VPS, complete: true, nalus: [...vps] },
    { type: H265_NAL_SPS, complete: true, nalus: [...sps] },
    { type: H265_NAL_PPS, complete: true, nalus: [...pps] },
    ...extra,
  ];
  if (arrays.length > 255) throw new FormatError('hvcC holds at most 255 NAL arrays');
  let total = 23;
  for (const a of arrays) {
    if (a.nalus.length > 0xffff) throw new FormatError('too many NAL units in an hvcC array');
    total += 3;
    for (const nal of a.nalus) {
      if (nal.length > 0xffff) throw new FormatError(`NAL unit of ${nal.length} bytes is too large for hvcC`);
      total += 2 + nal.length;
    }
  }
  const out = new Uint8Array(total);
  out[0] = 1;
  out[1] = (info.profileSpace << 6) | (info.tier << 5) | info.profile;
  out[2] = info.compat >>> 24;
  out[3] = info.compat >>> 16;
  out[4] = info.compat >>> 8;
  out[5] = info.compat;
  out.set(info.constraint, 6);
  out[12] = info.level;
  out[13] = 0xf0; // reserved + min_spatial_segmentation_idc = 0
  out[14] = 0;
  out[15] = 0xfc; // reserved + parallelismType = 0 (unknown)
  out[16] = 0xfc | info.chromaFormat;
  out[17] = 0xf8 | (info.bitDepthLuma - 8);
  out[18] = 0xf8 | (info.bitDepthChroma - 8);
  out[19] = 0; // avgFrameRate unspecified
  out[20] = 0;
  out[21] = (info.maxSubLayers << 3) | (info.temporalIdNested ? 4 : 0) | 3; // constantFrameRate 0, 4-byte lengths
  out[22] = arrays.length;
  let p = 23;
  for (const a of arrays) {
    out[p] = (a.complete ? 0x80 : 0) | (a.type & 0x3f);
    out[p + 1] = a.nalus.length >>> 8;
    out[p + 2] = a.nalus.length;
    p += 3;
    for (const nal of a.nalus) {
      out[p] = nal.length >>> 8;
      out[p + 1] = nal.length;
      out.set(nal, p + 2);
      p += 2 + nal.length;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Sequence parameter set

export interface H265Sps extends HevcPtl {
  vpsId: number;
  spsId: number;
  /** sps_max_sub_layers_minus1 + 1. */
  maxSubLayers: number;
  temporalIdNested: boolean;
  /** 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4. */
  chromaFormat: number;
  bitDepthLuma: number;
  bitDepthChroma: number;
  /** Displayed size (inside the conformance window). */
  width: number;
  height: number;
  /** pic_width/height_in_luma_samples. */
  codedWidth: number;
  codedHeight: number;
  /** Conformance window offsets, in luma samples. */
  crop: { left: number; right: number; top: number; bottom: number };
  separateColourPlane: boolean;
  /** log2_max_pic_order_cnt_lsb (slice headers carry that many POC bits). */
  log2MaxPocLsb: number;
  /** sps_max_num_reorder_pics of the highest sub-layer. */
  maxNumReorderPics: number;
}

/** Parse an H.265 SPS NAL unit (with its 2-byte NAL header, emulation prevention bytes allowed). */
export function parseH265Sps(nal: Uint8Array): H265Sps {
  if (nal.length < 16) throw new FormatError(`H.265 SPS of ${nal.length} bytes is too short`);
  const type = (nal[0]! >> 1) & 0x3f;
  if (type !== H265_NAL_SPS) throw new FormatError(`NAL type ${type} is not an H.265 SPS`);
  const br = new BitReader(unescapeRbsp(nal), 2);
  const vpsId = br.bits(4);
  const maxSubLayersMinus1 = br.bits(3);
  if (maxSubLayersMinus1 > 6) throw new FormatError(`sps_max_sub_layers_minus1 = ${maxSubLayersMinus1} out of range`);
  const temporalIdNested = br.bool();

  // profile_tier_level(1, sps_max_sub_layers_minus1): the general part is byte-aligned, 12 bytes.
  const profileSpace = br.bits(2);
  const tier = br.bits(1);
  const profile = br.bits(5);
  const compat = br.bits(32);
  const constraint = new Uint8Array(6);
  for (let i = 0; i < 6; i++) constraint[i] = br.bits(8);
  const level = br.bits(8);
  const subProfilePresent: boolean[] = [];
  const subLevelPresent: boolean[] = [];
  for (let i = 0; i < maxSubLayersMinus1; i++) {
    subProfilePresent.push(br.bool());
    subLevelPresent.push(br.bool());
  }
  if (maxSubLayersMinus1 > 0) br.skip(2 * (8 - maxSubLayersMinus1)); // reserved_zero_2bits
  for (let i = 0; i < maxSubLayersMinus1; i++) {
    if (subProfilePresent[i]) br.skip(88);
    if (subLevelPresent[i]) br.skip(8);
  }

  const spsId = br.ueMax(15, 'sps_seq_parameter_set_id');
  const chromaFormat = br.ueMax(3, 'chroma_format_idc');
  const separateColourPlane = chromaFormat === 3 ? br.bool() : false;
  const codedWidth = br.ueMax(65535, 'pic_width_in_luma_samples');
  const codedHeight = br.ueMax(65535, 'pic_height_in_luma_samples');
  const crop = { left: 0, right: 0, top: 0, bottom: 0 };
  if (br.bool()) {
    crop.left = br.ue();
    crop.right = br.ue();
    crop.top = br.ue();
    crop.bottom = br.ue();
  }
  const bitDepthLuma = br.ueMax(8, 'bit_depth_luma_minus8') + 8;
  const bitDepthChroma = br.ueMax(8, 'bit_depth_chroma_minus8') + 8;
  // POC length and reordering depth (for DTS extraction); 0 when a truncated SPS stops before them.
  let log2MaxPocLsb = 0;
  let maxNumReorderPics = 0;
  try {
    const lsb = br.ueMax(12, 'log2_max_pic_order_cnt_lsb_minus4') + 4;
    const orderingForAll = br.bool(); // sps_sub_layer_ordering_info_present_flag
    for (let i = orderingForAll ? 0 : maxSubLayersMinus1; i <= maxSubLayersMinus1; i++) {
      br.ue(); // sps_max_dec_pic_buffering_minus1
      maxNumReorderPics = br.ueMax(16, 'sps_max_num_reorder_pics');
      br.ue(); // sps_max_latency_increase_plus1
    }
    log2MaxPocLsb = lsb;
  } catch (e) {
    if (!(e instanceof FormatError)) throw e;
  }

  // Window offsets are in chroma sample units (Table 6-1).
  const chromaArrayType = separateColourPlane ? 0 : chromaFormat;
  const subWidthC = chromaArrayType === 1 || chromaArrayType === 2 ? 2 : 1;
  const subHeightC = chromaArrayType === 1 ? 2 : 1;
  crop.left *= subWidthC;
  crop.right *= subWidthC;
  crop.top *= subHeightC;
  crop.bottom *= subHeightC;
  const width = codedWidth - crop.left - crop.right;
  const height = codedHeight - crop.top - crop.bottom;
  if (width <= 0 || height <= 0) throw new FormatError(`H.265 SPS conformance window leaves a ${width}x${height} picture`);
  return {
    profileSpace, tier, profile, compat, constraint, level,
    vpsId, spsId, maxSubLayers: maxSubLayersMinus1 + 1, temporalIdNested,
    chromaFormat, bitDepthLuma, bitDepthChroma, width, height, codedWidth, codedHeight, crop,
    separateColourPlane, log2MaxPocLsb, maxNumReorderPics,
  };
}
