// H.264 (RFC 6184) and H.265 (RFC 7798) over RTP. Both use the same three packet kinds with different
// header layouts: single NAL unit packets, aggregation packets (STAP-A / AP) and fragmentation units
// (FU-A / FU). Depacketizing yields one access unit per RTP timestamp in the canonical form (4-byte
// length-prefixed NAL units, parameter sets moved into an avcC/hvcC config); packetizing takes that form.
// Not supported (rare, and refused with UnsupportedFormatError): STAP-B, MTAP, FU-B, H.265 PACI and DONL
// (interleaved mode, sprop-max-don-diff > 0).

import type { CodecConfig } from '../../codec/config.ts';
import { accessUnitFromNalus, ParameterSetTracker } from '../../codec/access-unit.ts';
import { H264_NAL_SPS, parseH264Sps, splitAvcc, h264CodecString } from '../../codec/h264.ts';
import { H265_NAL_SPS, h265CodecString, parseH265Sps } from '../../codec/h265.ts';
import { concat, FormatError, UnsupportedFormatError } from '../bytes.ts';
import { DEFAULT_RTP_MTU, Depacketizer, type DepacketizerOptions, type RtpFrame } from './common.ts';
import type { RtpPacket, RtpWriter } from './packet.ts';

type NalCodec = 'h264' | 'h265';

const H264_STAP_A = 24, H264_FU_A = 28;
const H265_AP = 48, H265_FU = 49, H265_PACI = 50;
/** NAL units one access unit may hold (a slice per NAL unit; generous). */
const MAX_NALUS = 1024;

export interface NalDepacketizerOptions extends DepacketizerOptions {
  /** Out-of-band parameter sets (from the SDP sprop-* attributes). */
  vps?: Uint8Array[];
  sps?: Uint8Array[];
  pps?: Uint8Array[];
}

/** Codec config (avcC/hvcC + size + codec string) for a record built from this SPS. */
function configFor(codec: NalCodec, record: Uint8Array, sps: Uint8Array): CodecConfig {
  const cfg: CodecConfig = { codec, data: record };
  try {
    if (codec === 'h264') {
      const s = parseH264Sps(sps);
      cfg.width = s.width;
      cfg.height = s.height;
      cfg.codecString = h264CodecString(sps);
    } else {
      const s = parseH265Sps(sps);
      cfg.width = s.width;
      cfg.height = s.height;
      cfg.codecString = h265CodecString(s);
    }
  } catch (e) {
    if (!(e instanceof FormatError)) throw e;
  }
  return cfg;
}

export class NalDepacketizer extends Depacketizer {
  private readonly h265: boolean;
  private readonly headerSize: number;
  private readonly params: ParameterSetTracker;
  private nalus: Uint8Array[] = [];
  private size = 0;
  private ts = 0;
  private fu: Uint8Array[] | null = null;
  private fuSize = 0;
  /** A fragment start was lost: skip fragments until the next start. */
  private skipping = false;
  private pendingConfig?: CodecConfig;

  constructor(readonly codec: NalCodec, opts: NalDepacketizerOptions = {}) {
    super(opts);
    this.h265 = codec === 'h265';
    this.headerSize = this.h265 ? 2 : 1;
    this.params = new ParameterSetTracker(codec);
    if (opts.sps?.length || opts.pps?.length) {
      try {
        const rec = this.params.update(opts.vps ?? [], opts.sps ?? [], opts.pps ?? []);
        if (rec) this.pendingConfig = configFor(codec, rec, this.params.sps!);
      } catch (e) {
        if (!(e instanceof FormatError)) throw e; // bad sprop-*: wait for in-band parameter sets
      }
    }
  }

  /** The current codec config (from the SDP or in-band parameter sets), if complete. */
  get config(): CodecConfig | undefined {
    return this.params.record ? configFor(this.codec, this.params.record, this.params.sps!) : undefined;
  }

  protected discontinuity(): void {
    if (this.fu) {
      this.fu = null;
      this.fuSize = 0;
      this.stats.droppedFrames++;
    }
    this.skipping = true;
  }

  private add(nal: Uint8Array): void {
    // Trailing zero bytes are not part of a NAL unit (some senders keep the zero of a 4-byte start code).
    let end = nal.length;
    while (end > this.headerSize && nal[end - 1] === 0) end--;
    if (end < nal.length) nal = nal.subarray(0, end);
    if (nal.length < this.headerSize) throw new FormatError(`${this.codec} NAL unit of ${nal.length} byte(s) in RTP`);
    if (this.nalus.length >= MAX_NALUS) throw new FormatError(`more than ${MAX_NALUS} NAL units in one RTP access unit`);
    this.size += nal.length + 4;
    this.checkSize(this.size);
    this.nalus.push(nal);
  }

