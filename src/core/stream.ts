// A Stream: one StreamPath, its tracks, its ring (GOP cache) and its subscribers. At most one publisher
// at a time. When the publisher goes, the stream waits `waittimeout` for another, which adopts the
// tracks and the waiting subscribers with continuous timestamps.

import type { PublishConfig, WaitTrack } from './config.ts';
import { EngineError } from './errors.ts';
import { type CodecConfig, DERIVED_INDEX_BASE, Frame, Track, type TrackKind } from './frame.ts';
import type { Publisher, PublisherInfo } from './publisher.ts';
import { Ring } from './ring.ts';
import type { Subscriber } from './subscriber.ts';

export type StreamState = 'waiting' | 'publishing' | 'closed';

/** What the stream needs from the engine (kept narrow so the stream is testable on its own). */
export interface StreamHost {
  onPublisherLost(stream: Stream, pub: Publisher, reason: string): void;
  onSubscriberRemoved(stream: Stream, sub: Subscriber, reason: string): void;
  onStreamClosed(stream: Stream, reason: string): void;
}

/** The most adaptive merging adds to a stream's writes under load (ms). */
export const MAX_AUTO_MERGE_MS = 200;
/** Adaptive merging: share of the time in fan-out above which a period counts as overloaded. */
const MERGE_BUSY = 0.5;
/** Overloaded periods (of about a second) in a row before the stream merges more. */
const MERGE_AFTER_PERIODS = 3;
/** Share of the time in fan-out under which a period counts as calm. */
const UNMERGE_BUSY = 0.35;
/** Calm periods in a row before the stream gives 25 ms of merging back. */
const UNMERGE_AFTER_PERIODS = 3;
/** Under this share a period gives 25 ms back by itself (the load has gone). */
const IDLE_BUSY = 0.2;

/** Media time between audio sync points when a stream has no video. */
const AUDIO_SYNC_SEC = 1;

interface ReadyWaiter { want: WaitTrack; resolve(): void; reject(e: Error): void; timer: ReturnType<typeof setTimeout> | undefined }

let streamIds = 0;

export class Stream {
  readonly id = ++streamIds;
  readonly createdAt = Date.now();
  state: StreamState = 'waiting';
  publisher: Publisher | null = null;
  /** Publishers this stream has had (1 = never reconnected). */
  publishCount = 0;
  readonly tracks: Track[] = [];
  readonly ring: Ring;
  readonly subscribers = new Set<Subscriber>();
  /** Ever had a counted subscriber (idletimeout). */
  hadSubscriber = false;
  /** When the last counted subscriber left (delayclosetimeout), 0 when someone watches. */
  emptySince = 0;
  /** When the publisher was lost (waittimeout), 0 while publishing. */
  lostSince = 0;
  /** The publish config of the current (or last) publisher: ring bounds, timeouts. */
  pubConfig: PublishConfig;

  private mainVideo: Track | null = null;
  private derivedCount = 0;
  private lastAudioSyncSec = -Infinity;
  private waiters: ReadyWaiter[] = [];

  constructor(
    readonly path: string,
    readonly app: string,
    readonly name: string,
    private readonly host: StreamHost,
    pubConfig: PublishConfig,
  ) {
    this.pubConfig = pubConfig;
    this.ring = new Ring(256, ceilPow2(Math.max(256, pubConfig.ringsize)));
  }

  // ---------------------------------------------------------------- publisher side

  /** @internal */
  attachPublisher(pub: Publisher): void {
    if (this.state === 'closed') throw new EngineError('Closed', `stream ${this.path} is closed`);
    const adopting = this.publishCount > 0;
    this.publisher = pub;
    this.pubConfig = pub.config;
    this.publishCount++;
    this.state = 'publishing';
    this.lostSince = 0;
    if (adopting) for (const s of this.subscribers) s.publisherChanged();
    this.checkWaiters();
  }

  /** @internal Called by Publisher.close(). */
  detachPublisher(pub: Publisher, reason: string): void {
    if (this.publisher !== pub) return;
    this.publisher = null;
    if (this.state === 'closed') return;
    this.state = 'waiting';
    this.lostSince = Date.now();
    this.host.onPublisherLost(this, pub, reason);
  }

