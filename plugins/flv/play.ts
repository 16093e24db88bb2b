// HTTP-FLV / WS-FLV egress: a SubscriberSink that turns a subscriber's frames into an FLV byte stream
// on a ByteSink (an HTTP response body or a WebSocket).
//
// Tag timestamps are the stream's timeline (ms), the same for every player (like nginx-rtmp; players
// take the first timestamp as their start). So a player at the live edge needs nothing of its own: the
// frames since its last write are packaged once per range as whole tags, framed for the transport, and
// every player that flushes the same range writes the same buffer (shared()). Off the shared path
// (the first GOP, sequence headers, stragglers) a player builds its own 11-byte tag headers; the tag
// bodies and PreviousTagSize trailers are still built once per frame (the frame's packaging cache).

import type { CodecConfig, Frame, Track } from '../../src/plugin.ts';
import type { SharedStartBytes, Subscriber } from '../../src/plugin.ts';
import { flvBody, flvBodyWithCts, flvCanCarry, flvMetaData, flvSequenceHeader, flvTagType } from '../../src/format/flv-media.ts';
import { flvHeader, flvTag, writeFlvTagHeader, FLV_TAG_HEADER_SIZE, FLV_TAG_SCRIPT } from '../../src/format/flv.ts';
import { BatchedByteSink } from '../../src/net/batch-sink.ts';
import { type Framing, framingHead, framingTail } from '../../src/net/framing.ts';

function u32be(v: number): Uint8Array {
  return new Uint8Array([v >>> 24, v >>> 16, v >>> 8, v]);
}

/** The shared PreviousTagSize trailer of a frame's tag (11 + body size), cache key 'flv.pts'. */
function previousTagSize(f: Frame): Uint8Array {
  return f.pack('flv.pts', (fr) => {
    const total = FLV_TAG_HEADER_SIZE + flvBody(fr).size;
    const b = new Uint8Array(4);
    b[0] = total >>> 24;
    b[1] = total >>> 16;
    b[2] = total >>> 8;
    b[3] = total;
    return b;
  });
}

export class FlvPlaySink extends BatchedByteSink {
  /** Players: a new one may fast-forward its first GOP to the live edge (subscribe.catchup). */
  readonly catchup = true;
  /** Tag times are the stream's timeline, so they are the same for every player (shared()). */
  readonly streamTimeline = true;
  /** Opus sources (WHIP) reach FLV players as AAC through the audio bridge when it runs (plugins/audiobridge). */
  readonly audioCodecs = ['aac', 'mp3', 'pcma', 'pcmu'];
  /** Last tag timestamp written (ms), for sequence headers that arrive mid-stream. */
  private lastMs = 0;

  begin(sub: Subscriber): void {
    this.attach(sub);
    const tracks = sub.tracks().filter(flvCanCarry);
    const audio = tracks.some((t) => t.kind === 'audio');
    const video = tracks.some((t) => t.kind === 'video');
    // A stream that has no tracks FLV can carry yet still gets both flags, so players wait for both.
    this.batch.push(flvHeader(audio || video ? { audio, video } : { audio: true, video: true }));
    this.batch.push(...flvTag(FLV_TAG_SCRIPT, 0, [flvMetaData(tracks)]));
  }

  config(track: Track, cfg: CodecConfig, _sub: Subscriber, _next: Frame, dts: number): number {
    if (!flvCanCarry(track)) return 0;
    const sh = flvSequenceHeader(track, cfg);
    if (!sh) return 0;
    // At the time of the frame it goes before (never behind what was written already).
    const parts = flvTag(flvTagType(track.kind), Math.max(this.lastMs, Math.round((dts * 1000) / track.clockRate)), sh.parts);
    for (const p of parts) this.batch.push(p);
    return FLV_TAG_HEADER_SIZE + sh.size + 4;
  }

