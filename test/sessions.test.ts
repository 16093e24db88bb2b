// The session registry (one id space for every plugin's sessions and jobs), its generic API
// (/{plugin}/api/list, /{plugin}/api/stop/{id}, /api/sessions, m7s_sessions metrics), the player helper
// (ctx.play: errors through app.onError, close wiring) and HLS viewers, on Node, Bun and Deno.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import flv from '../plugins/flv/index.ts';
import hls from '../plugins/hls/index.ts';
import mp4 from '../plugins/mp4/index.ts';
import rtmp from '../plugins/rtmp/index.ts';
import { SyntheticSource } from '../src/core/synthetic.ts';
import { SessionRegistry, pluginSessions } from '../src/sessions.ts';
import { sleep, startServer, until, type TestServer } from './helpers/media.ts';

const WebSocketCtor: Promise<any> = (async () => (globalThis as any).WebSocket ?? (await import('ws')).WebSocket)();

async function json(url: string, init?: RequestInit): Promise<{ status: number; body: any }> {
  const r = await fetch(url, init);
  return { status: r.status, body: await r.json() };
}

/** Reads a streamed body until `bytes` have arrived (or the stream ends), then aborts. */
async function readSome(url: string, bytes: number, headers: Record<string, string> = {}): Promise<{ status: number; got: number; abort: () => void }> {
  const ac = new AbortController();
  const r = await fetch(url, { signal: ac.signal, headers });
  let got = 0;
  if (r.body) {
    const reader = r.body.getReader();
    while (got < bytes) {
      const { done, value } = await reader.read();
      if (done) break;
      got += value.byteLength;
    }
    return { status: r.status, got, abort: () => { reader.cancel().catch(() => {}); ac.abort(); } };
  }
  return { status: r.status, got, abort: () => ac.abort() };
}

describe('session registry (unit)', () => {
  it('one id space across plugins, lookups by key, linger after remove, stopAll', () => {
    const reg = new SessionRegistry();
    const stopped: string[] = [];
    const a = pluginSessions(reg, 'a', []), b = pluginSessions(reg, 'b', ['things']);
    const h1 = a.add({ kind: 'x', stop: (r) => stopped.push('1:' + r), key: 'k1' });
    const h2 = b.add({ kind: 'y', group: 'things', stop: (r) => stopped.push('2:' + r), linger: 60_000, info: () => ({ n: 7 }) });
    const h3 = b.add({ kind: 'y', stop: (r) => { stopped.push('3:' + r); h3.remove(r); } });
    assert.equal(new Set([h1.id, h2.id, h3.id]).size, 3);
    assert.equal(a.get(h2.id), undefined, 'a plugin sees only its own');
    assert.equal(a.byKey('k1'), h1);
    assert.throws(() => a.add({ kind: 'x', stop: () => {}, key: 'k1' }), /already registered/);
    assert.deepEqual(reg.counts().sort((x, y) => x.plugin.localeCompare(y.plugin)), [{ plugin: 'a', kind: 'x', count: 1 }, { plugin: 'b', kind: 'y', count: 2 }]);
    const l = reg.listing('b', ['things', 'others']) as any;
    assert.equal(l.total, 2);
    assert.deepEqual(l.others, []);
    assert.equal(l.things.length, 1);
    assert.equal(l.things[0].n, 7);
    assert.equal(reg.stop(h2.id, 'api', 'a'), undefined, 'stop through another plugin: not found');
    assert.equal(reg.stop(h2.id, 'api', 'b'), h2);
    h2.remove('done');
    assert.equal(b.list().length, 2, 'lingering ended session still listed');
    assert.equal(b.list({ live: true }).length, 1);
    assert.equal((reg.listing('b') as any).list.find((x: any) => x.id === h2.id).endReason, 'done');
    reg.stop(h2.id, 'again', 'b'); // ended: not asked again
    reg.stopAll('b', 'shutdown');
    assert.deepEqual(stopped, ['2:api', '3:shutdown']);
    assert.equal(b.list().length, 0);
    assert.equal(reg.counts().length, 1);
  });
});

