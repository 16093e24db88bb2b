// The cluster's stream directory (src/cluster, plugins/cascade `directory`) against Debian's
// redis-server, started here on a free port without persistence (skips with the reason when absent).
//  - RedisDirectory over the runtime's TCP seam: runs on Node, Bun and Deno (the RESP client's socket path).
//  - 3 nodes (A a child process, B in pull mode, C in redirect mode): publish on A plays from B and C;
//    kill -9 of A removes its entries within 2×TTL; a republish on B is found; a node with the wrong
//    secret is refused; Redis restarting loses nothing the heartbeats do not restore. Node pass only
//    (runtime-independent interop).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { currentRuntime } from '../adapters/current.ts';
import { MemoryDirectory, sign, verify, type DirectoryEvent } from '../src/cluster/directory.ts';
import { RedisDirectory } from '../src/cluster/redis-directory.ts';
import { encodeCommand, parseRedisUrl, RespParser } from '../src/cluster/resp.ts';
import { FormatError } from '../src/format/bytes.ts';
import hls from '../plugins/hls/index.ts';
import { SyntheticSource } from '../src/core/synthetic.ts';
import { ffmpegPath, sleep, until } from './helpers/media.ts';
import { freePort, type Node, startNode, Viewer } from './helpers/cluster.ts';
import { fuzz } from './helpers/fuzz.ts';

const REDIS = '/usr/bin/redis-server';
const noRedis = existsSync(REDIS) ? false : `${REDIS} not installed (apt-get install redis-server)`;
const runtime = process.env.M7S_TEST_RUNTIME ?? 'node';
const nodeOnly = runtime !== 'node' ? 'runtime-independent interop: Node pass only' : false;
const root = process.cwd(); // tests run from the checkout (scripts/test.mjs)

