// MPEG-2 Transport Stream (ISO/IEC 13818-1): a muxer from canonical frames to 188-byte packets and a
// push-based demuxer back to access units. Shared by HLS output, HLS pull and the recorders.
//
// Muxer: one TsMuxer per output stream (it owns the continuity counters). tables() gives a PAT and a PMT
// (call it at every segment start); video()/audio() give whole packets for one PES each, built into one
// preallocated buffer. H.264/H.265 frames (4-byte length-prefixed NAL units) go out as Annex B with an
// access unit delimiter and, on keyframes, the parameter sets of the track's avcC/hvcC; AAC raw frames get
// ADTS headers; Opus packets get the control header of the ETSI "Opus in MPEG-2 TS" mapping.
//
// Demuxer: feed chunks of any size; it resyncs on 0x47, follows PAT/PMT, reassembles PES packets on the
// elementary PIDs and emits access units in canonical form (length-prefixed NAL units without AUD and
// parameter sets, which come out as a built avcC/hvcC instead; raw AAC frames plus their
// AudioSpecificConfig; bare Opus packets). Timestamps are 90 kHz, unwrapped past the 33-bit rollover.

import { FormatError } from './bytes.ts';
import { readPesTs, writePesTs } from './pes.ts';
import type { CodecConfig } from '../codec/config.ts';
import { accessUnitFromNalus } from '../codec/access-unit.ts';
import {
  buildAvcC, forEachNalu, H264_NAL_AUD, H264_NAL_SPS, parseAvcC, splitAnnexB,
} from '../codec/h264.ts';
import {
  buildHvcC, H265_NAL_AUD, H265_NAL_SPS, parseHvcC,
} from '../codec/h265.ts';
import { adtsHeader, buildAsc, parseAsc, splitAdts, type AacConfig } from '../codec/aac.ts';
import { opusPacketSamples, parseOpusHead } from '../codec/opus.ts';

export const TS_PACKET_SIZE = 188;
export const TS_SYNC = 0x47;
/** The PES/PCR clock. */
export const TS_CLOCK = 90000;

export const TS_STREAM_MP3 = 0x03;
export const TS_STREAM_MPEG2_AUDIO = 0x04;
export const TS_STREAM_PRIVATE = 0x06;
export const TS_STREAM_AAC = 0x0f;
export const TS_STREAM_H264 = 0x1b;
export const TS_STREAM_H265 = 0x24;

const PTS_MOD = 2 ** 33;

// ---------------------------------------------------------------------------------------------------
// CRC-32/MPEG-2 (polynomial 0x04C11DB7, MSB first, initial value all ones, no final xor) for PSI sections.

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 24;
    for (let k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC-32/MPEG-2 of b[start..end). */
export function crc32Mpeg(b: Uint8Array, start = 0, end = b.length): number {
  let crc = 0xffffffff;
  for (let i = start; i < end; i++) crc = (crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ b[i]!) & 0xff]!;
  return crc >>> 0;
}

/** A timestamp in `clockRate` units as a 90 kHz value wrapped into 33 bits. */
export function toTsClock(t: number, clockRate: number): number {
  const v = clockRate === TS_CLOCK ? Math.round(t) : Math.round((t * TS_CLOCK) / clockRate);
  return ((v % PTS_MOD) + PTS_MOD) % PTS_MOD;
}

// ---------------------------------------------------------------------------------------------------
// Muxer

export type TsCodec = 'h264' | 'h265' | 'aac' | 'mp3' | 'opus';

export interface TsTrackOptions {
  /** Defaults to config.codec. */
  codec?: string;
  config: CodecConfig;
  /** Clock rate of the dts/cts given to video()/audio() (the track clock). */
  clockRate: number;
  /** Elementary PID [0x100 video, 0x101 audio]. */
  pid?: number;
}

export interface TsMuxerOptions {
  video?: TsTrackOptions;
  audio?: TsTrackOptions;
  /** [1] */
  programNumber?: number;
  /** [0x1000] */
  pmtPid?: number;
  /** transport_stream_id in the PAT [1]. */
  transportStreamId?: number;
}

interface MuxTrack {
  codec: TsCodec;
  pid: number;
  streamType: number;
  streamId: number;
  clockRate: number;
  /** Descriptors for the PMT ES_info. */
  descriptors: Uint8Array;
  /** Annex B parameter sets (each with a 4-byte start code) prepended to keyframes. */
  paramSets: Uint8Array;
  aac?: AacConfig;
}

const START_CODE = new Uint8Array([0, 0, 0, 1]);
// Access unit delimiters: H.264 primary_pic_type 7 (any slice type); H.265 pic_type 2 (any), layer 0, tid 1.
const AUD_H264 = new Uint8Array([0, 0, 0, 1, 0x09, 0xf0]);
const AUD_H265 = new Uint8Array([0, 0, 0, 1, 0x46, 0x01, 0x50]);

