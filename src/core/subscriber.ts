// A Subscriber is a cursor into its stream's ring, not a copy of the frames. It starts at the latest
// sync point (the GOP cache: the first frame is a keyframe at once), sends everything up to the live edge,
// and then follows the writer. When its connection will not drain, it stops (state 'blocked') and lets
// the ring move on; when it resumes and finds itself evicted or too far behind, it skips to a keyframe.
// Frames are never queued per subscriber: the only per-subscriber memory is what its connection buffers
// (bounded by the connection's high-water mark) plus this small object.

import type { AudioBridge } from './bridge.ts';
import type { SubscribeConfig } from './config.ts';
import type { CodecConfig, Frame, Track } from './frame.ts';
import type { Stream } from './stream.ts';

/** What a protocol plugin implements to receive a stream. */
export interface SubscriberSink {
  /** Called once before anything else, when the stream is ready (tracks known). Write headers here. */
  begin?(sub: Subscriber): void;
  /**
   * The codec config of `track`: called before the first frame of a track and again whenever it changes
   * (write a sequence header). `next` is the frame it goes before, `dts` that frame's time as frame()
   * will get it. Returns the bytes queued.
   */
  config?(track: Track, cfg: CodecConfig, sub: Subscriber, next: Frame, dts: number): number;
  /**
   * One frame, `dts` rebased for this subscriber (track clock units, starts near 0). `cts` is given for a
   * frame retimed by catch-up (see Subscriber.retimed): the composition offset to send instead of
   * `f.cts` (so the frame's own packagings, which carry f.cts, cannot be used as they are). Returns bytes
   * queued.
   */
  frame(f: Frame, dts: number, sub: Subscriber, cts?: number): number;
  /**
   * Optional fast path: queue the frames [from, to) of the stream's ring as one packaging shared with
   * every other subscriber sending the same range (see Stream.sharedRange). Only called when every frame
   * in the range is one this subscriber would send through frame() unchanged: main audio/video tracks,
   * codec configs already sent, no keyframe wait. Returns the payload bytes queued, or -1 when this
   * subscriber's state does not allow it (the frames then go through frame() one by one).
   */
  shared?(from: number, to: number, sub: Subscriber): number;
  /**
   * Optional shared start (see Subscriber.sharedStart): players that join a stream at the same point get
   * the same first burst (sequence headers and the cached GOP, catch-up retimed), so it is built once and
   * its bytes written to each. `startKey` names what the sink's output depends on besides the engine's
   * state (its format and framing), or undefined when this subscriber's start cannot be shared.
   * `takeStart` takes what config()/frame() queued since the last flush, and the sink's own state
   * after it; `queueStart` queues such bytes (taken from another subscriber's sink with the same key)
   * and adopts that state.
   */
  startKey?(sub: Subscriber): string | undefined;
  takeStart?(sub: Subscriber): SharedStartBytes;
  queueStart?(start: SharedStartBytes, sub: Subscriber): void;
  /** A player that may have its first GOP retimed to reach the live edge (subscribe.catchup). */
  readonly catchup?: boolean;
  /**
   * The audio codecs this sink can send, best first. When the stream's audio is none of them and an
   * audio bridge runs (plugins/audiobridge), the subscriber gets the bridge's transcoded track instead
   * (shared with every other subscriber that needs it). Undefined: the stream's audio as it is.
   */
  readonly audioCodecs?: readonly string[];
  /** Timestamps on the stream's timeline (the same for every subscriber) instead of starting near 0. */
  readonly streamTimeline?: boolean;
  /**
   * Start this far back (ms) in the ring instead of at the latest keyframe: the sync point at least this
   * old, or the oldest one the ring holds (Infinity: always the oldest). Recorders use it to record a
   * stream from its first keyframe (onpub.record) or from before an event.
   */
  readonly history?: number;
  /** End of a batch: write out what was queued. Return false if the connection is backpressured; call
   * `sub.resume()` when it drains. */
  flush(sub: Subscriber): boolean;
  /** The subscription ended from the engine's side (stream closed, kicked, timeout). Close the connection. */
  close?(reason: string, sub: Subscriber): void;
}

export type SubscriberState = 'waiting' | 'live' | 'blocked' | 'closed';

