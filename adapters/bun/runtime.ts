// The Bun Runtime: sockets, files and process come from the node adapter (node:net, node:dgram,
// node:tls, node:fs work unchanged on Bun); HTTP is Bun.serve with hono/bun's WebSocket helpers.

import type { Context } from 'hono';
import { upgradeWebSocket as honoUpgrade, websocket } from 'hono/bun';
import type { FetchHandler, HttpServeOptions, HttpServer, PeerInfo, Runtime, UpgradeWebSocket } from '../../src/net/types.ts';
import { bindUdp, connectTcp, listenTcp } from '../node/net.ts';
import { hostSysinfo, nodeHost } from '../node/host.ts';
import { isUpgrade, toHonoEvents, upgradeOr400 } from '../hono-ws.ts';
import { nodeRuntime } from '../node/runtime.ts';
import { nodeStreamResponse } from '../node/stream-response.ts';

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
// served by node:http (the Node adapter, with its connection guard and timeouts), which Bun runs
// unchanged; `global.http.nativeserver: true` picks Bun.serve instead.

const serveHttp = (opts: HttpServeOptions, fetch: FetchHandler): Promise<HttpServer> =>
  opts.native ? serveNative(opts, fetch) : nodeRuntime.serveHttp(opts, fetch);

/** Requests served by node:http carry its bindings ({ incoming, outgoing }) as env. */
const upgradeWebSocket: UpgradeWebSocket = (c, handler) =>
  (c as { env?: { incoming?: unknown } }).env?.incoming ? nodeRuntime.upgradeWebSocket(c, handler) : upgradeNative(c, handler);

/** Bun.serve passes the server as the handler's second argument (our env); it knows each request's peer. */
const connInfo = (c: unknown): PeerInfo | undefined => {
  const ctx = c as Context;
  if ((ctx.env as { incoming?: unknown } | undefined)?.incoming) return nodeRuntime.connInfo(c); // served by node:http
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
  // Only for node:http requests; answers undefined for Bun.serve ones (they use a ReadableStream body).
  // Through res.write(): Bun's node:http socket hides its send buffer (adapters/node/stream-response.ts).
  streamResponse: (c, status, headers, hwm) => nodeStreamResponse(c, status, headers, hwm, true),
  connInfo,
  sysinfo: () => hostSysinfo('bun', Bun.version),
};