function annexB(nalus: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const x of nalus) n += 4 + x.length;
  const out = new Uint8Array(n);
  let p = 0;
  for (const x of nalus) {
    out.set(START_CODE, p);
    out.set(x, p + 4);
    p += 4 + x.length;
  }
  return out;
}

/** channel_config_code of the Opus audio descriptor (ETSI TS 102 366-style extension descriptor). */
function opusChannelConfigCode(head: Uint8Array | undefined, channels: number): number {
  if (!head) return channels >= 1 && channels <= 2 ? channels : 0xff;
  const h = parseOpusHead(head);
  if (h.mappingFamily === 0) return h.channels;
  // Family 1 in the Vorbis channel order with the standard stream layout is signalled by channel count;
  // anything else needs the extended form, which this muxer does not write (0xFF: "see the stream").
  if (h.mappingFamily === 1 && h.channels <= 8) {
    const coupled = [0, 0, 1, 1, 2, 2, 2, 3, 3][h.channels]!;
    const streams = h.channels - coupled;
    let identity = h.streamCount === streams && h.coupledCount === coupled;
    for (let i = 0; identity && i < h.channels; i++) if (h.mapping![i] !== i) identity = false;
    if (identity) return h.channels;
  }
  return 0xff;
}

function muxTrack(kind: 'video' | 'audio', o: TsTrackOptions): MuxTrack {
  const codec = (o.codec ?? o.config.codec) as TsCodec;
  if (!(o.clockRate > 0)) throw new FormatError(`TsMuxer: invalid ${kind} clock rate ${o.clockRate}`);
  const pid = o.pid ?? (kind === 'video' ? 0x100 : 0x101);
  if (!Number.isInteger(pid) || pid < 0x10 || pid > 0x1ffe) throw new FormatError(`TsMuxer: invalid ${kind} PID ${pid}`);
  const t: MuxTrack = {
    codec, pid, streamType: 0, streamId: kind === 'video' ? 0xe0 : 0xc0, clockRate: o.clockRate,
    descriptors: new Uint8Array(0), paramSets: new Uint8Array(0),
  };
  const data = o.config.data;
  switch (codec) {
    case 'h264':
      t.streamType = TS_STREAM_H264;
      if (data) {
        const c = parseAvcC(data);
        t.paramSets = annexB([...c.sps, ...c.pps]);
      }
      break;
    case 'h265':
      t.streamType = TS_STREAM_H265;
      if (data) {
        const c = parseHvcC(data);
        t.paramSets = annexB([...c.vps, ...c.sps, ...c.pps]);
      }
      break;
    case 'aac':
      t.streamType = TS_STREAM_AAC;
      if (!data) throw new FormatError('TsMuxer: AAC needs the AudioSpecificConfig in config.data');
      t.aac = parseAsc(data);
      break;
    case 'mp3':
      t.streamType = TS_STREAM_MP3;
      break;
    case 'opus': {
      t.streamType = TS_STREAM_PRIVATE;
      t.streamId = 0xbd; // private_stream_1
      const code = opusChannelConfigCode(data, o.config.channels ?? 2);
      // registration_descriptor 'Opus' + DVB extension descriptor (tag 0x7F) carrying the Opus audio
      // descriptor (extension tag 0x80) with its channel_config_code.
      t.descriptors = new Uint8Array([0x05, 4, 0x4f, 0x70, 0x75, 0x73, 0x7f, 2, 0x80, code]);
      break;
    }
    default:
      throw new FormatError(`TsMuxer: ${kind} codec ${JSON.stringify(codec)} cannot be carried in MPEG-TS`);
  }
  if (kind === 'video' && codec !== 'h264' && codec !== 'h265') throw new FormatError(`TsMuxer: ${codec} is not a video codec`);
  if (kind === 'audio' && (codec === 'h264' || codec === 'h265')) throw new FormatError(`TsMuxer: ${codec} is not an audio codec`);
  return t;
}

/**
 * Muxes one program with up to one video and one audio elementary stream. All methods return whole
 * 188-byte packets; continuity counters carry over between calls (one muxer per output stream).
 */
export class TsMuxer {
  private readonly vt: MuxTrack | undefined;
  private readonly at: MuxTrack | undefined;
  readonly pmtPid: number;
  readonly programNumber: number;
  readonly pcrPid: number;
  private readonly tsId: number;
  /** Continuity counters by PID. */
  private readonly cc = new Map<number, number>();
  private pat: Uint8Array | undefined;
  private pmt: Uint8Array | undefined;

  constructor(opts: TsMuxerOptions) {
    if (!opts.video && !opts.audio) throw new FormatError('TsMuxer needs a video or an audio track');
    this.vt = opts.video ? muxTrack('video', opts.video) : undefined;
    this.at = opts.audio ? muxTrack('audio', opts.audio) : undefined;
    if (this.vt && this.at && this.vt.pid === this.at.pid) throw new FormatError('TsMuxer: video and audio share a PID');
    this.pmtPid = opts.pmtPid ?? 0x1000;
    this.programNumber = opts.programNumber ?? 1;
    this.tsId = opts.transportStreamId ?? 1;
    this.pcrPid = (this.vt ?? this.at)!.pid;
  }

