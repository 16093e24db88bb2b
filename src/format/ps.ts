// MPEG-2 Program Stream (ISO/IEC 13818-1 2.5), as GB28181 devices send it over RTP (GB/T 28181 annex C):
// pack header (00 00 01 BA), system header (BB), program stream map (BC, stream types per stream id), and
// PES packets (E0 video, C0 audio). A video frame larger than one PES (65 535 bytes) spans several PES
// packets with the first carrying the PTS, so the demuxer joins video payload until the PTS changes (or
// flush(): the RTP marker bit ends a frame).
//
// Stream types: 0x1B H.264, 0x24 H.265, 0x0F AAC (ADTS), 0x90 G.711 A-law, 0x91 G.711 µ-law (the values
// GB28181 devices and ZLMediaKit use; the standard lists 0x90 for G.711 without a law, A-law in practice).
// Without a PSM, stream E0 is taken as H.264 (or H.265 by its first NAL) and C0 as G.711 A-law.
//
//   const d = new PsDemuxer((u) => ...);  d.push(rtpPayload); ...; d.flush();
//   const m = new PsMuxer({ video: 'h264', audio: 'pcma' });  m.video(annexB, pts, dts, key) → PS bytes

import { concat, FormatError } from './bytes.ts';
import type { CodecConfig } from '../codec/config.ts';
import { splitAdts, buildAsc } from '../codec/aac.ts';
import { crc32Mpeg } from './ts.ts';
import { annexBVideoUnit, buildPesHeader, parsePesHeader, PTS_MOD } from './pes.ts';

export const PS_STREAM_H264 = 0x1b;
export const PS_STREAM_H265 = 0x24;
export const PS_STREAM_AAC = 0x0f;
export const PS_STREAM_G711A = 0x90;
export const PS_STREAM_G711U = 0x91;

export type PsCodec = 'h264' | 'h265' | 'aac' | 'pcma' | 'pcmu';

const CODEC_OF: Record<number, PsCodec> = {
  [PS_STREAM_H264]: 'h264', [PS_STREAM_H265]: 'h265', [PS_STREAM_AAC]: 'aac', [PS_STREAM_G711A]: 'pcma', [PS_STREAM_G711U]: 'pcmu',
};
const TYPE_OF: Record<PsCodec, number> = { h264: PS_STREAM_H264, h265: PS_STREAM_H265, aac: PS_STREAM_AAC, pcma: PS_STREAM_G711A, pcmu: PS_STREAM_G711U };

export interface PsUnit {
  kind: 'video' | 'audio';
  codec: PsCodec;
  /** 90 kHz, unwrapped. */
  pts: number;
  dts: number;
  key: boolean;
  /** Video: length-prefixed NALUs; AAC: one raw frame; G.711: the samples. */
  data: Uint8Array;
  /** A new codec configuration (avcC/hvcC/ASC), on the first unit that has one and when it changes. */
  config?: CodecConfig;
}

export interface PsDemuxerStats { packs: number; pes: number; units: number; errors: number; resyncBytes: number }

const MAX_BUFFER = 2 * 1024 * 1024;
const MAX_FRAME = 8 * 1024 * 1024;

/**
 * Push-based PS demuxer. Malformed packets are counted and skipped (or thrown as FormatError with
 * `strict`); memory stays bounded (2 MiB of unparsed bytes, 8 MiB per video frame).
 */
export class PsDemuxer {
  readonly stats: PsDemuxerStats = { packs: 0, pes: 0, units: 0, errors: 0, resyncBytes: 0 };
  lastError = '';
  /** Stream id → stream type from the PSM. */
  readonly streamTypes = new Map<number, number>();
  private buf = new Uint8Array(0);
  private video: { codec: PsCodec; pts: number; dts: number; parts: Uint8Array[]; size: number } | null = null;
  private configKeys = new Map<string, string>();
  private lastTs = new Map<string, number>();
  private readonly strict: boolean;

  constructor(private readonly onUnit: (u: PsUnit) => void, opts: { strict?: boolean } = {}) {
    this.strict = opts.strict ?? false;
  }

  private fail(msg: string): void {
    this.stats.errors++;
    this.lastError = msg;
    if (this.strict) throw new FormatError(msg);
  }

