// RTCP (RFC 3550 6; RFC 4585 feedback; RFC 5104 FIR): parse compound packets into typed records and build
// them. SR, RR, SDES, BYE, generic NACK (RTPFB 1), PLI (PSFB 1) and FIR (PSFB 4); anything else is kept
// as an `unknown` record with its raw body. Parsing returns views into the input.

import { concat, FormatError } from '../bytes.ts';

export const RTCP_SR = 200, RTCP_RR = 201, RTCP_SDES = 202, RTCP_BYE = 203, RTCP_APP = 204;
export const RTCP_RTPFB = 205, RTCP_PSFB = 206;

export interface ReceptionReport {
  ssrc: number;
  /** Fraction lost since the last report, 0..255 (/256). */
  fractionLost: number;
  /** Cumulative packets lost (signed 24-bit). */
  packetsLost: number;
  /** Extended highest sequence number received. */
  highestSeq: number;
  jitter: number;
  /** Middle 32 bits of the NTP time of the last SR received. */
  lsr: number;
  /** Delay since that SR, in 1/65536 s. */
  dlsr: number;
}

export interface SenderReport {
  type: 'sr';
  ssrc: number;
  /** NTP timestamp: seconds since 1900 and 32-bit fraction. */
  ntpSec: number;
  ntpFrac: number;
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
  reports: ReceptionReport[];
}
export interface ReceiverReport { type: 'rr'; ssrc: number; reports: ReceptionReport[] }
export interface SdesChunk { ssrc: number; items: { type: number; text: string }[] }
export interface SourceDescription { type: 'sdes'; chunks: SdesChunk[] }
export interface Goodbye { type: 'bye'; ssrcs: number[]; reason?: string }
export interface Nack { type: 'nack'; senderSsrc: number; mediaSsrc: number; /** Lost sequence numbers. */ lost: number[] }
export interface Pli { type: 'pli'; senderSsrc: number; mediaSsrc: number }
export interface Fir { type: 'fir'; senderSsrc: number; entries: { ssrc: number; seq: number }[] }
export interface UnknownRtcp { type: 'unknown'; packetType: number; count: number; body: Uint8Array }

export type RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Goodbye | Nack | Pli | Fir | UnknownRtcp;

export const SDES_CNAME = 1;

const decoder = new TextDecoder('utf-8');
const encoder = new TextEncoder();

function readReports(dv: DataView, p: number, count: number, end: number): ReceptionReport[] {
  if (p + count * 24 > end) throw new FormatError(`RTCP: ${count} reception report(s) exceed the packet`);
  const out: ReceptionReport[] = [];
  for (let i = 0; i < count; i++, p += 24) {
    const lostWord = dv.getUint32(p + 4);
    out.push({
      ssrc: dv.getUint32(p),
      fractionLost: lostWord >>> 24,
      packetsLost: ((lostWord & 0xffffff) << 8) >> 8,
      highestSeq: dv.getUint32(p + 8),
      jitter: dv.getUint32(p + 12),
      lsr: dv.getUint32(p + 16),
      dlsr: dv.getUint32(p + 20),
    });
  }
  return out;
}