/**
 * A shared start's bytes as a sink took them (SubscriberSink.takeStart): the chunks it queued (payload,
 * not framed for a transport), their total size and the sink's own state after them. `joined`: the
 * chunks in one framed buffer, made on first need by a sink whose connection would otherwise copy or
 * make a call per chunk (see ByteSink.gathers), then shared too.
 */
export interface SharedStartBytes {
  parts: Uint8Array[]; size: number; state: unknown; joined?: Uint8Array;
  /** The same after a player's own head bytes (its stream headers), per distinct head: one write per join. */
  withHead?: { head: Uint8Array; bytes: Uint8Array }[];
}

/** What a shared start leaves a subscriber in (Subscriber.sharedStart). */
interface SharedStart {
  out: SharedStartBytes;
  cursor: number;
  needKey: boolean;
  baseSec: number;
  retimeLastMs: number;
  /** Codec configs sent: [track id, version]. */
  cfg: [number, number][];
  frames: number;
  bytes: number;
}

export interface SubscriberInfo {
  id: number;
  protocol: string;
  type: string;
  remote?: string;
  startTime: string;
  state: SubscriberState;
  submode: string;
  framesSent: number;
  bytesSent: number;
  framesDropped: number;
  skips: number;
  /** A viewer too slow for the stream: it gets keyframes only (no audio) until it keeps up again. */
  degraded: boolean;
  /** The codec of the audio bridge's track this subscriber gets instead of the stream's own audio. */
  audioBridged?: string;
  /** How far behind the live edge (ms of arrival time). */
  lagMs: number;
  /** Bytes waiting in this subscriber's connection, as its plugin reports. */
  buffered: number;
  /** Set when the subscriber ended because its plugin's sink threw. */
  error?: string;
  args: Record<string, string>;
}

let subIds = 0;

/** How much longer than mergewrite held frames wait for a video frame to end their batch. */
export const AUDIO_HOLD_MS = 40;

/**
 * A viewer that has to skip twice within this time is switched to keyframes only (no audio), and back
 * to everything once it has taken frames without pushback for this long.
 */
export const DEGRADE_WINDOW_MS = 10_000;

/** The longest a degraded viewer waits before it is tried at the full rate again. */
export const MAX_DEGRADE_HOLD_MS = 300_000;

/** The least time (ms) between two frames a catch-up fast-forward leaves (see Subscriber.planCatchup). */
export const MIN_RETIME_STEP_MS = 1.25;

/** Flush a batch once it holds this many bytes, so backpressure is noticed within a GOP burst. */
const MAX_BATCH_BYTES = 64 * 1024;

export class Subscriber {
  readonly id = ++subIds;
  readonly startTime = Date.now();
  state: SubscriberState = 'waiting';
  /** Next ring sequence number to send. */
  cursor = 0;
  framesSent = 0;
  bytesSent = 0;
  framesDropped = 0;
  skips = 0;
  /** Keyframes only for a viewer that cannot keep up (see DEGRADE_WINDOW_MS). */
  degraded = false;
  private lastSkipAt = 0;
  private lastBlockAt = 0;
  /** How long a degraded viewer must keep up before it gets everything again; doubles each relapse. */
  private degradeHold = DEGRADE_WINDOW_MS;
  private everRecovered = false;
  /** Set by the plugin: bytes buffered in its connection (shown in the API). */
  bufferedFn: (() => number) | null = null;
  /** Why the subscriber ended with an error (a sink that threw), for the API. */
  error = '';
  /** Counts towards the stream's audience (delayclosetimeout/idletimeout); recorders/pushers don't. */
  readonly counted: boolean;

  private needKey = true;
  private baseSec = NaN;
  private readonly cfgSent = new Map<number, number>(); // track id -> config version sent
  private readonly wantVideo: boolean;
  private readonly wantAudio: boolean;
  private readonly wantData: boolean;
  private readonly videoIndex: number;
  private audioIndex: number;
  /** The bridged audio track this subscriber takes instead of the stream's own (see SubscriberSink.audioCodecs). */
  private bridged: Track | null = null;
  private readonly bridge: AudioBridge | null;
  private pumping = false;
  /** Takes exactly what Stream.sharedRange packagings hold: the main audio and video tracks. */
  private shareable: boolean;
  /** Arrival time (ms) of the oldest frame held back by subscribe.mergewrite; 0 = none. */
  private pendingSince = 0;
  /** Catch-up (subscribe.catchup): frames before this seq are retimed; -1 = none. */
  private retimeEnd = -1;
  private retimeEdgeSec = 0;
  private retimeK = 1;
  /** Last retimed video dts sent (whole ms on the retimed timeline), to keep it strictly rising. */
  private retimeLastMs = -Infinity;
  /** Bytes to batch before a flush: large for the first GOP burst, one frame while recovering from a block. */
  private flushEvery = MAX_BATCH_BYTES;
  /** Nothing sent yet since start(): the next pump may take a shared start (see sharedStart). */
  private startPending = false;