  private nextCc(pid: number): number {
    const c = this.cc.get(pid) ?? 15;
    const n = (c + 1) & 15;
    this.cc.set(pid, n);
    return n;
  }

  /** PAT + PMT (376 bytes), with fresh continuity counters. Send at the start of every segment. */
  tables(): Uint8Array {
    if (!this.pat) this.pat = this.patSection();
    if (!this.pmt) this.pmt = this.pmtSection();
    const out = new Uint8Array(2 * TS_PACKET_SIZE);
    this.psiPacket(out, 0, 0, this.pat);
    this.psiPacket(out, TS_PACKET_SIZE, this.pmtPid, this.pmt);
    return out;
  }

  private psiPacket(out: Uint8Array, at: number, pid: number, section: Uint8Array): void {
    out[at] = TS_SYNC;
    out[at + 1] = 0x40 | (pid >> 8); // payload_unit_start_indicator
    out[at + 2] = pid & 0xff;
    out[at + 3] = 0x10 | this.nextCc(pid); // payload only
    out[at + 4] = 0; // pointer_field
    out.set(section, at + 5);
    out.fill(0xff, at + 5 + section.length, at + TS_PACKET_SIZE);
  }

  /** Wraps a section body (after section_length) with the common header and the CRC. */
  private section(tableId: number, idExt: number, body: Uint8Array): Uint8Array {
    const len = 5 + body.length + 4; // id ext, version, section numbers; body; CRC
    if (len + 3 > TS_PACKET_SIZE - 5) throw new FormatError('TsMuxer: PSI section does not fit one packet');
    const s = new Uint8Array(3 + len);
    s[0] = tableId;
    s[1] = 0xb0 | (len >> 8); // section_syntax_indicator, '0', reserved
    s[2] = len & 0xff;
    s[3] = idExt >> 8;
    s[4] = idExt & 0xff;
    s[5] = 0xc1; // reserved, version 0, current_next_indicator
    s[6] = 0;
    s[7] = 0;
    s.set(body, 8);
    const crc = crc32Mpeg(s, 0, s.length - 4);
    s[s.length - 4] = crc >>> 24;
    s[s.length - 3] = crc >>> 16;
    s[s.length - 2] = crc >>> 8;
    s[s.length - 1] = crc;
    return s;
  }

  private patSection(): Uint8Array {
    const p = this.programNumber, pid = this.pmtPid;
    return this.section(0x00, this.tsId, new Uint8Array([p >> 8, p & 0xff, 0xe0 | (pid >> 8), pid & 0xff]));
  }

  private pmtSection(): Uint8Array {
    const es: number[] = [0xe0 | (this.pcrPid >> 8), this.pcrPid & 0xff, 0xf0, 0x00]; // PCR PID, no program info
    for (const t of [this.vt, this.at]) {
      if (!t) continue;
      const d = t.descriptors;
      es.push(t.streamType, 0xe0 | (t.pid >> 8), t.pid & 0xff, 0xf0 | (d.length >> 8), d.length & 0xff, ...d);
    }
    return this.section(0x02, this.programNumber, Uint8Array.from(es));
  }

  /**
   * One video access unit: `data` is 4-byte length-prefixed NAL units, `dts`/`cts` in the track clock.
   * An AUD is added unless the frame starts with one; keyframes get the avcC/hvcC parameter sets unless
   * the frame carries its own.
   */
  video(dts: number, cts: number, key: boolean, data: Uint8Array): Uint8Array {
    const t = this.vt;
    if (!t) throw new FormatError('TsMuxer: no video track');
    const h265 = t.codec === 'h265';
    // One pass over the NAL units: validate lengths, find an AUD at the front and in-band parameter sets.
    let first = true, hasAud = false, hasParams = false;
    forEachNalu(data, 4, (s) => {
      const type = h265 ? (data[s]! >> 1) & 0x3f : data[s]! & 0x1f;
      if (first && type === (h265 ? H265_NAL_AUD : H264_NAL_AUD)) hasAud = true;
      if (h265 ? type === H265_NAL_SPS : type === H264_NAL_SPS) hasParams = true;
      first = false;
    });
    const aud = hasAud ? undefined : h265 ? AUD_H265 : AUD_H264;
    const params = key && !hasParams && t.paramSets.length ? t.paramSets : undefined;
    // 4-byte lengths become 4-byte start codes: the payload keeps the frame's size.
    const size = (aud?.length ?? 0) + (params?.length ?? 0) + data.length;
    const dts90 = toTsClock(dts, t.clockRate);
    const pts90 = toTsClock(dts + cts, t.clockRate);
    const w = this.beginPes(t, size, pts90, dts90, this.pcrPid === t.pid ? dts90 : -1, key);
    if (aud) w.put(aud, 0, aud.length);
    if (params) w.put(params, 0, params.length);
    forEachNalu(data, 4, (s, e) => {
      w.put(START_CODE, 0, 4);
      w.put(data, s, e);
    });
    return w.finish();
  }

