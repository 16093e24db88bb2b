// Sending a stream over RTP to one RTSP viewer (or to the server we push to): a SubscriberSink that takes
// the frame's shared packets (packets.ts) and hands them to the viewer's transport — TCP interleaved
// (one shared `$`-framed buffer per frame and channel, one vectored write per batch) or UDP (the shared
// packets, datagram by datagram, from the server's RTP socket). RTCP sender reports go out every 5 s
// per track so players can line audio up with video.

import type { Frame, Subscriber, SubscriberSink, Track } from '../../src/plugin.ts';
import { buildRtcp } from '../../src/format/rtcp/index.ts';
import { toNtp } from '../../src/format/rtcp/index.ts';
import { interleavedHeader } from '../../src/format/rtsp/message.ts';
import { framePackets, frameInterleaved, srTime, trackRtp } from './packets.ts';

/** Where one track's packets go. */
export type TrackOut =
  | { kind: 'tcp'; channel: number }
  | { kind: 'udp'; address: string; rtpPort: number; rtcpPort: number; /** Client side: the sockets to send from. */ from?: { rtp: UdpLike; rtcp: UdpLike } }
  /** A multicast viewer: the stream's one multicast sender (multicast.ts) sends to the group, not this sink. */
  | { kind: 'multicast'; address: string; rtpPort: number; rtcpPort: number; ttl: number };

interface UdpLike { send(data: Uint8Array, port: number, host: string): void }

/** The byte paths a sink writes to (the server connection, or the push client's). */
export interface RtpTransport {
  /** TCP: queue bytes for the next flush; returns nothing. */
  tcpQueue(b: Uint8Array): void;
  /** TCP: write out what was queued; false when the connection pushes back. */
  tcpFlush(): boolean;
  /** TCP: bytes waiting in the connection. */
  readonly buffered: number;
  readonly closed: boolean;
  sendUdpRtp(data: Uint8Array, out: TrackOut & { kind: 'udp' }): void;
  sendUdpRtcp(data: Uint8Array, out: TrackOut & { kind: 'udp' }): void;
}

export interface PlaySinkHooks {
  /** The subscription is accepted and the stream is ready: answer PLAY / RECORD now, before any packet. */
  begin?(sub: Subscriber): void;
  /** The engine ended the subscription. */
  end?(reason: string, sub: Subscriber): void;
}

const SR_INTERVAL_MS = 5000;

export class RtpPlaySink implements SubscriberSink {
  /** RTP timestamps on the stream's timeline: the same bytes for every viewer. */
  readonly streamTimeline = true;
  readonly catchup = false;
  /** Frames sent / packets sent, for the API and tests. */
  frames = 0;
  packets = 0;
  private lastSr = 0;
  private srTimer: ReturnType<typeof setInterval> | undefined;
  private sub: Subscriber | null = null;

  constructor(
    readonly transport: RtpTransport,
    /** Stream track → where its packets go (tracks not in the map are not sent). */
    readonly outs: Map<Track, TrackOut>,
    readonly mtu: number,
    private readonly hooks: PlaySinkHooks = {},
  ) {}

  begin(sub: Subscriber): void {
    this.sub = sub;
    sub.bufferedFn = () => this.transport.buffered;
    this.hooks.begin?.(sub);
    this.sendSenderReports();
    this.srTimer = setInterval(() => this.sendSenderReports(), SR_INTERVAL_MS);
  }

  frame(f: Frame, _dts: number, _sub: Subscriber): number {
    const out = this.outs.get(f.track);
    if (!out || out.kind === 'multicast') return 0;
    if (out.kind === 'tcp') {
      const b = frameInterleaved(f, this.mtu, out.channel);
      this.transport.tcpQueue(b);
      this.packets += framePackets(f, this.mtu).packets.length;
      this.frames++;
      return b.length;
    }
    const p = framePackets(f, this.mtu);
    for (const pkt of p.packets) this.transport.sendUdpRtp(pkt, out);
    this.packets += p.packets.length;
    this.frames++;
    return p.bytes;
  }

  flush(): boolean {
    if (this.transport.closed) return false;
    return this.transport.tcpFlush();
  }

  /** RTCP SR per track: NTP now and the RTP time of now, from the track's newest frame and its arrival. */
  sendSenderReports(): void {
    if (this.transport.closed) return;
    const now = Date.now();
    this.lastSr = now;
    const ntp = toNtp(now);
    for (const [t, out] of this.outs) {
      if (out.kind === 'multicast') continue;
      const s = trackRtp(t);
      const ts = srTime(s, now);
      if (ts === undefined) continue;
      const sr = buildRtcp([
        { type: 'sr', ssrc: s.ssrc, ntpSec: ntp.ntpSec, ntpFrac: ntp.ntpFrac, rtpTimestamp: ts, packetCount: s.writer.packets >>> 0, octetCount: s.writer.octets >>> 0, reports: [] },
        { type: 'sdes', chunks: [{ ssrc: s.ssrc, items: [{ type: 1, text: 'm7s' }] }] },
      ]);
      if (out.kind === 'tcp') {
        this.transport.tcpQueue(interleavedHeader(out.channel + 1, sr.length));
        this.transport.tcpQueue(sr);
      } else {
        this.transport.sendUdpRtcp(sr, out);
      }
    }
    this.transport.tcpFlush();
  }

  close(reason: string, sub: Subscriber): void {
    clearInterval(this.srTimer);
    this.hooks.end?.(reason, sub);
  }

  /** Stop the SR timer (the owner closes the subscriber). */
  dispose(): void {
    clearInterval(this.srTimer);
  }
}
