// H.264 / AVC: NAL unit framing (Annex B start codes <-> length-prefixed "AVCC" form), the
// AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1), and a sequence parameter set parser
// (ITU-T H.264 7.3.2.1.1 and Annex E VUI) that yields the picture size, profile/level and frame rate.
//
// The engine's canonical frame form is length-prefixed NAL units with 4-byte lengths.

import { BitReader, FormatError, toHex } from '../format/bytes.ts';

export const H264_NAL_SLICE = 1;
export const H264_NAL_IDR = 5;
export const H264_NAL_SEI = 6;
export const H264_NAL_SPS = 7;
export const H264_NAL_PPS = 8;
export const H264_NAL_AUD = 9;
export const H264_NAL_END_OF_SEQUENCE = 10;
export const H264_NAL_FILLER = 12;
export const H264_NAL_SPS_EXT = 13;

/** nal_unit_type of a NAL unit (its first byte's low 5 bits). */
export function h264NalType(nal: Uint8Array): number {
  if (nal.length === 0) throw new FormatError('empty H.264 NAL unit');
  return nal[0]! & 0x1f;
}

// ---------------------------------------------------------------------------------------------------
// Framing

/**
 * Index of the first byte of the next 00 00 01 start code at or after `from`, or -1. Skips ahead three
 * bytes whenever the byte under test cannot be part of a start code (the usual fast scan).
 */
function findStartCode(b: Uint8Array, from: number, end: number): number {
  let i = from + 2;
  while (i < end) {
    const c = b[i]!;
    if (c > 1) i += 3;
    else if (c === 0) i++;
    else {
      if (b[i - 1] === 0 && b[i - 2] === 0) return i - 2;
      i += 3;
    }
  }
  return -1;
}

/**
 * Split an Annex B byte stream into NAL units (views, no copy). Zero bytes before a start code
 * (4-byte start codes, trailing_zero_8bits) are dropped; empty NAL units are skipped. Input that does not
 * begin with a start code (after optional zero bytes) is a FormatError.
 */
export function splitAnnexB(bytes: Uint8Array): Uint8Array[] {
  const end = bytes.length;
  let sc = findStartCode(bytes, 0, end);
  if (sc < 0) throw new FormatError('no Annex B start code found');
  for (let i = 0; i < sc; i++) {
    if (bytes[i] !== 0) throw new FormatError(`${sc} byte(s) of data before the first Annex B start code`);
  }
  const out: Uint8Array[] = [];
  while (sc >= 0) {
    const start = sc + 3;
    const next = findStartCode(bytes, start, end);
    let stop = next < 0 ? end : next;
    while (stop > start && bytes[stop - 1] === 0) stop--;
    if (stop > start) out.push(bytes.subarray(start, stop));
    sc = next;
  }
  return out;
}

/** Length-prefix NAL units (4-byte big-endian lengths) into one new array. */
export function joinAvcc(nalus: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const n of nalus) total += 4 + n.length;
  const out = new Uint8Array(total);
  let p = 0;
  for (const n of nalus) {
    const len = n.length;
    out[p] = len >>> 24;
    out[p + 1] = len >>> 16;
    out[p + 2] = len >>> 8;
    out[p + 3] = len;
    out.set(n, p + 4);
    p += 4 + len;
  }
  return out;
}

/** Annex B byte stream -> length-prefixed NAL units with 4-byte lengths (one allocation). */
export function annexBToAvcc(bytes: Uint8Array): Uint8Array {
  return joinAvcc(splitAnnexB(bytes));
}

/** Throws unless `lengthSize` is a NAL length field size (1..4 bytes). */
export function checkLengthSize(lengthSize: number): void {
  if (lengthSize !== 1 && lengthSize !== 2 && lengthSize !== 3 && lengthSize !== 4) {
    throw new FormatError(`invalid NAL length size ${lengthSize}`);
  }
}

/**
 * Walk length-prefixed NAL units, calling `fn(start, end)` with each unit's byte range in `bytes`; `fn`
 * returning true stops the walk. Every length is checked against the bytes left; a zero length is skipped.
 * Works for H.264 and H.265 alike.
 */
export function forEachNalu(bytes: Uint8Array, lengthSize: number, fn: (start: number, end: number) => boolean | void): void {
  checkLengthSize(lengthSize);
  const n = bytes.length;
  let p = 0;
  while (p < n) {
    if (n - p < lengthSize) throw new FormatError(`truncated NAL length at offset ${p}`);
    let len = 0;
    for (let i = 0; i < lengthSize; i++) len = len * 256 + bytes[p + i]!;
    p += lengthSize;
    if (len > n - p) throw new FormatError(`NAL length ${len} at offset ${p - lengthSize} exceeds the ${n - p} byte(s) left`);
    if (len > 0 && fn(p, p + len) === true) return;
    p += len;
  }
}

