// Fragmented MP4 file → progressive MP4 with the moov in front (recordings: a segment is written as
// fragments while it records, which survives a crash up to its last whole fragment; when it closes, or
// at the next start after a crash, it is rewritten as a plain MP4 every player seeks in).
//
//   readFragmented(bytes)  the tracks (sample entry copied as is) and every whole sample of a file of
//                          ftyp + moov(mvex) + (moof + mdat)*; a torn last fragment is left out
//   progressiveMp4(file)   ftyp + moov (stts/ctts/stss/stsz/stsc/co64) + mdat header; the samples' bytes
//                          follow in the order of file.samples (write them after the header)
//
// Bytes in, bytes out; throws FormatError on anything it cannot read.

import { ByteWriter, FormatError } from './bytes.ts';
import type { CodecConfig } from '../codec/config.ts';

export interface Mp4FileTrack {
  id: number;
  kind: 'video' | 'audio';
  timescale: number;
  width: number;
  height: number;
  /** The stsd box as found in the input (sample entry and codec config). */
  stsd: Uint8Array;
}

export interface Mp4FileSample {
  trackId: number;
  dts: number;
  duration: number;
  cts: number;
  key: boolean;
  /** Where the sample's bytes are in the input file. */
  offset: number;
  size: number;
}

export interface Mp4File {
  tracks: Mp4FileTrack[];
  /** In file order. */
  samples: Mp4FileSample[];
  /** Bytes of the input that hold whole fragments (a torn tail starts here). */
  validEnd: number;
  /** End of the moov (ftyp + moov = the init segment when they come first). */
  initEnd?: number;
  /** Whole fragments read. */
  fragments?: number;
}

interface Box { type: string; start: number; body: number; end: number }

function boxes(b: Uint8Array, start: number, end: number, tolerant = false): Box[] {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: Box[] = [];
  let p = start;
  while (p + 8 <= end) {
    let size = v.getUint32(p);
    const type = String.fromCharCode(b[p + 4]!, b[p + 5]!, b[p + 6]!, b[p + 7]!);
    let body = p + 8;
    if (size === 1) {
      if (p + 16 > end) break;
      size = v.getUint32(p + 8) * 0x100000000 + v.getUint32(p + 12);
      body = p + 16;
    } else if (size === 0) size = end - p;
    if (size < body - p || p + size > end) {
      if (tolerant) break;
      throw new FormatError(`MP4: box ${JSON.stringify(type)} at ${p} runs past its parent (${size} bytes)`);
    }
    out.push({ type, start: p, body, end: p + size });
    p += size;
  }
  return out;
}

const child = (b: Uint8Array, parent: Box, type: string): Box | undefined => boxes(b, parent.body, parent.end).find((x) => x.type === type);
function need(b: Uint8Array, parent: Box, type: string): Box {
  const x = child(b, parent, type);
  if (!x) throw new FormatError(`MP4: ${parent.type} without ${type}`);
  return x;
}

