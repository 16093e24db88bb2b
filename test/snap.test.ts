// The snap plugin end to end (issue 18): ffmpeg publishes a 320x240 stream over HTTP-FLV; /snap/….jpg
// is a JPEG of that size (decoded by ffprobe) and ?w= scales it; a warm request answers within 300 ms;
// 20 concurrent requests for an uncached size run one ffmpeg per keyframe; periodic snapshots land in
// savepath with the watermark on and /snap/query finds them; a missing ffmpeg disables the plugin with
// the reason (on every runtime). The interop (ffmpeg is the client and the worker) is the same on every
// runtime: Node pass only.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import flv from '../plugins/flv/index.ts';
import snap from '../plugins/snap/index.ts';
import { currentRuntime } from '../adapters/current.ts';
import { Server } from '../src/server.ts';
import { Logger } from '../src/log.ts';
import type { Runtime } from '../src/net/types.ts';
import { ffmpegPath, ffprobe, sleep, start, startServer, testSourceArgs, until, type TestServer } from './helpers/media.ts';

const onNode = (process.env.M7S_TEST_RUNTIME ?? 'node') === 'node' && !(globalThis as any).Bun && !(globalThis as any).Deno;
const skip = onNode ? false : 'runtime-independent interop: Node pass only';

const dir = mkdtempSync(join(tmpdir(), 'm7s-snap-'));

/** Decode a JPEG with ffprobe: its width and height. */
async function jpegSize(bytes: Uint8Array, name: string): Promise<{ width: number; height: number; codec: string }> {
  const f = join(dir, name);
  writeFileSync(f, bytes);
  const p = await ffprobe(f);
  const v = p.streams[0];
  return { width: v.width, height: v.height, codec: v.codec_name };
}

const keysOf = (rs: { headers: Headers }[]) => new Set(rs.map((r) => r.headers.get('x-snap-keyframe')));

async function get(url: string): Promise<{ status: number; headers: Headers; bytes: Uint8Array; ms: number }> {
  const t0 = performance.now();
  const r = await fetch(url);
  const bytes = new Uint8Array(await r.arrayBuffer());
  return { status: r.status, headers: r.headers, bytes, ms: performance.now() - t0 };
}