  constructor(
    readonly stream: Stream,
    readonly config: SubscribeConfig,
    readonly sink: SubscriberSink,
    readonly protocol: string,
    readonly type: string,
    readonly args: Record<string, string>,
    readonly remote?: string,
    opts: { data?: boolean; counted?: boolean; bridge?: AudioBridge | null } = {},
  ) {
    this.bridge = opts.bridge ?? null;
    this.wantVideo = config.subvideo;
    this.wantAudio = config.subaudio;
    this.wantData = opts.data ?? false;
    this.counted = opts.counted ?? (type === 'server' || type === 'vod');
    this.videoIndex = Math.max(0, parseInt(args[config.subvideoargname] ?? '0', 10) || 0);
    this.audioIndex = Math.max(0, parseInt(args[config.subaudioargname] ?? '0', 10) || 0);
    this.shareable = this.wantVideo && this.wantAudio && !this.wantData && this.videoIndex === 0 &&
      this.audioIndex === 0 && !config.iframeonly;
  }

  /** Whether this subscriber takes frames of `t`. */
  wants(t: Track): boolean {
    if (t.kind === 'video') return this.wantVideo && t.index === this.videoIndex;
    if (t.kind === 'audio') return this.wantAudio && t.index === this.audioIndex;
    return this.wantData;
  }

  /** The audio track this subscriber receives (the bridged one when it got one), if any. */
  audioTrack(): Track | undefined { return this.stream.tracks.find((t) => t.kind === 'audio' && this.wants(t)); }

  /** Whether its audio comes from the audio bridge. */
  get audioBridged(): boolean { return this.bridged !== null; }

  /** At start: the stream's audio in a codec the sink does not take → the audio bridge's track, when it can make one. */
  private pickAudio(): void {
    const want = this.sink.audioCodecs;
    if (!want || !this.wantAudio || !this.bridge) return;
    const src = this.stream.tracks.find((t) => t.kind === 'audio' && t.index === this.audioIndex);
    if (!src || want.includes(src.codec)) return;
    const t = this.bridge.acquire(this.stream, src, want);
    if (!t) return;
    this.bridged = t;
    this.audioIndex = t.index;
    this.shareable = false;
  }

  private releaseAudio(): void {
    const t = this.bridged;
    if (!t) return;
    this.bridged = null;
    this.bridge?.release(t);
  }

  /** The tracks this subscriber will receive (for headers: has audio / has video). */
  tracks(): Track[] { return this.stream.tracks.filter((t) => this.wants(t)); }

