// TCP, TLS and UDP on top of node:net, node:tls and node:dgram.
//
// These modules behave the same under Node, Bun and Deno (measured, see docs/architecture.md), so all
// three runtime adapters use this file. The shapes implemented here are declared in src/net/types.ts.
//
// Rules this file keeps:
// - A socket error never escapes: every socket has an 'error' listener, and the error is handed to
//   onClose(err) instead. A callback of ours that throws (for example a parser choking on hostile
//   bytes) destroys that one connection, never the process.
// - Writes never block and never throw. They queue in the socket's userland buffer; the return value
//   tells the producer when that buffer is above our own high-water mark (1 MiB by default, not Node's
//   16 KiB: a live stream writes whole frames, and 16 KiB would report backpressure on every key frame).
// - Chunks handed to onData / onMessage are plain Uint8Array views (no copy) rather than Buffers, so
//   the core sees the same type everywhere (Buffer#slice shares memory, Uint8Array#slice copies).

import * as net from 'node:net';
import * as tls from 'node:tls';
import * as dgram from 'node:dgram';
import type {
  ConnectOptions,
  ListenOptions,
  TcpConn,
  TcpServer,
  UdpOptions,
  UdpSocket,
} from '../../src/net/types.ts';
import { UdpUnsupportedError } from '../../src/net/types.ts';
import { ConnGuard, type GuardEntry } from './conn-guard.ts';
import { SocketWriter } from './direct-write.ts';

/** Default high-water mark for a connection's write queue. */
export const DEFAULT_HIGH_WATER_MARK = 1 << 20;
const DEFAULT_CONNECT_TIMEOUT = 10_000;

/** Connection ids are unique within the process (shared by TCP and TLS, server and client side). */
let nextConnId = 1;

