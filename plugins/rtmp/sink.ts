// Sending a stream over RTMP: a SubscriberSink used by the server for players and by the client for
// pushes.
//
// Shared chunking. Every frame's RTMP chunks are built once per (chunk size, chunk stream id) and reused
// by every subscriber: the packaging (cache key "rtmp:<chunkSize>:<csid>") is
//   head: a fmt-1 header carrying the timestamp delta to the previous frame of the same track
//   body: [payload 1][fmt-3 header][payload 2]...   (payload slices are views of the FLV tag body)
// A subscriber whose last message on that chunk stream was exactly the previous frame of the track
// (f.prevSeq) sends head + body as they are: the player computes the same absolute timestamp from the
// delta. Otherwise (first frame, after a skip, after a sequence header or metadata on that chunk stream)
// it sends its own fmt-0 header with an absolute timestamp, followed by the same shared body. Only an
// absolute timestamp at or above 0xFFFFFF (4.6 hours) needs per-subscriber chunks (the continuation
// headers then repeat an extended timestamp).
//
// The fmt-1 header carries no message stream id: it continues the one of the subscriber's own fmt-0
// header, so players of different stream ids share the same chunks as long as the csids match.

import type { CodecConfig, Frame, Track } from '../../src/plugin.ts';
import type { SharedStartBytes, Subscriber, SubscriberSink } from '../../src/plugin.ts';
import { AmfEcmaArray, amf0Encode } from '../../src/format/amf.ts';
import { flvBody, flvBodyWithCts, flvCanCarry, flvMetaFields, flvSequenceHeader, metaBytes } from '../../src/format/flv-media.ts';
import { framedConcat } from '../../src/net/framing.ts';
import { chunkBody, chunkMessage, MSG, type0Header, type1Header, UC } from './chunk.ts';
import type { RtmpConnection } from './conn.ts';

/** The shared packaging of a frame on one chunk stream at one chunk size. */
export interface SharedChunks {
  /** fmt-1 header with the delta to the previous frame of the track (null: delta too large to share). */
  head: Uint8Array | null;
  /** Payload chunks with the fmt-3 continuation headers between them. */
  body: Uint8Array[];
  /** The delta the head carries, in ms. */
  deltaMs: number;
  /** Message length. */
  size: number;
}

/** A track's timeline in ms (what shared deltas are differences of). */
const trackMs = (t: Track, dts: number) => Math.round((dts * 1000) / t.clockRate);

export function sharedChunks(f: Frame, chunkSize: number, csid: number): SharedChunks {
  return f.pack('rtmp:' + chunkSize + ':' + csid, (fr): SharedChunks => {
    const t = fr.track;
    const b = flvBody(fr);
    const type = t.kind === 'video' ? MSG.VIDEO : MSG.AUDIO;
    const deltaMs = trackMs(t, fr.dts) - trackMs(t, fr.dts - fr.delta);
    const head = fr.prevSeq >= 0 && deltaMs >= 0 && deltaMs < 0xffffff ? type1Header(csid, deltaMs, b.size, type) : null;
    return { head, body: chunkBody(csid, b.parts, chunkSize), deltaMs, size: b.size };
  });
}

/**
 * Frames [from, ring head) of a stream as one buffer of shared chunks (main audio and video tracks; see
 * Stream.sharedRange), for subscribers that continue both tracks from the frames before the range.
 */
export interface SharedRange {
  /** head + body of every frame, back to back; null when a frame has no shareable head. */
  bytes: Uint8Array | null;
  /** Message payload bytes (what frame() would have counted). */
  size: number;
  /** Per kind (audio 0, video 2): prevSeq of its first frame in the range, its last seq, delta sum (ms). */
  firstPrev: [number, number, number];
  lastSeq: [number, number, number];
  deltaMs: [number, number, number];
}

function buildSharedRange(sub: Subscriber, from: number, chunkSize: number, csids: readonly number[]): SharedRange {
  const ring = sub.stream.ring;
  const r: SharedRange = { bytes: null, size: 0, firstPrev: [-2, -2, -2], lastSeq: [-1, -1, -1], deltaMs: [0, 0, 0] };
  const parts: Uint8Array[] = [];
  let total = 0;
  for (let s = from; s < ring.head; s++) {
    const f = ring.get(s)!;
    const t = f.track;
    if (t.index !== 0 || t.kind === 'data' || !flvCanCarry(t)) continue;
    const k = KIND[t.kind];
    const sh = sharedChunks(f, chunkSize, csids[k]);
    if (!sh.head) return r;
    if (r.firstPrev[k] === -2) r.firstPrev[k] = f.prevSeq;
    r.lastSeq[k] = f.seq;
    r.deltaMs[k] += sh.deltaMs;
    r.size += sh.size;
    parts.push(sh.head);
    total += sh.head.length;
    for (const c of sh.body) { parts.push(c); total += c.length; }
  }
  r.bytes = framedConcat('', parts, total);
  return r;
}

