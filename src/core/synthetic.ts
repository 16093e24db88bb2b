// A synthetic source: generated frames with the shape of real media (H.264-like length-prefixed NAL
// units with a keyframe every `gop` frames, AAC-like audio frames), written at real-time speed or as
// fast as asked. For engine tests and benchmarks that need input without a codec. The payload bytes are
// not decodable video; each frame's payload carries its own index so a test can check order and loss.

import type { Publisher } from './publisher.ts';
import type { Track } from './frame.ts';

export interface SyntheticOptions {
  fps?: number;          // default 30
  gop?: number;          // frames per GOP, default 30 (1 s)
  videoBytes?: number;   // bytes per video frame (keyframes are 5x), default 4000
  audio?: boolean;       // default true
  video?: boolean;       // default true
  sampleRate?: number;   // default 48000
  audioBytes?: number;   // default 200
}

export class SyntheticSource {
  readonly video: Track | null;
  readonly audio: Track | null;
  videoFrames = 0;
  audioFrames = 0;
  private timer: ReturnType<typeof setInterval> | undefined;
  private startWall = 0;
  private readonly o: Required<SyntheticOptions>;

  constructor(readonly pub: Publisher, opts: SyntheticOptions = {}) {
    this.o = { fps: 30, gop: 30, videoBytes: 4000, audio: true, video: true, sampleRate: 48000, audioBytes: 200, ...opts };
    const sps = new Uint8Array([0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8]);
    const pps = new Uint8Array([0x68, 0xce, 0x3c, 0x80]);
    this.video = this.o.video
      ? pub.addTrack('video', { codec: 'h264', data: avcCLike(sps, pps), width: 320, height: 180, codecString: 'avc1.42c01f' })
      : null;
    this.audio = this.o.audio
      ? pub.addTrack('audio', { codec: 'aac', data: new Uint8Array([0x11, 0x90]), sampleRate: this.o.sampleRate, channels: 2, codecString: 'mp4a.40.2' }, { clockRate: this.o.sampleRate })
      : null;
  }

  /** Write the next video frame (and the audio due until then). Returns the video frame index. */
  step(): number {
    const o = this.o;
    const i = this.videoFrames++;
    if (this.video) {
      const key = i % o.gop === 0;
      const size = key ? o.videoBytes * 5 : o.videoBytes;
      this.pub.write(this.video, Math.round((i * 90000) / o.fps), 0, key, nalu(key ? 5 : 1, size, i));
    }
    if (this.audio) {
      // Audio frames (1024 samples) due up to the end of this video frame.
      const until = ((i + 1) / o.fps) * o.sampleRate;
      while (this.audioFrames * 1024 < until) {
        const j = this.audioFrames++;
        this.pub.write(this.audio, j * 1024, 0, true, payload(o.audioBytes, j));
      }
    }
    return i;
  }

  /** Write `n` video frames (plus audio) at once. */
  burst(n: number): void { for (let k = 0; k < n; k++) this.step(); }

  /** Write frames at real time until stop(). */
  start(): void {
    if (this.timer) return;
    this.startWall = Date.now();
    const base = this.videoFrames;
    const tick = Math.max(5, Math.floor(1000 / this.o.fps / 2));
    this.timer = setInterval(() => {
      const due = base + Math.floor(((Date.now() - this.startWall) * this.o.fps) / 1000);
      while (this.videoFrames <= due) this.step();
    }, tick);
  }

  stop(): void { clearInterval(this.timer); this.timer = undefined; }
}

/** The frame index a synthetic payload carries (bytes 5..8 of a video NALU, 0..3 of audio). */
export function syntheticIndex(data: Uint8Array, kind: 'video' | 'audio'): number {
  const o = kind === 'video' ? 5 : 0;
  return ((data[o] << 24) | (data[o + 1] << 16) | (data[o + 2] << 8) | data[o + 3]) >>> 0;
}

function nalu(type: number, size: number, index: number): Uint8Array {
  const b = new Uint8Array(4 + size);
  new DataView(b.buffer).setUint32(0, size);
  b[4] = 0x60 | type;
  new DataView(b.buffer).setUint32(5, index);
  return b;
}

function payload(size: number, index: number): Uint8Array {
  const b = new Uint8Array(Math.max(4, size));
  new DataView(b.buffer).setUint32(0, index);
  return b;
}

function avcCLike(sps: Uint8Array, pps: Uint8Array): Uint8Array {
  const b = new Uint8Array(11 + sps.length + pps.length);
  b.set([1, sps[1], sps[2], sps[3], 0xff, 0xe1, sps.length >> 8, sps.length & 255]);
  b.set(sps, 8);
  let o = 8 + sps.length;
  b.set([1, pps.length >> 8, pps.length & 255], o);
  b.set(pps, o + 3);
  return b;
}
