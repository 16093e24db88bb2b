// FLV bytes into a publisher: the one ingest path shared by HTTP POST/PUT publishing, WebSocket
// publishing, HTTP pulls and file pulls.
//
//   bytes → FlvDemuxer (framing, size limit) → FlvIngest (tag bodies → tracks and frames) → Publisher
//
// Every byte is hostile: the demuxer bounds tag sizes and throws FormatError on broken framing, after
// which the feed is dead (the caller closes the connection). A tag body in a format we do not handle
// (UnsupportedFormatError: an encrypted tag, an unknown FourCC) is dropped with one warning instead.
//
// For paced sources (files) `feedPaced` waits before each tag so that output runs at `publish.speed` ×
// real time, and `restart()` begins a new pass over the same source (looping) with its timestamps
// shifted to continue where the previous pass ended.

import type { Publisher } from '../../src/plugin.ts';
import { FormatError, UnsupportedFormatError } from '../../src/format/bytes.ts';
import { FlvIngest } from '../../src/format/flv-media.ts';
import { FlvDemuxer, FLV_TAG_AUDIO, FLV_TAG_VIDEO, type FlvTag } from '../../src/format/flv.ts';

export interface FeedOptions {
  maxTagSize: number;
  /** Logged once per distinct problem. */
  warn?(msg: string): void;
}

/** Tag timestamps further back than this (ms) restart the pacing clock instead of being held. */
const PACE_BACKWARD_MS = 1000;

export class FlvFeed {
  readonly ingest: FlvIngest;
  /** Bytes and tags taken so far (all passes). */
  bytes = 0;
  tags = 0;
  /** Audio/video tags in the current pass (a looping source with none would spin). */
  mediaTagsThisPass = 0;
  private demux!: FlvDemuxer;
  /** Tags demuxed from the current chunk, waiting for their pacing slot. */
  private queue: FlvTag[] = [];
  private pass = 0;
  /** Output timestamp where this pass starts, and the first source timestamp of this pass. */
  private passBase = 0;
  private passFirst = NaN;
  /** Largest output timestamp written, and the last video tag interval (for the loop gap). */
  private maxOutMs = 0;
  private lastVideoMs = NaN;
  private videoGapMs = 40;
  private lastPacedMs = NaN;
  private readonly warned = new Set<string>();

  constructor(readonly pub: Publisher, private readonly opts: FeedOptions) {
    this.ingest = new FlvIngest(pub, { warn: (m) => opts.warn?.(m) });
    this.newDemuxer();
  }

  private newDemuxer(): void {
    this.demux = new FlvDemuxer((t) => this.queue.push(t), { maxTagSize: this.opts.maxTagSize });
  }

  /** Push bytes and ingest every complete tag now (live sources). Throws FormatError on bad input. */
  push(chunk: Uint8Array): void {
    this.bytes += chunk.byteLength;
    this.demux.push(chunk);
    const q = this.queue;
    if (q.length === 0) return;
    this.queue = [];
    for (const t of q) this.take(t);
  }

  /**
   * Push bytes and ingest the tags at their pace (`publish.speed`), waiting between them. `aborted`
   * is checked after every wait so a stopped pull ends promptly.
   */
  async pushPaced(chunk: Uint8Array, aborted: () => boolean): Promise<void> {
    this.bytes += chunk.byteLength;
    this.demux.push(chunk);
    const q = this.queue;
    this.queue = [];
    for (const t of q) {
      if (aborted()) return;
      if (t.type === FLV_TAG_VIDEO || t.type === FLV_TAG_AUDIO) {
        const track = t.type === FLV_TAG_VIDEO ? this.ingest.video : this.ingest.audio;
        if (track) {
          // Pace on a non-decreasing clock: audio and video interleave a few ms out of order, and
          // each step back would restart the publisher's pacing clock (and slowly drift). A big step
          // back is a real discontinuity and does restart it.
          let ms = this.outMs(t.timestamp);
          if (ms < this.lastPacedMs && ms > this.lastPacedMs - PACE_BACKWARD_MS) ms = this.lastPacedMs;
          this.lastPacedMs = ms;
          for (;;) {
            const d = this.pub.paceDelay(track, Math.round((ms * track.clockRate) / 1000));
            if (d <= 0) break;
            await new Promise((r) => setTimeout(r, d));
            if (aborted()) return;
          }
        }
      }
      this.take(t);
    }
  }

  /** The source has no more bytes: throws FormatError when it stopped inside a tag. */
  end(): void {
    this.demux.end();
  }

  /** Begin another pass over the same source (loop): a fresh demuxer, timestamps continue. */
  restart(): void {
    this.pass++;
    this.passBase = this.maxOutMs + this.videoGapMs;
    this.passFirst = NaN;
    this.mediaTagsThisPass = 0;
    this.queue = [];
    this.newDemuxer();
  }

  /** A source timestamp mapped to this pass's output timeline. */
  private outMs(ts: number): number {
    if (this.pass === 0) return ts;
    if (this.passFirst !== this.passFirst) this.passFirst = ts;
    return this.passBase + Math.max(0, ts - this.passFirst);
  }

  private take(t: FlvTag): void {
    this.tags++;
    const media = t.type === FLV_TAG_VIDEO || t.type === FLV_TAG_AUDIO;
    let ms = t.timestamp;
    if (media) {
      this.mediaTagsThisPass++;
      ms = this.outMs(t.timestamp);
      if (ms > this.maxOutMs) this.maxOutMs = ms;
      if (t.type === FLV_TAG_VIDEO) {
        const gap = ms - this.lastVideoMs;
        if (gap > 0 && gap < 1000) this.videoGapMs = gap;
        this.lastVideoMs = ms;
      }
    }
    try {
      this.ingest.tag(t.type, ms, t.data);
    } catch (err) {
      if (err instanceof UnsupportedFormatError) {
        if (!this.warned.has(err.message)) {
          this.warned.add(err.message);
          this.opts.warn?.(`tag dropped: ${err.message}`);
        }
        return;
      }
      if (err instanceof FormatError) throw err;
      // Anything else is a bug in a parser: report it as bad input so the connection closes cleanly.
      throw new FormatError(`tag could not be ingested: ${(err as Error)?.message ?? String(err)}`);
    }
  }
}
