// Fragmented MP4 / CMAF (ISO/IEC 14496-12, -14, -15; ISO/IEC 23000-19): the initialization segment
// (ftyp + moov) for a set of tracks, and media fragments (moof + mdat) built from canonical frames.
//
// Frames are already what MP4 stores: H.264/H.265 as 4-byte length-prefixed NAL units, AAC as raw frames,
// Opus as packets. So a fragment is a small moof header plus the frames' own bytes, returned as a list of
// parts to write vectored (nothing is copied). One fragment per LL-HLS part / CMAF chunk works as is; a
// segment is one or more fragments, optionally preceded by styp().

import { ByteWriter, FormatError } from './bytes.ts';
import type { CodecConfig } from '../codec/config.ts';
import { parseAvcC, parseH264Sps } from '../codec/h264.ts';
import { parseH265Sps, parseHvcC } from '../codec/h265.ts';
import { parseAsc } from '../codec/aac.ts';
import { OPUS_SAMPLE_RATE, parseOpusHead } from '../codec/opus.ts';

export interface Fmp4Track {
  /** track_ID (1-based, unique in the movie). */
  id: number;
  kind: 'video' | 'audio';
  /** Media timescale: the track clock (90000 video, the sample rate for audio). */
  timescale: number;
  config: CodecConfig;
}

export interface Fmp4Sample {
  /** In the track timescale. */
  duration: number;
  size: number;
  /** A sync sample (keyframe). Audio samples are always sync samples. */
  key: boolean;
  /** Composition offset (pts - dts), may be negative. */
  cts: number;
}

export interface Fmp4TrackFragment {
  trackId: number;
  /** Decode time of the first sample (tfdt baseMediaDecodeTime), in the track timescale. */
  baseDts: number;
  samples: readonly Fmp4Sample[];
  /** The samples' bytes in order; their total length must equal the sum of the sample sizes. */
  data: readonly Uint8Array[];
}

// sample_flags (14496-12 8.8.3.1): sample_depends_on = 2 for sync samples; depends_on = 1 and
// sample_is_non_sync_sample for the rest.
export const SAMPLE_FLAGS_SYNC = 0x02000000;
export const SAMPLE_FLAGS_NON_SYNC = 0x01010000;

// ---------------------------------------------------------------------------------------------------
// Box helpers (init segment only: not on the per-frame path)

function box(w: ByteWriter, type: string, body: () => void): void {
  const start = w.pos;
  w.u32(0).fourcc(type);
  body();
  w.view.setUint32(start, w.pos - start);
}

function fullBox(w: ByteWriter, type: string, version: number, flags: number, body: () => void): void {
  box(w, type, () => {
    w.u32(((version << 24) | (flags & 0xffffff)) >>> 0);
    body();
  });
}

function zeros(w: ByteWriter, n: number): void {
  w.ensure(n);
  w.buf.fill(0, w.pos, w.pos + n);
  w.pos += n;
}

/** The unity transformation matrix of mvhd/tkhd. */
function matrix(w: ByteWriter): void {
  for (const v of [0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000]) w.u32(v);
}

export const CMAF_BRANDS: readonly string[] = ['iso6', 'cmfc', 'isom', 'mp41'];

/** ftyp with major brand iso6 and the CMAF-compatible brands. */
export function ftyp(brands: readonly string[] = CMAF_BRANDS): Uint8Array {
  const w = new ByteWriter(32);
  box(w, 'ftyp', () => {
    w.fourcc('iso6').u32(0);
    for (const b of brands) w.fourcc(b);
  });
  return w.finish();
}

/** styp for a media segment (msdh/msix + cmfs as CMAF suggests). */
export function styp(brands: readonly string[] = ['msdh', 'msix', 'cmfs', 'cmff']): Uint8Array {
  const w = new ByteWriter(32);
  box(w, 'styp', () => {
    w.fourcc('msdh').u32(0);
    for (const b of brands) w.fourcc(b);
  });
  return w.finish();
}

/** An MPEG-4 descriptor (14496-1 8.3): tag, length (7 bits per byte, high bit = more), body. */
function descriptor(tag: number, ...parts: Uint8Array[]): Uint8Array {
  let len = 0;
  for (const x of parts) len += x.length;
  const lenBytes: number[] = [len & 0x7f];
  for (let l = len >> 7; l > 0; l >>= 7) lenBytes.unshift(0x80 | (l & 0x7f));
  const out = new Uint8Array(1 + lenBytes.length + len);
  out[0] = tag;
  out.set(lenBytes, 1);
  let p = 1 + lenBytes.length;
  for (const x of parts) {
    out.set(x, p);
    p += x.length;
  }
  return out;
}

