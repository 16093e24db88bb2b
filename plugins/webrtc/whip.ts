// A WHIP publisher: RTP from the peer → reorder → our depacketizer → timeline (RTCP SR alignment, DTS
// for H.264/H.265) → Publisher.write. Periodic PLI keeps the GOP cache bounded; keyframe requests from
// viewers reach the publisher's source as PLI.

import type { Publisher, Track } from '../../src/plugin.ts';
import { FormatError } from '../../src/format/bytes.ts';
import { createDepacketizer, parseRtp, ReorderBuffer, RtpFrameClock, RtpTimeline, type Depacketizer, type RtpPacket } from '../../src/format/rtp/index.ts';
import type { MediaChoice } from './negotiate.ts';
import type { Peer, PeerMedia } from './peer.ts';

interface Input {
  choice: MediaChoice;
  media: PeerMedia;
  depack: Depacketizer;
  clock: RtpFrameClock;
  reorder: ReorderBuffer<RtpPacket>;
  track?: Track;
}

export interface WhipStats { packets: number; frames: number; errors: number; lost: number; plis: number }

export class WhipIngest {
  readonly inputs: Input[] = [];
  readonly stats: WhipStats = { packets: 0, frames: 0, errors: 0, lost: 0, plis: 0 };
  private readonly timeline = new RtpTimeline();
  private pliTimer?: ReturnType<typeof setInterval>;

  constructor(readonly pub: Publisher, readonly peer: Peer, choices: MediaChoice[], pliMs: number) {
    for (const choice of choices) {
      if (!choice.track || choice.payloadType === undefined) continue;
      const media = peer.media.find((m) => m.mid === choice.mid);
      if (!media) continue;
      const input: Input = {
        choice, media,
        depack: createDepacketizer(choice.track),
        clock: new RtpFrameClock(this.timeline, choice.track.codec, choice.track.clockRate),
        reorder: new ReorderBuffer<RtpPacket>(64),
      };
      media.onRtp = (b) => this.onRtp(input, b);
      media.onSenderReport = (sec, frac, ts) => input.clock.senderReport(sec, frac, ts);
      this.inputs.push(input);
    }
    const video = this.inputs.find((i) => i.choice.kind === 'video');
    if (video) {
      // A viewer's PLI/FIR (through the engine's keyframe request) and the periodic one both become a PLI.
      pub.onKeyframeRequest = () => this.pli();
      if (pliMs > 0) this.pliTimer = setInterval(() => this.pli(), pliMs);
    }
  }

  pli(): void {
    for (const i of this.inputs) if (i.choice.kind === 'video') { i.media.requestKeyframe(); this.stats.plis++; }
  }

  private onRtp(input: Input, bytes: Uint8Array): void {
    this.stats.packets++;
    let pkt: RtpPacket;
    try {
      pkt = parseRtp(bytes);
    } catch (e) {
      if (e instanceof FormatError) { this.stats.errors++; return; }
      throw e;
    }
    if (pkt.payloadType !== input.choice.payloadType) return; // RTX/FEC/padding probes: not ours
    for (const p of input.reorder.push(pkt.sequenceNumber, pkt)) this.depacketize(input, p);
    this.stats.lost = this.inputs.reduce((n, i) => n + i.reorder.stats.lost, 0);
  }

  private depacketize(input: Input, pkt: RtpPacket): void {
    let frames;
    try {
      frames = input.depack.push(pkt);
    } catch (e) {
      if (e instanceof FormatError) { this.stats.errors++; return; }
      throw e;
    }
    for (const f of frames) {
      if (f.config) {
        if (!input.track) input.track = this.pub.addTrack(input.choice.kind, f.config, { clockRate: input.choice.track!.clockRate });
        else this.pub.setConfig(input.track, f.config);
      }
      if (!input.track) {
        // Video before its first parameter sets cannot be decoded: ask for a keyframe and wait.
        if (input.choice.kind === 'video') this.pli();
        continue;
      }
      const { dts, cts } = input.clock.stamp(f);
      this.pub.write(input.track, dts, cts, f.key, f.data);
      this.stats.frames++;
    }
  }

  close(): void {
    if (this.pliTimer) clearInterval(this.pliTimer);
    this.pliTimer = undefined;
    for (const i of this.inputs) { i.media.onRtp = undefined; i.media.onSenderReport = undefined; }
  }
}
