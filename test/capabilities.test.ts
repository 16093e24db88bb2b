// Host capabilities (issue 14): a plugin that `needs` net/fs/proc is disabled with the reason on a host
// without it; the engine keeps no timer until its first stream.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { currentRuntime } from '../adapters/current.ts';
import { Server } from '../src/server.ts';
import { definePlugin } from '../src/plugin.ts';
import { Engine } from '../src/core/engine.ts';
import { Logger } from '../src/log.ts';
import { hostCapabilities, type Runtime } from '../src/net/types.ts';
import { builtinPlugins } from '../plugins/index.ts';

/** The current runtime with a different capability list (a host without sockets, like the edge). */
async function hostWith(caps: Runtime['capabilities']): Promise<Runtime> {
  const rt = await currentRuntime();
  return Object.create(rt, { capabilities: { value: caps } }) as Runtime;
}

const CONFIG = 'global:\n  http:\n    listenaddr: "127.0.0.1:0"\nrtmp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\n';

describe('host capabilities', () => {
  it('a full host (no list) has net, fs and proc', async () => {
    assert.deepEqual([...hostCapabilities(await currentRuntime())].sort(), ['fs', 'net', 'proc']);
  });

  it('a host without net shows rtmp disabled with the reason; HTTP plugins run', async () => {
    const s = await Server.start({ runtime: await hostWith(['fs']), plugins: builtinPlugins, configText: CONFIG, logger: Logger.silent() });
    try {
      const r = await fetch(`http://127.0.0.1:${s.http!.port}/api/plugins`);
      const body = await r.json() as { data: { name: string; enabled: boolean; reason?: string }[] };
      const rtmp = body.data.find((p) => p.name === 'rtmp')!;
      assert.equal(rtmp.enabled, false);
      assert.match(rtmp.reason ?? '', /needs net \(TCP\/UDP sockets\), which this host \(\w+\) does not have/);
      const webrtc = body.data.find((p) => p.name === 'webrtc')!;
      assert.equal(webrtc.enabled, false);
      assert.match(webrtc.reason ?? '', /needs net/);
      // Nothing listens for RTMP; the HTTP players are up.
      assert.ok(!s.listening.some((l) => l.plugin === 'rtmp'), 'rtmp must not listen');
      for (const name of ['flv', 'hls', 'mp4']) assert.equal(body.data.find((p) => p.name === name)?.enabled, true, name);
    } finally { await s.stop(); }
  });

  it('the same plugins on a full host: rtmp enabled', async () => {
    const s = await Server.start({ runtime: await currentRuntime(), plugins: builtinPlugins, configText: CONFIG, logger: Logger.silent() });
    try {
      const rtmp = s.pluginStates().find((p) => p.name === 'rtmp')!;
      assert.equal(rtmp.enabled, true, rtmp.reason);
    } finally { await s.stop(); }
  });

  it('fs and proc are checked the same way; an undeclared socket use fails setup with a clear reason', async () => {
    const needsFs = definePlugin({ name: 'needsfs', needs: ['fs'], defaults: {}, setup() {} });
    const needsProc = definePlugin({ name: 'needsproc', needs: ['proc'], defaults: {}, setup() {} });
    const sneaky = definePlugin({ name: 'sneaky', defaults: {}, async setup(ctx) { await ctx.listenTcp('127.0.0.1:0', (c) => c.destroy()); } });
    const s = await Server.start({ runtime: await hostWith([]), plugins: [needsFs, needsProc, sneaky], configText: CONFIG, logger: Logger.silent() });
    try {
      const st = Object.fromEntries(s.pluginStates().map((p) => [p.name, p]));
      assert.equal(st.needsfs.enabled, false);
      assert.match(st.needsfs.reason!, /needs fs \(a file system\)/);
      assert.match(st.needsproc.reason!, /needs proc \(child processes\)/);
      assert.equal(st.sneaky.enabled, false);
      assert.match(st.sneaky.reason!, /no net capability/);
    } finally { await s.stop(); }
  });

  it('proc: ctx.spawn pipes stdin to stdout, lists the child while it runs, kills it with the plugin', async () => {
    let ctxRef: any;
    const p = definePlugin({ name: 'spawner', needs: ['proc'], defaults: {}, setup(ctx) { ctxRef = ctx; } });
    const s = await Server.start({ runtime: await currentRuntime(), plugins: [p], configText: CONFIG, logger: Logger.silent() });
    let sleeper: any;
    try {
      // cat echoes what it reads: bytes written in arrive out unchanged, and end of input ends it with 0.
      const cat = await ctxRef.spawn('cat', [], { what: 'echo' });
      assert.ok(cat.pid > 0);
      const got: Uint8Array[] = [];
      cat.onStdout((c: Uint8Array) => got.push(c));
      const payload = new Uint8Array(300_000).map((_, i) => (i * 7) & 255);
      if (!cat.write(payload)) await cat.drain();
      cat.endInput();
      assert.deepEqual(await cat.exited, { code: 0, signal: null });
      const all = new Uint8Array(got.reduce((n, c) => n + c.length, 0));
      let o = 0; for (const c of got) { all.set(c, o); o += c.length; }
      assert.equal(all.length, payload.length);
      assert.deepEqual(all, payload);
      // Output written before the caller attaches its callback is kept for it (seen on Bun).
      const early = await ctxRef.spawn('printf', ['early']);
      await new Promise((r) => setTimeout(r, 200));
      const earlyOut: Uint8Array[] = [];
      early.onStdout((c: Uint8Array) => earlyOut.push(c));
      await early.exited;
      assert.equal(new TextDecoder().decode(earlyOut.length === 1 ? earlyOut[0] : new Uint8Array(earlyOut.flatMap((c) => [...c]))), 'early');
      // A program that does not exist is a clear error, not a crash.
      await assert.rejects(ctxRef.spawn('m7s-no-such-program', []), /cannot start m7s-no-such-program: not found/);
      sleeper = await ctxRef.spawn('sleep', ['30'], { what: 'sleeper' });
      const listed = (await (await fetch(`http://127.0.0.1:${s.http!.port}/api/sysinfo`)).json()).data.children;
      assert.deepEqual(listed.map((c: any) => [c.plugin, c.cmd, c.what, c.pid]), [['spawner', 'sleep', 'sleeper', sleeper.pid]]);
    } finally { await s.stop(); }
    // Stopping the server stops the plugin, which ends its children.
    const ex = await sleeper.exited;
    assert.equal(ex.signal, 'SIGTERM');
  });

  it('proc: a host without it refuses ctx.spawn with the reason', async () => {
    let ctxRef: any;
    const p = definePlugin({ name: 'spawner2', defaults: {}, setup(ctx) { ctxRef = ctx; } });
    const s = await Server.start({ runtime: await hostWith(['net', 'fs']), plugins: [p], configText: CONFIG, logger: Logger.silent() });
    try {
      await assert.rejects(ctxRef.spawn('cat', []), /no proc capability/);
    } finally { await s.stop(); }
  });

  it('the engine starts its tick with the first stream and stops it with the last', async () => {
    const e = new Engine();
    assert.equal(e.ticking, false, 'no timer in the constructor');
    const pub = await e.publish('live/cap', { protocol: 'test' });
    assert.equal(e.ticking, true);
    pub.stop('done');
    assert.equal(e.streams.size, 0);
    assert.equal(e.ticking, false);
    e.shutdown();
  });
});
