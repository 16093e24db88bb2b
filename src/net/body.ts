// Byte sinks for streaming egress over HTTP (a ReadableStream response body) and over WebSocket.
//
// A ByteSink has the same shape as the write half of a TcpConn, so a muxer (HTTP-FLV, fMP4, TS…)
// writes to a TCP connection, an HTTP body or a WebSocket through one interface: write() queues and
// returns false above the high-water mark, onDrain says when to go on, onClose says the consumer is
// gone. Runtime-agnostic: only Web Streams and timers are used here.

import { framingHead, type Framing } from './framing.ts';
import type { WsConn } from './types.ts';

/** Default high-water mark: bytes queued before write() starts returning false. */
export const DEFAULT_SINK_HIGH_WATER_MARK = 1 << 20;

/** How often wsByteSink checks WsConn.buffered while waiting for drain (no runtime has a drain event
 * common to all three WebSocket implementations). Only runs while a producer is actually waiting. */
export const WS_DRAIN_POLL_MS = 20;

export interface ByteSink {
  /** Queue one chunk (not copied: do not modify it afterwards). False when above the high-water mark. */
  write(chunk: Uint8Array): boolean;
  /** Queue several chunks in order. Same return as write(). */
  writev(chunks: Uint8Array[]): boolean;
  /**
   * True when writev() hands its chunks to the connection as they are, in one vectored write (no copy,
   * no call per chunk): many small chunks then cost about what one buffer does.
   */
  readonly gathers?: boolean;
  /** Bytes queued and not yet taken by the consumer. */
  readonly buffered: number;
  /** True after end() or once the consumer went away; writes are then dropped. */
  readonly closed: boolean;
  /** Called once the queue drops below the high-water mark after a write returned false. */
  onDrain: (() => void) | null;
  /** Called exactly once: after end(), or when the consumer goes away (then with an Error). */
  onClose: ((err?: Error) => void) | null;
  /** Finish: queued bytes are still delivered, then the stream ends. */
  end(): void;
  /**
   * The transport framing writeFramed() expects (src/net/framing.ts); '' or absent = raw bytes. Shared
   * packagings are built with it baked in, so one buffer serves every viewer on the same transport.
   */
  readonly framing?: Framing;
  /** Queue bytes that already carry this sink's framing, as they are. Same return as write(). */
  writeFramed?(framed: Uint8Array): boolean;
}

/** Shared bookkeeping: the closed flag and one-shot onClose, and deferred onDrain. */
abstract class SinkBase implements ByteSink {
  onDrain: (() => void) | null = null;
  onClose: ((err?: Error) => void) | null = null;
  protected isClosed = false;
  protected wantDrain = false;

  get closed(): boolean {
    return this.isClosed;
  }

  abstract get buffered(): number;
  abstract write(chunk: Uint8Array): boolean;
  abstract writev(chunks: Uint8Array[]): boolean;
  abstract end(): void;

  /** Mark closed and call onClose once. Returns false when it was already closed. */
  protected finish(err?: Error): boolean {
    if (this.isClosed) return false;
    this.isClosed = true;
    this.wantDrain = false;
    const cb = this.onClose;
    this.onClose = null;
    this.onDrain = null;
    try {
      cb?.(err);
    } catch {
      // The consumer is gone either way; a failing callback must not break the caller.
    }
    return true;
  }

  /** Fire onDrain, outside the current call stack (which may be the consumer's read()). */
  protected drained(): void {
    if (!this.wantDrain || this.isClosed) return;
    this.wantDrain = false;
    queueMicrotask(() => {
      if (this.isClosed) return;
      try {
        this.onDrain?.();
      } catch {
        // A producer's failure is its own business; the sink stays usable.
      }
    });
  }
}

class BodySink extends SinkBase {
  #ctl: ReadableStreamDefaultController<Uint8Array> | undefined;
  readonly #hwm: number;
  readonly #copyShared: boolean;

  constructor(hwm: number, copyShared: boolean) {
    super();
    this.#hwm = hwm;
    this.#copyShared = copyShared;
  }

