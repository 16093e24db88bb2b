// The console's server side: the built assets served from memory, the live feeds (/api/events,
// /api/logs/tail), the config editor's text endpoints (errors at their line, apply = hot reload) and
// console login sessions (token signed with the admin secret; forged, expired and logged-out refused).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server } from '../src/server.ts';
import { Logger } from '../src/log.ts';
import { signHs256 } from '../src/auth/jwt.ts';
import { currentRuntime } from '../adapters/current.ts';
import admin from '../plugins/console/index.ts';
import preview from '../plugins/preview/index.ts';
import rtmp from '../plugins/rtmp/index.ts';

const CONFIG = `global:
  loglevel: info
  http:
    listenaddr: "127.0.0.1:0"
    username: admin
    password: s3cret-pass
rtmp:
  tcp:
    listenaddr: "127.0.0.1:0"
  chunksize: 4096
`;

/** Reads SSE events from a fetch body until `want` returns true or the time runs out. */
async function readSse(res: Response, want: (ev: string, data: any) => boolean, ms = 8000): Promise<{ ev: string; data: any }[]> {
  const got: { ev: string; data: any }[] = [];
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  const deadline = Date.now() + ms;
  let buf = '';
  try {
    while (Date.now() < deadline) {
      const r = await Promise.race([reader.read(), new Promise<{ done: true; value: undefined }>((res) => setTimeout(() => res({ done: true, value: undefined }), deadline - Date.now()))]);
      if (r.done) break;
      buf += r.value;
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i); buf = buf.slice(i + 2);
        const ev = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (data === undefined) continue;
        const d = JSON.parse(data);
        got.push({ ev, data: d });
        if (want(ev, d)) return got;
      }
    }
  } finally { await reader.cancel().catch(() => {}); }
  return got;
}

