// RTP carrying a multiplex (MPEG-PS as GB28181 devices send it, or MPEG-TS per RFC 2250) into a
// Publisher, shared by the gb28181 plugin (invites) and the rtp plugin (/rtp/api/receive): packets over
// UDP or over TCP with RFC 4571 framing (2-byte length, then the packet).
//
//   UDP datagram / RFC 4571 frame -> parseRtp -> reorder (UDP) -> PsDemuxer (RTP marker = frame end) or
//   TsDemuxer -> tracks (H.264/H.265 90 kHz, G.711 8 kHz, AAC) -> Publisher.write
//
// It lives outside plugins/ because two plugins use it; it uses only the public plugin surface.
// Bad packets are counted and dropped; a bad RFC 4571 stream (a length of 0) ends the connection.

import type { Publisher, Track } from '../plugin.ts';
import { FormatError } from '../format/bytes.ts';
import { parseRtp, type RtpPacket } from '../format/rtp/packet.ts';
import { ReorderBuffer } from '../format/rtp/reorder.ts';
import { PsDemuxer, type PsUnit } from '../format/ps.ts';
import { TsDemuxer } from '../format/ts.ts';
import type { CodecConfig } from '../codec/config.ts';
import { parseAvcC, parseH264Sps } from '../codec/h264.ts';
import { parseHvcC, parseH265Sps, H265_NAL_SPS } from '../codec/h265.ts';

export type MediaTransport = 'udp' | 'tcp-passive' | 'tcp-active';

export interface RtpIngestStats {
  packets: number;
  bytes: number;
  badPackets: number;
  lost: number;
  frames: number;
  psErrors: number;
  ssrc: number;
  firstPacketAt: number;
}

/** RFC 4571: a TCP byte stream of [len16][RTP packet] records. */
export class Rfc4571Parser {
  private buf = new Uint8Array(0);
  push(chunk: Uint8Array, onPacket: (p: Uint8Array) => void): void {
    let b = chunk;
    if (this.buf.length) {
      b = new Uint8Array(this.buf.length + chunk.length);
      b.set(this.buf);
      b.set(chunk, this.buf.length);
    }
    let p = 0;
    while (p + 2 <= b.length) {
      const n = (b[p]! << 8) | b[p + 1]!;
      if (n < 12) throw new FormatError(`RFC 4571 record of ${n} bytes is not an RTP packet`);
      if (p + 2 + n > b.length) break;
      onPacket(b.subarray(p + 2, p + 2 + n));
      p += 2 + n;
    }
    this.buf = p < b.length ? b.slice(p) : new Uint8Array(0);
  }
}

/** RTP/PS or RTP/TS → Publisher. `getPublisher` is called once, when the first frame is ready. */
export class RtpPsIngest {
  readonly stats: RtpIngestStats = { packets: 0, bytes: 0, badPackets: 0, lost: 0, frames: 0, psErrors: 0, ssrc: 0, firstPacketAt: 0 };
  private readonly demux: { push(b: Uint8Array): void; flush?(): void; stats: { errors: number } };
  private readonly reorder: ReorderBuffer<RtpPacket> | null;
  private video: Track | null = null;
  private audio: Track | null = null;
  private videoConfig: CodecConfig | null = null;
  /** Called on the first packet (to cancel a no-media timer). */
  onFirstPacket: (() => void) | null = null;

  constructor(private readonly pub: Publisher, opts: { reorder?: number; container?: 'ps' | 'ts' } = {}) {
    if (opts.container === 'ts') {
      this.demux = new TsDemuxer((u) => {
        const kind = u.codec === 'h264' || u.codec === 'h265' ? 'video' : u.codec === 'aac' ? 'audio' : null;
        if (kind) this.unit({ kind, codec: u.codec as PsUnit['codec'], pts: u.pts, dts: u.dts, key: u.key, data: u.data, config: u.config });
      });
    } else {
      const ps = new PsDemuxer((u) => this.unit(u));
      this.demux = { push: (b) => ps.push(b), flush: () => ps.flush(), stats: ps.stats };
    }
    this.reorder = opts.reorder ? new ReorderBuffer<RtpPacket>(opts.reorder) : null;
  }

  /** One RTP packet (bytes). */
  packet(bytes: Uint8Array): void {
    let pkt: RtpPacket;
    try {
      pkt = parseRtp(bytes);
    } catch (e) {
      if (!(e instanceof FormatError)) throw e;
      this.stats.badPackets++;
      return;
    }
    if (!this.stats.packets) { this.stats.firstPacketAt = Date.now(); this.stats.ssrc = pkt.ssrc; this.onFirstPacket?.(); }
    this.stats.packets++;
    this.stats.bytes += bytes.length;
    if (this.reorder) {
      for (const p of this.reorder.push(pkt.sequenceNumber, pkt)) this.payload(p);
      this.stats.lost = this.reorder.stats.lost;
    } else {
      this.payload(pkt);
    }
  }

  private payload(p: RtpPacket): void {
    this.demux.push(p.payload);
    if (p.marker) this.demux.flush?.();
    this.stats.psErrors = this.demux.stats.errors;
  }

  private unit(u: PsUnit): void {
    if (this.pub.closed) return;
    if (u.kind === 'video') {
      if (u.config) this.videoConfig = withSize(u.config);
      if (!this.videoConfig) return; // no parameter sets yet
      if (!this.video) this.video = this.pub.addTrack('video', this.videoConfig);
      else if (u.config) this.pub.setConfig(this.video, this.videoConfig);
      this.pub.write(this.video, u.dts, u.pts - u.dts, u.key, u.data);
    } else {
      const rate = u.codec === 'aac' ? (u.config?.sampleRate ?? this.audio?.clockRate ?? 8000) : 8000;
      if (!this.audio) {
        const cfg: CodecConfig = u.config ?? { codec: u.codec, sampleRate: 8000, channels: 1 };
        this.audio = this.pub.addTrack('audio', cfg, { clockRate: rate });
      } else if (u.config) this.pub.setConfig(this.audio, u.config);
      this.pub.write(this.audio, Math.round((u.dts * this.audio.clockRate) / 90000), 0, true, u.data);
    }
    this.stats.frames++;
  }

  close(): void {
    // nothing buffered beyond the demuxer
  }
}

function withSize(cfg: CodecConfig): CodecConfig {
  try {
    if (cfg.codec === 'h264' && cfg.data) {
      const sps = parseAvcC(cfg.data).sps[0];
      if (sps) { const { width, height } = parseH264Sps(sps); return { ...cfg, width, height }; }
    } else if (cfg.codec === 'h265' && cfg.data) {
      const sps = parseHvcC(cfg.data).arrays.find((a) => a.type === H265_NAL_SPS)?.nalus[0];
      if (sps) { const { width, height } = parseH265Sps(sps); return { ...cfg, width, height }; }
    }
  } catch { /* size unknown */ }
  return cfg;
}
