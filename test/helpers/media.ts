// Shared helpers for integration tests: the npm-installed ffmpeg/ffprobe, a server on free ports,
// and ffprobe as JSON. Runs on Node, Bun and Deno (node:child_process works on all three).
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { currentRuntime } from '../../adapters/current.ts';
import { Server } from '../../src/server.ts';
import { Logger } from '../../src/log.ts';
import type { PluginDef } from '../../src/plugin.ts';

const require = createRequire(import.meta.url);
export const ffmpegPath: string = process.env.M7S_FFMPEG || require('@ffmpeg-installer/ffmpeg').path;
export const ffprobePath: string = process.env.M7S_FFPROBE || require('@ffprobe-installer/ffprobe').path;

export interface TestServer { server: Server; http: string; port: (plugin: string, proto?: string) => number; stop(): Promise<void> }

/** Start a server with `plugins` on 127.0.0.1 with every listener on port 0; `yaml` is appended config. */
export async function startServer(plugins: PluginDef<any>[], yaml = '', env: Record<string, string> = {}): Promise<TestServer> {
  // Test servers pull from and push to each other on 127.0.0.1, which global.outbound refuses to API
  // pulls by default (test/security.test.ts covers that default).
  // `http:` comes last, so that a test's extra lines may continue it (`    readheadertimeout: 3s`). File
  // pulls from the API may read the system's temporary folder, where tests make their files.
  const configText = `global:\n  loglevel: ${process.env.M7S_TEST_LOGLEVEL ?? 'error'}\n  outbound:\n    allowhosts: [loopback]\n    fileroots: [${JSON.stringify(tmpdir())}]\n  http:\n    listenaddr: "127.0.0.1:0"\n${yaml}`;
  const logger = process.env.M7S_TEST_LOGLEVEL ? undefined : Logger.silent();
  const server = await Server.start({ runtime: await currentRuntime(), plugins, configText, env, logger, watch: false });
  return {
    server,
    http: `http://127.0.0.1:${server.http!.port}`,
    port(plugin, proto) {
      const l = server.listening.find((x) => x.plugin === plugin && (!proto || x.proto === proto));
      if (!l) throw new Error(`no ${proto ?? ''} listener for ${plugin}`);
      return l.port;
    },
    stop: () => server.stop(),
  };
}

export interface RunResult { code: number | null; stdout: string; stderr: string }

/** Run a command to completion (with a timeout that kills it). */
export function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<RunResult> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    p.stdout!.on('data', (d) => { stdout += d; });
    p.stderr!.on('data', (d) => { stderr += d; if (stderr.length > 1e6) stderr = stderr.slice(-5e5); });
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => { clearTimeout(t); resolve({ code, stdout, stderr }); });
    p.on('error', (e) => { clearTimeout(t); resolve({ code: -1, stdout, stderr: stderr + String(e) }); });
  });
}

/** Start a long-running process (e.g. an ffmpeg publisher); kill() it when done. */
export function start(cmd: string, args: string[]): { proc: ChildProcess; stderr: () => string; kill(): Promise<void> } {
  const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr!.on('data', (d) => { err += d; if (err.length > 1e6) err = err.slice(-5e5); });
  p.on('error', () => {});
  return {
    proc: p,
    stderr: () => err,
    kill: () => new Promise<void>((r) => {
      if (p.exitCode !== null || p.signalCode !== null) return r();
      p.once('close', () => r());
      p.kill('SIGKILL');
    }),
  };
}

/** ffmpeg args for a live test source: testsrc2 + sine, libx264 + aac, real time (-re). */
export function testSourceArgs(opts: { seconds?: number; size?: string; fps?: number; gop?: number; rate?: number; vcodec?: string } = {}): string[] {
  const { seconds = 30, size = '320x240', fps = 25, gop = 25, rate = 44100, vcodec = 'libx264' } = opts;
  return [
    '-hide_banner', '-loglevel', 'error', '-re',
    '-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=${fps}:duration=${seconds}`,
    '-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=${rate}:duration=${seconds}`,
    '-c:v', vcodec, ...(vcodec === 'libx264' ? ['-preset', 'ultrafast', '-tune', 'zerolatency', '-pix_fmt', 'yuv420p'] : ['-preset', 'ultrafast']),
    '-g', String(gop), '-bf', '0', '-c:a', 'aac', '-b:a', '64k',
  ];
}

/** ffprobe -show_streams -show_packets as JSON (packets optional). */
export async function ffprobe(url: string, opts: { packets?: boolean; seconds?: number; extra?: string[]; timeoutMs?: number } = {}): Promise<any> {
  const args = ['-v', 'error', '-print_format', 'json', '-show_streams', ...(opts.packets ? ['-show_packets'] : []), ...(opts.extra ?? [])];
  if (opts.seconds) args.push('-read_intervals', `%+${opts.seconds}`);
  args.push(url);
  const r = await run(ffprobePath, args, opts.timeoutMs ?? 60_000);
  if (r.code !== 0) throw new Error(`ffprobe ${url} failed (${r.code}): ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Poll until fn() is truthy (or throw after timeoutMs). */
export async function until<T>(fn: () => T | Promise<T>, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * Loss check on ffprobe's video packets: how many arrived against how many `fps` gives for their span.
 * The first `skipSec` of media are left out: a new player's cached GOP is fast-forwarded into
 * subscribe.catchup (100 ms by default), so more frames than `fps` allows sit at the start, on purpose.
 */
export function videoLoss(videoPackets: { dts_time?: string; dts?: number }[], fps: number, skipSec = 0.2): { count: number; expected: number; err: number; span: number } {
  const time = (p: { dts_time?: string; dts?: number }) => (p.dts_time !== undefined ? Number(p.dts_time) : Number(p.dts));
  if (!videoPackets.length) return { count: 0, expected: 0, err: 1, span: 0 };
  const t0 = time(videoPackets[0]) + skipSec;
  const rest = videoPackets.filter((p) => time(p) >= t0);
  const span = rest.length ? time(rest[rest.length - 1]) - time(rest[0]) + 1 / fps : 0;
  const expected = span * fps;
  return { count: rest.length, expected, err: expected ? Math.abs(rest.length - expected) / expected : 1, span };
}
