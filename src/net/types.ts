// The socket, HTTP and host interfaces that each runtime adapter (adapters/node, bun, deno) implements.
// The hot path uses small callback interfaces, not Web Streams: on Node 20 wrapping a socket in Web
// Streams costs ~1.5x CPU per write (see docs/architecture.md). Web Streams appear only where they are
// natural: HTTP response bodies.

import type { ByteSink } from './body.ts';

/** A TCP (or TLS) connection. Writes never block: the adapter queues and reports how much is queued. */
export interface TcpConn {
  readonly id: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localPort: number;
  /** Bytes accepted by write() but not yet handed to the kernel. */
  readonly buffered: number;
  readonly closed: boolean;
  /** Queue one chunk. Returns false when `buffered` is above the high-water mark: stop and wait for onDrain. */
  write(chunk: Uint8Array): boolean;
  /** Queue several chunks as one vectored write (one syscall where the runtime allows). Same return as write().
   * The array is the caller's again when writev returns (the chunks, not the array, are kept). */
  writev(chunks: Uint8Array[]): boolean;
  /** writev() hands the chunks to the kernel as they are (one vectored write, nothing copied). False
   * where the runtime copies them into one buffer first (Bun): a chunk list shared by many connections
   * is then better joined once by its owner. */
  readonly gathers?: boolean;
  /** Called with each chunk read; the chunk belongs to the callee (adapters never reuse read buffers).
   * Reading starts when this is first set, so nothing is lost while the owner sets up. */
  onData: ((chunk: Uint8Array) => void) | null;
  /** Called once the write queue drops below the high-water mark after write() returned false. */
  onDrain: (() => void) | null;
  /** Called exactly once when the connection is gone (either side). `err` is set on an error. */
  onClose: ((err?: Error) => void) | null;
  /** Stop / restart reading (read-side backpressure). */
  pause(): void;
  resume(): void;
  setNoDelay(on: boolean): void;
  /** Close after the queued bytes are written. */
  end(): void;
  /** Close now, dropping queued bytes. */
  destroy(err?: Error): void;
}

export interface TlsOptions {
  /** PEM text. */
  cert: string;
  key: string;
}

export interface ListenOptions {
  port: number;
  /** Default: all interfaces. */
  host?: string;
  /** Serve TLS on this listener (RTMPS, RTSPS). */
  tls?: TlsOptions;
  /** write() returns false above this many queued bytes. Default 1 MiB. */
  highWaterMark?: number;
  /**
   * Most connections open at once on this listener (global.limits.maxconn); 0 = only the process-wide
   * cap the adapter derives from its descriptor limit. When full, the oldest connection that has not
   * sent a byte yet is closed to make room; if there is none, the new connection is refused.
   */
  maxConnections?: number;
}

export interface ConnectOptions {
  host: string;
  port: number;
  tls?: boolean | { servername?: string; rejectUnauthorized?: boolean; ca?: string };
  /** Milliseconds to wait for the connection. Default 10 000. */
  timeout?: number;
  highWaterMark?: number;
}

export interface TcpServer {
  readonly port: number;
  readonly host: string;
  /** Stop accepting; existing connections stay until they close. */
  close(): Promise<void>;
}

export interface UdpSocket {
  readonly port: number;
  readonly host: string;
  /** True once close() was called. */
  readonly closed: boolean;
  /** Send one datagram. Never throws: a bad address or a failed send goes to onError and the datagram is dropped. */
  send(data: Uint8Array, port: number, host: string): void;
  onMessage: ((data: Uint8Array, from: { address: string; port: number }) => void) | null;
  /**
   * Socket-level errors (ICMP port unreachable reported by the kernel, ENOBUFS, failed sends). The socket
   * stays open; UDP is lossy by nature, so these are information, not a reason to close.
   */
  onError: ((err: Error) => void) | null;
  /** The kernel's receive buffer size in bytes (Linux reports twice what was asked); 0 when unknown. */
  getRecvBufferSize(): number;
  /** Ask the kernel for a receive buffer of `bytes`. Throws UdpUnsupportedError / the kernel's error. */
  setRecvBufferSize(bytes: number): void;
  /** Join a multicast group on `iface` (an address of the interface; default: the kernel's choice). */
  addMembership(group: string, iface?: string): void;
  dropMembership(group: string, iface?: string): void;
  /** TTL (hops) of multicast datagrams this socket sends. */
  setMulticastTTL(ttl: number): void;
  /** Interface (its address) that outgoing multicast datagrams leave by. */
  setMulticastInterface(iface: string): void;
  /** Whether this host's own members of a group receive what this socket sends to it. */
  setMulticastLoopback(on: boolean): void;
  close(): Promise<void>;
}

