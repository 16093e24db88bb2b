// Live bodies at the edge: one upstream HTTP-FLV or fMP4 body from the origin, teed to any number of
// viewers. The body is cut into units (FLV tags; MP4 top-level boxes, moof+mdat kept together) so that
// a viewer who joins late gets what a fresh origin response would start with — the FLV header, script
// tag and sequence headers, or ftyp+moov — and then the stream from the next video keyframe. A viewer
// whose queue passes its high-water mark skips to the next keyframe instead of buffering without bound.
// Bytes-level parsing reuses src/format (FLV tag bodies) and the fMP4 demuxer of the HLS pull.

import { FLV_DEFAULT_MAX_TAG_SIZE, FLV_TAG_AUDIO, FLV_TAG_SCRIPT, FLV_TAG_VIDEO, parseAudioTagBody, parseVideoTagBody } from '../../src/format/flv.ts';
import { FormatError } from '../../src/format/bytes.ts';
import { type Mp4InTrack, parseInit, parseSegment } from '../../plugins/hls/fmp4demux.ts';

/** One piece of the stream: `init` pieces are remembered for late joiners (keyed by `slot`). */
export interface Unit {
  bytes: Uint8Array;
  init?: string;
  /** A viewer may start here (lazy: only asked while someone waits for a start). */
  isJoin(): boolean;
}

export interface Splitter { push(chunk: Uint8Array): Unit[] }

/** Appends chunks and hands out complete byte ranges. */
class Accumulator {
  private buf: Uint8Array = new Uint8Array(0);
  private off = 0;
  add(chunk: Uint8Array): void {
    const rest = this.buf.length - this.off;
    if (rest === 0) { this.buf = chunk; this.off = 0; return; }
    const n = new Uint8Array(rest + chunk.length);
    n.set(this.buf.subarray(this.off)); n.set(chunk, rest);
    this.buf = n; this.off = 0;
  }
  get available(): number { return this.buf.length - this.off; }
  peek(i: number): number { return this.buf[this.off + i]!; }
  u32(i: number): number { const o = this.off + i; return ((this.buf[o]! << 24) | (this.buf[o + 1]! << 16) | (this.buf[o + 2]! << 8) | this.buf[o + 3]!) >>> 0; }
  take(n: number): Uint8Array { const b = this.buf.subarray(this.off, this.off + n); this.off += n; return b; }
}

/** FLV: the 13-byte file header (with PreviousTagSize0), then one unit per tag (+ its PreviousTagSize). */
export class FlvSplitter implements Splitter {
  private acc = new Accumulator();
  private gotHeader = false;
  private hasVideo = true;
  push(chunk: Uint8Array): Unit[] {
    this.acc.add(chunk);
    const out: Unit[] = [];
    const a = this.acc;
    if (!this.gotHeader) {
      if (a.available < 13) return out;
      if (a.peek(0) !== 0x46 || a.peek(1) !== 0x4c || a.peek(2) !== 0x56) throw new FormatError('edge: origin body is not FLV');
      this.hasVideo = (a.peek(4) & 1) !== 0;
      this.gotHeader = true;
      out.push({ bytes: a.take(13), init: 'header', isJoin: () => false });
    }
    while (a.available >= 11) {
      const type = a.peek(0) & 0x1f;
      const size = (a.peek(1) << 16) | (a.peek(2) << 8) | a.peek(3);
      if (size > FLV_DEFAULT_MAX_TAG_SIZE) throw new FormatError(`edge: FLV tag of ${size} bytes`);
      if (a.available < 15 + size) break;
      const bytes = a.take(15 + size);
      const body = bytes.subarray(11, 11 + size);
      out.push(this.classify(type, body, bytes));
    }
    return out;
  }
  private classify(type: number, body: Uint8Array, bytes: Uint8Array): Unit {
    const hasVideo = this.hasVideo;
    if (type === FLV_TAG_SCRIPT) return { bytes, init: 'script', isJoin: () => false };
    if (type === FLV_TAG_VIDEO) {
      let v: ReturnType<typeof parseVideoTagBody> | undefined;
      try { v = parseVideoTagBody(body); } catch { /* unknown codec: pass it on, never a start */ }
      if (v?.packet === 'seqhdr') return { bytes, init: 'video', isJoin: () => false };
      const key = v?.packet === 'nalu' && v.frameType === 'key';
      return { bytes, isJoin: () => key };
    }
    if (type === FLV_TAG_AUDIO) {
      let seq = false;
      try { seq = parseAudioTagBody(body).packet === 'seqhdr'; } catch { /* pass on */ }
      if (seq) return { bytes, init: 'audio', isJoin: () => false };
      return { bytes, isJoin: () => !hasVideo };
    }
    return { bytes, isJoin: () => false };
  }
}