  protected handle(pkt: RtpPacket, out: RtpFrame[]): void {
    if (this.nalus.length && pkt.timestamp !== this.ts) this.flush(out); // the marker packet was lost
    this.ts = pkt.timestamp;
    const p = pkt.payload;
    const hs = this.headerSize;
    if (p.length < hs) throw new FormatError(`${this.codec} RTP payload of ${p.length} byte(s)`);
    if (p[0]! & 0x80) throw new FormatError(`${this.codec} RTP payload with the forbidden_zero bit set`);
    const type = this.h265 ? (p[0]! >> 1) & 0x3f : p[0]! & 0x1f;
    const aggregate = this.h265 ? H265_AP : H264_STAP_A;
    const fragment = this.h265 ? H265_FU : H264_FU_A;
    if (type === fragment) {
      if (p.length < hs + 2) throw new FormatError(`${this.codec} fragmentation unit of ${p.length} byte(s)`);
      const fh = p[hs]!;
      const start = (fh & 0x80) !== 0, end = (fh & 0x40) !== 0;
      if (start && end) throw new FormatError(`${this.codec} fragmentation unit with both start and end bits`);
      const body = p.subarray(hs + 1);
      if (start) {
        if (this.fu) this.stats.droppedFrames++; // the end of the previous one never came
        let header: Uint8Array;
        if (this.h265) header = Uint8Array.of((p[0]! & 0x81) | ((fh & 0x3f) << 1), p[1]!);
        else header = Uint8Array.of((p[0]! & 0xe0) | (fh & 0x1f));
        this.fu = [header, body.slice()];
        this.fuSize = header.length + body.length;
        this.skipping = false;
      } else if (!this.fu) {
        if (!this.skipping) { this.stats.droppedFrames++; this.skipping = true; }
      } else {
        this.fuSize += body.length;
        this.checkSize(this.fuSize + this.size);
        this.fu.push(body.slice());
        if (end) {
          const nal = concat(this.fu);
          this.fu = null;
          this.fuSize = 0;
          this.add(nal);
        }
      }
    } else {
      if (this.fu) { this.fu = null; this.fuSize = 0; this.stats.droppedFrames++; }
      this.skipping = false;
      if (type === aggregate) {
        let i = hs;
        const n = p.length;
        if (i >= n) throw new FormatError(`empty ${this.codec} aggregation packet`);
        while (i < n) {
          if (n - i < 2) throw new FormatError(`${this.codec} aggregation packet truncated at ${i}`);
          const len = (p[i]! << 8) | p[i + 1]!;
          i += 2;
          if (len === 0 || len > n - i) throw new FormatError(`${this.codec} aggregated NAL unit of ${len} bytes with ${n - i} left`);
          this.add(p.slice(i, i + len));
          i += len;
        }
      } else if (this.h265 ? type >= H265_PACI : type >= 25) {
        throw new UnsupportedFormatError(`${this.codec} RTP packet type ${type} is not supported`);
      } else if (!this.h265 && type === 0) {
        throw new FormatError('H.264 RTP packet with NAL unit type 0');
      } else {
        this.add(p.slice());
      }
    }
    if (pkt.marker) this.flush(out);
  }

  private flush(out: RtpFrame[]): void {
    const nalus = this.nalus;
    this.nalus = [];
    this.size = 0;
    if (this.fu) { this.fu = null; this.fuSize = 0; this.stats.droppedFrames++; }
    if (!nalus.length) return;
    const au = accessUnitFromNalus(this.codec, nalus);
    const rec = this.params.update(au.vps, au.sps, au.pps);
    if (rec) this.pendingConfig = configFor(this.codec, rec, this.params.sps!);
    if (!au.data) return; // parameter sets only: their config goes out with the next picture
    const frame: RtpFrame = { timestamp: this.ts, data: au.data, key: au.key };
    if (this.pendingConfig) {
      frame.config = this.pendingConfig;
      this.pendingConfig = undefined;
    }
    out.push(frame);
  }
}

export interface NalPacketizerOptions {
  /** Largest RTP packet, header included [1400]. */
  mtu?: number;
  /** Put small NAL units together in STAP-A / AP packets [true]. */
  aggregate?: boolean;
}

