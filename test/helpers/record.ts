// Helpers of the record tests: Debian's ffmpeg 5.1 (for -readrate), ffprobe of a file, files under a folder.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ffprobePath, run } from './media.ts';

export const FFMPEG51 = '/usr/bin/ffmpeg';

/** 20 s (or `seconds`) of testsrc2 320x240@25 (GOP 1 s) + 44.1 kHz sine, h264 + aac, read at `rate`× real time. */
export function sourceArgs(seconds: number, rate: number): string[] {
  return [
    '-hide_banner', '-loglevel', 'error', '-readrate', String(rate),
    '-f', 'lavfi', '-i', `testsrc2=size=320x240:rate=25:duration=${seconds}`,
    '-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=44100:duration=${seconds}`,
    '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-pix_fmt', 'yuv420p', '-g', '25', '-bf', '0',
    '-c:a', 'aac', '-b:a', '64k',
  ];
}

export async function probe(path: string): Promise<{ format: any; streams: any[]; packets: any[]; errors: string }> {
  const r = await run(ffprobePath, ['-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', '-show_packets', path]);
  const j = JSON.parse(r.stdout || '{}');
  return { format: j.format ?? {}, streams: j.streams ?? [], packets: j.packets ?? [], errors: r.stderr.trim() };
}

/** Files under dir (recursive), relative paths, sorted. */
export function filesUnder(dir: string, ext?: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, n.name);
      if (n.isDirectory()) walk(p);
      else if (!ext || n.name.endsWith(ext)) out.push(p);
    }
  };
  if (existsSync(dir)) walk(dir);
  return out.sort();
}

