// VP8 (RFC 7741), VP9 (RFC 9628) and AV1 ("RTP Payload Format For AV1", AOM v1.0) over RTP, for WebRTC
// passthrough: a frame is everything between a start-of-frame packet and the marker bit, with the payload
// descriptors taken off (VP8, VP9: the codec bitstream of the frame; AV1: the frame's OBUs in the
// low-overhead format, each with obu_has_size_field = 1, temporal delimiters dropped). Packetizers
// write the smallest descriptors receivers take: VP8 with no extensions, VP9 with the B/E/P bits, AV1
// with length-prefixed OBU elements.

import type { CodecConfig } from '../../codec/config.ts';
import { concat, FormatError } from '../bytes.ts';
import { Depacketizer, type DepacketizerOptions, type RtpFrame, DEFAULT_RTP_MTU } from './common.ts';
import type { RtpPacket, RtpWriter } from './packet.ts';

export type VpxCodec = 'vp8' | 'vp9' | 'av1';

/** Width and height of a VP8 key frame (RFC 6386 9.1), or undefined. */
export function vp8KeyFrameSize(f: Uint8Array): { width: number; height: number } | undefined {
  if (f.length < 10 || (f[0]! & 1) !== 0 || f[3] !== 0x9d || f[4] !== 0x01 || f[5] !== 0x2a) return undefined;
  return { width: (f[6]! | (f[7]! << 8)) & 0x3fff, height: (f[8]! | (f[9]! << 8)) & 0x3fff };
}

function readLeb128(b: Uint8Array, p: number): { value: number; next: number } {
  let v = 0;
  for (let i = 0; i < 8; i++) {
    if (p + i >= b.length) throw new FormatError('AV1 leb128 truncated');
    const x = b[p + i]!;
    v += (x & 0x7f) * 2 ** (7 * i);
    if (!(x & 0x80)) return { value: v, next: p + i + 1 };
  }
  throw new FormatError('AV1 leb128 longer than 8 bytes');
}

function leb128(n: number): Uint8Array {
  const out: number[] = [];
  do {
    let x = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) x |= 0x80;
    out.push(x);
  } while (n > 0);
  return new Uint8Array(out);
}

const OBU_SEQUENCE_HEADER = 1, OBU_TEMPORAL_DELIMITER = 2;

/** One AV1 OBU (header with has_size_field set, size, payload) in the low-overhead format. */
function obuWithSize(obu: Uint8Array): Uint8Array {
  const hdrLen = obu[0]! & 0x04 ? 2 : 1;
  if (obu.length < hdrLen) throw new FormatError('AV1 OBU shorter than its header');
  let p = hdrLen;
  let payload: Uint8Array;
  if (obu[0]! & 0x02) { const s = readLeb128(obu, p); p = s.next; payload = obu.subarray(p, p + s.value); if (p + s.value > obu.length) throw new FormatError('AV1 OBU size exceeds the element'); }
  else payload = obu.subarray(p);
  const size = leb128(payload.length);
  const out = new Uint8Array(hdrLen + size.length + payload.length);
  out.set(obu.subarray(0, hdrLen));
  out[0] = out[0]! | 0x02;
  out.set(size, hdrLen);
  out.set(payload, hdrLen + size.length);
  return out;
}

/** The OBUs of a low-overhead-format frame: [header (1-2 bytes), payload] each. */
export function av1Obus(frame: Uint8Array): { type: number; header: Uint8Array; payload: Uint8Array }[] {
  const out: { type: number; header: Uint8Array; payload: Uint8Array }[] = [];
  let p = 0;
  while (p < frame.length) {
    const h0 = frame[p]!;
    if (h0 & 0x80) throw new FormatError('AV1 OBU forbidden bit set');
    const hdrLen = h0 & 0x04 ? 2 : 1;
    if (p + hdrLen > frame.length) throw new FormatError('AV1 OBU header truncated');
    let q = p + hdrLen;
    let end = frame.length;
    if (h0 & 0x02) { const s = readLeb128(frame, q); q = s.next; end = q + s.value; if (end > frame.length) throw new FormatError('AV1 OBU size exceeds the frame'); }
    out.push({ type: (h0 >> 3) & 0x0f, header: frame.subarray(p, p + hdrLen), payload: frame.subarray(q, end) });
    p = end;
  }
  return out;
}

/** VP8/VP9/AV1 RTP → frames. */
export class VpxDepacketizer extends Depacketizer {
  private parts: Uint8Array[] = [];
  private size = 0;
  private ts = -1;
  private key = false;
  private started = false;
  /** AV1: an OBU fragment continued in the next packet. */
  private obuFrag: Uint8Array[] | null = null;
  private configSent = false;
  private width?: number;
  private height?: number;

