// m7s's HTTP server (../http-server.ts) on Bun's raw TCP sockets (Bun.listen): the default on Bun.
//
// Bun.listen gives the connection itself at Bun.serve's cost per join; Bun's socket write() takes what
// the kernel takes and returns the count, so what it did not take waits here, in this connection's
// queue, and the buffered count is real.

import cluster from 'node:cluster';
import { Conn, SocketServer, type Wire } from '../http-server.ts';
import type { FetchHandler, HttpServeOptions, HttpServer, PeerInfo } from '../../src/net/types.ts';
import { DEFAULT_HTTP_LIMITS } from '../node/http-guard.ts';

export { socketConnInfo, socketStreamResponse, socketUpgradeWebSocket } from '../http-server.ts';

/** The slice of Bun's socket API used here (this file is type-checked without bun-types). */
interface BunSocket {
  data: BunWire | undefined;
  readonly remoteAddress: string;
  readonly remotePort?: number;
  write(data: Uint8Array | string): number;
  end(): void;
  terminate(): void;
  pause?(): void;
  resume?(): void;
  setNoDelay?(on: boolean): void;
}
interface BunListener {
  readonly port: number;
  readonly hostname: string;
  stop(closeActive?: boolean): void;
}
const Bun = (globalThis as unknown as { Bun: { listen(o: Record<string, unknown>): BunListener } }).Bun;

/** Chunks this large are written as they are; runs of smaller ones are joined into one write. */
const JOIN_BELOW = 8 * 1024;

/** A Bun socket as a Wire: what the kernel did not take waits here, in order. */
class BunWire implements Wire {
  readonly peer: PeerInfo;
  /** Bun's sockets have no writev: an array of parts costs a copy (writev below). */
  readonly gathers = false;
  conn: Conn | null = null;
  #q: Uint8Array[] = [];
  #bytes = 0;
  #ended = false;
  #ending = false;
  constructor(private readonly sock: BunSocket) {
    this.peer = { address: sock.remoteAddress, port: sock.remotePort ?? 0 };
  }

  get buffered(): number { return this.#bytes; }

  write(b: Uint8Array): void {
    if (this.#ended || this.#ending || !b.byteLength) return;
    if (this.#q.length) { this.#q.push(b); this.#bytes += b.byteLength; return; }
    const n = this.sock.write(b);
    if (n < 0) { this.#gone(); return; }
    if (n < b.byteLength) { const r = b.subarray(n); this.#q.push(r); this.#bytes += r.byteLength; }
  }

  /** In order: runs of small chunks joined (one copy of a few small pieces), large chunks as they are. */
  writev(chunks: readonly Uint8Array[]): void {
    let from = 0, bytes = 0;
    const run = (to: number) => {
      if (to - from === 1) this.write(chunks[from]!);
      else if (to > from) {
        const out = new Uint8Array(bytes);
        let off = 0;
        for (let i = from; i < to; i++) { out.set(chunks[i]!, off); off += chunks[i]!.byteLength; }
        this.write(out);
      }
    };
    for (let i = 0; i < chunks.length; i++) {
      const n = chunks[i]!.byteLength;
      if (n >= JOIN_BELOW || n === 0) {
        run(i);
        if (n) this.write(chunks[i]!);
        from = i + 1; bytes = 0;
      } else bytes += n;
    }
    run(chunks.length);
  }

  end(): void {
    if (this.#ended || this.#ending) return;
    this.#ending = true;
    if (!this.#bytes) this.sock.end();
  }

  terminate(): void {
    this.#ended = true;
    this.sock.terminate();
  }

  pause(): void { this.sock.pause?.(); }
  resume(): void { this.sock.resume?.(); }

  /** The socket can take more: write what waits (and end, when asked to), then tell the connection. */
  onDrain(): void {
    while (this.#q.length && !this.#ended) {
      const b = this.#q[0]!;
      const n = this.sock.write(b);
      if (n < 0) { this.#gone(); return; }
      this.#bytes -= n;
      if (n < b.byteLength) { this.#q[0] = b.subarray(n); break; }
      this.#q.shift();
    }
    if (this.#ending) { if (!this.#bytes && !this.#ended) { this.#ended = true; this.sock.end(); } return; }
    this.conn?.onDrain();
  }

  onClose(): void {
    this.#ended = true;
    this.conn?.onClose();
  }

  #gone(): void {
    this.#ended = true;
    this.conn?.destroy();
  }
}

export async function serveSockets(opts: HttpServeOptions, fetch: FetchHandler): Promise<HttpServer> {
  const limits = opts.limits ?? DEFAULT_HTTP_LIMITS;
  const server = new SocketServer(fetch, limits, !!opts.tls, `http ${opts.host ?? '0.0.0.0'}:${opts.port}`);
  const listener = Bun.listen({
    hostname: opts.host ?? '0.0.0.0',
    port: opts.port,
    // Workers of `--workers N` (adapters/node/workers.ts) share the ports: node:cluster on Bun binds
    // with SO_REUSEPORT, and so must this listener there (only there: elsewhere a port taken is an error).
    reusePort: cluster.isWorker === true,
    ...(opts.tls ? { tls: { cert: opts.tls.cert, key: opts.tls.key } } : {}),
    socket: {
      open(sock: BunSocket) {
        const wire = new BunWire(sock);
        const conn = new Conn(wire, server);
        if (conn.isClosed) return;
        sock.setNoDelay?.(true);
        wire.conn = conn;
        sock.data = wire;
      },
      data(sock: BunSocket, chunk: Uint8Array) {
        const conn = sock.data?.conn;
        if (!conn || conn.isClosed) return;
        try {
          conn.onData(chunk);
        } catch {
          conn.destroy();
        }
      },
      drain(sock: BunSocket) { sock.data?.onDrain(); },
      close(sock: BunSocket) { sock.data?.onClose(); },
      error(sock: BunSocket) { sock.data?.conn?.destroy(); },
    },
  });
  server.guard.what = `http ${listener.hostname}:${listener.port}`;
  return {
    port: listener.port,
    host: listener.hostname,
    close: async () => {
      listener.stop(true);
      for (const c of [...server.conns]) c.destroy();
    },
  };
}