describe('sessions and players through the server', () => {
  let S: TestServer;
  let src: SyntheticSource;
  before(async () => {
    S = await startServer([rtmp, flv, mp4, hls], 'rtmp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\nhls:\n  fragment: 500ms\n  window: 2\n  idletimeout: 2s\n');
    const pub = await S.server.engine.publish('live/s', { protocol: 'test' });
    src = new SyntheticSource(pub, { fps: 25, gop: 12, videoBytes: 1500, sampleRate: 44100 });
    src.start();
    await sleep(600);
  });
  after(async () => { src?.stop(); await S?.stop(); });

  it('lists HTTP-FLV, WS-FLV and fMP4 players with remote addresses; ids are unique across plugins; stop ends one', async () => {
    const WS = await WebSocketCtor;
    const f = await readSome(`${S.http}/flv/live/s.flv`, 20_000);
    const m = await readSome(`${S.http}/mp4/live/s.mp4`, 20_000);
    assert.equal(f.status, 200);
    assert.equal(m.status, 200);
    const ws = new WS(`${S.http.replace('http', 'ws')}/mp4/live/s.mp4`);
    ws.binaryType = 'arraybuffer';
    let wsBytes = 0;
    ws.onmessage = (e: any) => { wsBytes += e.data.byteLength; };
    await until(() => wsBytes > 5000, 10_000, 'ws mp4 bytes');
    try {
      const fl = (await json(`${S.http}/flv/api/list`)).body.data;
      const ml = (await json(`${S.http}/mp4/api/list`)).body.data;
      assert.deepEqual(Object.keys(fl).sort(), ['list', 'players', 'publishers', 'pulls', 'total']);
      const fp = fl.players.find((p: any) => p.type === 'http-flv');
      assert.ok(fp, JSON.stringify(fl));
      assert.equal(fp.streamPath, 'live/s');
      assert.ok(fp.bytesSent > 0);
      assert.match(fp.remote ?? '', /^127\.0\.0\.1:\d+$/, `flv remote ${fp.remote}`);
      const mh = ml.players.find((p: any) => p.kind === 'http');
      const mw = ml.players.find((p: any) => p.kind === 'ws');
      assert.ok(mh && mw, JSON.stringify(ml));
      assert.match(mh.remote ?? '', /^127\.0\.0\.1:\d+$/, `mp4 http remote ${mh.remote}`);
      assert.match(mw.remote ?? '', /^127\.0\.0\.1:\d+$/, `mp4 ws remote ${mw.remote}`);
      assert.equal(new Set([fp.id, mh.id, mw.id]).size, 3, 'one id space');
      const all = (await json(`${S.http}/api/sessions`)).body.data;
      assert.ok([fp.id, mh.id, mw.id].every((id) => all.list.some((x: any) => x.id === id)));
      const metrics = await (await fetch(`${S.http}/api/metrics`)).text();
      assert.match(metrics, /m7s_sessions\{plugin="flv",kind="http-flv"\} 1/);
      assert.match(metrics, /m7s_sessions\{plugin="mp4",kind="ws"\} 1/);
      // Stop through the wrong plugin: 404; through its own: the player's body ends.
      assert.equal((await json(`${S.http}/mp4/api/stop/${fp.id}`, { method: 'POST' })).status, 404);
      const st = await json(`${S.http}/mp4/api/stop/${mw.id}`, { method: 'POST' });
      assert.equal(st.status, 200);
      assert.deepEqual([st.body.data.kind, st.body.data.plugin], ['ws', 'mp4']);
      await until(() => ws.readyState === 3, 5000, 'ws closed by the stop');
      await until(async () => !(await json(`${S.http}/mp4/api/list`)).body.data.list.some((x: any) => x.id === mw.id), 5000, 'stopped player unlisted');
    } finally {
      f.abort();
      m.abort();
      ws.close();
    }
    // Client disconnects unlist the players.
    await until(async () => (await json(`${S.http}/flv/api/list`)).body.data.players.length === 0, 5000, 'flv player unlisted after abort');
    await until(async () => (await json(`${S.http}/mp4/api/list`)).body.data.players.length === 0, 5000, 'mp4 player unlisted after abort');
    assert.equal(S.server.engine.getStream('live/s')?.subscribers.size, 0);
  });

  it('errors before streaming reach the app error handler: status and JSON, no session left', async () => {
    for (const url of [`${S.http}/mp4/live/none.mp4?waittimeout=100ms`, `${S.http}/flv/live/none.flv?waittimeout=100ms`]) {
      const r = await json(url);
      assert.equal(r.status, 404, url);
      assert.equal(r.body.code, 404);
      assert.match(r.body.message, /live\/none not found/);
    }
    const WS = await WebSocketCtor;
    const ws = new WS(`${S.http.replace('http', 'ws')}/flv/live/none.flv?waittimeout=100ms`);
    const code = await new Promise<number>((res) => { ws.onclose = (e: any) => res(e.code); });
    assert.equal(code, 4404);
    assert.equal((await json(`${S.http}/api/sessions`)).body.data.list.filter((x: any) => x.streamPath === 'live/none').length, 0);
  });

  it('HLS viewers are listed per client (ip + user agent) with request and byte counts, and expire when idle', async () => {
    const get = (u: string, ua: string) => fetch(u, { headers: { 'user-agent': ua } });
    const pl = await get(`${S.http}/hls/live/s.m3u8`, 'viewer-a');
    assert.equal(pl.status, 200);
    const text = await pl.text();
    const seg = text.split('\n').find((l) => l.endsWith('.ts'))!;
    const sr = await get(`${S.http}/hls/live/${seg}`, 'viewer-a');
    const segBytes = (await sr.arrayBuffer()).byteLength;
    assert.ok(segBytes > 0);
    await (await get(`${S.http}/hls/live/s.m3u8`, 'viewer-b')).text();
    const l = (await json(`${S.http}/hls/api/list`)).body.data;
    assert.deepEqual(Object.keys(l).sort(), ['list', 'pulls', 'segmenters', 'total', 'viewers']);
    const va = l.viewers.find((v: any) => v.userAgent === 'viewer-a');
    const vb = l.viewers.find((v: any) => v.userAgent === 'viewer-b');
    assert.ok(va && vb, JSON.stringify(l.viewers));
    assert.equal(va.remote, '127.0.0.1');
    assert.equal(va.requests, 2);
    assert.equal(va.bytes, segBytes);
    assert.equal(va.kind, 'viewer');
    const sg = l.segmenters.find((s: any) => s.streamPath === 'live/s');
    assert.equal(sg.kind, 'ts', 'segmenter list keeps its documented kind field');
    assert.equal(sg.viewers, 2);
    assert.equal(l.list.find((x: any) => x.id === sg.id).kind, 'segmenter', 'uniform list: registry kind');
    const metrics = await (await fetch(`${S.http}/api/metrics`)).text();
    assert.match(metrics, /m7s_sessions\{plugin="hls",kind="viewer"\} 2/);
    // Nobody fetches: after idletimeout (2 s) the viewers and the segmenter go.
    await until(async () => (await json(`${S.http}/hls/api/list`)).body.data.total === 0, 8000, 'HLS viewers and segmenter expired');
  });

  it('rtmp connections and the flv publisher are sessions too', async () => {
    const l = (await json(`${S.http}/rtmp/api/list`)).body.data;
    assert.deepEqual(Object.keys(l).sort(), ['list', 'pendingBytes', 'pulls', 'pushes', 'sessions', 'total']);
    assert.equal((await json(`${S.http}/rtmp/api/stop/999999`, { method: 'POST' })).status, 404);
  });
});