/** Split length-prefixed NAL units into views. */
export function splitAvcc(bytes: Uint8Array, lengthSize = 4): Uint8Array[] {
  const out: Uint8Array[] = [];
  forEachNalu(bytes, lengthSize, (s, e) => {
    out.push(bytes.subarray(s, e));
  });
  return out;
}

/** Length-prefixed NAL units -> Annex B with 4-byte start codes (one allocation). */
export function avccToAnnexB(bytes: Uint8Array, lengthSize = 4): Uint8Array {
  const nalus = splitAvcc(bytes, lengthSize);
  let total = 0;
  for (const n of nalus) total += 4 + n.length;
  const out = new Uint8Array(total);
  let p = 0;
  for (const n of nalus) {
    out[p + 3] = 1;
    out.set(n, p + 4);
    p += 4 + n.length;
  }
  return out;
}

/**
 * Length-prefixed NAL units with `lengthSize`-byte lengths -> the canonical 4-byte form. Returns the input
 * itself when it already uses 4-byte lengths (after validating it).
 */
export function normalizeAvcc(bytes: Uint8Array, lengthSize: number): Uint8Array {
  if (lengthSize === 4) {
    forEachNalu(bytes, 4, () => {});
    return bytes;
  }
  return joinAvcc(splitAvcc(bytes, lengthSize));
}

/** True if the length-prefixed access unit contains an IDR slice (NAL type 5). Malformed lengths are a FormatError. */
export function isKeyframeAvcc(bytes: Uint8Array, lengthSize = 4): boolean {
  let key = false;
  forEachNalu(bytes, lengthSize, (s) => (key = (bytes[s]! & 0x1f) === H264_NAL_IDR));
  return key;
}

/**
 * Remove emulation prevention bytes (00 00 03 -> 00 00) to get the RBSP. Returns the input itself when
 * there are none (the common case) and a copy otherwise.
 */
export function unescapeRbsp(nal: Uint8Array): Uint8Array {
  const n = nal.length;
  let first = -1;
  for (let i = 2; i < n; i++) {
    if (nal[i] === 3 && nal[i - 1] === 0 && nal[i - 2] === 0) {
      first = i;
      break;
    }
  }
  if (first < 0) return nal;
  const out = new Uint8Array(n);
  out.set(nal.subarray(0, first));
  let o = first;
  let zeros = 0;
  for (let i = first + 1; i < n; i++) {
    const c = nal[i]!;
    if (c === 3 && zeros >= 2) {
      zeros = 0;
      continue;
    }
    out[o++] = c;
    zeros = c === 0 ? zeros + 1 : 0;
  }
  return out.subarray(0, o);
}

// ---------------------------------------------------------------------------------------------------
// AVCDecoderConfigurationRecord

export interface AvcConfig {
  profile: number;
  /** profile_compatibility (constraint_set flags). */
  compat: number;
  level: number;
  /** NAL length size in bytes: 1, 2 or 4. */
  lengthSize: number;
  sps: Uint8Array[];
  pps: Uint8Array[];
  /** Present in records of High profiles that carry the extension. */
  chromaFormat?: number;
  bitDepthLuma?: number;
  bitDepthChroma?: number;
  spsExt?: Uint8Array[];
}

