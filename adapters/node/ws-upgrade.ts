// WebSocket upgrades of a node:http server (Node, and Deno through its node:http), done by m7s itself:
// the handshake written to the upgrade's socket, frames by src/net/ws-session.ts (the same code as
// Bun's socket server), messages written through SocketWriter (direct-write.ts) like every live body.
//
// Why not @hono/node-server's upgrade with `ws`: per join it builds a Request and a Headers from the
// IncomingMessage, a waiter promise, ws's WebSocket (an EventEmitter with a Receiver stream and a
// Sender), hono's WSContext and an Event per open; and pre-framed media reached the socket only by
// reading ws's private sender state. In a join storm the server's core is the limit (BENCHMARKS.md,
// issue 19): what a join costs sets when the last player gets its first frame.

import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';
import { createHash } from 'node:crypto';
import { checkUpgradeRequest } from '../../src/format/websocket.ts';
import { responseHead } from '../../src/format/http1.ts';
import { WS_GUID, WsSession, type WsTransport } from '../../src/net/ws-session.ts';
import type { FetchHandler, UpgradeWebSocket, WsHandler } from '../../src/net/types.ts';
import { SocketWriter } from './direct-write.ts';
import { switchingResponse } from '../http-server.ts';
import { bufferView } from './buffer-view.ts';

/** What an upgrade request carries in its env (beside node:http's `incoming`), for nodeUpgradeWebSocket. */
const UPGRADE = Symbol('m7s.nodeUpgrade');
interface PendingUpgrade {
  socket: Socket;
  /** Bytes the client sent behind its head (node:http's `head` argument). */
  head: Uint8Array;
  /** The request's header pairs, names lower-case (read once per join). */
  headers: [string, string][];
  /** The socket was taken for a WebSocket: the upgrade listener writes no answer. */
  taken: boolean;
}
interface UpgradeEnv {
  incoming: IncomingMessage;
  outgoing: undefined;
  [UPGRADE]: PendingUpgrade;
}

/** Header pairs of a request, names lower-case (node:http's rawHeaders keep the client's case). */
function headerPairs(req: IncomingMessage): [string, string][] {
  const raw = req.rawHeaders, out: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i]!.toLowerCase(), raw[i + 1]!]);
  return out;
}

/** Answer an upgrade request that did not become a WebSocket with `res` (or `status`) and close. */
async function reject(socket: Socket, res: Response | undefined, status = 400): Promise<void> {
  if (socket.destroyed) return;
  const st = res ? res.status : status;
  let body = new Uint8Array(0);
  const headers: [string, string][] = [];
  if (res) {
    res.headers.forEach((v, k) => {
      const lk = k.toLowerCase();
      if (lk !== 'content-length' && lk !== 'transfer-encoding' && lk !== 'connection') headers.push([lk, v]);
    });
    try { body = new Uint8Array(await res.arrayBuffer()); } catch { /* a body that fails: none */ }
    if (body.byteLength > 64 * 1024) body = body.subarray(0, 64 * 1024);
  }
  if (socket.destroyed) return;
  const close: [string, string][] = [['connection', 'close'], ['content-length', String(body.byteLength)]];
  let head: Uint8Array;
  try {
    head = responseHead(st, [...headers, ...close]);
  } catch {
    // A header the handler set that cannot go on the wire (CR/LF, not a token): a bare 500.
    body = new Uint8Array(0);
    head = responseHead(500, [['connection', 'close'], ['content-length', '0']]);
  }
  socket.end(Buffer.concat([bufferView(head), bufferView(body)]));
}

/** The open WebSockets of one server (closed with it). */
export interface UpgradeTracker { close(): void }

/**
 * Serve node:http's 'upgrade' events through `fetch` (the hono app): a route that calls
 * nodeUpgradeWebSocket takes the socket; any other answer (a 404, a refused auth) is written back and
 * the connection closed.
 */
export function serveUpgrades(server: Server, fetch: FetchHandler, tls: boolean): UpgradeTracker {
  const open = new Set<Socket>();
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', () => {});
    if (req.headers.upgrade?.toLowerCase() !== 'websocket') { void reject(socket, undefined, 400); return; }
    const pending: PendingUpgrade = { socket, head, headers: headerPairs(req), taken: false };
    let request: Request;
    try {
      const target = req.url ?? '/';
      const url = target.startsWith('/') ? `${tls ? 'https' : 'http'}://${req.headers.host ?? 'localhost'}${target}` : target;
      request = new Request(url, { headers: pending.headers });
    } catch {
      void reject(socket, undefined, 400);
      return;
    }
    const env: UpgradeEnv = { incoming: req, outgoing: undefined, [UPGRADE]: pending };
    const done = (res: Response | undefined) => {
      if (pending.taken) {
        open.add(socket);
        socket.once('close', () => open.delete(socket));
        return;
      }
      void reject(socket, res, 500);
    };
    let out: Response | Promise<Response>;
    try {
      out = fetch(request, env);
    } catch {
      done(undefined);
      return;
    }
    if (out instanceof Promise) out.then(done, () => done(undefined));
    else done(out);
  });
  return { close: () => { for (const s of open) s.destroy(); open.clear(); } };
}


/** Runtime.upgradeWebSocket for requests served by serveUpgrades; undefined for any other request. */
export const nodeUpgradeWebSocket: UpgradeWebSocket = (c, handler: WsHandler) => {
  const env = (c as { env?: Partial<UpgradeEnv> }).env;
  const pending = env?.[UPGRADE];
  const req = env?.incoming;
  if (!pending || !req || pending.taken) return undefined;
  const pairs = pending.headers;
  const bad = checkUpgradeRequest(req.method ?? '', pairs);
  if (bad) return new Response(`${bad}\n`, { status: 400, headers: { 'content-type': 'text/plain; charset=utf-8' } });
  const socket = pending.socket;
  if (socket.destroyed) return new Response(null, { status: 500 });
  let key = '';
  for (const [k, v] of pairs) if (k === 'sec-websocket-key') key = v.trim();
  const accept = createHash('sha1').update(key + WS_GUID).digest('base64');
  pending.taken = true;
  socket.setTimeout(0);
  socket.setNoDelay(true);
  const writer = new SocketWriter(socket, () => {});
  const transport: WsTransport = {
    get buffered() { return writer.buffered; },
    gathers: writer.gathers,
    write: (b) => { if (!writer.ended) writer.write(b); },
    writev: (parts) => { if (!writer.ended) writer.writev(parts); },
    endAfterFlush: () => { if (!writer.ended) socket.end(); },
    destroy: () => { socket.destroy(); },
  };
  transport.write(responseHead(101, [['upgrade', 'websocket'], ['connection', 'Upgrade'], ['sec-websocket-accept', accept]]));
  const ws = new WsSession(transport, handler);
  socket.once('close', () => ws.onSocketClose());
  // node:http's sockets are half-open: a client that sent FIN without a close frame is gone.
  socket.once('end', () => socket.end());
  const early = pending.head.byteLength ? [pending.head] : undefined;
  // After the route returned (as a runtime's own upgrade does): onOpen, then what came behind the head,
  // then the socket's later bytes. node:http leaves an upgraded socket unread until it gets a 'data'
  // listener, so nothing can overtake the head.
  queueMicrotask(() => {
    ws.open(early);
    socket.on('data', (chunk: Buffer) => ws.onData(chunk));
    socket.resume();
  });
  return switchingResponse();
};
