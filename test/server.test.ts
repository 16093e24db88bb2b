// The server as a whole: config → plugins → HTTP API, on whichever runtime runs the test.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { currentRuntime } from '../adapters/current.ts';
import { ConfigInvalidError, Server } from '../src/server.ts';
import { definePlugin } from '../src/plugin.ts';
import { t } from '../src/config/schema.ts';
import { SyntheticSource } from '../src/core/synthetic.ts';
import { type Frame, type Subscriber } from '../src/core/index.ts';
import { Logger } from '../src/log.ts';
import { parseArgs } from '../src/main.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A plugin that exercises the plugin API: settings, routes, a TCP listener, a puller, config changes. */
function makeTestPlugin() {
  const seen = { changes: [] as string[], pulls: [] as string[], conns: 0, stopped: false };
  const plugin = definePlugin({
    name: 'testp',
    pull: true,
    defaults: { greeting: 'hello', tcp: { listenaddr: '127.0.0.1:0' }, chunk: t.num(4096, { min: 128 }), every: t.dur('2s') },
    async setup(ctx) {
      await ctx.listenTcp(ctx.config.tcp.listenaddr, (conn) => { seen.conns++; conn.end(); }, { what: 'test listener' });
      ctx.http.get('/hello', (c) => ctx.ok(c, { greeting: ctx.config.greeting, every: ctx.config.every, waittimeout: ctx.config.subscribe.waittimeout }));
      ctx.http.get('/play/:path{.+}', async (c) => {
        const got: number[] = [];
        const sub: Subscriber = await ctx.subscribe(c.req.param('path') + '?' + new URL(c.req.url).searchParams, {
          sink: { frame: (f: Frame) => { got.push(f.data.length); return f.data.length; }, flush: () => true },
        });
        const r = ctx.ok(c, { frames: got.length, waittimeout: sub.config.waittimeout, key: sub.config.key });
        sub.close();
        return r;
      });
      ctx.registerPuller(async ({ streamPath, url }) => {
        seen.pulls.push(`${streamPath} <- ${url}`);
        const pub = await ctx.publish(streamPath, { type: 'pull' });
        new SyntheticSource(pub).burst(3);
      });
      ctx.onConfigChange((diff) => { seen.changes.push(...diff.map((d) => d.path)); });
      ctx.onStop(() => { seen.stopped = true; });
    },
  });
  return { plugin, seen };
}

const broken = definePlugin({ name: 'broken', defaults: {}, setup() { throw new Error('no camera attached'); } });

async function json(url: string, init?: RequestInit) {
  const r = await fetch(url, init);
  return { status: r.status, headers: r.headers, body: await r.json() as any };
}

