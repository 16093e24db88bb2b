// The permission model through every protocol: RTMP publish/play (credentials as ?user=&pass= /
// ?jwt= on the tcUrl or stream name), HTTP-FLV play (Basic, Bearer, ?jwt=), HLS (playlist and segments).
// One rule kind per check: user/password, IP range, action, path pattern, JWT HS256, JWT via JWKS,
// HTTP callback allow/deny/timeout.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server as HttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { currentRuntime } from '../adapters/current.ts';
import rtmp from '../plugins/rtmp/index.ts';
import flv from '../plugins/flv/index.ts';
import hls from '../plugins/hls/index.ts';
import mp4 from '../plugins/mp4/index.ts';
import { RtmpClient, parseRtmpUrl } from '../plugins/rtmp/client.ts';
import { SyntheticSource } from '../src/core/synthetic.ts';
import { Logger } from '../src/log.ts';
import { startServer, type TestServer } from './helpers/media.ts';
import { jwks, makeKey, nowSec, signHs256, signWith, type TestKey } from './helpers/jwt.ts';

const rt = await currentRuntime();
const HS = 'hs-secret-for-tests';
let S: TestServer;
let cb: HttpServer;
let dir = '';
let es: TestKey;
let src: SyntheticSource;
let rtmpBase = '';
const cbSeen: any[] = [];

const hsToken = (perms: { action: string; path: string }[], extra: Record<string, unknown> = {}) =>
  signHs256({ iss: 'm7s-test', aud: 'players', exp: nowSec() + 300, m7s_permissions: perms, ...extra }, HS);
const basic = (u: string, p: string) => ({ authorization: 'Basic ' + btoa(`${u}:${p}`) });

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'm7s-perm-'));
  es = await makeKey('ES256', 'es1');
  writeFileSync(join(dir, 'jwks.json'), jwks(es));
  cb = createServer((rq, rs) => {
    let body = '';
    rq.on('data', (d) => { body += d; });
    rq.on('end', () => {
      const j = JSON.parse(body);
      cbSeen.push(j);
      if (j.user === 'cb-hang') return;
      if (j.user === 'cb-allow') { rs.writeHead(204); rs.end(); return; }
      rs.writeHead(j.user || j.token ? 403 : 401); rs.end();
    });
  });
  await new Promise<void>((r) => cb.listen(0, '127.0.0.1', r));
  const cbPort = (cb.address() as { port: number }).port;
  const pubHash = createHash('sha256').update('pw1').digest('hex');
  S = await startServer([rtmp, flv, hls, mp4], `  auth:
    users:
      - user: pubber
        pass: "sha256:${pubHash}"
        permissions:
          - {action: publish, path: "live/"}
      - user: viewer
        pass: vpw
        permissions:
          - {action: read, path: "live/*"}
      - user: lan
        pass: lanpw
        ips: ["10.0.0.0/8"]
        permissions:
          - {action: read, path: ""}
      - user: local
        pass: lpw
        ips: ["127.0.0.0/8", "::1"]
        permissions:
          - {action: read, path: ""}
    jwt:
      secret: ${HS}
      jwks: ${JSON.stringify(join(dir, 'jwks.json'))}
      issuer: m7s-test
      audience: players
    http:
      address: http://127.0.0.1:${cbPort}/auth
      timeout: 500ms
      cache: 0s
rtmp:
  tcp:
    listenaddr: "127.0.0.1:0"
hls:
  fragment: 1s
`);
  rtmpBase = `rtmp://127.0.0.1:${S.port('rtmp', 'tcp')}`;
  // A source for the reads: an internal job (type pull) does not pass the client permission gate.
  const pub = await S.server.engine.publish('live/a', { protocol: 'test', type: 'pull' });
  src = new SyntheticSource(pub, { fps: 25, gop: 25, videoBytes: 800, sampleRate: 44100 });
  src.start();
});

after(async () => {
  src?.stop();
  await S?.stop();
  cb?.closeAllConnections?.();
  await new Promise((r) => cb.close(r));
  rmSync(dir, { recursive: true, force: true });
});

