// A WHEP viewer: a SubscriberSink that packetizes the stream's main video and audio frames with our RTP
// packetizers (src/format/rtp) and hands the packets to the peer. The subscriber starts at the cached
// keyframe; until ICE/DTLS is up the packets wait here (bounded), so the first picture is that keyframe
// instead of the next GOP.

import type { Frame, Subscriber, SubscriberSink, Track } from '../../src/plugin.ts';
import { createPacketizer, RtpWriter, type Packetizer } from '../../src/format/rtp/index.ts';
import type { MediaChoice } from './negotiate.ts';
import type { PeerMedia } from './peer.ts';

interface Output {
  choice: MediaChoice;
  media: PeerMedia;
  writer: RtpWriter;
  packetizer?: Packetizer;
  configVersion: number;
  track?: Track;
  /** RTP clock / track clock. */
  scale: number;
  /** Random RTP timestamp base (RFC 3550 5.1). */
  base: number;
}

/** Packets held while the connection is being set up. */
const MAX_PENDING_BYTES = 8 << 20;

const rand32 = () => (Math.random() * 0x100000000) >>> 0;

export class WhepSink implements SubscriberSink {
  readonly outs: Output[] = [];
  packets = 0;
  bytes = 0;
  private pending: { media: PeerMedia; pkt: Uint8Array }[] | null = [];
  private pendingBytes = 0;
  onClose?: (reason: string) => void;

  constructor(choices: MediaChoice[], media: PeerMedia[]) {
    for (const choice of choices) {
      if (choice.payloadType === undefined || !choice.track) continue;
      const m = media.find((x) => x.mid === choice.mid);
      if (!m) continue;
      this.outs.push({ choice, media: m, writer: new RtpWriter(choice.payloadType, rand32(), rand32() & 0xffff), configVersion: -1, scale: 1, base: rand32() });
    }
  }

  /** The connection is up: send what waited, then send as frames come. */
  connected(): void {
    const p = this.pending;
    this.pending = null;
    if (p) for (const x of p) x.media.send(x.pkt);
  }

  private outFor(t: Track): Output | undefined {
    if (t.index !== 0 && !t.derivedFrom) return undefined; // the main tracks, or the audio bridge's
    for (const o of this.outs) {
      if (o.choice.kind !== t.kind) continue;
      if (o.track && o.track !== t) return undefined;
      if (t.codec !== o.choice.codec) return undefined; // the publisher changed codec: not playable here
      if (!o.track) { o.track = t; o.scale = o.choice.track!.clockRate / t.clockRate; }
      return o;
    }
    return undefined;
  }

  frame(f: Frame, dts: number, _sub: Subscriber, cts?: number): number {
    const o = this.outFor(f.track);
    if (!o) return 0;
    if (!o.packetizer || o.configVersion !== f.configVersion) {
      o.packetizer = createPacketizer(f.config, o.writer);
      o.configVersion = f.configVersion;
    }
    const pts = dts + (cts ?? f.cts);
    const ts = (o.base + Math.round(pts * o.scale)) >>> 0;
    const pkts = o.packetizer.packetize(f.data, ts, f.key);
    let n = 0;
    for (const p of pkts) {
      n += p.length;
      if (this.pending) {
        if (this.pendingBytes + p.length > MAX_PENDING_BYTES) { this.pending.length = 0; this.pendingBytes = 0; }
        this.pending.push({ media: o.media, pkt: p });
        this.pendingBytes += p.length;
      } else {
        o.media.send(p);
      }
    }
    this.packets += pkts.length;
    this.bytes += n;
    return n;
  }

  flush(): boolean { return true; }

  close(reason: string): void {
    this.onClose?.(reason);
  }
}
