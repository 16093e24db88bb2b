// The logrotate plugin on every runtime: one file per minute/hour/day period (LogFiles fed records with
// chosen times), a new part at `size` with at most `maxfiles` kept (the plugin in a server, fed by the
// server's logger), /logrotate/api/list and /api/get/{file}, and SIGHUP reopening the file an outside
// tool moved away.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { currentRuntime } from '../adapters/current.ts';
import logrotate, { LogFiles, periodName } from '../plugins/logrotate/index.ts';
import { startServer, until } from './helpers/media.ts';

describe('logrotate', () => {
  it('one file per period: minute, hour, day (UTC names)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'm7s-logrot-'));
    try {
      const rt = await currentRuntime();
      const t0 = Date.UTC(2026, 10, 30, 18, 40, 10);
      const files = new LogFiles(rt, dir, { size: 0, rotate: 'minute', days: 0, maxfiles: 0 });
      for (const [i, dt] of [0, 30_000, 61_000, 62_000, 125_000].entries()) files.write(`line ${i}`, t0 + dt);
      await files.close();
      assert.deepEqual(readdirSync(dir).sort(), ['m7s-2026-11-30T1840.log', 'm7s-2026-11-30T1841.log', 'm7s-2026-11-30T1842.log']);
      assert.equal(readFileSync(join(dir, 'm7s-2026-11-30T1841.log'), 'utf8'), 'line 2\nline 3\n');
      assert.equal(periodName(t0, 'hour'), 'm7s-2026-11-30T18');
      assert.equal(periodName(t0, 'day'), 'm7s-2026-11-30');
      const byHour = new LogFiles(rt, join(dir, 'h'), { size: 0, rotate: 'hour', days: 0, maxfiles: 0 });
      await rt.mkdir(join(dir, 'h'));
      byHour.write('a', t0);
      byHour.write('b', t0 + 3_600_000);
      await byHour.close();
      assert.deepEqual(readdirSync(join(dir, 'h')).sort(), ['m7s-2026-11-30T18.log', 'm7s-2026-11-30T19.log']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('size 2000 with maxfiles 3: new parts, the oldest deleted; list and get; SIGHUP reopens a moved file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'm7s-logrot-'));
    const S = await startServer([logrotate], `logrotate:\n  path: "${dir}"\n  size: 2000\n  maxfiles: 3\n  level: info\n`);
    try {
      // The test server logs at `error` (global.loglevel); the files take what the logger lets through.
      for (let i = 0; i < 60; i++) S.server.logger.error(`message ${String(i).padStart(3, '0')} ${'x'.repeat(100)}`);
      const list = await until(async () => {
        const l = ((await (await fetch(`${S.http}/logrotate/api/list`)).json()) as any).data;
        return l.some((f: any) => f.current && f.size > 0) && readFileSync(join(dir, l.find((f: any) => f.current).name), 'utf8').includes('message 059') ? l : null;
      }, 10_000, 'the last line on disk');
      assert.equal(list.length, 3, JSON.stringify(list));
      for (const f of list) assert.ok(f.size <= 2000, `${f.name}: ${f.size} bytes`);
      const current = list.find((f: any) => f.current);
      assert.match(current.name, /^m7s-\d{4}-\d{2}-\d{2}\.\d+\.log$/);
      const text = await (await fetch(`${S.http}/logrotate/api/get/${current.name}`)).text();
      assert.match(text, /"msg":"message 059 x+"/);
      assert.equal(JSON.parse(text.trim().split('\n').at(-1)!).level, 'error');
      assert.ok(!readdirSync(dir).some((n) => readFileSync(join(dir, n), 'utf8').includes('message 000 ')), 'the oldest part was deleted');
      assert.equal((await fetch(`${S.http}/logrotate/api/get/..%2Fetc%2Fpasswd`)).status, 400);
      // An outside tool moves the file away, then SIGHUP: the next line goes to a new file of that name.
      renameSync(join(dir, current.name), join(dir, 'moved.txt'));
      process.kill(process.pid, 'SIGHUP');
      await new Promise((r) => setTimeout(r, 300));
      S.server.logger.error('after the reopen');
      await until(() => existsSync(join(dir, current.name)) && readFileSync(join(dir, current.name), 'utf8').includes('after the reopen'), 10_000, 'a reopened file');
      assert.ok(!readFileSync(join(dir, 'moved.txt'), 'utf8').includes('after the reopen'));
    } finally {
      await S.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
