// HTTP plumbing shared by the engine API and every plugin's routes: the JSON envelope, CORS, basic
// auth for the API, and errors as JSON.

import type { Context, Hono } from 'hono';
import { EngineError } from '../core/errors.ts';
import { FormatError } from '../format/bytes.ts';
import type { Logger } from '../log.ts';
import { peerOf } from './peer.ts';
import { apiAccess, type ApiAccessConfig, canonicalPath, isGuardedPath } from './guard.ts';
import { redact, redactUrl } from '../redact.ts';

export interface HttpConfig extends ApiAccessConfig { cors: boolean }

/** `{ code: 0, message: 'ok', data }`, secrets redacted (src/redact.ts): every API answer goes through here. */
export function ok(c: Context, data?: unknown): Response {
  return c.json({ code: 0, message: 'ok', data: redact(data ?? null) });
}

/** `{ code, message }` with the HTTP status as the code. */
export function fail(c: Context, status: number, message: string): Response {
  return c.json({ code: status, message: redactUrl(message) }, status as 400);
}

const CORS_HEADERS = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, POST, PUT, DELETE, OPTIONS',
  'access-control-allow-headers': 'content-type, authorization, range',
  'access-control-expose-headers': 'content-length, content-range, location',
  'access-control-max-age': '86400',
};

/** Requests whose responses get CORS headers (the middleware adds them after the handler returns). */
const corsRequests = new WeakSet<Request>();

/**
 * The headers the middleware would add to this request's response: for a handler that writes its
 * response head itself (Runtime.streamResponse) before the middleware sees the response.
 */
export function middlewareHeaders(c: Context): Record<string, string> {
  return corsRequests.has(c.req.raw) ? CORS_HEADERS : {};
}

/**
 * `peer(c)`: the request's peer address from the runtime (Runtime.connInfo), undefined when unknown.
 */
/**
 * The permission model's answer for an API request that carries credentials (Authorization, ?jwt=,
 * ?user=&pass=), or undefined when global.auth is not configured or the request carries none.
 */
export type ApiAuthorize = (c: Context, action: 'api' | 'metrics', path: string) => Promise<{ ok: boolean; status?: number; reason?: string } | undefined>;

export function applyMiddleware(app: Hono, http: () => HttpConfig, logger: Logger, peer: (c: Context) => string | undefined = () => undefined, authorize?: ApiAuthorize): void {
  app.use('*', async (c, next) => {
    const conf = http();
    if (conf.cors && c.req.method === 'OPTIONS') return new Response(null, { status: 204, headers: CORS_HEADERS });
    if (conf.cors) corsRequests.add(c.req.raw);
    await next();
    if (conf.cors) {
      // Streaming responses may carry immutable headers on some runtimes; copy into a new Response then.
      try {
        for (const [k, v] of Object.entries(CORS_HEADERS)) c.res.headers.set(k, v);
      } catch {
        const h = new Headers(c.res.headers);
        for (const [k, v] of Object.entries(CORS_HEADERS)) h.set(k, v);
        c.res = new Response(c.res.body, { status: c.res.status, statusText: c.res.statusText, headers: h });
      }
    }
  });
  // The API guard (src/http/guard.ts) covers the engine API and every plugin's API (/{plugin}/api/...):
  // those start pulls (the server fetches URLs, reads files), stop streams and rewrite config.yaml.
  // Players and publishers use stream keys.
  app.use('*', async (c, next) => {
    const url = c.req.url;
    const q = url.indexOf('?');
    const start = url.indexOf('/', url.indexOf(':') + 3);
    const rawPath = start < 0 ? '/' : url.slice(start, q < 0 ? undefined : q);
    // Players and publishers (no API path in any form) pass as apiAccess would let them, before the
    // peer lookup and the query are built: a join storm's requests are all of this kind.
    if (!isGuardedPath(c.req.path, rawPath)) { await next(); return; }
    const req = {
      method: c.req.method, path: c.req.path, rawPath, ip: peer(c), headers: c.req.raw.headers,
      query: new URLSearchParams(q < 0 ? '' : url.slice(q + 1)),
    };
    let d = apiAccess(req, http());
    if (!d.allow && d.refused === 'identity' && authorize && isGuardedPath(req.path, req.rawPath)) {
      // Users, JWTs and the HTTP callback of global.auth may grant the API (`api`) or metrics (`metrics`).
      const path = canonicalPath(req.path).slice(1);
      const r = await authorize(c, path === 'api/metrics' ? 'metrics' : 'api', path);
      if (r?.ok) d = apiAccess({ ...req, granted: true }, http());
      else if (r) d = { allow: false, status: r.status === 403 ? 403 : 401, message: r.reason ?? 'not allowed', headers: d.headers };
    }
    if (!d.allow) {
      // A refused Bearer token (a console session, a JWT) asks for a Bearer token again, not Basic: a
      // Basic challenge would make the browser pop its own login dialog over the web console.
      const h = d.headers && /^bearer\s/i.test(c.req.header('authorization') ?? '') && d.headers['www-authenticate']
        ? { ...d.headers, 'www-authenticate': 'Bearer realm="m7s"' } : d.headers;
      return c.json({ code: d.status, message: d.message }, d.status, h);
    }
    await next();
  });
  app.onError((err, c) => {
    if (err instanceof EngineError && err.code === 'Redirect' && err.location) {
      // Cluster redirect mode: the same path and query on the node that has the stream.
      const u = new URL(c.req.url);
      return c.redirect(err.location.replace(/\/+$/, '') + u.pathname + u.search, 302);
    }
    if (err instanceof EngineError) return fail(c, err.httpStatus, err.message);
    if (err instanceof FormatError) return fail(c, 400, `bad input: ${err.message}`);
    logger.error('HTTP handler failed', { path: new URL(c.req.url).pathname, error: err });
    return fail(c, 500, 'internal error');
  });
}

