// RTP packets (RFC 3550 5.1): parse and serialize, with CSRC lists, header extensions (RFC 3550 5.3.1 and
// the RFC 8285 one-byte / two-byte element forms) and padding. Parsing returns views into the input.

import { FormatError } from '../bytes.ts';

export const RTP_HEADER_SIZE = 12;

export interface RtpHeaderExtension {
  /** The 16-bit "defined by profile" field (0xBEDE: RFC 8285 one-byte elements, 0x100x: two-byte). */
  profile: number;
  /** The extension body (a multiple of 4 bytes). */
  data: Uint8Array;
}

export interface RtpPacket {
  marker: boolean;
  payloadType: number;
  /** 16-bit sequence number. */
  sequenceNumber: number;
  /** 32-bit timestamp (unsigned). */
  timestamp: number;
  ssrc: number;
  csrc: number[];
  extension?: RtpHeaderExtension;
  payload: Uint8Array;
  /** Padding bytes that followed the payload (0 = none). */
  padding: number;
}

/** Parse one RTP packet (version 2). Throws FormatError on anything malformed. */
export function parseRtp(b: Uint8Array): RtpPacket {
  const n = b.length;
  if (n < RTP_HEADER_SIZE) throw new FormatError(`RTP packet of ${n} bytes is shorter than its header`);
  const b0 = b[0]!;
  if (b0 >> 6 !== 2) throw new FormatError(`RTP version ${b0 >> 6} (expected 2)`);
  const cc = b0 & 0x0f;
  let p = RTP_HEADER_SIZE;
  if (n < p + cc * 4) throw new FormatError(`RTP packet too short for ${cc} CSRC(s)`);
  const dv = new DataView(b.buffer, b.byteOffset, n);
  const csrc: number[] = [];
  for (let i = 0; i < cc; i++, p += 4) csrc.push(dv.getUint32(p));
  let extension: RtpHeaderExtension | undefined;
  if (b0 & 0x10) {
    if (n < p + 4) throw new FormatError('RTP header extension truncated');
    const profile = dv.getUint16(p);
    const len = dv.getUint16(p + 2) * 4;
    p += 4;
    if (n < p + len) throw new FormatError(`RTP header extension of ${len} bytes exceeds the ${n - p} left`);
    extension = { profile, data: b.subarray(p, p + len) };
    p += len;
  }
  let end = n;
  let padding = 0;
  if (b0 & 0x20) {
    padding = b[n - 1]!;
    if (padding === 0 || padding > n - p) throw new FormatError(`RTP padding of ${padding} bytes is invalid`);
    end -= padding;
  }
  const pkt: RtpPacket = {
    marker: (b[1]! & 0x80) !== 0,
    payloadType: b[1]! & 0x7f,
    sequenceNumber: dv.getUint16(2),
    timestamp: dv.getUint32(4),
    ssrc: dv.getUint32(8),
    csrc,
    payload: b.subarray(p, end),
    padding,
  };
  if (extension) pkt.extension = extension;
  return pkt;
}

/** Header length of a packet with these fields. */
function headerLength(csrcCount: number, ext?: RtpHeaderExtension): number {
  return RTP_HEADER_SIZE + csrcCount * 4 + (ext ? 4 + ext.data.length : 0);
}

/**
 * Serialize an RTP packet into one new array. `payload` may be given as parts (joined without an extra
 * copy). Padding, when asked for, is zero bytes ending with the count.
 */
export function serializeRtp(pkt: Omit<RtpPacket, 'payload' | 'csrc' | 'padding'> & { csrc?: number[]; padding?: number; payload: Uint8Array | readonly Uint8Array[] }): Uint8Array {
  const csrc = pkt.csrc ?? [];
  if (csrc.length > 15) throw new FormatError('an RTP packet holds at most 15 CSRCs');
  const ext = pkt.extension;
  if (ext && (ext.data.length % 4 !== 0 || ext.data.length > 0x3fffc)) throw new FormatError('RTP header extension must be a multiple of 4 bytes, at most 262140');
  const padding = pkt.padding ?? 0;
  if (padding < 0 || padding > 255) throw new FormatError(`RTP padding ${padding} out of range`);
  const parts = pkt.payload instanceof Uint8Array ? [pkt.payload] : pkt.payload;
  let plen = 0;
  for (const x of parts) plen += x.length;
  const h = headerLength(csrc.length, ext);
  const out = new Uint8Array(h + plen + padding);
  const dv = new DataView(out.buffer);
  out[0] = 0x80 | (padding ? 0x20 : 0) | (ext ? 0x10 : 0) | csrc.length;
  out[1] = (pkt.marker ? 0x80 : 0) | (pkt.payloadType & 0x7f);
  dv.setUint16(2, pkt.sequenceNumber & 0xffff);
  dv.setUint32(4, pkt.timestamp >>> 0);
  dv.setUint32(8, pkt.ssrc >>> 0);
  let p = RTP_HEADER_SIZE;
  for (const c of csrc) { dv.setUint32(p, c >>> 0); p += 4; }
  if (ext) {
    dv.setUint16(p, ext.profile);
    dv.setUint16(p + 2, ext.data.length / 4);
    out.set(ext.data, p + 4);
    p += 4 + ext.data.length;
  }
  for (const x of parts) { out.set(x, p); p += x.length; }
  if (padding) out[out.length - 1] = padding;
  return out;
}