  /** @internal Position the cursor and start sending. Called by the stream when it is ready. */
  start(): void {
    if (this.state !== 'waiting') return;
    const ring = this.stream.ring;
    let pos: number | undefined;
    if (!this.stream.publisher) pos = ring.head;
    else if (this.config.submode === 'buffer' && this.config.buffertime > 0) pos = this.stream.syncForBuffer(this.config.buffertime);
    else if (this.sink.history! > 0) pos = this.stream.syncForBuffer(this.sink.history!);
    else pos = ring.latestSync();
    this.cursor = pos ?? ring.head;
    this.needKey = true;
    if (this.sink.streamTimeline) this.baseSec = 0;
    this.planCatchup();
    this.pickAudio();
    this.startPending = true;
    this.state = 'live';
    try {
      this.sink.begin?.(this);
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err);
      this.close(`sink failed: ${this.error}`);
      this.end(`sink failed: ${this.error}`);
      return;
    }
    this.pump();
  }

  /**
   * Instant start at the live edge. The viewer starts at the cached keyframe (first picture at once);
   * the video from there to the live edge is retimed to play within `catchup` ms, ending at the live
   * edge's own time, and the cached audio is left out (it cannot be played faster). A player then shows
   * the keyframe at once, fast-forwards for `catchup` ms and plays live, instead of staying behind by
   * the age of the cached GOP for the whole session.
   *
   * The retiming is one monotonic map of the stream's time, applied to decode AND presentation times:
   *   t' = t                           for t >= edge (the newest video dts when the player joined)
   *   t' = edge - (edge - t) * k       for t <  edge
   * dts' = map(dts), pts' = map(pts), cts' = pts' - dts'. Because the map keeps order, a B-frame GOP
   * keeps its decode order (dts strictly rising), pts >= dts and its presentation order, also across the
   * end of the fast-forward (a retimed frame presented after the edge keeps its own pts, like the live
   * frames that follow). Compressing dts but keeping each frame's cts (what an FLV tag body carries)
   * would present B-frames out of order and before their keyframe. Times are whole milliseconds (what
   * FLV/RTMP carry) and at least MIN_RETIME_STEP_MS apart per frame, so rounding keeps every order.
   */
  private planCatchup(): void {
    const ms = this.config.catchup;
    if (!(ms > 0) || !this.sink.catchup || !this.wantVideo || !this.stream.publisher || this.config.submode !== 'real') return;
    const ring = this.stream.ring;
    const first = ring.get(this.cursor);
    if (!first || first.track.kind !== 'video') return;
    // The edge is the newest frame of the same video track: the last retimed frame keeps its own time.
    const t = first.track, clock = t.clockRate;
    const firstSec = first.dts / clock, edgeSec = t.lastDts / clock;
    const span = edgeSec - firstSec;
    if (!(span * 1000 > ms)) return; // already close enough to the edge
    let k = ms / 1000 / span;
    // Frames at least MIN_RETIME_STEP_MS apart (a long GOP at a high frame rate takes a little longer).
    const stepMs = (t.frameDuration || span * clock / Math.max(1, t.lastSeq - this.cursor)) * 1000 / clock;
    if (stepMs > 0 && k * stepMs < MIN_RETIME_STEP_MS) k = Math.min(1, MIN_RETIME_STEP_MS / stepMs);
    if (k >= 1) return;
    this.retimeEnd = ring.head;
    this.retimeEdgeSec = edgeSec;
    this.retimeK = k;
    this.retimeLastMs = -Infinity;
  }

  /** The catch-up map of a time (s) on the stream's timeline, in whole ms (see planCatchup). */
  private retimeMs(sec: number): number {
    const e = this.retimeEdgeSec;
    return Math.round((sec >= e ? sec : e - (e - sec) * this.retimeK) * 1000);
  }

  /** Whether `f` is sent with a retimed timestamp (the catch-up part of this subscriber's start). */
  retimed(f: Frame): boolean { return f.seq < this.retimeEnd; }

  /** The connection drained: continue from where we stopped. */
  resume(): void {
    if (this.state !== 'blocked') return;
    this.state = 'live';
    // A connection that pushed back gets one frame per flush until it is back at the live edge, so it
    // never overshoots its high-water mark by more than one frame.
    this.flushEvery = 0;
    this.pump();
  }

  /** @internal The publisher changed: wait for its first keyframe before sending video again. */
  publisherChanged(): void { this.needKey = true; }

  /**
   * @internal A frame was added to the stream at `now` (ms). Returns when the stream's timer must flush
   * this subscriber if no frame triggers it first (Infinity: nothing held back).
   *
   * Merged writes (subscribe.mergewrite = W). For a viewer of video, batches end at a video frame: the
   * held frames go out when a video frame arrives and the oldest of them is at least W old. W = 0 writes
   * at every video frame, audio riding along with the next one: one write per video frame instead of one
   * per frame, and no video frame waits. Should video stall, the timer writes what is held once the
   * oldest is W + AUDIO_HOLD_MS old. Without video, a batch goes out when its oldest frame is W old
   * (W = 0: every frame at once).
   */
  onFrame(f: Frame, now: number): number {
    const w = Math.max(this.config.mergewrite, this.stream.autoMerge);
    if (this.pendingSince === 0) this.pendingSince = now;
    if (this.wantVideo && this.stream.hasVideo()) {
      const t = f.track;
      if (t.kind === 'video' && t.index === this.videoIndex && now - this.pendingSince >= w) this.pump();
      return this.pendingSince === 0 ? Infinity : this.pendingSince + w + AUDIO_HOLD_MS;
    }
    if (now - this.pendingSince >= w) this.pump();
    return this.pendingSince === 0 ? Infinity : this.pendingSince + w;
  }

  /** @internal The stream's merge timer: flush when due; returns the next due time like onFrame(). */
  flushIfDue(now: number): number {
    if (this.pendingSince === 0) return Infinity;
    const w = Math.max(this.config.mergewrite, this.stream.autoMerge) + (this.wantVideo && this.stream.hasVideo() ? AUDIO_HOLD_MS : 0);
    if (now - this.pendingSince >= w - 1) this.pump(); // timers may fire within the same ms
    return this.pendingSince === 0 ? Infinity : this.pendingSince + w;
  }

  /** Send everything from the cursor to the live edge (or until the connection pushes back). */
  pump(): void {
    if (this.state !== 'live' || this.pumping) return;
    this.pendingSince = 0; // sent up to the live edge, or blocked (resume() pumps again)
    this.pumping = true;
    try {
      this.pumpInner();
    } catch (err) {
      // A plugin's sink threw: end this subscriber only. The publisher's write() and every other
      // subscriber of the stream carry on.
      this.error = err instanceof Error ? err.message : String(err);
      this.close(`sink failed: ${this.error}`);
      this.end(`sink failed: ${this.error}`);
    } finally {
      this.pumping = false;
    }
  }

  private pumpInner(): void {
    const ring = this.stream.ring;
    let c = this.cursor;
    if (c >= ring.head) return;
    if (c < ring.tail) {
      // Evicted while we were blocked: jump to the oldest sync point still held.
      const s = ring.syncAtOrAfter(ring.tail) ?? ring.head;
      this.skip(c, s);
      c = s;
    }
    if (this.config.submode === 'real') {
      const newest = ring.last(), cur = ring.get(c);
      if (newest && cur && newest.arrival - cur.arrival > this.config.maxlag) {
        const s = ring.latestSync();
        if (s !== undefined && s > c) { this.skip(c, s); c = s; }
      }
    }
    const sink = this.sink;
    if (sink.shared && this.shareable && this.flushEvery > 0) {
      const head = ring.head;
      const n = this.plainFrames(c, head);
      if (n > 0) {
        const bytes = sink.shared(c, head, this);
        if (bytes >= 0) {
          this.cursor = head;
          this.bytesSent += bytes;
          this.framesSent += n;
          if (!sink.flush(this) && this.state === 'live') this.blocked();
          return;
        }
      }
    }
    if (this.startPending) {
      this.startPending = false;
      if (this.sharedStart(c)) return;
    }
    this.sendFrames(c);
  }

  /** The per-frame path: frames from `c` to the live edge through config()/frame(), flushed in batches. */
  private sendFrames(c: number): void {
    const ring = this.stream.ring;
    const sink = this.sink;
    const degraded = this.degraded;
    const keyOnly = this.config.iframeonly || degraded;
    let batch = 0;
    while (c < ring.head) {
      const f = ring.get(c++)!;
      const t = f.track;
      if (!this.wants(t)) continue;
      if (degraded && !(t.kind === 'video' && f.key)) { this.framesDropped++; continue; }
      if (t.kind === 'video') {
        if (this.needKey) {
          if (!f.key) continue;
          this.needKey = false;
        } else if (keyOnly && !f.key) continue;
      }
      let sec = f.dts / t.clockRate;
      let cts: number | undefined;
      if (f.seq < this.retimeEnd) {
        if (t.kind !== 'video') continue; // catch-up: cached audio is left out
        // dts and pts through the same monotonic map, in whole ms (see planCatchup).
        let dMs = this.retimeMs(sec);
        if (dMs <= this.retimeLastMs) dMs = this.retimeLastMs + 1; // irregular source: still strictly rising
        this.retimeLastMs = dMs;
        const pMs = Math.max(dMs, this.retimeMs(f.pts / t.clockRate));
        sec = dMs / 1000;
        cts = Math.round(((pMs - dMs) * t.clockRate) / 1000);
      }
      if (this.baseSec !== this.baseSec) this.baseSec = sec; // NaN check: first frame
      // The audio bridge's output lags its source: what is older than this subscriber's start is left
      // out rather than sent at time 0 (several frames at one time).
      else if (sec < this.baseSec && t.derivedFrom) continue;
      let dts = Math.round((sec - this.baseSec) * t.clockRate);
      if (dts < 0) dts = 0;
      if (this.cfgSent.get(t.id) !== f.configVersion) {
        this.cfgSent.set(t.id, f.configVersion);
        if (sink.config) batch += sink.config(t, f.config, this, f, dts);
      }
      const n = cts === undefined ? sink.frame(f, dts, this) : sink.frame(f, dts, this, cts);
      batch += n;
      this.bytesSent += n;
      this.framesSent++;
      if (batch > this.flushEvery) {
        this.cursor = c;
        batch = 0;
        if (!sink.flush(this)) {
          if (this.state === 'live') this.blocked();
          return;
        }
        if (this.state !== 'live') return; // closed from inside the sink
      }
    }
    this.cursor = c;
    if (c >= this.retimeEnd) this.retimeEnd = -1;
    if (this.capturing) return;
    if (batch > 0 && !sink.flush(this)) {
      if (this.state === 'live') this.blocked();
      return;
    }
    this.flushEvery = MAX_BATCH_BYTES; // caught up without pushback
    if (degraded && Date.now() - Math.max(this.lastBlockAt, this.lastSkipAt) > this.degradeHold) {
      this.degraded = false;
      this.everRecovered = true;
      this.needKey = true; // P-frames need the frames it did not get: start again at a keyframe
    }
  }

  /**
   * The first pump of a player, shared. What it sends from `c` to the live edge depends only on the ring
   * and on state every subscriber starts with (no configs sent, waiting for a keyframe, the same catch-up
   * map and timestamp base, the default track selection): players joining between two frames of the
   * stream get the same bytes. In a join storm (a thousand viewers within a second) the first of them
   * builds the burst through the per-frame path in one buffer (Stream.sharedRange, keyed by that state)
   * and the others only write it, instead of each packaging the whole GOP again. The subscriber's own
   * state afterwards is the builder's. Returns false when this subscriber cannot take it.
   */
  private sharedStart(c: number): boolean {
    const sink = this.sink;
    if (!this.shareable || this.degraded || !sink.takeStart || !sink.queueStart) return false;
    const sk = sink.startKey?.(this);
    if (sk === undefined) return false;
    const key = `start:${sk}:${this.retimeEnd}:${this.retimeK}:${this.retimeEdgeSec}:${this.baseSec}`;
    let built = false;
    const st = this.stream.sharedRange(key, c, () => {
      built = true;
      return this.buildStart(c);
    });
    if (!built) {
      this.cursor = st.cursor;
      this.needKey = st.needKey;
      this.baseSec = st.baseSec;
      this.retimeLastMs = st.retimeLastMs;
      for (const [id, v] of st.cfg) this.cfgSent.set(id, v);
      this.framesSent += st.frames;
      this.bytesSent += st.bytes;
    }
    if (this.cursor >= this.retimeEnd) this.retimeEnd = -1;
    // After what begin() queued (headers): one write where the connection gathers.
    if (st.out.size > 0) sink.queueStart(st.out, this);
    if (!sink.flush(this)) {
      if (this.state === 'live') this.blocked();
      return true;
    }
    this.flushEvery = MAX_BATCH_BYTES;
    return true;
  }

  /** Run the per-frame path from `c` without flushing and take what it queued (see sharedStart). */
  private buildStart(c: number): SharedStart {
    // What begin() queued is this player's own: out first, so the burst holds only the shared part.
    // (Pushback shows at the flush after the burst.)
    this.sink.flush(this);
    const frames0 = this.framesSent, bytes0 = this.bytesSent;
    const every = this.flushEvery;
    this.flushEvery = Infinity;
    this.capturing = true;
    try {
      this.sendFrames(c);
    } finally {
      this.flushEvery = every;
      this.capturing = false;
    }
    return {
      out: this.sink.takeStart!(this),
      cursor: this.cursor, needKey: this.needKey, baseSec: this.baseSec, retimeLastMs: this.retimeLastMs,
      cfg: [...this.cfgSent], frames: this.framesSent - frames0, bytes: this.bytesSent - bytes0,
    };
  }
  /** Inside buildStart: sendFrames queues without flushing. */
  private capturing = false;

  /**
   * How many frames of [from, to) this subscriber sends, when it would send each through frame()
   * unchanged (what a shared packaging holds); -1 when one needs more (a codec config to send first, a
   * keyframe to wait for) or nothing is sent. Frames of other tracks are skipped either way.
   */
  private plainFrames(from: number, to: number): number {
    if (this.baseSec !== this.baseSec) return -1; // nothing sent yet: the timestamp base is not set
    if (from < this.retimeEnd || this.degraded) return -1; // catching up / keyframes only: its own path
    const ring = this.stream.ring;
    let n = 0;
    for (let s = from; s < to; s++) {
      const f = ring.get(s)!;
      const t = f.track;
      if (t.index !== 0 || t.kind === 'data') continue;
      if (t.kind === 'video' && this.needKey) return -1;
      if (this.cfgSent.get(t.id) !== f.configVersion) return -1;
      n++;
    }
    return n > 0 ? n : -1;
  }

  /** Since when (ms) the connection has pushed back without draining; 0 while it takes frames. */
  get blockedSince(): number { return this.state === 'blocked' ? this.lastBlockAt : 0; }

  private blocked(): void {
    this.state = 'blocked';
    this.lastBlockAt = Date.now();
  }

  private skip(from: number, to: number): void {
    // Count only the frames this subscriber would have sent.
    const ring = this.stream.ring;
    let n = 0;
    for (let s = Math.max(from, ring.tail); s < to; s++) { const f = ring.get(s); if (f && this.wants(f.track)) n++; }
    if (from < ring.tail) n += ring.tail - from; // already evicted: count them all (upper bound)
    this.framesDropped += n;
    this.skips++;
    const now = Date.now();
    // Only viewers (real mode) degrade: a recorder (noskip) that lost frames to eviction still wants audio.
    if (now - this.lastSkipAt < DEGRADE_WINDOW_MS && !this.degraded && this.config.submode === 'real') {
      // A relapse after a recovery: it could not take the full rate after all; wait longer next time.
      if (this.everRecovered) this.degradeHold = Math.min(this.degradeHold * 2, MAX_DEGRADE_HOLD_MS);
      this.degraded = true;
    }
    this.lastSkipAt = now;
    this.needKey = true;
    this.retimeEnd = -1; // frames after a skip keep their own times (later than any retimed one)
  }

  /** Frames between the cursor and the live edge, as arrival time (ms). */
  lagMs(): number {
    const ring = this.stream.ring;
    const newest = ring.last();
    const cur = ring.get(Math.max(this.cursor, ring.tail));
    if (!newest || !cur || this.cursor >= ring.head) return 0;
    return newest.arrival - cur.arrival;
  }

  /** Stop the subscription (the plugin's connection closed, or the API stopped it). */
  /**
   * Ask the stream's source for a keyframe (an RTSP/WebRTC viewer that got a PLI/FIR, or lost packets).
   * Reaches Publisher.onKeyframeRequest, rate-limited per publisher. Returns true when forwarded.
   */
  requestKeyframe(): boolean {
    if (this.state === 'closed') return false;
    return this.stream.publisher?.requestKeyframe(`${this.protocol} subscriber ${this.id}`) ?? false;
  }

  close(reason = 'closed'): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.releaseAudio();
    this.stream.removeSubscriber(this, reason);
  }

  /** @internal The engine ends it: tell the plugin. */
  end(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.state = 'closed';
    this.releaseAudio();
    try { this.sink.close?.(reason, this); } catch { /* the plugin's problem; the engine carries on */ }
  }
  private ended = false;

  info(): SubscriberInfo {
    return {
      id: this.id, protocol: this.protocol, type: this.type, remote: this.remote,
      startTime: new Date(this.startTime).toISOString(), state: this.state, submode: this.config.submode,
      framesSent: this.framesSent, bytesSent: this.bytesSent, framesDropped: this.framesDropped, skips: this.skips, degraded: this.degraded,
      ...(this.bridged ? { audioBridged: this.bridged.codec } : {}),
      lagMs: this.lagMs(), buffered: this.bufferedFn?.() ?? 0, args: this.args, ...(this.error ? { error: this.error } : {}),
    };
  }
}
