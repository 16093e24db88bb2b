// The Bun Runtime: sockets, files and process come from the node adapter (node:net, node:dgram,
// node:tls, node:fs work unchanged on Bun); HTTP is m7s's own server on Bun's raw sockets
// (./socket-server.ts), or Bun.serve with hono/bun's WebSocket helpers (global.http.nativeserver).

import type { Context } from 'hono';
import { upgradeWebSocket as honoUpgrade, websocket } from 'hono/bun';
import type { FetchHandler, HttpServeOptions, HttpServer, PeerInfo, Runtime, UpgradeWebSocket } from '../../src/net/types.ts';
import { bindUdp, connectTcp, listenTcp } from '../node/net.ts';
import { hostSysinfo, nodeHost } from '../node/host.ts';
import { isUpgrade, toHonoEvents, upgradeOr400 } from '../hono-ws.ts';
import { serveSockets, socketConnInfo, socketStreamResponse, socketUpgradeWebSocket } from './socket-server.ts';

/** The slice of Bun's API used here (this file is type-checked without bun-types). */
interface BunServer {
  readonly port: number;
  readonly hostname: string;
  stop(closeActiveConnections?: boolean): Promise<void> | void;
}
interface BunGlobal {
  version: string;
  serve(options: Record<string, unknown>): BunServer;
}
interface BunServerWebSocket {
  getBufferedAmount(): number;
}

const Bun = (globalThis as unknown as { Bun: BunGlobal }).Bun;

async function serveNative(opts: HttpServeOptions, fetch: FetchHandler): Promise<HttpServer> {
  const server = Bun.serve({
    port: opts.port,
    hostname: opts.host,
    // hono/bun finds the server (for upgrades) in the handler's second argument.
    fetch: (req: Request, srv: unknown) => fetch(req, srv),
    websocket,
    // Bun closes connections idle for 10 s by default; a live stream may pause longer than that.
    idleTimeout: 0,
    ...(opts.tls ? { tls: { cert: opts.tls.cert, key: opts.tls.key } } : {}),
    // A handler that throws must answer 500, not take the server down.
    error: () => new Response('internal error', { status: 500 }),
  });
  return {
    port: server.port,
    host: server.hostname,
    // true: also close open connections (live responses and WebSockets never end by themselves).
    close: async () => {
      await server.stop(true);
    },
  };
}

const upgradeNative: UpgradeWebSocket = (c, handler) => {
  const ctx = c as Context;
  if (!isUpgrade(ctx.req.raw)) return undefined;
  return upgradeOr400(honoUpgrade, ctx, toHonoEvents(handler, (raw) => (raw as BunServerWebSocket).getBufferedAmount()));
};

// ---- Limits (issue 9, fault 7). Bun.serve shows no connection to its caller: it cannot cap
// connections, its header timeout is fixed (~10 s, not configurable), and at the descriptor limit
// silent sockets lock every player out until Bun's own timer frees them. So by default HTTP on Bun is
// m7s's own server on Bun's raw sockets (./socket-server.ts: the connection guard and timeouts of the
// Node adapter, at Bun.serve's cost per connection); `global.http.nativeserver: true` picks Bun.serve.

const serveHttp = (opts: HttpServeOptions, fetch: FetchHandler): Promise<HttpServer> =>
  opts.native ? serveNative(opts, fetch) : serveSockets(opts, fetch);

const upgradeWebSocket: UpgradeWebSocket = (c, handler) =>
  socketConnInfo(c) ? socketUpgradeWebSocket(c, handler) : upgradeNative(c, handler);

/** Bun.serve passes the server as the handler's second argument (our env); it knows each request's peer. */
const connInfo = (c: unknown): PeerInfo | undefined => {
  const own = socketConnInfo(c);
  if (own) return own;
  const ctx = c as Context;
  const srv = ctx.env as { requestIP?: (r: Request) => { address: string; port: number } | null } | undefined;
  if (typeof srv?.requestIP !== 'function') return undefined;
  const info = srv.requestIP(ctx.req.raw);
  return info?.address ? { address: info.address, port: info.port ?? 0 } : undefined;
};

export const bunRuntime: Runtime = {
  ...nodeHost,
  name: 'bun',
  listenTcp,
  connectTcp,
  bindUdp,
  serveHttp,
  upgradeWebSocket,
  // Only for requests of our own server; undefined for Bun.serve ones (they use a ReadableStream body).
  streamResponse: socketStreamResponse,
  connInfo,
  sysinfo: () => hostSysinfo('bun', Bun.version),
};