/**
 * Packetizes canonical access units (4-byte length-prefixed NAL units) of one track. Keyframes without
 * in-band parameter sets get the ones from `setConfig` in front, so a receiver joining at any keyframe
 * can decode.
 */
export class NalPacketizer {
  private readonly h265: boolean;
  private readonly maxPayload: number;
  private readonly aggregate: boolean;
  private paramSets: Uint8Array[] = [];

  constructor(readonly codec: NalCodec, readonly writer: RtpWriter, opts: NalPacketizerOptions = {}) {
    this.h265 = codec === 'h265';
    this.maxPayload = (opts.mtu ?? DEFAULT_RTP_MTU) - 12;
    if (this.maxPayload < 16) throw new RangeError(`RTP MTU ${opts.mtu} is too small`);
    this.aggregate = opts.aggregate ?? true;
  }

  /** Parameter sets (VPS/SPS/PPS NAL units) to send in front of keyframes that lack them. */
  setParameterSets(nalus: Uint8Array[]): void {
    this.paramSets = nalus;
  }

  /** Packets (serialized) for one access unit; the last has the marker bit. */
  packetize(au: Uint8Array, timestamp: number, key = false): Uint8Array[] {
    let nalus = splitAvcc(au, 4);
    if (key && this.paramSets.length) {
      const spsType = this.h265 ? H265_NAL_SPS : H264_NAL_SPS;
      const hasSps = nalus.some((n) => (this.h265 ? (n[0]! >> 1) & 0x3f : n[0]! & 0x1f) === spsType);
      if (!hasSps) nalus = [...this.paramSets, ...nalus];
    }
    const hs = this.h265 ? 2 : 1;
    const out: Uint8Array[] = [];
    const max = this.maxPayload;
    let i = 0;
    while (i < nalus.length) {
      const nal = nalus[i]!;
      if (nal.length < hs) { i++; continue; }
      if (nal.length > max) {
        this.fragment(nal, timestamp, i === nalus.length - 1, out);
        i++;
        continue;
      }
      // Aggregate as many following small NAL units as fit.
      let j = i + 1;
      let size = hs + 2 + nal.length;
      if (this.aggregate) {
        while (j < nalus.length && nalus[j]!.length >= hs && size + 2 + nalus[j]!.length <= max) {
          size += 2 + nalus[j]!.length;
          j++;
        }
      }
      const last = j === nalus.length;
      if (j === i + 1) {
        out.push(this.writer.packet(timestamp, last, nal));
      } else {
        const parts: Uint8Array[] = [];
        if (this.h265) {
          // AP header: F and LayerId from the first unit, the lowest TID of the group.
          let tid = 7;
          for (let k = i; k < j; k++) tid = Math.min(tid, nalus[k]![1]! & 7);
          parts.push(Uint8Array.of((nal[0]! & 0x81) | (H265_AP << 1), (nal[1]! & 0xf8) | tid));
        } else {
          let nri = 0;
          for (let k = i; k < j; k++) nri = Math.max(nri, nalus[k]![0]! & 0x60);
          parts.push(Uint8Array.of(nri | H264_STAP_A));
        }
        for (let k = i; k < j; k++) {
          const n = nalus[k]!;
          parts.push(Uint8Array.of(n.length >> 8, n.length & 0xff), n);
        }
        out.push(this.writer.packet(timestamp, last, parts));
      }
      i = j;
    }
    return out;
  }

  private fragment(nal: Uint8Array, timestamp: number, lastNal: boolean, out: Uint8Array[]): void {
    const hs = this.h265 ? 2 : 1;
    const type = this.h265 ? (nal[0]! >> 1) & 0x3f : nal[0]! & 0x1f;
    const header = this.h265
      ? Uint8Array.of((nal[0]! & 0x81) | (H265_FU << 1), nal[1]!)
      : Uint8Array.of((nal[0]! & 0xe0) | H264_FU_A);
    const chunk = this.maxPayload - hs - 1;
    let p = hs;
    while (p < nal.length) {
      const end = Math.min(nal.length, p + chunk);
      const fh = (p === hs ? 0x80 : 0) | (end === nal.length ? 0x40 : 0) | type;
      out.push(this.writer.packet(timestamp, lastNal && end === nal.length, [header, Uint8Array.of(fh), nal.subarray(p, end)]));
      p = end;
    }
  }
}
