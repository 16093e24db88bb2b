// `m7s --workers 2` on Node and on Bun (adapters/node/workers.ts): two worker processes share the HTTP
// and RTMP ports; a stream published (ffmpeg over RTMP) to whichever worker took the connection is played from
// both workers' loopback listeners, one directly and one through the internal cascade; the added latency
// is the arrival-time difference of the same video tags. Deno has no node:cluster fork and runs one
// process (docs/cluster.md).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ffmpegPath, until } from './helpers/media.ts';
import { freePort, Viewer } from './helpers/cluster.ts';

const runtime = process.env.M7S_TEST_RUNTIME ?? 'node';
const skip = runtime !== 'node' ? 'drives m7s on Node and Bun as child processes from the Node pass' : false;
const root = process.cwd();

for (const host of ['node', 'bun'] as const) describe(`workers: 2 on ${host}`, { skip, timeout: 60_000 }, () => {
  let proc: ChildProcess | null = null, dir = '', out = '';
  let http = '', rtmp = '';
  before(async () => {
    if (host === 'node') {
      const b = spawnSync(process.execPath, [join(root, 'scripts/build.mjs')], { cwd: root });
      assert.equal(b.status, 0, String(b.stderr));
    }
    dir = mkdtempSync(join(tmpdir(), 'm7s-workers-'));
    const hp = await freePort(), rp = await freePort();
    http = `http://127.0.0.1:${hp}`; rtmp = `rtmp://127.0.0.1:${rp}`;
    writeFileSync(join(dir, 'c.yaml'), `global:\n  loglevel: warn\n  http:\n    listenaddr: "127.0.0.1:${hp}"\nrtmp:\n  tcp:\n    listenaddr: "127.0.0.1:${rp}"\n` +
      `rtsp:\n  enable: false\nwebrtc:\n  enable: false\nhls:\n  enable: false\nllhls:\n  enable: false\n`);
    // Node: node:cluster hands connections out from the primary; Bun: node:cluster with SO_REUSEPORT (Linux).
    const [cmd, entry] = host === 'node' ? [process.execPath, join(root, 'dist/m7s.mjs')] : [join(root, 'node_modules/.bin/bun'), join(root, 'adapters/bun/main.ts')];
    proc = spawn(cmd, [entry, '-c', join(dir, 'c.yaml'), '--workers', '2'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout!.on('data', (d) => { out += d; });
    proc.stderr!.on('data', (d) => { out += d; });
    await until(() => (out.match(/worker-internal/g) ?? []).length >= 2, 20_000, 'both workers listening');
  });
  after(() => {
    proc?.kill('SIGTERM');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('shares the ports; a stream published to one worker plays from the other with small added latency', async () => {
    const ports = (/internal ports (\d+), (\d+)/.exec(out) ?? []).slice(1).map(Number);
    assert.equal(ports.length, 2, out);
    // Two different worker processes answer on the shared port.
    const pids = new Set<number>();
    await until(async () => {
      const r = await fetch(`${http}/api/sysinfo`, { headers: { connection: 'close' } });
      pids.add(((await r.json()) as any).data.pid);
      return pids.size === 2;
    }, 10_000, 'both workers answer on the shared HTTP port');

    const ff = spawn(ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25',
      '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', '25', '-f', 'flv', `${rtmp}/live/w`], { stdio: 'ignore' });
    const views: Viewer[] = [];
    try {
      for (const p of ports) views.push(new Viewer(`http://127.0.0.1:${p}/flv/live/w.flv`));
      await until(() => views.every((v) => v.ts.length >= 60), 30_000, 'both workers serve live/w');
      // Which worker has the publisher? The one whose viewer gets the same tags earlier.
      const [a, b] = views;
      // The same frame is recognised by its bytes (timestamps are rebased per viewer).
      const atB = new Map<string, number>();
      b.keys.forEach((k, i) => { if (!atB.has(k)) atB.set(k, b.at[i]); });
      const d: number[] = [];
      a.keys.forEach((k, i) => { const x = atB.get(k); if (x !== undefined && i > 25) d.push(x - a.at[i]); });
      assert.ok(d.length >= 20, `enough common tags (${d.length})`);
      d.sort((x, y) => x - y);
      const median = d[d.length >> 1];
      const added = Math.abs(median);
      const p90 = Math.abs(d[Math.floor(d.length * (median >= 0 ? 0.9 : 0.1))]);
      console.log(`# workers (${host}): added latency through the internal cascade: median ${added.toFixed(2)} ms over ${d.length} tags (p90 ${p90.toFixed(2)} ms)`);
      // The target is ≤ 20 ms; the bound here is generous for a loaded machine.
      assert.ok(added <= 100, `added latency ${added} ms`);
      // And the cascaded one is a pull at the remote worker: its /api/stream/info shows protocol cascade.
      const infos = await Promise.all(ports.map(async (p) => ((await (await fetch(`http://127.0.0.1:${p}/api/stream/info/live/w`)).json()) as any).data));
      const protos = infos.map((x) => x?.publisher?.protocol).sort();
      assert.deepEqual(protos, ['cascade', 'rtmp']);
      // The worker holding a copy does not hand it on to another worker (no chains or cycles).
      const copy = ports[infos.findIndex((x) => x?.publisher?.protocol === 'cascade')];
      const r = await fetch(`http://127.0.0.1:${copy}/flv/live/w.flv?m7sworker=1&waittimeout=1s`);
      assert.equal(r.status, 404);
      await r.body?.cancel();
    } finally {
      for (const v of views) v.stop();
      ff.kill('SIGKILL');
    }
  });
});
