// HTTP-FLV / WS-FLV egress: a SubscriberSink that turns a subscriber's frames into an FLV byte stream
// on a ByteSink (an HTTP response body or a WebSocket).
//
// Per subscriber we only build what differs between subscribers: the 11-byte tag header (it holds the
// rebased timestamp). The tag body parts and the 4-byte PreviousTagSize trailer are built once per frame
// and shared by every FLV player through the frame's packaging cache.

import type { CodecConfig, Frame, Track } from '../../src/core/frame.ts';
import type { Subscriber } from '../../src/core/subscriber.ts';
import { flvBody, flvCanCarry, flvMetaData, flvSequenceHeader, flvTagType } from '../../src/format/flv-media.ts';
import { flvHeader, flvTag, writeFlvTagHeader, FLV_TAG_HEADER_SIZE, FLV_TAG_SCRIPT } from '../../src/format/flv.ts';
import { BatchedByteSink } from '../../src/net/batch-sink.ts';

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

  config(track: Track, cfg: CodecConfig): number {
    if (!flvCanCarry(track)) return 0;
    const sh = flvSequenceHeader(track, cfg);
    if (!sh) return 0;
    const parts = flvTag(flvTagType(track.kind), this.lastMs, sh.parts);
    for (const p of parts) this.batch.push(p);
    return FLV_TAG_HEADER_SIZE + sh.size + 4;
  }

  frame(f: Frame, dts: number): number {
    const t = f.track;
    if (!flvCanCarry(t)) return 0;
    const body = flvBody(f);
    const ms = Math.round((dts * 1000) / t.clockRate);
    this.lastMs = ms;
    const hdr = new Uint8Array(FLV_TAG_HEADER_SIZE);
    writeFlvTagHeader(hdr, 0, flvTagType(t.kind), body.size, ms);
    this.batch.push(hdr);
    for (const p of body.parts) this.batch.push(p);
    this.batch.push(previousTagSize(f));
    return FLV_TAG_HEADER_SIZE + body.size + 4;
  }
}

