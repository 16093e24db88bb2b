// HTTP plumbing shared by the engine API and every plugin's routes: the JSON envelope, CORS, basic
// auth for the API, and errors as JSON.

import type { Context, Hono } from 'hono';
import { EngineError } from '../core/errors.ts';
import { FormatError } from '../format/bytes.ts';
import type { Logger } from '../log.ts';

export interface HttpConfig { cors: boolean; username: string; password: string }

/** `{ code: 0, message: 'ok', data }` */
export function ok(c: Context, data?: unknown): Response {
  return c.json({ code: 0, message: 'ok', data: data ?? null });
}

/** `{ code, message }` with the HTTP status as the code. */
export function fail(c: Context, status: number, message: string): Response {
  return c.json({ code: status, message }, status as 400);
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

export function applyMiddleware(app: Hono, http: () => HttpConfig, logger: Logger): void {
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
  // Basic auth guards the engine API and every plugin's API (/{plugin}/api/...): those start pulls
  // (the server fetches URLs, reads files) and stop streams. Players and publishers use stream keys.
  app.use('*', async (c, next) => {
    const conf = http();
    if (conf.username && conf.password && isApiPath(new URL(c.req.url).pathname)) {
      const h = c.req.header('authorization') ?? '';
      const want = 'Basic ' + btoa(`${conf.username}:${conf.password}`);
      if (h !== want) {
        return c.json({ code: 401, message: 'authentication required' }, 401, { 'www-authenticate': 'Basic realm="m7s"' });
      }
    }
    await next();
  });
  app.onError((err, c) => {
    if (err instanceof EngineError) return fail(c, err.httpStatus, err.message);
    if (err instanceof FormatError) return fail(c, 400, `bad input: ${err.message}`);
    logger.error('HTTP handler failed', { path: new URL(c.req.url).pathname, error: err });
    return fail(c, 500, 'internal error: ' + ((err as Error)?.message ?? String(err)));
  });
}

/** /api/... or /{plugin}/api/... */
export function isApiPath(path: string): boolean {
  return path === '/api' || path.startsWith('/api/') || /^\/[a-z][a-z0-9]*\/api(\/|$)/.test(path);
}

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
          ctl.enqueue(enc.encode(`data: ${JSON.stringify({ code: 0, message: 'ok', data: produce() })}\n\n`));
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
  const env = c.env as Record<string, any> | undefined;
  if (!env) return undefined;
  try {
    const sock = env.incoming?.socket;
    if (sock?.remoteAddress) return joinHostPort(sock.remoteAddress, sock.remotePort);
    if (typeof env.requestIP === 'function') {
      const a = env.requestIP(c.req.raw) as { address: string; port: number } | null;
      if (a?.address) return joinHostPort(a.address, a.port);
    }
    const ra = env.remoteAddr as { hostname?: string; port?: number } | undefined;
    if (ra?.hostname) return joinHostPort(ra.hostname, ra.port);
  } catch { /* not a request of ours */ }
  return undefined;
}

function joinHostPort(host: string, port: number | undefined): string {
  const h = host.startsWith('::ffff:') && host.includes('.') ? host.slice(7) : host;
  const hp = h.includes(':') ? `[${h}]` : h;
  return port ? `${hp}:${port}` : hp;
}