  constructor(readonly codec: VpxCodec, opts: DepacketizerOptions = {}) { super(opts); }

  protected discontinuity(): void {
    if (this.parts.length || this.obuFrag) this.stats.droppedFrames++;
    this.reset();
  }

  private reset(): void {
    this.parts = [];
    this.size = 0;
    this.started = false;
    this.key = false;
    this.obuFrag = null;
  }

  private add(b: Uint8Array): void {
    this.size += b.length;
    this.checkSize(this.size);
    this.parts.push(b);
  }

  protected handle(pkt: RtpPacket, out: RtpFrame[]): void {
    const b = pkt.payload;
    if (b.length === 0) throw new FormatError(`empty ${this.codec} RTP payload`);
    if (this.started && pkt.timestamp !== this.ts) { this.stats.droppedFrames++; this.reset(); } // lost marker
    if (this.codec === 'vp8') this.vp8(b);
    else if (this.codec === 'vp9') this.vp9(b);
    else this.av1(b);
    this.ts = pkt.timestamp;
    if (pkt.marker && this.started) {
      if (this.obuFrag) { this.stats.droppedFrames++; this.reset(); return; }
      const data = new Uint8Array(this.size);
      let o = 0;
      for (const x of this.parts) { data.set(x, o); o += x.length; }
      const f: RtpFrame = { timestamp: pkt.timestamp, data, key: this.key };
      if (this.codec === 'vp8' && this.key) {
        const s = vp8KeyFrameSize(data);
        if (s && (s.width !== this.width || s.height !== this.height)) { this.width = s.width; this.height = s.height; this.configSent = false; }
      }
      if (!this.configSent && (this.key || this.codec !== 'vp8')) {
        const c: CodecConfig = { codec: this.codec, codecString: this.codec === 'vp8' ? 'vp8' : this.codec === 'vp9' ? 'vp09.00.10.08' : 'av01.0.04M.08' };
        if (this.width) { c.width = this.width; c.height = this.height; }
        f.config = c;
        this.configSent = true;
      }
      this.reset();
      if (data.length) out.push(f);
    }
  }

  private vp8(b: Uint8Array): void {
    const x = b[0]!;
    let p = 1;
    if (x & 0x80) {
      if (b.length < 2) throw new FormatError('VP8 payload descriptor truncated');
      const ext = b[1]!;
      p = 2;
      if (ext & 0x80) { if (p >= b.length) throw new FormatError('VP8 picture ID truncated'); p += b[p]! & 0x80 ? 2 : 1; }
      if (ext & 0x40) p++;
      if (ext & 0x30) p++;
    }
    if (p >= b.length) throw new FormatError('VP8 payload descriptor without payload');
    const start = (x & 0x10) !== 0 && (x & 0x07) === 0;
    if (start) { this.reset(); this.started = true; this.key = (b[p]! & 1) === 0; }
    if (!this.started) return; // the middle of a frame whose start was lost
    this.add(b.subarray(p));
  }

  private vp9(b: Uint8Array): void {
    const x = b[0]!;
    let p = 1;
    const need = (n: number) => { if (p + n > b.length) throw new FormatError('VP9 payload descriptor truncated'); };
    if (x & 0x80) { need(1); p += b[p]! & 0x80 ? 2 : 1; } // I: picture ID (7 or 15 bits)
    if (x & 0x20) { need(1); p += x & 0x10 ? 1 : 2; } // L: layer indices (+ TL0PICIDX when not flexible)
    if ((x & 0x10) && (x & 0x40)) { // F and P: reference indices
      for (let i = 0; i < 3; i++) { need(1); const d = b[p++]!; if (!(d & 1)) break; }
    }
    if (x & 0x02) { // V: scalability structure
      need(1);
      const ss = b[p++]!;
      const ns = (ss >> 5) + 1;
      if (ss & 0x10) { need(4 * ns); p += 4 * ns; }
      if (ss & 0x08) {
        need(1);
        const ng = b[p++]!;
        for (let i = 0; i < ng; i++) { need(1); const r = (b[p++]! >> 2) & 3; need(r); p += r; }
      }
    }
    if (p > b.length) throw new FormatError('VP9 payload descriptor truncated');
    const begin = (x & 0x08) !== 0;
    // B starts a frame (each spatial layer starts with B; the picture ends at the marker).
    if (begin && !this.started) { this.started = true; this.key = (x & 0x40) === 0; }
    if (!this.started) return;
    this.add(b.subarray(p));
  }

