// The authorizer on its own: one test per rule kind (user/password, IP range, action, path pattern,
// JWT HS256, JWT via JWKS, HTTP callback allow/deny/timeout), the api and metrics actions, and the
// pieces (CIDR, password hashes, path patterns, credential parsing).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server as HttpServer } from 'node:http';
import { type AuthConfig, Authorizer, type AuthzRequest, checkPassword, compilePathPattern, httpCredentials, ipInRanges, parseCidr, parseIp } from '../src/auth/permissions.ts';
import { verifyJwt, b64urlEncode } from '../src/auth/jwt.ts';
import { jwks, makeKey, nowSec, signHs256, signWith, type TestKey } from './helpers/jwt.ts';

function conf(over: Partial<{ users: any[]; jwt: Partial<AuthConfig['jwt']>; http: Partial<AuthConfig['http']> }> = {}): AuthConfig {
  return {
    users: over.users ?? [],
    jwt: { secret: '', jwks: '', jwksrefresh: 300_000, claimkey: 'm7s_permissions', issuer: '', audience: '', ...over.jwt },
    http: { address: '', timeout: 500, cache: 0, exclude: [], ...over.http },
  };
}
const req = (o: Partial<AuthzRequest>): AuthzRequest => ({ action: 'read', path: 'live/a', protocol: 'test', ip: '127.0.0.1', ...o });
const az = (c: AuthConfig, files: Record<string, string> = {}) => new Authorizer(() => c, { readTextFile: async (f) => { if (!(f in files)) throw new Error('no file ' + f); return files[f]; } });

describe('auth building blocks', () => {
  it('IP addresses and CIDR ranges, v4, v6 and v4-mapped', () => {
    assert.equal(parseIp('10.1.2.3'), parseIp('::ffff:10.1.2.3'));
    assert.equal(parseIp('::1'), 1n);
    assert.equal(parseIp('[2001:db8::1]'), parseIp('2001:0db8:0:0:0:0:0:1'));
    for (const bad of ['1.2.3.256', '1.2.3', 'x', '1::2::3', '12345::', '']) assert.equal(parseIp(bad), null, bad);
    const r = [parseCidr('10.0.0.0/8'), parseCidr('fd00::/8'), parseCidr('192.168.1.7')];
    assert.ok(ipInRanges('10.200.3.4', r));
    assert.ok(ipInRanges('::ffff:10.0.0.1', r));
    assert.ok(ipInRanges('fd12:3456::1', r));
    assert.ok(ipInRanges('192.168.1.7', r));
    assert.ok(!ipInRanges('192.168.1.8', r));
    assert.ok(!ipInRanges('11.0.0.1', r));
    assert.ok(!ipInRanges('fe80::1', r));
    assert.ok(!ipInRanges('', r), 'unknown address never matches');
    assert.throws(() => parseCidr('10.0.0.0/33'));
    assert.throws(() => parseCidr('nope/8'));
    assert.ok(ipInRanges('8.8.8.8', [parseCidr('0.0.0.0/0')]));
    assert.ok(!ipInRanges('::2', [parseCidr('0.0.0.0/0')]), 'v4 /0 does not cover v6');
  });

  it('path patterns: any, exact, prefix, glob, regex', () => {
    const m = (p: string, x: string) => compilePathPattern(p)(x);
    assert.ok(m('', 'a/b') && m('*', 'a/b'));
    assert.ok(m('live/cam1', 'live/cam1') && !m('live/cam1', 'live/cam10'));
    assert.ok(m('live/', 'live/x/y') && !m('live/', 'livex/y'));
    assert.ok(m('live/*', 'live/x') && !m('live/*', 'live/x/y') && m('live/**', 'live/x/y'));
    assert.ok(m('live/cam?.x*', 'live/cam?.xy') && !m('live/cam?.x*', 'live/camA.xy'), 'glob escapes regex characters');
    assert.ok(m('~^live/cam[0-9]+$', 'live/cam12') && !m('~live/cam[0-9]+', 'live/cam12x'), 'regex is anchored');
    assert.throws(() => compilePathPattern('~('));
  });

  it('passwords: plain and sha256 (hex or base64)', async () => {
    const hex = createHash('sha256').update('pw').digest('hex');
    const b64 = createHash('sha256').update('pw').digest('base64');
    assert.ok(await checkPassword('pw', 'pw'));
    assert.ok(!(await checkPassword('pw', 'pW')));
    assert.ok(await checkPassword('sha256:' + hex, 'pw'));
    assert.ok(await checkPassword('sha256:' + b64, 'pw'));
    assert.ok(!(await checkPassword('sha256:' + hex, 'sha256:' + hex)), 'the hash itself is not a password');
  });

  it('credentials from Authorization (Basic, Bearer) and the query', () => {
    assert.deepEqual(httpCredentials('Basic ' + btoa('u:p:x'), {}), { user: 'u', password: 'p:x' });
    assert.deepEqual(httpCredentials('Bearer abc', {}), { token: 'abc' });
    assert.deepEqual(httpCredentials(null, new URLSearchParams('user=a&pass=b&jwt=t')), { user: 'a', password: 'b', token: 't' });
    assert.deepEqual(httpCredentials(null, { jwt: 't' }, false), {});
  });
});

