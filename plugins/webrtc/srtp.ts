// SRTP protect for the WHEP send path: one serialized RTP packet (shared by every viewer) in, one SRTP
// packet for one viewer out, synchronously and with one output allocation. The two profiles werift
// negotiates: AES_CM_128_HMAC_SHA1_80 (RFC 3711 §4.1.1, §4.2) and AEAD_AES_128_GCM (RFC 7714). The
// session keys come from the DTLS-SRTP key derivation werift already ran (peer.ts reads them off the
// transport's SRTP context); key derivation and SRTCP stay werift's.
//
// Loaded only through peer.ts, i.e. only where the host gave the plugin werift (which needs node:crypto
// itself): this file is host-bound the same way.

import { createCipheriv, createHmac } from 'node:crypto';

/** DTLS-SRTP protection profile ids (RFC 5764 §4.1.2, RFC 7714 §14.2). */
export const SRTP_AES128_CM_HMAC_SHA1_80 = 0x0001;
export const SRTP_AEAD_AES_128_GCM = 0x0007;

/** Session keys of one direction (RFC 3711 §4.3: k_e, k_s, k_a). */
export interface SrtpSessionKeys {
  profile: number;
  /** k_e, 16 bytes. */
  key: Uint8Array;
  /** k_s: 14 bytes (CM) or 12 (GCM; longer is cut). */
  salt: Uint8Array;
  /** k_a, 20 bytes (CM only). */
  authKey?: Uint8Array;
}

/**
 * The sender's rollover counter (RFC 3711 §3.3.1): the packet index of a sequence number is estimated
 * against the highest one sent so far (s_l), so a resend of a packet from before a wrap gets the ROC it
 * was first sent with, and s_l/ROC only move forward.
 */
export class RolloverCounter {
  roc = 0;
  private sl = -1;

  /** The ROC to protect `seq` with (updating the state), or -1 for a packet before the first one sent. */
  next(seq: number): number {
    if (this.sl < 0) { this.sl = seq; return 0; }
    let v: number;
    if (this.sl < 0x8000) v = seq - this.sl > 0x8000 ? this.roc - 1 : this.roc;
    else v = this.sl - 0x8000 > seq ? this.roc + 1 : this.roc;
    if (v < 0) return -1;
    if (v === this.roc + 1 || (v === this.roc && seq > this.sl)) { this.roc = v >>> 0; this.sl = seq; }
    return v >>> 0;
  }
}

/** Length of a serialized RTP header (fixed part, CSRCs, extension), or -1 if the packet is too short. */
export function rtpHeaderLength(p: Uint8Array): number {
  if (p.length < 12 || p[0]! >> 6 !== 2) return -1;
  let n = 12 + (p[0]! & 0x0f) * 4;
  if (p[0]! & 0x10) {
    if (p.length < n + 4) return -1;
    n += 4 + ((p[n + 2]! << 8) | p[n + 3]!) * 4;
  }
  return n <= p.length ? n : -1;
}

/**
 * One SRTP stream (one SSRC) of a viewer: rewrites SSRC, payload type and (werift's replaceTrack)
 * sequence/timestamp offsets of the shared packet, then encrypts and authenticates it.
 */
export class SrtpSendStream {
  readonly rollover = new RolloverCounter();
  /** Of the last packet protected: its sequence number, RTP timestamp and payload bytes. */
  lastSeq = 0;
  lastTimestamp = 0;
  lastPayloadBytes = 0;
  private readonly gcm: boolean;
  private readonly key: Buffer;
  private readonly salt: Buffer;
  private readonly authKey: Buffer | undefined;
  private readonly iv: Buffer;
  private readonly rocBytes = Buffer.alloc(4);

  constructor(keys: SrtpSessionKeys, readonly ssrc: number) {
    if (keys.profile !== SRTP_AES128_CM_HMAC_SHA1_80 && keys.profile !== SRTP_AEAD_AES_128_GCM) throw new Error(`SRTP profile ${keys.profile} is not supported`);
    this.gcm = keys.profile === SRTP_AEAD_AES_128_GCM;
    if (keys.key.length !== 16) throw new Error('SRTP session key must be 16 bytes');
    this.key = Buffer.from(keys.key);
    const saltLen = this.gcm ? 12 : 14;
    if (keys.salt.length < saltLen) throw new Error(`SRTP session salt must be ${saltLen} bytes`);
    this.salt = Buffer.from(keys.salt.subarray(0, saltLen));
    if (!this.gcm) {
      if (!keys.authKey || keys.authKey.length !== 20) throw new Error('SRTP authentication key must be 20 bytes');
      this.authKey = Buffer.from(keys.authKey);
    }
    this.iv = Buffer.alloc(this.gcm ? 12 : 16);
  }

  /** Bytes SRTP adds after the packet. */
  get tagLength(): number { return this.gcm ? 16 : 10; }

  /**
   * The SRTP packet for `rtp` with this stream's SSRC and `payloadType`; undefined for a packet that is
   * not RTP or that lies before the first one sent (no index for it).
   */
  protect(rtp: Uint8Array, payloadType: number, seqOffset = 0, timestampOffset = 0): Buffer | undefined {
    const hl = rtpHeaderLength(rtp);
    if (hl < 0) return undefined;
    const len = rtp.length;
    const seq = (((rtp[2]! << 8) | rtp[3]!) + seqOffset) & 0xffff;
    const roc = this.rollover.next(seq);
    if (roc < 0) return undefined;
    const ts = ((((rtp[4]! << 24) | (rtp[5]! << 16) | (rtp[6]! << 8) | rtp[7]!) >>> 0) + timestampOffset) >>> 0;
    const out = Buffer.allocUnsafe(len + (this.gcm ? 16 : 10));
    out.set(rtp.subarray(0, hl));
    out[1] = (rtp[1]! & 0x80) | (payloadType & 0x7f);
    out[2] = seq >> 8; out[3] = seq & 0xff;
    out.writeUInt32BE(ts, 4);
    out.writeUInt32BE(this.ssrc >>> 0, 8);
    this.lastSeq = seq;
    this.lastTimestamp = ts;
    this.lastPayloadBytes = len - hl;
    // IV: the salt XOR (SSRC, ROC, SEQ) at the offsets of RFC 3711 §4.1.1 (CM: 16 bytes, the block
    // counter in the last two) or RFC 7714 §8.1 (GCM: 12 bytes).
    const iv = this.iv, s = this.salt;
    iv.fill(0);
    iv.writeUInt32BE(this.ssrc >>> 0, 2 + (this.gcm ? 0 : 2));
    iv.writeUInt32BE(roc, 6 + (this.gcm ? 0 : 2));
    iv.writeUInt16BE(seq, 10 + (this.gcm ? 0 : 2));
    for (let i = 0; i < s.length; i++) iv[i]! ^= s[i]!;
    const payload = rtp.subarray(hl);
    if (this.gcm) {
      const c = createCipheriv('aes-128-gcm', this.key, iv);
      c.setAAD(out.subarray(0, hl));
      const enc = c.update(payload);
      out.set(enc, hl);
      let n = hl + enc.length;
      const fin = c.final();
      if (fin.length) { out.set(fin, n); n += fin.length; }
      out.set(c.getAuthTag(), n);
    } else {
      const enc = createCipheriv('aes-128-ctr', this.key, iv).update(payload);
      out.set(enc, hl);
      this.rocBytes.writeUInt32BE(roc, 0);
      const tag = createHmac('sha1', this.authKey!).update(out.subarray(0, len)).update(this.rocBytes).digest();
      out.set(tag.subarray(0, 10), len);
    }
    return out;
  }
}