/** Index of a track kind in the per-csid state arrays. */
const KIND = { audio: 0, data: 1, video: 2 } as const;

export interface PlaySinkHooks {
  /** Before metadata: status messages (server) — called from begin(). */
  begin?(sub: Subscriber): void;
  /** The engine ended the subscription. */
  end?(reason: string, sub: Subscriber): void;
  /** Metadata as '@setDataFrame' (push) instead of 'onMetaData' (play). */
  setDataFrame?: boolean;
}

export class RtmpPlaySink implements SubscriberSink {
  private batch: Uint8Array[] = [];
  /** Per kind: ring position of the last frame sent on its chunk stream (-1: none / not continuable). */
  private readonly lastSeq = [-1, -1, -1];
  /** Per kind: the last timestamp (ms) the peer saw on its chunk stream. */
  private readonly lastMs = [0, 0, 0];
  /** Chunk stream ids: audio, data, video. */
  readonly csids: [number, number, number];
  /** Counters for tests and the API: frames sent with shared chunks as-is (one by one, or as shared
   * ranges of several frames) / with an own fmt-0 header. */
  sharedFrames = 0;
  sharedRanges = 0;
  own = 0;

  /** Players may fast-forward their first GOP (subscribe.catchup); a push to another server may not. */
  readonly catchup: boolean;
  /** Opus sources (WHIP) go out as AAC through the audio bridge when it runs (plugins/audiobridge). */
  readonly audioCodecs = ['aac', 'mp3', 'pcma', 'pcmu'];

  constructor(readonly rc: RtmpConnection, readonly streamId: number, csidBase: number, private readonly hooks: PlaySinkHooks = {}) {
    this.csids = [csidBase, csidBase + 1, csidBase + 2];
    this.catchup = !hooks.setDataFrame;
  }

  begin(sub: Subscriber): void {
    this.rc.subscribers.add(sub);
    sub.bufferedFn = () => this.rc.conn.buffered;
    this.hooks.begin?.(sub);
    const tracks = sub.tracks().filter(flvCanCarry);
    const fields = flvMetaFields(tracks), push = !!this.hooks.setDataFrame;
    const payload = metaBytes(push ? 'rtmp-push' : 'rtmp', fields, () => {
      const meta = new AmfEcmaArray(fields);
      return push ? amf0Encode('@setDataFrame', 'onMetaData', meta) : amf0Encode('onMetaData', meta);
    });
    this.batch.push(...chunkMessage(this.csids[KIND.data], MSG.DATA_AMF0, this.streamId, 0, [payload], this.rc.outChunkSize));
  }

  config(track: Track, cfg: CodecConfig): number {
    if (!flvCanCarry(track)) return 0;
    const sh = flvSequenceHeader(track, cfg);
    if (!sh) return 0;
    const k = KIND[track.kind];
    const type = track.kind === 'video' ? MSG.VIDEO : MSG.AUDIO;
    this.batch.push(...chunkMessage(this.csids[k], type, this.streamId, this.lastMs[k], sh.parts, this.rc.outChunkSize));
    this.lastSeq[k] = -1; // the next frame needs an absolute timestamp
    return sh.size;
  }

  frame(f: Frame, dts: number, sub: Subscriber, cts?: number): number {
    const t = f.track;
    if (!flvCanCarry(t)) return 0;
    const k = KIND[t.kind];
    const csid = this.csids[k];
    const cs = this.rc.outChunkSize;
    const sh = sharedChunks(f, cs, csid);
    const batch = this.batch;
    const retimed = sub.retimed(f);
    if (sh.head && f.prevSeq >= 0 && this.lastSeq[k] === f.prevSeq && !retimed) {
      // Continuing the track on this chunk stream: the shared bytes are right for us too.
      batch.push(sh.head);
      for (const c of sh.body) batch.push(c);
      this.lastMs[k] = (this.lastMs[k] + sh.deltaMs) >>> 0;
      this.lastSeq[k] = f.seq;
      this.sharedFrames++;
      return sh.size;
    }
    let ms = Math.round((dts * 1000) / t.clockRate);
    if (ms < this.lastMs[k]) ms = this.lastMs[k]; // never go back on a chunk stream
    const type = t.kind === 'video' ? MSG.VIDEO : MSG.AUDIO;
    const own = cts === undefined ? null : flvBodyWithCts(f, cts);
    if (own && own !== flvBody(f)) {
      // A catch-up frame with its own composition offset: its own body header and chunks (the payload
      // is still the frame's, not copied).
      for (const c of chunkMessage(csid, type, this.streamId, ms, own.parts, cs)) batch.push(c);
      this.lastMs[k] = ms;
      this.lastSeq[k] = -1;
      this.own++;
      return own.size;
    }
    if (ms >= 0xffffff) {
      // Extended timestamp: continuation headers carry it too, so these chunks are ours alone.
      for (const c of chunkMessage(csid, type, this.streamId, ms, flvBody(f).parts, cs)) batch.push(c);
    } else {
      batch.push(type0Header(csid, ms, sh.size, type, this.streamId));
      for (const c of sh.body) batch.push(c);
    }
    this.lastMs[k] = ms;
    // After a retimed frame the shared delta of the next one would be relative to the wrong time.
    this.lastSeq[k] = retimed ? -1 : f.seq;
    this.own++;
    return sh.size;
  }

