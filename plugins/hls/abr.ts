// Adaptive bitrate: a master playlist for a stream that has renditions. A rendition is a stream one
// level below its source (live/x/480p for live/x) published by a transform (the transcode plugin); it
// shares the source's timeline and has its keyframes at the source's keyframe times, so segmenters of
// the source and its renditions that cut on the same grid (Segmenter.align) make aligned segments.
//
//   /hls/live/x.m3u8          master: the source (x.m3u8?media) and each rendition (x/480p.m3u8)
//   /hls/live/x.m3u8?media    the source's own media playlist
//   /llhls/live/x/master.m3u8 master for LL-HLS: index.m3u8 and 480p/index.m3u8

import type { PluginEngine, Stream, Track } from '../../src/plugin.ts';
import { MP4_AUDIO, MP4_VIDEO, TS_AUDIO, TS_VIDEO, type SegmentKind } from './segmenter.ts';

/** Renditions of `path` that publish now, with a video track. */
export function renditionsOf(engine: PluginEngine, path: string): Stream[] {
  const prefix = path + '/';
  const out: Stream[] = [];
  for (const s of engine.streams.values()) {
    if (!s.path.startsWith(prefix) || s.path.indexOf('/', prefix.length) >= 0) continue;
    if (s.publisher?.type !== 'transform' || !s.tracks.some((t) => t.kind === 'video')) continue;
    out.push(s);
  }
  return out;
}

/** Whether `path` is a source with renditions or a rendition of a publishing source: its segmenters cut on the grid. */
export function isAbrMember(engine: PluginEngine, path: string): boolean {
  if (renditionsOf(engine, path).length) return true;
  const s = engine.getStream(path);
  const i = path.lastIndexOf('/');
  return s?.publisher?.type === 'transform' && i > 0 && !!engine.getStream(path.slice(0, i))?.publisher;
}

interface Variant { uri: string; stream: Stream }

function tracksFor(s: Stream, kind: SegmentKind): { video?: Track; audio?: Track } {
  const vset = kind === 'ts' ? TS_VIDEO : MP4_VIDEO;
  const aset = kind === 'ts' ? TS_AUDIO : MP4_AUDIO;
  return {
    video: s.tracks.find((t) => t.kind === 'video' && t.index === 0 && vset.has(t.codec)),
    audio: s.tracks.find((t) => t.kind === 'audio' && t.index === 0 && aset.has(t.codec)),
  };
}

/** A measured frame rate snapped to the nominal one (ms timestamps make 15 fps measure 14.93). */
function nominalRate(fps: number): number {
  for (const n of [23.976, 29.97, 59.94]) if (Math.abs(fps - n) < 0.01) return n;
  const r = Math.round(fps);
  return Math.abs(fps - r) < 0.2 ? r : fps;
}

/** EXT-X-STREAM-INF attributes of one variant from its tracks: measured bitrate (+10% for the container), size, codecs, frame rate. */
export function streamInf(s: Stream, kind: SegmentKind): string {
  const { video, audio } = tracksFor(s, kind);
  const bps = (video?.bps ?? 0) + (audio?.bps ?? 0);
  const attrs = [`BANDWIDTH=${Math.max(64_000, Math.round(bps * 1.1))}`];
  if (video?.config.width && video.config.height) attrs.push(`RESOLUTION=${video.config.width}x${video.config.height}`);
  const codecs = [video?.config.codecString, audio?.config.codecString].filter(Boolean);
  if (codecs.length) attrs.push(`CODECS="${codecs.join(',')}"`);
  // The typical frame interval gives the rate (the per-second count wobbles by a frame).
  const fps = video?.frameDuration ? video.clockRate / video.frameDuration : video?.fps;
  if (fps) attrs.push(`FRAME-RATE=${nominalRate(fps).toFixed(3)}`);
  return '#EXT-X-STREAM-INF:' + attrs.join(',');
}

/** The master playlist: the source first, then its renditions by bandwidth, highest first. */
export function masterPlaylist(source: Stream, renditions: Stream[], kind: SegmentKind, uri: (s: Stream, isSource: boolean) => string): string {
  const vs: Variant[] = [{ uri: uri(source, true), stream: source }, ...renditions.map((r) => ({ uri: uri(r, false), stream: r }))];
  const bw = (s: Stream) => { const { video, audio } = tracksFor(s, kind); return (video?.bps ?? 0) + (audio?.bps ?? 0); };
  vs.sort((a, b) => (a.stream === source ? -1 : b.stream === source ? 1 : bw(b.stream) - bw(a.stream)));
  const lines = ['#EXTM3U', `#EXT-X-VERSION:${kind === 'fmp4' ? 7 : 3}`, '#EXT-X-INDEPENDENT-SEGMENTS'];
  for (const v of vs) lines.push(streamInf(v.stream, kind), v.uri);
  return lines.join('\n') + '\n';
}