describe('server: HTTP API and plugins', () => {
  let server: Server;
  let base: string;
  const { plugin, seen } = makeTestPlugin();
  let dir: string;
  let cfgFile: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'm7s-test-'));
    cfgFile = join(dir, 'config.yaml');
    writeFileSync(cfgFile, [
      '# test config',
      'global:',
      '  loglevel: warn',
      '  http:',
      '    listenaddr: "127.0.0.1:0"',
      '  subscribe:',
      '    waittimeout: 3s   # keep this comment',
      'testp:',
      '  greeting: hi',
      '  onsub:',
      '    pull:',
      '      "pulled/(.+)": "fake://origin/$1"',
      '',
    ].join('\n'));
    server = await Server.start({
      runtime: await currentRuntime(), plugins: [plugin, broken], configFile: cfgFile,
      env: { GLOBAL_PUBLISH_PUBLISHTIMEOUT: '20s', TESTP_CHUNK: '8192' }, logger: Logger.silent(),
    });
    base = `http://127.0.0.1:${server.http!.port}`;
  });
  after(async () => {
    await server?.stop();
    assert.equal(seen.stopped, true, 'plugin stop hook ran');
    rmSync(dir, { recursive: true, force: true });
  });

  it('sysinfo answers in the envelope and lists listeners', async () => {
    const r = await json(`${base}/api/sysinfo`);
    assert.equal(r.status, 200);
    assert.equal(r.body.code, 0);
    assert.equal(r.body.data.runtime, (await currentRuntime()).name);
    assert.ok(r.body.data.listen.some((l: any) => l.plugin === 'testp' && l.proto === 'tcp' && l.port > 0));
    assert.equal(r.headers.get('access-control-allow-origin'), '*', 'CORS on by default');
  });

  it('a plugin whose setup fails is disabled with its reason; the others run', async () => {
    const r = await json(`${base}/api/plugins`);
    const b = r.body.data.find((p: any) => p.name === 'broken');
    const tp = r.body.data.find((p: any) => p.name === 'testp');
    assert.equal(b.enabled, false);
    assert.match(b.reason, /no camera attached/);
    assert.equal(tp.enabled, true);
    const h = await json(`${base}/testp/hello`);
    assert.equal(h.body.data.greeting, 'hi', 'file value');
    assert.equal(h.body.data.every, 2000, 'duration default in ms');
    assert.equal(h.body.data.waittimeout, 3000, 'plugin inherits global.subscribe');
    assert.equal(server.config.testp.chunk, 8192, 'env override TESTP_CHUNK');
    assert.equal(server.engine.publishConfig.publishtimeout, 20000, 'env override GLOBAL_PUBLISH_PUBLISHTIMEOUT');
  });

  it('stream list, info, subscribers and stop', async () => {
    const pub = await server.engine.publish('live/api', { protocol: 'test' });
    const src = new SyntheticSource(pub);
    src.burst(10);
    const sub = await server.engine.subscribe('live/api', { protocol: 'test', sink: { frame: (f) => f.data.length, flush: () => true } });
    let r = await json(`${base}/api/stream/list`);
    assert.equal(r.body.data.total, 1);
    assert.equal(r.body.data.list[0].path, 'live/api');
    r = await json(`${base}/api/stream/info/live/api`);
    assert.deepEqual(r.body.data.tracks.map((x: any) => x.codec), ['h264', 'aac']);
    assert.equal(r.body.data.publisher.protocol, 'test');
    r = await json(`${base}/api/subscribers/live/api`);
    assert.equal(r.body.data.length, 1);
    assert.ok(r.body.data[0].framesSent > 0);
    assert.equal(r.body.data[0].id, sub.id);
    r = await json(`${base}/api/stream/info/live/none`);
    assert.equal(r.status, 404);
    assert.equal(r.body.code, 404);
    r = await json(`${base}/api/stream/stop/live/api`, { method: 'POST' });
    assert.equal(r.body.code, 0);
    assert.equal(pub.closed, true);
    assert.equal(sub.state, 'closed');
    r = await json(`${base}/api/stream/list`);
    assert.equal(r.body.data.total, 0);
  });

  it('a plugin subscribe sees URL query overrides, but never of the secret key', async () => {
    const pub = await server.engine.publish('live/q', { protocol: 'test' });
    new SyntheticSource(pub).burst(5);
    const r = await json(`${base}/testp/play/live/q?waittimeout=2s&key=`);
    assert.equal(r.body.data.waittimeout, 2000);
    assert.ok(r.body.data.frames > 0);
    // A request may shorten the configured wait (3 s here), never lengthen it (issue 9, fault 6).
    const r2 = await json(`${base}/testp/play/live/q?waittimeout=7s`);
    assert.equal(r2.body.data.waittimeout, 3000);
    server.engine.stopStream('live/q');
  });

  it('on-demand pull from the plugin config calls the puller with the templated URL', async () => {
    const r = await json(`${base}/testp/play/pulled/cam9`);
    assert.equal(r.status, 200);
    assert.deepEqual(seen.pulls, ['pulled/cam9 <- fake://origin/cam9']);
    assert.ok(r.body.data.frames > 0);
  });

  it('server-sent events stream repeated updates', async () => {
    const ac = new AbortController();
    const r = await fetch(`${base}/api/summary?interval=100ms`, { headers: { accept: 'text/event-stream' }, signal: ac.signal });
    assert.equal(r.headers.get('content-type'), 'text/event-stream');
    const reader = r.body!.getReader();
    let text = '';
    while ((text.match(/^data: /gm) ?? []).length < 3) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    ac.abort();
    await reader.cancel().catch(() => {});
    const events = text.split('\n\n').filter((e) => e.startsWith('data: '));
    assert.ok(events.length >= 3);
    assert.equal(JSON.parse(events[0].slice(6)).data.streamCount >= 0, true);
  });

  it('metrics in Prometheus text format', async () => {
    const r = await fetch(`${base}/api/metrics`);
    const text = await r.text();
    assert.match(text, /^# TYPE m7s_streams gauge$/m);
    assert.match(text, /^m7s_publish_total \d+$/m);
  });

  it('unknown routes answer JSON 404; OPTIONS preflight answers 204', async () => {
    const r = await json(`${base}/nothing/here`);
    assert.equal(r.status, 404);
    assert.equal(r.body.code, 404);
    const o = await fetch(`${base}/api/sysinfo`, { method: 'OPTIONS' });
    assert.equal(o.status, 204);
    assert.ok(o.headers.get('access-control-allow-methods')?.includes('POST'));
  });

  it('config API: get, and modify applies at once, saves to the file and keeps comments', async () => {
    let r = await json(`${base}/api/config/get/testp`);
    assert.equal(r.body.data.config.greeting, 'hi');
    r = await json(`${base}/api/config/modify`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ testp: { greeting: 'bonjour' } }) });
    assert.equal(r.body.code, 0, JSON.stringify(r.body));
    assert.deepEqual(r.body.data.changed.map((c: any) => c.path), ['testp.greeting']);
    const h = await json(`${base}/testp/hello`);
    assert.equal(h.body.data.greeting, 'bonjour');
    assert.ok(seen.changes.includes('testp.greeting'), 'the plugin was told');
    const file = readFileSync(cfgFile, 'utf8');
    assert.match(file, /greeting: bonjour/);
    assert.match(file, /# keep this comment/);
    r = await json(`${base}/api/config/modify?save=false`, { method: 'POST', headers: { 'content-type': 'application/yaml' }, body: 'testp:\n  chunk: 5\n' });
    assert.equal(r.status, 400);
    assert.match(r.body.data.errors[0], /testp\.chunk/);
  });

  it('editing config.yaml while running changes a reloadable key without a restart', async () => {
    const before = readFileSync(cfgFile, 'utf8');
    writeFileSync(cfgFile, before.replace('waittimeout: 3s', 'waittimeout: 4s'));
    let ok = false;
    for (let i = 0; i < 40 && !ok; i++) {
      await sleep(150);
      ok = server.engine.subscribeConfig.waittimeout === 4000;
    }
    assert.ok(ok, 'global.subscribe.waittimeout reloaded from the file');
    const h = await json(`${base}/testp/hello`);
    assert.equal(h.body.data.waittimeout, 4000, 'inherited into the plugin section too');
    // A bad edit is refused and the running config stays.
    writeFileSync(cfgFile, before.replace('waittimeout: 3s', 'waittimeout: soon'));
    await sleep(1500);
    assert.equal(server.engine.subscribeConfig.waittimeout, 4000);
  });
});