  /** A buffer shared with other viewers (Stream.sharedRange): enqueued as is, or copied where the
   * runtime needs its own (Runtime.copySharedBody). */
  writeFramed(framed: Uint8Array): boolean {
    return this.write(this.#copyShared ? framed.slice() : framed);
  }

  attach(ctl: ReadableStreamDefaultController<Uint8Array>): void {
    this.#ctl = ctl;
  }

  get buffered(): number {
    if (this.isClosed || !this.#ctl) return 0;
    // With a byte-length strategy, desiredSize = highWaterMark - queued bytes.
    return Math.max(0, this.#hwm - (this.#ctl.desiredSize ?? this.#hwm));
  }

  write(chunk: Uint8Array): boolean {
    if (this.isClosed) return false;
    if (chunk.byteLength > 0 && !this.#enqueue(chunk)) return false;
    return this.#check();
  }

  writev(chunks: Uint8Array[]): boolean {
    if (this.isClosed) return false;
    // Each chunk is enqueued as is: chunks are often shared by many subscribers (one packaged frame),
    // so concatenating would copy per subscriber. The HTTP server writes them out back to back.
    for (const c of chunks) if (c.byteLength > 0 && !this.#enqueue(c)) return false;
    return this.#check();
  }

  #enqueue(chunk: Uint8Array): boolean {
    try {
      this.#ctl!.enqueue(chunk);
      return true;
    } catch (err) {
      // The stream was cancelled or errored under us.
      this.finish(err instanceof Error ? err : new Error(String(err)));
      return false;
    }
  }

  #check(): boolean {
    if ((this.#ctl!.desiredSize ?? 0) > 0) return true;
    this.wantDrain = true;
    return false;
  }

  /** The stream's pull(): the consumer took bytes and the queue is below the high-water mark. */
  pulled(): void {
    this.drained();
  }

  cancelled(reason: unknown): void {
    const err = new Error('stream cancelled by its consumer (client disconnected)');
    (err as Error & { cause?: unknown }).cause = reason;
    this.finish(err);
  }

  end(): void {
    const ctl = this.#ctl;
    if (!this.finish()) return;
    try {
      ctl?.close();
    } catch {
      // Already cancelled.
    }
  }
}

/**
 * A ReadableStream to use as an HTTP response body, and the sink that feeds it.
 * The stream's queue is measured in bytes; pull() (the consumer wants more) is the drain signal and
 * cancel() (the client disconnected, on every runtime) fires onClose.
 */
export function createBodySink(opts: { highWaterMark?: number; copyShared?: boolean } = {}): { body: ReadableStream<Uint8Array>; sink: ByteSink } {
  const hwm = opts.highWaterMark ?? DEFAULT_SINK_HIGH_WATER_MARK;
  const sink = new BodySink(hwm, opts.copyShared ?? false);
  const body = new ReadableStream<Uint8Array>(
    {
      start: (ctl) => sink.attach(ctl),
      pull: () => sink.pulled(),
      cancel: (reason) => sink.cancelled(reason),
    },
    { highWaterMark: hwm, size: (chunk) => chunk.byteLength },
  );
  return { body, sink };
}

class WsSink extends SinkBase {
  readonly #ws: WsConn;
  readonly #hwm: number;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(ws: WsConn, hwm: number) {
    super();
    this.#ws = ws;
    this.#hwm = hwm;
  }

  get buffered(): number {
    return this.isClosed ? 0 : this.#ws.buffered;
  }

  get framing(): Framing { return this.#ws.sendFramed ? 'ws' : ''; }

  /** Raw frames: the header and the chunks go to the socket as one vectored write. */
  get gathers(): boolean { return this.#ws.sendFramed !== undefined && this.#ws.gathers !== false; }

  writeFramed(framed: Uint8Array): boolean {
    if (!this.#open()) return false;
    if (this.framing !== 'ws') return this.write(framed);
    if (!this.#ws.sendFramed!(framed)) {
      // The library has frames of its own in flight: send the payload through it instead.
      const len = framed[1] & 0x7f;
      this.#ws.send(framed.subarray(len === 127 ? 10 : len === 126 ? 4 : 2));
    }
    return this.#check();
  }

  write(chunk: Uint8Array): boolean {
    if (!this.#open()) return false;
    if (chunk.byteLength > 0) this.#ws.send(chunk);
    return this.#check();
  }

  writev(chunks: Uint8Array[]): boolean {
    if (!this.#open()) return false;
    // One WebSocket message per writev: every message costs a frame header and, in browsers, a
    // message event. Where the adapter writes raw frames, the header goes before the parts as they
    // are; otherwise the batch is worth one copy here. (A joining viewer's batch is its whole first
    // GOP: a copy per viewer in a join storm of a thousand is half a gigabyte of garbage.)
    let total = 0;
    for (const c of chunks) total += c.byteLength;
    if (total === 0) return this.#check();
    if (chunks.length > 1 && this.#ws.sendFramed?.([framingHead('ws', total), ...chunks])) return this.#check();
    if (chunks.length === 1) {
      this.#ws.send(chunks[0]!);
    } else {
      const all = new Uint8Array(total);
      let off = 0;
      for (const c of chunks) {
        all.set(c, off);
        off += c.byteLength;
      }
      this.#ws.send(all);
    }
    return this.#check();
  }

  #open(): boolean {
    if (this.isClosed) return false;
    if (this.#ws.closed) {
      this.#stop();
      this.finish(new Error('WebSocket closed'));
      return false;
    }
    return true;
  }

  #check(): boolean {
    if (this.#ws.buffered < this.#hwm) return true;
    this.wantDrain = true;
    this.#timer ??= setInterval(() => this.#poll(), WS_DRAIN_POLL_MS);
    return false;
  }

  #poll(): void {
    if (this.isClosed || this.#ws.closed) {
      this.#stop();
      this.finish(this.isClosed ? undefined : new Error('WebSocket closed'));
      return;
    }
    if (this.#ws.buffered >= this.#hwm) return;
    this.#stop();
    this.drained();
  }

  #stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Close the WebSocket normally (queued messages are sent first). Call it from WsHandler.onClose
   * too: the sink then reports onClose at once instead of at its next write. */
  end(): void {
    this.#stop();
    if (!this.finish()) return;
    if (!this.#ws.closed) this.#ws.close(1000, '');
  }
}

/**
 * A ByteSink over a WebSocket: each write is one binary message. Drain is detected by polling
 * `ws.buffered` every WS_DRAIN_POLL_MS while a producer waits. The sink learns that the peer closed
 * at its next write, or at once when the WsHandler's onClose calls `sink.end()`.
 */
export function wsByteSink(ws: WsConn, highWaterMark = DEFAULT_SINK_HIGH_WATER_MARK): ByteSink {
  return new WsSink(ws, highWaterMark);
}