/** Thrown where the runtime hosting the server has no such UDP feature (message names the runtime and feature). */
export class UdpUnsupportedError extends Error {
  constructor(readonly runtime: string, readonly feature: string) {
    super(`UDP ${feature} is not supported on ${runtime}`);
    this.name = 'UdpUnsupportedError';
  }
}

export interface UdpOptions {
  port: number;
  host?: string;
  /** 'udp4' (default) or 'udp6'. */
  type?: 'udp4' | 'udp6';
  /** Kernel receive buffer size in bytes, where the runtime allows (best effort: see getRecvBufferSize()). */
  recvBufferSize?: number;
  /** SO_REUSEADDR: several sockets on one port (multicast receivers). */
  reuseAddr?: boolean;
}

/** A WebSocket as the core sees it, whichever runtime hosts it. */
export interface WsConn {
  readonly id: number;
  /** Bytes queued by send() and not yet written. */
  readonly buffered: number;
  /** True once the socket has closed (either side); send() is then a no-op. */
  readonly closed: boolean;
  send(data: Uint8Array | string): void;
  /**
   * Optional: write one complete binary message that already carries its WebSocket frame header
   * (src/net/framing.ts 'ws'), as it is. Returns false when it cannot right now; send the payload then.
   * An array is one message in parts (the header first), written in order with no copy.
   */
  sendFramed?(frame: Uint8Array | readonly Uint8Array[]): boolean;
  /**
   * False where sendFramed() with an array costs a write call per part or a copy (Bun's sockets have
   * no writev): a sink then sends one buffer built once for all viewers instead. Absent = true.
   */
  readonly gathers?: boolean;
  close(code?: number, reason?: string): void;
}

export interface WsHandler {
  onOpen?(ws: WsConn): void;
  onMessage?(ws: WsConn, data: Uint8Array | string): void;
  onClose?(ws: WsConn, code: number, reason: string): void;
}

/** The fetch handler of the shared HTTP server (a hono app's `fetch`). */
// deno-lint-ignore no-explicit-any
export type FetchHandler = (req: Request, env?: any, ctx?: any) => Response | Promise<Response>;

export interface HttpServeOptions {
  port: number;
  host?: string;
  tls?: TlsOptions;
  /** Limits of this listener (global.http.readheadertimeout / idletimeout, global.limits.maxconn). */
  limits?: HttpLimits;
  /**
   * Bun and Deno: serve with the runtime's own HTTP server rather than the Node-compatible one (global.http.nativeserver).
   * Bun's own server has no connection cap or configurable header timeout. Other runtimes ignore it.
   */
  native?: boolean;
}

/** Connection limits of an HTTP listener (docs/limits.md). Durations in ms; 0 = off. */
export interface HttpLimits {
  /** A connection that has not sent a complete request head within this long is closed. */
  readHeaderTimeout: number;
  /** A keep-alive connection with no request in flight for this long is closed. */
  idleTimeout: number;
  /** Most connections at once (0 = only the process-wide cap); full: the oldest silent one goes. */
  maxConnections: number;
}

export interface HttpServer {
  readonly port: number;
  readonly host: string;
  close(): Promise<void>;
}

/**
 * The WebSocket upgrade the adapter provides. The HTTP layer calls it from a route handler with the
 * request; the adapter returns the upgrade Response (or undefined when the request is not an upgrade).
 * Implemented with hono's per-runtime helpers (@hono/node-server, hono/bun, hono/deno).
 */
export type UpgradeWebSocket = (c: unknown, handler: WsHandler) => Response | Promise<Response | undefined> | undefined;

export interface FileStat {
  size: number;
  mtimeMs: number;
  isFile: boolean;
  isDirectory: boolean;
}