  push(chunk: Uint8Array): void {
    let b = chunk;
    if (this.buf.length) {
      b = new Uint8Array(this.buf.length + chunk.length);
      b.set(this.buf);
      b.set(chunk, this.buf.length);
    }
    let p = 0;
    const n = b.length;
    while (p + 4 <= n) {
      if (b[p] !== 0 || b[p + 1] !== 0 || b[p + 2] !== 1 || b[p + 3]! < 0xb9) {
        // Lost sync: find the next pack/system/PSM/PES start code.
        const from = p++;
        while (p + 4 <= n && !(b[p] === 0 && b[p + 1] === 0 && b[p + 2] === 1 && b[p + 3]! >= 0xb9)) p++;
        this.stats.resyncBytes += p - from;
        if (!this.strict) continue;
        this.buf = new Uint8Array(0);
        throw new FormatError('PS data without a start code');
      }
      const id = b[p + 3]!;
      let size: number;
      if (id === 0xb9) { size = 4; } // program end
      else if (id === 0xba) {
        if (p + 14 > n) break;
        if ((b[p + 4]! & 0xc0) !== 0x40) {
          // MPEG-1 pack header (12 bytes), rare but legal.
          if ((b[p + 4]! & 0xf0) !== 0x20) { this.fail('pack header is neither MPEG-1 nor MPEG-2'); p += 4; continue; }
          size = 12;
        } else {
          size = 14 + (b[p + 13]! & 7);
        }
        this.stats.packs++;
      } else {
        if (p + 6 > n) break;
        size = 6 + ((b[p + 4]! << 8) | b[p + 5]!);
      }
      if (p + size > n) {
        if (size > MAX_BUFFER) { this.fail(`PS packet of ${size} bytes`); p += 4; continue; }
        break;
      }
      const pkt = b.subarray(p, p + size);
      p += size;
      try {
        if (id === 0xbc) this.psm(pkt);
        else if ((id >= 0xc0 && id <= 0xef) || id === 0xbd) this.pes(id, pkt);
        // BA, BB, BE (padding), BF, B9: nothing to take
      } catch (e) {
        if (!(e instanceof FormatError)) throw e;
        this.fail(`PS stream 0x${id.toString(16)}: ${e.message}`);
      }
    }
    const rest = n - p;
    if (rest > MAX_BUFFER) { this.fail(`PS: ${rest} bytes without a complete packet`); this.buf = new Uint8Array(0); return; }
    this.buf = rest ? b.slice(p) : new Uint8Array(0);
  }

  /** End of a frame (RTP marker) or of the input: emit the video frame in progress. */
  flush(): void {
    const v = this.video;
    if (!v || !v.parts.length) return;
    this.video = { ...v, parts: [], size: 0 };
    let payload: Uint8Array;
    if (v.parts.length === 1) payload = v.parts[0]!;
    else {
      payload = new Uint8Array(v.size);
      let o = 0;
      for (const x of v.parts) { payload.set(x, o); o += x.length; }
    }
    try {
      const codec = v.codec as 'h264' | 'h265';
      const u = annexBVideoUnit(codec, payload);
      if (u.config && this.changed('video', u.config)) this.pendingVideoConfig = u.config;
      if (!u.data) return;
      const config = this.pendingVideoConfig;
      this.pendingVideoConfig = undefined;
      this.emit({ kind: 'video', codec, pts: v.pts, dts: v.dts, key: u.key, data: u.data, config });
    } catch (e) {
      if (!(e instanceof FormatError)) throw e;
      this.fail(`PS video: ${e.message}`);
    }
  }

  /** Everything pushed so far is complete: flush the frame in progress and forget partial packets. */
  end(): void {
    this.flush();
    this.buf = new Uint8Array(0);
  }

  private pendingVideoConfig: CodecConfig | undefined;
  /** True when `cfg` differs from the last config of its kind. */
  private changed(kind: string, cfg: CodecConfig): boolean {
    let key = cfg.codec + ':';
    for (const x of cfg.data ?? []) key += String.fromCharCode(x);
    if (this.configKeys.get(kind) === key) return false;
    this.configKeys.set(kind, key);
    return true;
  }

  private emit(u: PsUnit): void {
    this.stats.units++;
    this.onUnit(u);
  }

  private psm(b: Uint8Array): void {
    // 00 00 01 BC len(2) flags(1) marker(1) psi_len(2) [psi] esm_len(2) [ES entries] CRC(4)
    if (b.length < 16) throw new FormatError('PSM too short');
    const infoLen = (b[8]! << 8) | b[9]!;
    let p = 10 + infoLen;
    if (p + 2 > b.length) throw new FormatError('PSM program_stream_info_length overflows');
    const esLen = (b[p]! << 8) | b[p + 1]!;
    p += 2;
    const end = p + esLen;
    if (end > b.length - 4) throw new FormatError('PSM elementary_stream_map_length overflows');
    while (p + 4 <= end) {
      const type = b[p]!, id = b[p + 1]!;
      const l = (b[p + 2]! << 8) | b[p + 3]!;
      p += 4 + l;
      if (p > end) throw new FormatError('PSM ES info overflows');
      this.streamTypes.set(id, type);
    }
  }