  /**
   * Audio: one frame, or several consecutive frames in one PES (PTS = `dts` of the first). AAC frames are
   * raw (ADTS headers are added here); Opus and MP3 are packets.
   */
  audio(dts: number, data: Uint8Array | readonly Uint8Array[]): Uint8Array {
    const t = this.at;
    if (!t) throw new FormatError('TsMuxer: no audio track');
    const frames = data instanceof Uint8Array ? [data] : data;
    if (frames.length === 0) throw new FormatError('TsMuxer: no audio frames');
    let headers: Uint8Array[] | undefined;
    let size = 0;
    if (t.codec === 'aac') {
      headers = frames.map((f) => {
        if (f.length === 0) throw new FormatError('TsMuxer: empty AAC frame');
        return adtsHeader(t.aac!, f.length);
      });
      size = frames.length * 7;
    } else if (t.codec === 'opus') {
      headers = frames.map(opusControlHeader);
      for (const h of headers) size += h.length;
    }
    for (const f of frames) size += f.length;
    const ts = toTsClock(dts, t.clockRate);
    const isPcr = this.pcrPid === t.pid;
    const w = this.beginPes(t, size, ts, ts, isPcr ? ts : -1, isPcr);
    for (let i = 0; i < frames.length; i++) {
      const h = headers?.[i];
      if (h) w.put(h, 0, h.length);
      const f = frames[i]!;
      w.put(f, 0, f.length);
    }
    return w.finish();
  }

  /** Layout for one PES of `size` payload bytes: writes every packet header and the PES header. */
  private beginPes(t: MuxTrack, size: number, pts: number, dts: number, pcr: number, rai: boolean): PesWriter {
    const withDts = dts !== pts;
    const hdrLen = withDts ? 19 : 14;
    const total = hdrLen + size;
    // First packet: adaptation field with flags when there is a PCR or random access to signal.
    const af0 = pcr >= 0 ? 8 : rai ? 2 : 0;
    const cap0 = 184 - af0;
    const rest = total > cap0 ? total - cap0 : 0;
    const count = 1 + Math.ceil(rest / 184);
    const out = new Uint8Array(count * TS_PACKET_SIZE);
    let firstStart = 0, lastStart = 0;
    for (let i = 0; i < count; i++) {
      const at = i * TS_PACKET_SIZE;
      const payload = i === 0 ? Math.min(total, cap0) : Math.min(184, rest - (i - 1) * 184);
      const afBase = i === 0 ? af0 : 0;
      const af = 184 - payload; // adaptation field bytes in this packet (including its length byte)
      out[at] = TS_SYNC;
      out[at + 1] = (i === 0 ? 0x40 : 0) | (t.pid >> 8);
      out[at + 2] = t.pid & 0xff;
      out[at + 3] = (af > 0 ? 0x30 : 0x10) | this.nextCc(t.pid);
      if (af > 0) {
        out[at + 4] = af - 1; // adaptation_field_length
        if (af > 1) {
          let flags = 0;
          let p = at + 6;
          if (afBase > 0) {
            if (rai) flags |= 0x40;
            if (pcr >= 0) {
              flags |= 0x10;
              // program_clock_reference_base (33 bits) then 6 reserved bits and a zero extension.
              const hi = Math.floor(pcr / 2);
              out[p] = hi >>> 24;
              out[p + 1] = hi >>> 16;
              out[p + 2] = hi >>> 8;
              out[p + 3] = hi;
              out[p + 4] = ((pcr & 1) << 7) | 0x7e;
              out[p + 5] = 0;
              p += 6;
            }
          }
          out[at + 5] = flags;
          out.fill(0xff, p, at + TS_PACKET_SIZE - payload); // stuffing
        }
      }
      if (i === 0) firstStart = at + 4 + af;
      if (i === count - 1) lastStart = at + 4 + af;
    }
    // PES header.
    const h = firstStart;
    out[h] = 0;
    out[h + 1] = 0;
    out[h + 2] = 1;
    out[h + 3] = t.streamId;
    const pesLen = total - 6;
    const lenField = pesLen > 0xffff ? 0 : pesLen; // 0 = unbounded (allowed for video)
    if (lenField === 0 && t.streamId !== 0xe0) throw new FormatError(`TsMuxer: audio PES of ${pesLen} bytes is too large`);
    out[h + 4] = lenField >> 8;
    out[h + 5] = lenField & 0xff;
    out[h + 6] = 0x84; // '10', data_alignment_indicator
    out[h + 7] = withDts ? 0xc0 : 0x80;
    out[h + 8] = hdrLen - 9;
    writePesTs(out, h + 9, withDts ? 3 : 2, pts);
    if (withDts) writePesTs(out, h + 14, 1, dts);
    return new PesWriter(out, firstStart + hdrLen, lastStart, count);
  }
}

