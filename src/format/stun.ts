// Just enough of STUN (RFC 8489) to route a datagram: the header (class, method, transaction id) and
// the USERNAME attribute. The ICE mux of the webrtc plugin uses it to tell which session a datagram on
// the shared UDP port belongs to; werift parses and checks the message itself afterwards.
//
// Demultiplexing (RFC 7983 §7): a first byte of 0-3 is STUN, 20-63 DTLS, 128-191 RTP/RTCP.

import { FormatError, textDecoder, toHex } from './bytes.ts';

export const STUN_MAGIC = 0x2112a442;
export const STUN_HEADER = 20;

export const enum StunClass {
  Request = 0,
  Indication = 1,
  Success = 2,
  Error = 3,
}

/** Method numbers the mux cares about (RFC 8489 §18.2, RFC 8656 §17). */
export const StunMethod = {
  Binding: 0x001,
  Allocate: 0x003,
  Refresh: 0x004,
  Send: 0x006,
  Data: 0x007,
  CreatePermission: 0x008,
  ChannelBind: 0x009,
} as const;

/** TURN methods: a client of a TURN server sends these (RFC 8656). */
export const TURN_METHODS: ReadonlySet<number> = new Set([StunMethod.Allocate, StunMethod.Refresh, StunMethod.Send, StunMethod.CreatePermission, StunMethod.ChannelBind]);

export interface StunHeader {
  cls: StunClass;
  method: number;
  /** The 96-bit transaction id as 24 hex digits (a map key). */
  txid: string;
  /** Length of the attributes (bytes after the header). */
  length: number;
}

/**
 * The STUN header of `b`, or undefined when `b` is not a STUN message (first two bits not zero, too
 * short, no magic cookie, or a length field that disagrees with the datagram). Never throws.
 */
export function peekStun(b: Uint8Array): StunHeader | undefined {
  if (b.length < STUN_HEADER || (b[0]! & 0xc0) !== 0) return undefined;
  if (((b[4]! << 24) | (b[5]! << 16) | (b[6]! << 8) | b[7]!) >>> 0 !== STUN_MAGIC) return undefined;
  const length = (b[2]! << 8) | b[3]!;
  if ((length & 3) !== 0 || STUN_HEADER + length !== b.length) return undefined;
  const type = (b[0]! << 8) | b[1]!;
  // Type: M11..M7 C1 M6..M4 C0 M3..M0 (RFC 8489 §5).
  const cls = (((type >> 7) & 2) | ((type >> 4) & 1)) as StunClass;
  const method = (type & 0x000f) | ((type >> 1) & 0x0070) | ((type >> 2) & 0x0f80);
  return { cls, method, txid: toHex(b.subarray(8, STUN_HEADER)), length };
}

/**
 * The value of the first attribute of `type` in a STUN message whose header peekStun accepted, or
 * undefined when there is none. Throws FormatError when an attribute runs past the end.
 */
export function stunAttribute(b: Uint8Array, type: number): Uint8Array | undefined {
  let p = STUN_HEADER;
  while (p + 4 <= b.length) {
    const t = (b[p]! << 8) | b[p + 1]!;
    const len = (b[p + 2]! << 8) | b[p + 3]!;
    if (p + 4 + len > b.length) throw new FormatError(`STUN attribute 0x${t.toString(16)} of ${len} bytes runs past the message`);
    if (t === type) return b.subarray(p + 4, p + 4 + len);
    p += 4 + ((len + 3) & ~3);
  }
  if (p !== b.length) throw new FormatError('STUN attributes do not fill the message');
  return undefined;
}

export const STUN_USERNAME = 0x0006;

/**
 * The local part of an ICE connectivity check's USERNAME ("ours:theirs", RFC 8445 §7.2.2): the ufrag of
 * the agent the request is meant for. Undefined when there is no USERNAME or no colon; throws
 * FormatError for a malformed message or a USERNAME over 513 bytes (RFC 8489 §14.3).
 */
export function iceLocalUfrag(b: Uint8Array): string | undefined {
  const u = stunAttribute(b, STUN_USERNAME);
  if (!u) return undefined;
  if (u.length > 513) throw new FormatError(`STUN USERNAME of ${u.length} bytes`);
  const colon = u.indexOf(0x3a);
  if (colon <= 0) return undefined;
  return textDecoder.decode(u.subarray(0, colon));
}
