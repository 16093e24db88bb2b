// Crash safety of the recorders: a server child process (Bun running adapters/bun/main.ts: the server
// under test has to be a separate process to be killed; the recovery below runs on every runtime)
// records one stream as fmp4, mp4, flv and hls with 3 s segments; ffmpeg publishes in real time and the
// child gets `kill -9` 7 s into the recording. Before any repair, every closed segment plays whole and
// the open fMP4/FLV/TS segment plays up to its last written fragment (≥ 5 s of 7 in all); the open MP4
// is a `.part` of fragments. Then a server starts on the same index: the MP4 is rebuilt with a front
// moov, torn tails are cut, and the index lists every segment closed.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import rtmp from '../plugins/rtmp/index.ts';
import record from '../plugins/record/index.ts';
import { sleep, start, startServer, until, type TestServer } from './helpers/media.ts';
import { FFMPEG51, filesUnder, probe, sourceArgs } from './helpers/record.ts';

const TYPES = ['fmp4', 'mp4', 'flv', 'hls'] as const;
const EXT = { fmp4: '.mp4', mp4: '.mp4', flv: '.flv', hls: '.ts' } as const;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
    s.on('error', reject);
  });
}

const videoSeconds = (p: { packets: any[] }) => p.packets.filter((x) => x.codec_type === 'video').length / 25;

describe('record: kill -9 7 s into a recording', () => {
  let dir: string;
  let child: ChildProcess | undefined;
  let S: TestServer | undefined;
  let childLog = '';
  const before7: Record<string, { closed: number[]; open: number; openErrors: string; parts: number }> = {};

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'm7s-reccrash-'));
    const [http, rtmpPort] = [await freePort(), await freePort()];
    const cfg = join(dir, 'config.yaml');
    writeFileSync(cfg, `global:\n  loglevel: info\n  http:\n    listenaddr: "127.0.0.1:${http}"\nrtmp:\n  tcp:\n    listenaddr: "127.0.0.1:${rtmpPort}"\n` +
      `record:\n  fragment: 3s\n  filepath: "${dir}/{unix}"\n  indexfile: "${dir}/index.jsonl"\n`);
    child = spawn(join(process.cwd(), 'node_modules/.bin/bun'), [join(process.cwd(), 'adapters/bun/main.ts'), '-c', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d) => { childLog += d; });
    child.stderr!.on('data', (d) => { childLog += d; });
    const base = `http://127.0.0.1:${http}`;
    await until(() => fetch(`${base}/api/sysinfo`).then((r) => r.ok, () => false), 20_000, 'child server');
    const starts = TYPES.map((t) => fetch(`${base}/record/api/start/live/crash?type=${t}&filepath=${encodeURIComponent(`${dir}/${t}/{unix}`)}`, { method: 'POST' }).then((r) => r.json() as Promise<any>));
    const pub = start(FFMPEG51, [...sourceArgs(30, 1), '-f', 'flv', `rtmp://127.0.0.1:${rtmpPort}/live/crash`]);
    try {
      for (const r of await Promise.all(starts)) assert.equal(r.code, 0, JSON.stringify(r) + childLog);
      await sleep(7000);
      child.kill('SIGKILL');
      await new Promise<void>((r) => (child!.exitCode !== null || child!.signalCode !== null) ? r() : child!.once('close', () => r()));
    } finally {
      await pub.kill();
    }
    for (const t of TYPES) {
      const files = filesUnder(join(dir, t), EXT[t]);
      const closed: number[] = [];
      let open = 0, openErrors = '';
      for (const [i, f] of files.entries()) {
        const p = await probe(f);
        if (i < files.length - 1 || t === 'mp4') closed.push(p.errors ? -1 : videoSeconds(p));
        else { open = videoSeconds(p); openErrors = p.errors; }
      }
      before7[t] = { closed, open, openErrors, parts: filesUnder(join(dir, t), '.part').length };
    }
    S = await startServer([rtmp, record], `record:\n  fragment: 3s\n  indexfile: "${dir}/index.jsonl"\n`);
  });

  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await S?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const t of ['fmp4', 'flv', 'hls'] as const) {
    it(`${t}: closed segments play whole, the open one up to its last fragment (>= 5 s of 7 in all) before any repair`, () => {
      const b = before7[t]!;
      assert.equal(b.closed.length, 2, JSON.stringify(b));
      for (const c of b.closed) assert.equal(c, 3, `closed segment: ${JSON.stringify(b)}`);
      const total = b.closed.reduce((a, x) => a + x, 0) + b.open;
      assert.ok(total >= 5, `playable ${total} s of 7`);
      assert.ok(total <= 8.5, `playable ${total} s`);
    });
  }

  it('mp4: closed segments are whole MP4s, the open one is a .part of fragments', () => {
    const b = before7.mp4!;
    assert.deepEqual(b.closed, [3, 3], JSON.stringify(b));
    assert.equal(b.parts, 1, 'the open segment is a .part');
  });

  for (const t of TYPES) {
    it(`${t}: after restart every segment plays without errors and the index has them all closed`, async () => {
      const files = filesUnder(join(dir, t), EXT[t]);
      assert.equal(files.length, 3, files.join(', '));
      assert.equal(filesUnder(join(dir, t), '.part').length, 0);
      let total = 0;
      for (const f of files) {
        const p = await probe(f);
        assert.equal(p.errors, '', `${f}: ${p.errors}`);
        total += videoSeconds(p);
        if (t === 'mp4') {
          const head = (await import('node:fs')).readFileSync(f).subarray(0, 64);
          assert.equal(String.fromCharCode(...head.subarray(4, 8)), 'ftyp');
        }
      }
      assert.ok(total >= 5, `${t}: ${total} s after recovery`);
      const list = (await (await fetch(`${S!.http}/record/api/list?streamPath=live/crash`)).json() as any).data.filter((e: any) => e.type === t);
      assert.equal(list.length, 3);
      for (const e of list) assert.ok(!e.open && e.duration > 0, JSON.stringify(e));
      if (t === 'hls') {
        const pl = filesUnder(join(dir, t), '.m3u8');
        assert.equal(pl.length, 1);
        const p = await probe(pl[0]!);
        assert.equal(p.errors, '');
        assert.ok(videoSeconds(p) >= 5);
      }
    });
  }
  void existsSync;
});