/** opus_control_header: 0x7FE0 prefix (no trim flags, no extension), then au_size in 255-steps. */
function opusControlHeader(packet: Uint8Array): Uint8Array {
  const n = packet.length;
  const h = new Uint8Array(2 + Math.floor(n / 255) + 1);
  h[0] = 0x7f;
  h[1] = 0xe0;
  let p = 2, left = n;
  while (left >= 255) {
    h[p++] = 0xff;
    left -= 255;
  }
  h[p] = left;
  return h;
}

/** Copies PES payload bytes across the payload regions of preformatted packets. */
class PesWriter {
  private p: number;
  private end: number;
  private i = 0;

  constructor(
    private readonly out: Uint8Array,
    start: number,
    private readonly lastStart: number,
    private readonly count: number,
  ) {
    this.p = start;
    this.end = TS_PACKET_SIZE;
  }

  put(src: Uint8Array, s: number, e: number): void {
    const out = this.out;
    while (s < e) {
      if (this.p === this.end) {
        const i = ++this.i;
        this.p = i === this.count - 1 ? this.lastStart : i * TS_PACKET_SIZE + 4;
        this.end = (i + 1) * TS_PACKET_SIZE;
      }
      const n = Math.min(e - s, this.end - this.p);
      out.set(n === src.length ? src : src.subarray(s, s + n), this.p);
      this.p += n;
      s += n;
    }
  }

  finish(): Uint8Array {
    if (this.p !== this.out.length) throw new Error(`TsMuxer internal error: PES layout ${this.p}/${this.out.length}`);
    return this.out;
  }
}

// ---------------------------------------------------------------------------------------------------
// Demuxer

export interface TsAccessUnit {
  pid: number;
  streamType: number;
  /** 'h264' | 'h265' | 'aac' | 'mp3' | 'opus' | 'unknown' */
  codec: string;
  /** 90 kHz, unwrapped (keeps growing past the 33-bit rollover). */
  pts: number;
  dts: number;
  /** Random access point: IDR/IRAP for video (or the random_access_indicator); always true for audio. */
  key: boolean;
  /** Canonical payload (see the file comment); a fresh array or a view of one, owned by the receiver. */
  data: Uint8Array;
  /**
   * A new codec configuration (avcC / hvcC / AudioSpecificConfig) seen with this unit: on the first unit
   * that has one and whenever it changes.
   */
  config?: CodecConfig;
}

export interface TsDemuxerOptions {
  /** Largest PES packet accepted, in bytes [8 MiB]; a bigger one is dropped and counted as an error. */
  maxPesSize?: number;
  /** Throw a FormatError on the first malformed packet/section/PES instead of counting and skipping it. */
  strict?: boolean;
}

export interface TsDemuxerStats {
  packets: number;
  /** Bytes skipped looking for sync. */
  resyncBytes: number;
  /** Continuity counter discontinuities (the PES in progress is dropped). */
  ccErrors: number;
  /** Malformed packets, sections, PES packets or payloads that were skipped. */
  errors: number;
  units: number;
}

interface PesState {
  pid: number;
  streamType: number;
  codec: string;
  cc: number;
  buf: Uint8Array;
  fill: number;
  /** Declared PES size (6 + PES_packet_length), or 0 for unbounded. */
  expect: number;
  active: boolean;
  rai: boolean;
  /** Last emitted config bytes, to report changes only. */
  configKey: string;
  lastTs: number;
}

const DEFAULT_MAX_PES = 8 * 1024 * 1024;

function codecOfStream(streamType: number, descriptors: Uint8Array): string {
  switch (streamType) {
    case TS_STREAM_H264: return 'h264';
    case TS_STREAM_H265: return 'h265';
    case TS_STREAM_AAC: return 'aac';
    case TS_STREAM_MP3: case TS_STREAM_MPEG2_AUDIO: return 'mp3';
    case TS_STREAM_PRIVATE: {
      // Opus is identified by a registration descriptor with format_identifier 'Opus'.
      for (let p = 0; p + 2 <= descriptors.length;) {
        const tag = descriptors[p]!, len = descriptors[p + 1]!;
        if (p + 2 + len > descriptors.length) break;
        if (tag === 0x05 && len >= 4 && descriptors[p + 2] === 0x4f && descriptors[p + 3] === 0x70 && descriptors[p + 4] === 0x75 && descriptors[p + 5] === 0x73) return 'opus';
        p += 2 + len;
      }
      return 'unknown';
    }
    default: return 'unknown';
  }
}

/**
 * Push-based transport stream demuxer. Malformed input is skipped and counted in `stats` (or, with
 * `strict`, thrown as a FormatError); memory stays bounded by `maxPesSize` per elementary stream.
 */
