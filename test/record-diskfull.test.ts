// A recording folder on a 20 MB tmpfs that fills up (needs root for `mount -t tmpfs`; skipped with the
// reason otherwise). Stream A (lossless x264 of testsrc2 with noise, ~25 Mb/s, real time) is recorded there
// in 2 s segments while an HTTP-FLV viewer watches it; stream B is recorded to an ordinary folder. When
// the tmpfs is full: A's recorder stops with one clear error log line (ENOSPC, the file), the failure
// shows in /record/api/stats and /record/api/metrics, the viewer keeps receiving A, B keeps recording,
// and every segment closed before the disk filled still plays whole.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import rtmp from '../plugins/rtmp/index.ts';
import flv from '../plugins/flv/index.ts';
import record from '../plugins/record/index.ts';
import type { LogRecord } from '../src/log.ts';
import { sleep, start, startServer, until, type TestServer } from './helpers/media.ts';
import { FFMPEG51, filesUnder, probe } from './helpers/record.ts';

const base = mkdtempSync(join(tmpdir(), 'm7s-recfull-'));
const full = join(base, 'full');
mkdirSync(full);
const mounted = process.platform === 'linux' && spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=20m', 'tmpfs', full]).status === 0;
const skip = mounted ? false : 'mount -t tmpfs failed here (needs root on Linux)';

describe('record: the disk fills up', { skip }, () => {
  let S: TestServer;
  const logs: LogRecord[] = [];
  let viewerBytesAtFail = 0;
  let viewerBytesLater = 0;
  let recA: any, recB: any, stats: any, metrics = '';
  const pubs: { kill(): Promise<void> }[] = [];
  const hooks: any[] = [];
  const receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => { try { hooks.push(JSON.parse(body)); } catch { /* not ours */ } res.end('ok'); });
  });

  before(async () => {
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
    const hookUrl = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook`;
    S = await startServer([rtmp, flv, record], `  hook:\n    record_start:\n      url: ${hookUrl}\n    record_end:\n      url: ${hookUrl}\nrtmp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\nrecord:\n  fragment: 2s\n  filepath: "${base}/{streamPath}/{unix}"\n  indexfile: "${base}/index.jsonl"\n`);
    S.server.logger.onRecord((r) => logs.push(r));
    const url = (p: string) => `rtmp://127.0.0.1:${S.port('rtmp')}/${p}`;
    const src = (secs: number, rate: number, extra: string[]) => ['-hide_banner', '-loglevel', 'error', '-readrate', String(rate),
      '-f', 'lavfi', '-i', `testsrc2=size=640x360:rate=25:duration=${secs}`, '-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=44100:duration=${secs}`,
      '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-g', '25', '-bf', '0', ...extra, '-c:a', 'aac', '-b:a', '64k'];
    const a = post(`${S.http}/record/api/start/live/a?filepath=${encodeURIComponent(`${full}/{streamPath}/{unix}`)}`);
    const b = post(`${S.http}/record/api/start/live/b?filepath=${encodeURIComponent(`${base}/ok/{streamPath}/{unix}`)}`);
    pubs.push(start(FFMPEG51, [...src(40, 1, ['-vf', 'noise=alls=10:allf=t', '-qp', '0']), '-f', 'flv', url('live/a')]));
    pubs.push(start(FFMPEG51, [...src(40, 1, ['-b:v', '300k']), '-f', 'flv', url('live/b')]));
    assert.equal((await a).code, 0);
    assert.equal((await b).code, 0);
    // A live viewer of A over HTTP-FLV.
    let viewerBytes = 0;
    const ctl = new AbortController();
    const res = await fetch(`${S.http}/flv/live/a.flv`, { signal: ctl.signal });
    const reader = res.body!.getReader();
    (async () => { try { for (;;) { const { done, value } = await reader.read(); if (done) break; viewerBytes += value.length; } } catch { /* aborted */ } })();
    await until(async () => (await get(`${S.http}/record/api/stats`)).failures >= 1, 60_000, 'the recorder on the tmpfs to fail');
    viewerBytesAtFail = viewerBytes;
    await sleep(1500);
    viewerBytesLater = viewerBytes;
    ctl.abort();
    const recs = (await get(`${S.http}/record/api/list`)).recorders;
    recA = recs.find((r: any) => r.streamPath === 'live/a');
    recB = recs.find((r: any) => r.streamPath === 'live/b');
    stats = await get(`${S.http}/record/api/stats`);
    metrics = await (await fetch(`${S.http}/record/api/metrics`)).text();
  });

  after(async () => {
    for (const p of pubs) await p.kill();
    await S?.stop();
    receiver.close();
    if (mounted) spawnSync('umount', [full]);
    rmSync(base, { recursive: true, force: true });
  });

  it('the recorder stops with one clear error log line naming ENOSPC and the file', () => {
    const lines = logs.filter((r) => r.level === 'error' && /recording of live\/a stopped: disk full \(ENOSPC\) writing .+\.mp4/.test(r.msg));
    assert.equal(lines.length, 1, logs.map((r) => r.msg).join('\n'));
    assert.equal(recA, undefined, 'the failed recorder is no longer listed');
  });

  it('webhooks: record_start, then record_end with the disk-full reason', async () => {
    await until(() => hooks.some((h) => h.event === 'record_end' && h.stream?.path === 'live/a'), 10_000, 'the record_end webhook');
    assert.ok(hooks.some((h) => h.event === 'record_start' && h.stream?.path === 'live/a'), JSON.stringify(hooks));
    const end = hooks.find((h) => h.event === 'record_end' && h.stream?.path === 'live/a');
    assert.match(end.reason, /disk full \(ENOSPC\)/);
    assert.ok(!hooks.some((h) => h.event === 'record_end' && h.stream?.path === 'live/b'), 'live/b still records');
  });

  it('the failure is counted in /record/api/stats and /record/api/metrics', () => {
    assert.equal(stats.failures, 1);
    assert.match(metrics, /^m7s_record_failures_total 1$/m);
  });

  it('the live viewer of the same stream and the other stream\'s recorder carry on', () => {
    assert.ok(viewerBytesLater > viewerBytesAtFail, `viewer ${viewerBytesAtFail} -> ${viewerBytesLater} bytes`);
    assert.equal(recB?.state, 'recording');
    assert.ok(S.server.engine.getStream('live/a')?.publisher, 'stream A still published');
  });

  it('every segment closed before the disk filled plays whole', async () => {
    const closed = (await get(`${S.http}/record/api/list?streamPath=live/a`)).filter((e: any) => !e.open);
    assert.ok(closed.length >= 1, 'at least one segment closed before the disk filled');
    for (const e of closed) {
      const p = await probe(e.path);
      assert.equal(p.errors, '', `${e.path}: ${p.errors}`);
      const frames = p.packets.filter((x: any) => x.codec_type === 'video').length;
      assert.ok(Math.abs(frames / 25 - e.duration / 1000) <= 0.04 && frames >= 50, `${e.path}: ${frames} frames, index says ${e.duration} ms`);
    }
    assert.ok(filesUnder(full, '.mp4').length > closed.length, 'the segment being written when the disk filled is there too');
  });
});

async function post(url: string): Promise<any> { return (await fetch(url, { method: 'POST' })).json(); }
async function get(url: string): Promise<any> { return ((await (await fetch(url)).json()) as any).data; }