  frame(f: Frame, dts: number, _sub: Subscriber, cts?: number): number {
    const t = f.track;
    if (!flvCanCarry(t)) return 0;
    // A catch-up frame has its own composition offset (retimed with its dts): its own tag-body header.
    const body = cts === undefined ? flvBody(f) : flvBodyWithCts(f, cts);
    // The stream's timeline (streamTimeline below), or a catch-up time for the first GOP.
    const ms = Math.round((dts * 1000) / t.clockRate);
    this.lastMs = ms;
    const hdr = new Uint8Array(FLV_TAG_HEADER_SIZE);
    writeFlvTagHeader(hdr, 0, flvTagType(t.kind), body.size, ms);
    this.batch.push(hdr);
    for (const p of body.parts) this.batch.push(p);
    this.batch.push(body.size === flvBody(f).size ? previousTagSize(f) : u32be(FLV_TAG_HEADER_SIZE + body.size));
    return FLV_TAG_HEADER_SIZE + body.size + 4;
  }

  /** The sink's framing and its sharedRange key, fixed once the ByteSink exists (a key built per call
   * is a new string to flatten and compare for every viewer and frame). */
  private shareFraming: Framing | null = null;
  private shareKey = 'flv';

  private initShare(): void {
    if (this.shareFraming === null) { this.shareFraming = this.framing; this.shareKey = this.shareFraming ? 'flv:' + this.shareFraming : 'flv'; }
  }

  /** A player's first burst is the same for all that join at one point: built once (Subscriber.sharedStart). */
  startKey(): string {
    this.initShare();
    return this.shareKey;
  }

  takeStart(): SharedStartBytes {
    return this.takeQueued(this.lastMs);
  }

  queueStart(start: SharedStartBytes): void {
    this.lastMs = start.state as number;
    this.queueShared(start);
  }

  shared(from: number, _to: number, sub: Subscriber): number {
    this.initShare();
    const framing = this.shareFraming!;
    const r = sub.stream.sharedRange(this.shareKey, from, () => buildRange(sub, from, framing));
    this.queueFramed(r.bytes);
    this.lastMs = r.lastMs;
    return r.size;
  }
}

/** A frame's tag timestamp: the stream timeline in ms. */
const tagMs = (f: Frame) => Math.round((f.dts * 1000) / f.track.clockRate);

interface FlvRange { bytes: Uint8Array; size: number; lastMs: number }

/** Whole tags (header, body, PreviousTagSize) of the main audio/video frames from `from` to the live
 * edge, in one buffer with the transport's framing around them. */
function buildRange(sub: Subscriber, from: number, framing: Framing): FlvRange {
  const ring = sub.stream.ring;
  let size = 0;
  for (let s = from; s < ring.head; s++) {
    const f = ring.get(s)!;
    const t = f.track;
    if (t.index !== 0 || t.kind === 'data' || !flvCanCarry(t)) continue;
    const n = flvBody(f).size;
    size += FLV_TAG_HEADER_SIZE + n + 4;
  }
  const head = framingHead(framing, size), tail = framingTail(framing);
  const out = new Uint8Array(head.length + size + (tail?.length ?? 0));
  out.set(head, 0);
  let off = head.length, lastMs = 0;
  for (let s = from; s < ring.head; s++) {
    const f = ring.get(s)!;
    const t = f.track;
    if (t.index !== 0 || t.kind === 'data' || !flvCanCarry(t)) continue;
    const body = flvBody(f);
    lastMs = tagMs(f);
    writeFlvTagHeader(out, off, flvTagType(t.kind), body.size, lastMs);
    off += FLV_TAG_HEADER_SIZE;
    for (const p of body.parts) { out.set(p, off); off += p.length; }
    const total = FLV_TAG_HEADER_SIZE + body.size;
    out[off] = total >>> 24; out[off + 1] = total >>> 16; out[off + 2] = total >>> 8; out[off + 3] = total;
    off += 4;
  }
  if (tail) out.set(tail, off);
  return { bytes: out, size, lastMs };
}