  /** @internal Find or create the track for (kind, index). */
  adoptTrack(kind: TrackKind, index: number, clockRate: number, cfg: CodecConfig): Track {
    const i = this.tracks.findIndex((t) => t.kind === kind && t.index === index);
    if (i >= 0 && this.tracks[i].clockRate === clockRate) {
      this.tracks[i].setConfig(cfg);
      return this.tracks[i];
    }
    const t = new Track(kind, index, clockRate, cfg);
    if (i >= 0) {
      // Same slot, new clock (e.g. a reconnect at another sample rate): a new track continues the timeline.
      const old = this.tracks[i];
      t.lastDts = Number.isFinite(old.lastDts) ? Math.round((old.lastDts / old.clockRate) * clockRate) : -Infinity;
      this.tracks[i] = t;
    } else {
      this.tracks.push(t);
    }
    if (kind === 'video' && index === 0) this.mainVideo = t;
    this.checkWaiters();
    return t;
  }

  /**
   * @internal A track the stream makes itself from `from` (the audio bridge, src/core/bridge.ts): index
   * DERIVED_INDEX_BASE and up, written with writeDerived(), removed when its maker stops.
   */
  addDerivedTrack(kind: TrackKind, clockRate: number, cfg: CodecConfig, from: Track): Track {
    const t = new Track(kind, DERIVED_INDEX_BASE + this.derivedCount++, clockRate, cfg);
    t.derivedFrom = from;
    this.tracks.push(t);
    return t;
  }

  /** @internal */
  removeDerivedTrack(t: Track): void {
    const i = this.tracks.indexOf(t);
    if (i >= 0 && t.derivedFrom) this.tracks.splice(i, 1);
  }

  /** @internal One frame of a derived track, `dts` already on the stream's timeline (strictly rising). */
  writeDerived(t: Track, dts: number, data: Uint8Array): void {
    if (this.state === 'closed' || !this.tracks.includes(t)) return;
    if (t.lastDts !== -Infinity && dts > t.lastDts) {
      const step = dts - t.lastDts;
      t.frameDuration = t.frameDuration ? Math.round((t.frameDuration * 7 + step) / 8) : step;
    }
    t.lastDts = dts;
    this.write(new Frame(t, dts, 0, true, data, Date.now()));
  }

  /** Whether the stream has a main video track. */
  hasVideo(): boolean { return this.mainVideo !== null; }

  /** End of the stream's timeline in seconds (where a new publisher continues), 0 when empty. */
  timelineEndSec(): number {
    let end = 0;
    for (const t of this.tracks) {
      if (t.lastDts === -Infinity) continue;
      const e = (t.lastDts + (t.frameDuration || 1)) / t.clockRate;
      if (e > end) end = e;
    }
    return end;
  }

  /** @internal Append a frame (already tamed) and wake the subscribers. */
  write(f: Frame): void {
    const t = f.track;
    let isSync = false;
    if (t.kind === 'video') {
      if (f.key) t.keyframes++;
      isSync = f.key && (t === this.mainVideo);
    } else if (t.kind === 'audio' && !this.mainVideo && t.index === 0) {
      const sec = f.dts / t.clockRate;
      if (sec - this.lastAudioSyncSec >= AUDIO_SYNC_SEC || sec < this.lastAudioSyncSec) {
        isSync = true;
        this.lastAudioSyncSec = sec;
      }
    }
    t.account(f.data.byteLength, f.arrival);
    const prev = t.lastSeq >= 0 ? this.ring.get(t.lastSeq) : undefined;
    if (prev && prev.track === t) { f.prevSeq = prev.seq; f.delta = f.dts - prev.dts; }
    t.lastSeq = this.ring.push(f, isSync);
    if (isSync) this.evictOld();
    const cfg = this.pubConfig;
    if (this.ring.size > cfg.ringsize || this.ring.bytes > cfg.ringbytes) this.evictHard();
    if (this.waiters.length) this.checkWaiters();
    const now = f.arrival;
    const t0 = performance.now();
    let due = Infinity;
    for (const s of this.subscribers) {
      if (s.state !== 'live') continue;
      const d = s.onFrame(f, now);
      if (d < due) due = d;
    }
    if (due !== Infinity) this.scheduleMerged(due);
    this.fanoutMs += performance.now() - t0;
  }