  private unwrap(kind: string, v: number): number {
    const last = this.lastTs.get(kind);
    if (last !== undefined) {
      const base = last - (last % PTS_MOD);
      let x = base + v;
      if (x - last > PTS_MOD / 2) x -= PTS_MOD;
      else if (last - x > PTS_MOD / 2) x += PTS_MOD;
      v = x;
    }
    this.lastTs.set(kind, v);
    return v;
  }

  private pes(id: number, b: Uint8Array): void {
    this.stats.pes++;
    const h = parsePesHeader(b);
    const payload = b.subarray(h.payloadOffset);
    const type = this.streamTypes.get(id);
    if (id >= 0xe0) {
      let codec = type !== undefined ? CODEC_OF[type] : undefined;
      if (type !== undefined && codec !== 'h264' && codec !== 'h265') return; // a video type we do not carry
      if (!codec) codec = this.video?.codec ?? guessVideo(payload);
      let data = payload;
      if (h.pts !== undefined) {
        const pts = this.unwrap('v', h.pts);
        const dts = h.dts === h.pts ? pts : this.unwrap('vd', h.dts!);
        if (this.video && this.video.parts.length && this.video.pts !== pts) {
          // The PTS is that of the first access unit starting in this PES; bytes before its first start
          // code are the tail of the previous frame (muxers that pack PES by size, like ffmpeg's).
          const sc = firstStartCode(payload);
          const tail = sc < 0 ? payload : payload.subarray(0, sc);
          if (tail.length) { this.video.parts.push(tail.slice()); this.video.size += tail.length; }
          data = sc < 0 ? payload.subarray(payload.length) : payload.subarray(sc);
          this.flush();
        }
        if (!this.video || !this.video.parts.length) this.video = { codec, pts, dts, parts: [], size: 0 };
      } else if (!this.video) {
        return; // continuation without a start
      }
      const v = this.video!;
      v.codec = codec;
      if (v.size + data.length > MAX_FRAME) { this.video = null; throw new FormatError(`video frame exceeds ${MAX_FRAME} bytes`); }
      if (data.length) { v.parts.push(data.slice()); v.size += data.length; }
      return;
    }
    if (h.pts === undefined) return;
    const codec = type !== undefined ? CODEC_OF[type] : 'pcma';
    if (codec !== 'pcma' && codec !== 'pcmu' && codec !== 'aac') return;
    const pts = this.unwrap('a', h.pts);
    if (codec === 'aac') {
      const { config: c, frames } = splitAdts(payload);
      const asc = buildAsc({ objectType: c.objectType, sampleRate: c.sampleRate, channelConfig: c.channelConfig });
      const c0: CodecConfig = { codec: 'aac', data: asc, sampleRate: c.sampleRate, channels: c.channels };
      const cfg = this.changed('audio', c0) ? c0 : undefined;
      const step = (c.samplesPerFrame * 90000) / c.sampleRate;
      frames.forEach((f, i) => {
        const ts = pts + Math.round(i * step);
        this.emit({ kind: 'audio', codec, pts: ts, dts: ts, key: true, data: f, config: i === 0 ? cfg : undefined });
      });
      return;
    }
    if (!payload.length) return;
    const c0: CodecConfig = { codec, sampleRate: 8000, channels: 1 };
    const cfg = this.changed('audio', c0) ? c0 : undefined;
    this.emit({ kind: 'audio', codec, pts, dts: pts, key: true, data: payload.slice(), config: cfg });
  }
}

function firstStartCode(p: Uint8Array): number {
  for (let i = 0; i + 2 < p.length; i++) {
    if (p[i] === 0 && p[i + 1] === 0 && p[i + 2] === 1) return i > 0 && p[i - 1] === 0 ? i - 1 : i;
  }
  return -1;
}

function guessVideo(p: Uint8Array): PsCodec {
  // First NAL after a start code: H.265 VPS/SPS/PPS/AUD types 32-35 have header byte 0x40/0x42/0x44/0x46.
  for (let i = 0; i + 3 < p.length && i < 64; i++) {
    if (p[i] === 0 && p[i + 1] === 0 && p[i + 2] === 1) {
      const x = p[i + 3]!;
      if (x === 0x40 || x === 0x42 || x === 0x44 || x === 0x46) return 'h265';
      return 'h264';
    }
  }
  return 'h264';
}

// ---------------------------------------------------------------------------------------------------
// Muxer

