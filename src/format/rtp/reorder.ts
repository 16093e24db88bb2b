// Reorder buffer for RTP over UDP: puts packets back in sequence-number order within a window of `size`
// packets (Monibuca's `rtpreorderbufferlen`; MediaMTX uses 64), and counts what the network did:
//   lost       sequence numbers given up on (a gap the window had to move past, or flushed)
//   late       packets that came after their number was given up on (dropped)
//   duplicate  packets whose number was already delivered or is already waiting (dropped)
//   reordered  packets that came after a higher number but in time, and were put back in place
//   resets     jumps too large to be loss (a restarted sender): the buffer starts over, nothing counted lost
// Sequence numbers are 16-bit and wrap; all distances are taken in the 16-bit circle.

import { seqDiff } from './packet.ts';

export interface ReorderStats {
  received: number;
  delivered: number;
  lost: number;
  late: number;
  duplicate: number;
  reordered: number;
  resets: number;
}

/** A jump ahead or back by this many numbers or more is a new sequence, not loss. */
const RESET_DISTANCE = 0x1000;

export class ReorderBuffer<T> {
  readonly stats: ReorderStats = { received: 0, delivered: 0, lost: 0, late: 0, duplicate: 0, reordered: 0, resets: 0 };
  private readonly slots: (T | undefined)[];
  private readonly present: Uint8Array;
  /** Slot of the expected sequence number. */
  private head = 0;
  /** Next sequence number to deliver (-1 before the first packet). */
  private expected = -1;
  /** Highest sequence number seen, as a distance-from-expected (for counting reordered packets). */
  private ahead = 0;
  private waiting = 0;
  /** Delivered numbers in the last half of the circle (for telling duplicates from late packets). */
  private readonly delivered = new Uint8Array(65536);

  constructor(readonly size = 64) {
    if (!Number.isInteger(size) || size < 1 || size > 0x8000) throw new RangeError(`reorder buffer size ${size} out of range 1..32768`);
    this.slots = new Array(size);
    this.present = new Uint8Array(size);
  }

  /** Packets waiting for a gap before them to fill. */
  get pending(): number { return this.waiting; }

  /** Add a packet; returns the packets (maybe none) now deliverable in order. */
  push(seq: number, item: T): T[] {
    seq &= 0xffff;
    this.stats.received++;
    const out: T[] = [];
    if (this.expected < 0) {
      this.expected = seq;
      this.deliver(seq, item, out);
      return out;
    }
    let d = seqDiff(this.expected, seq);
    if (d < 0) {
      if (d <= -RESET_DISTANCE) {
        this.reset(seq, item, out);
      } else if (this.delivered[seq]) {
        this.stats.duplicate++;
      } else {
        this.stats.late++;
      }
      return out;
    }
    if (d >= RESET_DISTANCE) {
      this.reset(seq, item, out);
      return out;
    }
    if (d < this.ahead) this.stats.reordered++;
    else this.ahead = d;
    if (d === 0) {
      if (this.present[this.head]) { this.stats.duplicate++; return out; }
      this.deliver(seq, item, out);
      this.head = (this.head + 1) % this.size;
      this.drain(out);
      return out;
    }
    // Too far ahead for the window: give up on the oldest numbers until it fits.
    while (d >= this.size) {
      this.skipHead(out);
      d--;
    }
    const slot = (this.head + d) % this.size;
    if (this.present[slot]) { this.stats.duplicate++; return out; }
    this.slots[slot] = item;
    this.present[slot] = 1;
    this.waiting++;
    this.drain(out);
    return out;
  }

  /** Deliver everything waiting, counting the gaps between as lost (for a stalled source or shutdown). */
  flush(): T[] {
    const out: T[] = [];
    while (this.waiting > 0) this.skipHead(out);
    return out;
  }

  private deliver(seq: number, item: T, out: T[]): void {
    out.push(item);
    this.stats.delivered++;
    this.delivered[seq] = 1;
    this.delivered[(seq + 0x8000) & 0xffff] = 0;
    this.expected = (seq + 1) & 0xffff;
    if (this.ahead > 0) this.ahead--;
  }

  /** Deliver consecutive waiting packets from the head. */
  private drain(out: T[]): void {
    while (this.waiting > 0 && this.present[this.head]) this.skipHead(out);
  }

  /** Move past the expected number: deliver it if waiting, else count it lost. */
  private skipHead(out: T[]): void {
    const h = this.head;
    if (this.present[h]) {
      const item = this.slots[h] as T;
      this.slots[h] = undefined;
      this.present[h] = 0;
      this.waiting--;
      this.head = (h + 1) % this.size;
      this.deliver(this.expected, item, out);
    } else {
      this.stats.lost++;
      this.delivered[this.expected] = 0;
      this.expected = (this.expected + 1) & 0xffff;
      this.head = (h + 1) % this.size;
      if (this.ahead > 0) this.ahead--;
    }
  }

  private reset(seq: number, item: T, out: T[]): void {
    this.stats.resets++;
    // What was waiting is still good data: hand it out in order (its gaps are not counted).
    for (let i = 0; i < this.size && this.waiting > 0; i++) {
      const s = (this.head + i) % this.size;
      if (this.present[s]) {
        out.push(this.slots[s] as T);
        this.stats.delivered++;
        this.slots[s] = undefined;
        this.present[s] = 0;
        this.waiting--;
      }
    }
    this.delivered.fill(0);
    this.head = 0;
    this.ahead = 0;
    this.deliver(seq, item, out);
  }
}