/** Read a file of ftyp + moov + fragments (what a recorder writes); a torn last fragment is skipped. */
export function readFragmented(b: Uint8Array): Mp4File {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const top = boxes(b, 0, b.length, true);
  const moov = top.find((x) => x.type === 'moov');
  if (!moov) throw new FormatError('MP4: no moov (the init segment was not written)');
  const tracks: Mp4FileTrack[] = [];
  for (const trak of boxes(b, moov.body, moov.end).filter((x) => x.type === 'trak')) {
    const tkhd = need(b, trak, 'tkhd');
    const tv = b[tkhd.body]!;
    const id = v.getUint32(tkhd.body + (tv === 1 ? 20 : 12));
    const width = v.getUint32(tkhd.end - 8) >>> 16, height = v.getUint32(tkhd.end - 4) >>> 16;
    const mdia = need(b, trak, 'mdia');
    const mdhd = need(b, mdia, 'mdhd');
    const timescale = v.getUint32(mdhd.body + (b[mdhd.body] === 1 ? 20 : 12));
    const hdlr = need(b, mdia, 'hdlr');
    const handler = String.fromCharCode(...b.subarray(hdlr.body + 8, hdlr.body + 12));
    const stbl = need(b, need(b, need(b, mdia, 'minf'), 'stbl') as Box, 'stsd');
    if (handler !== 'vide' && handler !== 'soun') continue;
    if (!(timescale > 0)) throw new FormatError(`MP4: track ${id} has timescale 0`);
    tracks.push({ id, kind: handler === 'vide' ? 'video' : 'audio', timescale, width, height, stsd: b.slice(stbl.start, stbl.end) });
  }
  if (!tracks.length) throw new FormatError('MP4: no audio or video track');
  const samples: Mp4FileSample[] = [];
  const next = new Map<number, number>();
  let validEnd = moov.end;
  let fragments = 0;
  for (let i = 0; i < top.length; i++) {
    const moof = top[i]!;
    if (moof.type !== 'moof') continue;
    const mdat = top[i + 1];
    if (!mdat || mdat.type !== 'mdat') break; // torn: the mdat is missing or short
    const frag: Mp4FileSample[] = [];
    for (const traf of boxes(b, moof.body, moof.end).filter((x) => x.type === 'traf')) {
      const tfhd = need(b, traf, 'tfhd');
      const flags = v.getUint32(tfhd.body) & 0xffffff;
      const trackId = v.getUint32(tfhd.body + 4);
      let p = tfhd.body + 8;
      let base = moof.start;
      if (flags & 0x1) { base = v.getUint32(p) * 0x100000000 + v.getUint32(p + 4); p += 8; }
      if (flags & 0x2) p += 4;
      let defDur = 0, defSize = 0, defFlags = 0;
      if (flags & 0x8) { defDur = v.getUint32(p); p += 4; }
      if (flags & 0x10) { defSize = v.getUint32(p); p += 4; }
      if (flags & 0x20) { defFlags = v.getUint32(p); p += 4; }
      const tfdt = child(b, traf, 'tfdt');
      let dts = tfdt ? (b[tfdt.body] === 1 ? v.getUint32(tfdt.body + 4) * 0x100000000 + v.getUint32(tfdt.body + 8) : v.getUint32(tfdt.body + 4)) : next.get(trackId) ?? 0;
      let off = base;
      for (const trun of boxes(b, traf.body, traf.end).filter((x) => x.type === 'trun')) {
        const tv = b[trun.body]!;
        const tf = v.getUint32(trun.body) & 0xffffff;
        const n = v.getUint32(trun.body + 4);
        let q = trun.body + 8;
        if (tf & 0x1) { off = base + v.getInt32(q); q += 4; }
        let firstFlags = -1;
        if (tf & 0x4) { firstFlags = v.getUint32(q); q += 4; }
        const per = ((tf & 0x100) ? 4 : 0) + ((tf & 0x200) ? 4 : 0) + ((tf & 0x400) ? 4 : 0) + ((tf & 0x800) ? 4 : 0);
        if (q + per * n > trun.end) throw new FormatError(`MP4: trun of track ${trackId} declares ${n} samples it has no room for`);
        for (let k = 0; k < n; k++) {
          const duration = (tf & 0x100) ? v.getUint32((q += 4) - 4) : defDur;
          const size = (tf & 0x200) ? v.getUint32((q += 4) - 4) : defSize;
          let sf = (tf & 0x400) ? v.getUint32((q += 4) - 4) : defFlags;
          if (k === 0 && firstFlags >= 0) sf = firstFlags;
          const cts = (tf & 0x800) ? (tv === 1 ? v.getInt32((q += 4) - 4) : v.getUint32((q += 4) - 4)) : 0;
          frag.push({ trackId, dts, duration, cts, key: (sf & 0x10000) === 0, offset: off, size });
          dts += duration;
          off += size;
        }
      }
      next.set(trackId, dts);
    }
    if (frag.some((s) => s.offset < mdat.body || s.offset + s.size > mdat.end)) {
      throw new FormatError('MP4: a fragment points outside its mdat');
    }
    for (const s of frag) if (tracks.some((t) => t.id === s.trackId)) samples.push(s);
    validEnd = mdat.end;
    fragments++;
  }
  return { tracks, samples, validEnd, initEnd: moov.end, fragments };
}

function box(w: ByteWriter, type: string, body: () => void): void {
  const start = w.pos;
  w.u32(0).fourcc(type);
  body();
  w.view.setUint32(start, w.pos - start);
}
function fullBox(w: ByteWriter, type: string, version: number, flags: number, body: () => void): void {
  box(w, type, () => { w.u32(((version << 24) | (flags & 0xffffff)) >>> 0); body(); });
}
const MATRIX = [0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000];