describe('snap', { skip }, () => {
  let S: TestServer;
  let pub: ReturnType<typeof start>;
  const listed = async () => (await (await fetch(`${S.http}/snap/api/list`)).json() as any).data;

  before(async () => {
    S = await startServer([flv, snap], `snap:\n  savepath: ${JSON.stringify(join(dir, 'saved'))}\n  timeinterval: 1s\n  onpub:\n    transform:\n      "live/.*": ""\n`);
    // A 4 s GOP: the keyframe (and so the cached JPEG) stays the same for a while.
    pub = start(ffmpegPath, [...testSourceArgs({ seconds: 40, size: '320x240', gop: 100 }), '-f', 'flv', '-method', 'POST', `${S.http}/flv/live/x.flv`]);
    await until(async () => (await get(`${S.http}/snap/live/x.jpg`)).status === 200, 20_000, 'first snapshot');
  });
  after(async () => {
    await pub?.kill();
    await S?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is a JPEG of the stream size; ?w= scales; a warm request is fast', async () => {
    const r = await get(`${S.http}/snap/live/x.jpg`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'image/jpeg');
    assert.deepEqual(await jpegSize(r.bytes, 'full.jpg'), { width: 320, height: 240, codec: 'mjpeg' });
    const small = await get(`${S.http}/snap/live/x.jpg?w=160`);
    assert.equal(small.status, 200);
    assert.deepEqual(await jpegSize(small.bytes, 'small.jpg'), { width: 160, height: 120, codec: 'mjpeg' });
    // Warm: the keyframe's JPEG is cached (or, right after a new keyframe, one small ffmpeg run).
    const times: number[] = [];
    for (let i = 0; i < 5; i++) times.push((await get(`${S.http}/snap/live/x`)).ms);
    times.sort((a, b) => a - b);
    console.log(`# warm snapshot latency ms: ${times.map((x) => x.toFixed(1)).join(' ')}`);
    assert.ok(times[2]! <= 300, `median warm latency ${times[2]} ms > 300 ms`);
  });

  it('20 concurrent requests run one ffmpeg per keyframe', async () => {
    const requestRuns = async () => { const l = await listed(); return (l.runs - l.periodicRuns) as number; };
    const before = await requestRuns();
    const rs = await Promise.all(Array.from({ length: 20 }, () => get(`${S.http}/snap/live/x.jpg?w=200`)));
    const after = await requestRuns();
    // The other 19 (or so) shared the run.
    assert.ok((await listed()).cacheHits >= 20 - keysOf(rs).size);
    for (const r of rs) assert.equal(r.status, 200);
    const keys = keysOf(rs);
    console.log(`# 20 concurrent: ${after - before} ffmpeg run(s), ${keys.size} keyframe(s), slowest ${Math.max(...rs.map((r) => r.ms)).toFixed(0)} ms`);
    assert.equal(after - before, keys.size, 'one ffmpeg run per keyframe asked for');
    assert.ok(keys.size <= 2);
    const { width, height } = await jpegSize(rs[0]!.bytes, 'w200.jpg');
    assert.deepEqual([width, height], [200, 150]);
  });

  it('saves periodic snapshots with the watermark; /snap/query returns them', async () => {
    const saved = join(dir, 'saved', 'live', 'x');
    const count = () => { try { return readdirSync(saved).filter((n) => n.endsWith('.jpg')).length; } catch { return 0; } };
    await until(() => count() >= 2, 15_000, 'two saved snapshots').catch(async (e) => { throw new Error(`${e.message}: ${JSON.stringify(await listed())}`); });
    const l = await listed();
    assert.match(l.watermark, /^on \(/, 'a font is installed here: the watermark is drawn');
    const job = l.periodic.find((p: any) => p.streamPath === 'live/x');
    assert.ok(job && job.saved >= 2 && !job.lastError, JSON.stringify(job));
    const names = readdirSync(saved).filter((n) => n.endsWith('.jpg')).sort();
    const first = Number(names[0]!.slice(0, -4));
    const r = await get(`${S.http}/snap/query?streamPath=live/x&snapTime=${first}`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-snap-time'), String(first));
    assert.deepEqual(await jpegSize(r.bytes, 'q.jpg'), { width: 320, height: 240, codec: 'mjpeg' });
    // The watermark changes the picture: the saved JPEG is not the plain one of any keyframe at full size.
    const plain = await get(`${S.http}/snap/live/x.jpg`);
    assert.notDeepEqual(r.bytes, plain.bytes);
    assert.equal((await get(`${S.http}/snap/query?streamPath=live/none`)).status, 404);
    assert.equal((await get(`${S.http}/snap/query?streamPath=../etc`)).status, 400);
  });

  it('bad requests get clear statuses', async () => {
    assert.equal((await get(`${S.http}/snap/live/nothing.jpg`)).status, 404);
    assert.equal((await get(`${S.http}/snap/live/x.jpg?w=abc`)).status, 400);
    assert.equal((await get(`${S.http}/snap/live/x.jpg?w=99999`)).status, 400);
  });
});

// Cheap and runtime-dependent (each runtime's spawn reports a missing program its own way): every runtime.
describe('snap without ffmpeg', () => {
  it('is disabled at start with the reason', async () => {
    const S = await startServer([snap], 'snap:\n  ffmpeg: /nonexistent/ffmpeg\n');
    try {
      const st = S.server.pluginStates().find((p) => p.name === 'snap')!;
      assert.equal(st.enabled, false);
      assert.match(st.reason ?? '', /ffmpeg not found .*snap\.ffmpeg/);
      await sleep(0);
    } finally { await S.stop(); }
  });

  it('is disabled on a host without child processes (the edge) with that reason', async () => {
    const rt = await currentRuntime();
    const noProc = Object.create(rt, { capabilities: { value: ['net', 'fs'] } }) as Runtime;
    const s = await Server.start({ runtime: noProc, plugins: [snap], configText: 'global:\n  http:\n    listenaddr: "127.0.0.1:0"\n', logger: Logger.silent() });
    try {
      const st = s.pluginStates().find((p) => p.name === 'snap')!;
      assert.equal(st.enabled, false);
      assert.match(st.reason ?? '', /needs proc \(child processes\)/);
    } finally { await s.stop(); }
  });
});