export interface SysInfo {
  runtime: 'node' | 'bun' | 'deno' | 'edge';
  runtimeVersion: string;
  os: string;
  arch: string;
  cpus: number;
  hostname: string;
  pid: number;
  /** Resident set size and JS heap in bytes (0 where unknown). */
  memory: { rss: number; heapUsed: number; heapTotal: number; total: number; free: number };
  /** Process CPU time in microseconds since start (user, system). */
  cpuUsage: { user: number; system: number };
  loadavg: number[];
}

/** The remote end of an HTTP request: an IP address as the runtime reports it (IPv4-mapped IPv6
 * addresses such as `::ffff:127.0.0.1` are reported as they are; see src/http/ip.ts to compare them). */
export interface PeerInfo {
  address: string;
  port: number;
}

export interface StreamedResponse {
  sink: ByteSink;
  response: Response;
}

/**
 * What a host can do beyond serving HTTP: `net` raw TCP/UDP/TLS sockets (listenTcp, connectTcp, bindUdp),
 * `fs` files (readFile, writeFile, watchFile...), `proc` child processes. A plugin lists what it needs in
 * `definePlugin({ needs })` and is disabled with that reason on a host without it (the edge).
 */
export type Capability = 'net' | 'fs' | 'proc';

/** What each capability means, for messages ("needs net (TCP/UDP sockets)"). */
export const CAPABILITY_TEXT: Record<Capability, string> = {
  net: 'TCP/UDP sockets',
  fs: 'a file system',
  proc: 'child processes',
};

/**
 * The capabilities a runtime declares; a runtime that declares none is a full host with `net` and `fs`,
 * plus `proc` when it implements `spawn`.
 */
export function hostCapabilities(rt: Pick<Runtime, 'capabilities' | 'spawn'>): readonly Capability[] {
  return rt.capabilities ?? (rt.spawn ? ['net', 'fs', 'proc'] : ['net', 'fs']);
}

/** How to start a child process (`Runtime.spawn`). Pipes are opened for stdin/stdout/stderr unless 'ignore'. */
export interface SpawnOptions {
  cwd?: string;
  /** Added to the parent's environment. */
  env?: Record<string, string>;
  stdin?: 'pipe' | 'ignore';
  stdout?: 'pipe' | 'ignore';
  stderr?: 'pipe' | 'ignore';
}

/** How a child ended: its exit code, or the signal that ended it. */
export interface ChildExit {
  code: number | null;
  signal: string | null;
}

/**
 * A running child process (the `proc` capability). Output arrives through callbacks as the runtime reads
 * it; `pauseOutput()` stops reading stdout until `resumeOutput()` (backpressure: the child then blocks on
 * its writes). Chunks handed to the callbacks are the caller's to keep.
 */
export interface ChildProcess {
  readonly pid: number;
  /** Writes to stdin; false when the pipe's buffer is full (await `drain()` before writing more). */
  write(chunk: Uint8Array): boolean;
  /** Resolves when stdin can take more (at once when it can), or when the child has ended. */
  drain(): Promise<void>;
  /** Closes stdin (the child sees end of input). */
  endInput(): void;
  onStdout(cb: (chunk: Uint8Array) => void): void;
  onStderr(cb: (chunk: Uint8Array) => void): void;
  pauseOutput(): void;
  resumeOutput(): void;
  /** Sends a signal (default SIGTERM). No effect once the child has ended. */
  kill(signal?: 'SIGTERM' | 'SIGKILL' | 'SIGINT'): void;
  /** Resolves once when the child has ended and its output has been delivered. */
  readonly exited: Promise<ChildExit>;
}

