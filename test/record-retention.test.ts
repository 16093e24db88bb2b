// Retention of recorded segments, oldest first, with small limits: by age (recordfileexpiredays) over
// segments whose index entries say they ended 1–9 days ago, and by disk use (diskmaxpercent 50) on a
// 20 MB tmpfs holding 16 MB of segments (skipped with the reason where tmpfs cannot be mounted).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import record from '../plugins/record/index.ts';
import { startServer } from './helpers/media.ts';

const DAY = 86_400_000;

function seed(dir: string, segDir: string, ends: number[], size: number): string[] {
  mkdirSync(segDir, { recursive: true });
  const paths: string[] = [];
  const lines = ends.map((end, i) => {
    const path = join(segDir, `${i}.mp4`);
    writeFileSync(path, new Uint8Array(size).fill(i + 1));
    paths.push(path);
    return JSON.stringify({ op: 'close', seg: { streamPath: 'cam/1', type: 'fmp4', path, start: end - 60_000, end, duration: 60_000, size, codecs: ['h264'] } });
  });
  writeFileSync(join(dir, 'index.jsonl'), lines.join('\n') + '\n');
  return paths;
}

const deletions = (dir: string) => readFileSync(join(dir, 'index.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.op === 'delete').map((l) => l.path);

describe('record playback permission', () => {
  it('/record/file and /record/vod need the playback permission on the stream path (read is not enough)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'm7s-recperm-'));
    const now = Date.now();
    const [path] = seed(dir, join(dir, 'seg'), [now], 1000);
    const S = await startServer([record], `  auth:\n    users:\n      - user: viewer\n        pass: pw\n        permissions:\n          - {action: read, path: ""}\n` +
      `      - user: archivist\n        pass: pw\n        permissions:\n          - {action: playback, path: "cam/"}\n` +
      `record:\n  indexfile: "${dir}/index.jsonl"\n`);
    try {
      const url = `${S.http}/record/file/cam/1/fmp4/${now - 60_000}.mp4`;
      const basic = (u: string) => ({ authorization: 'Basic ' + btoa(`${u}:pw`) });
      assert.equal((await fetch(url)).status, 401);
      assert.equal((await fetch(url, { headers: basic('viewer') })).status, 403);
      const ok = await fetch(url, { headers: basic('archivist') });
      assert.equal(ok.status, 200);
      assert.equal((await ok.arrayBuffer()).byteLength, 1000);
      assert.equal((await fetch(`${url}?user=archivist&pass=pw`)).status, 200);
      assert.equal((await fetch(`${S.http}/record/download/cam/1.mp4`, { headers: basic('viewer') })).status, 403);
      assert.equal((await fetch(`${S.http}/record/vod/cam/1.m3u8`)).status, 401);
      void path;
    } finally {
      await S.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('record retention', () => {
  it('recordfileexpiredays: 5 days deletes the three segments that ended 7–9 days ago, oldest first', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'm7s-recret-'));
    const now = Date.now();
    // Listed out of order in the journal: the index orders them.
    const ends = [now - 3 * DAY, now - 9 * DAY, now - DAY, now - 7 * DAY, now - 2 * DAY, now - 8 * DAY];
    const paths = seed(dir, join(dir, 'seg'), ends, 1000);
    const S = await startServer([record], `record:\n  recordfileexpiredays: 5\n  indexfile: "${dir}/index.jsonl"\n`);
    try {
      const r = await (await fetch(`${S.http}/record/api/retention`, { method: 'POST' })).json() as any;
      assert.equal(r.code, 0);
      const gone = paths.filter((p) => !existsSync(p));
      assert.deepEqual(gone.sort(), [paths[1], paths[3], paths[5]].sort());
      assert.deepEqual(deletions(dir), [paths[1], paths[5], paths[3]], 'oldest first: 9, 8, 7 days');
      const list = (await (await fetch(`${S.http}/record/api/list?streamPath=cam/1`)).json() as any).data;
      assert.deepEqual(list.map((e: any) => e.path), [paths[2], paths[4], paths[0]].sort((a, b) => ends[paths.indexOf(a)]! - ends[paths.indexOf(b)]!));
    } finally {
      await S.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const base = mkdtempSync(join(tmpdir(), 'm7s-recdisk-'));
  const full = join(base, 'full');
  mkdirSync(full);
  const mounted = process.platform === 'linux' && spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=20m', 'tmpfs', full]).status === 0;
  it('diskmaxpercent: 50 on a 20 MB tmpfs holding 16 MB deletes the oldest segments until it is at most half full', { skip: mounted ? false : 'mount -t tmpfs failed here (needs root on Linux)' }, async () => {
    const now = Date.now();
    const ends = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => now - (10 - i) * 3_600_000);
    const paths = seed(base, full, ends, 2 << 20);
    const S = await startServer([record], `record:\n  diskmaxpercent: 50\n  indexfile: "${base}/index.jsonl"\n`);
    try {
      await fetch(`${S.http}/record/api/retention`, { method: 'POST' });
      const gone = paths.map((p) => !existsSync(p));
      const k = gone.filter(Boolean).length;
      assert.ok(k >= 3 && k <= 4, `deleted ${k} of 8 (16 MB on 20 MB, limit 50%)`);
      assert.deepEqual(gone, paths.map((_, i) => i < k), 'the oldest ones');
      const df = spawnSync('df', ['--output=pcent', full], { encoding: 'utf8' }).stdout;
      assert.ok(Number(df.split('\n')[1]!.trim().replace('%', '')) <= 50, df);
    } finally {
      await S.stop();
      spawnSync('umount', [full]);
      rmSync(base, { recursive: true, force: true });
    }
  });
});