/** esds: ES_Descriptor > DecoderConfigDescriptor (+ DecoderSpecificInfo) + SLConfigDescriptor. */
function esds(w: ByteWriter, objectType: number, dsi: Uint8Array | undefined, trackId: number): void {
  // objectTypeIndication, streamType 5 (audio) << 2 | reserved 1, bufferSizeDB, max/avg bitrate unknown.
  const dcdFields = new Uint8Array([objectType, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  const dcd = dsi ? descriptor(0x04, dcdFields, descriptor(0x05, dsi)) : descriptor(0x04, dcdFields);
  const es = descriptor(0x03, new Uint8Array([(trackId >> 8) & 0xff, trackId & 0xff, 0]), dcd, descriptor(0x06, new Uint8Array([0x02])));
  fullBox(w, 'esds', 0, 0, () => { w.bytes(es); });
}

/** dOps (Opus in ISOBMFF): the OpusHead fields, big-endian, without the magic. */
function dOps(w: ByteWriter, head: Uint8Array | undefined, channels: number): void {
  const h = head ? parseOpusHead(head) : { channels, preSkip: 312, inputSampleRate: 48000, outputGain: 0, mappingFamily: 0 } as ReturnType<typeof parseOpusHead>;
  box(w, 'dOps', () => {
    w.u8(0).u8(h.channels).u16(h.preSkip).u32(h.inputSampleRate).i16(h.outputGain).u8(h.mappingFamily);
    if (h.mappingFamily !== 0) {
      w.u8(h.streamCount!).u8(h.coupledCount!);
      w.bytes(h.mapping!);
    }
  });
}

function videoSize(cfg: CodecConfig): { width: number; height: number } {
  if (cfg.width && cfg.height) return { width: cfg.width, height: cfg.height };
  const data = cfg.data;
  if (data && cfg.codec === 'h264') {
    const sps = parseAvcC(data).sps[0];
    if (sps) return parseH264Sps(sps);
  }
  if (data && cfg.codec === 'h265') {
    const sps = parseHvcC(data).sps[0];
    if (sps) return parseH265Sps(sps);
  }
  return { width: cfg.width ?? 0, height: cfg.height ?? 0 };
}

function visualSampleEntry(w: ByteWriter, type: string, width: number, height: number, inner: () => void): void {
  box(w, type, () => {
    zeros(w, 6);
    w.u16(1); // data_reference_index
    zeros(w, 16); // pre_defined, reserved
    w.u16(width).u16(height);
    w.u32(0x00480000).u32(0x00480000); // 72 dpi
    w.u32(0).u16(1); // reserved, frame_count
    zeros(w, 32); // compressorname
    w.u16(0x0018).i16(-1); // depth, pre_defined
    inner();
  });
}

function audioSampleEntry(w: ByteWriter, type: string, channels: number, rate: number, inner: () => void): void {
  box(w, type, () => {
    zeros(w, 6);
    w.u16(1);
    zeros(w, 8);
    w.u16(channels).u16(16);
    w.u32(0);
    w.u32(rate <= 0xffff ? rate * 0x10000 : 0); // 16.16; rates above 65535 live in mdhd only
    inner();
  });
}

function sampleEntry(w: ByteWriter, t: Fmp4Track): void {
  const cfg = t.config;
  switch (cfg.codec) {
    case 'h264': {
      if (!cfg.data) throw new FormatError('fMP4: H.264 track without an avcC');
      parseAvcC(cfg.data); // validate
      const { width, height } = videoSize(cfg);
      visualSampleEntry(w, 'avc1', width, height, () => box(w, 'avcC', () => { w.bytes(cfg.data!); }));
      return;
    }
    case 'h265': {
      if (!cfg.data) throw new FormatError('fMP4: H.265 track without an hvcC');
      parseHvcC(cfg.data);
      const { width, height } = videoSize(cfg);
      visualSampleEntry(w, 'hvc1', width, height, () => box(w, 'hvcC', () => { w.bytes(cfg.data!); }));
      return;
    }
    case 'aac': {
      if (!cfg.data) throw new FormatError('fMP4: AAC track without an AudioSpecificConfig');
      const asc = parseAsc(cfg.data);
      const channels = cfg.channels ?? (asc.channels || 2);
      audioSampleEntry(w, 'mp4a', channels, asc.sampleRate, () => esds(w, 0x40, cfg.data, t.id));
      return;
    }
    case 'mp3':
      audioSampleEntry(w, 'mp4a', cfg.channels ?? 2, cfg.sampleRate ?? t.timescale, () => esds(w, 0x6b, undefined, t.id));
      return;
    case 'opus': {
      const channels = cfg.data ? parseOpusHead(cfg.data).channels : cfg.channels ?? 2;
      audioSampleEntry(w, 'Opus', channels, OPUS_SAMPLE_RATE, () => dOps(w, cfg.data, channels));
      return;
    }
    default:
      throw new FormatError(`fMP4: codec ${JSON.stringify(cfg.codec)} is not supported`);
  }
}

function trak(w: ByteWriter, t: Fmp4Track): void {
  const video = t.kind === 'video';
  const { width, height } = video ? videoSize(t.config) : { width: 0, height: 0 };
  box(w, 'trak', () => {
    fullBox(w, 'tkhd', 0, 3, () => { // enabled, in movie
      w.u32(0).u32(0).u32(t.id).u32(0).u32(0); // times, track_ID, reserved, duration
      zeros(w, 8);
      w.u16(0).u16(video ? 0 : 1); // layer, alternate_group
      w.u16(video ? 0 : 0x0100).u16(0); // volume, reserved
      matrix(w);
      w.u32(width * 0x10000).u32(height * 0x10000);
    });
    box(w, 'mdia', () => {
      fullBox(w, 'mdhd', 0, 0, () => {
        w.u32(0).u32(0).u32(t.timescale).u32(0);
        w.u16(0x55c4).u16(0); // language 'und'
      });
      fullBox(w, 'hdlr', 0, 0, () => {
        w.u32(0).fourcc(video ? 'vide' : 'soun');
        zeros(w, 12);
        w.utf8(video ? 'VideoHandler' : 'SoundHandler');
        w.u8(0);
      });
      box(w, 'minf', () => {
        if (video) fullBox(w, 'vmhd', 0, 1, () => { zeros(w, 8); });
        else fullBox(w, 'smhd', 0, 0, () => { w.u32(0); });
        box(w, 'dinf', () => {
          fullBox(w, 'dref', 0, 0, () => {
            w.u32(1);
            fullBox(w, 'url ', 0, 1, () => {}); // media in the same file
          });
        });
        box(w, 'stbl', () => {
          fullBox(w, 'stsd', 0, 0, () => {
            w.u32(1);
            sampleEntry(w, t);
          });
          fullBox(w, 'stts', 0, 0, () => { w.u32(0); });
          fullBox(w, 'stsc', 0, 0, () => { w.u32(0); });
          fullBox(w, 'stsz', 0, 0, () => { w.u32(0).u32(0); });
          fullBox(w, 'stco', 0, 0, () => { w.u32(0); });
        });
      });
    });
  });
}

/** ftyp + moov for `tracks` (no samples: everything is in fragments). */
export function initSegment(tracks: readonly Fmp4Track[], opts: { brands?: readonly string[] } = {}): Uint8Array {
  if (tracks.length === 0) throw new FormatError('fMP4: no tracks');
  const ids = new Set<number>();
  for (const t of tracks) {
    if (!Number.isInteger(t.id) || t.id < 1 || ids.has(t.id)) throw new FormatError(`fMP4: bad or duplicate track id ${t.id}`);
    if (!Number.isInteger(t.timescale) || t.timescale < 1) throw new FormatError(`fMP4: bad timescale ${t.timescale}`);
    ids.add(t.id);
  }
  const w = new ByteWriter(1024);
  w.bytes(ftyp(opts.brands));
  box(w, 'moov', () => {
    fullBox(w, 'mvhd', 0, 0, () => {
      w.u32(0).u32(0).u32(1000).u32(0); // times, timescale, duration
      w.u32(0x00010000).u16(0x0100); // rate, volume
      zeros(w, 10);
      matrix(w);
      zeros(w, 24);
      w.u32(Math.max(...ids) + 1); // next_track_ID
    });
    for (const t of tracks) trak(w, t);
    box(w, 'mvex', () => {
      for (const t of tracks) {
        fullBox(w, 'trex', 0, 0, () => {
          w.u32(t.id).u32(1).u32(0).u32(0).u32(0); // default description 1, no other defaults
        });
      }
    });
  });
  return w.finish();
}

// ---------------------------------------------------------------------------------------------------
// Fragments (per-frame path: one exactly-sized header buffer, sample data passed through)

const TRUN_FLAGS = 0x000001 | 0x000100 | 0x000200 | 0x000400 | 0x000800; // offset, duration, size, flags, cto

/**
 * moof + mdat for one fragment with sequence number `seq` (1-based, increasing). Returns
 * [moof + mdat header, ...each track's data parts]: write them in order.
 */
export function fragment(seq: number, trafs: readonly Fmp4TrackFragment[]): Uint8Array[] {
  if (trafs.length === 0) throw new FormatError('fMP4: fragment without tracks');
  let moofSize = 8 + 16; // moof header + mfhd
  let dataSize = 0;
  for (const tf of trafs) {
    moofSize += 8 + 16 + 20 + 20 + 16 * tf.samples.length; // traf, tfhd, tfdt v1, trun header
    let sizes = 0;
    for (const s of tf.samples) sizes += s.size;
    let bytes = 0;
    for (const d of tf.data) bytes += d.length;
    if (sizes !== bytes) throw new FormatError(`fMP4: track ${tf.trackId} samples declare ${sizes} bytes, data has ${bytes}`);
    dataSize += bytes;
  }
  const large = dataSize + 8 > 0xffffffff;
  const mdatHeader = large ? 16 : 8;
  const out = new Uint8Array(moofSize + mdatHeader);
  const v = new DataView(out.buffer);
  let p = 0;
  const u32 = (x: number) => { v.setUint32(p, x >>> 0); p += 4; };
  const tag = (s: string) => { for (let i = 0; i < 4; i++) out[p++] = s.charCodeAt(i); };
  u32(moofSize); tag('moof');
  u32(16); tag('mfhd'); u32(0); u32(seq);
  let dataOffset = moofSize + mdatHeader; // from the start of moof (default-base-is-moof)
  for (const tf of trafs) {
    const n = tf.samples.length;
    u32(8 + 16 + 20 + 20 + 16 * n); tag('traf');
    u32(16); tag('tfhd'); u32(0x020000); u32(tf.trackId); // default-base-is-moof
    u32(20); tag('tfdt'); u32(0x01000000);
    const base = Math.max(0, Math.round(tf.baseDts));
    u32(Math.floor(base / 0x100000000)); u32(base % 0x100000000);
    u32(20 + 16 * n); tag('trun'); u32(0x01000000 | TRUN_FLAGS); u32(n); u32(dataOffset);
    for (const s of tf.samples) {
      u32(s.duration);
      u32(s.size);
      u32(s.key ? SAMPLE_FLAGS_SYNC : SAMPLE_FLAGS_NON_SYNC);
      v.setInt32(p, s.cts | 0);
      p += 4;
      dataOffset += s.size;
    }
  }
  if (large) {
    u32(1); tag('mdat');
    const total = dataSize + 16;
    u32(Math.floor(total / 0x100000000)); u32(total % 0x100000000);
  } else {
    u32(dataSize + 8); tag('mdat');
  }
  const parts: Uint8Array[] = [out];
  for (const tf of trafs) for (const d of tf.data) parts.push(d);
  return parts;
}

// ---------------------------------------------------------------------------------------------------
// Building track fragments from frames

export interface Fmp4Frame {
  dts: number;
  cts: number;
  key: boolean;
  data: Uint8Array;
}

/**
 * Sample durations for frames with these decode times: each the gap to the next one; the last is the gap
 * to `nextDts` when known (the next fragment's first frame), otherwise `typical` (the track's usual frame
 * duration, e.g. Track.frameDuration, 1024 for AAC, 960 for 20 ms Opus). Gaps below 0 become 0.
 */
export function sampleDurations(dts: readonly number[], nextDts: number | undefined, typical: number): number[] {
  const n = dts.length;
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const next = i + 1 < n ? dts[i + 1]! : nextDts;
    out[i] = next === undefined ? Math.max(0, Math.round(typical)) : Math.max(0, next - dts[i]!);
  }
  return out;
}

/** A usual frame duration when a track has not learned one yet. */
export function defaultFrameDuration(config: CodecConfig, timescale: number): number {
  switch (config.codec) {
    case 'aac':
      return config.data ? parseAsc(config.data).samplesPerFrame : 1024;
    case 'opus':
      return Math.round(timescale / 50); // 20 ms
    case 'mp3':
      return 1152;
    default:
      return Math.round(timescale / 25);
  }
}

/** One track's part of a fragment from consecutive frames (dts/cts in the track timescale). */
export function trackFragment(trackId: number, frames: readonly Fmp4Frame[], nextDts: number | undefined, typical: number): Fmp4TrackFragment {
  if (frames.length === 0) throw new FormatError(`fMP4: no frames for track ${trackId}`);
  const durations = sampleDurations(frames.map((f) => f.dts), nextDts, typical);
  const samples: Fmp4Sample[] = new Array(frames.length);
  const data: Uint8Array[] = new Array(frames.length);
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i]!;
    samples[i] = { duration: durations[i]!, size: f.data.length, key: f.key, cts: f.cts };
    data[i] = f.data;
  }
  return { trackId, baseDts: frames[0]!.dts, samples, data };
}

/** RFC 6381 codecs parameter helpers live in src/codec; the MIME type for an init segment: */
export function fmp4MimeType(tracks: readonly Fmp4Track[]): string {
  const codecs = tracks.map((t) => t.config.codecString).filter(Boolean);
  const base = tracks.some((t) => t.kind === 'video') ? 'video/mp4' : 'audio/mp4';
  return codecs.length ? `${base}; codecs="${codecs.join(',')}"` : base;
}