export interface RtpExtensionElement { id: number; data: Uint8Array }

/**
 * The elements of an RFC 8285 header extension (one-byte form for profile 0xBEDE, two-byte form for
 * 0x1000..0x100F). Other profiles are a FormatError (they have no element structure).
 */
export function parseExtensionElements(ext: RtpHeaderExtension): RtpExtensionElement[] {
  const d = ext.data;
  const out: RtpExtensionElement[] = [];
  let p = 0;
  if (ext.profile === 0xbede) {
    while (p < d.length) {
      const b = d[p]!;
      if (b === 0) { p++; continue; } // padding
      const id = b >> 4;
      if (id === 15) break; // reserved: stop processing
      const len = (b & 0x0f) + 1;
      if (p + 1 + len > d.length) throw new FormatError('RTP one-byte header extension element truncated');
      out.push({ id, data: d.subarray(p + 1, p + 1 + len) });
      p += 1 + len;
    }
  } else if ((ext.profile & 0xfff0) === 0x1000) {
    while (p < d.length) {
      const id = d[p]!;
      if (id === 0) { p++; continue; }
      if (p + 2 > d.length) throw new FormatError('RTP two-byte header extension element truncated');
      const len = d[p + 1]!;
      if (p + 2 + len > d.length) throw new FormatError('RTP two-byte header extension element truncated');
      out.push({ id, data: d.subarray(p + 2, p + 2 + len) });
      p += 2 + len;
    }
  } else {
    throw new FormatError(`RTP header extension profile 0x${ext.profile.toString(16)} has no RFC 8285 elements`);
  }
  return out;
}

/** Build an RFC 8285 header extension (one-byte form when every element fits, else two-byte). */
export function buildExtensionElements(elements: readonly RtpExtensionElement[]): RtpHeaderExtension {
  const oneByte = elements.every((e) => e.id >= 1 && e.id <= 14 && e.data.length >= 1 && e.data.length <= 16);
  let len = 0;
  for (const e of elements) {
    if (!oneByte && (e.id < 1 || e.id > 255 || e.data.length > 255)) throw new FormatError(`RTP extension element id ${e.id} / ${e.data.length} bytes cannot be encoded`);
    len += (oneByte ? 1 : 2) + e.data.length;
  }
  const data = new Uint8Array((len + 3) & ~3);
  let p = 0;
  for (const e of elements) {
    if (oneByte) data[p++] = (e.id << 4) | (e.data.length - 1);
    else { data[p++] = e.id; data[p++] = e.data.length; }
    data.set(e.data, p);
    p += e.data.length;
  }
  return { profile: oneByte ? 0xbede : 0x1000, data };
}

/** Signed distance from sequence number `a` to `b` (b - a) in the 16-bit circle: -32768..32767. */
export function seqDiff(a: number, b: number): number {
  return (((b - a) & 0xffff) << 16) >> 16;
}

/**
 * Numbers, stamps and serializes the packets of one outgoing RTP stream (a track): sequence numbers
 * continue across frames, so packets built once can be shared by every receiver of the stream.
 */
export class RtpWriter {
  sequenceNumber: number;
  /** Packets and payload bytes written (for RTCP SR). */
  packets = 0;
  octets = 0;
  /** The RTP timestamp of the last packet (for RTCP SR). */
  lastTimestamp = 0;

  constructor(readonly payloadType: number, readonly ssrc: number, initialSequence = 0) {
    this.sequenceNumber = initialSequence & 0xffff;
  }

  packet(timestamp: number, marker: boolean, payload: Uint8Array | readonly Uint8Array[]): Uint8Array {
    const out = serializeRtp({ marker, payloadType: this.payloadType, sequenceNumber: this.sequenceNumber, timestamp, ssrc: this.ssrc, payload });
    this.sequenceNumber = (this.sequenceNumber + 1) & 0xffff;
    this.packets++;
    this.octets += out.length - RTP_HEADER_SIZE;
    this.lastTimestamp = timestamp >>> 0;
    return out;
  }
}
