// Issue 9 regressions and the secure defaults: the API guard (faults 1 and 4), secrets (2), prototype
// pollution (3), the outbound policy (5), safe config writes (9), query overrides (10). Every test runs
// the real server on whichever runtime runs the file and talks to it over 127.0.0.1.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { currentRuntime } from '../adapters/current.ts';
import { Server } from '../src/server.ts';
import { Logger } from '../src/log.ts';
import { definePlugin } from '../src/plugin.ts';
import { canonicalPath, canonicalPathFull, isGuardedPath } from '../src/http/guard.ts';
import { prng } from './helpers/fuzz.ts';
import { urlParts } from '../src/http/url.ts';
import { IpSet, parseIp } from '../src/net/ip.ts';
import { SyntheticSource } from '../src/core/synthetic.ts';
import flv from '../plugins/flv/index.ts';
import hls from '../plugins/hls/index.ts';
import rtmp from '../plugins/rtmp/index.ts';
import mp4 from '../plugins/mp4/index.ts';

const rt = await currentRuntime();

/** A plugin with an API route and a plain route, like the real ones. */
const demo = definePlugin({
  name: 'demo',
  defaults: {},
  setup(ctx) {
    ctx.http.get('/api/secret', (c) => ctx.ok(c, { secret: 42 }));
    ctx.http.post('/api/do', (c) => ctx.ok(c, { done: true }));
    ctx.http.get('/open', (c) => ctx.ok(c, { open: true }));
  },
});

const PLUGINS = [demo, flv, hls, rtmp, mp4];

function yaml(http: Record<string, unknown>, extra = ''): string {
  const lines = Object.entries({ listenaddr: '127.0.0.1:0', ...http }).map(([k, v]) => `    ${k}: ${JSON.stringify(v)}`);
  // Plugin listeners on ephemeral ports so parallel runs do not collide.
  return `global:\n  http:\n${lines.join('\n')}\nrtmp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\n${extra}`;
}

async function start(configText: string): Promise<Server> {
  return Server.start({ runtime: rt, plugins: PLUGINS, configText, logger: Logger.silent() });
}

/** One raw HTTP/1.1 request (the path goes on the wire exactly as given: no client-side normalising). */
async function raw(port: number, method: string, path: string, headers: Record<string, string> = {}, body = ''): Promise<{ status: number; text: string }> {
  const conn = await rt.connectTcp({ host: '127.0.0.1', port });
  const chunks: Uint8Array[] = [];
  const done = new Promise<void>((resolve) => { conn.onClose = () => resolve(); });
  conn.onData = (d) => { chunks.push(d); };
  const h = { host: `127.0.0.1:${port}`, connection: 'close', ...headers, ...(body ? { 'content-length': String(new TextEncoder().encode(body).length) } : {}) };
  conn.write(new TextEncoder().encode(`${method} ${path} HTTP/1.1\r\n${Object.entries(h).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n${body}`));
  const t = setTimeout(() => conn.destroy(), 10_000);
  await done;
  clearTimeout(t);
  const text = new TextDecoder().decode(concat(chunks));
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  return { status: m ? +m[1] : 0, text };
}
const concat = (a: Uint8Array[]) => {
  const out = new Uint8Array(a.reduce((n, x) => n + x.length, 0));
  let o = 0;
  for (const x of a) { out.set(x, o); o += x.length; }
  return out;
};

/**
 * Refused by the guard (`status`), rejected as malformed by the HTTP server (400), or matched by no
 * route at all (the app's catch-all 404). Anything else reached a handler.
 */
function refused(res: { status: number; text: string }, status: number): boolean {
  if (res.status === status || res.status === 400) return true;
  return res.status === 404 && /"message":"no route for /.test(res.text);
}

/** Every API route of the running app, with sample values for its parameters. */
function apiRoutes(server: Server): { method: string; path: string }[] {
  const seen = new Set<string>();
  const out: { method: string; path: string }[] = [];
  for (const r of server.app.routes) {
    if (!/\/api(\/|$)/.test(r.path)) continue;
    const path = r.path.replace(/:path\{[^}]*\}/g, 'live/x').replace(/:id/g, '1').replace(/:name\?/g, 'global').replace(/\*$/, 'x').replace(/:[a-z]+/gi, 'x');
    const method = r.method === 'ALL' ? 'GET' : r.method;
    const k = method + ' ' + path;
    if (!seen.has(k)) { seen.add(k); out.push({ method, path }); }
  }
  return out;
}

