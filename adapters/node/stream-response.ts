// Runtime.streamResponse for Node: a live HTTP response body written straight to the socket.
//
// A ReadableStream body costs @hono/node-server a read() promise and a res.write() per chunk; for a
// thousand HTTP-FLV viewers that is most of the CPU. Here the handler's status and headers go out at
// once through the ServerResponse (Transfer-Encoding: chunked), and the body's chunks are written to
// the socket already framed. Shared packagings carry the chunk framing themselves (framing
// 'chunked'), so a viewer at the live edge costs one socket.write() of a buffer shared by all.
// res.end() writes the terminating zero-size chunk, so the connection stays valid for keep-alive.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { ByteSink } from '../../src/net/body.ts';
import { framingHead } from '../../src/net/framing.ts';
import { SocketWriter } from './direct-write.ts';
import type { StreamedResponse } from '../../src/net/types.ts';

const CRLF = new Uint8Array([13, 10]);

class NodeResponseSink implements ByteSink {
  readonly framing = 'chunked' as const;
  onDrain: (() => void) | null = null;
  onClose: ((err?: Error) => void) | null = null;
  #closed = false;
  #waitingDrain = false;
  readonly #res: ServerResponse;
  readonly #socket: Socket;
  readonly #writer: SocketWriter;
  readonly #hwm: number;
  /** Node's 'drain' or a direct write completed later; half the mark, as NodeTcpConn explains. */
  readonly #onDrain = () => {
    if (!this.#waitingDrain || this.#closed || this.#writer.buffered > this.#hwm / 2) return;
    this.#waitingDrain = false;
    try { this.onDrain?.(); } catch { /* the producer's problem */ }
  };

  constructor(res: ServerResponse, socket: Socket, hwm: number) {
    this.#res = res;
    this.#socket = socket;
    this.#hwm = hwm;
    this.#writer = new SocketWriter(socket, this.#onDrain);
    socket.setNoDelay(true);
    socket.on('drain', this.#onDrain);
    // 'close' on the response: the client went away, or our end() finished it.
    res.once('close', () => this.#finish(res.writableFinished ? undefined : new Error('client disconnected')));
  }

  get buffered(): number { return this.#closed ? 0 : this.#writer.buffered; }
  get closed(): boolean { return this.#closed; }

  write(chunk: Uint8Array): boolean {
    return chunk.byteLength ? this.writev([chunk]) : this.#check();
  }

  writev(chunks: Uint8Array[]): boolean {
    if (!this.#open()) return false;
    let size = 0;
    for (const c of chunks) size += c.byteLength;
    if (size === 0) return this.#check();
    this.#writer.writev([framingHead('chunked', size), ...chunks, CRLF]);
    return this.#check();
  }

  writeFramed(framed: Uint8Array): boolean {
    if (!this.#open()) return false;
    this.#writer.write(framed);
    return this.#check();
  }

  end(): void {
    if (this.#closed) return;
    try { this.#res.end(); } catch { /* already gone */ }
    this.#finish();
  }

  #open(): boolean {
    if (this.#closed) return false;
    if (this.#writer.ended) { this.#finish(new Error('client disconnected')); return false; }
    return true;
  }

  #check(): boolean {
    if (this.#writer.buffered < this.#hwm) return true;
    this.#waitingDrain = true;
    return false;
  }

  #finish(err?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.off('drain', this.#onDrain);
    const cb = this.onClose;
    this.onClose = null;
    this.onDrain = null;
    try { cb?.(err); } catch { /* the consumer is gone either way */ }
  }
}

/** Runtime.streamResponse under @hono/node-server (HTTP/1.x only; undefined otherwise). */
export function nodeStreamResponse(c: unknown, status: number, headers: Record<string, string>, highWaterMark: number): StreamedResponse | undefined {
  const env = (c as { env?: { incoming?: IncomingMessage; outgoing?: ServerResponse } }).env;
  const res = env?.outgoing;
  // HTTP/2 responses have a `stream`; a pipelined response whose turn has not come has no socket yet.
  if (!res || 'stream' in res || res.headersSent || typeof res.writeHead !== 'function') return undefined;
  const socket = res.socket as Socket | null;
  if (!socket || socket.destroyed || env.incoming?.httpVersionMajor !== 1 || env.incoming.httpVersionMinor !== 1) return undefined;
  res.writeHead(status, { ...headers, 'transfer-encoding': 'chunked' });
  res.flushHeaders();
  return { sink: new NodeResponseSink(res, socket, highWaterMark), response: RESPONSE_ALREADY_SENT };
}
