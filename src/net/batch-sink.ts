// The common half of a subscriber sink that writes a byte stream to a ByteSink (an HTTP response body
// or a WebSocket): it queues a batch of chunks per pump, hands it over as one writev per flush, and wires
// the ByteSink's drain/close to the subscriber. Format plugins (flv, mp4) add begin/config/frame.

import type { CodecConfig, Frame, Track } from '../core/frame.ts';
import type { SharedStartBytes, Subscriber, SubscriberSink } from '../core/subscriber.ts';
import type { ByteSink } from './body.ts';
import { type Framing, framedConcat } from './framing.ts';
import { bytesEqual, concat } from '../format/bytes.ts';

export abstract class BatchedByteSink implements SubscriberSink {
  /** Chunks queued since the last flush. */
  protected batch: Uint8Array[] = [];
  /** Called when the sink ended from the engine's side (the stream closed): reason. */
  onEnd: ((reason: string) => void) | null = null;

  #out: ByteSink | null;
  readonly #make: (() => ByteSink) | null;

  /**
   * `out` may be a factory, called on first use: from begin(), once the subscription is accepted. An
   * HTTP handler can then answer errors (404, 403) with a status and open the live body only for a
   * stream that plays.
   */
  constructor(out: ByteSink | (() => ByteSink)) {
    if (typeof out === 'function') { this.#out = null; this.#make = out; } else { this.#out = out; this.#make = null; }
  }

  get out(): ByteSink { return (this.#out ??= this.#make!()); }

  /** Whether the ByteSink exists yet (see the constructor). */
  get opened(): boolean { return this.#out !== null; }

  /**
   * Connect the ByteSink to the subscriber. Call at the start of begin(), not after subscribe() returns:
   * the first GOP is pumped inside subscribe(), and a drain that fires before the caller has the
   * subscriber must still resume it.
   */
  protected attach(sub: Subscriber): void {
    const out = this.out;
    sub.bufferedFn = () => out.buffered;
    out.onDrain = () => sub.resume();
    out.onClose = (err) => sub.close(err ? 'client disconnected' : 'ended');
  }

  abstract begin(sub: Subscriber): void;
  abstract config(track: Track, cfg: CodecConfig, sub: Subscriber, next: Frame, dts: number): number;
  abstract frame(f: Frame, dts: number, sub: Subscriber): number;

  /** A shared, already framed buffer queued by queueFramed() (written after `batch`). */
  private framed: Uint8Array | null = null;

  /** The framing this sink's shared buffers must carry (ByteSink.framing). */
  protected get framing(): Framing { return this.out.writeFramed ? this.out.framing ?? '' : ''; }

  /** Queue a shared buffer built with this.framing (see Stream.sharedRange). */
  protected queueFramed(b: Uint8Array): void {
    if (this.framed || this.batch.length) this.flush(); // keep the order; the last flush reports pushback
    this.framed = b;
  }

  /** What was queued since the last flush, taken off the queue (for SubscriberSink.takeStart). */
  protected takeQueued(state: unknown): SharedStartBytes {
    const parts = this.batch;
    this.batch = [];
    let size = 0;
    for (const c of parts) size += c.byteLength;
    return { parts, size, state };
  }

  /**
   * Queue a shared start (SubscriberSink.queueStart). Where the connection gathers (one vectored
   * write, nothing copied) its chunks go out as they are; elsewhere one framed buffer, made once for
   * every player that joins at that point with the same headers queued before it. The chunks are the
   * frames' own packagings, so a player whose connection holds them back keeps nothing alive that the
   * stream's other players do not.
   */
  protected queueShared(start: SharedStartBytes): void {
    if (start.size === 0) return;
    if (this.out.gathers) {
      if (this.framed) this.flush(); // keep the order
      for (const c of start.parts) this.batch.push(c);
      return;
    }
    // What the player queued before it (begin()'s headers, the same for the players of one stream) goes
    // out in the same buffer: one write per join instead of two (a WebSocket message or a send each).
    const withHead = this.framed === null && this.batch.length > 0 ? prefixedStart(start, this.batch, this.framing) : null;
    if (withHead) { this.batch = []; this.framed = withHead; return; }
    this.queueFramed((start.joined ??= framedConcat(this.framing, start.parts, start.size)));
  }

  flush(): boolean {
    if (this.out.closed) { this.batch = []; this.framed = null; return false; }
    let ok = true;
    if (this.batch.length) {
      const b = this.batch;
      this.batch = [];
      ok = this.out.writev(b);
    }
    const f = this.framed;
    if (f) {
      this.framed = null;
      ok = this.out.writeFramed ? this.out.writeFramed(f) : this.out.write(f);
    }
    return ok;
  }

  close(reason: string): void {
    // Queued bytes still go out, then the body / socket ends.
    this.flush();
    this.out.end();
    this.onEnd?.(reason);
  }
}

/** Head bytes longer than this are not worth a start of their own; the start goes out after them. */
const MAX_START_HEAD = 16 * 1024;
/** Distinct heads kept per start (players of one stream mostly have one; a few selections differ). */
const MAX_START_HEADS = 4;

/**
 * The start in one framed buffer after `head` (what the player queued before it), made once per distinct
 * head bytes and kept on the start for the next joiners (SharedStartBytes.withHead). Null when the head
 * is too long to share. (Exported for its test.)
 */
export function prefixedStart(start: SharedStartBytes, head: readonly Uint8Array[], framing: Framing): Uint8Array | null {
  let n = 0;
  for (const c of head) n += c.byteLength;
  if (n > MAX_START_HEAD) return null;
  const one = concat(head);
  const kept = (start.withHead ??= []);
  for (const e of kept) if (bytesEqual(e.head, one)) return e.bytes;
  const bytes = framedConcat(framing, [one, ...start.parts], n + start.size);
  if (kept.length >= MAX_START_HEADS) kept.shift();
  kept.push({ head: one, bytes });
  return bytes;
}