export class TsDemuxer {
  readonly stats: TsDemuxerStats = { packets: 0, resyncBytes: 0, ccErrors: 0, errors: 0, units: 0 };
  /** The last error message (for logs). */
  lastError = '';
  /** PMT PID from the PAT (-1 until seen). */
  pmtPid = -1;
  /** Elementary streams from the PMT. */
  readonly streams = new Map<number, { streamType: number; codec: string }>();

  private readonly onUnit: (u: TsAccessUnit) => void;
  private readonly maxPes: number;
  private readonly strict: boolean;
  private readonly carry = new Uint8Array(TS_PACKET_SIZE);
  private carryLen = 0;
  private readonly pes = new Map<number, PesState>();
  /** PSI section reassembly per PID. */
  private readonly psi = new Map<number, { buf: Uint8Array; fill: number; need: number }>();

  constructor(onUnit: (u: TsAccessUnit) => void, opts: TsDemuxerOptions = {}) {
    this.onUnit = onUnit;
    this.maxPes = opts.maxPesSize ?? DEFAULT_MAX_PES;
    this.strict = opts.strict ?? false;
  }

  private fail(msg: string): void {
    this.stats.errors++;
    this.lastError = msg;
    if (this.strict) throw new FormatError(msg);
  }

  push(chunk: Uint8Array): void {
    const n = chunk.length;
    let p = 0;
    // Complete a packet split across pushes.
    if (this.carryLen > 0) {
      const take = Math.min(TS_PACKET_SIZE - this.carryLen, n);
      this.carry.set(chunk.subarray(0, take), this.carryLen);
      this.carryLen += take;
      p = take;
      if (this.carryLen < TS_PACKET_SIZE) return;
      this.carryLen = 0;
      this.packet(this.carry, 0);
    }
    while (p < n) {
      if (chunk[p] !== TS_SYNC) {
        // Lost sync: skip to the next 0x47 that is followed by another one a packet later (or the end).
        const from = p;
        p++;
        while (p < n && !(chunk[p] === TS_SYNC && (p + TS_PACKET_SIZE >= n || chunk[p + TS_PACKET_SIZE] === TS_SYNC))) p++;
        this.stats.resyncBytes += p - from;
        continue;
      }
      if (n - p < TS_PACKET_SIZE) {
        this.carry.set(chunk.subarray(p), 0);
        this.carryLen = n - p;
        return;
      }
      this.packet(chunk, p);
      p += TS_PACKET_SIZE;
    }
  }

  /** End of input: emits PES packets still open (unbounded video PES ends at the next start). */
  end(): void {
    for (const s of this.pes.values()) if (s.active) this.finishPes(s);
    this.carryLen = 0;
  }

  private packet(b: Uint8Array, at: number): void {
    this.stats.packets++;
    const b1 = b[at + 1]!;
    if (b1 & 0x80) return this.fail('transport_error_indicator set');
    const pid = ((b1 & 0x1f) << 8) | b[at + 2]!;
    if (pid === 0x1fff) return; // null packet
    const pusi = (b1 & 0x40) !== 0;
    const b3 = b[at + 3]!;
    if (b3 & 0xc0) return this.fail(`scrambled packet on PID ${pid}`);
    const afc = (b3 >> 4) & 3;
    const cc = b3 & 15;
    let p = at + 4;
    const end = at + TS_PACKET_SIZE;
    let rai = false;
    if (afc & 2) {
      const afLen = b[p]!;
      if (afLen > (afc & 1 ? 182 : 183)) return this.fail(`adaptation field length ${afLen} overflows the packet on PID ${pid}`);
      if (afLen > 0) rai = (b[p + 1]! & 0x40) !== 0;
      p += 1 + afLen;
    }
    if (!(afc & 1)) return; // no payload
    if (pid === 0 || pid === this.pmtPid) return this.psiPayload(pid, pusi, b, p, end);
    const s = this.pes.get(pid);
    if (!s) return;
    // Continuity: duplicates (same CC) are ignored; a gap drops the PES in progress.
    if (s.cc >= 0) {
      if (cc === s.cc) return;
      if (cc !== ((s.cc + 1) & 15)) {
        // Data is missing: the PES in progress is incomplete, drop it.
        this.stats.ccErrors++;
        s.active = false;
        s.fill = 0;
      }
    }
    s.cc = cc;
    if (pusi) {
      if (s.active) this.finishPes(s);
      s.active = true;
      s.fill = 0;
      s.expect = 0;
      s.rai = rai;
    } else if (!s.active) {
      return;
    }
    this.append(s, b, p, end);
    if (s.active && s.expect === 0 && s.fill >= 6) {
      const len = (s.buf[4]! << 8) | s.buf[5]!;
      s.expect = len === 0 ? -1 : 6 + len;
    }
    if (s.expect > 0 && s.fill >= s.expect) this.finishPes(s);
  }