/** Everything the runtime-agnostic code needs from its host. One implementation per runtime. */
export interface Runtime {
  readonly name: SysInfo['runtime'];
  /**
   * Optional capability list (see Capability). Undefined: `net`, `fs` and `proc` with `spawn` (node, bun, deno). A host
   * without `net` (edge, a restricted sandbox) lists what it has, e.g. `['fs']` or `[]`; its socket
   * methods may then throw. A host that lists capabilities lists `proc` itself when it has `spawn`.
   */
  readonly capabilities?: readonly Capability[];
  /**
   * Starts a child process (`proc` capability). Rejects with a clear error when it cannot be started
   * (for example the program is not found). Absent on hosts without child processes (the edge).
   */
  spawn?(cmd: string, args: readonly string[], opts?: SpawnOptions): Promise<ChildProcess>;
  listenTcp(opts: ListenOptions, onConn: (conn: TcpConn) => void): Promise<TcpServer>;
  connectTcp(opts: ConnectOptions): Promise<TcpConn>;
  bindUdp(opts: UdpOptions): Promise<UdpSocket>;
  /** Serve one fetch handler (the hono app). WebSocket upgrades go through `upgradeWebSocket`. */
  serveHttp(opts: HttpServeOptions, fetch: FetchHandler): Promise<HttpServer>;
  upgradeWebSocket: UpgradeWebSocket;
  /**
   * The peer of an HTTP request served by `serveHttp`, from hono context `c` (the runtime's own
   * connection info, never a client-supplied header). Undefined when unknown (a request that did not
   * come through `serveHttp`, e.g. `app.request()` in a test): callers treat that as "not trusted".
   */
  connInfo(c: unknown): PeerInfo | undefined;
  /**
   * Optional fast path for long-lived streaming responses (HTTP-FLV and the like): answer the request
   * of hono context `c` with `status` and `headers` at once and return a ByteSink that writes the body
   * straight to the connection, with the `response` the route handler must return. Undefined when the
   * runtime has none or cannot here (then return a ReadableStream body from createBodySink()).
   */
  streamResponse?(c: unknown, status: number, headers: Record<string, string>, highWaterMark: number): StreamedResponse | undefined;
  /**
   * Set where one Uint8Array must not be enqueued into several response bodies at once (Deno 2.9: a
   * body fed buffers that other bodies also hold stopped noticing its client's disconnect). Shared
   * packagings are then copied per response on the ReadableStream path.
   */
  readonly copySharedBody?: boolean;
  readFile(path: string): Promise<Uint8Array>;
  /**
   * Read a file as a stream of chunks (large files: FLV/MP4 pulls, VOD), reading only as fast as the
   * consumer pulls. Errors (not found, permission) surface on the first read. Optional: hosts without
   * it (edge) make callers fall back to readFile.
   */
  readFileStream?(path: string, opts?: { chunkSize?: number }): ReadableStream<Uint8Array>;
  readTextFile(path: string): Promise<string>;
  /** `mode`: permission bits for a new file (and set on an existing one), e.g. 0o600 for secrets. */
  writeFile(path: string, data: Uint8Array | string, opts?: { mode?: number }): Promise<void>;
  /**
   * Replace a file atomically: write a temporary file beside it, fsync, rename over it. On failure
   * (full disk, read-only directory) the file is unchanged and the error is thrown.
   */
  replaceFile(path: string, data: Uint8Array | string): Promise<void>;
  /** Open a file for appending chunks (recorders). */
  openWrite(path: string): Promise<{ write(data: Uint8Array): Promise<void>; close(): Promise<void> }>;
  stat(path: string): Promise<FileStat | null>;
  /** Size and free bytes of the file system holding `path` (record retention); null when unknown. Optional. */
  diskUsage?(path: string): Promise<{ total: number; free: number } | null>;
  /** Canonical absolute path, symlinks resolved; throws when the path does not exist. */
  realPath?(path: string): Promise<string>;
  /** Every address of a host name (IPv4 and IPv6), for the outbound policy. */
  lookup?(host: string): Promise<string[]>;
  mkdir(path: string): Promise<void>;
  remove(path: string): Promise<void>;
  readDir(path: string): Promise<string[]>;
  /** Call `onChange` (debounced) when the file changes. Returns a function that stops watching. */
  watchFile(path: string, onChange: () => void): () => void;
  /** Environment variables (a snapshot). */
  env(): Record<string, string | undefined>;
  /** Command-line arguments after the script name. */
  args(): string[];
  /** True when stdout is a terminal (pretty logs). */
  isTTY(): boolean;
  /** Write one line of log output. */
  writeLog(line: string, stream: 'stdout' | 'stderr'): void;
  onSignal(signal: 'SIGINT' | 'SIGTERM' | 'SIGHUP', handler: () => void): void;
  exit(code: number): never;
  sysinfo(): SysInfo;
}
