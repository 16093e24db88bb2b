// The Deno Runtime: sockets, files and process come from the node adapter (node:net, node:dgram,
// node:tls, node:fs work unchanged on Deno with -A); so does HTTP by default (node:http, the Node
// adapter's server); with global.http.nativeserver, Deno's own server with hono/deno's WebSocket helper.

import type { Context } from 'hono';
import { upgradeWebSocket as honoUpgrade } from 'hono/deno';
import type { FetchHandler, HttpServeOptions, HttpServer, PeerInfo, Runtime, UpgradeWebSocket } from '../../src/net/types.ts';
import { bindUdp, connectTcp, listenTcp } from '../node/net.ts';
import { hostSysinfo, nodeHost } from '../node/host.ts';
import { isUpgrade, toHonoEvents, upgradeOr400 } from '../hono-ws.ts';
import { openWebSockets, serveGuarded } from './serve-guarded.ts';
import { nodeRuntime, serveNodeHttp } from '../node/runtime.ts';
import { denoRecvBuffer } from './udp-rcvbuf.ts';

/** The slice of Deno's API used here (this file is type-checked without Deno's types). */
interface DenoHttpServer {
  readonly addr: { hostname: string; port: number };
  readonly finished: Promise<void>;
  shutdown(): Promise<void>;
}
interface DenoGlobal {
  version: { deno: string };
  serve(
    options: Record<string, unknown>,
    handler: (req: Request, info: unknown) => Response | Promise<Response>,
  ): DenoHttpServer;
}

const Deno = (globalThis as unknown as { Deno: DenoGlobal }).Deno;

/**
 * How long close() waits for open responses. Deno.serve only has a graceful shutdown, which waits for
 * every response body to end; a live stream whose owner has not ended it would hold close() forever.
 * After this grace period close() resolves anyway (the listener is already closed; leftover
 * connections end when their streams end or the process exits).
 */
const SHUTDOWN_GRACE_MS = 2000;

/**
 * Deno.serve, kept for reference and for hosts without Deno.serveHttp: it has no connection hooks, so
 * no header timeout, no connection cap, and an uncaught EMFILE at the descriptor limit. The runtime
 * uses serveGuarded (./serve-guarded.ts) instead.
 */
export async function serveHttpUnguarded(opts: HttpServeOptions, fetch: FetchHandler): Promise<HttpServer> {
  let server!: DenoHttpServer;
  await new Promise<void>((resolve, reject) => {
    try {
      server = Deno.serve(
        {
          port: opts.port,
          hostname: opts.host,
          ...(opts.tls ? { cert: opts.tls.cert, key: opts.tls.key } : {}),
          // Without onListen Deno prints "Listening on …" to stdout.
          onListen: () => resolve(),
          // A handler that throws answers 500 instead of logging a stack per request.
          onError: () => new Response('internal error', { status: 500 }),
        },
        (req, info) => fetch(req, info),
      );
    } catch (err) {
      reject(err);
    }
  });
  let closing: Promise<void> | undefined;
  return {
    port: server.addr.port,
    host: server.addr.hostname,
    close: () =>
      (closing ??= Promise.race([
        server.shutdown(),
        new Promise<void>((resolve) => {
          const t = setTimeout(resolve, SHUTDOWN_GRACE_MS);
          // Don't let the grace timer alone keep the process alive.
          (t as unknown as { unref?: () => void }).unref?.();
          server.finished.then(() => clearTimeout(t), () => clearTimeout(t));
        }),
      ])),
  };
}

const upgradeNative: UpgradeWebSocket = (c, handler) => {
  const ctx = c as Context;
  if (!isUpgrade(ctx.req.raw)) return undefined;
  // Tracked so that closing a guarded server also ends its WebSockets (see serve-guarded.ts).
  const tracked = {
    ...handler,
    onOpen: (ws: Parameters<NonNullable<typeof handler.onOpen>>[0]) => { openWebSockets.add(ws); handler.onOpen?.(ws); },
    onClose: (ws: Parameters<NonNullable<typeof handler.onClose>>[0], code: number, reason: string) => { openWebSockets.delete(ws); handler.onClose?.(ws, code, reason); },
  };
  return upgradeOr400(honoUpgrade, ctx, toHonoEvents(tracked, (raw) => (raw as WebSocket).bufferedAmount));
};

/** Requests served by node:http carry its bindings ({ incoming, outgoing }) as env. */
const viaNodeHttp = (c: unknown): boolean => !!(c as { env?: { incoming?: unknown } }).env?.incoming;

const upgradeWebSocket: UpgradeWebSocket = (c, handler) =>
  viaNodeHttp(c) ? nodeRuntime.upgradeWebSocket(c, handler) : upgradeNative(c, handler);

/** Deno's own server passes ServeHandlerInfo (our env) whose remoteAddr is the peer. */
const connInfo = (c: unknown): PeerInfo | undefined => {
  if (viaNodeHttp(c)) return nodeRuntime.connInfo(c);
  const env = (c as Context).env as { remoteAddr?: { hostname?: string; port?: number } } | undefined;
  const a = env?.remoteAddr;
  return a?.hostname ? { address: a.hostname, port: a.port ?? 0 } : undefined;
};

/**
 * HTTP on Deno is served by node:http (the Node adapter: its connection guard, timeouts and the direct
 * streaming path that writes a shared buffer to every viewer's socket without a copy), which Deno runs
 * unchanged. `global.http.nativeserver: true` picks Deno's own server (Deno.serveHttp under our accept
 * loop with limits; Deno.serve where Deno.serveHttp is gone). Why node:http by default: at 1000 HTTP-FLV
 * viewers Deno's own server copied every shared chunk into each response's ReadableStream (65 % of a
 * core, 648 MB, players starved at 570 kb/s of 2.1 Mb/s); node:http on Deno served all of them at full
 * rate (see docs/BENCHMARKS.md, issue 19). m7s's own server (../http-server.ts, the default on Node and
 * Bun) costs Deno about what node:http does per join (bench/ws-join-cost.mjs, medians of three: a
 * WebSocket join 338 against 366 µs, an HTTP-FLV GET 300 against 308 µs), so Deno keeps node:http.
 */
const serveHttp = (opts: HttpServeOptions, fetch: FetchHandler): Promise<HttpServer> =>
  opts.native
    ? (typeof (globalThis as unknown as { Deno: { serveHttp?: unknown } }).Deno.serveHttp === 'function' ? serveGuarded(opts, fetch) : serveHttpUnguarded(opts, fetch))
    : serveNodeHttp(opts, fetch);

export const denoRuntime: Runtime = {
  ...nodeHost,
  name: 'deno',
  copySharedBody: true,
  listenTcp,
  connectTcp,
  // node:dgram, with the receive buffer set for real (Deno's setRecvBufferSize is a no-op; see
  // udp-rcvbuf.ts) and sends serialized (Deno's complete out of order; see UdpQuirks in ../node/net.ts).
  bindUdp: (opts) => bindUdp(opts, { rcvbuf: denoRecvBuffer, serialSend: true }),
  serveHttp,
  upgradeWebSocket,
  // Only for node:http requests; undefined for Deno's own server (a ReadableStream body, copied).
  streamResponse: nodeRuntime.streamResponse,
  connInfo,
  sysinfo: () => hostSysinfo('deno', Deno.version.deno),
};
