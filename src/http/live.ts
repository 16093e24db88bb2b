// Live feeds for the web console (plugins/console), as Server-Sent Events:
//   GET /api/events      stream and subscriber changes as they happen, and a summary every ?interval=
//   GET /api/logs/tail   the last log records, then new ones; ?level= (minimum), ?stream=, ?q= filters
// and the console's admin sessions (when global.http.username/password are set):
//   POST /admin/login {username, password} → {token, expires}; POST /admin/logout; GET /admin/session
// The session token is an HS256 JWT signed with the admin secret generated at first start
// (src/auth/secret.ts); the API accepts it as `Authorization: Bearer …` (see server.ts).
import type { Context, Hono } from 'hono';
import { signHs256, verifyJwt } from '../auth/jwt.ts';
import type { LogLevel, LogRecord } from '../log.ts';
import { LOG_LEVELS } from '../log.ts';
import { redact } from '../redact.ts';
import type { Server } from '../server.ts';
import { fail, ok } from './app.ts';
import { safeEqual } from './guard.ts';

const enc = new TextEncoder();

/** An SSE response: `setup` gets `send(event, data)` and returns its cleanup (called when the client leaves). */
export function sseResponse(setup: (send: (event: string, data: unknown) => void) => () => void): Response {
  let cleanup: (() => void) | undefined;
  let ping: ReturnType<typeof setInterval> | undefined;
  const stop = () => { clearInterval(ping); cleanup?.(); cleanup = undefined; };
  const body = new ReadableStream<Uint8Array>({
    start(ctl) {
      const send = (event: string, data: unknown) => {
        try { ctl.enqueue(enc.encode(`event: ${event}\ndata: ${JSON.stringify(redact(data))}\n\n`)); } catch { stop(); }
      };
      ctl.enqueue(enc.encode(': m7s\n\n'));
      cleanup = setup(send);
      ping = setInterval(() => { try { ctl.enqueue(enc.encode(': ping\n\n')); } catch { stop(); } }, 15_000);
    },
    cancel() { stop(); },
  });
  return new Response(body, { headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' } });
}

function intervalMs(s: string | undefined, def: number): number {
  const m = s ? /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(s) : null;
  if (!m) return def;
  return Math.max(250, m[2] === 'ms' ? +m[1] : +m[1] * 1000);
}

const RANK: Record<string, number> = Object.fromEntries(LOG_LEVELS.map((l, i) => [l, i]));

/** The console's view of one stream (small: 500 of these go out every second). */
export function streamBrief(s: any): Record<string, unknown> {
  const v = s.tracks.find((t: any) => t.kind === 'video');
  let bytesOut = 0, lagMax = 0;
  for (const x of s.subscribers) { bytesOut += x.bytesSent ?? 0; }
  return {
    path: s.path, state: s.state, subscribers: s.subscribers.size, publisher: s.publisher ? s.publisher.protocol : null,
    codecs: s.tracks.map((t: any) => t.codec), bps: s.tracks.reduce((a: number, t: any) => a + t.bps, 0),
    fps: v?.fps ?? 0, width: v?.info?.().width ?? undefined, height: v?.info?.().height ?? undefined, bytesOut, lagMax,
  };
}

export function mountLive(app: Hono, server: Server, summary: () => Record<string, unknown>): void {
  const engine = server.engine;

  // ---- /api/events
  app.get('/api/events', (c) => {
    const every = intervalMs(c.req.query('interval'), 1000);
    const withStreams = c.req.query('streams') !== 'false';
    return sseResponse((send) => {
      const tick = () => {
        const s = summary();
        const streams = withStreams ? [...engine.streams.values()].map(streamBrief) : undefined;
        send('summary', { ...s, streams, time: Date.now() });
      };
      tick();
      const timer = setInterval(tick, every);
      const offs = [
        engine.events.on('publish', (e) => send('publish', { path: e.stream.path, protocol: e.publisher.protocol, republish: e.republish })),
        engine.events.on('unpublish', (e) => send('unpublish', { path: e.stream.path, reason: e.reason })),
        engine.events.on('stream.close', (e) => send('close', { path: e.stream.path, reason: e.reason })),
        engine.events.on('subscribe', (e) => send('subscribe', { path: e.stream.path, id: e.subscriber.id, protocol: e.subscriber.protocol })),
        engine.events.on('unsubscribe', (e) => send('unsubscribe', { path: e.stream.path, id: e.subscriber.id, reason: e.reason })),
      ];
      return () => { clearInterval(timer); for (const off of offs) off(); };
    });
  });

  // ---- /api/logs/tail
  const backlog: LogRecord[] = [];
  const listeners = new Set<(r: LogRecord) => void>();
  server.logger.onRecord((r) => {
    backlog.push(r);
    if (backlog.length > 500) backlog.splice(0, backlog.length - 500);
    for (const l of listeners) l(r);
  });
  app.get('/api/logs/tail', (c) => {
    const level = (c.req.query('level') ?? 'trace') as LogLevel;
    if (RANK[level] === undefined) return fail(c, 400, `level: one of ${LOG_LEVELS.join(', ')}`);
    const stream = c.req.query('stream') || '';
    const q = (c.req.query('q') || '').toLowerCase();
    const want = (r: LogRecord) => RANK[r.level] >= RANK[level]
      && (!stream || r.fields.stream === stream || r.fields.streamPath === stream || r.fields.path === stream)
      && (!q || (r.msg + ' ' + JSON.stringify(r.fields)).toLowerCase().includes(q));
    const out = (r: LogRecord) => ({ time: r.time, level: r.level, msg: r.msg, fields: r.fields });
    return sseResponse((send) => {
      for (const r of backlog) if (want(r)) send('log', out(r));
      const l = (r: LogRecord) => { if (want(r)) send('log', out(r)); };
      listeners.add(l);
      return () => listeners.delete(l);
    });
  });

  // ---- the editor's config text
  app.get('/api/config/file', (c) => ok(c, { text: server.configText(), file: server.configFileName ?? null }));
  const configText = async (c: Context, dry: boolean) => {
    const text = await c.req.text();
    if (text.length > 1_000_000) return fail(c, 413, 'config body too large');
    const r = await server.replaceConfigText(text, dry);
    const issue = (i: { path: string; line?: number; message: string }) => ({ path: i.path, line: i.line ?? null, message: i.message });
    const data = { valid: !r.errors.length, errors: r.errors.map(issue), warnings: r.warnings.map(issue), saved: r.saved, changed: r.diff.map((d) => d.path) };
    if (r.errors.length) return c.json({ code: 400, message: 'invalid config', data: redact(data) }, 400);
    return ok(c, data);
  };
  app.post('/api/config/validate', (c) => configText(c, true));
  app.post('/api/config/apply', (c) => configText(c, false));

  // ---- admin sessions
  app.post('/admin/login', async (c) => {
    const h = server.config.global.http;
    if (!(h.username && h.password)) return fail(c, 404, 'no login: global.http.username and password are not set');
    const origin = c.req.header('origin');
    if (origin && new URL(origin).host !== c.req.header('host')) return fail(c, 403, 'cross-site login refused');
    let body: any;
    try { body = await c.req.json(); } catch { return fail(c, 400, 'body must be JSON {username, password}'); }
    const user = typeof body?.username === 'string' ? body.username : '';
    const pass = typeof body?.password === 'string' ? body.password : '';
    // Both compared in full (no early exit on the user name).
    const good = safeEqual(user, h.username) && safeEqual(pass, h.password);
    if (!good) {
      server.logger.warn('console login refused', { user: user.slice(0, 64) });
      await new Promise((r) => setTimeout(r, 300));
      return fail(c, 401, 'wrong user name or password');
    }
    // Not through ok(): that redacts every `token`, and this one is for the person who just logged in.
    return c.json({ code: 0, message: 'ok', data: await server.consoleSessions.issue(user) }, 200, { 'cache-control': 'no-store' });
  });
  app.post('/admin/logout', async (c) => {
    const token = bearer(c);
    if (token) await server.consoleSessions.revoke(token);
    return ok(c, { loggedOut: true });
  });
  app.get('/admin/session', async (c) => {
    const h = server.config.global.http;
    const token = bearer(c);
    const claims = token ? await server.consoleSessions.verify(token) : undefined;
    return ok(c, { loginRequired: !!(h.username && h.password), user: claims?.sub ?? null, expires: claims ? new Date((claims.exp as number) * 1000).toISOString() : null });
  });
}

export function bearer(c: Context): string | undefined {
  return /^Bearer\s+(\S+)$/i.exec(c.req.header('authorization') ?? '')?.[1];
}

/** Console sessions: HS256 tokens with the admin secret, `aud: m7s-console`, an expiry, and logout. */
export class ConsoleSessions {
  private readonly revoked = new Map<string, number>();
  constructor(private readonly secret: () => string, private readonly ttlMs: () => number) {}

  async issue(user: string): Promise<{ token: string; expires: string }> {
    const now = Math.floor(Date.now() / 1000);
    const exp = now + Math.max(60, Math.round(this.ttlMs() / 1000));
    const jti = crypto.randomUUID();
    const token = await signHs256({ sub: user, aud: 'm7s-console', iat: now, exp, jti }, this.secret());
    return { token, expires: new Date(exp * 1000).toISOString() };
  }

  /** The claims of a valid, unexpired, not logged-out console token; undefined otherwise. */
  async verify(token: string): Promise<Record<string, unknown> | undefined> {
    const secret = this.secret();
    if (!secret) return undefined;
    try {
      const claims = await verifyJwt(token, { secret, audience: 'm7s-console', leeway: 0 });
      if (typeof claims.exp !== 'number' || typeof claims.jti !== 'string' || this.revoked.has(claims.jti)) return undefined;
      return claims;
    } catch { return undefined; }
  }

  async revoke(token: string): Promise<void> {
    const claims = await this.verify(token);
    if (!claims) return;
    const now = Date.now() / 1000;
    for (const [k, exp] of this.revoked) if (exp < now) this.revoked.delete(k);
    this.revoked.set(claims.jti as string, claims.exp as number);
  }
}
