// RTP ingest: the media of an RTSP publisher (ANNOUNCE/RECORD on the server) or of a pulled source (the
// client's PLAY), from RTP packets to Publisher.write:
//
//   UDP packets -> reorder buffer (rtpreorderbufferlen) -> depacketizer -> timeline (wrap, random bases,
//   A/V alignment from RTCP SR) -> DTS extractor (H.264/H.265 with B-frames) -> Publisher.write
//
// TCP interleaved packets skip the reorder buffer (TCP keeps order). Losses, late, duplicate and reordered
// packets are counted per track and shown in /api/stream/info (publisher.rtp) and the metrics. Receiver
// reports go back to the source every few seconds; a keyframe request from a viewer becomes an RTCP PLI.

import type { Publisher, Track, Logger } from '../../src/plugin.ts';
import { FormatError } from '../../src/format/bytes.ts';
import { parseRtp, type RtpPacket, seqDiff } from '../../src/format/rtp/packet.ts';
import { ReorderBuffer } from '../../src/format/rtp/reorder.ts';
import { RtpFrameClock, RtpTimeline } from '../../src/format/rtp/timeline.ts';
import { createDepacketizer } from '../../src/format/rtp/index.ts';
import type { Depacketizer } from '../../src/format/rtp/common.ts';
import type { SdpTrack } from '../../src/format/sdp/codec.ts';
import { buildRtcp, parseRtcp, RtpReceiverStats } from '../../src/format/rtcp/index.ts';
import type { CodecConfig } from '../../src/codec/config.ts';

/** Codecs taken from RTP sources. */
export const INGEST_CODECS = new Set(['h264', 'h265', 'aac', 'opus', 'pcma', 'pcmu']);

export interface IngestTrackStats {
  control?: string;
  codec: string;
  packets: number;
  frames: number;
  lost: number;
  late: number;
  duplicate: number;
  reordered: number;
  /** Partial frames thrown away (a packet of them lost or malformed). */
  droppedFrames: number;
  errors: number;
}

interface InTrack {
  sdp: SdpTrack;
  index: number;
  kind: 'video' | 'audio';
  depack: Depacketizer;
  reorder: ReorderBuffer<RtpPacket> | null;
  /** Timeline stage + DTS extractor (src/format/rtp/timeline.ts). */
  clock: RtpFrameClock;
  track: Track | null;
  ssrc: number;
  /** RR state (extended seq, loss, jitter, LSR) once the source's SSRC is known. */
  rr: RtpReceiverStats | null;
  lastDelivery: number;
}

export interface RtpIngestOptions {
  /** Reorder window for UDP (packets); 0 = no reordering (TCP). */
  reorder: number;
  logger: Logger;
  /** Send an RTCP packet for media `index` to the source (RR, PLI). */
  sendRtcp(index: number, data: Uint8Array): void;
}

export class RtpIngest {
  readonly tracks: InTrack[] = [];
  private readonly timeline = new RtpTimeline();
  private readonly ssrc = (Math.random() * 0x100000000) >>> 0;
  private rrTimer: ReturnType<typeof setInterval> | undefined;
  private closed = false;

  /** `sdpTracks` with a codec we take; the others are skipped (listed in `skipped`). */
  readonly skipped: string[] = [];

  constructor(readonly pub: Publisher, sdpTracks: SdpTrack[], readonly opts: RtpIngestOptions) {
    let vi = 0, ai = 0;
    for (const t of sdpTracks) {
      const kind = t.kind === 'video' ? 'video' : t.kind === 'audio' ? 'audio' : null;
      if (!kind || !INGEST_CODECS.has(t.codec)) { this.skipped.push(`${t.kind}/${t.encoding}`); continue; }
      let depack: Depacketizer;
      try { depack = createDepacketizer(t); } catch (e) { this.skipped.push(`${t.kind}/${t.encoding}: ${(e as Error).message}`); continue; }
      const it: InTrack = {
        sdp: t, index: sdpTracks.indexOf(t), kind, depack, reorder: opts.reorder > 0 ? new ReorderBuffer<RtpPacket>(opts.reorder) : null,
        clock: new RtpFrameClock(this.timeline, t.codec, t.clockRate), track: null, ssrc: 0, rr: null, lastDelivery: Date.now(),
      };
      (it as { trackIndex?: number }).trackIndex = kind === 'video' ? vi++ : ai++;
      if (t.config) this.ensureTrack(it, t.config);
      this.tracks.push(it);
    }
    pub.onKeyframeRequest = () => this.requestKeyframe();
    pub.extraInfo = () => ({ rtp: this.stats() });
    this.rrTimer = setInterval(() => this.tick(), 250);
  }

  /** The ingest track for SDP media `index`. */
  byMedia(index: number): InTrack | undefined { return this.tracks.find((t) => t.index === index); }

  private ensureTrack(it: InTrack, cfg: CodecConfig): void {
    const idx = (it as { trackIndex?: number }).trackIndex ?? 0;
    if (!it.track) it.track = this.pub.addTrack(it.kind, cfg, { clockRate: it.sdp.clockRate, index: idx });
    else this.pub.setConfig(it.track, cfg);
  }

