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
import { RtpTimeline } from '../../src/format/rtp/timeline.ts';
import { createDepacketizer } from '../../src/format/rtp/index.ts';
import type { Depacketizer } from '../../src/format/rtp/common.ts';
import type { SdpTrack } from '../../src/format/sdp/codec.ts';
import { buildRtcp, ntpMiddle, parseRtcp, type ReceptionReport } from '../../src/format/rtcp/index.ts';
import { DtsExtractor } from '../../src/codec/dts.ts';
import { parseAvcC } from '../../src/codec/h264.ts';
import { parseHvcC } from '../../src/codec/h265.ts';
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
  timeline: number;
  track: Track | null;
  dts: DtsExtractor | null;
  ssrc: number;
  /** Highest sequence number seen (extended), for RR. */
  cycles: number;
  maxSeq: number;
  baseSeq: number;
  expectedPrior: number;
  receivedPrior: number;
  lastSr: { middle: number; at: number } | null;
  lastDelivery: number;
  lateOrDup: number;
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
        timeline: this.timeline.addTrack(t.clockRate), track: null,
        dts: kind === 'video' && (t.codec === 'h264' || t.codec === 'h265') ? new DtsExtractor(t.codec, t.clockRate) : null,
        ssrc: 0, cycles: 0, maxSeq: -1, baseSeq: 0, expectedPrior: 0, receivedPrior: 0, lastSr: null, lastDelivery: Date.now(), lateOrDup: 0,
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
    if (it.dts && cfg.data) {
      try {
        if (cfg.codec === 'h264') { const a = parseAvcC(cfg.data); if (a.sps[0]) it.dts.setParameterSets(a.sps[0], a.pps[0]); }
        else { const h = parseHvcC(cfg.data); if (h.sps[0]) it.dts.setParameterSets(h.sps[0], h.pps[0]); }
      } catch (e) { if (!(e instanceof FormatError)) throw e; }
    }
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
    it.ssrc = pkt.ssrc;
    this.account(it, pkt.sequenceNumber);
    if (it.reorder) {
      // Adapters hand over each datagram's buffer (never reused), so the reorder buffer may hold views.
      for (const p of it.reorder.push(pkt.sequenceNumber, pkt)) this.deliver(it, p);
      if (!it.reorder.pending) it.lastDelivery = Date.now();
    } else {
      this.deliver(it, pkt);
    }
  }

  private account(it: InTrack, seq: number): void {
    if (it.maxSeq < 0) { it.maxSeq = seq; it.baseSeq = seq; return; }
    const d = seqDiff(it.maxSeq, seq);
    if (d > 0) {
      if (seq < it.maxSeq) it.cycles += 0x10000;
      it.maxSeq = seq;
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
      const pts = this.timeline.time(it.timeline, fr.timestamp);
      const dts = it.dts ? it.dts.extract(fr.data, pts) : pts;
      this.pub.write(it.track, dts, pts - dts, fr.key, fr.data);
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
      this.timeline.senderReport(it.timeline, p.ntpSec, p.ntpFrac, p.rtpTimestamp);
      it.lastSr = { middle: ntpMiddle(p.ntpSec, p.ntpFrac), at: Date.now() };
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
      for (const it of this.tracks) if (it.ssrc) this.sendRr(it, now);
    }
  }

  private sendRr(it: InTrack, now: number): void {
    const extMax = it.cycles + it.maxSeq;
    const expected = extMax - it.baseSeq + 1;
    const received = it.depack.stats.packets;
    const lost = Math.max(0, Math.min(0x7fffff, expected - received));
    const expInt = expected - it.expectedPrior, recInt = received - it.receivedPrior;
    it.expectedPrior = expected;
    it.receivedPrior = received;
    const lostInt = expInt - recInt;
    const report: ReceptionReport = {
      ssrc: it.ssrc, fractionLost: expInt > 0 && lostInt > 0 ? Math.min(255, Math.floor((lostInt << 8) / expInt)) : 0,
      packetsLost: lost, highestSeq: extMax >>> 0, jitter: 0,
      lsr: it.lastSr?.middle ?? 0, dlsr: it.lastSr ? Math.min(0xffffffff, Math.round(((now - it.lastSr.at) / 1000) * 65536)) >>> 0 : 0,
    };
    try {
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
