// AAC over RTP: RFC 3640 "mpeg4-generic" (AAC-hbr mode: AU headers with 13-bit sizes and 3-bit indexes;
// other size/index lengths from the fmtp are honoured) in both directions, and RFC 6416 "MP4A-LATM"
// (cpresent=0: the StreamMuxConfig comes from the fmtp `config`) in. Frames are raw AAC access units;
// the config is the AudioSpecificConfig.

import type { CodecConfig } from '../../codec/config.ts';
import { AAC_SAMPLE_RATES, buildAsc, parseAsc, type AacConfig } from '../../codec/aac.ts';
import { BitReader, concat, FormatError, UnsupportedFormatError } from '../bytes.ts';
import { DEFAULT_RTP_MTU, Depacketizer, type DepacketizerOptions, type RtpFrame } from './common.ts';
import type { RtpPacket, RtpWriter } from './packet.ts';

/** Codec config for an AudioSpecificConfig. */
export function aacCodecConfig(asc: Uint8Array): CodecConfig & { sampleRate: number } {
  const c = parseAsc(asc);
  return { codec: 'aac', data: asc, sampleRate: c.sampleRate, channels: c.channels || undefined, codecString: `mp4a.40.${c.extensionObjectType ?? c.objectType}` };
}

export interface Mpeg4GenericOptions extends DepacketizerOptions {
  /** AudioSpecificConfig (fmtp `config`, hex-decoded). */
  config: Uint8Array;
  /** fmtp sizelength / indexlength / indexdeltalength [13 / 3 / 3]. */
  sizeLength?: number;
  indexLength?: number;
  indexDeltaLength?: number;
}

export class Mpeg4GenericDepacketizer extends Depacketizer {
  readonly asc: AacConfig;
  private readonly sizeLength: number;
  private readonly indexLength: number;
  private readonly indexDeltaLength: number;
  private pendingConfig?: CodecConfig;
  private frag: Uint8Array[] | null = null;
  private fragSize = 0;
  private fragNeed = 0;
  private fragTs = 0;

  constructor(opts: Mpeg4GenericOptions) {
    super(opts);
    this.asc = parseAsc(opts.config);
    this.pendingConfig = aacCodecConfig(opts.config);
    this.sizeLength = opts.sizeLength ?? 13;
    this.indexLength = opts.indexLength ?? 3;
    this.indexDeltaLength = opts.indexDeltaLength ?? 3;
    if (this.sizeLength < 1 || this.sizeLength > 16 || this.indexLength > 8 || this.indexDeltaLength > 8) {
      throw new UnsupportedFormatError(`mpeg4-generic sizelength ${this.sizeLength} / indexlength ${this.indexLength} not supported`);
    }
  }

  protected discontinuity(): void {
    if (this.frag) {
      this.frag = null;
      this.stats.droppedFrames++;
    }
  }

  private emit(ts: number, data: Uint8Array, out: RtpFrame[]): void {
    const f: RtpFrame = { timestamp: ts >>> 0, data, key: true };
    if (this.pendingConfig) {
      f.config = this.pendingConfig;
      this.pendingConfig = undefined;
    }
    out.push(f);
  }

