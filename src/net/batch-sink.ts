// The common half of a subscriber sink that writes a byte stream to a ByteSink (an HTTP response body
// or a WebSocket): it queues a batch of chunks per pump, hands it over as one writev per flush, and wires
// the ByteSink's drain/close to the subscriber. Format plugins (flv, mp4) add begin/config/frame.

import type { CodecConfig, Frame, Track } from '../core/frame.ts';
import type { Subscriber, SubscriberSink } from '../core/subscriber.ts';
import type { ByteSink } from './body.ts';

export abstract class BatchedByteSink implements SubscriberSink {
  /** Chunks queued since the last flush. */
  protected batch: Uint8Array[] = [];
  /** Called when the sink ended from the engine's side (the stream closed): reason. */
  onEnd: ((reason: string) => void) | null = null;

  constructor(readonly out: ByteSink) {}

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
  abstract config(track: Track, cfg: CodecConfig, sub: Subscriber): number;
  abstract frame(f: Frame, dts: number, sub: Subscriber): number;

  flush(): boolean {
    if (this.out.closed) { this.batch = []; return false; }
    if (this.batch.length === 0) return true;
    const b = this.batch;
    this.batch = [];
    return this.out.writev(b);
  }

  close(reason: string): void {
    // Queued bytes still go out, then the body / socket ends.
    if (this.batch.length) this.out.writev(this.batch);
    this.batch = [];
    this.out.end();
    this.onEnd?.(reason);
  }
}