/** /api/... or /{plugin}/api/... in any spelling a router could decode (see guard.ts). */
export { isGuardedPath as isApiPath } from './guard.ts';

/**
 * A GET that answers JSON once, or, when the client sends `Accept: text/event-stream`, streams the
 * value as Server-Sent Events every `?interval=` (default 1s, minimum 100 ms) until the client leaves.
 */
export function jsonOrSse(c: Context, produce: () => unknown): Response {
  if (!(c.req.header('accept') ?? '').includes('text/event-stream')) return ok(c, produce());
  const iv = Math.max(100, parseIntervalMs(c.req.query('interval')) ?? 1000);
  const enc = new TextEncoder();
  let timer: ReturnType<typeof setInterval> | undefined;
  const body = new ReadableStream<Uint8Array>({
    start(ctl) {
      const send = () => {
        try {
          ctl.enqueue(enc.encode(`data: ${JSON.stringify({ code: 0, message: 'ok', data: redact(produce()) })}\n\n`));
        } catch { clearInterval(timer); }
      };
      send();
      timer = setInterval(send, iv);
    },
    cancel() { clearInterval(timer); },
  });
  return new Response(body, { headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' } });
}

function parseIntervalMs(s: string | undefined): number | undefined {
  if (!s) return undefined;
  const m = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(s);
  if (!m) return undefined;
  return m[2] === 'ms' ? +m[1] : m[2] === 's' ? +m[1] * 1000 : +m[1] * 1000;
}

// ---------------------------------------------------------------------------------------------------
// Peer address of an HTTP request, on each runtime (what the fetch handler's second argument holds):
// Node (@hono/node-server) the IncomingMessage in env.incoming, Bun the server (requestIP), Deno the
// ServeHandlerInfo (remoteAddr). "ip:port", or undefined when the host does not say (edge).

export function requestRemote(c: Context): string | undefined {
  const p = peerOf(c); // the one reader of each runtime's request context (src/http/peer.ts)
  return p ? joinHostPort(p.ip, p.port) : undefined;
}

function joinHostPort(host: string, port: number | undefined): string {
  const h = host.startsWith('::ffff:') && host.includes('.') ? host.slice(7) : host;
  const hp = h.includes(':') ? `[${h}]` : h;
  return port ? `${hp}:${port}` : hp;
}