  // ---------------------------------------------------------------- adaptive merging

  /** Merge window (ms) added under load, on top of each subscriber's subscribe.mergewrite. */
  autoMerge = 0;
  /** Share of the last adapt() period spent writing to subscribers (0..1), for StreamInfo. */
  fanoutBusy = 0;
  private fanoutMs = 0;
  private adaptAt = 0;
  /** Consecutive adapt() periods over MERGE_BUSY / under UNMERGE_BUSY. */
  private hotPeriods = 0;
  private calmPeriods = 0;

  /**
   * @internal Called about once a second. When writing to this stream's subscribers took more than
   * half of the time for MERGE_AFTER_PERIODS periods in a row, the stream merges writes by another
   * 25 ms (up to MAX_AUTO_MERGE_MS), and by 25 more for each further such period: fewer, larger writes,
   * so the process keeps up and viewers get a little more latency instead of falling behind and
   * skipping. It gives 25 ms back after each period under IDLE_BUSY, and after UNMERGE_AFTER_PERIODS
   * periods in a row under UNMERGE_BUSY.
   *
   * Why not at once, and why not only when nearly idle: at 1000 viewers on the bench machine the
   * fan-out takes 0.22-0.60 of the time unmerged (7 of 169 one-second readings over half) and
   * 0.24-0.27 merged by 25 ms. One second over half (a join storm, a GC pause, a busy neighbour) used
   * to merge at once and, with a fifth as the only way back, for good: such bench rows ran at ~33 ms
   * latency instead of ~7 (docs/BENCHMARKS.md). The join storm of 1000 RTMP players kept two periods
   * in a row over half in both full runs with two (Node, Deno), hence three; it can still take three (the
   * stream then unmerges three seconds after the storm).
   */
  adapt(now: number): void {
    const span = now - this.adaptAt;
    this.adaptAt = now;
    const busy = span > 0 && span < 5000 ? this.fanoutMs / span : 0;
    this.fanoutMs = 0;
    this.fanoutBusy = busy;
    if (busy > MERGE_BUSY) {
      this.calmPeriods = 0;
      if (++this.hotPeriods >= MERGE_AFTER_PERIODS) this.autoMerge = Math.min(this.autoMerge + 25, MAX_AUTO_MERGE_MS);
      return;
    }
    this.hotPeriods = 0;
    if (busy >= UNMERGE_BUSY || this.autoMerge === 0) { this.calmPeriods = 0; return; }
    if (busy < IDLE_BUSY || ++this.calmPeriods >= UNMERGE_AFTER_PERIODS) {
      this.calmPeriods = 0;
      this.autoMerge = Math.max(this.autoMerge - 25, 0);
    }
  }

  // ---------------------------------------------------------------- merged writes

  private mergeTimer: ReturnType<typeof setTimeout> | undefined;
  private mergeDue = Infinity;

  /** Make sure subscribers holding frames back (subscribe.mergewrite) are flushed by `due` even when no
   * further frame arrives. One timer per stream, however many subscribers wait. */
  private scheduleMerged(due: number): void {
    if (this.mergeTimer !== undefined && this.mergeDue <= due) return;
    if (this.mergeTimer !== undefined) clearTimeout(this.mergeTimer);
    this.mergeDue = due;
    this.mergeTimer = setTimeout(() => this.flushMerged(), Math.max(0, due - Date.now()));
  }

  private flushMerged(): void {
    this.mergeTimer = undefined;
    this.mergeDue = Infinity;
    if (this.state === 'closed') return;
    const now = Date.now(), t0 = performance.now();
    let due = Infinity;
    for (const s of this.subscribers) {
      if (s.state !== 'live') continue;
      const d = s.flushIfDue(now);
      if (d < due) due = d;
    }
    if (due !== Infinity) this.scheduleMerged(due);
    this.fanoutMs += performance.now() - t0;
  }

  // ---------------------------------------------------------------- shared packagings of frame ranges

  /** Packagings of [from, ring.head) built this round, valid until the next frame is written. */
  private readonly shared: { key: string; from: number; value: unknown }[] = [];
  private sharedHead = -1;