/** Parse an AVCDecoderConfigurationRecord ('avcC' / the FLV AVC sequence header). NAL units are views. */
export function parseAvcC(rec: Uint8Array): AvcConfig {
  const n = rec.length;
  if (n < 7) throw new FormatError(`avcC of ${n} bytes is shorter than 7`);
  if (rec[0] !== 1) throw new FormatError(`avcC configurationVersion ${rec[0]} (expected 1)`);
  const lengthSize = (rec[4]! & 3) + 1;
  if (lengthSize === 3) throw new FormatError('avcC lengthSizeMinusOne = 2 is not allowed');
  let p = 5;
  const readSet = (count: number, what: string): Uint8Array[] => {
    const out: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      if (n - p < 2) throw new FormatError(`avcC truncated in ${what} #${i}`);
      const len = (rec[p]! << 8) | rec[p + 1]!;
      p += 2;
      if (len > n - p) throw new FormatError(`avcC ${what} #${i} of ${len} bytes exceeds the ${n - p} left`);
      if (len === 0) throw new FormatError(`avcC ${what} #${i} is empty`);
      out.push(rec.subarray(p, p + len));
      p += len;
    }
    return out;
  };
  const sps = readSet(rec[p++]! & 0x1f, 'SPS');
  if (p >= n) throw new FormatError('avcC truncated before numOfPictureParameterSets');
  const pps = readSet(rec[p++]!, 'PPS');
  const cfg: AvcConfig = { profile: rec[1]!, compat: rec[2]!, level: rec[3]!, lengthSize, sps, pps };
  // High-profile extension: optional in practice (many encoders omit it), so only read it when complete.
  if ((cfg.profile === 100 || cfg.profile === 110 || cfg.profile === 122 || cfg.profile === 144) && n - p >= 4) {
    const save = p;
    try {
      const chromaFormat = rec[p]! & 3;
      const bitDepthLuma = (rec[p + 1]! & 7) + 8;
      const bitDepthChroma = (rec[p + 2]! & 7) + 8;
      p += 3;
      const spsExt = readSet(rec[p++]!, 'SPS extension');
      Object.assign(cfg, { chromaFormat, bitDepthLuma, bitDepthChroma, spsExt });
    } catch (e) {
      if (!(e instanceof FormatError)) throw e;
      p = save; // a malformed optional extension does not invalidate the record
    }
  }
  return cfg;
}

/**
 * Build an AVCDecoderConfigurationRecord from parameter sets (NAL units without start codes or lengths).
 * Profile, compatibility and level come from the first SPS; High profiles get the chroma/bit-depth
 * extension, as ffmpeg writes it.
 */
