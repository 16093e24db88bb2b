// The stream's ring: recent frames of all its tracks, interleaved in arrival order, addressed by a
// sequence number that only grows. Readers (subscribers) hold a sequence number, not a copy. The writer
// never waits: evicting old frames is the writer's decision alone, and a reader whose position was
// evicted notices (seq < tail) and skips forward to a sync point.
//
// A sync point is where a new reader can start: a keyframe of the main video track, or, for a stream
// without video, an audio frame every ~`audioSyncMs` of media time.

import type { Frame } from './frame.ts';

export class Ring {
  private buf: (Frame | undefined)[];
  private mask: number;
  /** Sequence number of the next frame to be written. */
  head = 0;
  /** Sequence number of the oldest frame still held. */
  tail = 0;
  /** Sequence numbers of sync points still in the ring, ascending. */
  readonly sync: number[] = [];
  private syncStart = 0; // index of the first live entry in `sync` (amortised shift)
  /** Payload bytes currently held. */
  bytes = 0;

  constructor(initialCapacity = 256, readonly maxCapacity = 1 << 16) {
    let cap = 16;
    while (cap < initialCapacity) cap <<= 1;
    this.buf = new Array(cap);
    this.mask = cap - 1;
  }

  get size(): number { return this.head - this.tail; }
  get capacity(): number { return this.mask + 1; }

  /** Append a frame; returns its sequence number. Grows the buffer when full (up to maxCapacity). */
  push(f: Frame, isSync: boolean): number {
    if (this.head - this.tail > this.mask) {
      if (this.mask + 1 < this.maxCapacity) this.grow();
      else this.evictTo(this.tail + 1);
    }
    const seq = this.head++;
    f.seq = seq;
    this.buf[seq & this.mask] = f;
    this.bytes += f.data.byteLength;
    if (isSync) this.sync.push(seq);
    return seq;
  }

  private grow(): void {
    const old = this.buf, oldMask = this.mask;
    const cap = (oldMask + 1) * 2;
    this.buf = new Array(cap);
    this.mask = cap - 1;
    for (let s = this.tail; s < this.head; s++) this.buf[s & this.mask] = old[s & oldMask];
  }

  /** The frame at `seq`, or undefined when it is not (or no longer) held. */
  get(seq: number): Frame | undefined {
    if (seq < this.tail || seq >= this.head) return undefined;
    return this.buf[seq & this.mask];
  }

  /** The newest frame. */
  last(): Frame | undefined { return this.head > this.tail ? this.buf[(this.head - 1) & this.mask] : undefined; }
  first(): Frame | undefined { return this.head > this.tail ? this.buf[this.tail & this.mask] : undefined; }

  /** Number of sync points held. */
  get syncCount(): number { return this.sync.length - this.syncStart; }
  /** The i-th sync point from the oldest (0) — or from the newest when i < 0 (-1 = latest). */
  syncAt(i: number): number | undefined {
    const n = this.syncCount;
    if (i < 0) i += n;
    if (i < 0 || i >= n) return undefined;
    return this.sync[this.syncStart + i];
  }
  /** The latest sync point, if any. */
  latestSync(): number | undefined { return this.syncAt(-1); }
  /** The first sync point at or after `seq`. */
  syncAtOrAfter(seq: number): number | undefined {
    const s = this.sync;
    let lo = this.syncStart, hi = s.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (s[mid] < seq) lo = mid + 1; else hi = mid; }
    return lo < s.length ? s[lo] : undefined;
  }
  /** The last sync point at or before `seq`. */
  syncAtOrBefore(seq: number): number | undefined {
    const s = this.sync;
    let lo = this.syncStart, hi = s.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (s[mid] <= seq) lo = mid + 1; else hi = mid; }
    return lo - 1 >= this.syncStart ? s[lo - 1] : undefined;
  }

  /** Drop every frame with seq < `seq`. */
  evictTo(seq: number): void {
    if (seq > this.head) seq = this.head;
    for (let s = this.tail; s < seq; s++) {
      const i = s & this.mask;
      const f = this.buf[i];
      if (f) this.bytes -= f.data.byteLength;
      this.buf[i] = undefined;
    }
    if (seq > this.tail) this.tail = seq;
    const sync = this.sync;
    while (this.syncStart < sync.length && sync[this.syncStart] < this.tail) this.syncStart++;
    if (this.syncStart > 64 && this.syncStart * 2 > sync.length) {
      sync.splice(0, this.syncStart);
      this.syncStart = 0;
    }
  }

  /** Drop everything (stream closed). */
  clear(): void { this.evictTo(this.head); }
}