/** Connect to `rtmp://host:port/app[?query]`: the query goes on the tcUrl, as ffmpeg and OBS send it. */
async function rtmpClient(url: string): Promise<RtmpClient> {
  const [base, query] = url.split('?');
  const u = parseRtmpUrl(base + '/_');
  if (query) u.tcUrl += '?' + query;
  const conn = await rt.connectTcp({ host: u.host, port: u.port });
  const c = new RtmpClient(conn, Logger.silent(), 16 << 20);
  await c.open(u, 4096, 5000);
  return c;
}

/** publish or play `name` over RTMP with the connect URL `url`; resolves with the status code or the error text. */
async function rtmpTry(url: string, cmd: 'publish' | 'play', name: string): Promise<string> {
  const c = await rtmpClient(url);
  try {
    const sid = (await c.call(5000, 'createStream', null)).args[0] as number;
    if (cmd === 'publish') c.sendCommand(sid, 'publish', 0, null, name, 'live');
    else c.sendCommand(sid, 'play', 0, null, name, -2000);
    const info = await c.waitStatus(sid, cmd === 'publish' ? /Publish\.Start$/ : /Play\.Start$/, 5000);
    return String(info.code);
  } catch (err) {
    return (err as Error).message;
  } finally { c.close(); }
}

async function flvStatus(path: string, headers: Record<string, string> = {}): Promise<{ status: number; head: string; ms: number }> {
  const t0 = Date.now();
  const r = await fetch(`${S.http}/flv/${path}`, { headers });
  let head = '';
  if (r.status === 200) {
    const rd = r.body!.getReader();
    const { value } = await rd.read();
    head = new TextDecoder().decode(value!.subarray(0, 3));
    await rd.cancel();
  } else await r.body?.cancel();
  return { status: r.status, head, ms: Date.now() - t0 };
}

describe('permissions over RTMP', () => {
  it('user/password: no or wrong credentials refused, ?user=&pass= on the stream name accepted', async () => {
    assert.match(await rtmpTry(`${rtmpBase}/live`, 'publish', 'r1'), /Publish\.Unauthorized/);
    assert.match(await rtmpTry(`${rtmpBase}/live`, 'publish', 'r1?user=pubber&pass=nope'), /Publish\.Unauthorized.*bad credentials/);
    assert.equal(await rtmpTry(`${rtmpBase}/live`, 'publish', 'r1?user=pubber&pass=pw1'), 'NetStream.Publish.Start');
  });

  it('credentials on the tcUrl (app query) work too, and are not shown by the API', async () => {
    const c = await rtmpClient(`${rtmpBase}/live?user=pubber&pass=pw1`);
    try {
      const sid = (await c.call(5000, 'createStream', null)).args[0] as number;
      c.sendCommand(sid, 'publish', 0, null, 'r2', 'live');
      await c.waitStatus(sid, /Publish\.Start$/, 5000);
      const list = await (await fetch(`${S.http}/rtmp/api/list`)).text();
      assert.ok(!list.includes('pw1'), 'no password in /rtmp/api/list');
      assert.ok(!JSON.stringify(S.server.engine.getStream('live/r2')!.publisher!.args).includes('pw1'), 'pass not kept in publisher args');
    } finally { c.close(); }
  });

  it('action: a reader may not publish; path pattern: the publisher only under live/', async () => {
    assert.match(await rtmpTry(`${rtmpBase}/live`, 'publish', 'r3?user=viewer&pass=vpw'), /Publish\.Unauthorized.*not allowed to publish/);
    assert.match(await rtmpTry(`${rtmpBase}/other`, 'publish', 'r3?user=pubber&pass=pw1'), /Publish\.Unauthorized.*not allowed/);
  });

  it('play: viewer allowed, anonymous refused, IP range (10/8) refused from 127.0.0.1, 127/8 allowed', async () => {
    assert.equal(await rtmpTry(`${rtmpBase}/live?user=viewer&pass=vpw`, 'play', 'a'), 'NetStream.Play.Start');
    assert.match(await rtmpTry(`${rtmpBase}/live`, 'play', 'a'), /Play\.Unauthorized/);
    assert.match(await rtmpTry(`${rtmpBase}/live`, 'play', 'a?user=lan&pass=lanpw'), /Play\.Unauthorized.*not allowed/);
    assert.equal(await rtmpTry(`${rtmpBase}/live`, 'play', 'a?user=local&pass=lpw'), 'NetStream.Play.Start');
  });

  it('JWT: HS256 as ?jwt= and as pass=, ES256 (JWKS) on the tcUrl; claims limit the path', async () => {
    const t = await hsToken([{ action: 'read', path: 'live/a' }]);
    assert.equal(await rtmpTry(`${rtmpBase}/live`, 'play', `a?jwt=${t}`), 'NetStream.Play.Start');
    assert.equal(await rtmpTry(`${rtmpBase}/live`, 'play', `a?user=x&pass=${t}`), 'NetStream.Play.Start');
    const e = await signWith(es, { iss: 'm7s-test', aud: 'players', exp: nowSec() + 60, m7s_permissions: [{ action: 'publish', path: 'live/j*' }] });
    assert.equal(await rtmpTry(`${rtmpBase}/live?jwt=${e}`, 'publish', 'j1'), 'NetStream.Publish.Start');
    assert.match(await rtmpTry(`${rtmpBase}/live?jwt=${e}`, 'publish', 'k1'), /Publish\.Unauthorized/);
    const wrongAud = await hsToken([{ action: 'read', path: '' }], { aud: 'other' });
    assert.match(await rtmpTry(`${rtmpBase}/live`, 'play', `a?jwt=${wrongAud}`), /Play\.Unauthorized.*audience/);
  });

  it('HTTP callback: allow and deny', async () => {
    assert.equal(await rtmpTry(`${rtmpBase}/live`, 'play', 'a?user=cb-allow&pass=x&foo=1&secret=zz'), 'NetStream.Play.Start');
    const j = cbSeen.findLast((x) => x.user === 'cb-allow');
    assert.deepEqual({ ...j, ip: j.ip.replace(/^::ffff:/, '') }, { user: 'cb-allow', password: 'x', token: '', ip: '127.0.0.1', action: 'read', path: 'live/a', protocol: 'rtmp', query: { user: 'cb-allow', foo: '1' } },
      'the callback gets the peer address and the query without pass/jwt/secret');
    assert.match(await rtmpTry(`${rtmpBase}/live`, 'play', 'a?user=cb-deny&pass=x'), /Play\.Unauthorized.*HTTP 403/);
  });
});