export function buildAvcC(sps: readonly Uint8Array[], pps: readonly Uint8Array[], lengthSize = 4): Uint8Array {
  if (sps.length === 0) throw new FormatError('avcC needs at least one SPS');
  if (sps.length > 31) throw new FormatError('avcC holds at most 31 SPS');
  if (pps.length > 255) throw new FormatError('avcC holds at most 255 PPS');
  if (lengthSize !== 1 && lengthSize !== 2 && lengthSize !== 4) throw new FormatError(`invalid NAL length size ${lengthSize}`);
  const first = sps[0]!;
  if (first.length < 4) throw new FormatError('SPS too short for an avcC');
  const profile = first[1]!;
  const high = profile === 100 || profile === 110 || profile === 122 || profile === 144;
  let ext: Uint8Array | null = null;
  if (high) {
    const info = parseH264Sps(first);
    ext = Uint8Array.of(0xfc | info.chromaFormat, 0xf8 | (info.bitDepthLuma - 8), 0xf8 | (info.bitDepthChroma - 8), 0);
  }
  let total = 6 + 1 + (ext ? ext.length : 0);
  for (const s of sps) total += 2 + s.length;
  for (const s of pps) total += 2 + s.length;
  const out = new Uint8Array(total);
  out[0] = 1;
  out[1] = profile;
  out[2] = first[2]!;
  out[3] = first[3]!;
  out[4] = 0xfc | (lengthSize - 1);
  out[5] = 0xe0 | sps.length;
  let p = 6;
  const put = (nal: Uint8Array) => {
    if (nal.length > 0xffff) throw new FormatError(`parameter set of ${nal.length} bytes is too large for avcC`);
    out[p] = nal.length >>> 8;
    out[p + 1] = nal.length;
    out.set(nal, p + 2);
    p += 2 + nal.length;
  };
  for (const s of sps) put(s);
  out[p++] = pps.length;
  for (const s of pps) put(s);
  if (ext) out.set(ext, p);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Sequence parameter set

export interface H264Sps {
  profile: number;
  /** constraint_set0..5 flags and reserved bits (the byte after profile_idc). */
  compat: number;
  level: number;
  spsId: number;
  /** 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4. */
  chromaFormat: number;
  bitDepthLuma: number;
  bitDepthChroma: number;
  /** Displayed size (after frame cropping). */
  width: number;
  height: number;
  /** Coded size in whole macroblocks (frame, both fields). */
  codedWidth: number;
  codedHeight: number;
  /** frame_mbs_only_flag = 0: the stream may contain field pictures. */
  interlaced: boolean;
  crop: { left: number; right: number; top: number; bottom: number };
  /** Sample aspect ratio from the VUI, when present. */
  sar?: { num: number; den: number };
  /** VUI timing: frames per second (time_scale / (2 * num_units_in_tick)), when present. */
  fps?: number;
  timing?: { numUnitsInTick: number; timeScale: number; fixedFrameRate: boolean };
  /** Present when video_signal_type_present_flag is set. */
  fullRange?: boolean;
  /** Slice header layout (what the POC / DTS extractor needs). */
  separateColourPlane: boolean;
  log2MaxFrameNum: number;
  /** pic_order_cnt_type: 0 (lsb in slice headers), 1 (cycle), 2 (output order = decode order). */
  pocType: number;
  /** log2_max_pic_order_cnt_lsb (pocType 0). */
  log2MaxPocLsb: number;
  /** VUI bitstream restriction max_num_reorder_frames, when present. */
  maxNumReorderFrames?: number;
}

const HIGH_PROFILES = new Set([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]);

/** Table E-1 sample aspect ratios, indexed by aspect_ratio_idc. */
const SAR_TABLE: readonly [number, number][] = [
  [0, 0], [1, 1], [12, 11], [10, 11], [16, 11], [40, 33], [24, 11], [20, 11], [32, 11],
  [80, 33], [18, 11], [15, 11], [64, 33], [160, 99], [4, 3], [3, 2], [2, 1],
];

function skipScalingList(br: BitReader, size: number): void {
  let last = 8;
  let next = 8;
  for (let j = 0; j < size; j++) {
    if (next !== 0) {
      const delta = br.se();
      if (delta < -128 || delta > 127) throw new FormatError(`SPS delta_scale ${delta} out of range`);
      next = (last + delta + 256) % 256;
    }
    last = next === 0 ? last : next;
  }
}

/** Parse an H.264 SPS NAL unit (with its 1-byte NAL header, emulation prevention bytes allowed). */
export function parseH264Sps(nal: Uint8Array): H264Sps {
  if (nal.length < 4) throw new FormatError(`SPS of ${nal.length} bytes is too short`);
  if ((nal[0]! & 0x1f) !== H264_NAL_SPS) throw new FormatError(`NAL type ${nal[0]! & 0x1f} is not an SPS`);
  const rbsp = unescapeRbsp(nal);
  const br = new BitReader(rbsp, 1);
  const profile = br.bits(8);
  const compat = br.bits(8);
  const level = br.bits(8);
  const spsId = br.ueMax(31, 'seq_parameter_set_id');
  let chromaFormat = 1;
  let separateColourPlane = false;
  let bitDepthLuma = 8;
  let bitDepthChroma = 8;
  if (HIGH_PROFILES.has(profile)) {
    chromaFormat = br.ueMax(3, 'chroma_format_idc');
    if (chromaFormat === 3) separateColourPlane = br.bool();
    bitDepthLuma = br.ueMax(6, 'bit_depth_luma_minus8') + 8;
    bitDepthChroma = br.ueMax(6, 'bit_depth_chroma_minus8') + 8;
    br.skip(1); // qpprime_y_zero_transform_bypass_flag
    if (br.bool()) {
      // seq_scaling_matrix_present_flag: 8 lists (12 for 4:4:4), 4x4 then 8x8.
      const lists = chromaFormat === 3 ? 12 : 8;
      for (let i = 0; i < lists; i++) if (br.bool()) skipScalingList(br, i < 6 ? 16 : 64);
    }
  }
  const log2MaxFrameNum = br.ueMax(12, 'log2_max_frame_num_minus4') + 4;
  const pocType = br.ueMax(2, 'pic_order_cnt_type');
  let log2MaxPocLsb = 0;
  if (pocType === 0) {
    log2MaxPocLsb = br.ueMax(12, 'log2_max_pic_order_cnt_lsb_minus4') + 4;
  } else if (pocType === 1) {
    br.skip(1); // delta_pic_order_always_zero_flag
    br.se(); // offset_for_non_ref_pic
    br.se(); // offset_for_top_to_bottom_field
    const cycle = br.ueMax(255, 'num_ref_frames_in_pic_order_cnt_cycle');
    for (let i = 0; i < cycle; i++) br.se();
  }
  br.ue(); // max_num_ref_frames
  br.skip(1); // gaps_in_frame_num_value_allowed_flag
  const widthMbs = br.ueMax(1023, 'pic_width_in_mbs_minus1') + 1;
  const heightMapUnits = br.ueMax(1023, 'pic_height_in_map_units_minus1') + 1;
  const frameMbsOnly = br.bool();
  if (!frameMbsOnly) br.skip(1); // mb_adaptive_frame_field_flag
  br.skip(1); // direct_8x8_inference_flag
  const crop = { left: 0, right: 0, top: 0, bottom: 0 };
  if (br.bool()) {
    crop.left = br.ue();
    crop.right = br.ue();
    crop.top = br.ue();
    crop.bottom = br.ue();
  }
  const codedWidth = widthMbs * 16;
  const codedHeight = (frameMbsOnly ? 1 : 2) * heightMapUnits * 16;
  // Crop units (7.4.2.1.1): in chroma samples, doubled vertically for field-capable streams.
  const chromaArrayType = separateColourPlane ? 0 : chromaFormat;
  const cropUnitX = chromaArrayType === 0 ? 1 : chromaFormat === 3 ? 1 : 2;
  const cropUnitY = (chromaArrayType === 0 ? 1 : chromaFormat === 1 ? 2 : 1) * (frameMbsOnly ? 1 : 2);
  const width = codedWidth - cropUnitX * (crop.left + crop.right);
  const height = codedHeight - cropUnitY * (crop.top + crop.bottom);
  if (width <= 0 || height <= 0) throw new FormatError(`SPS cropping leaves a ${width}x${height} picture`);

  const sps: H264Sps = {
    profile, compat, level, spsId, chromaFormat, bitDepthLuma, bitDepthChroma,
    width, height, codedWidth, codedHeight, interlaced: !frameMbsOnly, crop,
    separateColourPlane, log2MaxFrameNum, pocType, log2MaxPocLsb,
  };
  if (br.bitsLeft > 0 && br.bool()) {
    // VUI: optional detail. A truncated VUI (seen from some encoders) keeps what was read so far.
    try {
      parseVui(br, sps);
    } catch (e) {
      if (!(e instanceof FormatError)) throw e;
    }
  }
  return sps;
}

function parseVui(br: BitReader, sps: H264Sps): void {
  if (br.bool()) {
    const idc = br.bits(8);
    if (idc === 255) {
      const num = br.bits(16);
      const den = br.bits(16);
      if (num && den) sps.sar = { num, den };
    } else if (idc > 0 && idc < SAR_TABLE.length) {
      const [num, den] = SAR_TABLE[idc]!;
      sps.sar = { num, den };
    }
  }
  if (br.bool()) br.skip(1); // overscan_info_present_flag, overscan_appropriate_flag
  if (br.bool()) {
    br.skip(3); // video_format
    sps.fullRange = br.bool();
    if (br.bool()) br.skip(24); // colour_primaries, transfer_characteristics, matrix_coefficients
  }
  if (br.bool()) {
    br.ue(); // chroma_sample_loc_type_top_field
    br.ue(); // chroma_sample_loc_type_bottom_field
  }
  if (br.bool()) {
    const numUnitsInTick = br.bits(32);
    const timeScale = br.bits(32);
    const fixedFrameRate = br.bool();
    sps.timing = { numUnitsInTick, timeScale, fixedFrameRate };
    if (numUnitsInTick > 0 && timeScale > 0) sps.fps = timeScale / (2 * numUnitsInTick);
  }
  const nalHrd = br.bool();
  if (nalHrd) skipHrd(br);
  const vclHrd = br.bool();
  if (vclHrd) skipHrd(br);
  if (nalHrd || vclHrd) br.skip(1); // low_delay_hrd_flag
  br.skip(1); // pic_struct_present_flag
  if (br.bool()) {
    // bitstream_restriction_flag
    br.skip(1); // motion_vectors_over_pic_boundaries_flag
    br.ue(); // max_bytes_per_pic_denom
    br.ue(); // max_bits_per_mb_denom
    br.ue(); // log2_max_mv_length_horizontal
    br.ue(); // log2_max_mv_length_vertical
    sps.maxNumReorderFrames = br.ueMax(16, 'max_num_reorder_frames');
  }
}

/** hrd_parameters() (E.1.2): only skipped. */
function skipHrd(br: BitReader): void {
  const cpbCnt = br.ueMax(31, 'cpb_cnt_minus1') + 1;
  br.skip(8); // bit_rate_scale, cpb_size_scale
  for (let i = 0; i < cpbCnt; i++) {
    br.ue(); // bit_rate_value_minus1
    br.ue(); // cpb_size_value_minus1
    br.skip(1); // cbr_flag
  }
  br.skip(20); // four 5-bit delay/length fields
}

/** RFC 6381 codec string 'avc1.PPCCLL' from an SPS NAL unit (or an avcC record). */
export function h264CodecString(spsOrAvcC: Uint8Array): string {
  if (spsOrAvcC.length < 4) throw new FormatError('too short for an H.264 codec string');
  return 'avc1.' + toHex(spsOrAvcC.subarray(1, 4));
}