  private append(s: PesState, b: Uint8Array, p: number, end: number): void {
    const n = end - p;
    if (s.fill + n > this.maxPes) {
      s.active = false;
      s.fill = 0;
      return this.fail(`PES on PID ${s.pid} exceeds ${this.maxPes} bytes`);
    }
    if (s.fill + n > s.buf.length) {
      const grown = new Uint8Array(Math.min(this.maxPes, Math.max(s.fill + n, s.buf.length * 2)));
      grown.set(s.buf.subarray(0, s.fill));
      s.buf = grown;
    }
    s.buf.set(b.subarray(p, end), s.fill);
    s.fill += n;
  }

  private psiPayload(pid: number, pusi: boolean, b: Uint8Array, p: number, end: number): void {
    let st = this.psi.get(pid);
    if (pusi) {
      const pointer = b[p]!;
      p += 1 + pointer;
      if (p >= end) return this.fail(`PSI pointer_field ${pointer} overflows the packet on PID ${pid}`);
      if (!st) this.psi.set(pid, (st = { buf: new Uint8Array(1024 + TS_PACKET_SIZE), fill: 0, need: 0 }));
      st.fill = 0;
      st.need = 0;
    } else if (!st || st.need === 0) {
      return;
    }
    const take = Math.min(end - p, st.buf.length - st.fill);
    st.buf.set(b.subarray(p, p + take), st.fill);
    st.fill += take;
    if (st.fill >= 3 && st.need === 0) {
      const tableId = st.buf[0]!;
      if (tableId === 0xff) return; // stuffing
      const len = ((st.buf[1]! & 0x0f) << 8) | st.buf[2]!;
      if (len > 1021 || len < 9) {
        st.need = 0;
        return this.fail(`PSI section_length ${len} on PID ${pid} is invalid`);
      }
      st.need = 3 + len;
    }
    if (st.need > 0 && st.fill >= st.need) {
      const sec = st.buf.subarray(0, st.need);
      st.need = 0;
      if (crc32Mpeg(sec) !== 0) return this.fail(`PSI section CRC mismatch on PID ${pid}`);
      if (pid === 0) this.parsePat(sec);
      else this.parsePmt(sec);
    }
  }

  private parsePat(s: Uint8Array): void {
    if (s[0] !== 0x00) return this.fail(`table_id ${s[0]} on PID 0`);
    // Programs run from byte 8 to the CRC; take the first real program (number 0 is the network PID).
    for (let p = 8; p + 4 <= s.length - 4; p += 4) {
      const program = (s[p]! << 8) | s[p + 1]!;
      if (program === 0) continue;
      const pid = ((s[p + 2]! & 0x1f) << 8) | s[p + 3]!;
      if (pid !== this.pmtPid) {
        this.pmtPid = pid;
        this.psi.delete(pid);
      }
      return;
    }
  }

  private parsePmt(s: Uint8Array): void {
    if (s[0] !== 0x02) return this.fail(`table_id ${s[0]} on the PMT PID`);
    const end = s.length - 4;
    if (12 > end) return this.fail('PMT too short');
    const infoLen = ((s[10]! & 0x0f) << 8) | s[11]!;
    let p = 12 + infoLen;
    if (p > end) return this.fail('PMT program_info_length overflows the section');
    const seen = new Set<number>();
    while (p + 5 <= end) {
      const streamType = s[p]!;
      const pid = ((s[p + 1]! & 0x1f) << 8) | s[p + 2]!;
      const esLen = ((s[p + 3]! & 0x0f) << 8) | s[p + 4]!;
      if (p + 5 + esLen > end) return this.fail('PMT ES_info_length overflows the section');
      const codec = codecOfStream(streamType, s.subarray(p + 5, p + 5 + esLen));
      p += 5 + esLen;
      if (codec === 'unknown' || pid === 0 || pid === this.pmtPid) continue;
      seen.add(pid);
      this.streams.set(pid, { streamType, codec });
      const old = this.pes.get(pid);
      if (!old || old.streamType !== streamType) {
        this.pes.set(pid, {
          pid, streamType, codec, cc: -1, buf: new Uint8Array(0), fill: 0, expect: 0, active: false, rai: false,
          configKey: '', lastTs: -1,
        });
      }
    }
    for (const pid of [...this.pes.keys()]) {
      if (!seen.has(pid)) {
        this.pes.delete(pid);
        this.streams.delete(pid);
      }
    }
  }