describe('console API', () => {
  let server: Server;
  let base = '';
  let token = '';
  const auth = () => ({ authorization: `Bearer ${token}` });

  before(async () => {
    const logger = Logger.create({ pretty: false, write() {} }, 'info');
    server = await Server.start({ runtime: await currentRuntime(), plugins: [rtmp, admin, preview], configText: CONFIG, logger, watch: false });
    base = `http://127.0.0.1:${server.http!.port}`;
  });
  after(async () => { await server?.stop(); });

  it('serves the console and the preview page from memory (gzip, CSP)', async () => {
    const html = await fetch(`${base}/admin/`);
    assert.equal(html.status, 200);
    assert.match(html.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    assert.match(await html.text(), /<script src="\/admin\/app.js">/);
    const js = await fetch(`${base}/admin/app.js`, { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(js.status, 200);
    assert.ok((await js.text()).length > 10_000, 'the app bundle');
    const lib = await fetch(`${base}/preview/lib/mpegts.js`);
    assert.equal(lib.status, 200);
    assert.match(await lib.text(), /mpegts/);
    assert.equal((await fetch(`${base}/preview/`)).status, 200);
    assert.equal((await fetch(`${base}/admin/lib/nope.js`)).status, 404);
  });

  it('login: wrong password refused, token works on the API, forged/expired/logged-out refused', async () => {
    assert.equal((await fetch(`${base}/api/summary`)).status, 401, 'credentials configured: API needs them');
    const s0 = await (await fetch(`${base}/admin/session`)).json();
    assert.equal(s0.data.loginRequired, true);
    const bad = await fetch(`${base}/admin/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: 'nope' }) });
    assert.equal(bad.status, 401);
    const good = await fetch(`${base}/admin/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: 's3cret-pass' }) });
    assert.equal(good.status, 200);
    const j = await good.json();
    token = j.data.token;
    assert.ok(Date.parse(j.data.expires) > Date.now() + 3600_000, 'default expiry 12h');
    assert.equal((await fetch(`${base}/api/summary`, { headers: auth() })).status, 200);
    assert.equal((await (await fetch(`${base}/admin/session`, { headers: auth() })).json()).data.user, 'admin');
    const now = Math.floor(Date.now() / 1000);
    const forged = await signHs256({ sub: 'admin', aud: 'm7s-console', iat: now, exp: now + 3600, jti: 'x' }, 'not-the-secret');
    assert.equal((await fetch(`${base}/api/summary`, { headers: { authorization: `Bearer ${forged}` } })).status, 401);
    const expired = await signHs256({ sub: 'admin', aud: 'm7s-console', iat: now - 7200, exp: now - 60, jti: 'y' }, server.adminSecret());
    assert.equal((await fetch(`${base}/api/summary`, { headers: { authorization: `Bearer ${expired}` } })).status, 401);
    const noneAlg = `${btoa('{"alg":"none"}').replace(/=/g, '')}.${btoa(JSON.stringify({ sub: 'admin', aud: 'm7s-console', exp: now + 99, jti: 'z' })).replace(/=/g, '')}.`;
    assert.equal((await fetch(`${base}/api/summary`, { headers: { authorization: `Bearer ${noneAlg}` } })).status, 401);
    // Logout: that token is refused afterwards; a new login works.
    const t2 = (await (await fetch(`${base}/admin/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: 's3cret-pass' }) })).json()).data.token;
    assert.equal((await fetch(`${base}/admin/logout`, { method: 'POST', headers: { authorization: `Bearer ${t2}` } })).status, 200);
    assert.equal((await fetch(`${base}/api/summary`, { headers: { authorization: `Bearer ${t2}` } })).status, 401);
    assert.equal((await fetch(`${base}/api/summary`, { headers: auth() })).status, 200, 'other sessions stay');
  });

  it('/api/events: a summary at once, then publish and subscribe events as they happen', async () => {
    const res = await fetch(`${base}/api/events?interval=500ms`, { headers: auth() });
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    setTimeout(() => { void server.engine.publish('live/ev', { protocol: 'test' }); }, 300);
    const got = await readSse(res, (ev, d) => ev === 'publish' && d.path === 'live/ev');
    assert.equal(got[0].ev, 'summary');
    assert.equal(typeof got[0].data.cpuUsage, 'number');
    assert.ok(Array.isArray(got[0].data.streams));
    assert.ok(got.some((x) => x.ev === 'publish' && x.data.protocol === 'test'), JSON.stringify(got.map((x) => x.ev)));
    const sum = await readSse(await fetch(`${base}/api/events?interval=500ms`, { headers: auth() }), (ev, d) => ev === 'summary' && d.streams.some((s: any) => s.path === 'live/ev'));
    assert.ok(sum.length && sum[sum.length - 1].data.streams.some((s: any) => s.path === 'live/ev' && s.publisher === 'test'));
  });

  it('/api/logs/tail: the backlog and new records, with level and stream filters', async () => {
    await server.engine.publish('live/logged', { protocol: 'test' });
    const got = await readSse(await fetch(`${base}/api/logs/tail?level=info&stream=live/logged`, { headers: auth() }), (_e, d) => d.msg === 'stream published');
    assert.ok(got.some((x) => x.data.msg === 'stream published' && x.data.fields.stream === 'live/logged'), JSON.stringify(got).slice(0, 500));
    assert.ok(got.every((x) => x.data.fields.stream === 'live/logged'), 'stream filter');
    const warn = await readSse(await fetch(`${base}/api/logs/tail?level=error`, { headers: auth() }), () => false, 800);
    assert.ok(warn.every((x) => x.data.level === 'error'));
    assert.equal((await fetch(`${base}/api/logs/tail?level=loud`, { headers: auth() })).status, 400);
  });

  it('config editor: secrets shown as ***, errors at their line, a good edit applies without restart', async () => {
    const f = await (await fetch(`${base}/api/config/file`, { headers: auth() })).json();
    assert.ok(!f.data.text.includes('s3cret-pass'), 'password redacted');
    assert.match(f.data.text, /password: "?\*\*\*"?/);
    const lines = f.data.text.split('\n');
    const at = lines.findIndex((l: string) => /chunksize/.test(l));
    const badText = lines.map((l: string, i: number) => (i === at ? l.replace(/\d+/, '"lots"') : l)).join('\n');
    const post = (what: string, body: string) => fetch(`${base}/api/config/${what}`, { method: 'POST', headers: { ...auth(), 'content-type': 'application/yaml' }, body });
    const v = await post('validate', badText);
    assert.equal(v.status, 400);
    const vj = await v.json();
    assert.equal(vj.data.errors[0].line, at + 1, JSON.stringify(vj.data.errors));
    const syn = await (await post('validate', 'global:\n  loglevel: info\n rtmp: [\n')).json();
    assert.ok(syn.data.errors[0].line >= 2, JSON.stringify(syn.data.errors));
    const apply = await post('apply', f.data.text.replace(/chunksize: 4096/, 'chunksize: 8192'));
    assert.equal(apply.status, 200, await apply.clone().text());
    assert.deepEqual((await apply.json()).data.changed, ['rtmp.chunksize']);
    assert.equal(server.config.rtmp.chunksize, 8192, 'applied to the running server');
    assert.equal(server.config.global.http.password, 's3cret-pass', '*** kept the password');
    // Still logged in with the same password after the apply.
    assert.equal((await fetch(`${base}/api/summary`, { headers: auth() })).status, 200);
  });
});
