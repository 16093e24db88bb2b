// The single-file executable (issue 14): `npm run build:binary` (bun build --compile) makes one file
// that, copied alone into an empty directory, starts with defaults, honours --version, --help, -c and
// env overrides, answers /api/sysinfo, takes an RTMP publish from ffmpeg and plays HTTP-FLV and HLS to
// ffprobe. Builds once per run (under a second here) into a temp dir. Node pass only: it drives a
// compiled binary, the same whichever runtime runs the test.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createServer } from 'node:net';
import { detectRuntime } from '../adapters/current.ts';
import { ffmpegPath, ffprobe, start, testSourceArgs, until } from './helpers/media.ts';
import { VERSION } from '../src/version.ts';

const root = resolve('.');
const bunBin = process.env.M7S_BUN || join(root, 'node_modules/.bin/bun');
const skip = detectRuntime() !== 'node' ? 'drives a compiled binary: runs in the Node pass only'
  : !existsSync(bunBin) ? `no bun binary at ${bunBin} (npm ci installs the bun devDependency; or set M7S_BUN)` : false;

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => res(p)); });
  });
}

/** Start the binary in `cwd`; resolve once /api/sysinfo answers on `port`, with the time that took. */
async function launch(bin: string, cwd: string, port: number, args: string[] = [], env: Record<string, string> = {}) {
  const t0 = performance.now();
  const p: ChildProcess = spawn(bin, args, { cwd, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout!.on('data', (d) => { out += d; });
  p.stderr!.on('data', (d) => { out += d; });
  const stop = () => new Promise<number | null>((r) => {
    if (p.exitCode !== null) return r(p.exitCode);
    p.once('close', (code) => r(code));
    p.kill('SIGTERM');
  });
  try {
    const info = await until(async () => {
      if (p.exitCode !== null) throw new Error(`exited ${p.exitCode}: ${out}`);
      try { return await (await fetch(`http://127.0.0.1:${port}/api/sysinfo`)).json(); } catch { return null; }
    }, 15_000, `/api/sysinfo on :${port}`);
    return { info: info as any, ms: performance.now() - t0, out: () => out, stop };
  } catch (err) {
    p.kill('SIGKILL');
    throw new Error(`${(err as Error).message}\n${out}`);
  }
}

describe('single binary (bun build --compile)', { skip }, () => {
  let tmp = '', bin = '', size = 0, buildMs = 0;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'm7s-bin-'));
    const t0 = performance.now();
    const built = join(tmp, 'build', 'm7s');
    const r = spawnSync(process.execPath, [join(root, 'scripts/build-binary.mjs'), `--outfile=${built}`], { cwd: root, env: { ...process.env, M7S_BUN: bunBin }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr + r.stdout);
    buildMs = performance.now() - t0;
    // Alone in an empty directory: no config.yaml, no node_modules, no sources next to it.
    const run = join(tmp, 'run');
    mkdirSync(run);
    bin = join(run, 'm7s');
    copyFileSync(built, bin);
    spawnSync('chmod', ['755', bin]);
    size = statSync(bin).size;
    console.log(`# binary: ${(size / 1048576).toFixed(1)} MiB, built in ${(buildMs / 1000).toFixed(1)} s`);
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('--version and --help', () => {
    const v = spawnSync(bin, ['--version'], { cwd: join(tmp, 'run'), encoding: 'utf8' });
    assert.equal(v.status, 0);
    assert.equal(v.stdout.trim(), VERSION);
    const h = spawnSync(bin, ['--help'], { cwd: join(tmp, 'run'), encoding: 'utf8' });
    assert.equal(h.status, 0);
    assert.match(h.stdout, /usage: m7s \[options\]/);
    const bad = spawnSync(bin, ['--nope'], { cwd: join(tmp, 'run'), encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /unknown argument --nope/);
  });

  it('-c FILE: runs the given config (all plugins off) and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const cfgDir = join(tmp, 'cfg');
    mkdirSync(cfgDir, { recursive: true });
    writeFileSync(join(cfgDir, 'm7s.yaml'), `global:\n  disableall: true\n  http:\n    listenaddr: "127.0.0.1:${port}"\n`);
    const s = await launch(bin, join(tmp, 'run'), port, ['-c', join(cfgDir, 'm7s.yaml')]);
    try {
      assert.equal(s.info.data.runtime, 'bun');
      assert.deepEqual(s.info.data.listen.map((l: any) => l.plugin), ['global'], 'disableall from the file: only HTTP listens');
    } finally { assert.equal(await s.stop(), 0, s.out()); }
  });

  it('alone in an empty dir with env overrides: /api/sysinfo, RTMP in, HTTP-FLV and HLS out (ffmpeg/ffprobe)', async () => {
    const run = join(tmp, 'run');
    assert.deepEqual(readdirSync(run), ['m7s']);
    const [http, rtmp] = [await freePort(), await freePort()];
    const s = await launch(bin, run, http, [], { GLOBAL_HTTP_LISTENADDR: `127.0.0.1:${http}`, RTMP_TCP_LISTENADDR: `127.0.0.1:${rtmp}`, HLS_FRAGMENT: '1s' });
    console.log(`# binary: first /api/sysinfo answer ${Math.round(s.ms)} ms after spawn`);
    const pub = start(ffmpegPath, [...testSourceArgs({ seconds: 30 }), '-f', 'flv', `rtmp://127.0.0.1:${rtmp}/live/bin`]);
    try {
      assert.equal(s.info.code, 0);
      assert.equal(s.info.data.runtime, 'bun');
      assert.ok(s.info.data.listen.some((l: any) => l.plugin === 'rtmp' && l.port === rtmp), 'RTMP on the env-given port');
      assert.ok(s.ms < 10_000, `start took ${s.ms} ms`);
      await until(async () => (await (await fetch(`http://127.0.0.1:${http}/api/stream/list`)).json() as any).data?.total > 0, 20_000, 'the RTMP publish');
      const flv = await ffprobe(`http://127.0.0.1:${http}/flv/live/bin.flv`, { packets: true, seconds: 2, timeoutMs: 30_000 });
      assert.deepEqual(flv.streams.map((x: any) => x.codec_name).sort(), ['aac', 'h264']);
      assert.ok(flv.packets.filter((p: any) => p.codec_type === 'video').length >= 25, 'HTTP-FLV: at least 1 s of video');
      const hls = await ffprobe(`http://127.0.0.1:${http}/hls/live/bin.m3u8`, { packets: true, seconds: 1, timeoutMs: 30_000 });
      assert.deepEqual(hls.streams.map((x: any) => x.codec_name).sort(), ['aac', 'h264']);
      assert.ok(hls.packets.some((p: any) => p.codec_type === 'video'), 'HLS: video packets');
      // Nothing was written next to the binary.
      assert.deepEqual(readdirSync(run), ['m7s']);
    } finally {
      await pub.kill();
      assert.equal(await s.stop(), 0, s.out());
    }
  });
});

// The second route: a Node single-executable application (esbuild → CJS → postject into a copy of node).
const postjectBin = process.env.M7S_POSTJECT || join(root, 'node_modules/.bin/postject');
const seaSkip = detectRuntime() !== 'node' ? 'drives a compiled binary: runs in the Node pass only'
  : !existsSync(postjectBin) ? `no postject at ${postjectBin} (devDependency: npm ci; or set M7S_POSTJECT)` : false;

describe('single binary, Node SEA route (npm run build:binary -- --node)', { skip: seaSkip }, () => {
  let tmp = '', bin = '';
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'm7s-sea-'));
    const t0 = performance.now();
    const built = join(tmp, 'build', 'm7s-node');
    const r = spawnSync(process.execPath, [join(root, 'scripts/build-binary.mjs'), '--node', `--outfile=${built}`], { cwd: root, env: { ...process.env, M7S_POSTJECT: postjectBin }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr + r.stdout);
    mkdirSync(join(tmp, 'run'));
    bin = join(tmp, 'run', 'm7s-node');
    copyFileSync(built, bin);
    spawnSync('chmod', ['755', bin]);
    console.log(`# node SEA binary: ${(statSync(bin).size / 1048576).toFixed(1)} MiB, built in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('alone in an empty dir: --version, /api/sysinfo on node, RTMP in and HTTP-FLV out, no warning at start', async () => {
    const run = join(tmp, 'run');
    const v = spawnSync(bin, ['--version'], { cwd: run, encoding: 'utf8' });
    assert.equal(v.stdout.trim(), VERSION);
    const [http, rtmp] = [await freePort(), await freePort()];
    const s = await launch(bin, run, http, [], { GLOBAL_HTTP_LISTENADDR: `127.0.0.1:${http}`, RTMP_TCP_LISTENADDR: `127.0.0.1:${rtmp}` });
    console.log(`# node SEA binary: first /api/sysinfo answer ${Math.round(s.ms)} ms after spawn`);
    const pub = start(ffmpegPath, [...testSourceArgs({ seconds: 20 }), '-f', 'flv', `rtmp://127.0.0.1:${rtmp}/live/sea`]);
    try {
      assert.equal(s.info.data.runtime, 'node');
      await until(async () => (await (await fetch(`http://127.0.0.1:${http}/api/stream/list`)).json() as any).data?.total > 0, 20_000, 'the RTMP publish');
      const flv = await ffprobe(`http://127.0.0.1:${http}/flv/live/sea.flv`, { packets: true, seconds: 1, timeoutMs: 30_000 });
      assert.deepEqual(flv.streams.map((x: any) => x.codec_name).sort(), ['aac', 'h264']);
      assert.doesNotMatch(s.out(), /Warning/, 'no runtime warning at start');
      assert.deepEqual(readdirSync(run), ['m7s-node']);
    } finally {
      await pub.kill();
      assert.equal(await s.stop(), 0, s.out());
    }
  });
});