function startRedis(port: number, password: string): ChildProcess {
  return spawn(REDIS, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--requirepass', password, '--loglevel', 'warning'], { stdio: 'ignore' });
}
async function redisUp(port: number, password: string): Promise<void> {
  const rt = await currentRuntime();
  const d = new RedisDirectory((o) => rt.connectTcp(o), { host: '127.0.0.1', port, password, timeout: 1000 }, 'x');
  try { await until(() => d.ping().then(() => true, () => false), 10_000, 'redis-server up'); } finally { d.close(); }
}

describe('RESP and the directory (unit)', () => {
  it('parses replies incrementally and refuses hostile bytes', () => {
    const p = new RespParser();
    const all = new TextEncoder().encode('+OK\r\n-ERR bad\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*2\r\n$1\r\na\r\n:1\r\n');
    const out = [];
    for (const b of all) out.push(...p.push(new Uint8Array([b])));
    assert.equal(out.length, 6);
    assert.equal(out[0], 'OK');
    assert.equal((out[1] as Error).message, 'ERR bad');
    assert.deepEqual(out.slice(2), [42, 'abc', null, ['a', 1]]);
    assert.throws(() => new RespParser().push(new TextEncoder().encode('$999999999999\r\n')), FormatError);
    assert.throws(() => new RespParser().push(new TextEncoder().encode('?x\r\n')), FormatError);
    assert.equal(new TextDecoder().decode(encodeCommand(['GET', 'k'])), '*2\r\n$3\r\nGET\r\n$1\r\nk\r\n');
    assert.deepEqual(parseRedisUrl('redis://:p%40ss@h:7000/2'), { host: 'h', port: 7000, tls: false, username: undefined, password: 'p@ss', db: 2 });
  });
  fuzz('RespParser', [new TextEncoder().encode('*2\r\n$1\r\na\r\n:1\r\n+OK\r\n')], (b) => new RespParser().push(b), 2000);

  it('signed entries: the right secret verifies, another secret or another key does not', async () => {
    const t = await sign('s1', 'stream', 'live/a', { path: 'live/a', node: 'A' });
    assert.deepEqual(await verify('s1', 'stream', 'live/a', t), { path: 'live/a', node: 'A' });
    assert.equal(await verify('s2', 'stream', 'live/a', t), null);
    assert.equal(await verify('s1', 'stream', 'live/b', t), null);
    assert.equal(await verify('s1', 'stream', 'live/a', '{"v":1}'), null);
  });

  it('MemoryDirectory: register, lookup, watch, expiry', async () => {
    let now = 1000;
    const d = new MemoryDirectory(() => now);
    const ev: DirectoryEvent[] = [];
    d.watch((e) => ev.push(e));
    const A = { id: 'A', http: 'http://a' };
    await d.register(A, 'live/x', 3000);
    assert.equal((await d.lookup('live/x'))?.node.id, 'A');
    now += 2000; await d.heartbeat(A, ['live/x'], 3000);
    now += 2500; assert.ok(await d.lookup('live/x'), 'heartbeat kept it');
    now += 1000; assert.equal(await d.lookup('live/x'), null, 'expired after the TTL');
    await d.register(A, 'live/y', 3000); await d.unregister('B', 'live/y');
    assert.ok(await d.lookup('live/y'), 'another node cannot remove it');
    await d.unregister('A', 'live/y');
    assert.deepEqual(ev.map((e) => e.type), ['register', 'register', 'unregister']);
  });
});

describe('RedisDirectory over the runtime TCP seam', { skip: noRedis, timeout: 30_000 }, () => {
  let redis: ChildProcess, port = 0;
  before(async () => { port = await freePort(); redis = startRedis(port, 'pw'); await redisUp(port, 'pw'); });
  after(() => { redis?.kill('SIGKILL'); });

  it('heartbeat, lookup, list, watch, TTL, AUTH and secrets', async () => {
    const rt = await currentRuntime();
    const conn = (o: Parameters<typeof rt.connectTcp>[0]) => rt.connectTcp(o);
    const a = new RedisDirectory(conn, { host: '127.0.0.1', port, password: 'pw' }, 'secret', 't1:');
    const b = new RedisDirectory(conn, { host: '127.0.0.1', port, password: 'pw' }, 'secret', 't1:');
    const wrong = new RedisDirectory(conn, { host: '127.0.0.1', port, password: 'pw' }, 'other', 't1:');
    const noAuth = new RedisDirectory(conn, { host: '127.0.0.1', port, password: 'nope' }, 'secret', 't1:');
    try {
      const events: DirectoryEvent[] = [];
      b.watch((e) => events.push(e));
      await sleep(200);
      await a.register({ id: 'A', http: 'http://127.0.0.2:1' }, 'live/r', 1500);
      const f = await b.lookup('live/r');
      assert.equal(f?.node.id, 'A');
      assert.equal(f?.node.http, 'http://127.0.0.2:1');
      await until(() => events.some((e) => e.type === 'register' && e.path === 'live/r'), 5000, 'watch event');
      const l = await b.list();
      assert.deepEqual(l.nodes.map((n) => n.id), ['A']);
      assert.deepEqual(l.streams.map((s) => s.path), ['live/r']);
      // The wrong secret: A's entries do not verify, and its own are ignored by the others.
      assert.equal(await wrong.lookup('live/r'), null);
      assert.ok(wrong.refused > 0);
      await wrong.register({ id: 'W', http: 'http://evil' }, 'live/w', 5000);
      assert.equal(await b.lookup('live/w'), null);
      // A wrong Redis password is refused by Redis.
      await assert.rejects(noAuth.ping(), /WRONGPASS|invalid/i);
      // No heartbeat: gone after the TTL.
      await sleep(1700);
      assert.equal(await b.lookup('live/r'), null);
    } finally { a.close(); b.close(); wrong.close(); noAuth.close(); }
  });
});

describe('3 nodes with Redis', { skip: noRedis || nodeOnly, timeout: 90_000 }, () => {
  const TTL = 2000;
  let redis: ChildProcess, rport = 0, dir = '';
  let A: ChildProcess | null = null, B: Node, C: Node;
  let aHttp = '', aRtmp = '';
  const url = () => `redis://:pw@127.0.0.1:${rport}`;
  const cascadeYaml = (id: string, advertise: string, mode: string, secret = 'cluster-secret', redisUrl = url()) =>
    `cascade:\n  directory: "${redisUrl}"\n  secret: "${secret}"\n  nodeid: ${id}\n  advertise: "${advertise}"\n  ttl: ${TTL}ms\n  mode: ${mode}\n  retryinterval: 5s\n`;
  const cluster = async (n: Node) => (await (await fetch(`${n.http}/api/cluster`)).json() as any).data;

  before(async () => {
    rport = await freePort();
    redis = startRedis(rport, 'pw');
    await redisUp(rport, 'pw');
    const b = spawnSync(process.execPath, [join(root, 'scripts/build.mjs')], { cwd: root });
    assert.equal(b.status, 0, String(b.stderr));
    dir = mkdtempSync(join(tmpdir(), 'm7s-cluster-'));
    const [hp, rp] = [await freePort('127.0.0.2'), await freePort('127.0.0.2')];
    aHttp = `http://127.0.0.2:${hp}`; aRtmp = `rtmp://127.0.0.2:${rp}`;
    writeFileSync(join(dir, 'a.yaml'), `global:\n  loglevel: warn\n  http:\n    listenaddr: "127.0.0.2:${hp}"\nrtmp:\n  tcp:\n    listenaddr: "127.0.0.2:${rp}"\n` +
      `rtsp:\n  enable: false\nwebrtc:\n  enable: false\nhls:\n  enable: false\nllhls:\n  enable: false\n` + cascadeYaml('A', aHttp, 'pull'));
    A = spawn(process.execPath, [join(root, 'dist/m7s.mjs'), '-c', join(dir, 'a.yaml')], { cwd: dir, stdio: 'ignore' });
    const bp = await freePort('127.0.0.3'), cp = await freePort('127.0.0.4');
    B = await startNode('127.0.0.3', cascadeYaml('B', `http://127.0.0.3:${bp}`, 'pull'), bp);
    C = await startNode('127.0.0.4', cascadeYaml('C', `http://127.0.0.4:${cp}`, 'redirect'), cp, [hls]);
    await until(() => fetch(`${aHttp}/api/cluster`).then((r) => r.ok, () => false), 15_000, 'node A up');
  });
  after(async () => {
    A?.kill('SIGKILL');
    await Promise.all([B?.stop(), C?.stop()]);
    redis?.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('publish on A plays from B (pull) and C (302); kill -9 A expires it; republish on B is found; wrong secret refused; Redis restart restored', async () => {
    // Publish on A (a separate process) with ffmpeg over RTMP.
    const ff = spawn(ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=15',
      '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '15', '-f', 'flv', `${aRtmp}/live/c`], { stdio: 'ignore' });
    const viewers: Viewer[] = [];
    try {
      await until(async () => (await cluster(B)).streams.some((s: any) => s.path === 'live/c' && s.node === 'A'), 15_000, 'live/c registered by A');
      const view = await cluster(B);
      assert.deepEqual(view.nodes.map((n: any) => n.id).sort(), ['A', 'B', 'C']);
      assert.equal(view.connected, true);

      // B pulls from A.
      const vb = new Viewer(`${B.http}/flv/live/c.flv`); viewers.push(vb);
      await until(() => vb.ts.length >= 5, 15_000, 'B plays live/c');
      // C redirects HTTP players to A.
      const r = await fetch(`${C.http}/flv/live/c.flv?x=1`, { redirect: 'manual' });
      assert.equal(r.status, 302);
      assert.equal(r.headers.get('location'), `${aHttp}/flv/live/c.flv?x=1`);
      await r.body?.cancel();
      const rh = await fetch(`${C.http}/hls/live/c.m3u8`, { redirect: 'manual' });
      assert.equal(rh.status, 302, 'HLS is redirected too');
      assert.equal(rh.headers.get('location'), `${aHttp}/hls/live/c.m3u8`);
      await rh.body?.cancel();
      const vc = new Viewer(r.headers.get('location')!); viewers.push(vc);
      await until(() => vc.ts.length >= 5, 15_000, 'the redirected viewer plays from A');
      for (const v of viewers) v.stop();

      // kill -9 A: its node and stream entries expire within 2×TTL.
      ff.kill('SIGKILL');
      A!.kill('SIGKILL');
      const t0 = Date.now();
      await until(async () => { const v = await cluster(C); return !v.streams.some((s: any) => s.node === 'A') && !v.nodes.some((n: any) => n.id === 'A'); }, 4 * TTL, 'A expired');
      const gone = Date.now() - t0;
      assert.ok(gone <= 2 * TTL, `A's entries gone after ${gone} ms (TTL ${TTL})`);
      A = null;

      // Republish on B: C finds it there (and redirects to B).
      const pub = await B.server.engine.publish('live/c', { protocol: 'test' });
      const src = new SyntheticSource(pub, { fps: 25, gop: 25, videoBytes: 300, audio: false });
      src.start();
      try {
        await until(async () => (await cluster(C)).streams.some((s: any) => s.path === 'live/c' && s.node === 'B'), 5000, 'republish on B found');
        const r2 = await fetch(`${C.http}/flv/live/c.flv`, { redirect: 'manual' });
        assert.equal(r2.status, 302);
        assert.equal(r2.headers.get('location'), `${B.http}/flv/live/c.flv`);
        await r2.body?.cancel();

        // A viewer on B waits for live/e, which nobody publishes yet (B's upstream retries every 5 s);
        // published on C, the directory's watch event starts B's pull at once.
        const ve = new Viewer(`${B.http}/flv/live/e.flv`); viewers.push(ve);
        await sleep(1500);
        const pe = await C.server.engine.publish('live/e', { protocol: 'test' });
        const se = new SyntheticSource(pe, { fps: 25, gop: 25, videoBytes: 300, audio: false });
        se.start();
        const te = Date.now();
        try {
          await until(() => ve.ts.length >= 3, 10_000, 'the waiting viewer on B plays live/e from C');
          const waited = Date.now() - te;
          console.log(`# viewer waiting on B got live/e ${waited} ms after C published it (retryinterval 5 s)`);
          assert.ok(waited < 3000, `started by the watch event, not the 5 s retry (${waited} ms)`);
        } finally { ve.stop(); se.stop(); pe.close('done'); }

        // A node with the wrong secret: sees nothing valid, and the others ignore what it registers.
        const D = await startNode('127.0.0.5', cascadeYaml('D', 'http://127.0.0.5:1', 'pull', 'wrong-secret'));
        try {
          const pd = await D.server.engine.publish('live/d', { protocol: 'test' });
          const vd = await cluster(D);
          assert.ok(vd.streams.every((s: any) => s.node === 'D'), 'D verifies none of the others\' entries (only its own)');
          assert.ok(!vd.nodes.some((n: any) => n.id === 'B'));
          assert.ok(vd.refused > 0);
          await sleep(300);
          assert.ok(!(await cluster(C)).streams.some((s: any) => s.path === 'live/d'), 'D\'s stream is refused');
          assert.ok(!(await cluster(C)).nodes.some((n: any) => n.id === 'D'), 'D is not a member');
          pd.close();
        } finally { await D.stop(); }
        // A node with the wrong Redis password is refused by Redis.
        const E = await startNode('127.0.0.5', cascadeYaml('E', 'http://127.0.0.5:1', 'pull', 'cluster-secret', `redis://:bad@127.0.0.1:${rport}`));
        try {
          const ve = await cluster(E);
          assert.equal(ve.connected, false);
          assert.match(ve.error, /WRONGPASS|invalid/i);
        } finally { await E.stop(); }

        // Redis restarts empty (no persistence): the heartbeats write B and C and live/c again.
        redis.kill('SIGKILL');
        await sleep(300);
        redis = startRedis(rport, 'pw');
        await redisUp(rport, 'pw');
        const t1 = Date.now();
        await until(async () => {
          const v = await cluster(C);
          return v.streams.some((s: any) => s.path === 'live/c' && s.node === 'B') && v.nodes.length === 2;
        }, 4 * TTL, 'entries restored by heartbeats');
        assert.ok(Date.now() - t1 <= 2 * TTL, 'restored within 2×TTL');
      } finally { src.stop(); pub.close('done'); }
    } finally {
      for (const v of viewers) v.stop();
      ff.kill('SIGKILL');
    }
  });
});