  /** One RTP packet (bytes) for SDP media `index`. Malformed packets are counted and dropped. */
  rtp(index: number, data: Uint8Array): void {
    if (this.closed) return;
    const it = this.byMedia(index);
    if (!it) return;
    let pkt: RtpPacket;
    try { pkt = parseRtp(data); } catch (e) {
      if (e instanceof FormatError) { it.depack.stats.errors++; return; }
      throw e;
    }
    if (it.sdp.payloadType !== pkt.payloadType && it.ssrc === 0 && pkt.payloadType >= 72 && pkt.payloadType <= 76) return; // RTCP on the RTP port
    if (!it.rr || it.ssrc !== pkt.ssrc) { it.ssrc = pkt.ssrc; it.rr = new RtpReceiverStats(pkt.ssrc, it.sdp.clockRate); }
    it.rr.packet(pkt.sequenceNumber, pkt.timestamp, Date.now());
    if (it.reorder) {
      // Adapters hand over each datagram's buffer (never reused), so the reorder buffer may hold views.
      for (const p of it.reorder.push(pkt.sequenceNumber, pkt)) this.deliver(it, p);
      if (!it.reorder.pending) it.lastDelivery = Date.now();
    } else {
      this.deliver(it, pkt);
    }
  }

  private deliver(it: InTrack, pkt: RtpPacket): void {
    it.lastDelivery = Date.now();
    let frames;
    try { frames = it.depack.push(pkt); } catch (e) {
      if (e instanceof FormatError) return; // counted by the depacketizer; the next good packet starts clean
      throw e;
    }
    for (const fr of frames) {
      if (fr.config) this.ensureTrack(it, fr.config);
      if (!it.track) continue; // no codec config yet (in-band parameter sets still to come)
      const { dts, cts } = it.clock.stamp(fr);
      this.pub.write(it.track, dts, cts, fr.key, fr.data);
    }
  }

  /** An RTCP compound packet from the source (SR: timeline alignment and LSR for our RRs). */
  rtcp(index: number, data: Uint8Array): void {
    if (this.closed) return;
    let pkts;
    try { pkts = parseRtcp(data); } catch (e) { if (e instanceof FormatError) return; throw e; }
    for (const p of pkts) {
      if (p.type !== 'sr') continue;
      const it = this.tracks.find((t) => t.ssrc === p.ssrc) ?? this.byMedia(index);
      if (!it) continue;
      it.clock.senderReport(p.ntpSec, p.ntpFrac, p.rtpTimestamp);
      it.rr?.senderReport(p.ntpSec, p.ntpFrac, Date.now());
    }
  }

  private lastRr = 0;

  private tick(): void {
    const now = Date.now();
    // A gap that never fills: let the packets after it through rather than stall the track.
    for (const it of this.tracks) {
      if (it.reorder?.pending && now - it.lastDelivery > 250) for (const p of it.reorder.flush()) this.deliver(it, p);
    }
    if (now - this.lastRr >= 5000) {
      this.lastRr = now;
      for (const it of this.tracks) if (it.rr) this.sendRr(it, now);
    }
  }

  private sendRr(it: InTrack, now: number): void {
    try {
      const report = it.rr!.report(now);
      this.opts.sendRtcp(it.index, buildRtcp([{ type: 'rr', ssrc: this.ssrc, reports: [report] }, { type: 'sdes', chunks: [{ ssrc: this.ssrc, items: [{ type: 1, text: 'm7s' }] }] }]));
    } catch (e) { this.opts.logger.debug('RR not sent', { error: e }); }
  }

  /** RTCP PLI to the source's video tracks (a viewer asked for a keyframe). */
  requestKeyframe(): void {
    for (const it of this.tracks) {
      if (it.kind !== 'video' || !it.ssrc) continue;
      this.opts.sendRtcp(it.index, buildRtcp([{ type: 'pli', senderSsrc: this.ssrc, mediaSsrc: it.ssrc }]));
    }
  }

  stats(): IngestTrackStats[] {
    return this.tracks.map((it) => {
      const r = it.reorder?.stats;
      const d = it.depack.stats;
      return {
        control: it.sdp.control, codec: it.sdp.codec, packets: r ? r.received : d.packets, frames: d.frames,
        lost: r ? r.lost : d.lostPackets, late: r?.late ?? 0, duplicate: r?.duplicate ?? 0, reordered: r?.reordered ?? 0,
        droppedFrames: d.droppedFrames, errors: d.errors,
      };
    });
  }

  /** Whether any media packet has arrived (the client's UDP → TCP fallback). */
  get received(): number {
    let n = 0;
    for (const it of this.tracks) n += it.reorder ? it.reorder.stats.received : it.depack.stats.packets;
    return n;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.rrTimer);
    if (this.pub.onKeyframeRequest) this.pub.onKeyframeRequest = null;
  }
}
