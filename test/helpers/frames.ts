// Real encoded frames for muxer tests: ffmpeg (from npm) encodes a test pattern, our own FLV demuxer and
// codec helpers turn its output into canonical frames (the same form publishers produce).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ffmpegPath, ffprobePath, run } from './media.ts';
import { FlvDemuxer, parseAudioTagBody, parseVideoTagBody } from '../../src/format/flv.ts';
import { parseAvcC, normalizeAvcc, splitAnnexB, joinAvcc } from '../../src/codec/h264.ts';
import { buildHvcC, h265NalType, H265_NAL_AUD, H265_NAL_PPS, H265_NAL_SPS, H265_NAL_VPS, isH265Irap } from '../../src/codec/h265.ts';
import { parseAsc } from '../../src/codec/aac.ts';
import type { CodecConfig } from '../../src/core/frame.ts';

export interface TestFrame { dts: number; cts: number; key: boolean; data: Uint8Array }
export interface TestMedia {
  video: { config: CodecConfig; clockRate: number; frames: TestFrame[] };
  audio?: { config: CodecConfig; clockRate: number; frames: TestFrame[] };
}

export function tempDir(): { dir: string; file(name: string): string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'm7s-fmt-'));
  return { dir, file: (n) => join(dir, n), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** 3 s of 320x240@25 H.264 (x264, 2 B-frames) + AAC-LC 44.1 kHz mono via FLV, as canonical frames. */
export async function h264AacFrames(dir: string, seconds = 3): Promise<TestMedia> {
  const flv = join(dir, 'src.flv');
  const r = await run(ffmpegPath, [
    '-hide_banner', '-loglevel', 'error', '-y',
    '-f', 'lavfi', '-i', `testsrc2=size=320x240:rate=25`, '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100',
    '-t', String(seconds), '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-g', '25', '-bf', '2',
    '-c:a', 'aac', '-b:a', '64k', '-ac', '1', '-f', 'flv', flv,
  ]);
  if (r.code !== 0) throw new Error(`ffmpeg failed: ${r.stderr}`);
  const media: TestMedia = { video: { config: { codec: 'h264' }, clockRate: 90000, frames: [] } };
  let lengthSize = 4;
  let audioCount = 0;
  const dmx = new FlvDemuxer((tag) => {
    if (tag.type === 9) {
      const v = parseVideoTagBody(tag.data);
      if (v.packet === 'seqhdr') {
        const c = parseAvcC(v.data);
        lengthSize = c.lengthSize;
        media.video.config = { codec: 'h264', data: v.data.slice(), width: 320, height: 240 };
      } else if (v.packet === 'nalu') {
        media.video.frames.push({ dts: tag.timestamp * 90, cts: v.cts * 90, key: v.frameType === 'key', data: normalizeAvcc(v.data, lengthSize).slice() });
      }
    } else if (tag.type === 8) {
      const a = parseAudioTagBody(tag.data);
      if (a.packet === 'seqhdr') {
        const asc = parseAsc(a.data);
        media.audio = { config: { codec: 'aac', data: a.data.slice(), sampleRate: asc.sampleRate, channels: asc.channels }, clockRate: asc.sampleRate, frames: [] };
      } else if (media.audio) {
        // AAC frames are 1024 samples apart: exact timestamps in the sample clock.
        media.audio.frames.push({ dts: 1024 * audioCount++, cts: 0, key: true, data: a.data.slice() });
      }
    }
  });
  dmx.push(new Uint8Array(readFileSync(flv)));
  return media;
}

/**
 * 3 s of 320x240@25 H.265 (x265, no B-frames) as raw Annex B, split into access units by NAL type
 * (a new AU starts at an AUD, a parameter set or a slice with first_slice_segment_in_pic_flag after a slice).
 */
export async function h265Frames(dir: string, seconds = 3): Promise<TestMedia> {
  const file = join(dir, 'src.hevc');
  const r = await run(ffmpegPath, [
    '-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25', '-t', String(seconds),
    '-c:v', 'libx265', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-x265-params', 'bframes=0:keyint=25:log-level=error',
    '-f', 'hevc', file,
  ]);
  if (r.code !== 0) throw new Error(`ffmpeg failed: ${r.stderr}`);
  const nalus = splitAnnexB(new Uint8Array(readFileSync(file)));
  const vps: Uint8Array[] = [], sps: Uint8Array[] = [], pps: Uint8Array[] = [];
  const aus: Uint8Array[][] = [];
  let cur: Uint8Array[] = [];
  let curHasSlice = false;
  for (const nal of nalus) {
    const t = h265NalType(nal);
    const vcl = t < 32;
    const firstSlice = vcl && (nal[2]! & 0x80) !== 0;
    const startsAu = (vcl && firstSlice) || t === H265_NAL_AUD || (t >= 32 && t <= 34) || t === 39;
    if (startsAu && curHasSlice) {
      aus.push(cur);
      cur = [];
      curHasSlice = false;
    }
    if (t === H265_NAL_VPS) { if (!vps.length) vps.push(nal); continue; }
    if (t === H265_NAL_SPS) { if (!sps.length) sps.push(nal); continue; }
    if (t === H265_NAL_PPS) { if (!pps.length) pps.push(nal); continue; }
    if (t === H265_NAL_AUD) continue;
    cur.push(nal);
    if (vcl) curHasSlice = true;
  }
  if (curHasSlice) aus.push(cur);
  const frames = aus.map((au, i) => ({
    dts: i * 3600, cts: 0, key: au.some((n) => isH265Irap(h265NalType(n))), data: joinAvcc(au),
  }));
  return { video: { config: { codec: 'h265', data: buildHvcC(vps, sps, pps), width: 320, height: 240 }, clockRate: 90000, frames } };
}

export function writeParts(path: string, parts: readonly Uint8Array[]): void {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  writeFileSync(path, out);
}

/** ffprobe a file: `-v error` output (must be empty), streams, packets and format. */
export async function probeFile(path: string): Promise<{ errors: string; streams: any[]; packets: any[]; format: any }> {
  const r = await run(ffprobePath, ['-v', 'error', '-print_format', 'json', '-show_streams', '-show_packets', '-show_format', path]);
  if (r.code !== 0) throw new Error(`ffprobe failed (${r.code}): ${r.stderr}`);
  const j = JSON.parse(r.stdout);
  // Decode everything too: errors from the decoders show up on stderr with -v error.
  const d = await run(ffmpegPath, ['-v', 'error', '-i', path, '-f', 'null', '-']);
  return { errors: (r.stderr + d.stderr).trim(), streams: j.streams ?? [], packets: j.packets ?? [], format: j.format ?? {} };
}
