// Playback of recorded segments: one MP4 stitched across the fMP4 segments of a time range (served
// with Range support), and VOD HLS playlists straight from the recorded files (TS segments as they
// are; fMP4 segments as byte ranges: EXT-X-MAP is a file's init, the media its fragments).

import { type Mp4FileSample, type Mp4FileTrack, progressiveMp4, readFragmented } from '../../src/format/mp4-file.ts';
import type { IndexEntry } from './store.ts';

export interface Piece { path: string; offset: number; size: number }

/** A file made of an in-memory head and pieces of other files. */
export interface VirtualFile { head: Uint8Array; pieces: Piece[]; size: number; durationMs: number }

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * One progressive MP4 of the fMP4 segments `entries` (oldest first) from the last video keyframe at or
 * before `startMs` up to `endMs` (wall clock). Stops at a segment whose tracks differ from the first's
 * (a codec change). Each track's samples follow each other without gaps.
 */
/** Reads a segment file (locally, or from the object store when the local copy is gone). */
export type ReadSegment = (path: string) => Promise<Uint8Array>;

export async function stitchMp4(read: ReadSegment, entries: IndexEntry[], startMs: number, endMs: number): Promise<VirtualFile | null> {
  let tracks: Mp4FileTrack[] | null = null;
  const samples: Mp4FileSample[] = [];
  const paths: string[] = [];
  const nextDts = new Map<number, number>();
  const fileOf: number[] = [];
  let cutStart = -Infinity;
  for (const e of entries) {
    if (e.type !== 'fmp4') continue;
    let f;
    try { f = readFragmented(await read(e.path)); } catch { continue; } // gone or unreadable: skip
    if (!tracks) tracks = f.tracks;
    else if (f.tracks.length !== tracks.length || f.tracks.some((t, i) => !sameBytes(t.stsd, tracks![i]!.stsd))) break;
    const ts = new Map(f.tracks.map((t) => [t.id, t.timescale]));
    const wall = (s: Mp4FileSample) => e.start + (s.dts * 1000) / ts.get(s.trackId)!;
    const video = f.tracks.find((t) => t.kind === 'video');
    if (cutStart === -Infinity) {
      // The first segment with media in range: start at the last keyframe at or before startMs.
      const keys = f.samples.filter((s) => (video ? s.trackId === video.id && s.key : true));
      let k = keys[0];
      for (const s of keys) if (wall(s) <= startMs) k = s;
      if (!k || wall(k) >= endMs) continue;
      cutStart = wall(k);
    }
    const idx = paths.length;
    paths.push(e.path);
    for (const s of f.samples) {
      const w = wall(s);
      if (w < cutStart - 0.5 || w >= endMs) continue;
      const d = nextDts.get(s.trackId) ?? 0;
      nextDts.set(s.trackId, d + s.duration);
      samples.push({ ...s, dts: d });
      fileOf.push(idx);
    }
  }
  if (!tracks || !samples.length) return null;
  const { header, mdatSize } = progressiveMp4({ tracks, samples, validEnd: 0 });
  const pieces: Piece[] = [];
  for (const [i, s] of samples.entries()) {
    const path = paths[fileOf[i]!]!;
    const last = pieces[pieces.length - 1];
    if (last && last.path === path && last.offset + last.size === s.offset) last.size += s.size;
    else pieces.push({ path, offset: s.offset, size: s.size });
  }
  let durationMs = 0;
  for (const t of tracks) {
    const d = nextDts.get(t.id);
    if (d) durationMs = Math.max(durationMs, (d * 1000) / t.timescale);
  }
  return { head: header, pieces, size: header.length + mdatSize, durationMs };
}

/** Bytes [from, to) of a virtual file as a stream, reading each source file once. */
export function readRange(read: ReadSegment, v: VirtualFile, from: number, to: number): ReadableStream<Uint8Array> {
  const jobs: { path?: string; bytes?: Uint8Array; offset: number; size: number }[] = [];
  let pos = 0;
  const add = (start: number, size: number, path?: string, bytes?: Uint8Array) => {
    const a = Math.max(from, pos), b = Math.min(to, pos + size);
    if (a < b) jobs.push({ path, bytes, offset: start + (a - pos), size: b - a });
    pos += size;
  };
  add(0, v.head.length, undefined, v.head);
  for (const p of v.pieces) add(p.offset, p.size, p.path);
  let cache: { path: string; data: Uint8Array } | null = null;
  let i = 0;
  return new ReadableStream<Uint8Array>({
    async pull(ctl) {
      const j = jobs[i++];
      if (!j) { cache = null; ctl.close(); return; }
      if (j.bytes) { ctl.enqueue(j.bytes.subarray(j.offset, j.offset + j.size)); return; }
      let c = cache;
      if (!c || c.path !== j.path) cache = c = { path: j.path!, data: await read(j.path!) };
      ctl.enqueue(c.data.subarray(j.offset, j.offset + j.size));
    },
  }, { highWaterMark: 0 });
}

