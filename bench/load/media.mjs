// Synthetic media for the bench publisher, and the SEI clock that players read back.
//
// Nothing here has to decode: servers only forward. What matters is that the bytes look like a real
// 720p30 H.264 + AAC stream to a server that inspects them (valid SPS/PPS, AVC/AAC sequence headers,
// IDR vs non-IDR NAL types, keyframe flags) and that the bit rates match the peer measurements
// (~2 Mb/s video with a keyframe every 2 s, ~128 kb/s audio).
//
// Clock: every video frame starts with an SEI NAL (type 6) carrying user_data_unregistered (payload
// type 5): a fixed 16-byte UUID, then the publisher's wall clock in microseconds. The clock is written
// as 8 bytes of 7 bits each with the top bit set, so the payload never contains a zero byte and no
// emulation-prevention bytes can appear inside it (56 bits of microseconds is ~2284 years).

/** The UUID that marks our SEI (no zero bytes, see above). */
export const SEI_UUID = Uint8Array.from([
  0x6d, 0x37, 0x73, 0x2d, 0x62, 0x65, 0x6e, 0x63, 0x68, 0x2d, 0x63, 0x6c, 0x6f, 0x63, 0x6b, 0x21,
]); // "m7s-bench-clock!"

export const SEI_PAYLOAD_SIZE = 16 + 8;
/** SEI NAL length: header, payload type, payload size, payload, rbsp trailing bits. */
export const SEI_NAL_SIZE = 1 + 1 + 1 + SEI_PAYLOAD_SIZE + 1;

/** Wall clock in microseconds (fractional ms from the monotonic clock on top of the epoch origin). */
export const wallMicros = () => Math.round((performance.timeOrigin + performance.now()) * 1000);

/** Writes the SEI NAL (without its length prefix) at `off` in `buf`, stamped with `micros`. */
export function writeSei(buf, off, micros) {
  buf[off] = 0x06; // forbidden 0, nal_ref_idc 0, type 6
  buf[off + 1] = 5; // user_data_unregistered
  buf[off + 2] = SEI_PAYLOAD_SIZE;
  buf.set(SEI_UUID, off + 3);
  let v = micros;
  for (let i = 7; i >= 0; i--) {
    buf[off + 19 + i] = 0x80 | (v % 128);
    v = Math.floor(v / 128);
  }
  buf[off + 27] = 0x80; // rbsp_stop_one_bit + alignment
}

/**
 * Looks for our SEI in an AVCC video tag body prefix (FLV VideoTagHeader: 1 byte frame type/codec,
 * 1 byte AVCPacketType, 3 bytes composition time; then 4-byte-length-prefixed NALUs).
 * `len` is how many bytes of the body are in `buf` (a prefix may be cut short).
 * Returns the stamped wall clock in µs, or -1 (no SEI, a sequence header, or not H.264).
 */
export function findSeiMicros(buf, len) {
  if (len < 5 || (buf[0] & 0x0f) !== 7 || buf[1] !== 1) return -1;
  let p = 5;
  while (p + 4 <= len) {
    const n = ((buf[p] << 24) >>> 0) + (buf[p + 1] << 16) + (buf[p + 2] << 8) + buf[p + 3];
    p += 4;
    if (n <= 0 || p >= len) return -1;
    if ((buf[p] & 0x1f) === 6 && p + 27 <= len && buf[p + 1] === 5 && buf[p + 2] === SEI_PAYLOAD_SIZE) {
      let ok = true;
      for (let i = 0; i < 16; i++) if (buf[p + 3 + i] !== SEI_UUID[i]) { ok = false; break; }
      if (ok) {
        let v = 0;
        for (let i = 0; i < 8; i++) v = v * 128 + (buf[p + 19 + i] & 0x7f);
        return v;
      }
    }
    p += n;
  }
  return -1;
}

// ---- H.264 parameter sets, generated with an Exp-Golomb bit writer so they are valid ----

class Bits {
  constructor() { this.bytes = []; this.cur = 0; this.n = 0; }
  u(bits, v) { for (let i = bits - 1; i >= 0; i--) this.bit((v >>> i) & 1); }
  bit(b) { this.cur = (this.cur << 1) | b; if (++this.n === 8) { this.bytes.push(this.cur); this.cur = 0; this.n = 0; } }
  ue(v) { const x = v + 1; const len = 32 - Math.clz32(x); this.u(len - 1, 0); this.u(len, x); }
  se(v) { this.ue(v <= 0 ? -2 * v : 2 * v - 1); }
  /** rbsp_trailing_bits, then emulation prevention. */
  finish() {
    this.bit(1);
    while (this.n !== 0) this.bit(0);
    const out = [];
    let zeros = 0;
    for (const b of this.bytes) {
      if (zeros >= 2 && b <= 3) { out.push(3); zeros = 0; }
      out.push(b);
      zeros = b === 0 ? zeros + 1 : 0;
    }
    return Uint8Array.from(out);
  }
}