export interface PsMuxerOptions { video?: 'h264' | 'h265'; audio?: 'pcma' | 'pcmu' | 'aac'; muxRate?: number }

const MAX_PES_PAYLOAD = 0xffff - 3 - 10;

/** PS muxer: each call returns one pack (pack header, system header + PSM before keyframes, PES packets). */
export class PsMuxer {
  private readonly o: PsMuxerOptions;
  constructor(o: PsMuxerOptions) { this.o = o; }

  /** One video access unit in Annex B (with its parameter sets on keyframes). */
  video(annexB: Uint8Array, pts: number, dts: number, key: boolean): Uint8Array {
    const parts: Uint8Array[] = [packHeader(dts)];
    if (key) parts.push(this.systemHeader(), this.psm());
    for (let o = 0; o < annexB.length || o === 0; o += MAX_PES_PAYLOAD) {
      const chunk = annexB.subarray(o, Math.min(annexB.length, o + MAX_PES_PAYLOAD));
      parts.push(o === 0 ? buildPesHeader(0xe0, chunk.length, pts, dts) : buildPesHeader(0xe0, chunk.length), chunk);
      if (!annexB.length) break;
    }
    return concat(parts);
  }

  /** One audio frame (G.711 samples or an ADTS frame). */
  audio(data: Uint8Array, pts: number): Uint8Array {
    if (data.length > MAX_PES_PAYLOAD) throw new FormatError(`audio frame of ${data.length} bytes is too large for one PES`);
    return concat([packHeader(pts), buildPesHeader(0xc0, data.length, pts), data]);
  }

  private systemHeader(): Uint8Array {
    const streams: number[][] = [];
    if (this.o.video) streams.push([0xe0, 0xe0, 0x00]); // P-STD buffer: scale 1, 0 KiB (unused by receivers)
    if (this.o.audio) streams.push([0xc0, 0xc0, 0x20]);
    const len = 6 + streams.length * 3;
    const b = new Uint8Array(6 + len);
    b.set([0, 0, 1, 0xbb, len >> 8, len & 0xff]);
    const rate = this.o.muxRate ?? 0x3fff;
    b[6] = 0x80 | ((rate >> 15) & 0x7f);
    b[7] = (rate >> 7) & 0xff;
    b[8] = ((rate & 0x7f) << 1) | 1;
    b[9] = (this.o.audio ? 1 : 0) << 2; // audio_bound, fixed 0, CSPS 0
    b[10] = 0xe0 | (this.o.video ? 1 : 0); // system_audio/video_lock_flag, marker, video_bound
    b[11] = 0x7f;
    streams.forEach((s, i) => b.set(s, 12 + i * 3));
    return b;
  }

  private psm(): Uint8Array {
    const es: number[] = [];
    if (this.o.video) es.push(TYPE_OF[this.o.video], 0xe0, 0, 0);
    if (this.o.audio) es.push(TYPE_OF[this.o.audio], 0xc0, 0, 0);
    const len = 6 + es.length + 4; // flags..esm_len + entries + CRC
    const b = new Uint8Array(6 + len);
    b.set([0, 0, 1, 0xbc, len >> 8, len & 0xff, 0x80, 0x01, 0, 0, es.length >> 8, es.length & 0xff]);
    b.set(es, 12);
    const crc = crc32Mpeg(b, 0, b.length - 4);
    b.set([crc >>> 24, (crc >>> 16) & 0xff, (crc >>> 8) & 0xff, crc & 0xff], b.length - 4);
    return b;
  }
}

function packHeader(scr: number): Uint8Array {
  const b = new Uint8Array(14);
  const v = ((scr % PTS_MOD) + PTS_MOD) % PTS_MOD;
  const hi = Math.floor(v / 2 ** 30) & 7, mid = Math.floor(v / 2 ** 15) & 0x7fff, lo = v & 0x7fff;
  b.set([0, 0, 1, 0xba]);
  b[4] = 0x40 | (hi << 3) | 0x04 | (mid >> 13);
  b[5] = (mid >> 5) & 0xff;
  b[6] = ((mid & 0x1f) << 3) | 0x04 | (lo >> 13);
  b[7] = (lo >> 5) & 0xff;
  b[8] = ((lo & 0x1f) << 3) | 0x04; // SCR extension 0 (high bits)
  b[9] = 0x01; // SCR extension low bits 0, marker
  const rate = 0x3fff;
  b[10] = (rate >> 14) & 0xff;
  b[11] = (rate >> 6) & 0xff;
  b[12] = ((rate & 0x3f) << 2) | 0x03;
  b[13] = 0xf8; // reserved, no stuffing
  return b;
}