  /**
   * The frames from `from` up to the live edge, packaged for `key` (a format and all its parameters),
   * built once by `build` and handed to every subscriber that sends exactly that range in that format.
   * Subscribers at the live edge flush together (they are woken by the same frame), so a thousand
   * viewers of one stream cost one packaging and a thousand writes of the same bytes.
   */
  sharedRange<T>(key: string, from: number, build: () => T): T {
    const list = this.shared;
    if (this.sharedHead !== this.ring.head) { list.length = 0; this.sharedHead = this.ring.head; }
    for (let i = 0; i < list.length; i++) {
      const e = list[i];
      if (e.from === from && e.key === key) return e.value as T;
    }
    const value = build();
    if (list.length >= 16) list.shift(); // many distinct positions: stragglers, keep the memory bounded
    list.push({ key, from, value });
    return value;
  }

  /** Keep the current GOP and the previous one, or more to cover buffertime. */
  private evictOld(): void {
    const ring = this.ring;
    const n = ring.syncCount;
    if (n < 3) return;
    let keepFrom = ring.syncAt(-2)!;
    const bt = Math.max(this.pubConfig.buffertime, this.maxSubscriberBuffertime());
    if (bt > 0) {
      const s = this.syncForBuffer(bt);
      if (s !== undefined && s < keepFrom) keepFrom = s;
    }
    if (keepFrom > ring.tail) ring.evictTo(keepFrom);
  }

  /** Over the hard bounds (ringsize frames / ringbytes): drop whole GOPs from the old end, then frames. */
  private evictHard(): void {
    const ring = this.ring, cfg = this.pubConfig;
    while (ring.size > cfg.ringsize || ring.bytes > cfg.ringbytes) {
      const next = ring.syncAtOrAfter(ring.tail + 1);
      const latest = ring.latestSync();
      if (next !== undefined && latest !== undefined && next <= latest && next > ring.tail) ring.evictTo(next);
      else ring.evictTo(ring.tail + Math.max(1, ring.size >> 3));
    }
  }

  /** @internal Drop everything before the latest sync point (global.limits.ringmemory). */
  trimToLatestGop(): void {
    const latest = this.ring.latestSync();
    if (latest !== undefined && latest > this.ring.tail) this.ring.evictTo(latest);
  }

  private maxSubscriberBuffertime(): number {
    let m = 0;
    for (const s of this.subscribers) if (s.config.submode === 'buffer' && s.config.buffertime > m) m = s.config.buffertime;
    return m;
  }

  /** The newest sync point at least `ms` behind the newest frame (or the oldest one held). */
  syncForBuffer(ms: number): number | undefined {
    const ring = this.ring;
    const newest = ring.last();
    if (!newest) return undefined;
    const newestSec = newest.dts / newest.track.clockRate;
    for (let i = ring.syncCount - 1; i >= 0; i--) {
      const seq = ring.syncAt(i)!;
      const f = ring.get(seq)!;
      if ((newestSec - f.dts / f.track.clockRate) * 1000 >= ms) return seq;
    }
    return ring.syncAt(0);
  }

  // ---------------------------------------------------------------- readiness

  /** Whether a subscriber waiting for `want` can start. */
  isReady(want: WaitTrack): boolean {
    if (!this.publisher || this.ring.size === 0) return false;
    const hasKey = this.mainVideo !== null && this.ring.latestSync() !== undefined && this.mainVideo.keyframes > 0;
    const audio = this.tracks.some((t) => t.kind === 'audio' && t.frames > 0);
    const video = this.tracks.some((t) => t.kind === 'video');
    switch (want) {
      case 'any': return true;
      case 'audio': return audio || (hasKey && !this.tracks.some((t) => t.kind === 'audio'));
      case 'all': {
        const needAudio = this.tracks.some((t) => t.kind === 'audio');
        return (!video || hasKey) && (!needAudio || audio) && (video || audio);
      }
      default: // 'video': a keyframe, or an audio-only stream with a sync point
        if (hasKey) return true;
        return !video && audio && this.ring.latestSync() !== undefined && this.audioOnlyLikely();
    }
  }

  /** No video track yet: treat as audio-only once ~1 s of audio has gone by without one. */
  private audioOnlyLikely(): boolean {
    const a = this.tracks.find((t) => t.kind === 'audio');
    if (!a) return false;
    const first = this.ring.first();
    const last = this.ring.last();
    if (!first || !last) return false;
    return (last.arrival - first.arrival) >= 1000 || a.frames >= 50;
  }