  protected handle(pkt: RtpPacket, out: RtpFrame[]): void {
    const p = pkt.payload;
    if (p.length < 2) throw new FormatError(`mpeg4-generic payload of ${p.length} byte(s)`);
    const headerBits = (p[0]! << 8) | p[1]!;
    const headerBytes = (headerBits + 7) >> 3;
    if (headerBits === 0) throw new FormatError('mpeg4-generic packet without AU headers');
    if (2 + headerBytes > p.length) throw new FormatError(`mpeg4-generic AU headers of ${headerBits} bits exceed the packet`);
    const br = new BitReader(p, 2, headerBytes);
    const sizes: number[] = [];
    let bits = headerBits;
    let first = true;
    while (bits > 0) {
      const il = first ? this.indexLength : this.indexDeltaLength;
      if (bits < this.sizeLength + il) throw new FormatError('mpeg4-generic AU header truncated');
      const size = br.bits(this.sizeLength);
      br.bits(il); // index / index-delta: interleaving is not supported, the order is the packet order
      bits -= this.sizeLength + il;
      sizes.push(size);
      first = false;
    }
    let data = p.subarray(2 + headerBytes);
    if (this.frag) {
      // Continuation of a fragmented AU: one AU header with the whole AU's size.
      if (sizes.length !== 1 || sizes[0] !== this.fragNeed || pkt.timestamp !== this.fragTs) {
        this.frag = null;
        this.stats.droppedFrames++;
      } else {
        this.fragSize += data.length;
        if (this.fragSize > this.fragNeed) throw new FormatError('mpeg4-generic fragments exceed the AU size');
        this.frag.push(data.slice());
        if (this.fragSize === this.fragNeed) {
          const au = concat(this.frag);
          this.frag = null;
          this.emit(this.fragTs, au, out);
        } else if (pkt.marker) {
          this.frag = null;
          this.stats.droppedFrames++;
        }
        return;
      }
    }
    if (sizes.length === 1 && sizes[0]! > data.length) {
      // First fragment of an AU larger than one packet.
      this.checkSize(sizes[0]!);
      if (pkt.marker) throw new FormatError(`mpeg4-generic AU of ${sizes[0]} bytes with only ${data.length} present`);
      this.frag = [data.slice()];
      this.fragSize = data.length;
      this.fragNeed = sizes[0]!;
      this.fragTs = pkt.timestamp;
      return;
    }
    let ts = pkt.timestamp;
    const step = this.asc.samplesPerFrame;
    for (const size of sizes) {
      if (size > data.length) throw new FormatError(`mpeg4-generic AU of ${size} bytes with ${data.length} left`);
      this.emit(ts, data.slice(0, size), out);
      data = data.subarray(size);
      ts += step;
    }
  }
}

/** Packetizes raw AAC frames, one per packet (fragmented across packets when larger), AAC-hbr headers. */
export class Mpeg4GenericPacketizer {
  private readonly maxPayload: number;
  constructor(readonly writer: RtpWriter, opts: { mtu?: number } = {}) {
    this.maxPayload = (opts.mtu ?? DEFAULT_RTP_MTU) - 12 - 4;
    if (this.maxPayload < 16) throw new RangeError(`RTP MTU ${opts.mtu} is too small`);
  }

  packetize(frame: Uint8Array, timestamp: number): Uint8Array[] {
    if (frame.length > 0x1fff) throw new FormatError(`AAC frame of ${frame.length} bytes does not fit a 13-bit AU size`);
    const header = Uint8Array.of(0x00, 0x10, frame.length >> 5, (frame.length & 0x1f) << 3);
    const out: Uint8Array[] = [];
    let p = 0;
    do {
      const end = Math.min(frame.length, p + this.maxPayload);
      out.push(this.writer.packet(timestamp, end === frame.length, [header, frame.subarray(p, end)]));
      p = end;
    } while (p < frame.length);
    return out;
  }
}

/** The fmtp of mpeg4-generic AAC-hbr for an AudioSpecificConfig. */
export function mpeg4GenericFmtp(asc: Uint8Array): string {
  let hex = '';
  for (const b of asc) hex += b.toString(16).padStart(2, '0');
  return `profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=${hex}`;
}

// ---------------------------------------------------------------------------------------------------
// MP4A-LATM

export interface LatmConfig {
  asc: Uint8Array;
  aac: AacConfig;
  /** numSubFrames + 1: AUs per AudioMuxElement. */
  subFrames: number;
}

/**
 * Parse a StreamMuxConfig (ISO/IEC 14496-3 1.7.3; audioMuxVersion 0, one program, one layer, frame
 * length type 0), returning the AudioSpecificConfig inside it rebuilt byte-aligned.
 */