describe('authorizer', () => {
  it('nothing configured: everything allowed (today\'s behaviour)', async () => {
    const a = az(conf());
    assert.equal(a.active, false);
    for (const action of ['publish', 'read', 'api', 'metrics'] as const) assert.equal((await a.authorize(req({ action, ip: '' }))).ok, true);
  });

  it('user/password: right password allowed, wrong one 401, none 401', async () => {
    const a = az(conf({ users: [{ user: 'alice', pass: 'sha256:' + createHash('sha256').update('s3cret').digest('hex'), ips: [], permissions: [{ action: 'publish', path: '' }] }] }));
    assert.deepEqual(await a.authorize(req({ action: 'publish', user: 'alice', password: 's3cret' })), { ok: true, user: 'alice' });
    assert.deepEqual(await a.authorize(req({ action: 'publish', user: 'alice', password: 'nope' })), { ok: false, status: 401, reason: 'bad credentials' });
    const none = await a.authorize(req({ action: 'publish' }));
    assert.equal(none.ok, false);
    assert.equal(!none.ok && none.status, 401);
  });

  it('IP range: the right user from outside the range is 403', async () => {
    const a = az(conf({ users: [{ user: 'cam', pass: 'pw', ips: ['10.0.0.0/8', '::1'], permissions: [{ action: 'publish', path: '' }] }] }));
    assert.equal((await a.authorize(req({ action: 'publish', user: 'cam', password: 'pw', ip: '10.9.9.9' }))).ok, true);
    assert.equal((await a.authorize(req({ action: 'publish', user: 'cam', password: 'pw', ip: '::1' }))).ok, true);
    const out = await a.authorize(req({ action: 'publish', user: 'cam', password: 'pw', ip: '192.0.2.1' }));
    assert.equal(!out.ok && out.status, 403);
    const unknown = await a.authorize(req({ action: 'publish', user: 'cam', password: 'pw', ip: '' }));
    assert.equal(unknown.ok, false, 'an unknown peer address fails closed');
  });

  it('action: a reader may not publish (403); api and metrics are separate rights', async () => {
    const a = az(conf({ users: [
      { user: 'viewer', pass: 'v', ips: [], permissions: [{ action: 'read', path: '' }, { action: 'metrics', path: '' }] },
      { user: 'admin', pass: 'a', ips: ['127.0.0.1/32'], permissions: [{ action: 'api', path: '' }] },
    ] }));
    assert.equal((await a.authorize(req({ action: 'read', user: 'viewer', password: 'v' }))).ok, true);
    const pub = await a.authorize(req({ action: 'publish', user: 'viewer', password: 'v' }));
    assert.equal(!pub.ok && pub.status, 403);
    assert.equal((await a.authorize(req({ action: 'metrics', path: 'api/metrics', user: 'viewer', password: 'v' }))).ok, true);
    const api = await a.authorize(req({ action: 'api', path: 'api/config/get', user: 'viewer', password: 'v' }));
    assert.equal(!api.ok && api.status, 403);
    assert.deepEqual(await a.authorize(req({ action: 'api', path: 'api/config/modify', user: 'admin', password: 'a' })), { ok: true, user: 'admin' });
    assert.equal((await a.authorize(req({ action: 'api', path: 'api/config/modify', user: 'admin', password: 'a', ip: '10.0.0.1' }))).ok, false);
    const anon = await a.authorize(req({ action: 'api', path: 'api/summary' }));
    assert.equal(!anon.ok && anon.status, 401);
  });

  it('path pattern: a user limited to live/cam* cannot read other paths; `any` grants anonymous rights', async () => {
    const a = az(conf({ users: [
      { user: 'u', pass: 'p', ips: [], permissions: [{ action: 'read', path: 'live/cam*' }] },
      { user: 'any', pass: '', ips: [], permissions: [{ action: 'read', path: '~^public/.+$' }] },
    ] }));
    assert.equal((await a.authorize(req({ path: 'live/cam7', user: 'u', password: 'p' }))).ok, true);
    const other = await a.authorize(req({ path: 'live/door', user: 'u', password: 'p' }));
    assert.equal(!other.ok && other.status, 403);
    assert.equal((await a.authorize(req({ path: 'public/x' }))).ok, true, 'anonymous public read');
    assert.equal((await a.authorize(req({ path: 'live/cam7' }))).ok, false);
  });

  it('JWT HS256: claims grant action+path; exp, nbf, iss, aud, signature and alg are checked', async () => {
    const secret = 'hs-secret-123';
    const a = az(conf({ jwt: { secret, issuer: 'me', audience: 'players' } }));
    const claims = { iss: 'me', aud: ['players', 'x'], sub: 'bob', exp: nowSec() + 60, m7s_permissions: [{ action: 'read', path: 'live/' }] };
    assert.deepEqual(await a.authorize(req({ token: await signHs256(claims, secret) })), { ok: true, user: 'bob' });
    assert.equal((await a.authorize(req({ password: await signHs256(claims, secret) }))).ok, true, 'a JWT as password (RTMP/RTSP)');
    const deny = async (c: Record<string, unknown>, key = secret, status = 401) => {
      const r = await a.authorize(req({ token: await signHs256(c, key) }));
      assert.equal(r.ok, false, JSON.stringify(c));
      assert.equal(!r.ok && r.status, status, JSON.stringify(c));
    };
    await deny(claims, 'other-secret');
    await deny({ ...claims, exp: nowSec() - 60 });
    await deny({ ...claims, nbf: nowSec() + 60 });
    await deny({ ...claims, iss: 'else' });
    await deny({ ...claims, aud: 'else' });
    await deny({ ...claims, m7s_permissions: [{ action: 'publish', path: 'live/' }] }, secret, 403);
    await deny({ ...claims, m7s_permissions: [{ action: 'read', path: 'other/' }] }, secret, 403);
    const none = b64urlEncode(JSON.stringify({ alg: 'none' })) + '.' + b64urlEncode(JSON.stringify(claims)) + '.';
    assert.equal((await a.authorize(req({ token: none }))).ok, false, 'alg none');
    await assert.rejects(verifyJwt('a.b', { secret }), /compact/);
  });

  it('JWT via JWKS: ES256 and RS256 keys from a file, unknown kid refused, HS token not checked with a public key', async () => {
    const es = await makeKey('ES256', 'k1');
    const rs = await makeKey('RS256', 'k2');
    const stranger = await makeKey('ES256', 'k1');
    const a = az(conf({ jwt: { jwks: 'keys.json', claimkey: 'perms' } }), { 'keys.json': jwks(es, rs) });
    const claims = { exp: nowSec() + 60, perms: [{ action: 'publish', path: 'live/cam1' }] };
    assert.equal((await a.authorize(req({ action: 'publish', path: 'live/cam1', token: await signWith(es, claims) }))).ok, true, 'ES256');
    assert.equal((await a.authorize(req({ action: 'publish', path: 'live/cam1', token: await signWith(rs, claims) }))).ok, true, 'RS256');
    assert.equal((await a.authorize(req({ action: 'publish', path: 'live/cam2', token: await signWith(rs, claims) }))).ok, false, 'path not in claim');
    assert.equal((await a.authorize(req({ action: 'publish', path: 'live/cam1', token: await signWith(stranger, claims) }))).ok, false, 'same kid, other key');
    assert.equal((await a.authorize(req({ action: 'publish', path: 'live/cam1', token: await signWith(es, claims, { kid: 'zz' }) }))).ok, false, 'unknown kid');
    assert.equal((await a.authorize(req({ action: 'publish', path: 'live/cam1', token: await signHs256(claims, JSON.stringify(es.jwk)) }))).ok, false, 'no HS with JWKS only');
  });
});

