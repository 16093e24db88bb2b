// A small fragmented-MP4 demuxer for HLS pulls with fMP4 segments (src/format/fmp4.ts only muxes).
// It reads what an HLS/CMAF packager writes: an init segment (ftyp + moov with one sample entry per
// track, trex defaults) and media segments of one or more moof + mdat pairs. Only what a live pull needs:
// track configs (H.264 avcC, H.265 hvcC, AAC AudioSpecificConfig) and samples with decode time,
// composition offset, keyframe flag and bytes. Every length and offset is checked against the buffer:
// the input is a remote server's bytes.

import { FormatError } from '../../src/format/bytes.ts';
import type { CodecConfig } from '../../src/plugin.ts';
import { normalizeAvcc, parseAvcC, parseH264Sps } from '../../src/codec/h264.ts';
import { parseHvcC } from '../../src/codec/h265.ts';
import { parseAsc } from '../../src/codec/aac.ts';

export interface Mp4InTrack {
  id: number;
  kind: 'video' | 'audio';
  timescale: number;
  config: CodecConfig;
  /** NAL length size of the sample data (video). */
  lengthSize: number;
  defaultDuration: number;
  defaultSize: number;
  defaultFlags: number;
}

export interface Mp4InSample {
  track: Mp4InTrack;
  /** Decode time in the track timescale. */
  dts: number;
  cts: number;
  key: boolean;
  /** Canonical payload (4-byte NAL lengths for video). */
  data: Uint8Array;
}

interface Box { type: string; start: number; body: number; end: number }

/** The boxes in b[from..to). Throws on a box that does not fit. */
function boxes(b: Uint8Array, from: number, to: number): Box[] {
  const out: Box[] = [];
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let p = from;
  while (p + 8 <= to) {
    let size = v.getUint32(p);
    const type = String.fromCharCode(b[p + 4]!, b[p + 5]!, b[p + 6]!, b[p + 7]!);
    let body = p + 8;
    if (size === 1) {
      if (p + 16 > to) throw new FormatError(`truncated large box ${type}`);
      size = v.getUint32(p + 8) * 2 ** 32 + v.getUint32(p + 12);
      body = p + 16;
    } else if (size === 0) {
      size = to - p; // to the end
    }
    if (size < body - p || p + size > to) throw new FormatError(`box ${JSON.stringify(type)} of ${size} bytes at ${p} overruns its parent`);
    out.push({ type, start: p, body, end: p + size });
    p += size;
  }
  return out;
}

const child = (b: Uint8Array, parent: Box, type: string, skip = 0) => boxes(b, parent.body + skip, parent.end).find((x) => x.type === type);

function need(b: Box, n: number, what: string): void {
  if (b.body + n > b.end) throw new FormatError(`${what}: box too short`);
}