/** fMP4: ftyp and moov are init units; each moof travels with its mdat; a start is a video keyframe fragment. */
export class Mp4Splitter implements Splitter {
  private acc = new Accumulator();
  private tracks: Mp4InTrack[] = [];
  private initBytes: Uint8Array[] = [];
  private moof: Uint8Array | null = null;
  push(chunk: Uint8Array): Unit[] {
    this.acc.add(chunk);
    const out: Unit[] = [];
    const a = this.acc;
    while (a.available >= 8) {
      let size = a.u32(0);
      if (size === 1) {
        if (a.available < 16) break;
        const hi = a.u32(8);
        if (hi !== 0) throw new FormatError('edge: MP4 box over 4 GiB');
        size = a.u32(12);
      }
      if (size < 8) throw new FormatError(`edge: MP4 box of size ${size} in a live body`);
      if (size > 64 * 1024 * 1024) throw new FormatError(`edge: MP4 box of ${size} bytes`);
      if (a.available < size) break;
      const type = String.fromCharCode(a.peek(4), a.peek(5), a.peek(6), a.peek(7));
      const bytes = a.take(size);
      if (type === 'ftyp' || type === 'moov') {
        this.initBytes = type === 'ftyp' ? [bytes] : [...this.initBytes, bytes];
        if (type === 'moov') {
          try { this.tracks = parseInit(concat(this.initBytes)); } catch { this.tracks = []; }
        }
        out.push({ bytes, init: type, isJoin: () => false });
      } else if (type === 'moof') {
        this.moof = bytes;
      } else if (type === 'mdat' && this.moof) {
        const frag = concat([this.moof, bytes]);
        this.moof = null;
        const tracks = this.tracks;
        let memo: boolean | undefined;
        out.push({ bytes: frag, isJoin: () => (memo ??= isKeyFragment(frag, tracks)) });
      } else {
        out.push({ bytes, isJoin: () => false });
      }
    }
    return out;
  }
}

function isKeyFragment(frag: Uint8Array, tracks: Mp4InTrack[]): boolean {
  const hasVideo = tracks.some((t) => t.kind === 'video');
  try {
    const samples = parseSegment(frag, tracks, new Map());
    return samples.some((s) => (hasVideo ? s.track.kind === 'video' && s.key : true));
  } catch { return false; }
}

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

interface Viewer {
  ctrl: ReadableStreamDefaultController<Uint8Array>;
  /** new: waiting for its first start; live: gets every unit; skip: fell behind, waits for a start. */
  state: 'new' | 'live' | 'skip';
  drops: number;
}

export interface FeedHead { status: number; headers: Headers; text?: string }

export interface FeedOptions {
  key: string;
  url: string;
  kind: 'flv' | 'mp4';
  /** Forwarded request headers (authorization, cookie...). */
  headers: Headers;
  viewerBuffer: number;
  /** Bytes of the latest GOP kept for instant starts (0: late joiners wait for the next keyframe). */
  gopBytes: number;
  timeoutMs: number;
  /** Give each viewer its own copy of every chunk (Deno: a body fed buffers other bodies hold stopped
   * noticing its client's disconnect; see Runtime.copySharedBody). */
  copy: boolean;
  onEnd(feed: LiveFeed, reason: string): void;
  stats: { originFetches: number; liveViewers: number; liveDrops: number };
}

/** One upstream body, many viewers. Ends (cleanly, for every viewer) when the origin body ends or fails. */
export class LiveFeed {
  readonly viewers = new Set<Viewer>();
  readonly head: Promise<FeedHead>;
  private readonly init = new Map<string, Uint8Array>();
  /** The units since the latest start (GOP cache), while under `gopBytes`. */
  private gop: Uint8Array[] = [];
  private gopSize = 0;
  private readonly abort = new AbortController();
  private ended = false;

