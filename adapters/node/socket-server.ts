// m7s's HTTP server (../http-server.ts) on node:net: the default on Node.
//
// Why not node:http (kept for `global.http.nativeserver: true`): per request it builds an
// IncomingMessage, a ServerResponse with its header machinery, and through @hono/node-server a Request
// and a response writer; a live body's head went out as a socket write of its own. Here a connection
// costs a net.Socket and a Conn, a request a parsed head and a Request; live bodies and WebSocket
// messages reach the kernel through SocketWriter (./direct-write.ts), the head of a live body in the
// same write as its first chunk.
//
// TLS: the connection is admitted (connection cap, header timeout) when it is accepted, before its
// handshake, so silent TLS connections are evicted like silent plain ones; the TLS socket is made over it.

import * as net from 'node:net';
import * as tls from 'node:tls';
import { Conn, nativeRequest, SocketServer, type Wire } from '../http-server.ts';
import { lightRequest } from '../light-request.ts';
import type { FetchHandler, HttpServeOptions, HttpServer, PeerInfo } from '../../src/net/types.ts';
import { DEFAULT_HTTP_LIMITS } from './http-guard.ts';
import { SocketWriter } from './direct-write.ts';
import { normalizeAddress } from './net.ts';

export { socketConnInfo, socketStreamResponse, socketUpgradeWebSocket } from '../http-server.ts';

/** Node's Request is undici's, ~100 µs a join under load: requests are light ones (../light-request.ts).
 * Deno's default is node:http (adapters/deno/runtime.ts); where Deno runs this server (bench/
 * ws-join-cost.mjs's deno-m7s-sockets) its native Request costs 1–2 µs and is kept. */
const LIGHT = !('Deno' in globalThis);

/** A node:net (or node:tls) socket as a Wire. */
class NodeWire implements Wire {
  readonly peer: PeerInfo;
  conn: Conn | null = null;
  readonly #writer: SocketWriter;
  constructor(private readonly socket: net.Socket, raw: net.Socket) {
    this.peer = { address: normalizeAddress(raw.remoteAddress), port: raw.remotePort ?? 0 };
    // A direct write that completed later: the connection checks its drain waiters.
    this.#writer = new SocketWriter(socket, () => this.conn?.onDrain());
  }
  get buffered(): number { return this.#writer.buffered; }
  get gathers(): boolean { return this.#writer.gathers; }
  write(b: Uint8Array): void { if (!this.#writer.ended) this.#writer.write(b); }
  writev(chunks: readonly Uint8Array[]): void { if (!this.#writer.ended) this.#writer.writev(chunks); }
  /** After what is queued (libuv shuts the socket down after its pending writes), then closed, as
   * node:http closes a `Connection: close` answer: a client still sending (an FLV POST the engine
   * stopped) sees the connection go, not just our FIN. */
  end(): void { if (!this.#writer.ended) (this.socket as net.Socket & { destroySoon(): void }).destroySoon(); }
  terminate(): void { this.socket.destroy(); }
  pause(): void { this.socket.pause(); }
  resume(): void { this.socket.resume(); }
}

export async function serveNodeSockets(opts: HttpServeOptions, fetch: FetchHandler): Promise<HttpServer> {
  const limits = opts.limits ?? DEFAULT_HTTP_LIMITS;
  const server = new SocketServer(fetch, limits, !!opts.tls, `http ${opts.host ?? ''}:${opts.port}`, LIGHT ? lightRequest : nativeRequest);
  const secureContext = opts.tls ? tls.createSecureContext({ cert: opts.tls.cert, key: opts.tls.key }) : null;
  const listener = net.createServer({ noDelay: true }, (raw) => {
    raw.on('error', () => {});
    // The peer may already be gone (a port scanner, a reset right after the handshake).
    if (raw.destroyed) return;
    const socket = secureContext ? new tls.TLSSocket(raw, { isServer: true, secureContext }) : raw;
    if (socket !== raw) socket.on('error', () => {});
    const wire = new NodeWire(socket, raw);
    const conn = new Conn(wire, server);
    if (conn.isClosed) return;
    wire.conn = conn;
    socket.on('data', (chunk: Buffer) => {
      if (conn.isClosed) return;
      try {
        conn.onData(chunk);
      } catch {
        conn.destroy();
      }
    });
    socket.on('drain', () => conn.onDrain());
    socket.once('close', () => conn.onClose());
  });
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(opts.port, opts.host, () => {
      listener.off('error', reject);
      resolve();
    });
  });
  // After listening, errors (EMFILE on accept and the like) must not crash the process.
  listener.on('error', () => {});
  const addr = listener.address() as net.AddressInfo;
  server.guard.what = `http ${addr.address}:${addr.port}`;
  return {
    port: addr.port,
    host: addr.address,
    close: () =>
      new Promise<void>((resolve) => {
        // Live responses and WebSockets never end by themselves: close every connection.
        listener.close(() => resolve());
        for (const c of [...server.conns]) c.destroy();
      }),
  };
}