/** Parse an init segment: the tracks this demuxer can carry (others are skipped). */
export function parseInit(b: Uint8Array): Mp4InTrack[] {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const moov = boxes(b, 0, b.length).find((x) => x.type === 'moov');
  if (!moov) throw new FormatError('init segment has no moov');
  const tracks: Mp4InTrack[] = [];
  const trex = new Map<number, { dur: number; size: number; flags: number }>();
  const mvex = child(b, moov, 'mvex');
  if (mvex) {
    for (const x of boxes(b, mvex.body, mvex.end)) {
      if (x.type !== 'trex') continue;
      need(x, 24, 'trex');
      trex.set(v.getUint32(x.body + 4), { dur: v.getUint32(x.body + 12), size: v.getUint32(x.body + 16), flags: v.getUint32(x.body + 20) });
    }
  }
  for (const trak of boxes(b, moov.body, moov.end)) {
    if (trak.type !== 'trak') continue;
    const tkhd = child(b, trak, 'tkhd');
    const mdia = child(b, trak, 'mdia');
    if (!tkhd || !mdia) continue;
    need(tkhd, 24, 'tkhd');
    const id = v.getUint32(tkhd.body + (b[tkhd.body] === 1 ? 20 : 12));
    const mdhd = child(b, mdia, 'mdhd');
    const hdlr = child(b, mdia, 'hdlr');
    if (!mdhd || !hdlr) continue;
    need(mdhd, 24, 'mdhd');
    const timescale = v.getUint32(mdhd.body + (b[mdhd.body] === 1 ? 20 : 12));
    need(hdlr, 12, 'hdlr');
    const handler = String.fromCharCode(...b.subarray(hdlr.body + 8, hdlr.body + 12));
    const stsd = (() => {
      const minf = child(b, mdia, 'minf');
      const stbl = minf && child(b, minf, 'stbl');
      return stbl && child(b, stbl, 'stsd');
    })();
    if (!stsd || timescale === 0) continue;
    const entry = boxes(b, stsd.body + 8, stsd.end)[0];
    if (!entry) continue;
    const d = trex.get(id) ?? { dur: 0, size: 0, flags: 0 };
    const base = { id, timescale, defaultDuration: d.dur, defaultSize: d.size, defaultFlags: d.flags };
    if (handler === 'vide' && (entry.type === 'avc1' || entry.type === 'avc3' || entry.type === 'hvc1' || entry.type === 'hev1')) {
      const h264 = entry.type.startsWith('avc');
      need(entry, 78, 'visual sample entry');
      const width = v.getUint16(entry.body + 24), height = v.getUint16(entry.body + 26);
      const rec = boxes(b, entry.body + 78, entry.end).find((x) => x.type === (h264 ? 'avcC' : 'hvcC'));
      if (!rec) continue;
      const data = b.slice(rec.body, rec.end);
      const lengthSize = h264 ? parseAvcC(data).lengthSize : parseHvcC(data).lengthSize;
      tracks.push({ ...base, kind: 'video', lengthSize, config: { codec: h264 ? 'h264' : 'h265', data, width, height } });
    } else if (handler === 'soun' && entry.type === 'mp4a') {
      const esds = boxes(b, entry.body + 28, entry.end).find((x) => x.type === 'esds');
      const asc = esds && findDsi(b.subarray(esds.body + 4, esds.end));
      if (!asc) continue;
      const c = parseAsc(asc);
      tracks.push({ ...base, kind: 'audio', lengthSize: 0, config: { codec: 'aac', data: asc.slice(), sampleRate: c.sampleRate, channels: c.channels } });
    }
  }
  return tracks;
}

/** The DecoderSpecificInfo (tag 5) inside an ES_Descriptor, if any. */
function findDsi(d: Uint8Array): Uint8Array | undefined {
  const read = (p: number): { tag: number; body: number; end: number } | undefined => {
    if (p + 2 > d.length) return undefined;
    const tag = d[p]!;
    let len = 0, q = p + 1;
    for (let i = 0; i < 4; i++) {
      if (q >= d.length) return undefined;
      const x = d[q++]!;
      len = (len << 7) | (x & 0x7f);
      if (!(x & 0x80)) break;
    }
    if (q + len > d.length) return undefined;
    return { tag, body: q, end: q + len };
  };
  const es = read(0);
  if (!es || es.tag !== 3) return undefined;
  let p = es.body + 2;
  const flags = d[p++] ?? 0;
  if (flags & 0x80) p += 2;
  if (flags & 0x40) p += 1 + (d[p] ?? 0);
  if (flags & 0x20) p += 2;
  const dcd = read(p);
  if (!dcd || dcd.tag !== 4) return undefined;
  const dsi = read(dcd.body + 13);
  return dsi && dsi.tag === 5 && dsi.end > dsi.body ? d.subarray(dsi.body, dsi.end) : undefined;
}

/**
 * Parse a media segment (one or more moof + mdat). `next` carries each track's next decode time across
 * calls (used when a traf has no tfdt). Samples come out in file order, per track.
 */