/** Run-length pairs of a list. */
function runs(xs: number[]): [number, number][] {
  const out: [number, number][] = [];
  for (const x of xs) {
    const last = out[out.length - 1];
    if (last && last[1] === x) last[0]++;
    else out.push([1, x]);
  }
  return out;
}

/**
 * ftyp + moov + mdat header of a progressive MP4 holding `file`'s samples, each its own chunk, laid out
 * in mdat in the order of `file.samples`. Each track's decode time starts at 0 (the first sample's dts is
 * subtracted). Write the returned header, then every sample's bytes in that order.
 */
export function progressiveMp4(file: Mp4File): { header: Uint8Array; mdatSize: number } {
  const { tracks, samples } = file;
  let mdatSize = 0;
  for (const s of samples) mdatSize += s.size;
  const large = mdatSize + 8 > 0xffffffff;
  const build = (mdatStart: number) => {
    const w = new ByteWriter(64 * 1024 + samples.length * 40);
    box(w, 'ftyp', () => { w.fourcc('isom').u32(0x200); for (const x of ['isom', 'iso2', 'avc1', 'mp41']) w.fourcc(x); });
    const perTrack = tracks.map((t) => ({ t, list: samples.filter((s) => s.trackId === t.id), offsets: [] as number[] }));
    let off = mdatStart + (large ? 16 : 8);
    const byTrack = new Map(perTrack.map((x) => [x.t.id, x]));
    for (const s of samples) { byTrack.get(s.trackId)!.offsets.push(off); off += s.size; }
    const durOf = (list: Mp4FileSample[]) => list.length ? list[list.length - 1]!.dts + list[list.length - 1]!.duration - list[0]!.dts : 0;
    let movieMs = 0;
    for (const x of perTrack) movieMs = Math.max(movieMs, Math.round((durOf(x.list) * 1000) / x.t.timescale));
    box(w, 'moov', () => {
      fullBox(w, 'mvhd', 0, 0, () => {
        w.u32(0).u32(0).u32(1000).u32(movieMs).u32(0x00010000).u16(0x0100);
        for (let i = 0; i < 10; i++) w.u8(0);
        for (const m of MATRIX) w.u32(m);
        for (let i = 0; i < 24; i++) w.u8(0);
        w.u32(Math.max(...tracks.map((t) => t.id)) + 1);
      });
      for (const { t, list, offsets } of perTrack) {
        if (!list.length) continue;
        const video = t.kind === 'video';
        const dur = durOf(list);
        box(w, 'trak', () => {
          fullBox(w, 'tkhd', 0, 3, () => {
            w.u32(0).u32(0).u32(t.id).u32(0).u32(Math.round((dur * 1000) / t.timescale));
            w.u32(0).u32(0).u16(0).u16(video ? 0 : 1).u16(video ? 0 : 0x0100).u16(0);
            for (const m of MATRIX) w.u32(m);
            w.u32(t.width * 0x10000).u32(t.height * 0x10000);
          });
          box(w, 'mdia', () => {
            fullBox(w, 'mdhd', 0, 0, () => { w.u32(0).u32(0).u32(t.timescale).u32(dur).u16(0x55c4).u16(0); });
            fullBox(w, 'hdlr', 0, 0, () => {
              w.u32(0).fourcc(video ? 'vide' : 'soun').u32(0).u32(0).u32(0);
              w.utf8(video ? 'VideoHandler' : 'SoundHandler'); w.u8(0);
            });
            box(w, 'minf', () => {
              if (video) fullBox(w, 'vmhd', 0, 1, () => { w.u32(0).u32(0); });
              else fullBox(w, 'smhd', 0, 0, () => { w.u32(0); });
              box(w, 'dinf', () => fullBox(w, 'dref', 0, 0, () => { w.u32(1); fullBox(w, 'url ', 0, 1, () => {}); }));
              box(w, 'stbl', () => {
                w.bytes(t.stsd);
                const stts = runs(list.map((s, i) => (i + 1 < list.length ? list[i + 1]!.dts - s.dts : s.duration)));
                fullBox(w, 'stts', 0, 0, () => { w.u32(stts.length); for (const [n, d] of stts) w.u32(n).u32(Math.max(0, d)); });
                if (list.some((s) => s.cts !== 0)) {
                  const ctts = runs(list.map((s) => s.cts));
                  fullBox(w, 'ctts', 1, 0, () => { w.u32(ctts.length); for (const [n, c] of ctts) w.u32(n).i32(c); });
                }
                if (video && list.some((s) => !s.key)) {
                  const keys = list.map((s, i) => (s.key ? i + 1 : 0)).filter((i) => i > 0);
                  fullBox(w, 'stss', 0, 0, () => { w.u32(keys.length); for (const k of keys) w.u32(k); });
                }
                fullBox(w, 'stsc', 0, 0, () => { w.u32(1).u32(1).u32(1).u32(1); });
                fullBox(w, 'stsz', 0, 0, () => { w.u32(0).u32(list.length); for (const s of list) w.u32(s.size); });
                fullBox(w, 'co64', 0, 0, () => { w.u32(offsets.length); for (const o of offsets) w.u32(Math.floor(o / 0x100000000)).u32(o % 0x100000000); });
              });
            });
          });
        });
      }
    });
    if (large) { w.u32(1).fourcc('mdat').u32(Math.floor((mdatSize + 16) / 0x100000000)).u32((mdatSize + 16) % 0x100000000); }
    else w.u32(mdatSize + 8).fourcc('mdat');
    return w.finish();
  };
  // The moov's size does not depend on the offsets it holds (co64 is fixed size): build twice.
  const first = build(0);
  const header = build(first.length - (large ? 16 : 8));
  return { header, mdatSize };
}