/** Spellings of one path that a router might decode to the same route. Seeded, so failures repeat. */
function variants(path: string, seed: number): string[] {
  let s = seed >>> 0;
  const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const enc = (ch: string) => '%' + ch.charCodeAt(0).toString(16).padStart(2, '0');
  const out = new Set<string>();
  const segs = path.split('/');
  out.add(path);
  out.add(path + '/');
  out.add('/' + path);
  out.add(path.replace(/\//g, '//'));
  out.add(path.replace('/api', '/./api'));
  out.add(path.replace('/api', '/zz/../api'));
  out.add(path.replace('/api', '/%2e/api'));
  out.add(path.replace('/api', '/zz/%2e%2e/api'));
  out.add(path.replace('/api', '/API'));
  out.add(path.replace('/api', '/Api'));
  out.add(path.toUpperCase());
  out.add(path.replace('/api', '/%61pi'));
  out.add(path.replace('/api', '/%2561pi'));
  out.add(path.replace('/api', '/%252561pi'));
  out.add(path.replace('/api', '/a%50i'));
  out.add(path.replace('/api', '/a%70i'));
  out.add(path.replace('/api/', '/api%2f'));
  out.add(path.replace('/api/', '/api%2F'));
  out.add(path.replace(/\//g, '\\'));
  out.add(path.replace('/api', '\\api'));
  out.add(path + '%00');
  out.add(path + '?x=1');
  out.add(path + '#frag');
  out.add(path.replace('/api', '/api;x=1'));
  if (segs.length > 2 && segs[1] !== 'api') {
    out.add('/' + segs[1].split('').map(enc).join('') + '/' + segs.slice(2).join('/'));
    out.add('/' + segs[1].toUpperCase() + '/' + segs.slice(2).join('/'));
  }
  // Random per-character encodings (single and double) and case flips.
  for (let n = 0; n < 24; n++) {
    let p = '';
    for (const ch of path) {
      const r = rnd();
      if (ch !== '/' && r < 0.25) p += enc(ch);
      else if (ch !== '/' && r < 0.35) p += '%25' + ch.charCodeAt(0).toString(16);
      else if (r < 0.5) p += rnd() < 0.5 ? ch.toUpperCase() : ch.toLowerCase();
      else p += ch;
    }
    out.add(p);
  }
  return [...out];
}

describe('security: API guard (faults 1 and 4, secure defaults)', () => {
  it('canonicalPath and isGuardedPath see through encodings', () => {
    assert.equal(canonicalPath('/%61pi/config/get'), '/api/config/get');
    assert.equal(canonicalPath('/%2561pi//x/./y/../z/'), '/api/x/z');
    assert.equal(canonicalPath('\\FLV\\API\\pull'), '/flv/api/pull');
    for (const p of ['/api', '/API/x', '/%61pi', '/fl%76/api/pull', '/rtmp/%61pi/list', '/x/../api/config/get', '//api/sysinfo', '/hls/Api/', '/demo/api%2fsecret']) {
      assert.ok(isGuardedPath(p), p);
    }
    for (const p of ['/flv/live/x.flv', '/hls/live/x.m3u8', '/demo/open', '/apix', '/a/b/api']) assert.ok(!isGuardedPath(p), p);
  });

  it('canonicalPath\'s shortcut for plain paths gives what the whole algorithm gives (seeded random paths)', () => {
    const rnd = prng(19);
    const atoms = ['/', '/', '/', 'a', 'B', 'api', 'API', 'flv', '.', '..', '%2e', '%2E', '%2f', '%61', '%25', '%', '\\', ' ', '\t', '\u00a0', 'x.flv', '.hidden', 'é', 'İ'];
    let plain = 0;
    for (let i = 0; i < 20_000; i++) {
      let p = rnd() < 0.9 ? '/' : '';
      const n = 1 + Math.floor(rnd() * 8);
      for (let k = 0; k < n; k++) p += atoms[Math.floor(rnd() * atoms.length)];
      if (/^(?:\/[^/%\\\s.][^/%\\\s]*)+\/?$/.test(p)) plain++;
      assert.equal(canonicalPath(p), canonicalPathFull(p), JSON.stringify(p));
    }
    assert.ok(plain > 1000, `${plain} of the paths took the shortcut`);
    for (const p of ['/flv/live/bench.flv', '/API/', '/a/b/', '/', '']) assert.equal(canonicalPath(p), canonicalPathFull(p), p);
  });

  it('urlParts gives new URL()\'s pathname and search, with or without its shortcut (seeded random URLs)', () => {
    const rnd = prng(20);
    const atoms = ['/', '/', 'a', 'B', 'live', '.', '..', '%2e', '%2E', '%', '%41', '\\', ' ', '?', '??', '=', '&', '#', 'x.flv',
      '.flv', 'é', '"', '<', '{', '|', '^', '`', '\t', '~', ':', '@', '!', "'", '(', '*', ';', ','];
    let n = 0;
    for (let i = 0; i < 20_000; i++) {
      let s = 'http://127.0.0.1:8080' + (rnd() < 0.9 ? '/' : '');
      const k = 1 + Math.floor(rnd() * 8);
      for (let j = 0; j < k; j++) s += atoms[Math.floor(rnd() * atoms.length)];
      let u: URL;
      try { u = new URL(s); } catch { continue; }
      n++;
      assert.deepEqual(urlParts(s), { pathname: u.pathname, search: u.search }, JSON.stringify(s));
    }
    assert.ok(n > 15_000);
    assert.deepEqual(urlParts('http://h/flv/live/x.flv?token=a%20b&x=1'), { pathname: '/flv/live/x.flv', search: '?token=a%20b&x=1' });
  });

  it('IP ranges: loopback is 127.0.0.0/8 and ::1, IPv4-mapped forms included', () => {
    const lo = new IpSet(['loopback']);
    for (const a of ['127.0.0.1', '127.0.0.2', '127.255.255.254', '::1', '::ffff:127.0.0.1', '[::1]']) assert.ok(lo.has(a), a);
    for (const a of ['10.0.0.1', '::2', '128.0.0.1', 'localhost', '', '0x7f.1', '::ffff:10.0.0.1']) assert.ok(!lo.has(a), a);
    const p = new IpSet(['private', '192.0.2.0/24']);
    assert.ok(p.has('172.31.1.1') && p.has('fd00::1') && p.has('192.0.2.9') && !p.has('172.32.0.1'));
    assert.equal(parseIp('1.2.3'), undefined);
    assert.throws(() => new IpSet(['10.0.0.0/33']));
  });

  describe('with credentials set: no spelling of a guarded route gets in without them', () => {
    let server: Server;
    before(async () => { server = await start(yaml({ username: 'admin', password: 'pw' })); });
    after(() => server.stop());

    it('the four bypasses from the report answer 401', async () => {
      const port = server.http!.port;
      for (const [m, p] of [['GET', '/%61pi/config/get'], ['POST', '/%61pi/config/modify'], ['GET', '/fl%76/api/list'], ['GET', '/rtmp/%61pi/list']]) {
        const r = await raw(port, m, p, m === 'POST' ? { 'content-type': 'application/json' } : {}, m === 'POST' ? '{"global":{"loglevel":"debug"}}' : '');
        assert.equal(r.status, 401, `${m} ${p}: ${r.text.slice(0, 200)}`);
      }
      assert.equal(server.config.global.loglevel, 'info');
    });

    it('fuzz: encodings, double encodings, case, slashes and dot segments over every API route', async () => {
      const port = server.http!.port;
      const routes = apiRoutes(server);
      assert.ok(routes.length >= 15, `found ${routes.length} API routes`);
      const names = routes.map((r) => r.path);
      for (const want of ['/api/config/modify', '/flv/api/pull', '/hls/api/pull', '/rtmp/api/push', '/mp4/api/list', '/demo/api/secret']) assert.ok(names.includes(want), want);
      let tried = 0;
      const leaks: string[] = [];
      for (const [i, r] of routes.entries()) {
        for (const v of variants(r.path, i + 1)) {
          const res = await raw(port, r.method, v, r.method === 'POST' ? { 'content-type': 'application/json' } : {}, r.method === 'POST' ? '{}' : '');
          tried++;
          if (!refused(res, 401)) leaks.push(`${r.method} ${v} → ${res.status} ${res.text.split('\r\n\r\n')[1]?.slice(0, 80)}`);
        }
      }
      console.log(`[security] fuzz: ${tried} requests over ${routes.length} API routes, ${leaks.length} got through`);
      assert.deepEqual(leaks, [], `${leaks.length} of ${tried} requests got through`);
      // And the right credentials still get in (the guard is not simply closed).
      const ok = await raw(port, 'GET', '/%61pi/sysinfo', { authorization: 'Basic ' + btoa('admin:pw') });
      assert.equal(ok.status, 200);
      const bad = await raw(port, 'GET', '/api/sysinfo', { authorization: 'Basic ' + btoa('admin:pX') });
      assert.equal(bad.status, 401);
    });
  });

  describe('without credentials: only allowed peers', () => {
    let open: Server; // default apiallow: loopback
    let closed: Server; // apiallow excludes 127.0.0.1: this test client stands for a remote one
    before(async () => {
      open = await start(yaml({}));
      closed = await start(yaml({ apiallow: ['192.0.2.0/24'] }));
    });
    after(async () => { await open.stop(); await closed.stop(); });

    it('a peer outside apiallow gets 403 on every spelling of every API route; players still play', async () => {
      const port = closed.http!.port;
      const leaks: string[] = [];
      for (const [i, r] of apiRoutes(closed).entries()) {
        for (const v of variants(r.path, 100 + i)) {
          const res = await raw(port, r.method, v, r.method === 'POST' ? { 'content-type': 'application/json' } : {}, r.method === 'POST' ? '{}' : '');
          if (!refused(res, 403)) leaks.push(`${r.method} ${v} → ${res.status} ${res.text.split('\r\n\r\n')[1]?.slice(0, 80)}`);
        }
      }
      assert.deepEqual(leaks, []);
      const r = await raw(port, 'POST', '/api/config/modify', { 'content-type': 'application/json' }, '{"global":{"http":{"apiallow":["0.0.0.0/0"]}}}');
      assert.equal(r.status, 403);
      assert.deepEqual(closed.config.global.http.apiallow, ['192.0.2.0/24']);
      const play = await raw(port, 'GET', '/demo/open');
      assert.equal(play.status, 200, 'non-API routes are not guarded');
    });

    it('the peer address comes from the runtime: 127.0.0.1 is in the default range', async () => {
      const r = await raw(open.http!.port, 'GET', '/api/sysinfo');
      assert.equal(r.status, 200, r.text.slice(0, 300));
      assert.match(r.text, /"code":0/);
      // Listening on every interface (dual-stack: the runtime may report ::ffff:127.0.0.1): still local.
      const all = await start(yaml({ listenaddr: ':0' }));
      try {
        const r2 = await raw(all.http!.port, 'GET', '/api/sysinfo');
        assert.equal(r2.status, 200, r2.text.slice(0, 300));
      } finally { await all.stop(); }
    });

    it('a connection from 127.0.0.2 is refused when apiallow is 127.0.0.1/32 (where the OS lets us bind it)', async (t) => {
      const s = await start(yaml({ apiallow: ['127.0.0.1/32'] }));
      try {
        const port = s.http!.port;
        const get = (localAddress: string) => new Promise<number>((resolve, reject) => {
          const sock = net.connect({ host: '127.0.0.1', port, localAddress }, () => {
            sock.write(`GET /api/sysinfo HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\nconnection: close\r\n\r\n`);
          });
          let text = '';
          sock.on('data', (d) => { text += d; });
          sock.on('error', reject);
          sock.on('close', () => resolve(+(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0)));
        });
        let from2: number;
        try { from2 = await get('127.0.0.2'); } catch (err) { t.skip(`cannot bind 127.0.0.2 here: ${(err as Error).message}`); return; }
        assert.equal(from2, 403);
        assert.equal(await get('127.0.0.1'), 200);
      } finally { await s.stop(); }
    });

    it('cross-site and rebinding requests are refused even from loopback', async () => {
      const port = open.http!.port;
      const body = '{"global":{"loglevel":"debug"}}';
      const json = { 'content-type': 'application/json' };
      // A page elsewhere: its browser sends Origin / Sec-Fetch-Site.
      assert.equal((await raw(port, 'POST', '/api/config/modify', { ...json, origin: 'http://evil.example' }, body)).status, 403);
      assert.equal((await raw(port, 'POST', '/api/config/modify', { ...json, 'sec-fetch-site': 'cross-site' }, body)).status, 403);
      assert.equal((await raw(port, 'GET', '/api/config/get', { 'sec-fetch-site': 'same-site' })).status, 403);
      assert.equal((await raw(port, 'GET', '/%61pi/Config/get', { origin: 'null' })).status, 403);
      // A web player elsewhere may read stream information (codecs for MSE), still only from an allowed peer.
      assert.equal((await raw(port, 'GET', '/api/stream/list', { origin: 'http://player.example', 'sec-fetch-site': 'cross-site' })).status, 200);
      assert.equal((await raw(port, 'POST', '/api/stream/stop/live/x', { origin: 'http://player.example', 'sec-fetch-site': 'cross-site' })).status, 403);
      // The no-preflight body types a page can send.
      for (const ct of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', '']) {
        const r = await raw(port, 'POST', '/api/config/modify', ct ? { 'content-type': ct } : {}, body);
        assert.equal(r.status, 415, ct);
      }
      // DNS rebinding: evil.example resolved to 127.0.0.1, so the browser's Host is the attacker's name.
      assert.equal((await raw(port, 'GET', '/api/sysinfo', { host: `evil.example:${port}` })).status, 403);
      assert.equal(open.config.global.loglevel, 'info', 'nothing was applied');
      // Same-origin JSON from a local page and a configured admin origin are fine.
      const same = await raw(port, 'POST', '/api/config/modify?save=false', { ...json, origin: `http://127.0.0.1:${port}`, 'sec-fetch-site': 'same-origin' }, '{"global":{"loglevel":"warn"}}');
      assert.equal(same.status, 200, same.text);
      assert.equal((await raw(port, 'GET', '/api/sysinfo', { host: `localhost:${port}` })).status, 200);
    });
  });
});

/** A server with a config file (not watched) in `dir`. */
async function startWithFile(dir: string, text: string, logger = Logger.silent()): Promise<Server> {
  const file = join(dir, 'config.yaml');
  writeFileSync(file, text);
  return Server.start({ runtime: rt, plugins: PLUGINS, configFile: file, watch: false, logger });
}

async function modify(s: Server, body: string, ct = 'application/json', query = ''): Promise<{ status: number; body: any }> {
  const r = await fetch(`http://127.0.0.1:${s.http!.port}/api/config/modify${query}`, { method: 'POST', headers: { 'content-type': ct }, body });
  return { status: r.status, body: await r.json() };
}

describe('security: config API (faults 2, 3, 4, 9)', () => {
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'm7s-sec-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('fault 2: secrets are redacted in config/get (JSON and YAML), modify answers and log lines', async () => {
    const lines: string[] = [];
    const logger = Logger.create({ pretty: false, write: (l) => { lines.push(l); } }, 'info');
    const s = await startWithFile(dir, yaml({ username: 'admin', password: 'hunter2' }, 'flv:\n  publish:\n    key: streamkey123\n'), logger);
    try {
      const auth = { authorization: 'Basic ' + btoa('admin:hunter2') };
      const base = `http://127.0.0.1:${s.http!.port}`;
      const all = await (await fetch(`${base}/api/config/get`, { headers: auth })).text();
      assert.ok(!all.includes('hunter2') && !all.includes('streamkey123'), all.slice(0, 200));
      const g = JSON.parse(all).data.config.global.http;
      assert.equal(g.password, '***');
      assert.equal(g.username, 'admin', 'a user name is not a secret');
      assert.equal(JSON.parse(all).data.config.global.publish.key, '', 'an unset key stays visibly unset');
      const y = await (await fetch(`${base}/api/config/get/flv?format=yaml`, { headers: auth })).text();
      assert.ok(!y.includes('streamkey123') && y.includes('***'), y.slice(0, 300));
      // Changing a secret: the answer does not echo it; sending *** back keeps the current value.
      const r = await fetch(`${base}/api/config/modify`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ flv: { publish: { key: 'newkey456' } } }) });
      const txt = await r.text();
      assert.equal(r.status, 200, txt);
      assert.ok(!txt.includes('newkey456') && !txt.includes('streamkey123'), txt);
      const fileBefore = readFileSync(join(dir, 'config.yaml'), 'utf8');
      const back = await fetch(`${base}/api/config/modify`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ global: { http: { password: '***' } } }) });
      assert.equal(back.status, 200);
      assert.equal(s.config.global.http.password, 'hunter2');
      assert.equal(readFileSync(join(dir, 'config.yaml'), 'utf8'), fileBefore, 'the file keeps its http section');
      s.logger.warn('pull failed', { url: 'rtmp://u:topsecret@10.0.0.1/live/x?secret=abc123&expire=1', password: 'pw1' });
      const log = lines.join('\n');
      for (const secret of ['hunter2', 'streamkey123', 'newkey456', 'topsecret', 'abc123', 'pw1']) assert.ok(!log.includes(secret), `${secret} in log`);
      assert.match(log, /expire=1/, 'harmless args stay');
    } finally { await s.stop(); }
  });

  it('fault 3: __proto__, constructor and prototype keys are refused before anything is merged', async () => {
    const s = await startWithFile(dir, yaml({}));
    try {
      for (const body of [
        '{"__proto__":{"polluted":"yes"}}',
        '{"global":{"__proto__":{"polluted":"yes"}}}',
        '{"flv":{"pull":{"__proto__":{"polluted":"yes"}}}}',
        '{"constructor":{"prototype":{"polluted":"yes"}}}',
        '__proto__:\n  polluted: yes\n',
      ]) {
        const r = await modify(s, body, body.startsWith('{') ? 'application/json' : 'application/yaml');
        assert.equal(r.status, 400, body);
        assert.equal(({} as any).polluted, undefined, `polluted by ${body}`);
      }
      // The server is fine afterwards: a normal change works and logs carry no stray keys.
      const ok = await modify(s, '{"global":{"loglevel":"warn"}}', 'application/json', '?save=false');
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      assert.equal(s.config.global.loglevel, 'warn');
    } finally { await s.stop(); }
  });

  it('fault 4: unknown sections and keys are refused, not saved', async () => {
    const s = await startWithFile(dir, yaml({}));
    try {
      const file = join(dir, 'config.yaml');
      const before = readFileSync(file, 'utf8');
      let r = await modify(s, '{"evil":{"x":"<script>alert(1)</script>"}}');
      assert.equal(r.status, 400);
      assert.match(r.body.data.errors[0], /unknown config section/);
      r = await modify(s, '{"flv":{"nosuchkey":1}}');
      assert.equal(r.status, 400, JSON.stringify(r.body));
      r = await modify(s, '{"global":{"http":{"apiallow":["not-an-ip"]}}}');
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(readFileSync(file, 'utf8'), before, 'config.yaml untouched');
      assert.equal(s.config.evil, undefined);
    } finally { await s.stop(); }
  });

  describe('fault 9: a failed save changes nothing', () => {
    const mounted: string[] = [];
    /** A tmpfs of `size` at a new directory, or a reason why not. */
    const tmpfs = (size: string): string | { skip: string } => {
      const d = mkdtempSync(join(tmpdir(), 'm7s-fs-'));
      try {
        execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', d], { stdio: 'ignore' });
      } catch (err) {
        rmSync(d, { recursive: true, force: true });
        return { skip: `cannot mount a tmpfs here (needs root on Linux): ${(err as Error).message.split('\n')[0]}` };
      }
      mounted.push(d);
      return d;
    };
    after(() => {
      for (const d of mounted) {
        try { execFileSync('umount', ['-l', d], { stdio: 'ignore' }); } catch { /* already gone */ }
        rmSync(d, { recursive: true, force: true });
      }
    });

    const check = async (d: string, s: Server, file: string, before: string) => {
      const r = await modify(s, JSON.stringify({ rtmp: { chunksize: 8192 }, global: { loglevel: 'debug', publish: { key: 'x'.repeat(4096) } } }));
      assert.equal(r.status, 500, JSON.stringify(r.body));
      assert.match(r.body.message, /not saved, nothing changed/);
      assert.equal(s.config.global.loglevel, 'info', 'not applied');
      assert.notEqual(s.config.rtmp.chunksize, 8192);
      assert.equal(readFileSync(file, 'utf8'), before, 'config.yaml as it was');
      assert.deepEqual(readdirSync(d).filter((n) => n.endsWith('.tmp')), [], 'no temporary file left');
    };

    it('on a full disk (64 KiB tmpfs)', async (t) => {
      const d = tmpfs('64k');
      if (typeof d !== 'string') { t.skip(d.skip); return; }
      const s = await startWithFile(d, yaml({}, '# ' + 'padding '.repeat(200) + '\n'));
      try {
        const file = join(d, 'config.yaml');
        const before = readFileSync(file, 'utf8');
        // Fill the file system: whatever is left goes into a filler file.
        try { writeFileSync(join(d, 'filler'), new Uint8Array(256 * 1024)); } catch { /* ENOSPC: full, as wanted */ }
        await check(d, s, file, before);
      } finally { await s.stop(); }
    });

    it('on a read-only file system', async (t) => {
      const d = tmpfs('1m');
      if (typeof d !== 'string') { t.skip(d.skip); return; }
      const s = await startWithFile(d, yaml({}));
      try {
        const file = join(d, 'config.yaml');
        const before = readFileSync(file, 'utf8');
        execFileSync('mount', ['-o', 'remount,ro', d], { stdio: 'ignore' });
        await check(d, s, file, before);
      } finally { await s.stop(); }
    });

    it('concurrent modifications are applied and saved one after the other (none lost)', async () => {
      const s = await startWithFile(dir, yaml({}));
      try {
        const rs = await Promise.all([
          modify(s, '{"global":{"loglevel":"warn"}}'),
          modify(s, '{"rtmp":{"chunksize":8192}}'),
          modify(s, '{"flv":{"maxtagsize":524288}}'),
        ]);
        assert.deepEqual(rs.map((r) => r.status), [200, 200, 200]);
        const text = readFileSync(join(dir, 'config.yaml'), 'utf8');
        assert.match(text, /loglevel: warn/);
        assert.match(text, /chunksize: 8192/);
        assert.match(text, /maxtagsize: 524288/);
        assert.equal(s.config.rtmp.chunksize, 8192);
        assert.equal(s.config.flv.maxtagsize, 524288);
      } finally { await s.stop(); }
    });

    it('a successful save replaces the file whole and applies', async () => {
      const s = await startWithFile(dir, yaml({}) + '# keep me\n');
      try {
        const r = await modify(s, '{"global":{"loglevel":"warn"}}');
        assert.equal(r.status, 200, JSON.stringify(r.body));
        assert.equal(r.body.data.saved, true);
        assert.equal(s.config.global.loglevel, 'warn');
        const text = readFileSync(join(dir, 'config.yaml'), 'utf8');
        assert.match(text, /loglevel: warn/);
        assert.match(text, /# keep me/);
      } finally { await s.stop(); }
    });
  });
});