describe('server: config errors and options', () => {
  it('bad YAML names the line', async () => {
    await assert.rejects(
      Server.start({ runtime: await currentRuntime(), plugins: [], configText: 'global:\n  http:\n    listenaddr: ":0"\n  loglevel: [\n', logger: Logger.silent() }),
      (e: unknown) => e instanceof ConfigInvalidError && /config\.yaml:\d+/.test(e.message));
  });
  it('a wrong type names the key and the line', async () => {
    const { plugin } = makeTestPlugin();
    await assert.rejects(
      Server.start({ runtime: await currentRuntime(), plugins: [plugin], configText: 'global:\n  http:\n    listenaddr: ":0"\ntestp:\n  chunk: lots\n', logger: Logger.silent() }),
      (e: unknown) => e instanceof ConfigInvalidError && /testp\.chunk \(config\.yaml:5\)/.test(e.message));
  });
  it('PLUGIN_ENABLE=false turns a plugin off', async () => {
    const { plugin } = makeTestPlugin();
    const s = await Server.start({ runtime: await currentRuntime(), plugins: [plugin], configText: 'global:\n  http:\n    listenaddr: "127.0.0.1:0"\n', env: { TESTP_ENABLE: 'false' }, logger: Logger.silent() });
    try {
      const p = s.pluginStates().find((x) => x.name === 'testp')!;
      assert.equal(p.enabled, false);
      assert.match(p.reason!, /enable: false/);
      const r = await fetch(`http://127.0.0.1:${s.http!.port}/testp/hello`);
      assert.equal(r.status, 404);
      await r.body?.cancel();
    } finally { await s.stop(); }
  });
  it('basic auth protects the API when configured', async () => {
    const { plugin } = makeTestPlugin();
    const s = await Server.start({ runtime: await currentRuntime(), plugins: [plugin], configText: 'global:\n  http:\n    listenaddr: "127.0.0.1:0"\n    username: admin\n    password: pw\n', logger: Logger.silent() });
    try {
      const u = `http://127.0.0.1:${s.http!.port}/api/sysinfo`;
      const r1 = await fetch(u);
      assert.equal(r1.status, 401);
      await r1.body?.cancel();
      const r2 = await fetch(u, { headers: { authorization: 'Basic ' + btoa('admin:pw') } });
      assert.equal(r2.status, 200);
      await r2.body?.cancel();
      // Plugin APIs are guarded too (they start pulls, stop streams); other plugin routes are not.
      const r3 = await fetch(`http://127.0.0.1:${s.http!.port}/testp/api/anything`);
      assert.equal(r3.status, 401);
      await r3.body?.cancel();
      const r4 = await fetch(`http://127.0.0.1:${s.http!.port}/testp/hello`);
      assert.notEqual(r4.status, 401);
      await r4.body?.cancel();
    } finally { await s.stop(); }
  });
  it('CLI arguments', () => {
    assert.deepEqual(parseArgs(['-c', 'x.yaml']), { config: 'x.yaml', check: false, help: false, version: false });
    assert.equal(parseArgs(['--bogus']).error, 'unknown argument --bogus');
    assert.equal(parseArgs(['-c']).error, '-c needs a file name');
  });
});
