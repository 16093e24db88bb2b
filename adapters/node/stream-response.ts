// Runtime.streamResponse for Node (and Bun, Deno under node:http): a live HTTP response body written
// straight to the connection.
//
// A ReadableStream body costs @hono/node-server a read() promise and a res.write() per chunk; for a
// thousand HTTP-FLV viewers that is most of the CPU. Here the handler's status and headers go out at
// once through the ServerResponse (Transfer-Encoding: chunked), and the body goes out through one of
// two writers:
//
// - SocketBody (Node, Deno): chunks written to the socket already framed. Shared packagings carry the
//   chunk framing themselves (framing 'chunked'), so a viewer at the live edge costs one socket write
//   of a buffer shared by all (adapters/node/direct-write.ts). res.end() writes the terminating
//   zero-size chunk, so the connection stays valid for keep-alive.
// - ResponseBody (Bun): Bun's node:http socket takes every write at once and keeps what the kernel does
//   not take in a native buffer that neither its writableLength nor 'drain' shows (measured: 100 MB
//   written to a client that reads nothing, writableLength 0, write() never false, RSS growing). Its
//   ServerResponse does report that buffer (res.writableLength, write() false, 'drain' on res), and
//   frames each write as a chunk itself: so raw bytes (framing '') through res.write().

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { ByteSink } from '../../src/net/body.ts';
import { framingHead, type Framing } from '../../src/net/framing.ts';
import { bufferView } from './buffer-view.ts';
import { SocketWriter } from './direct-write.ts';
import type { StreamedResponse } from '../../src/net/types.ts';

const CRLF = new Uint8Array([13, 10]);

/** How a response body reaches the connection: its framing, queue and 'drain' source. */
interface BodyWriter {
  readonly framing: Framing;
  /** Bytes accepted but not yet taken by the kernel. */
  readonly buffered: number;
  /** The connection's writable side is gone: writes are dropped. */
  readonly ended: boolean;
  /** Emits 'drain'. */
  readonly drains: Socket | ServerResponse;
  /** One payload already carrying `framing`. */
  writeFramed(framed: Uint8Array): void;
  /** Payload bytes (framed here when `framing` asks for it), in order. */
  writev(chunks: Uint8Array[], size: number): void;
}

class SocketBody implements BodyWriter {
  readonly framing = 'chunked' as const;
  readonly #writer: SocketWriter;
  readonly drains: Socket;
  constructor(socket: Socket, onSettled: () => void) {
    this.drains = socket;
    this.#writer = new SocketWriter(socket, onSettled);
    socket.setNoDelay(true);
  }
  get buffered(): number { return this.#writer.buffered; }
  get ended(): boolean { return this.#writer.ended; }
  writeFramed(framed: Uint8Array): void { this.#writer.write(framed); }
  writev(chunks: Uint8Array[], size: number): void { this.#writer.writev([framingHead('chunked', size), ...chunks, CRLF]); }
}

class ResponseBody implements BodyWriter {
  readonly framing = '' as const;
  readonly drains: ServerResponse;
  constructor(res: ServerResponse) { this.drains = res; }
  get buffered(): number { return this.drains.writableLength; }
  get ended(): boolean { return this.drains.writableEnded || this.drains.destroyed; }
  writeFramed(framed: Uint8Array): void { this.drains.write(bufferView(framed)); }
  writev(chunks: Uint8Array[]): void { for (const c of chunks) if (c.byteLength) this.drains.write(bufferView(c)); }
}

class NodeResponseSink implements ByteSink {
  onDrain: (() => void) | null = null;
  onClose: ((err?: Error) => void) | null = null;
  #closed = false;
  #waitingDrain = false;
  readonly #res: ServerResponse;
  readonly #body: BodyWriter;
  readonly #hwm: number;
  /** 'drain' or a direct write completed later; half the mark, as NodeTcpConn explains. */
  readonly #onDrain = () => {
    if (!this.#waitingDrain || this.#closed || this.#body.buffered > this.#hwm / 2) return;
    this.#waitingDrain = false;
    try { this.onDrain?.(); } catch { /* the producer's problem */ }
  };

  constructor(res: ServerResponse, viaResponse: boolean, hwm: number) {
    this.#res = res;
    this.#hwm = hwm;
    this.#body = viaResponse ? new ResponseBody(res) : new SocketBody(res.socket as Socket, this.#onDrain);
    this.#body.drains.on('drain', this.#onDrain);
    // 'close' on the response: the client went away, or our end() finished it.
    res.once('close', () => this.#finish(res.writableFinished ? undefined : new Error('client disconnected')));
  }

  get framing(): Framing { return this.#body.framing; }
  /** Straight to the socket: one vectored write (through res.write, a call per chunk). */
  get gathers(): boolean { return this.#body instanceof SocketBody; }
  get buffered(): number { return this.#closed ? 0 : this.#body.buffered; }
  get closed(): boolean { return this.#closed; }

  write(chunk: Uint8Array): boolean {
    return chunk.byteLength ? this.writev([chunk]) : this.#check();
  }

  writev(chunks: Uint8Array[]): boolean {
    if (!this.#open()) return false;
    let size = 0;
    for (const c of chunks) size += c.byteLength;
    if (size === 0) return this.#check();
    this.#body.writev(chunks, size);
    return this.#check();
  }

  writeFramed(framed: Uint8Array): boolean {
    if (!this.#open()) return false;
    this.#body.writeFramed(framed);
    return this.#check();
  }

  end(): void {
    if (this.#closed) return;
    try { this.#res.end(); } catch { /* already gone */ }
    this.#finish();
  }

  #open(): boolean {
    if (this.#closed) return false;
    if (this.#body.ended) { this.#finish(new Error('client disconnected')); return false; }
    return true;
  }

  #check(): boolean {
    if (this.#body.buffered < this.#hwm) return true;
    this.#waitingDrain = true;
    return false;
  }

  #finish(err?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#body.drains.off('drain', this.#onDrain);
    const cb = this.onClose;
    this.onClose = null;
    this.onDrain = null;
    try { cb?.(err); } catch { /* the consumer is gone either way */ }
  }
}

/**
 * Runtime.streamResponse under @hono/node-server (HTTP/1.1 only; undefined otherwise). `viaResponse`:
 * the body goes through res.write() (Bun, see above) instead of the socket.
 */
export function nodeStreamResponse(c: unknown, status: number, headers: Record<string, string>, highWaterMark: number, viaResponse = false): StreamedResponse | undefined {
  const env = (c as { env?: { incoming?: IncomingMessage; outgoing?: ServerResponse } }).env;
  const res = env?.outgoing;
  // HTTP/2 responses have a `stream`; a pipelined response whose turn has not come has no socket yet.
  if (!res || 'stream' in res || res.headersSent || typeof res.writeHead !== 'function') return undefined;
  const socket = res.socket as Socket | null;
  if (!socket || socket.destroyed || env.incoming?.httpVersionMajor !== 1 || env.incoming.httpVersionMinor !== 1) return undefined;
  res.writeHead(status, { ...headers, 'transfer-encoding': 'chunked' });
  res.flushHeaders();
  return { sink: new NodeResponseSink(res, viaResponse, highWaterMark), response: RESPONSE_ALREADY_SENT };
}