describe('authorizer: HTTP callback', () => {
  let srv: HttpServer;
  let url = '';
  const seen: any[] = [];
  before(async () => {
    srv = createServer((rq, rs) => {
      let body = '';
      rq.on('data', (d) => { body += d; });
      rq.on('end', () => {
        const j = JSON.parse(body);
        seen.push(j);
        if (j.user === 'hang') return; // never answers
        if (j.user === 'good' && j.password === 'pw') { rs.writeHead(200, { 'content-type': 'application/json' }); rs.end('{"user":"good-user"}'); return; }
        rs.writeHead(403); rs.end('no');
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(srv.address() as { port: number }).port}/auth`;
  });
  after(async () => { srv.closeAllConnections?.(); await new Promise((r) => srv.close(r)); });

  it('allow (2xx) with the fields MediaMTX sends; deny (403); timeout fails closed; answers cached', async () => {
    const a = az(conf({ http: { address: url, timeout: 400, cache: 60_000 } }));
    const r = await a.authorize(req({ action: 'publish', path: 'live/x', protocol: 'rtmp', ip: '127.0.0.1', user: 'good', password: 'pw', query: { a: '1' } }));
    assert.deepEqual(r, { ok: true, user: 'good-user' });
    assert.deepEqual(seen.at(-1), { user: 'good', password: 'pw', token: '', ip: '127.0.0.1', action: 'publish', path: 'live/x', protocol: 'rtmp', query: { a: '1' } });
    const n = seen.length;
    assert.equal((await a.authorize(req({ action: 'publish', path: 'live/x', protocol: 'rtmp', ip: '127.0.0.1', user: 'good', password: 'pw', query: { a: '1' } }))).ok, true);
    assert.equal(seen.length, n, 'second identical request answered from the cache');
    const d = await a.authorize(req({ user: 'bad', password: 'x' }));
    assert.equal(!d.ok && d.status, 403);
    const t0 = Date.now();
    const h = await a.authorize(req({ user: 'hang', password: 'x' }));
    const ms = Date.now() - t0;
    console.log(`callback timeout denied after ${ms} ms (timeout 400 ms)`);
    assert.equal(h.ok, false);
    assert.ok(ms >= 350 && ms < 5000, `${ms} ms`);
    assert.equal(a.stats.callbackErrors, 1);
    const down = az(conf({ http: { address: 'http://127.0.0.1:1/auth', timeout: 2000 } }));
    assert.equal((await down.authorize(req({ user: 'good', password: 'pw' }))).ok, false, 'unreachable callback denies');
  });

  it('excluded actions never reach the callback', async () => {
    const a = az(conf({ users: [{ user: 'any', pass: '', ips: [], permissions: [{ action: 'metrics', path: '' }] }], http: { address: url, exclude: ['api'] } }));
    const n = seen.length;
    assert.equal((await a.authorize(req({ action: 'metrics', path: 'api/metrics' }))).ok, true);
    assert.equal((await a.authorize(req({ action: 'api', path: 'api/summary' }))).ok, false);
    assert.equal(seen.length, n);
  });
});

describe('server wiring: admin secret and hot reload', () => {
  it('the admin secret is generated at first start beside the config (mode 0600) and kept across restarts', async () => {
    const { mkdtempSync, rmSync, writeFileSync, statSync, readFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { Server } = await import('../src/server.ts');
    const { Logger } = await import('../src/log.ts');
    const { currentRuntime } = await import('../adapters/current.ts');
    const dir = mkdtempSync(join(tmpdir(), 'm7s-secret-'));
    try {
      const configFile = join(dir, 'config.yaml');
      writeFileSync(configFile, 'global:\n  http:\n    listenaddr: "127.0.0.1:0"\n');
      const opts = { runtime: await currentRuntime(), plugins: [], configFile, watch: false, logger: Logger.silent() };
      const s1 = await Server.start(opts);
      const secret = s1.adminSecret();
      await s1.stop();
      assert.match(secret, /^[0-9a-f]{64}$/);
      const file = join(dir, '.m7s', 'secret');
      assert.equal(readFileSync(file, 'utf8').trim(), secret);
      if (process.platform !== 'win32') assert.equal(statSync(file).mode & 0o777, 0o600);
      const s2 = await Server.start(opts);
      assert.equal(s2.adminSecret(), secret, 'same secret after a restart');
      await s2.stop();
      const s3 = await Server.start({ ...opts, configFile: undefined, configText: 'global:\n  http:\n    listenaddr: ""\n' });
      assert.match(s3.adminSecret(), /^[0-9a-f]{64}$/);
      assert.notEqual(s3.adminSecret(), secret, 'no config file: a fresh in-memory secret');
      await s3.stop();
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });

  it('global.auth changes apply at once (config/modify) to the engine gate', async () => {
    const { startServer } = await import('./helpers/media.ts');
    const { EngineError } = await import('../src/core/errors.ts');
    const S = await startServer([]);
    try {
      const e = S.server.engine;
      const p = await e.publish('live/open', { protocol: 'test', ip: '127.0.0.1' });
      p.stop('done');
      const r = await S.server.modify({ global: { auth: { users: [{ user: 'u', pass: 'p', permissions: [{ action: 'publish', path: 'live/' }] }] } } }, false);
      assert.deepEqual(r.errors, []);
      await assert.rejects(e.publish('live/x', { protocol: 'test', ip: '127.0.0.1' }), (err: unknown) => err instanceof EngineError && err.code === 'Unauthorized' && err.httpStatus === 401);
      await assert.rejects(e.publish('live/x?user=u&pass=bad', { protocol: 'test', ip: '127.0.0.1' }), /bad credentials/);
      const ok = await e.publish('live/x?user=u&pass=p', { protocol: 'test', ip: '127.0.0.1' });
      assert.equal(ok.args.pass, undefined, 'the password is not kept in the publisher args');
      assert.equal(ok.args.user, 'u');
      ok.stop('done');
      await assert.rejects(e.publish('other/x', { protocol: 'test', ip: '127.0.0.1', credentials: { user: 'u', password: 'p' } }), (err: unknown) => err instanceof EngineError && err.code === 'Forbidden' && err.httpStatus === 403);
      const internal = await e.publish('other/pulled', { protocol: 'test', type: 'pull' });
      internal.stop('done');
      const bad = await S.server.modify({ global: { auth: { users: [{ user: 'u', pass: 'p', permissions: [{ action: 'fly', path: '' }] }] } } }, false);
      assert.ok(bad.errors.length > 0, 'unknown action refused by the schema');
    } finally { await S.stop(); }
  });
});

describe('auth parsers under fuzzing (seeded)', () => {
  it('mutated and random tokens: verifyJwt throws only JwtError, the authorizer never throws and never allows a changed token', async () => {
    const { prng } = await import('./helpers/fuzz.ts');
    const { JwtError, b64urlDecode } = await import('../src/auth/jwt.ts');
    const es = await makeKey('ES256', 'f1');
    const secret = 'fuzz-secret';
    const claims = { exp: nowSec() + 600, m7s_permissions: [{ action: 'read', path: '' }] };
    const seeds = [await signHs256(claims, secret), await signWith(es, claims)];
    const a = az(conf({ jwt: { secret, jwks: 'k.json' } }), { 'k.json': jwks(es) });
    const rnd = prng(7);
    const int = (n: number) => Math.floor(rnd() * n);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ %"{}\u00ff';
    const decodeParts = (t: string) => { try { return t.split('.').map((p) => Array.from(b64urlDecode(p)).join(',')).join('|'); } catch { return null; } };
    let allowed = 0;
    for (let i = 0; i < 1500; i++) {
      const base = seeds[i % 2];
      let t: string;
      const kind = i % 4;
      if (kind === 0) t = Array.from({ length: int(120) }, () => alphabet[int(alphabet.length)]).join('');
      else if (kind === 1) t = base.slice(0, int(base.length));
      else {
        const c = base.split('');
        for (let f = 0; f < 1 + int(kind === 2 ? 1 : 4); f++) c[int(c.length)] = alphabet[int(alphabet.length)];
        t = c.join('');
      }
      try { await verifyJwt(t, { secret, keys: async () => [es.jwk as any] }); } catch (e) {
        assert.ok(e instanceof JwtError, `case ${i}: ${(e as Error)?.name}: ${(e as Error)?.message} for ${JSON.stringify(t)}`);
      }
      const r = await a.authorize(req({ token: t }));
      if (r.ok) {
        allowed++;
        assert.equal(decodeParts(t), decodeParts(base), `case ${i}: a changed token was accepted: ${t}`);
      }
    }
    assert.ok(allowed < 100, `${allowed} accepted (only no-op mutations may pass)`);
  });

  it('addresses, ranges and Authorization headers: random input never throws where it must not', async () => {
    const { prng } = await import('./helpers/fuzz.ts');
    const rnd = prng(11);
    const int = (n: number) => Math.floor(rnd() * n);
    const alphabet = '0123456789abcdefABCDEF:.[]/%: xyz\u0000';
    for (let i = 0; i < 5000; i++) {
      const s = Array.from({ length: int(48) }, () => alphabet[int(alphabet.length)]).join('');
      const ip = parseIp(s);
      assert.ok(ip === null || (ip >= 0n && ip < (1n << 128n)), s);
      try { parseCidr(s); } catch (e) { assert.ok(e instanceof Error && /CIDR|prefix/.test(e.message), `${s}: ${(e as Error).message}`); }
      httpCredentials(['Basic ', 'Bearer ', 'basic', ''][i % 4] + s, { jwt: s });
    }
  });
});

describe('authorizeHttp (for the API guard)', () => {
  it('reads Basic, Bearer and ?jwt= from a request and passes the peer address through', async () => {
    const { Hono } = await import('hono');
    const { authorizeHttp } = await import('../src/http/peer.ts');
    const secret = 'api-secret';
    const a = az(conf({ users: [
      { user: 'admin', pass: 'pw', ips: [], permissions: [{ action: 'api', path: 'api/' }] },
      { user: 'any', pass: '', ips: [], permissions: [{ action: 'metrics', path: 'api/metrics' }] },
      { user: 'lan', pass: 'pw', ips: ['10.0.0.0/8'], permissions: [{ action: 'api', path: '' }] },
    ], jwt: { secret } }));
    const app = new Hono();
    app.all('*', async (c) => {
      const action = c.req.path === '/api/metrics' ? 'metrics' : 'api';
      const r = await authorizeHttp(a, c, action, c.req.path.slice(1));
      return c.json(r, r.ok ? 200 : r.status);
    });
    const call = async (path: string, headers: Record<string, string> = {}) => (await app.fetch(new Request('http://x' + path, { headers }))).status;
    assert.equal(await call('/api/config/get'), 401);
    assert.equal(await call('/api/config/get', { authorization: 'Basic ' + btoa('admin:pw') }), 200);
    assert.equal(await call('/api/config/get', { authorization: 'Basic ' + btoa('admin:no') }), 401);
    assert.equal(await call('/api/metrics'), 200, 'anonymous metrics by the any rule');
    const tok = await signHs256({ exp: nowSec() + 60, m7s_permissions: [{ action: 'api', path: 'api/summary' }] }, secret);
    assert.equal(await call('/api/summary', { authorization: 'Bearer ' + tok }), 200);
    assert.equal(await call('/api/summary?jwt=' + tok), 200);
    assert.equal(await call('/api/config/modify?jwt=' + tok), 403);
    assert.equal(await call('/api/summary', { authorization: 'Basic ' + btoa('lan:pw') }), 403, 'no peer address known: IP-bound users fail closed');
  });
});
