// Shared by the plugins that drive ffmpeg (snap, transcode): finding ffmpeg, running it once with an
// input and collecting its output, feeding it a keyframe, and reading a child's CPU time. Not a plugin.
//
// Each of those plugins has its own `ffmpeg` key: the program to run, a name looked up on PATH
// ("ffmpeg", the default) or a path ("/opt/ffmpeg/bin/ffmpeg"). It is checked when the plugin starts
// (`ffmpeg -version`); when it cannot be run the plugin's setup fails and /api/plugins shows it disabled
// with "setup failed: ffmpeg not found ...".

import type { Frame, PluginContext } from '../../src/plugin.ts';
import type { ChildProcess } from '../../src/net/types.ts';
import { avccToAnnexB, parseAvcC } from '../../src/codec/h264.ts';
import { parseHvcC } from '../../src/codec/h265.ts';

/** The `ffmpeg` key's help text, shared so both plugins say the same. */
export const FFMPEG_KEY_DOC = 'ffmpeg program: a name looked up on PATH or a path';

/**
 * Programs that answered `-version` in this process, with their first line. Remembered so that a
 * server (or a test suite) starting many times, with two ffmpeg plugins each, runs the check once per
 * program; a failure is not remembered, so installing ffmpeg and reloading works.
 */
const checked = new Map<string, string>();

/** Runs `ffmpeg -version` and returns its first line; throws a clear error when it cannot be run. */
export async function checkFfmpeg(ctx: PluginContext<any>, program: string): Promise<string> {
  const known = checked.get(program);
  if (known !== undefined) return known;
  const first = await checkOnce(ctx, program);
  checked.set(program, first);
  return first;
}

async function checkOnce(ctx: PluginContext<any>, program: string): Promise<string> {
  let r: RunResult;
  try {
    r = await runOnce(ctx, program, ['-hide_banner', '-version'], undefined, 10_000, 'ffmpeg -version');
  } catch (err) {
    throw new Error(`ffmpeg not found (${ctx.name}.ffmpeg: ${JSON.stringify(program)}): ${(err as Error).message}; install ffmpeg or set ${ctx.name}.ffmpeg to its path`);
  }
  const first = new TextDecoder().decode(r.stdout).split('\n')[0] ?? '';
  if (r.code !== 0 || !/ffmpeg/i.test(first)) {
    throw new Error(`${ctx.name}.ffmpeg ${JSON.stringify(program)} is not a working ffmpeg (exit ${r.code ?? r.signal}: ${first.slice(0, 120) || tail(r.stderr)})`);
  }
  return first.trim();
}

export interface RunResult { code: number | null; signal: string | null; stdout: Uint8Array; stderr: Uint8Array }

/** The last line or so of stderr, for error messages. */
export function tail(b: Uint8Array, n = 300): string {
  const s = new TextDecoder().decode(b.subarray(Math.max(0, b.length - 4 * n))).trim();
  const lines = s.split(/[\r\n]+/).filter(Boolean);
  return (lines.slice(-2).join(' | ')).slice(-n);
}

/**
 * Runs a program to its end with `input` on stdin, collecting stdout and stderr (bounded). Killed after
 * `timeoutMs`. Rejects only when it cannot be started.
 */
export async function runOnce(ctx: PluginContext<any>, program: string, args: string[], input: Uint8Array[] | undefined, timeoutMs: number, what: string, maxOut = 32 << 20): Promise<RunResult> {
  const child = await ctx.spawn(program, args, { what, stdin: input ? 'pipe' : 'ignore' });
  const out: Uint8Array[] = [], err: Uint8Array[] = [];
  let outBytes = 0, errBytes = 0;
  child.onStdout((c) => { outBytes += c.length; if (outBytes <= maxOut) out.push(c); else child.kill('SIGKILL'); });
  child.onStderr((c) => { errBytes += c.length; err.push(c); while (errBytes > 64 << 10 && err.length > 1) errBytes -= err.shift()!.length; });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  if (input) {
    for (const c of input) if (!child.write(c)) await child.drain();
    child.endInput();
  }
  const ex = await child.exited;
  clearTimeout(timer);
  return { code: ex.code, signal: ex.signal, stdout: concat(out), stderr: concat(err) };
}

export function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  let n = 0;
  for (const p of parts) n += p.length;
  const o = new Uint8Array(n);
  let off = 0;
  for (const p of parts) { o.set(p, off); off += p.length; }
  return o;
}

const START = new Uint8Array([0, 0, 0, 1]);

/**
 * A keyframe as an Annex-B elementary stream with its parameter sets in front (from the frame's codec
 * config), which ffmpeg decodes on its own: `-f h264` / `-f hevc`. Undefined for other codecs.
 */
export function keyframeAnnexB(f: Frame): { format: 'h264' | 'hevc'; bytes: Uint8Array[] } | undefined {
  const cfg = f.config;
  const ps: Uint8Array[] = [];
  let lengthSize = 4;
  if (cfg.codec === 'h264') {
    if (cfg.data) {
      const c = parseAvcC(cfg.data);
      lengthSize = c.lengthSize;
      for (const n of [...c.sps, ...c.pps]) ps.push(START, n);
    }
  } else if (cfg.codec === 'h265') {
    if (cfg.data) {
      const c = parseHvcC(cfg.data);
      lengthSize = c.lengthSize;
      for (const n of [...c.vps, ...c.sps, ...c.pps]) ps.push(START, n);
    }
  } else {
    return undefined;
  }
  // Frames carry 4-byte lengths (canonical form); lengthSize only matters for records that say otherwise.
  void lengthSize;
  return { format: cfg.codec === 'h264' ? 'h264' : 'hevc', bytes: [...ps, avccToAnnexB(f.data, 4)] };
}

/**
 * CPU seconds (user + system) a child has used so far, from /proc/{pid}/stat where the host has it
 * (Linux); undefined elsewhere. Clock ticks are taken as 100 per second (Linux's USER_HZ on every
 * architecture it ships).
 */
export async function cpuSeconds(ctx: PluginContext<any>, pid: number): Promise<number | undefined> {
  try {
    const s = await ctx.runtime.readTextFile(`/proc/${pid}/stat`);
    // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    const utime = Number(rest[11]), stime = Number(rest[12]);
    if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
    return (utime + stime) / 100;
  } catch {
    return undefined;
  }
}

/** ffmpeg's progress line on stderr ("frame= 25 fps=25 ... speed=1.01x"): the last speed and fps. */
export function parseProgress(text: string): { speed?: number; fps?: number; frame?: number } {
  const r: { speed?: number; fps?: number; frame?: number } = {};
  const sp = /speed=\s*([\d.]+)x/g;
  let m: RegExpExecArray | null, last: string | undefined;
  while ((m = sp.exec(text))) last = m[1];
  if (last !== undefined) r.speed = Number(last);
  const fp = /fps=\s*([\d.]+)/g;
  last = undefined;
  while ((m = fp.exec(text))) last = m[1];
  if (last !== undefined) r.fps = Number(last);
  const fr = /frame=\s*(\d+)/g;
  last = undefined;
  while ((m = fr.exec(text))) last = m[1];
  if (last !== undefined) r.frame = Number(last);
  return r;
}

export type { ChildProcess };
