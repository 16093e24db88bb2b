// Time-shift as a stream: a publisher that replays the fMP4 segments of a time range at publish.speed
// × real time (1 by default), so any player — HTTP-FLV, RTMP, HLS, fMP4 — watches a recording like a
// live stream. Driven by `onsub.pull` (e.g. `"vod/(.+)": "$1"` with `?start=&end=` on the player's URL).

import type { Publisher } from '../../src/core/publisher.ts';
import type { Track } from '../../src/core/frame.ts';
import { type Mp4FileSample, readFragmented, sampleEntryConfig } from '../../src/format/mp4-file.ts';
import type { IndexEntry } from './store.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Write the samples of `entries` (oldest first) between the last keyframe at or before `startMs` and
 * `endMs` into `pub`, paced by pub.paceDelay. Returns the frames written; stops early when the
 * publisher closes.
 */
export async function replay(read: (path: string) => Promise<Uint8Array>, pub: Publisher, entries: IndexEntry[], startMs: number, endMs: number): Promise<number> {
  const tracks = new Map<string, Track>();
  let base = NaN;
  let cutStart = -Infinity;
  let written = 0;
  for (const e of entries) {
    if (e.type !== 'fmp4') continue;
    let f, data: Uint8Array;
    try { data = await read(e.path); f = readFragmented(data); } catch { continue; }
    const byId = new Map(f.tracks.map((t) => [t.id, t]));
    const wall = (s: Mp4FileSample) => e.start + (s.dts * 1000) / byId.get(s.trackId)!.timescale;
    const video = f.tracks.find((t) => t.kind === 'video');
    if (cutStart === -Infinity) {
      let k: Mp4FileSample | undefined;
      for (const s of f.samples) if ((video ? s.trackId === video.id && s.key : true) && (!k || wall(s) <= startMs)) k = s;
      if (!k || wall(k) >= endMs) continue;
      cutStart = wall(k);
    }
    if (base !== base) base = cutStart;
    const out = new Map<number, Track>();
    for (const t of f.tracks) {
      const cfg = sampleEntryConfig(t.stsd, t.kind, t.timescale);
      const key = t.kind;
      let tr = tracks.get(key);
      if (!tr) tracks.set(key, (tr = pub.addTrack(t.kind, cfg, { clockRate: t.timescale })));
      else pub.setConfig(tr, cfg);
      out.set(t.id, tr);
    }
    // Fragments hold each track's samples one after the other: interleave them by time.
    const list = f.samples.map((s) => ({ s, w: wall(s) })).filter((x) => x.w >= cutStart - 0.5 && x.w < endMs).sort((a, b) => a.w - b.w);
    for (const { s, w } of list) {
      if (pub.closed) return written;
      const tr = out.get(s.trackId)!;
      const dts = Math.round(((w - base) * tr.clockRate) / 1000);
      const wait = pub.paceDelay(tr, dts);
      if (wait > 0) await sleep(wait);
      if (pub.write(tr, dts, s.cts, s.key, data.subarray(s.offset, s.offset + s.size))) written++;
    }
  }
  return written;
}