export function parseStreamMuxConfig(b: Uint8Array): LatmConfig {
  const br = new BitReader(b);
  if (br.bits(1) !== 0) throw new UnsupportedFormatError('LATM audioMuxVersion 1 is not supported');
  if (br.bits(1) !== 1) throw new UnsupportedFormatError('LATM without allStreamsSameTimeFraming is not supported');
  const subFrames = br.bits(6) + 1;
  if (br.bits(4) !== 0 || br.bits(3) !== 0) throw new UnsupportedFormatError('LATM with several programs or layers is not supported');
  // AudioSpecificConfig, bit-aligned inside the StreamMuxConfig.
  let objectType = br.bits(5);
  if (objectType === 31) objectType = 32 + br.bits(6);
  const readRate = () => {
    const i = br.bits(4);
    if (i === 15) return br.bits(24);
    const r = AAC_SAMPLE_RATES[i];
    if (r === undefined) throw new FormatError(`LATM reserved samplingFrequencyIndex ${i}`);
    return r;
  };
  let sampleRate = readRate();
  const channelConfig = br.bits(4);
  if (objectType === 5 || objectType === 29) {
    readRate(); // extension rate: implicit SBR signalling is used downstream
    objectType = br.bits(5);
  }
  if (objectType === 0 || channelConfig > 7) throw new FormatError('LATM AudioSpecificConfig is invalid');
  let frameLengthFlag = false;
  if (objectType === 1 || objectType === 2 || objectType === 3 || objectType === 4) {
    frameLengthFlag = br.bool();
    if (br.bool()) br.skip(14); // dependsOnCoreCoder: coreCoderDelay
    br.skip(1); // extensionFlag
  }
  if (br.bits(3) !== 0) throw new UnsupportedFormatError('LATM frameLengthType other than 0 is not supported');
  if (sampleRate <= 0) throw new FormatError('LATM sampling rate 0');
  const asc = buildAsc({ objectType, sampleRate, channelConfig, frameLengthFlag });
  return { asc, aac: parseAsc(asc), subFrames };
}

export class LatmDepacketizer extends Depacketizer {
  readonly latm: LatmConfig;
  private pendingConfig?: CodecConfig;
  private parts: Uint8Array[] = [];
  private size = 0;
  private ts = 0;

  constructor(opts: DepacketizerOptions & { config: Uint8Array }) {
    super(opts);
    this.latm = parseStreamMuxConfig(opts.config);
    this.pendingConfig = aacCodecConfig(this.latm.asc);
  }

  protected discontinuity(): void {
    if (this.parts.length) {
      this.parts = [];
      this.size = 0;
      this.stats.droppedFrames++;
    }
  }

  protected handle(pkt: RtpPacket, out: RtpFrame[]): void {
    if (this.parts.length && pkt.timestamp !== this.ts) this.discontinuity();
    this.ts = pkt.timestamp;
    this.size += pkt.payload.length;
    this.checkSize(this.size);
    this.parts.push(pkt.payload.slice());
    if (!pkt.marker) return;
    const el = concat(this.parts);
    this.parts = [];
    this.size = 0;
    // AudioMuxElement(muxConfigPresent = 0): numSubFrames+1 x (PayloadLengthInfo, PayloadMux).
    let p = 0;
    let ts = pkt.timestamp;
    for (let i = 0; i < this.latm.subFrames; i++) {
      let len = 0;
      for (;;) {
        if (p >= el.length) throw new FormatError('LATM PayloadLengthInfo truncated');
        const v = el[p++]!;
        len += v;
        if (v !== 255) break;
      }
      if (len > el.length - p) throw new FormatError(`LATM payload of ${len} bytes with ${el.length - p} left`);
      const f: RtpFrame = { timestamp: ts >>> 0, data: el.subarray(p, p + len), key: true };
      if (this.pendingConfig) {
        f.config = this.pendingConfig;
        this.pendingConfig = undefined;
      }
      out.push(f);
      p += len;
      ts += this.latm.aac.samplesPerFrame;
    }
  }
}