/** Parse a single `bytes=a-b` range against `size`; null = the whole file; 'bad' = unsatisfiable. */
export function parseRange(h: string | undefined, size: number): { from: number; to: number } | null | 'bad' {
  if (!h) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(h.trim());
  if (!m || (m[1] === '' && m[2] === '')) return 'bad';
  let from: number, to: number;
  if (m[1] === '') { from = Math.max(0, size - Number(m[2])); to = size; }
  else { from = Number(m[1]); to = m[2] === '' ? size : Math.min(size, Number(m[2]) + 1); }
  if (from >= size || from >= to) return 'bad';
  return { from, to };
}

/** A Response for a virtual file honouring a Range header. */
export async function rangeResponse(read: ReadSegment, v: VirtualFile, range: string | undefined, type: string, head: boolean, extra: Record<string, string> = {}): Promise<Response> {
  const r = parseRange(range, v.size);
  const base = { 'content-type': type, 'accept-ranges': 'bytes', ...extra };
  if (r === 'bad') return new Response(null, { status: 416, headers: { ...base, 'content-range': `bytes */${v.size}` } });
  const { from, to } = r ?? { from: 0, to: v.size };
  const headers = { ...base, 'content-length': String(to - from), ...(r ? { 'content-range': `bytes ${from}-${to - 1}/${v.size}` } : {}) };
  if (head) return new Response(null, { status: r ? 206 : 200, headers });
  // Up to 16 MB (a segment, an HLS byte range) as one buffer: every runtime then sends a Content-Length
  // (Bun sends a stream body chunked, which ffmpeg's HLS reader does not take for byte ranges).
  if (to - from <= 16 << 20) {
    const out = new Uint8Array(to - from);
    const reader = readRange(read, v, from, to).getReader();
    let p = 0;
    for (;;) { const { done, value } = await reader.read(); if (done) break; out.set(value, p); p += value.length; }
    return new Response(out, { status: r ? 206 : 200, headers });
  }
  return new Response(readRange(read, v, from, to), { status: r ? 206 : 200, headers });
}

/** A VOD HLS playlist of recorded segments; `url(e)` addresses a segment file. */
export function vodPlaylist(entries: IndexEntry[], url: (e: IndexEntry) => string): string {
  const list = entries.filter((e) => (e.type === 'hls' || (e.type === 'fmp4' && e.init)) && e.duration > 0);
  const fmp4 = list.some((e) => e.type === 'fmp4');
  const segs = fmp4 ? list.filter((e) => e.type === 'fmp4') : list;
  const target = Math.max(1, ...segs.map((e) => Math.ceil(e.duration / 1000)));
  const lines = ['#EXTM3U', `#EXT-X-VERSION:${fmp4 ? 7 : 3}`, `#EXT-X-TARGETDURATION:${target}`, '#EXT-X-MEDIA-SEQUENCE:0', '#EXT-X-PLAYLIST-TYPE:VOD'];
  let prev: IndexEntry | null = null;
  for (const e of segs) {
    const u = url(e);
    if (fmp4) {
      // Each fMP4 file has its own init and a timeline from 0: a discontinuity and a new map per file.
      if (prev) lines.push('#EXT-X-DISCONTINUITY');
      lines.push(`#EXT-X-MAP:URI="${u}",BYTERANGE="${e.init}@0"`);
      lines.push(`#EXTINF:${(e.duration / 1000).toFixed(3)},`, `#EXT-X-BYTERANGE:${e.size - e.init!}@${e.init}`, u);
    } else {
      // TS segments of one recording share a timeline; a gap between recordings is a discontinuity.
      if (prev && (prev.playlist !== e.playlist || e.start - prev.end > 1000)) lines.push('#EXT-X-DISCONTINUITY');
      lines.push(`#EXTINF:${(e.duration / 1000).toFixed(3)},`, u);
    }
    prev = e;
  }
  lines.push('#EXT-X-ENDLIST');
  return lines.join('\n') + '\n';
}