describe('security: per-request query overrides (fault 10)', () => {
  it('a publisher cannot switch off its own publishtimeout (nor other operator limits) with query args', async () => {
    const s = await start(yaml({}).replace('global:\n', 'global:\n  publish:\n    publishtimeout: 600ms\n'));
    try {
      assert.equal(s.config.global.publish.publishtimeout, 600);
      const port = s.http!.port;
      // HTTP-FLV publish: an FLV header, then silence, over a chunked POST that stays open.
      const conn = await rt.connectTcp({ host: '127.0.0.1', port });
      const q = 'publishtimeout=0&pausetimeout=0&idletimeout=0&delayclosetimeout=1h&kickexist=1&maxcount=0&ringbytes=1048576&pubaudio=false';
      const hdr = new Uint8Array([0x46, 0x4c, 0x56, 1, 5, 0, 0, 0, 9, 0, 0, 0, 0]);
      conn.onData = () => {};
      conn.write(new TextEncoder().encode(`POST /flv/live/squat.flv?${q} HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: chunked\r\n\r\n${hdr.length.toString(16)}\r\n`));
      conn.write(hdr);
      conn.write(new TextEncoder().encode('\r\n'));
      let pub;
      for (let i = 0; i < 100 && !(pub = s.engine.getStream('live/squat')?.publisher); i++) await new Promise((r) => setTimeout(r, 20));
      assert.ok(pub, 'the publisher started');
      // The peer address reaches HTTP sessions on every runtime (Runtime.connInfo), for the list and logs.
      const list = await (await fetch(`http://127.0.0.1:${port}/flv/api/list`)).json() as any;
      assert.match(String(list.data.publishers[0]?.remote), /^(::ffff:)?127\.0\.0\.1:\d+$/, JSON.stringify(list.data.publishers));
      assert.match(String(pub.remote), /127\.0\.0\.1:\d+$/);
      const c = pub.config;
      assert.equal(c.publishtimeout, 600, 'publishtimeout is the operator\'s');
      assert.equal(c.pausetimeout, s.config.flv.publish.pausetimeout);
      assert.equal(c.idletimeout, s.config.flv.publish.idletimeout);
      assert.equal(c.delayclosetimeout, s.config.flv.publish.delayclosetimeout);
      assert.equal(c.kickexist, false);
      assert.equal(c.ringbytes, s.config.flv.publish.ringbytes);
      assert.equal(c.pubaudio, false, 'choosing its own tracks is allowed');
      // And it is ended for its silence.
      const t0 = Date.now();
      while (s.engine.getStream('live/squat')?.publisher && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 50));
      assert.equal(s.engine.getStream('live/squat')?.publisher ?? null, null, 'a silent publisher is stopped');
      conn.destroy();
    } finally { await s.stop(); }
  });

  it('a player may choose how it watches, not the limits', async () => {
    const s = await start(yaml({}));
    try {
      const pub = await s.engine.publish('live/w', { protocol: 'test' });
      new SyntheticSource(pub).burst(3);
      const sub = await s.engine.subscribe('live/w?subaudio=false&iframeonly=1&maxcount=100000&key=x&secretargname=zz', { protocol: 'test', sink: { frame: () => 0, flush: () => true } as any });
      assert.equal(sub.config.subaudio, false);
      assert.equal(sub.config.iframeonly, true);
      assert.equal(sub.config.maxcount, s.config.global.subscribe.maxcount);
      assert.equal(sub.config.secretargname, 'secret');
      sub.close();
      pub.close('done');
    } finally { await s.stop(); }
  });
});