  /**
   * Resolves when isReady(want); rejects after `timeoutMs` (0 = don't wait), when the stream closes,
   * or at once when `signal` aborts (the client left).
   */
  waitReady(want: WaitTrack, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.isReady(want)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        clearTimeout(w.timer);
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new EngineError('Closed', `client left while waiting for ${this.path}`));
      };
      const done = () => signal?.removeEventListener('abort', onAbort);
      const w: ReadyWaiter = {
        want, timer: undefined,
        resolve: () => { done(); resolve(); },
        reject: (e) => { done(); reject(e); },
      };
      if (signal?.aborted) { reject(new EngineError('Closed', `client left while waiting for ${this.path}`)); return; }
      w.timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        w.reject(new EngineError(this.publisher ? 'Timeout' : 'NotFound',
          this.publisher ? `stream ${this.path} has no ${want} data after ${timeoutMs} ms` : `stream ${this.path} not found (waited ${timeoutMs} ms)`));
      }, Math.max(0, timeoutMs));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(w);
    });
  }

  private checkWaiters(): void {
    if (!this.waiters.length) return;
    const still: ReadyWaiter[] = [];
    for (const w of this.waiters) {
      if (this.isReady(w.want)) { clearTimeout(w.timer); w.resolve(); } else still.push(w);
    }
    this.waiters = still;
  }

  // ---------------------------------------------------------------- subscribers

  /** @internal */
  addSubscriber(s: Subscriber): void {
    this.subscribers.add(s);
    if (s.counted) { this.hadSubscriber = true; this.emptySince = 0; }
  }

  /** @internal Called by Subscriber.close(). */
  removeSubscriber(s: Subscriber, reason: string): void {
    if (!this.subscribers.delete(s)) return;
    if (s.counted && this.countedSubscribers() === 0) this.emptySince = Date.now();
    this.host.onSubscriberRemoved(this, s, reason);
  }

  countedSubscribers(): number {
    let n = 0;
    for (const s of this.subscribers) if (s.counted) n++;
    return n;
  }

  // ---------------------------------------------------------------- close

  /** @internal End the stream: stop the publisher, end every subscriber. */
  close(reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    const pub = this.publisher;
    this.publisher = null;
    pub?.stop(reason);
    for (const w of this.waiters) { clearTimeout(w.timer); w.reject(new EngineError('Closed', `stream ${this.path} closed: ${reason}`)); }
    this.waiters = [];
    for (const s of [...this.subscribers]) s.end(reason);
    this.subscribers.clear();
    if (this.mergeTimer !== undefined) clearTimeout(this.mergeTimer);
    this.mergeTimer = undefined;
    this.shared.length = 0;
    this.ring.clear();
    this.host.onStreamClosed(this, reason);
  }

  // ---------------------------------------------------------------- info

  info(): StreamInfo {
    const ring = this.ring;
    const first = ring.first(), last = ring.last();
    return {
      path: this.path, state: this.state, createdAt: new Date(this.createdAt).toISOString(),
      publisher: this.publisher?.info() ?? null, publishCount: this.publishCount,
      subscribers: this.subscribers.size, autoMerge: this.autoMerge, fanoutBusy: Math.round(this.fanoutBusy * 1000) / 1000,
      tracks: this.tracks.map((t) => t.info()),
      ring: {
        frames: ring.size, bytes: ring.bytes, capacity: ring.capacity, syncPoints: ring.syncCount,
        spanMs: first && last ? last.arrival - first.arrival : 0,
      },
    };
  }
}

export interface StreamInfo {
  path: string;
  state: StreamState;
  createdAt: string;
  publisher: PublisherInfo | null;
  publishCount: number;
  subscribers: number;
  /** Merge window (ms) the stream added under load (see Stream.adapt). */
  autoMerge: number;
  /** Share of the last second spent writing to subscribers (0..1): over half for three seconds in a row turns autoMerge on. */
  fanoutBusy: number;
  tracks: Record<string, unknown>[];
  ring: { frames: number; bytes: number; capacity: number; syncPoints: number; spanMs: number };
}

function ceilPow2(n: number): number {
  let p = 1;
  while (p < n) p <<= 1;
  return p;
}