  private shareKey = '';
  private shareKeyCs = 0;

  shared(from: number, _to: number, sub: Subscriber): number {
    const cs = this.rc.outChunkSize;
    if (cs !== this.shareKeyCs) { this.shareKeyCs = cs; this.shareKey = 'rtmp:' + cs + ':' + this.csids[0]; }
    const csids = this.csids;
    const r = sub.stream.sharedRange(this.shareKey, from, () => buildSharedRange(sub, from, cs, csids));
    if (!r.bytes) return -1;
    // Every track in the range must continue exactly from what this subscriber sent last on its chunk
    // stream, or the fmt-1 deltas would be relative to the wrong message.
    const last = this.lastSeq;
    if (r.firstPrev[0] !== -2 && (r.firstPrev[0] < 0 || r.firstPrev[0] !== last[0])) return -1;
    if (r.firstPrev[2] !== -2 && (r.firstPrev[2] < 0 || r.firstPrev[2] !== last[2])) return -1;
    for (let k = 0; k <= 2; k += 2) { // audio (0) and video (2)
      if (r.firstPrev[k] === -2) continue;
      last[k] = r.lastSeq[k];
      this.lastMs[k] = (this.lastMs[k] + r.deltaMs[k]) >>> 0;
    }
    this.batch.push(r.bytes);
    this.sharedRanges++;
    return r.size;
  }

  /**
   * Shared start (Subscriber.sharedStart): players that join at one point get the same first burst, as
   * long as their chunk size, chunk stream ids and message stream id are the same (the fmt-0 headers
   * carry the stream id).
   */
  startKey(): string {
    return 'rtmp:' + this.rc.outChunkSize + ':' + this.csids[0] + ':' + this.streamId;
  }

  takeStart(): SharedStartBytes {
    const parts = this.batch;
    let size = 0;
    for (const c of parts) size += c.length;
    this.batch = [];
    return { parts, size, state: { lastSeq: [...this.lastSeq], lastMs: [...this.lastMs], shared: this.sharedFrames, own: this.own } };
  }

  queueStart(start: SharedStartBytes): void {
    const st = start.state as { lastSeq: number[]; lastMs: number[]; shared: number; own: number };
    for (let k = 0; k < 3; k++) { this.lastSeq[k] = st.lastSeq[k]!; this.lastMs[k] = st.lastMs[k]!; }
    this.sharedFrames = st.shared;
    this.own = st.own;
    // The connection's writev gathers the chunks (the frames' own packagings) into one write. Where it
    // would copy them into one buffer per player instead (Bun), the start is joined once for all.
    if (this.rc.conn.gathers === false) { if (start.size) this.batch.push((start.joined ??= framedConcat('', start.parts, start.size))); return; }
    for (const c of start.parts) this.batch.push(c);
  }

  flush(): boolean {
    const b = this.batch;
    if (b.length === 0) return !this.rc.closed;
    if (this.rc.closed || this.rc.conn.closed) { b.length = 0; return false; }
    // TcpConn.writev is done with the array when it returns, so it is reused (one per viewer, not per
    // flush); a batch of one chunk (the live edge's shared range) is a plain write in the adapter.
    const ok = this.rc.writev(b);
    b.length = 0;
    return ok;
  }

  /** The engine ended the subscription: Stream EOF, and let the owner decide about the connection. */
  close(reason: string, sub: Subscriber): void {
    this.rc.subscribers.delete(sub);
    if (this.batch.length && !this.rc.closed) this.rc.writev(this.batch);
    this.batch = [];
    if (!this.rc.closed) this.rc.sendUserControl(UC.STREAM_EOF, this.streamId);
    this.hooks.end?.(reason, sub);
  }
}