describe('security: pull and push policy (fault 5, global.outbound)', () => {
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'm7s-out-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const post = async (s: Server, path: string, body: unknown) => {
    const r = await fetch(`http://127.0.0.1:${s.http!.port}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: r.status, body: await r.json() as any };
  };

  it('by default the API may not read local files nor reach loopback, private or link-local hosts', async () => {
    const s = await start(yaml({}));
    try {
      const answers = new Set<string>();
      const refused = async (path: string, url: string) => {
        const r = await post(s, path, { streamPath: 'x/y' + answers.size, url });
        assert.equal(r.status, 403, `${path} ${url}: ${JSON.stringify(r.body)}`);
        answers.add(r.body.message);
      };
      for (const f of ['/etc/passwd', '/etc/shadow', '/no/such/file.flv', 'file:///etc/hostname', '../../etc/passwd', 'relative.flv']) await refused('/flv/api/pull', f);
      for (const h of ['127.0.0.1:9', 'localhost', '127.1.2.3', '[::1]', '[::ffff:127.0.0.1]', '2130706433', '0x7f000001', '10.1.2.3', '192.168.0.1', '172.16.5.5', '169.254.169.254', '[fe80::1]', '0.0.0.0', '[::]', '100.64.0.1']) {
        await refused('/flv/api/pull', `http://${h}/live/x.flv`);
        await refused('/hls/api/pull', `http://${h}/x.m3u8`);
        await refused('/rtmp/api/pull', `rtmp://${h}/live/x`);
        await refused('/rtmp/api/push', `rtmp://${h}/live/x`);
      }
      assert.deepEqual([...answers], ['source not allowed or not reachable'], 'one answer, whatever the reason');
      assert.equal(s.outbound.running, 0, 'nothing started');
    } finally { await s.stop(); }
  });

  it('fileroots: files under a root are allowed; outside it (also through a symlink or ..) they are not', async () => {
    const root = join(dir, 'media');
    mkdirSync(root);
    writeFileSync(join(root, 'a.flv'), new Uint8Array([0x46, 0x4c, 0x56, 1, 5, 0, 0, 0, 9, 0, 0, 0, 0]));
    writeFileSync(join(dir, 'outside.flv'), new Uint8Array(13));
    symlinkSync(join(dir, 'outside.flv'), join(root, 'link.flv'));
    const s = await start(yaml({}).replace('global:\n', `global:\n  outbound:\n    fileroots: [${JSON.stringify(root)}]\n`));
    try {
      const ok = await post(s, '/flv/api/pull', { streamPath: 'vod/a', url: join(root, 'a.flv') + '?secret=s3cr3t&loop=1' });
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      const list = await (await fetch(`http://127.0.0.1:${s.http!.port}/flv/api/list`)).text();
      assert.ok(list.includes('a.flv') && !list.includes('s3cr3t'), 'URLs in API answers are redacted: ' + list.slice(0, 300));
      for (const url of [join(dir, 'outside.flv'), join(root, 'link.flv'), join(root, '..', 'outside.flv'), `file://${root}/../outside.flv`, join(root, 'missing.flv')]) {
        const r = await post(s, '/flv/api/pull', { streamPath: 'vod/b', url });
        assert.equal(r.status, 403, url);
      }
    } finally { await s.stop(); }
  });

  it('closed, silent and HTTP ports look the same to the API; retries are capped; jobs are capped', async () => {
    // An HTTP server that answers 404 with a body, a port that accepts and says nothing, a closed port.
    const http404 = await rt.serveHttp({ port: 0, host: '127.0.0.1' }, () => new Response('internal admin page: token=abc', { status: 404 }));
    const silent = await rt.listenTcp({ port: 0, host: '127.0.0.1' }, () => {});
    const probe = await rt.listenTcp({ port: 0, host: '127.0.0.1' }, () => {});
    const closedPort = probe.port;
    await probe.close();
    const s = await start(yaml({}).replace('global:\n', 'global:\n  outbound:\n    allowhosts: [127.0.0.1]\n    retrycount: 1\n    maxjobs: 3\n') +
      'flv:\n  readtimeout: 300ms\n  retryinterval: 50ms\n  retrymax: 100ms\n');
    try {
      const urls = [`http://127.0.0.1:${http404.port}/live/x.flv`, `http://127.0.0.1:${silent.port}/live/x.flv`, `http://127.0.0.1:${closedPort}/live/x.flv`];
      const ids: number[] = [];
      for (const [i, url] of urls.entries()) {
        const r = await post(s, '/flv/api/pull', { streamPath: `probe/p${i}`, url });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        ids.push(r.body.data.id);
      }
      // The cap: three running, a fourth is refused.
      const over = await post(s, '/flv/api/pull', { streamPath: 'probe/p4', url: urls[0] });
      assert.equal(over.status, 503, JSON.stringify(over.body));
      // Each gives up after one retry, with the same words.
      let pulls: any[] = [];
      const t0 = Date.now();
      while (Date.now() - t0 < 10_000) {
        pulls = (await (await fetch(`http://127.0.0.1:${s.http!.port}/flv/api/list`)).json() as any).data.pulls;
        if (ids.every((id) => pulls.find((p) => p.id === id)?.state === 'stopped')) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const mine = ids.map((id) => pulls.find((p) => p.id === id));
      assert.ok(mine.every((p) => p.state === 'stopped'), JSON.stringify(mine));
      const text = JSON.stringify(mine);
      // What a caller is told (not the URLs: a random port like 40421 would match "404").
      const told = JSON.stringify(mine.map((p) => [p.error, p.stopReason, p.endReason]));
      assert.ok(!/404|token|refused|ECONN|timeout|no data/i.test(told), text);
      assert.equal(new Set(mine.map((p) => `${p.error}|${p.stopReason}`)).size, 1, text);
      assert.ok(mine.every((p) => p.retries <= 1), text);
      assert.equal(s.outbound.running, 0, 'slots are given back');
    } finally {
      await s.stop();
      await http404.close();
      await silent.close();
    }
  });

  it('pulls written in config.yaml by the admin may reach loopback', async () => {
    const got: string[] = [];
    const src = await rt.serveHttp({ port: 0, host: '127.0.0.1' }, (req) => { got.push(new URL(req.url).pathname); return new Response('nope', { status: 404 }); });
    const s = await start(yaml({}) + `flv:\n  retryinterval: 50ms\n  pull:\n    live/cfg: http://127.0.0.1:${src.port}/live/cfg.flv\n`);
    try {
      const t0 = Date.now();
      while (!got.length && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(got.slice(0, 1), ['/live/cfg.flv']);
    } finally { await s.stop(); await src.close(); }
  });
});

