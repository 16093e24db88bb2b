// The permission model on the control API: users, JWTs and the HTTP callback of global.auth grant the
// `api` and `metrics` actions from any peer; the API guard's own rules (apiallow, Basic with
// global.http.username/password, cross-site and body-type checks) still hold for everyone else.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { currentRuntime } from '../adapters/current.ts';
import { Server } from '../src/server.ts';
import { Logger } from '../src/log.ts';
import { nowSec, signHs256 } from './helpers/jwt.ts';

const HS = 'api-hs-secret';
let server: Server;
let base = '';
const basic = (u: string, p: string) => ({ authorization: 'Basic ' + btoa(`${u}:${p}`) });

before(async () => {
  // apiallow: [] — no anonymous API access even from loopback, so every grant below comes from global.auth.
  const configText = `global:
  loglevel: error
  http:
    listenaddr: "127.0.0.1:0"
    apiallow: []
  auth:
    jwt:
      secret: ${HS}
    users:
      - user: admin
        pass: adminpw
        permissions:
          - {action: api}
      - user: scraper
        pass: scrapepw
        permissions:
          - {action: metrics}
      - user: viewer
        pass: viewpw
        permissions:
          - {action: read}
`;
  server = await Server.start({ runtime: await currentRuntime(), plugins: [], configText, logger: Logger.silent(), watch: false });
  base = `http://127.0.0.1:${server.http!.port}`;
});
after(async () => { await server?.stop(); });

async function status(path: string, init: RequestInit = {}): Promise<number> {
  const r = await fetch(base + path, init);
  if (process.env.DBG) console.log(path.slice(0, 40), r.status, await r.text()); else await r.body?.cancel();
  return r.status;
}

describe('permission model on the API', () => {
  it('anonymous requests are refused when apiallow is empty', async () => {
    assert.equal(await status('/api/sysinfo'), 403);
    assert.equal(await status('/api/metrics'), 403);
  });

  it('a user with the api permission gets the API, not metrics; the wrong password does not', async () => {
    assert.equal(await status('/api/sysinfo', { headers: basic('admin', 'adminpw') }), 200);
    assert.equal(await status('/api/config/get', { headers: basic('admin', 'adminpw') }), 200);
    assert.equal(await status('/%61pi/config/get', { headers: basic('admin', 'wrong') }), 401);
    assert.notEqual(await status('/api/metrics', { headers: basic('admin', 'adminpw') }), 200);
  });

  it('a user with only metrics gets /api/metrics and nothing else; a reader gets neither', async () => {
    assert.equal(await status('/api/metrics', { headers: basic('scraper', 'scrapepw') }), 200);
    assert.notEqual(await status('/api/sysinfo', { headers: basic('scraper', 'scrapepw') }), 200);
    assert.notEqual(await status('/api/sysinfo', { headers: basic('viewer', 'viewpw') }), 200);
    assert.notEqual(await status('/api/metrics', { headers: basic('viewer', 'viewpw') }), 200);
  });

  it('a JWT with the api permission works as Bearer and as ?jwt=; an expired one does not', async () => {
    const good = await signHs256({ exp: nowSec() + 60, m7s_permissions: [{ action: 'api', path: '' }] }, HS);
    const old = await signHs256({ exp: nowSec() - 60, m7s_permissions: [{ action: 'api', path: '' }] }, HS);
    assert.equal(await status('/api/sysinfo', { headers: { authorization: 'Bearer ' + good } }), 200);
    assert.equal(await status('/api/sysinfo?jwt=' + good), 200);
    assert.notEqual(await status('/api/sysinfo', { headers: { authorization: 'Bearer ' + old } }), 200);
  });

  it('a granted user still cannot write cross-site or with a text/plain body', async () => {
    const h = { ...basic('admin', 'adminpw') };
    assert.equal(await status('/api/config/modify', { method: 'POST', headers: { ...h, 'content-type': 'text/plain' }, body: '{"global":{"loglevel":"debug"}}' }), 415);
    assert.equal(await status('/api/config/modify', { method: 'POST', headers: { ...h, 'content-type': 'application/json', origin: 'http://evil.example', 'sec-fetch-site': 'cross-site' }, body: '{"global":{"loglevel":"debug"}}' }), 403);
    assert.equal(await status('/api/config/modify?save=false', { method: 'POST', headers: { ...h, 'content-type': 'application/json' }, body: '{"global":{"loglevel":"warn"}}' }), 200);
  });
});