/** The codec config of an stsd's first sample entry: avc1/hvc1 (avcC/hvcC) or mp4a (AAC AudioSpecificConfig). */
export function sampleEntryConfig(stsd: Uint8Array, kind: 'video' | 'audio', timescale: number): CodecConfig {
  const v = new DataView(stsd.buffer, stsd.byteOffset, stsd.byteLength);
  const top = boxes(stsd, 0, stsd.length);
  if (top[0]?.type !== 'stsd') throw new FormatError('MP4: not an stsd box');
  const entry = boxes(stsd, top[0].body + 8, top[0].end)[0];
  if (!entry) throw new FormatError('MP4: stsd without a sample entry');
  if (kind === 'video') {
    const width = v.getUint16(entry.body + 24), height = v.getUint16(entry.body + 26);
    const kids = boxes(stsd, entry.body + 78, entry.end);
    const rec = kids.find((k) => k.type === 'avcC' || k.type === 'hvcC');
    if (!rec || (entry.type !== 'avc1' && entry.type !== 'avc3' && entry.type !== 'hvc1' && entry.type !== 'hev1')) {
      throw new FormatError(`MP4: video sample entry ${JSON.stringify(entry.type)} is not H.264/H.265 with its record`);
    }
    return { codec: rec.type === 'avcC' ? 'h264' : 'h265', data: stsd.slice(rec.body, rec.end), width, height };
  }
  if (entry.type !== 'mp4a') throw new FormatError(`MP4: audio sample entry ${JSON.stringify(entry.type)} is not supported here`);
  const channels = v.getUint16(entry.body + 16);
  const esds = boxes(stsd, entry.body + 28, entry.end).find((k) => k.type === 'esds');
  if (!esds) throw new FormatError('MP4: mp4a without esds');
  // ES_Descriptor (3) > DecoderConfigDescriptor (4) > DecoderSpecificInfo (5).
  let p = esds.body + 4;
  const desc = (): { tag: number; len: number } => {
    if (p >= esds.end) throw new FormatError('MP4: esds ends early');
    const tag = stsd[p++]!;
    let len = 0;
    for (let i = 0; i < 4; i++) { const b = stsd[p++]!; len = (len << 7) | (b & 0x7f); if (!(b & 0x80)) break; }
    return { tag, len };
  };
  let d = desc();
  if (d.tag !== 3) throw new FormatError('MP4: esds without an ES_Descriptor');
  const flags = stsd[p + 2]!;
  p += 3;
  if (flags & 0x80) p += 2;
  if (flags & 0x40) p += 1 + stsd[p]!;
  if (flags & 0x20) p += 2;
  d = desc();
  if (d.tag !== 4) throw new FormatError('MP4: esds without a DecoderConfigDescriptor');
  const objectType = stsd[p]!;
  p += 13;
  if (objectType === 0x6b || objectType === 0x69) return { codec: 'mp3', sampleRate: timescale, channels };
  d = desc();
  if (d.tag !== 5 || p + d.len > esds.end) throw new FormatError('MP4: esds without the AudioSpecificConfig');
  return { codec: 'aac', data: stsd.slice(p, p + d.len), sampleRate: timescale, channels };
}