describe('security: outbound checks follow every hop (playlists, segments, redirects)', () => {
  it('an allowed host cannot lead an API pull to a denied one', async (t) => {
    // The "internal" service on 127.0.0.2 (denied: loopback, not in allowhosts); the allowed origin on 127.0.0.1.
    const hits: string[] = [];
    let internal;
    try {
      internal = await rt.serveHttp({ port: 0, host: '127.0.0.2' }, (req) => { hits.push(new URL(req.url).pathname); return new Response('secret'); });
    } catch (err) { t.skip(`cannot listen on 127.0.0.2 here: ${(err as Error).message}`); return; }
    const ip2 = `http://127.0.0.2:${internal.port}`;
    const origin = await rt.serveHttp({ port: 0, host: '127.0.0.1' }, (req) => {
      const p = new URL(req.url).pathname;
      if (p === '/redirect.flv') return new Response(null, { status: 302, headers: { location: `${ip2}/redirected.flv` } });
      if (p === '/master.m3u8') return new Response(`#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\n${ip2}/variant.m3u8\n`);
      if (p === '/live.m3u8') return new Response(`#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:1,\n${ip2}/seg0.ts\n#EXTINF:1,\n${ip2}/seg1.ts\n`);
      return new Response('no', { status: 404 });
    });
    const s = await start(yaml({}).replace('global:\n', 'global:\n  outbound:\n    allowhosts: [127.0.0.1/32]\n    retrycount: 1\n') + 'flv:\n  retryinterval: 50ms\n');
    try {
      const base = `http://127.0.0.1:${origin.port}`;
      const post = (path: string, body: unknown) => fetch(`http://127.0.0.1:${s.http!.port}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then((r) => r.status);
      assert.equal(await post('/flv/api/pull', { streamPath: 'o/redir', url: `${base}/redirect.flv` }), 200);
      assert.equal(await post('/hls/api/pull', { streamPath: 'o/master', url: `${base}/master.m3u8` }), 200);
      assert.equal(await post('/hls/api/pull', { streamPath: 'o/live', url: `${base}/live.m3u8` }), 200);
      assert.equal(await post('/flv/api/pull', { streamPath: 'o/direct', url: `${ip2}/direct.flv` }), 403);
      await new Promise((r) => setTimeout(r, 2500));
      assert.deepEqual(hits, [], 'the denied host was never contacted');
    } finally {
      await s.stop();
      await origin.close();
      await internal.close();
    }
  });
});