  constructor(private readonly o: FeedOptions) {
    this.head = this.start();
  }

  private async start(): Promise<FeedHead> {
    this.o.stats.originFetches++;
    let res: Response;
    const timer = setTimeout(() => this.abort.abort(new Error('origin timeout')), this.o.timeoutMs);
    try {
      res = await fetch(this.o.url, { headers: this.o.headers, signal: this.abort.signal });
    } catch (err) {
      this.end('origin unreachable: ' + ((err as Error)?.message ?? err));
      return { status: 502, headers: new Headers({ 'content-type': 'text/plain' }), text: `edge: origin unreachable (${(err as Error)?.message ?? err})\n` };
    } finally { clearTimeout(timer); }
    if (res.status !== 200 || !res.body) {
      const text = await res.text().catch(() => '');
      this.end(`origin answered ${res.status}`);
      return { status: res.status, headers: res.headers, text };
    }
    void this.pump(res.body);
    return { status: 200, headers: res.headers };
  }

  private async pump(body: ReadableStream<Uint8Array>): Promise<void> {
    const split: Splitter = this.o.kind === 'flv' ? new FlvSplitter() : new Mp4Splitter();
    const reader = body.getReader();
    let reason = 'origin ended the stream';
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        for (const u of split.push(value)) this.dispatch(u);
        if (this.ended) return;
      }
    } catch (err) {
      reason = this.abort.signal.aborted ? 'no viewers left' : 'origin body failed: ' + ((err as Error)?.message ?? err);
    }
    reader.cancel().catch(() => {});
    this.end(reason);
  }

  private dispatch(u: Unit): void {
    if (u.init) {
      // A new header/sequence header replaces the old one; a new FLV header restarts the set.
      if (u.init === 'header' || u.init === 'ftyp') this.init.clear();
      this.init.set(u.init, u.bytes);
    }
    let join: boolean | undefined;
    if (!u.init && this.o.gopBytes > 0) {
      if ((join = u.isJoin())) { this.gop = [u.bytes]; this.gopSize = u.bytes.length; }
      else if (this.gop.length) {
        this.gop.push(u.bytes);
        this.gopSize += u.bytes.length;
        if (this.gopSize > this.o.gopBytes) { this.gop = []; this.gopSize = 0; }
      }
    }
    for (const v of this.viewers) {
      if (v.state !== 'live') {
        if (u.init && v.state === 'skip') continue;
        if (!(join ??= u.isJoin())) continue;
        if (v.state === 'new') for (const b of this.init.values()) v.ctrl.enqueue(this.o.copy ? b.slice() : b);
        v.state = 'live';
      }
      if ((v.ctrl.desiredSize ?? 1) <= 0 && !u.init) {
        // Behind: drop to the next start rather than buffer without bound.
        v.state = 'skip';
        v.drops++;
        this.o.stats.liveDrops++;
        continue;
      }
      v.ctrl.enqueue(this.o.copy ? u.bytes.slice() : u.bytes);
    }
  }

  /** A response body for one more viewer. */
  attach(): ReadableStream<Uint8Array> {
    let me: Viewer;
    return new ReadableStream<Uint8Array>({
      start: (ctrl) => {
        me = { ctrl, state: 'new', drops: 0 };
        if (this.ended) { ctrl.close(); return; }
        if (this.gop.length) {
          // Instant start: what a fresh origin response begins with, then the cached GOP.
          for (const b of this.init.values()) ctrl.enqueue(this.o.copy ? b.slice() : b);
          for (const b of this.gop) ctrl.enqueue(this.o.copy ? b.slice() : b);
          me.state = 'live';
        }
        this.viewers.add(me);
        this.o.stats.liveViewers++;
      },
      cancel: () => this.detach(me),
    }, { highWaterMark: this.o.viewerBuffer, size: (c) => c.byteLength });
  }

  private detach(v: Viewer): void {
    if (!this.viewers.delete(v)) return;
    this.o.stats.liveViewers--;
    if (this.viewers.size === 0 && !this.ended) {
      this.abort.abort();
      this.end('no viewers left');
    }
  }

  private end(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    for (const v of this.viewers) {
      try { v.ctrl.close(); } catch { /* already closed */ }
    }
    this.o.stats.liveViewers -= this.viewers.size;
    this.viewers.clear();
    this.o.onEnd(this, reason);
  }
}
