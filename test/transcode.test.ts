// The transcode plugin end to end (issue 18): a 720p publish with 480p and 360p profiles; ffprobe reads
// both renditions with the right sizes; each job lists its pid, CPU and speed (and /api/metrics has
// them); kill -9 of one ffmpeg restarts it and the rendition continues for a viewer that stays
// connected; a "ffmpeg" that writes junk ends its job with an error while the source and the other jobs
// run on; an "ffmpeg" killed mid-tag is retried with backoff; maxjobs refuses one more. ffmpeg is a wrapper script: the real /usr/bin/ffmpeg, except for
// the profile whose args carry the junk marker. Runtime-independent interop: Node pass only.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import flv from '../plugins/flv/index.ts';
import transcode from '../plugins/transcode/index.ts';
import { ffmpegPath, ffprobe, sleep, start, startServer, testSourceArgs, until, type TestServer } from './helpers/media.ts';

const onNode = (process.env.M7S_TEST_RUNTIME ?? 'node') === 'node' && !(globalThis as any).Bun && !(globalThis as any).Deno;
const skip = onNode ? false : 'runtime-independent interop: Node pass only';

const dir = mkdtempSync(join(tmpdir(), 'm7s-transcode-'));
const wrapper = join(dir, 'ffmpeg');
writeFileSync(wrapper, `#!/bin/sh
case "$*" in
  *m7s_junk*) cat >/dev/null & head -c 200000 /dev/urandom; sleep 30; exit 0 ;;
  *m7s_midframe*) printf 'FLV\\001\\005\\000\\000\\000\\011\\000\\000\\000\\000\\011\\000\\020\\000'; kill -9 $$ ;;
esac
exec ffmpeg "$@"
`);
chmodSync(wrapper, 0o755);

const PROFILES = `    480p: { height: 480, videobitrate: 300k, preset: ultrafast }
    360p: { height: 360, videobitrate: 200k, preset: ultrafast }
    junk: { height: 240, preset: ultrafast, args: "-metadata m7s_junk=1" }
    midframe: { height: 240, preset: ultrafast, args: "-metadata m7s_midframe=1" }
    240p: { height: 240, preset: ultrafast }
`;

interface JobInfo { id: number; streamPath: string; state: string; pid?: number; restarts: number; cpuPercent: number; speed?: number; lastError?: string; ended?: string; endReason?: string }

