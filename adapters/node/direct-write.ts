// Socket writes below Node's Writable, for the fan-out's hot path.
//
// A live viewer costs one write per video frame. Through socket.write() each of them runs Node's stream
// machinery in JavaScript (Writable.write, _writeGeneric, a new WriteWrap, onwrite, the after-write
// tick): a CPU profile of 1000 HTTP-FLV viewers had more samples there than in all of m7s's own fan-out
// code. When the socket's Writable holds nothing (nothing buffered, nothing in flight, not corked), this
// module hands the bytes to the socket's libuv handle itself, as Node's own _writeGeneric does:
// `handle.writeBuffer(req, buf)` / `handle.writev(req, chunks, true)`. libuv tries the write at once;
// what the kernel does not take stays queued in libuv (handle.writeQueueSize) and completes later
// through req.oncomplete. Order is kept because libuv writes its queue in order and Node's Writable
// only ever calls the handle after us when it had nothing queued when we wrote.
//
// What it relies on (checked once here, else every write takes socket.write()):
// `process.binding('stream_wrap')` (on Node's process.binding allow-list) for WriteWrap and the
// last-write-was-async flag, and the socket handle's writeBuffer / writev. Node ≥ 20 has them; so has
// Deno 2.9, whose node:net runs Node's stream code on a native handle of the same shape (without
// writeQueueSize: there a request's bytes count as queued until it completes). Bun has no such binding
// and keeps socket.write(). M7S_DIRECT_WRITE=0 turns it off (for comparing, or should a runtime
// release change these internals).
//
// A request object is reused while writes complete synchronously (the common case at the live edge:
// the kernel takes the frame at once); one that went asynchronous belongs to libuv until its
// oncomplete and keeps its buffer referenced until then (libuv reads the memory later, no copy).

import type { Socket } from 'node:net';
import nodeProcess from 'node:process';
import { getSystemErrorName } from 'node:util';
import { bufferView } from './buffer-view.ts';

interface WriteReq {
  buffer: unknown;
  /** Bytes of an asynchronous write (what it adds to SocketWriter's queue count). */
  bytes: number;
  oncomplete: ((this: WriteReq, status: number) => void) | null;
}
interface StreamHandle {
  writeBuffer(req: WriteReq, buf: Uint8Array): number;
  writev(req: WriteReq, chunks: readonly Uint8Array[], allBuffers: boolean): number;
  /** libuv's queued bytes (Node; Deno's handle has none). */
  readonly writeQueueSize?: number;
}
interface Binding {
  WriteWrap: new () => WriteReq;
  streamBaseState: Int32Array;
  kLastWriteWasAsync: number;
}

function probe(): Binding | null {
  if ('Bun' in globalThis) return null;
  const proc = nodeProcess as { env?: Record<string, string | undefined>; binding?: (m: string) => unknown };
  try {
    // (Reading the environment throws on Deno without --allow-env.)
    if (proc.env?.M7S_DIRECT_WRITE === '0' || typeof proc.binding !== 'function') return null;
    const b = proc.binding('stream_wrap') as Partial<Binding> | undefined;
    if (typeof b?.WriteWrap !== 'function' || !(b.streamBaseState instanceof Int32Array) || typeof b.kLastWriteWasAsync !== 'number') return null;
    return b as Binding;
  } catch {
    return null;
  }
}

const binding = probe();

/** Whether direct writes are in use in this process (for logs and tests). */
export const directWriteEnabled = binding !== null;

/** A libuv write status as the Error socket.write() would have reported (code EPIPE, ECONNRESET, ...). */
function errnoError(status: number): Error {
  let code = 'EIO';
  try { code = getSystemErrorName(status); } catch { /* not a known errno */ }
  const e = new Error(`write ${code}`) as Error & { errno: number; code: string };
  e.errno = status;
  e.code = code;
  return e;
}

/**
 * Bun's node:net Writable joins corked writes with Buffer.concat: a new buffer and a copy of every
 * chunk per writev, and a write of its own for each chunk before that. A join of 1000 RTMP players
 * spent two fifths of its JavaScript samples there (the catch-up GOP, ~55 KB in some hundred chunks,
 * per player).
 */
const JOINS_CORKED = 'Bun' in globalThis;

/** Chunks this large go to the socket as they are (no copy); smaller neighbours are joined into one write. */
const JOIN_BELOW = 8 * 1024;

/** Bun: one socket.write() per run of small chunks (joined here, one copy of a few small pieces) and one
 * per large chunk as it is. */
function writeJoined(s: Socket, chunks: readonly Uint8Array[]): void {
  let from = 0, bytes = 0;
  const flushRun = (to: number) => {
    if (to - from === 1) s.write(bufferView(chunks[from]!));
    else if (to > from) {
      const out = Buffer.allocUnsafe(bytes); // every byte is set below
      let off = 0;
      for (let i = from; i < to; i++) { out.set(chunks[i]!, off); off += chunks[i]!.byteLength; }
      s.write(out);
    }
  };
  for (let i = 0; i < chunks.length; i++) {
    const n = chunks[i]!.byteLength;
    if (n >= JOIN_BELOW) {
      flushRun(i);
      s.write(bufferView(chunks[i]!));
      from = i + 1; bytes = 0;
    } else if (n === 0) {
      flushRun(i);
      from = i + 1; bytes = 0;
    } else bytes += n;
  }
  flushRun(chunks.length);
}

