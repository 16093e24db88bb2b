// Deno's HTTP server with limits: our own accept loop over Deno.listen (Deno.listenTls) with HTTP served
// per connection by Deno.serveHttp, instead of Deno.serve.
//
// Why: Deno.serve owns its accept loop and shows no connection to its caller. Silent connections were
// never closed, and at the descriptor limit its accept failed with "Too many open files" as an uncaught
// rejection that ended the process (issue 9, fault 7). Here every accepted connection goes through the
// process-wide connection guard (adapters/node/conn-guard.ts: cap, eviction of the oldest silent
// connection), gets a header timeout (no complete request head within readHeaderTimeout: closed) and a
// keep-alive idle timeout, and an accept error is logged and retried with backoff, never thrown.
// The fetch handler gets `{ remoteAddr }` as its second argument, like Deno.serve's handler info.

import type { FetchHandler, HttpLimits, HttpServeOptions, HttpServer } from '../../src/net/types.ts';
import { ConnGuard, guardLog } from '../node/conn-guard.ts';
import { DEFAULT_HTTP_LIMITS } from '../node/http-guard.ts';

/** The slice of Deno's API used here (this file is type-checked without Deno's types). */
interface NetAddr { transport: string; hostname: string; port: number }
interface DenoConn { readonly remoteAddr: NetAddr; readonly localAddr: NetAddr; close(): void }
interface DenoListener { readonly addr: NetAddr; accept(): Promise<DenoConn>; close(): void }
interface RequestEvent { readonly request: Request; respondWith(r: Response | Promise<Response>): Promise<void> }
interface HttpConn { nextRequest(): Promise<RequestEvent | null>; close(): void }
interface DenoNs {
  listen(o: { hostname?: string; port: number }): DenoListener;
  listenTls(o: { hostname?: string; port: number; cert: string; key: string }): DenoListener;
  serveHttp(conn: DenoConn): HttpConn;
}
const Deno = (globalThis as unknown as { Deno: DenoNs }).Deno;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Open WebSockets of guarded servers: Deno.serveHttp lets go of upgraded connections, so close() ends them here. */
export const openWebSockets = new Set<{ close(code?: number, reason?: string): void }>();

/**
 * A response whose body is cancelled when `signal` aborts (the client left). Deno.serveHttp does not
 * cancel a body that has nothing to write, so an idle live stream would never learn its client is gone.
 */
function cancellable(res: Response, signal: AbortSignal): Response {
  const body = res.body;
  if (!body) return res;
  const reader = body.getReader();
  const onAbort = () => { reader.cancel(signal.reason).catch(() => {}); };
  signal.addEventListener('abort', onAbort, { once: true });
  const out = new ReadableStream<Uint8Array>({
    async pull(c) {
      const { value, done } = await reader.read();
      if (done) { signal.removeEventListener('abort', onAbort); c.close(); } else c.enqueue(value);
    },
    cancel(reason) { signal.removeEventListener('abort', onAbort); return reader.cancel(reason); },
  }, { highWaterMark: 0 });
  return new Response(out, { status: res.status, statusText: res.statusText, headers: res.headers });
}

export async function serveGuarded(opts: HttpServeOptions, fetch: FetchHandler): Promise<HttpServer> {
  const limits: HttpLimits = opts.limits ?? DEFAULT_HTTP_LIMITS;
  const listener = opts.tls
    ? Deno.listenTls({ hostname: opts.host ?? '0.0.0.0', port: opts.port, cert: opts.tls.cert, key: opts.tls.key })
    : Deno.listen({ hostname: opts.host ?? '0.0.0.0', port: opts.port });
  const addr = listener.addr;
  const guard = new ConnGuard(`http ${addr.hostname}:${addr.port}`, limits.maxConnections);
  const open = new Set<{ close(): void }>();
  let closed = false;

  const handle = (conn: DenoConn) => {
    const closeConn = () => { try { conn.close(); } catch { /* already closed */ } };
    // Eviction closes through whatever owns the connection by then (Deno.serveHttp takes it over).
    let killNow = closeConn;
    const entry = guard.admit(() => killNow());
    if (!entry) { closeConn(); return; }
    let http: HttpConn;
    try { http = Deno.serveHttp(conn); } catch { guard.remove(entry); closeConn(); return; }
    const kill = () => { try { http.close(); } catch { closeConn(); } };
    killNow = kill;
    const rec = { close: kill };
    open.add(rec);
    const info = { remoteAddr: conn.remoteAddr, localAddr: conn.localAddr };
    let timer: ReturnType<typeof setTimeout> | undefined;
    let inflight = 0;
    let ended = false;
    // Deno.serveHttp's requests carry no signal that fires when the client leaves: give each request our
    // own, aborted when the connection ends (nextRequest() settles) or its response fails.
    const live = new Set<AbortController>();
    // No complete request head within readHeaderTimeout (first request) or idleTimeout (keep-alive): close.
    const arm = (ms: number) => {
      clearTimeout(timer);
      timer = ms > 0 ? setTimeout(() => { if (inflight === 0) kill(); }, ms) : undefined;
    };
    arm(limits.readHeaderTimeout);
    (async () => {
      try {
        for (;;) {
          const ev = await http.nextRequest();
          if (!ev) break;
          entry.active = true;
          inflight++;
          clearTimeout(timer);
          const ac = new AbortController();
          live.add(ac);
          (async () => {
            let res: Response;
            const req = new Request(ev.request, { signal: ac.signal });
            try { res = await fetch(req, info); } catch { res = new Response('internal error', { status: 500 }); }
            // 101 (WebSocket upgrade) responses go back as they are.
            try { await ev.respondWith(res.status === 101 ? res : cancellable(res, ac.signal)); } catch { /* the client left */ }
            live.delete(ac);
            ac.abort();
            if (--inflight === 0) {
              entry.active = false;
              // The connection already ended: close it now that every response has been handed back
              // (closing it under a pending respondWith leaked that request's resources).
              if (ended) kill();
              else arm(limits.idleTimeout > 0 ? limits.idleTimeout : limits.readHeaderTimeout);
            }
          })();
        }
      } catch {
        // a broken connection (reset, bad request head): it is closed below
      } finally {
        for (const ac of live) ac.abort();
        live.clear();
        clearTimeout(timer);
        guard.remove(entry);
        open.delete(rec);
        ended = true;
        if (inflight === 0) kill();
      }
    })();
  };

  (async () => {
    let backoff = 5;
    let lastLog = 0;
    while (!closed) {
      let conn: DenoConn;
      try {
        conn = await listener.accept();
        backoff = 5;
      } catch (err) {
        if (closed) break;
        const msg = (err as Error)?.message ?? String(err);
        if (/closed|BadResource|Interrupted/i.test(msg) && !/too many open files/i.test(msg)) break;
        // Out of descriptors (EMFILE/ENFILE) or another transient failure: say so, wait, try again.
        const now = Date.now();
        if (now - lastLog > 10_000) {
          lastLog = now;
          guardLog('accept failed; retrying', { listener: `http ${addr.hostname}:${addr.port}`, error: msg, backoffMs: backoff });
        }
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 1000);
        continue;
      }
      handle(conn);
    }
  })();

  return {
    port: addr.port,
    host: addr.hostname,
    close: async () => {
      if (closed) return;
      closed = true;
      try { listener.close(); } catch { /* already closed */ }
      // Live responses never end by themselves: close every connection, WebSockets included.
      for (const c of [...open]) c.close();
      for (const ws of [...openWebSockets]) { try { ws.close(1001, 'server shutting down'); } catch { /* gone */ } }
    },
  };
}
