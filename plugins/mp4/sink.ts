// Live fMP4 egress: a SubscriberSink that writes an init segment (ftyp + moov) and then one moof + mdat
// per frame to a ByteSink (a chunked HTTP body or a WebSocket), for MSE players, ffplay, VLC.
//
// What is shared: a frame's fragment is built once per frame (f.pack) with a zero tfdt and sequence
// number; every subscriber copies that ~100-byte header and patches its own two fields in place (the
// mfhd sequence number and the tfdt, which holds the subscriber's rebased decode time). The sample
// bytes are the frame's own buffer, shared by everyone and never copied. Measured in
// test/mp4.test.ts ("header copy+patch vs build"): building the header per subscriber costs more than
// copying the shared one.
//
// A sample's duration must be written before the next frame is known, so it is the track's learned
// frame duration (the previous gap); players place each fragment by its tfdt, so an estimate that is
// off by a little never accumulates.

import type { CodecConfig, Frame, Track } from '../../src/plugin.ts';
import type { Subscriber } from '../../src/plugin.ts';
import { defaultFrameDuration, type Fmp4Track, fragment, initSegment } from '../../src/format/fmp4.ts';
import { BatchedByteSink } from '../../src/net/batch-sink.ts';

const VIDEO_ID = 1;
const AUDIO_ID = 2;
export const VIDEO_CODECS = new Set(['h264', 'h265']);
export const AUDIO_CODECS = new Set(['aac', 'opus', 'mp3']);

/** Offsets in a one-track fragment header built by fragment(): mfhd sequence number and tfdt time. */
const SEQ_OFFSET = 20; // moof(8) + mfhd header(8) + version/flags(4)
const TFDT_OFFSET = 60; // moof(8) + mfhd(16) + traf(8) + tfhd(16) + tfdt header(8) + version/flags(4)

interface SharedFragment { header: Uint8Array; data: Uint8Array }

/** The frame as a one-sample fragment with sequence 0 and tfdt 0 (patched per subscriber). */
export function sharedFragment(f: Frame, trackId: number): SharedFragment {
  return f.pack(`fmp4.frame:${trackId}`, (fr) => {
    const t = fr.track;
    const duration = t.frameDuration > 0 ? t.frameDuration : defaultFrameDuration(fr.config, t.clockRate);
    const parts = fragment(0, [{
      trackId, baseDts: 0, samples: [{ duration, size: fr.data.length, key: fr.key, cts: fr.cts }], data: [fr.data],
    }]);
    return { header: parts[0]!, data: fr.data };
  });
}

/** A subscriber's copy of the shared header with its sequence number and decode time. */
export function patchHeader(shared: Uint8Array, seq: number, dts: number): Uint8Array {
  const h = shared.slice();
  const v = new DataView(h.buffer);
  v.setUint32(SEQ_OFFSET, seq >>> 0);
  v.setUint32(TFDT_OFFSET, Math.floor(dts / 0x100000000));
  v.setUint32(TFDT_OFFSET + 4, dts % 0x100000000);
  return h;
}

export class Mp4PlaySink extends BatchedByteSink {
  /** Opus sources (WHIP) get AAC through the audio bridge when it runs (plugins/audiobridge). */
  readonly audioCodecs = ['aac', 'mp3'];
  private seq = 1;
  private video: Track | null = null;
  private audio: Track | null = null;
  /** Config versions the last init segment was built with. */
  private initFor = new Map<Track, CodecConfig>();

  begin(sub: Subscriber): void {
    this.attach(sub);
    for (const t of sub.tracks()) {
      if (t.kind === 'video' && !this.video && VIDEO_CODECS.has(t.codec) && t.config.data) this.video = t;
      if (t.kind === 'audio' && !this.audio && AUDIO_CODECS.has(t.codec) && (t.codec !== 'aac' || t.config.data)) this.audio = t;
    }
    if (this.video || this.audio) this.writeInit();
  }

  private writeInit(): void {
    const tracks: Fmp4Track[] = [];
    this.initFor.clear();
    for (const [t, id] of [[this.video, VIDEO_ID], [this.audio, AUDIO_ID]] as const) {
      if (!t) continue;
      tracks.push({ id, kind: t.kind as 'video' | 'audio', timescale: t.clockRate, config: t.config });
      this.initFor.set(t, t.config);
    }
    this.batch.push(initSegment(tracks));
  }

  config(track: Track, cfg: CodecConfig): number {
    // A codec change mid-stream: a new init segment (MSE takes it; the next video fragment is a keyframe).
    if ((track === this.video || track === this.audio) && this.initFor.size && this.initFor.get(track) !== cfg) {
      this.writeInit();
      return this.batch[this.batch.length - 1]!.length;
    }
    return 0;
  }

  frame(f: Frame, dts: number): number {
    const t = f.track;
    const id = t === this.video ? VIDEO_ID : t === this.audio ? AUDIO_ID : 0;
    if (!id) return 0;
    const shared = sharedFragment(f, id);
    const header = patchHeader(shared.header, this.seq++, dts);
    this.batch.push(header, shared.data);
    return header.length + shared.data.length;
  }
}