/** SPS: Main profile, level 3.1, 1280x720 (80x45 macroblocks), progressive, no VUI. */
export function makeSps(width = 1280, height = 720) {
  const b = new Bits();
  b.u(8, 0x67); // nal_ref_idc 3, type 7
  b.u(8, 77); b.u(8, 0x40); b.u(8, 31); // profile_idc, constraint flags, level_idc
  b.ue(0); // seq_parameter_set_id
  b.ue(0); // log2_max_frame_num_minus4
  b.ue(2); // pic_order_cnt_type 2 (no B frames)
  b.ue(1); // max_num_ref_frames
  b.u(1, 0); // gaps_in_frame_num_value_allowed_flag
  b.ue(width / 16 - 1); b.ue(height / 16 - 1);
  b.u(1, 1); // frame_mbs_only_flag
  b.u(1, 1); // direct_8x8_inference_flag
  b.u(1, 0); // frame_cropping_flag
  b.u(1, 0); // vui_parameters_present_flag
  return b.finish();
}

/** PPS matching makeSps (CAVLC, one slice group, deblocking control present). */
export function makePps() {
  const b = new Bits();
  b.u(8, 0x68);
  b.ue(0); b.ue(0); // pps id, sps id
  b.u(1, 0); b.u(1, 0); // entropy_coding_mode_flag, bottom_field_pic_order_in_frame_present_flag
  b.ue(0); // num_slice_groups_minus1
  b.ue(0); b.ue(0); // num_ref_idx_l0/l1_default_active_minus1
  b.u(1, 0); b.u(2, 0); // weighted_pred_flag, weighted_bipred_idc
  b.se(0); b.se(0); b.se(0); // pic_init_qp_minus26, pic_init_qs_minus26, chroma_qp_index_offset
  b.u(1, 1); b.u(1, 0); b.u(1, 0); // deblocking_filter_control_present, constrained_intra_pred, redundant_pic_cnt_present
  return b.finish();
}

/** FLV video tag body for the AVC sequence header (AVCDecoderConfigurationRecord). */
export function avcSequenceHeader() {
  const sps = makeSps(), pps = makePps();
  const out = new Uint8Array(5 + 6 + 2 + sps.length + 1 + 2 + pps.length);
  let p = 0;
  out[p++] = 0x17; out[p++] = 0; p += 3; // keyframe + AVC, sequence header, cts 0
  out[p++] = 1; out[p++] = sps[1]; out[p++] = sps[2]; out[p++] = sps[3]; // version, profile, compat, level
  out[p++] = 0xff; // lengthSizeMinusOne = 3
  out[p++] = 0xe1; // one SPS
  out[p++] = sps.length >> 8; out[p++] = sps.length & 0xff; out.set(sps, p); p += sps.length;
  out[p++] = 1;
  out[p++] = pps.length >> 8; out[p++] = pps.length & 0xff; out.set(pps, p);
  return out;
}

/** FLV audio tag body for the AAC sequence header: AAC-LC, 44.1 kHz, stereo. */
export function aacSequenceHeader() {
  // AudioSpecificConfig: objectType 2 (5 bits), freq index 4 (4 bits), channels 2 (4 bits), 3 zero bits.
  return Uint8Array.from([0xaf, 0x00, 0x12, 0x10]);
}

/** Video/audio sizing for a target bit rate (see the file comment). */
export function plan({ videoKbps = 2000, audioKbps = 128, fps = 30, gopSeconds = 2, idrRatio = 5 } = {}) {
  const gop = fps * gopSeconds;
  const avgFrame = (videoKbps * 1000) / 8 / fps;
  // one IDR worth idrRatio P frames: gop*avg = (gop - 1 + idrRatio) * P
  const pSize = Math.round((gop * avgFrame) / (gop - 1 + idrRatio));
  const audioFps = 44100 / 1024;
  const audioSize = Math.round((audioKbps * 1000) / 8 / audioFps);
  return { fps, gop, pSize, idrSize: pSize * idrRatio, audioFps, audioSize };
}

/**
 * Builds one FLV video tag body: header, SEI NAL (stamped), slice NAL. Allocates one buffer per
 * frame (this is the single publisher, not the per-player path).
 */
export function videoFrame(size, key, micros) {
  const sliceLen = Math.max(16, size - 5 - 4 - SEI_NAL_SIZE - 4);
  const out = new Uint8Array(5 + 4 + SEI_NAL_SIZE + 4 + sliceLen);
  out[0] = key ? 0x17 : 0x27; out[1] = 1; // NALU, cts 0
  const dv = new DataView(out.buffer);
  dv.setUint32(5, SEI_NAL_SIZE);
  writeSei(out, 9, micros);
  const s = 9 + SEI_NAL_SIZE;
  dv.setUint32(s, sliceLen);
  out.fill(0xab, s + 4);
  out[s + 4] = key ? 0x65 : 0x41; // IDR slice (ref 3) / non-IDR slice (ref 2)
  out[s + 5] = 0x88; // first_mb_in_slice 0, then filler
  return out;
}

/** One FLV audio tag body: AAC raw frame of `size` bytes (filler). */
export function audioFrame(size) {
  const out = new Uint8Array(2 + size);
  out[0] = 0xaf; out[1] = 1;
  out.fill(0x21, 2);
  return out;
}