describe('permissions over HTTP-FLV', () => {
  it('anonymous 401; Basic user 200 with FLV bytes; wrong password 401', async () => {
    assert.equal((await flvStatus('live/a.flv')).status, 401);
    const ok = await flvStatus('live/a.flv', basic('viewer', 'vpw'));
    assert.deepEqual([ok.status, ok.head], [200, 'FLV']);
    assert.equal((await flvStatus('live/a.flv', basic('viewer', 'nope'))).status, 401);
  });

  it('IP range: the transport peer (not X-Forwarded-For) is checked', async () => {
    assert.equal((await flvStatus('live/a.flv', { ...basic('lan', 'lanpw'), 'x-forwarded-for': '10.1.1.1' })).status, 403);
    assert.equal((await flvStatus('live/a.flv', basic('local', 'lpw'))).status, 200);
  });

  it('JWT: Bearer HS256, ?jwt= ES256 via JWKS; a token for another path is 403', async () => {
    assert.equal((await flvStatus('live/a.flv', { authorization: 'Bearer ' + await hsToken([{ action: 'read', path: 'live/' }]) })).status, 200);
    const e = await signWith(es, { iss: 'm7s-test', aud: 'players', exp: nowSec() + 60, m7s_permissions: [{ action: 'read', path: '~live/[a-c]' }] });
    assert.equal((await flvStatus(`live/a.flv?jwt=${e}`)).status, 200);
    const other = await signWith(es, { iss: 'm7s-test', aud: 'players', exp: nowSec() + 60, m7s_permissions: [{ action: 'read', path: 'live/b' }] });
    assert.equal((await flvStatus(`live/a.flv?jwt=${other}`)).status, 403);
    const expired = await hsToken([{ action: 'read', path: '' }], { exp: nowSec() - 100 });
    assert.equal((await flvStatus('live/a.flv', { authorization: 'Bearer ' + expired })).status, 401);
  });

  it('callback: allow 200, deny 403, no answer within the timeout 403', async () => {
    assert.equal((await flvStatus('live/a.flv', basic('cb-allow', 'x'))).status, 200);
    assert.equal((await flvStatus('live/a.flv', basic('cb-deny', 'x'))).status, 403);
    const hang = await flvStatus('live/a.flv', basic('cb-hang', 'x'));
    console.log(`FLV play with a hanging auth callback: ${hang.status} after ${hang.ms} ms (timeout 500 ms)`);
    assert.equal(hang.status, 403);
    assert.ok(hang.ms >= 450 && hang.ms < 5000, `${hang.ms} ms`);
  });
});