/** Parse a compound RTCP packet (one or more RTCP packets back to back). */
export function parseRtcp(b: Uint8Array): RtcpPacket[] {
  const n = b.length;
  if (n < 4) throw new FormatError(`RTCP packet of ${n} bytes`);
  const dv = new DataView(b.buffer, b.byteOffset, n);
  const out: RtcpPacket[] = [];
  let p = 0;
  while (p < n) {
    if (n - p < 4) throw new FormatError(`RTCP: ${n - p} trailing byte(s)`);
    const b0 = b[p]!;
    if (b0 >> 6 !== 2) throw new FormatError(`RTCP version ${b0 >> 6} (expected 2)`);
    const count = b0 & 0x1f;
    const pt = b[p + 1]!;
    const len = (dv.getUint16(p + 2) + 1) * 4;
    if (len > n - p) throw new FormatError(`RTCP packet of ${len} bytes exceeds the ${n - p} left`);
    let end = p + len;
    if (b0 & 0x20) {
      const pad = b[end - 1]!;
      if (pad === 0 || pad > len - 4) throw new FormatError(`RTCP padding of ${pad} bytes is invalid`);
      end -= pad;
    }
    const q = p + 4;
    const need = (k: number) => { if (q + k > end) throw new FormatError(`RTCP packet type ${pt} too short`); };
    switch (pt) {
      case RTCP_SR:
        need(24);
        out.push({
          type: 'sr', ssrc: dv.getUint32(q), ntpSec: dv.getUint32(q + 4), ntpFrac: dv.getUint32(q + 8),
          rtpTimestamp: dv.getUint32(q + 12), packetCount: dv.getUint32(q + 16), octetCount: dv.getUint32(q + 20),
          reports: readReports(dv, q + 24, count, end),
        });
        break;
      case RTCP_RR:
        need(4);
        out.push({ type: 'rr', ssrc: dv.getUint32(q), reports: readReports(dv, q + 4, count, end) });
        break;
      case RTCP_SDES: {
        const chunks: SdesChunk[] = [];
        let r = q;
        for (let i = 0; i < count; i++) {
          if (r + 4 > end) throw new FormatError('RTCP SDES chunk truncated');
          const chunk: SdesChunk = { ssrc: dv.getUint32(r), items: [] };
          r += 4;
          for (;;) {
            if (r >= end) throw new FormatError('RTCP SDES items not terminated');
            const t = b[r]!;
            if (t === 0) { r = (r + 4) & ~3; break; } // end of list, then pad to a 32-bit boundary
            if (r + 2 > end) throw new FormatError('RTCP SDES item truncated');
            const l = b[r + 1]!;
            if (r + 2 + l > end) throw new FormatError('RTCP SDES item text exceeds the packet');
            chunk.items.push({ type: t, text: decoder.decode(b.subarray(r + 2, r + 2 + l)) });
            r += 2 + l;
          }
          chunks.push(chunk);
        }
        out.push({ type: 'sdes', chunks });
        break;
      }
      case RTCP_BYE: {
        need(count * 4);
        const ssrcs: number[] = [];
        for (let i = 0; i < count; i++) ssrcs.push(dv.getUint32(q + i * 4));
        const bye: Goodbye = { type: 'bye', ssrcs };
        const r = q + count * 4;
        if (r < end) {
          const l = b[r]!;
          if (r + 1 + l > end) throw new FormatError('RTCP BYE reason exceeds the packet');
          bye.reason = decoder.decode(b.subarray(r + 1, r + 1 + l));
        }
        out.push(bye);
        break;
      }
      case RTCP_RTPFB:
      case RTCP_PSFB: {
        need(8);
        const senderSsrc = dv.getUint32(q), mediaSsrc = dv.getUint32(q + 4);
        const fci = q + 8;
        if (pt === RTCP_RTPFB && count === 1) {
          if ((end - fci) % 4 !== 0) throw new FormatError('RTCP NACK FCI is not a multiple of 4 bytes');
          const lost: number[] = [];
          for (let r = fci; r < end; r += 4) {
            const pid = dv.getUint16(r), blp = dv.getUint16(r + 2);
            lost.push(pid);
            for (let k = 0; k < 16; k++) if (blp & (1 << k)) lost.push((pid + k + 1) & 0xffff);
          }
          out.push({ type: 'nack', senderSsrc, mediaSsrc, lost });
        } else if (pt === RTCP_PSFB && count === 1) {
          out.push({ type: 'pli', senderSsrc, mediaSsrc });
        } else if (pt === RTCP_PSFB && count === 4) {
          if ((end - fci) % 8 !== 0) throw new FormatError('RTCP FIR FCI is not a multiple of 8 bytes');
          const entries: { ssrc: number; seq: number }[] = [];
          for (let r = fci; r < end; r += 8) entries.push({ ssrc: dv.getUint32(r), seq: b[r + 4]! });
          out.push({ type: 'fir', senderSsrc, entries });
        } else {
          out.push({ type: 'unknown', packetType: pt, count, body: b.subarray(q, end) });
        }
        break;
      }
      default:
        out.push({ type: 'unknown', packetType: pt, count, body: b.subarray(q, end) });
    }
    p += len;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Building

function header(out: DataView, p: number, count: number, pt: number, len: number): void {
  out.setUint8(p, 0x80 | count);
  out.setUint8(p + 1, pt);
  out.setUint16(p + 2, len / 4 - 1);
}

function writeReports(dv: DataView, p: number, reports: readonly ReceptionReport[]): void {
  for (const r of reports) {
    dv.setUint32(p, r.ssrc >>> 0);
    dv.setUint32(p + 4, ((r.fractionLost & 0xff) << 24 | (r.packetsLost & 0xffffff)) >>> 0);
    dv.setUint32(p + 8, r.highestSeq >>> 0);
    dv.setUint32(p + 12, r.jitter >>> 0);
    dv.setUint32(p + 16, r.lsr >>> 0);
    dv.setUint32(p + 20, r.dlsr >>> 0);
    p += 24;
  }
}

function buildOne(pkt: RtcpPacket): Uint8Array {
  switch (pkt.type) {
    case 'sr':
    case 'rr': {
      if (pkt.reports.length > 31) throw new FormatError('an RTCP SR/RR holds at most 31 reports');
      const sr = pkt.type === 'sr';
      const len = 8 + (sr ? 20 : 0) + pkt.reports.length * 24;
      const out = new Uint8Array(len);
      const dv = new DataView(out.buffer);
      header(dv, 0, pkt.reports.length, sr ? RTCP_SR : RTCP_RR, len);
      dv.setUint32(4, pkt.ssrc >>> 0);
      if (pkt.type === 'sr') {
        dv.setUint32(8, pkt.ntpSec >>> 0);
        dv.setUint32(12, pkt.ntpFrac >>> 0);
        dv.setUint32(16, pkt.rtpTimestamp >>> 0);
        dv.setUint32(20, pkt.packetCount >>> 0);
        dv.setUint32(24, pkt.octetCount >>> 0);
      }
      writeReports(dv, sr ? 28 : 8, pkt.reports);
      return out;
    }
    case 'sdes': {
      if (pkt.chunks.length > 31) throw new FormatError('an RTCP SDES holds at most 31 chunks');
      const bodies = pkt.chunks.map((c) => {
        const items = c.items.map((it) => {
          const t = encoder.encode(it.text);
          if (t.length > 255) throw new FormatError('RTCP SDES item longer than 255 bytes');
          return { type: it.type, t };
        });
        let l = 4;
        for (const it of items) l += 2 + it.t.length;
        l = (l + 4) & ~3; // null terminator + padding
        const o = new Uint8Array(l);
        new DataView(o.buffer).setUint32(0, c.ssrc >>> 0);
        let p = 4;
        for (const it of items) { o[p] = it.type; o[p + 1] = it.t.length; o.set(it.t, p + 2); p += 2 + it.t.length; }
        return o;
      });
      let len = 4;
      for (const x of bodies) len += x.length;
      const out = new Uint8Array(len);
      header(new DataView(out.buffer), 0, pkt.chunks.length, RTCP_SDES, len);
      let p = 4;
      for (const x of bodies) { out.set(x, p); p += x.length; }
      return out;
    }
    case 'bye': {
      if (pkt.ssrcs.length > 31) throw new FormatError('an RTCP BYE holds at most 31 SSRCs');
      const reason = pkt.reason !== undefined ? encoder.encode(pkt.reason) : undefined;
      if (reason && reason.length > 255) throw new FormatError('RTCP BYE reason longer than 255 bytes');
      const len = (4 + pkt.ssrcs.length * 4 + (reason ? 1 + reason.length : 0) + 3) & ~3;
      const out = new Uint8Array(len);
      const dv = new DataView(out.buffer);
      header(dv, 0, pkt.ssrcs.length, RTCP_BYE, len);
      pkt.ssrcs.forEach((s, i) => dv.setUint32(4 + i * 4, s >>> 0));
      if (reason) { out[4 + pkt.ssrcs.length * 4] = reason.length; out.set(reason, 5 + pkt.ssrcs.length * 4); }
      return out;
    }
    case 'nack': {
      // Pack the lost numbers into (PID, BLP) pairs.
      const pairs: [number, number][] = [];
      const lost = [...new Set(pkt.lost.map((s) => s & 0xffff))];
      for (const s of lost) {
        const last = pairs[pairs.length - 1];
        const d = last ? (s - last[0]) & 0xffff : 0;
        if (last && d >= 1 && d <= 16) last[1] |= 1 << (d - 1);
        else pairs.push([s, 0]);
      }
      const len = 12 + pairs.length * 4;
      const out = new Uint8Array(len);
      const dv = new DataView(out.buffer);
      header(dv, 0, 1, RTCP_RTPFB, len);
      dv.setUint32(4, pkt.senderSsrc >>> 0);
      dv.setUint32(8, pkt.mediaSsrc >>> 0);
      pairs.forEach(([pid, blp], i) => { dv.setUint16(12 + i * 4, pid); dv.setUint16(14 + i * 4, blp); });
      return out;
    }
    case 'pli': {
      const out = new Uint8Array(12);
      const dv = new DataView(out.buffer);
      header(dv, 0, 1, RTCP_PSFB, 12);
      dv.setUint32(4, pkt.senderSsrc >>> 0);
      dv.setUint32(8, pkt.mediaSsrc >>> 0);
      return out;
    }
    case 'fir': {
      const len = 12 + pkt.entries.length * 8;
      const out = new Uint8Array(len);
      const dv = new DataView(out.buffer);
      header(dv, 0, 4, RTCP_PSFB, len);
      dv.setUint32(4, pkt.senderSsrc >>> 0);
      dv.setUint32(8, 0); // media source SSRC is unused for FIR (RFC 5104 4.3.1.2)
      pkt.entries.forEach((e, i) => { dv.setUint32(12 + i * 8, e.ssrc >>> 0); out[16 + i * 8] = e.seq & 0xff; });
      return out;
    }
    case 'unknown': {
      if (pkt.body.length % 4 !== 0) throw new FormatError('RTCP body must be a multiple of 4 bytes');
      const len = 4 + pkt.body.length;
      const out = new Uint8Array(len);
      header(new DataView(out.buffer), 0, pkt.count & 0x1f, pkt.packetType, len);
      out.set(pkt.body, 4);
      return out;
    }
  }
}

/** Build a compound RTCP packet from records (RFC 3550 wants an SR or RR first, then SDES: the caller's order is kept). */
export function buildRtcp(packets: readonly RtcpPacket[]): Uint8Array {
  return concat(packets.map(buildOne));
}

/** Unix time in ms -> NTP seconds and fraction (for SR). */
export function toNtp(unixMs: number): { ntpSec: number; ntpFrac: number } {
  const s = unixMs / 1000 + 2208988800;
  const sec = Math.floor(s);
  return { ntpSec: sec >>> 0, ntpFrac: Math.floor((s - sec) * 4294967296) >>> 0 };
}

/** NTP seconds and fraction -> seconds (since 1900) as a float. */
export function ntpSeconds(ntpSec: number, ntpFrac: number): number {
  return ntpSec + ntpFrac / 4294967296;
}

/** The middle 32 bits of an NTP time (the LSR field of a reception report). */
export function ntpMiddle(ntpSec: number, ntpFrac: number): number {
  return (((ntpSec & 0xffff) << 16) | (ntpFrac >>> 16)) >>> 0;
}

// ---------------------------------------------------------------------------------------------------
// Report state

/**
 * What a receiver of one RTP source tracks for its RRs (RFC 3550 6.4.1, A.3 and A.8): extended highest
 * sequence number, cumulative and interval loss, interarrival jitter, and the last SR received.
 */
export class RtpReceiverStats {
  private baseSeq = -1;
  private maxSeq = 0;
  private cycles = 0;
  private received = 0;
  private expectedPrior = 0;
  private receivedPrior = 0;
  private transit = NaN;
  private jitter = 0;
  private lastSr = 0;
  private lastSrArrivalMs = 0;

  constructor(readonly ssrc: number, readonly clockRate: number) {}

  /** Account a packet: its sequence number, RTP timestamp and arrival time (ms, any monotonic clock). */
  packet(seq: number, rtpTimestamp: number, arrivalMs: number): void {
    seq &= 0xffff;
    if (this.baseSeq < 0) {
      this.baseSeq = seq;
      this.maxSeq = seq;
    } else {
      const d = (seq - this.maxSeq) & 0xffff;
      if (d > 0 && d < 0x8000) {
        if (seq < this.maxSeq) this.cycles += 0x10000;
        this.maxSeq = seq;
      }
    }
    this.received++;
    const arrival = (arrivalMs * this.clockRate) / 1000;
    const transit = arrival - (rtpTimestamp >>> 0);
    if (!Number.isNaN(this.transit)) {
      let d = Math.abs(transit - this.transit);
      if (d > 2 ** 31) d = Math.abs(d - 2 ** 32); // a timestamp wrap between the two packets
      this.jitter += (d - this.jitter) / 16;
    }
    this.transit = transit;
  }

  /** Note a sender report from this source (for LSR/DLSR). */
  senderReport(ntpSec: number, ntpFrac: number, arrivalMs: number): void {
    this.lastSr = ntpMiddle(ntpSec, ntpFrac);
    this.lastSrArrivalMs = arrivalMs;
  }

  /** A reception report block as of now (moves the "interval" for fraction lost). */
  report(nowMs: number): ReceptionReport {
    const extMax = this.cycles + this.maxSeq;
    const expected = this.baseSeq < 0 ? 0 : extMax - this.baseSeq + 1;
    const lost = expected - this.received;
    const expectedInterval = expected - this.expectedPrior;
    const receivedInterval = this.received - this.receivedPrior;
    this.expectedPrior = expected;
    this.receivedPrior = this.received;
    const lostInterval = expectedInterval - receivedInterval;
    const fraction = expectedInterval === 0 || lostInterval <= 0 ? 0 : Math.min(255, Math.floor((lostInterval << 8) / expectedInterval));
    return {
      ssrc: this.ssrc,
      fractionLost: fraction,
      packetsLost: Math.max(-0x800000, Math.min(0x7fffff, lost)),
      highestSeq: extMax >>> 0,
      jitter: Math.floor(this.jitter) >>> 0,
      lsr: this.lastSr,
      dlsr: this.lastSr ? Math.floor(((nowMs - this.lastSrArrivalMs) / 1000) * 65536) >>> 0 : 0,
    };
  }
}

/**
 * A sender report for an outgoing track: `rtpTimestamp` is the track's RTP time at `nowMs` (the caller
 * knows its clock mapping), counts from its RtpWriter.
 */
export function senderReport(ssrc: number, nowMs: number, rtpTimestamp: number, packetCount: number, octetCount: number): SenderReport {
  return { type: 'sr', ssrc, ...toNtp(nowMs), rtpTimestamp: rtpTimestamp >>> 0, packetCount: packetCount >>> 0, octetCount: octetCount >>> 0, reports: [] };
}
