// A WHEP viewer: a SubscriberSink that sends the stream's main video and audio frames as RTP. The packets
// of a frame are built once per stream track and shared by every viewer (plugins/rtsp/packets.ts, the
// same mechanism and the same bytes as RTSP viewers): sequence numbers continue per stream track, and
// the WebRTC stack only rewrites SSRC and payload type per viewer as it sends. NACKs are answered from a
// per-stream-track packet history shared by every viewer (filled once per frame). The subscriber starts
// at the cached keyframe; until ICE/DTLS is up the packets wait here (bounded), so the first picture is
// that keyframe instead of the next GOP.

import type { Frame, Subscriber, SubscriberSink, Track } from '../../src/plugin.ts';
import { DEFAULT_RTP_MTU, RtpHistory } from '../../src/format/rtp/index.ts';
import { framePackets, trackRtp, type FramePackets } from '../rtsp/packets.ts';
import type { MediaChoice } from './negotiate.ts';
import type { PeerMedia } from './peer.ts';

interface Output {
  choice: MediaChoice;
  media: PeerMedia;
  track?: Track;
  history?: RtpHistory;
}

/** Packets held while the connection is being set up. */
const MAX_PENDING_BYTES = 8 << 20;
/** Held packets sent per event-loop turn once connected (the first frame, the keyframe, always whole). */
const DRAIN_SLICE_BYTES = 64 << 10;
/** The next event-loop turn, after pending I/O (setImmediate where the runtime has it: no 1 ms clamp). */
const nextTurn: (fn: () => void) => void = (globalThis as any).setImmediate ?? ((fn) => setTimeout(fn, 0));

/** The largest RTP packet sent to viewers (the SRTP tag and header extensions still fit a 1500 MTU). */
export const WEBRTC_MTU = DEFAULT_RTP_MTU;

const histories = new WeakMap<Track, RtpHistory>();

/** The NACK history of a stream track (`size` packets; the first viewer's config sizes it). */
export function trackHistory(t: Track, size: number): RtpHistory {
  let h = histories.get(t);
  if (!h) { h = new RtpHistory(size); histories.set(t, h); }
  return h;
}

/** The frame's shared packets, remembered once in the track's NACK history. */
function webrtcPackets(f: Frame, historySize: number): FramePackets {
  return f.pack('webrtc:' + WEBRTC_MTU, (fr) => {
    const p = framePackets(fr, WEBRTC_MTU);
    if (historySize > 0) { const h = trackHistory(fr.track, historySize); for (const pkt of p.packets) h.add(pkt); }
    return p;
  });
}

export class WhepSink implements SubscriberSink {
  readonly outs: Output[] = [];
  frames = 0;
  packets = 0;
  bytes = 0;
  /** NACKed packets resent / asked for but already out of the history. */
  retransmitted = 0;
  nackMisses = 0;
  private pending: { media: PeerMedia; pkts: Uint8Array[] }[] | null = [];
  private pendingBytes = 0;
  onClose?: (reason: string) => void;

  constructor(choices: MediaChoice[], media: PeerMedia[], private readonly historySize = 1024) {
    for (const choice of choices) {
      if (choice.payloadType === undefined || !choice.track) continue;
      const m = media.find((x) => x.mid === choice.mid);
      if (!m) continue;
      const out: Output = { choice, media: m };
      m.onNack = (seqs) => this.nack(out, seqs);
      this.outs.push(out);
    }
  }

  /**
   * The connection is up: send what waited, then send as frames come. What waited (the cached GOP
   * from its keyframe on) goes out in slices, one per event-loop turn: encrypting a whole GOP at once
   * held every UDP send (the DTLS stack's last flight and the keyframe included) until all of it was
   * done, 20-120 ms of first-picture delay in Chromium; frames arriving meanwhile queue behind it.
   */
  connected(): void {
    if (this.draining || !this.pending) return;
    this.draining = true;
    nextTurn(() => this.drain());
  }

  private draining = false;

  private drain(): void {
    const p = this.pending;
    if (!p) return;
    let bytes = 0;
    while (p.length && (bytes === 0 || bytes < DRAIN_SLICE_BYTES)) {
      const x = p.shift()!;
      for (const pkt of x.pkts) { x.media.send(pkt); bytes += pkt.byteLength; }
    }
    this.pendingBytes = Math.max(0, this.pendingBytes - bytes);
    if (p.length) nextTurn(() => this.drain());
    else { this.pending = null; this.pendingBytes = 0; }
  }

  private outFor(t: Track): Output | undefined {
    if (t.index !== 0 && !t.derivedFrom) return undefined; // the main tracks, or the audio bridge's
    for (const o of this.outs) {
      if (o.choice.kind !== t.kind) continue;
      if (o.track && o.track !== t) return undefined;
      if (t.codec !== o.choice.codec) return undefined; // the publisher changed codec: not playable here
      // The shared packets carry the track's RTP clock: it must be the negotiated one.
      if (trackRtp(t).clock !== o.choice.track!.clockRate) return undefined;
      if (!o.track) { o.track = t; if (this.historySize > 0) o.history = trackHistory(t, this.historySize); }
      return o;
    }
    return undefined;
  }

  private nack(o: Output, seqs: number[]): void {
    if (!o.history || this.pending) return;
    for (const s of seqs) {
      const p = o.history.get(s);
      if (p) { o.media.resend(p); this.retransmitted++; } else this.nackMisses++;
    }
  }

  frame(f: Frame, _dts: number, _sub: Subscriber, _cts?: number): number {
    const o = this.outFor(f.track);
    if (!o) return 0;
    const p = webrtcPackets(f, this.historySize);
    if (this.pending) {
      if (this.pendingBytes + p.bytes > MAX_PENDING_BYTES) { this.pending.length = 0; this.pendingBytes = 0; }
      this.pending.push({ media: o.media, pkts: p.packets });
      this.pendingBytes += p.bytes;
    } else {
      for (const pkt of p.packets) o.media.send(pkt);
    }
    this.frames++;
    this.packets += p.packets.length;
    this.bytes += p.bytes;
    return p.bytes;
  }

  flush(): boolean { return true; }

  close(reason: string): void {
    this.onClose?.(reason);
  }
}