/** The parts of Node's Writable state read per write (public getters cost a call each). */
interface WritableState { length: number; corked: number; ended: boolean; destroyed: boolean }

/**
 * Writes to one socket, directly to its handle when its Writable is idle. `onSettled` runs after each
 * of our asynchronous writes completes (the owner checks for drain there).
 */
export class SocketWriter {
  readonly #socket: Socket;
  readonly #state: WritableState;
  readonly #direct: boolean;
  readonly #onSettled: () => void;
  #req: WriteReq | null = null;
  /** Bytes in libuv's queue from our writes. Where the handle tells its queue (writeQueueSize, Node) it
   * is read after a write that went asynchronous and at each completion; elsewhere each asynchronous
   * request's bytes count until it completes. 0 after a write the kernel took at once (a write is only
   * tried at once when the queue is empty). */
  #queued = 0;

  constructor(socket: Socket, onSettled: () => void) {
    this.#socket = socket;
    this.#onSettled = onSettled;
    this.#state = (socket as unknown as { _writableState: WritableState })._writableState;
    // TLS sockets write through their TLSWrap, whose queue this does not see: socket.write() there.
    this.#direct = binding !== null && !(socket as { encrypted?: boolean }).encrypted;
  }

  /** Bytes accepted but not yet taken by the kernel: Node's buffer plus libuv's queue. */
  get buffered(): number {
    return this.#state.length + this.#queued;
  }

  /** writev() reaches the kernel without a copy: direct writes, or Node's own Writable (whose corked
   * writes become one handle.writev). Not on Bun, whose Writable joins corked writes into a new buffer. */
  get gathers(): boolean {
    return !JOINS_CORKED;
  }

  /** The writable side ended or was destroyed: writes are dropped. */
  get ended(): boolean {
    return this.#state.ended || this.#state.destroyed;
  }

  #handleOf(): StreamHandle | null {
    return (this.#socket as unknown as { _handle: StreamHandle | null })._handle;
  }

  /** The handle to write to, or null when this write must go through socket.write(). */
  #idleHandle(): StreamHandle | null {
    const st = this.#state;
    if (!this.#direct || st.length !== 0 || st.corked !== 0 || this.#socket.connecting) return null;
    return this.#handleOf();
  }

  write(buf: Uint8Array): void {
    const h = this.#idleHandle();
    if (h === null) { this.#socket.write(bufferView(buf)); return; }
    const req = this.#req ?? (this.#req = this.#newReq());
    this.#after(h, req, h.writeBuffer(req, buf), buf, buf.byteLength);
  }

  /** Several chunks in one writev() call. */
  writev(chunks: readonly Uint8Array[]): void {
    const h = this.#idleHandle();
    if (h === null) {
      const s = this.#socket;
      if (JOINS_CORKED) { writeJoined(s, chunks); return; }
      s.cork();
      for (const c of chunks) if (c.byteLength) s.write(c);
      s.uncork();
      return;
    }
    const req = this.#req ?? (this.#req = this.#newReq());
    let n = 0;
    for (const c of chunks) n += c.byteLength;
    this.#after(h, req, h.writev(req, chunks, true), chunks, n);
  }

  #after(h: StreamHandle, req: WriteReq, err: number, data: unknown, bytes: number): void {
    if (err !== 0) {
      // The handle refused outright (socket closing, EPIPE): the same end as a failed socket.write().
      if (!this.#socket.destroyed) this.#socket.destroy(errnoError(err));
      return;
    }
    if (binding!.streamBaseState[binding!.kLastWriteWasAsync]) {
      // libuv keeps the request (and reads the memory) until oncomplete: keep the bytes alive with it
      // (a copy of a chunk list: the caller may reuse its array).
      req.buffer = Array.isArray(data) ? data.slice() : data;
      req.bytes = bytes;
      this.#req = null;
      const q = h.writeQueueSize;
      this.#queued = typeof q === 'number' ? q : this.#queued + bytes;
    } else this.#queued = 0;
  }

  #settled(req: WriteReq, status: number): void {
    const s = this.#socket;
    if (status < 0 && !s.destroyed) s.destroy(errnoError(status));
    const q = this.#handleOf()?.writeQueueSize;
    this.#queued = typeof q === 'number' ? q : Math.max(0, this.#queued - req.bytes);
    req.buffer = null;
    this.#onSettled();
  }

  #newReq(): WriteReq {
    const req = new binding!.WriteWrap();
    req.buffer = null;
    req.bytes = 0;
    const writer = this;
    req.oncomplete = function (this: WriteReq, status: number) { writer.#settled(this, status); };
    return req;
  }
}
