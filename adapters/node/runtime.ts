// The Node.js Runtime: sockets from ./net.ts, files/process from ./host.ts, HTTP by m7s's own server on
// node:net (./socket-server.ts), or with `global.http.nativeserver: true` by node:http through
// @hono/node-server 2.x, its WebSocket upgrades done by m7s (./ws-upgrade.ts).

import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import type { Context } from 'hono';
import type { FetchHandler, HttpServeOptions, HttpServer, PeerInfo, Runtime } from '../../src/net/types.ts';
import { bindUdp, connectTcp, listenTcp } from './net.ts';
import { hostSysinfo, nodeHost } from './host.ts';
import { nodeStreamResponse } from './stream-response.ts';
import { guardNodeHttpServer } from './http-guard.ts';
import { nodeUpgradeWebSocket, serveUpgrades, type UpgradeTracker } from './ws-upgrade.ts';
import { serveNodeSockets, socketConnInfo, socketStreamResponse, socketUpgradeWebSocket } from './socket-server.ts';

/** HTTP through node:http (@hono/node-server): `global.http.nativeserver: true` on Node, the default on Deno. */
export async function serveNodeHttp(opts: HttpServeOptions, fetch: FetchHandler): Promise<HttpServer> {
  const tlsOpts = opts.tls
    ? { createServer: createHttpsServer, serverOptions: { cert: opts.tls.cert, key: opts.tls.key } }
    : {};
  let server!: Server;
  let onListenError: (err: Error) => void = () => {};
  await new Promise<void>((resolve, reject) => {
    onListenError = reject;
    server = serve(
      {
        // @hono/node-server passes its bindings ({ incoming, outgoing }) as env (connInfo reads them).
        fetch: (req, env) => fetch(req, env),
        port: opts.port,
        hostname: opts.host,
        // @hono/node-server swaps the global Request/Response for lighter ones, a Node optimisation.
        // Bun and Deno run this server too, where their own Response is native and their own server
        // (global.http.nativeserver) accepts only that: leave the globals alone there.
        overrideGlobalObjects: !RUNS_ELSEWHERE,
        ...tlsOpts,
      },
      () => resolve(),
    ) as Server;
    server.once('error', onListenError);
  });
  server.off('error', onListenError);
  const sockets: UpgradeTracker = serveUpgrades(server, fetch, !!opts.tls);
  if (RUNS_ON_BUN) paceRequests(server);
  // Errors after listening (EMFILE on accept and the like) must not crash the process. Malformed
  // requests are answered 400 by node:http's default 'clientError' handling.
  server.on('error', () => {});
  // Live media requests last as long as the stream: an HTTP-FLV POST publish sends its body for hours,
  // so Node's whole-request deadline (300 s by default) must not apply. Header timeouts stay.
  server.requestTimeout = 0;
  // Header and keep-alive timeouts, connection cap (issue 9: silent connections never closed).
  const addr = server.address() as AddressInfo;
  guardNodeHttpServer(server, opts.limits, `http ${addr.address}:${addr.port}`);

  return {
    port: addr.port,
    host: addr.address,
    close: () =>
      new Promise<void>((resolve) => {
        // Live responses never finish on their own: close every connection, WebSockets included
        // (upgraded sockets are no longer tracked by the HTTP server).
        sockets.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Longest stretch of requests and WebSocket upgrades served in one event-loop turn on Bun (see paceRequests). */
const REQUEST_TURN_MS = 5;

/**
 * Bun only: at most REQUEST_TURN_MS of requests and WebSocket upgrades are served per turn of the
 * event loop; the rest wait in one queue, in arrival order, for the next turns. Bun's node:http server
 * accepts a pending connection, reads its request and runs our handler, then accepts the next, and
 * polls no other socket until the listening socket has nothing left. While players join faster than it
 * serves them (1000 players in 0.4 s; subscribe and catch-up GOP take some 0.5 ms each), the publisher
 * was not read for most of a second and every player got that stretch of the stream late: live edge
 * and display delay near 1 s for the whole session (WS-FLV: BENCHMARKS.md, fifth pass; HTTP-FLV:
 * ninth pass). Between the queue's turns the loop reads the publisher. What comes while the queue is
 * empty and this turn's budget lasts is served at once, so outside of a join storm nothing changes.
 * A request whose handler waits keeps its body: node:http holds a request's bytes until it is read.
 */
export function paceRequests(server: Server): void {
  type Listener = (...args: unknown[]) => void;
  const queue: { ls: Listener[]; args: unknown[] }[] = [];
  let turnStart = -1; // when this turn's work began; -1: none yet
  let timer: ReturnType<typeof setTimeout> | null = null;
  const serve = (ls: Listener[], args: unknown[]) => {
    for (const l of ls) {
      try {
        l.apply(server, args);
      } catch {
        // As node:http does when an upgrade listener throws; for a request, its response's socket.
        (args[1] as { destroy(): void }).destroy();
      }
    }
  };
  // The timer runs in the loop's next turn: it serves the queue within a fresh budget, or just ends the turn.
  const nextTurn = () => { timer ??= setTimeout(drain, 0); };
  const drain = () => {
    timer = null;
    turnStart = performance.now();
    let i = 0;
    while (i < queue.length && performance.now() - turnStart < REQUEST_TURN_MS) { const q = queue[i++]!; serve(q.ls, q.args); }
    queue.splice(0, i);
    if (queue.length) nextTurn();
    else turnStart = -1;
  };
  for (const event of ['request', 'upgrade'] as const) {
    const ls = server.listeners(event) as Listener[];
    if (!ls.length) continue;
    server.removeAllListeners(event);
    server.on(event, (...args: unknown[]) => {
      if (!queue.length) {
        const now = performance.now();
        if (turnStart < 0) { turnStart = now; nextTurn(); }
        if (now - turnStart < REQUEST_TURN_MS) { serve(ls, args); return; }
      }
      queue.push({ ls, args });
      nextTurn();
    });
  }
}

/** @hono/node-server passes `{ incoming, outgoing }` as env (like its conninfo helper reads it). */
const nodeHttpConnInfo = (c: unknown): PeerInfo | undefined => {
  const env = (c as Context).env as { incoming?: { socket?: { remoteAddress?: string; remotePort?: number } } } | undefined;
  const s = env?.incoming?.socket;
  return s?.remoteAddress ? { address: s.remoteAddress, port: s.remotePort ?? 0 } : undefined;
};

/** Bun or Deno running the Node adapter's HTTP server. */
const RUNS_ELSEWHERE = 'Bun' in globalThis || 'Deno' in globalThis;
const RUNS_ON_BUN = 'Bun' in globalThis;

/** Requests of m7s's own server, else node:http's. */
const serveHttp = (opts: HttpServeOptions, fetch: FetchHandler): Promise<HttpServer> =>
  opts.native ? serveNodeHttp(opts, fetch) : serveNodeSockets(opts, fetch);
const upgradeWebSocket: Runtime['upgradeWebSocket'] = (c, handler) =>
  socketConnInfo(c) ? socketUpgradeWebSocket(c, handler) : nodeUpgradeWebSocket(c, handler);
const connInfo = (c: unknown): PeerInfo | undefined => socketConnInfo(c) ?? nodeHttpConnInfo(c);
const streamResponse: NonNullable<Runtime['streamResponse']> = (c, status, headers, hwm) =>
  socketConnInfo(c) ? socketStreamResponse(c, status, headers, hwm) : nodeStreamResponse(c, status, headers, hwm);

export const nodeRuntime: Runtime = {
  ...nodeHost,
  name: 'node',
  listenTcp,
  connectTcp,
  bindUdp,
  serveHttp,
  upgradeWebSocket,
  connInfo,
  streamResponse,
  sysinfo: () => hostSysinfo('node', process.versions.node),
};