  private av1(b: Uint8Array): void {
    const h = b[0]!;
    const z = (h & 0x80) !== 0, y = (h & 0x40) !== 0, w = (h >> 4) & 3, n = (h & 0x08) !== 0;
    if (!z && !this.started) { this.started = true; this.key = n; }
    if (n) this.key = true;
    if (!this.started) return;
    let p = 1;
    const elements: Uint8Array[] = [];
    for (let i = 0; p < b.length; i++) {
      if (w !== 0 && i === w - 1) { elements.push(b.subarray(p)); p = b.length; break; }
      const s = readLeb128(b, p);
      p = s.next;
      if (p + s.value > b.length) throw new FormatError('AV1 OBU element exceeds the packet');
      elements.push(b.subarray(p, p + s.value));
      p += s.value;
    }
    elements.forEach((e, i) => {
      const first = i === 0, last = i === elements.length - 1;
      let obu: Uint8Array | null = e;
      if (first && z) {
        if (!this.obuFrag) { obu = null; } // continuation of a fragment we do not have
        else { this.obuFrag.push(e); obu = null; if (!(last && y)) { obu = concat(this.obuFrag); this.obuFrag = null; } }
      } else if (last && y) { this.obuFrag = [e]; obu = null; }
      if (!obu || !obu.length) return;
      const type = (obu[0]! >> 3) & 0x0f;
      if (type === OBU_TEMPORAL_DELIMITER) return;
      if (type === OBU_SEQUENCE_HEADER) this.key = true;
      this.add(obuWithSize(obu));
    });
  }
}


/** Frames → VP8/VP9/AV1 RTP packets of at most `mtu` bytes. */
export class VpxPacketizer {
  private readonly max: number;
  constructor(readonly codec: VpxCodec, readonly writer: RtpWriter, opts: { mtu?: number } = {}) {
    this.max = (opts.mtu ?? DEFAULT_RTP_MTU) - 12;
  }

  packetize(frame: Uint8Array, timestamp: number, key = false): Uint8Array[] {
    if (this.codec === 'av1') return this.av1(frame, timestamp, key);
    const out: Uint8Array[] = [];
    const room = this.max - 1;
    for (let p = 0; p < frame.length || p === 0; p += room) {
      const end = Math.min(frame.length, p + room);
      const first = p === 0, last = end >= frame.length;
      // VP8: S on the first packet, partition 0. VP9: B first, E last, P on inter frames.
      const d = this.codec === 'vp8' ? (first ? 0x10 : 0) : (first ? 0x08 : 0) | (last ? 0x04 : 0) | (key ? 0 : 0x40);
      out.push(this.writer.packet(timestamp, last, [new Uint8Array([d]), frame.subarray(p, end)]));
      if (frame.length === 0) break;
    }
    return out;
  }

  private av1(frame: Uint8Array, timestamp: number, key: boolean): Uint8Array[] {
    // OBUs without their size field (the element length carries it), temporal delimiters dropped.
    const obus: Uint8Array[] = [];
    let seqHeader = false;
    for (const o of av1Obus(frame)) {
      if (o.type === OBU_TEMPORAL_DELIMITER) continue;
      if (o.type === OBU_SEQUENCE_HEADER) seqHeader = true;
      const hdr = o.header.slice();
      hdr[0] = hdr[0]! & ~0x02;
      obus.push(concat([hdr, o.payload]));
    }
    const out: Uint8Array[] = [];
    let cur: Uint8Array[] = [];
    let curLen = 1;
    let z = false;
    const flush = (y: boolean, last: boolean) => {
      const h = (z ? 0x80 : 0) | (y ? 0x40 : 0) | (out.length === 0 && key && seqHeader ? 0x08 : 0);
      out.push(this.writer.packet(timestamp, last, [new Uint8Array([h]), ...cur]));
      cur = [];
      curLen = 1;
      z = y;
    };
    obus.forEach((obu, i) => {
      let rest = obu;
      while (rest.length) {
        const room = this.max - curLen - 4; // up to 4 bytes of element length
        if (room <= 16) { flush(false, false); continue; }
        const take = Math.min(room, rest.length);
        const part = rest.subarray(0, take);
        cur.push(leb128(part.length), part);
        curLen += leb128(part.length).length + part.length;
        rest = rest.subarray(take);
        if (rest.length) flush(true, false);
      }
      if (i === obus.length - 1) flush(false, true);
    });
    if (!obus.length) { cur = []; flush(false, true); }
    return out;
  }
}