describe('transcode', { skip }, () => {
  let S: TestServer;
  let pub: ReturnType<typeof start>;
  const jobs = async (): Promise<{ jobs: JobInfo[]; refused: number }> => (await (await fetch(`${S.http}/transcode/api/list`)).json() as any).data;
  const job = async (target: string) => (await jobs()).jobs.find((j) => j.streamPath === target && !j.ended);

  before(async () => {
    S = await startServer([flv, transcode], `transcode:
  ffmpeg: ${JSON.stringify(wrapper)}
  maxjobs: 3
  retryinterval: 300ms
  profiles:
${PROFILES}  onpub:
    transform:
      "live/x": "480p 360p"
`);
    // 720p at 10 fps keeps the three encoders affordable on a small machine.
    pub = start(ffmpegPath, [...testSourceArgs({ seconds: 60, size: '1280x720', fps: 10, gop: 20 }), '-f', 'flv', '-method', 'POST', `${S.http}/flv/live/x.flv`]);
    await until(async () => (await job('live/x/480p'))?.state === 'running' && (await job('live/x/360p'))?.state === 'running', 20_000, 'two running jobs');
  });
  after(async () => {
    await pub?.kill();
    await S?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('ffprobe reads both renditions with the right sizes; CPU and speed are listed and in the metrics', async () => {
    for (const [name, w, h] of [['480p', 854, 480], ['360p', 640, 360]] as const) {
      const p = await ffprobe(`${S.http}/flv/live/x/${name}.flv`, { seconds: 1.5 });
      const v = p.streams.find((s: any) => s.codec_type === 'video');
      assert.deepEqual([v.codec_name, v.width, v.height], ['h264', w, h], name);
      assert.ok(p.streams.some((s: any) => s.codec_type === 'audio'), `${name} has the audio`);
    }
    const j = await until(async () => { const x = await job('live/x/480p'); return x && x.cpuPercent > 0 && x.speed !== undefined ? x : undefined; }, 10_000, 'cpu and speed') as JobInfo;
    console.log(`# 720p→480p job: cpu ${j.cpuPercent}% of one core, speed ${j.speed}x`);
    assert.ok(j.pid && j.pid > 0);
    const m = await (await fetch(`${S.http}/api/metrics`)).text();
    assert.match(m, /m7s_job_cpu_percent\{plugin="transcode",kind="transcode",stream="live\/x\/480p",id="\d+"\} [\d.]+/);
    assert.match(m, /m7s_job_speed\{plugin="transcode",kind="transcode",stream="live\/x\/360p",id="\d+"\} [\d.]+/);
  });

  it('kill -9 of the ffmpeg child: restarted, and the rendition continues for its viewer', async () => {
    const before = (await job('live/x/480p'))!;
    const ac = new AbortController();
    const res = await fetch(`${S.http}/flv/live/x/480p.flv`, { signal: ac.signal });
    assert.equal(res.status, 200);
    let bytes = 0, ended = false;
    const reader = res.body!.getReader();
    void (async () => { try { for (;;) { const r = await reader.read(); if (r.done) break; bytes += r.value.length; } } catch { /* aborted */ } ended = true; })();
    await until(() => bytes > 0, 10_000, 'viewer bytes');
    process.kill(before.pid!, 'SIGKILL');
    const after = await until(async () => { const x = await job('live/x/480p'); return x && x.restarts >= 1 && x.state === 'running' && x.pid !== before.pid ? x : undefined; }, 15_000, 'restarted job') as JobInfo;
    assert.equal(after.id, before.id, 'the same job, restarted');
    assert.match(after.lastError ?? '', /killed by SIGKILL/);
    const mark = bytes;
    await until(() => bytes > mark + 20_000, 15_000, 'viewer bytes after the restart');
    assert.equal(ended, false, 'the viewer stayed connected');
    ac.abort();
    // The other rendition was not touched.
    assert.equal((await job('live/x/360p'))!.restarts, 0);
  });

  it('junk from "ffmpeg" ends that job with an error, a kill mid-tag is retried; the source and the other jobs run on; maxjobs refuses more', async () => {
    const others = [(await job('live/x/480p'))!, (await job('live/x/360p'))!];
    const r = await fetch(`${S.http}/transcode/api/launch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ streamPath: 'live/x', profile: 'junk' }) });
    assert.equal(r.status, 200);
    const ended = (await until(async () => (await jobs()).jobs.find((j) => j.streamPath === 'live/x/junk' && j.ended), 10_000, 'junk job ended'))!;
    assert.equal(ended.state, 'error');
    assert.match(ended.endReason ?? '', /bad FLV from ffmpeg/);
    assert.equal(ended.restarts, 0, 'not restarted');
    await sleep(500);
    for (const o of others) {
      const now = (await job(o.streamPath))!;
      assert.equal(now.pid, o.pid, `${o.streamPath} untouched`);
      assert.equal(now.state, 'running');
    }
    // Killed mid-tag (an FLV header, half a tag header, then SIGKILL): that run ends with the error, the
    // half tag is dropped with it, and the job is retried with backoff; stopped through the API.
    const mf = await (await fetch(`${S.http}/transcode/api/launch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ streamPath: 'live/x', profile: 'midframe' }) })).json() as any;
    const retried = (await until(async () => { const x = await job('live/x/midframe'); return x && x.restarts >= 2 ? x : undefined; }, 10_000, 'mid-frame job retried'))!;
    assert.match(retried.lastError ?? '', /killed by SIGKILL/);
    assert.equal((await fetch(`${S.http}/transcode/api/stop/${mf.data.id}`, { method: 'POST' })).status, 200);
    await until(async () => !(await job('live/x/midframe')), 5000, 'mid-frame job stopped');
    for (const o of others) assert.equal((await job(o.streamPath))!.pid, o.pid, `${o.streamPath} untouched`);
    const src = await (await fetch(`${S.http}/api/stream/info/live/x`)).json() as any;
    assert.ok(src.data.publisher, 'the source still publishes');
    // Two jobs run; with maxjobs 3 one more starts, the next is refused (503).
    const launch = (profile: string) => fetch(`${S.http}/transcode/api/launch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ streamPath: 'live/x', profile }) });
    assert.equal((await launch('240p')).status, 200);
    const over = await launch('junk');
    assert.equal(over.status, 503);
    assert.match(((await over.json()) as any).message, /maxjobs/);
    assert.equal((await launch('nope')).status, 400);
  });
});

describe('transcode on demand', { skip }, () => {
  it('a viewer asking for a rendition starts its job; without viewers it stops after idletimeout', async () => {
    const S = await startServer([flv, transcode], `transcode:
  ondemand: true
  idletimeout: 1s
  profiles:
    120p: { height: 120, preset: ultrafast }
  onpub:
    transform:
      "live/y": "120p"
`);
    const pub = start(ffmpegPath, [...testSourceArgs({ seconds: 40, size: '320x240' }), '-f', 'flv', '-method', 'POST', `${S.http}/flv/live/y.flv`]);
    try {
      const jobs = async () => ((await (await fetch(`${S.http}/transcode/api/list`)).json()) as any).data.jobs as JobInfo[];
      await until(() => S.server.engine.getStream('live/y')?.publisher, 15_000, 'source');
      await sleep(1000);
      assert.equal((await jobs()).length, 0, 'no job before a viewer asks');
      const p = await ffprobe(`${S.http}/flv/live/y/120p.flv`, { seconds: 1 });
      const v = p.streams.find((s: any) => s.codec_type === 'video');
      assert.deepEqual([v.width, v.height], [160, 120]);
      const j = (await jobs())[0]!;
      assert.equal(j.streamPath, 'live/y/120p');
      // The viewer left: the job stops after idletimeout (checked every 2 s).
      const ended = (await until(async () => (await jobs()).find((x) => x.ended), 10_000, 'idle job stopped'))!;
      assert.match(ended.endReason ?? '', /no viewers/);
    } finally {
      await pub.kill();
      await S.stop();
    }
  });
});