export function parseSegment(b: Uint8Array, tracks: readonly Mp4InTrack[], next: Map<number, number>, maxSamples = 100_000): Mp4InSample[] {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: Mp4InSample[] = [];
  for (const moof of boxes(b, 0, b.length)) {
    if (moof.type !== 'moof') continue;
    for (const traf of boxes(b, moof.body, moof.end)) {
      if (traf.type !== 'traf') continue;
      const kids = boxes(b, traf.body, traf.end);
      const tfhd = kids.find((x) => x.type === 'tfhd');
      if (!tfhd) throw new FormatError('traf without tfhd');
      need(tfhd, 8, 'tfhd');
      const tf = v.getUint32(tfhd.body) & 0xffffff;
      const track = tracks.find((t) => t.id === v.getUint32(tfhd.body + 4));
      if (!track) continue;
      let p = tfhd.body + 8;
      const opt = (flag: number, n: number) => {
        if (!(tf & flag)) return undefined;
        if (p + n > tfhd.end) throw new FormatError('tfhd too short');
        const val = n === 8 ? v.getUint32(p) * 2 ** 32 + v.getUint32(p + 4) : v.getUint32(p);
        p += n;
        return val;
      };
      const baseOffset = opt(0x1, 8);
      opt(0x2, 4);
      const defDur = opt(0x8, 4) ?? track.defaultDuration;
      const defSize = opt(0x10, 4) ?? track.defaultSize;
      const defFlags = opt(0x20, 4) ?? track.defaultFlags;
      let base = baseOffset ?? moof.start; // default-base-is-moof, or the moof for the first traf
      const tfdt = kids.find((x) => x.type === 'tfdt');
      let dts = next.get(track.id) ?? 0;
      if (tfdt) {
        need(tfdt, 8, 'tfdt');
        dts = b[tfdt.body] === 1 ? (need(tfdt, 12, 'tfdt'), v.getUint32(tfdt.body + 4) * 2 ** 32 + v.getUint32(tfdt.body + 8)) : v.getUint32(tfdt.body + 4);
      }
      for (const trun of kids) {
        if (trun.type !== 'trun') continue;
        need(trun, 8, 'trun');
        const version = b[trun.body]!;
        const rf = v.getUint32(trun.body) & 0xffffff;
        const count = v.getUint32(trun.body + 4);
        if (out.length + count > maxSamples) throw new FormatError(`too many samples (${count})`);
        let q = trun.body + 8;
        let dataAt = base;
        if (rf & 0x1) { need(trun, 12, 'trun'); dataAt = base + v.getInt32(q); q += 4; }
        let firstFlags: number | undefined;
        if (rf & 0x4) { if (q + 4 > trun.end) throw new FormatError('trun too short'); firstFlags = v.getUint32(q); q += 4; }
        const per = ((rf & 0x100) ? 4 : 0) + ((rf & 0x200) ? 4 : 0) + ((rf & 0x400) ? 4 : 0) + ((rf & 0x800) ? 4 : 0);
        if (q + per * count > trun.end) throw new FormatError(`trun declares ${count} samples but is too short`);
        for (let i = 0; i < count; i++) {
          const dur = rf & 0x100 ? v.getUint32((q += 4) - 4) : defDur;
          const size = rf & 0x200 ? v.getUint32((q += 4) - 4) : defSize;
          let flags = rf & 0x400 ? v.getUint32((q += 4) - 4) : defFlags;
          if (i === 0 && firstFlags !== undefined) flags = firstFlags;
          let cts = 0;
          if (rf & 0x800) { cts = version === 0 ? v.getUint32(q) : v.getInt32(q); q += 4; }
          if (dataAt < 0 || dataAt + size > b.length) throw new FormatError(`sample of ${size} bytes at ${dataAt} is outside the segment`);
          let data = b.subarray(dataAt, dataAt + size);
          if (track.kind === 'video') data = normalizeAvcc(data, track.lengthSize);
          const key = track.kind === 'audio' || !((flags >>> 16) & 1);
          out.push({ track, dts, cts, key, data });
          dts += dur;
          dataAt += size;
        }
        base = dataAt; // a following trun without data-offset continues here
      }
      next.set(track.id, dts);
    }
  }
  return out;
}

/** Width/height from an avcC when the sample entry had none. */
export function h264Size(avcc: Uint8Array): { width: number; height: number } | undefined {
  const sps = parseAvcC(avcc).sps[0];
  return sps ? parseH264Sps(sps) : undefined;
}