describe('permissions over HLS', () => {
  it('playlist: anonymous 401, Basic 200; ?jwt= 200 and carried to segments, which are checked too', async () => {
    const r0 = await fetch(`${S.http}/hls/live/a.m3u8`);
    await r0.body?.cancel();
    assert.equal(r0.status, 401);
    const r1 = await fetch(`${S.http}/hls/live/a.m3u8`, { headers: basic('viewer', 'vpw') });
    assert.equal(r1.status, 200, await r1.clone().text());
    await r1.body?.cancel();
    const t = await hsToken([{ action: 'read', path: 'live/a' }]);
    const r2 = await fetch(`${S.http}/hls/live/a.m3u8?jwt=${t}`);
    assert.equal(r2.status, 200);
    const text = await r2.text();
    const seg = text.split('\n').find((l) => l && !l.startsWith('#'))!;
    assert.ok(seg.includes(`jwt=${t}`), `segment URI carries the token: ${seg.slice(0, 60)}`);
    const segUrl = new URL(seg, `${S.http}/hls/live/a.m3u8`);
    const withTok = await fetch(segUrl);
    assert.equal(withTok.status, 200);
    await withTok.body?.cancel();
    const bare = await fetch(segUrl.origin + segUrl.pathname);
    await bare.body?.cancel();
    assert.equal(bare.status, 401, 'a segment without credentials');
    // The shared segmenter runs now: a later anonymous or wrong-path player is still refused.
    const r3 = await fetch(`${S.http}/hls/live/a.m3u8`);
    await r3.body?.cancel();
    assert.equal(r3.status, 401);
    const wrong = await hsToken([{ action: 'read', path: 'live/zzz' }]);
    const r4 = await fetch(`${S.http}/hls/live/a.m3u8?jwt=${wrong}`);
    await r4.body?.cancel();
    assert.equal(r4.status, 403);
  });
});

describe('permissions over fMP4 and WS-FLV', () => {
  it('fMP4: anonymous 401, Basic 200; WS-FLV: refused without credentials, ?jwt= accepted', async () => {
    const r0 = await fetch(`${S.http}/mp4/live/a.mp4`);
    await r0.body?.cancel();
    assert.equal(r0.status, 401);
    const r1 = await fetch(`${S.http}/mp4/live/a.mp4`, { headers: basic('viewer', 'vpw') });
    assert.equal(r1.status, 200);
    await r1.body?.cancel();
    const WS = (globalThis as any).WebSocket ?? (await import('ws')).WebSocket;
    const ws = (q: string) => new Promise<{ code: number; bytes: number }>((resolve) => {
      const w = new WS(`${S.http.replace('http', 'ws')}/flv/live/a.flv${q}`);
      let bytes = 0;
      w.binaryType = 'arraybuffer';
      w.onmessage = (e: { data: ArrayBuffer }) => { bytes += e.data.byteLength; if (bytes > 0) w.close(1000); };
      w.onclose = (e: { code: number }) => resolve({ code: e.code, bytes });
      w.onerror = () => {};
    });
    const anon = await ws('');
    assert.equal(anon.bytes, 0);
    assert.equal(anon.code, 4401);
    const t = await hsToken([{ action: 'read', path: 'live/a' }]);
    const ok = await ws(`?jwt=${t}`);
    assert.ok(ok.bytes > 0, 'media over WS-FLV with a token');
  });
});