/** A Buffer (or any view) as a plain Uint8Array over the same memory. */
export function asU8(b: Uint8Array): Uint8Array {
  return b.constructor === Uint8Array ? b : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** Node reports IPv4 peers of a dual-stack listener as "::ffff:1.2.3.4"; the core wants "1.2.3.4". */
export function normalizeAddress(addr: string | undefined): string {
  if (!addr) return '';
  return addr.startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr;
}

function toError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

/**
 * TcpConn over a net.Socket (or tls.TLSSocket, which is one).
 *
 * Reading starts when onData is first assigned: until then the socket stays paused and incoming bytes
 * wait in the kernel, so nothing is lost between accept/connect and the moment the owner wires its
 * parser (possibly after an await). A peer's close is noticed through reading, so a connection that
 * never reads should still set a no-op onData.
 */
class NodeTcpConn implements TcpConn {
  readonly id = nextConnId++;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localPort: number;
  onDrain: (() => void) | null = null;
  onClose: ((err?: Error) => void) | null = null;
  /** The connection cap's record of this connection (server side): marked active on its first byte. */
  guard: GuardEntry | null = null;

  readonly #socket: net.Socket;
  readonly #writer: SocketWriter;
  readonly #hwm: number;
  #onData: ((chunk: Uint8Array) => void) | null = null;
  #reading = false;
  #paused = false;
  #waitingDrain = false;
  #closed = false;
  #error: Error | undefined;

  constructor(socket: net.Socket, highWaterMark: number) {
    this.#socket = socket;
    this.#hwm = highWaterMark;
    this.#writer = new SocketWriter(socket, () => this.#maybeDrain());
    // Captured now: Node clears these once the socket is destroyed, and logs want them afterwards.
    this.remoteAddress = normalizeAddress(socket.remoteAddress);
    this.remotePort = socket.remotePort ?? 0;
    this.localPort = socket.localPort ?? 0;
    socket.setNoDelay(true);
    socket.on('error', (err) => {
      // Keep the first error; 'close' follows and reports it.
      this.#error ??= err;
    });
    socket.on('drain', () => this.#maybeDrain());
    socket.on('close', () => {
      if (this.#closed) return;
      this.#closed = true;
      if (this.guard) this.guard.guard.remove(this.guard);
      const cb = this.onClose;
      this.onClose = null;
      this.onDrain = null;
      try {
        cb?.(this.#error);
      } catch {
        // The connection is already gone; nothing else to unwind.
      }
    });
  }

  get buffered(): number {
    return this.#writer.buffered;
  }

  get gathers(): boolean {
    return this.#writer.gathers;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get onData(): ((chunk: Uint8Array) => void) | null {
    return this.#onData;
  }

  set onData(fn: ((chunk: Uint8Array) => void) | null) {
    this.#onData = fn;
    if (fn && !this.#reading) {
      this.#reading = true;
      this.#socket.on('data', (chunk: Buffer) => {
        const handler = this.#onData;
        if (!handler || this.#closed) return;
        if (this.guard) this.guard.active = true;
        try {
          handler(asU8(chunk));
        } catch (err) {
          this.destroy(toError(err));
        }
      });
      // Adding a 'data' listener switches the socket to flowing mode unless pause() was called.
      if (this.#paused) this.#socket.pause();
    }
  }

  write(chunk: Uint8Array): boolean {
    if (this.#closed || this.#writer.ended) return false;
    if (chunk.byteLength > 0) this.#writer.write(chunk);
    return this.#afterWrite();
  }

  writev(chunks: Uint8Array[]): boolean {
    if (this.#closed || this.#writer.ended) return false;
    if (chunks.length === 1) { if (chunks[0]!.byteLength > 0) this.#writer.write(chunks[0]!); }
    else this.#writer.writev(chunks); // one writev() for all chunks
    return this.#afterWrite();
  }

  #afterWrite(): boolean {
    if (this.#writer.buffered < this.#hwm) return true;
    this.#waitingDrain = true;
    return false;
  }

  /**
   * Called on Node's 'drain' (its own buffer emptied after a write that crossed its 16 KiB mark, always
   * the case before ours at 1 MiB is reached) and after each direct write that libuv completed later.
   * Half the high-water mark: the bytes may sit partly in Node's buffer and partly in libuv's queue,
   * and either completion may be the last one to come.
   */
  #maybeDrain(): void {
    if (!this.#waitingDrain || this.#closed || this.#writer.buffered > this.#hwm / 2) return;
    this.#waitingDrain = false;
    this.#call(this.onDrain);
  }

  pause(): void {
    this.#paused = true;
    this.#socket.pause();
  }

  resume(): void {
    this.#paused = false;
    // Without a 'data' listener, resuming would discard incoming bytes; onData's setter resumes later.
    if (this.#reading) this.#socket.resume();
  }

  setNoDelay(on: boolean): void {
    this.#socket.setNoDelay(on);
  }

  end(): void {
    if (!this.#socket.destroyed) this.#socket.end();
  }

  destroy(err?: Error): void {
    this.#socket.destroy(err);
  }

  #call(fn: (() => void) | null): void {
    if (!fn) return;
    try {
      fn();
    } catch (err) {
      this.destroy(toError(err));
    }
  }
}

export async function listenTcp(opts: ListenOptions, onConn: (conn: TcpConn) => void): Promise<TcpServer> {
  const hwm = opts.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
  const guard = new ConnGuard(`tcp ${opts.host ?? ''}:${opts.port}`, opts.maxConnections ?? 0);
  const accept = (socket: net.Socket) => {
    // The peer may already be gone (a port scanner, a reset during the TLS handshake).
    if (socket.destroyed) return;
    // Over the listener's or the process's connection cap: a silent connection makes room, or this one goes.
    const entry = guard.admit(() => socket.destroy());
    if (!entry) { socket.on('error', () => {}); socket.destroy(); return; }
    const conn = new NodeTcpConn(socket, hwm);
    conn.guard = entry;
    if (socket.destroyed) guard.remove(entry);
    try {
      onConn(conn);
    } catch (err) {
      conn.destroy(toError(err));
    }
  };

  let server: net.Server;
  if (opts.tls) {
    const tlsServer = tls.createServer({ cert: opts.tls.cert, key: opts.tls.key });
    tlsServer.on('secureConnection', accept);
    // A failed handshake destroys that socket; listening means it is not reported as unhandled.
    tlsServer.on('tlsClientError', () => {});
    server = tlsServer;
  } else {
    server = net.createServer(accept);
  }

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(opts.port, opts.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  // After listening, errors (EMFILE on accept and the like) must not crash the process.
  server.on('error', () => {});

  const addr = server.address() as net.AddressInfo;
  guard.what = `tcp ${addr.address}:${addr.port}`;
  return {
    port: addr.port,
    host: addr.address,
    close: () =>
      new Promise<void>((resolve) => {
        if (!server.listening) return resolve();
        // server.close()'s callback waits for every open connection; the contract is only that the
        // listener stops, which the 'close' of the handle does not tell us, so resolve on the next turn.
        server.close();
        setTimeout(resolve, 0);
      }),
  };
}

export function connectTcp(opts: ConnectOptions): Promise<TcpConn> {
  const hwm = opts.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
  const timeout = opts.timeout ?? DEFAULT_CONNECT_TIMEOUT;
  return new Promise<TcpConn>((resolve, reject) => {
    let socket: net.Socket;
    let readyEvent: string;
    if (opts.tls) {
      const t = opts.tls === true ? {} : opts.tls;
      // SNI is for host names only; sending an IP address as servername is a protocol error.
      const servername = t.servername ?? (net.isIP(opts.host) ? undefined : opts.host);
      socket = tls.connect({
        host: opts.host,
        port: opts.port,
        servername,
        rejectUnauthorized: t.rejectUnauthorized ?? true,
        ca: t.ca,
      });
      readyEvent = 'secureConnect';
    } else {
      socket = net.connect({ host: opts.host, port: opts.port });
      readyEvent = 'connect';
    }

    let settled = false;
    const timer = setTimeout(() => {
      fail(new Error(`connect to ${opts.host}:${opts.port} timed out after ${timeout} ms`));
    }, timeout);
    function fail(err: Error) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    }
    function ready() {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('error', fail);
      resolve(new NodeTcpConn(socket, hwm));
    }
    // Stays attached until the connection is handed over, so a late error after a timeout is swallowed.
    socket.on('error', fail);
    socket.once(readyEvent, ready);
  });
}

/**
 * A received datagram as a right-sized Uint8Array. Deno's node:dgram hands each datagram out as a view
 * into its own 64 KiB buffer; a consumer that keeps packets (jitter buffer, GOP cache) would then pin
 * 64 KiB per packet, so such views are copied (a 1.2 KB copy is cheap next to a receive).
 */
function ownDatagram(msg: Uint8Array): Uint8Array {
  const backing = msg.buffer.byteLength;
  if (backing > 8192 && backing > 2 * msg.byteLength) return new Uint8Array(msg);
  return asU8(msg);
}

/**
 * Where a runtime's node:dgram does not really set the receive buffer (Deno), its adapter passes these:
 * set/get SO_RCVBUF of the socket bound to `port` by other means. Errors thrown by set are reported
 * like the runtime's own ("not implemented" → UdpUnsupportedError).
 */
export interface RecvBufferOps {
  set(port: number, bytes: number): void;
  /** The kernel's value, 0 when unknown. */
  get(port: number): number;
}

/** What a runtime's node:dgram needs done differently (Deno: adapters/deno/runtime.ts). */
export interface UdpQuirks {
  rcvbuf?: RecvBufferOps;
  /**
   * Send one datagram at a time, the next when the previous one's callback came. Deno 2.9 runs each
   * send as its own async operation and they complete out of order: of 6000 datagrams sent in bursts
   * of 300 (3 to each of 100 peers), 665 arrived out of order per peer. Serialized, none do, at
   * ~19 500 datagrams/s on the loaded test machine.
   */
  serialSend?: boolean;
}

/** Datagrams a serialized socket queues before it drops new ones (as a full network queue would). */
const SERIAL_SEND_QUEUE = 16384;

/** The runtime this file runs in, for error messages ("… is not supported on deno"). */
const RUNTIME_NAME = 'Bun' in globalThis ? 'bun' : 'Deno' in globalThis ? 'deno' : 'node';

/**
 * UdpSocket over node:dgram. Node, Bun 1.4 and Deno 2.9 all implement what is used here (bind with
 * reuseAddr, send, receive buffer size, multicast membership/TTL/interface/loopback), checked by
 * test/udp.test.ts on each. Bun.udpSocket has no multicast membership and Deno.listenDatagram needs
 * --unstable-net, so neither is used. A call the runtime turns out not to implement throws
 * UdpUnsupportedError naming the runtime.
 */
class NodeUdpSocket implements UdpSocket {
  readonly port: number;
  readonly host: string;
  onMessage: ((data: Uint8Array, from: { address: string; port: number }) => void) | null = null;
  onError: ((err: Error) => void) | null = null;
  readonly #sock: dgram.Socket;
  #closed = false;

  readonly #rcvbuf: RecvBufferOps | undefined;
  /** serialSend: datagrams waiting for the one in flight. */
  readonly #queue: { data: Uint8Array; port: number; host: string }[] | null;
  #queueHead = 0;
  #sending = false;
  /** serialSend: datagrams dropped because the queue was full. */
  sendDropped = 0;

  constructor(sock: dgram.Socket, quirks: UdpQuirks = {}) {
    this.#sock = sock;
    this.#rcvbuf = quirks.rcvbuf;
    this.#queue = quirks.serialSend ? [] : null;
    const addr = sock.address();
    this.port = addr.port;
    this.host = addr.address;
    // ICMP errors (port unreachable) and the like arrive here: reported, never fatal (UDP is lossy).
    sock.on('error', (err: Error) => this.#reportError(err));
    sock.on('message', (msg: Buffer, rinfo: dgram.RemoteInfo) => {
      const handler = this.onMessage;
      if (!handler) return;
      try {
        handler(ownDatagram(msg), { address: normalizeAddress(rinfo.address), port: rinfo.port });
      } catch {
        // One bad datagram must not stop the socket (or the process).
      }
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  #reportError(err: unknown): void {
    const h = this.onError;
    if (!h || this.#closed) return;
    try {
      h(toError(err));
    } catch {
      // the owner's handler failing must not take the socket down
    }
  }

  /** Run one socket option call; a missing method or ENOSYS-like failure becomes UdpUnsupportedError. */
  #option<T>(feature: string, fn: (s: dgram.Socket) => T): T {
    if (this.#closed) throw new Error(`UDP ${feature}: socket is closed`);
    let r: T;
    try {
      r = fn(this.#sock);
    } catch (err) {
      const e = toError(err);
      if (e instanceof TypeError && /is not a function|not implemented/i.test(e.message)) throw new UdpUnsupportedError(RUNTIME_NAME, feature);
      if (/not implemented|ENOSYS|ENOTSUP|EOPNOTSUPP/i.test(e.message)) throw new UdpUnsupportedError(RUNTIME_NAME, feature);
      throw new Error(`UDP ${feature} failed on ${RUNTIME_NAME}: ${e.message}`);
    }
    return r;
  }

  readonly #afterSend = (err: Error | null): void => {
    if (err) this.#reportError(err);
  };

  send(data: Uint8Array, port: number, host: string): void {
    if (this.#closed) return;
    const q = this.#queue;
    if (q) {
      if (q.length - this.#queueHead >= SERIAL_SEND_QUEUE) {
        if (this.sendDropped++ === 0) this.#reportError(new Error(`UDP send queue full (${SERIAL_SEND_QUEUE} datagrams): dropping`));
        return;
      }
      q.push({ data, port, host });
      if (!this.#sending) this.#pump();
      return;
    }
    try {
      // The callback keeps a failed send (EHOSTUNREACH, ENOBUFS…) from becoming an 'error' event; one
      // function per socket, not a closure per datagram (the WebRTC ICE port sends every viewer's SRTP).
      this.#sock.send(data, port, host, this.#afterSend);
    } catch (err) {
      // Bad port or address: drop the datagram, as the network would, and say so.
      this.#reportError(err);
    }
  }

  /** serialSend: the next queued datagram, once the one before it was handed to the kernel. */
  #pump(): void {
    const q = this.#queue!;
    for (;;) {
      if (this.#closed || this.#queueHead >= q.length) {
        q.length = 0;
        this.#queueHead = 0;
        this.#sending = false;
        return;
      }
      const x = q[this.#queueHead]!;
      q[this.#queueHead++] = undefined as never;
      if (this.#queueHead > 1024 && this.#queueHead * 2 > q.length) { q.splice(0, this.#queueHead); this.#queueHead = 0; }
      this.#sending = true;
      try {
        this.#sock.send(x.data, x.port, x.host, (err) => {
          if (err) this.#reportError(err);
          this.#pump();
        });
        return;
      } catch (err) {
        this.#reportError(err); // bad port or address: this one is dropped, the next goes
      }
    }
  }

  getRecvBufferSize(): number {
    try {
      if (this.#closed) return 0;
      return this.#rcvbuf ? this.#rcvbuf.get(this.port) : this.#sock.getRecvBufferSize();
    } catch {
      return 0;
    }
  }

  setRecvBufferSize(bytes: number): void {
    const ops = this.#rcvbuf;
    this.#option('receive buffer size', (s) => ops ? ops.set(this.port, bytes) : s.setRecvBufferSize(bytes));
  }

  addMembership(group: string, iface?: string): void {
    this.#option(`multicast membership (join ${group})`, (s) => s.addMembership(group, iface));
  }

  dropMembership(group: string, iface?: string): void {
    this.#option(`multicast membership (leave ${group})`, (s) => s.dropMembership(group, iface));
  }

  setMulticastTTL(ttl: number): void {
    this.#option('multicast TTL', (s) => s.setMulticastTTL(ttl));
  }

  setMulticastInterface(iface: string): void {
    this.#option('multicast interface', (s) => s.setMulticastInterface(iface));
  }

  setMulticastLoopback(on: boolean): void {
    this.#option('multicast loopback', (s) => s.setMulticastLoopback(on));
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.onMessage = null;
    this.onError = null;
    return new Promise<void>((resolve) => {
      try {
        this.#sock.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }
}

export async function bindUdp(opts: UdpOptions, quirks?: UdpQuirks): Promise<UdpSocket> {
  const sock = dgram.createSocket({ type: opts.type ?? 'udp4', reuseAddr: opts.reuseAddr ?? false });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => {
      try {
        sock.close();
      } catch {
        // not bound: nothing to close
      }
      reject(err);
    };
    sock.once('error', onError);
    sock.bind(opts.port, opts.host, () => {
      sock.off('error', onError);
      resolve();
    });
  });
  const s = new NodeUdpSocket(sock, quirks);
  if (opts.recvBufferSize) {
    try {
      s.setRecvBufferSize(opts.recvBufferSize);
    } catch {
      // Above the kernel's limit (net.core.rmem_max) or unsupported: keep the default; getRecvBufferSize() tells.
    }
  }
  return s;
}