  /** Parse the PES header of a complete PES packet and emit its access unit(s). */
  private finishPes(s: PesState): void {
    s.active = false;
    const b = s.buf;
    const n = s.expect > 0 ? s.expect : s.fill;
    const have = s.fill;
    s.fill = 0;
    if (have < n) return this.fail(`PID ${s.pid}: PES truncated (${have} of ${n} bytes)`);
    if (n < 9 || b[0] !== 0 || b[1] !== 0 || b[2] !== 1) return this.fail(`PID ${s.pid}: PES packet without a start code`);
    const flags = b[7]!;
    const hdrLen = b[8]!;
    const payloadStart = 9 + hdrLen;
    if (payloadStart > n) return this.fail(`PID ${s.pid}: PES header overflows the packet`);
    const ptsDts = flags >> 6;
    if (ptsDts === 1) return this.fail(`PID ${s.pid}: forbidden PTS_DTS_flags`);
    if (ptsDts === 0) return this.fail(`PID ${s.pid}: PES without a PTS`);
    if (hdrLen < (ptsDts === 3 ? 10 : 5)) return this.fail(`PID ${s.pid}: PES header too short for its timestamps`);
    const pts = this.unwrap(s, readPesTs(b, 9));
    const dts = ptsDts === 3 ? this.unwrap(s, readPesTs(b, 14)) : pts;
    // Copy the payload out: the reassembly buffer is reused for the next PES.
    const payload = b.slice(payloadStart, n);
    try {
      this.emitPayload(s, pts, dts, payload);
    } catch (e) {
      if (!(e instanceof FormatError)) throw e;
      this.fail(`PID ${s.pid} (${s.codec}): ${e.message}`);
    }
  }

  /** Extend a 33-bit timestamp to keep it near the stream's previous one. */
  private unwrap(s: PesState, v: number): number {
    if (s.lastTs >= 0) {
      const base = s.lastTs - (s.lastTs % PTS_MOD);
      let x = base + v;
      if (x - s.lastTs > PTS_MOD / 2) x -= PTS_MOD;
      else if (s.lastTs - x > PTS_MOD / 2) x += PTS_MOD;
      v = x;
    }
    if (v >= 0) s.lastTs = v;
    return v;
  }

  private emit(s: PesState, u: TsAccessUnit, configKey: string | undefined, config: CodecConfig | undefined): void {
    if (config && configKey !== undefined && configKey !== s.configKey) {
      s.configKey = configKey;
      u.config = config;
    }
    this.stats.units++;
    this.onUnit(u);
  }

  private emitPayload(s: PesState, pts: number, dts: number, payload: Uint8Array): void {
    const base = { pid: s.pid, streamType: s.streamType, codec: s.codec };
    switch (s.codec) {
      case 'h264':
      case 'h265': {
        const h265 = s.codec === 'h265';
        const { data, key, vps, sps, pps } = accessUnitFromNalus(s.codec, splitAnnexB(payload));
        let config: CodecConfig | undefined;
        let configKey: string | undefined;
        if (sps.length && pps.length && (!h265 || vps.length)) {
          const rec = h265 ? buildHvcC(vps, sps, pps) : buildAvcC(sps, pps);
          configKey = keyOf(rec);
          if (configKey !== s.configKey) config = { codec: s.codec, data: rec };
        }
        if (!data) return; // parameter sets only
        this.emit(s, { ...base, pts, dts, key: key || s.rai, data }, configKey, config);
        return;
      }
      case 'aac': {
        const { config: c, frames } = splitAdts(payload);
        const asc = buildAsc({ objectType: c.objectType, sampleRate: c.sampleRate, channelConfig: c.channelConfig });
        const configKey = keyOf(asc);
        const config: CodecConfig = { codec: 'aac', data: asc, sampleRate: c.sampleRate, channels: c.channels };
        const step = (c.samplesPerFrame * TS_CLOCK) / c.sampleRate;
        for (let i = 0; i < frames.length; i++) {
          const ts = pts + Math.round(i * step);
          this.emit(s, { ...base, pts: ts, dts: ts, key: true, data: frames[i]! }, configKey, config);
        }
        return;
      }
      case 'opus': {
        // Sequence of opus_control_header + packet.
        let p = 0, ts = pts;
        const n = payload.length;
        while (p < n) {
          if (n - p < 2 || payload[p] !== 0x7f || (payload[p + 1]! & 0xe0) !== 0xe0) throw new FormatError('Opus control header prefix missing');
          const f = payload[p + 1]!;
          p += 2;
          let size = 0;
          for (;;) {
            if (p >= n) throw new FormatError('Opus au_size truncated');
            const v = payload[p++]!;
            size += v;
            if (v !== 255) break;
          }
          if (f & 0x10) p += 2; // start_trim
          if (f & 0x08) p += 2; // end_trim
          if (f & 0x04) {
            if (p >= n) throw new FormatError('Opus control extension truncated');
            p += 1 + payload[p]!;
          }
          if (size > n - p) throw new FormatError(`Opus packet of ${size} bytes exceeds the ${n - p} left`);
          const packet = payload.subarray(p, p + size);
          this.emit(s, { ...base, pts: ts, dts: ts, key: true, data: packet }, undefined, undefined);
          // Packets sharing a PES follow each other: advance by this one's duration (48 kHz -> 90 kHz).
          ts += size > 0 ? (opusPacketSamples(packet) * 15) / 8 : 0;
          p += size;
        }
        return;
      }
      default:
        this.emit(s, { ...base, pts, dts, key: true, data: payload }, undefined, undefined);
    }
  }
}

function keyOf(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]!);
  return s;
}
