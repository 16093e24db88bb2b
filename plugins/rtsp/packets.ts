// RTP egress shared by every viewer of a stream: the packets of a frame are built once (Frame.pack) by
// one RtpWriter per stream track, so sequence numbers continue across frames in ring order and every
// viewer that takes the frames in order sees a gapless sequence (a viewer that skips frames sees a gap,
// which is the truth). SSRC, payload type and the RTP timestamp base are per track, not per viewer, so
// the bytes need no per-viewer patching: UDP viewers get the same Uint8Arrays, TCP viewers on the same
// interleaved channel get the same framed buffer (one `$`-framed concatenation per frame and channel).
//
// RTP timestamps come from the stream's timeline (the same for every viewer, monotonic across publisher
// reconnects), converted to the RTP clock of the SDP (which is the track clock for every codec here).

import type { Frame, Track } from '../../src/plugin.ts';
import { RtpWriter } from '../../src/format/rtp/packet.ts';
import { createPacketizer, type Packetizer } from '../../src/format/rtp/index.ts';
import { type SdpTrackOut, sdpForTracks } from '../../src/format/sdp/codec.ts';
import { interleavedHeader } from '../../src/format/rtsp/message.ts';
import { parseAsc } from '../../src/codec/aac.ts';

/** Codecs this server can send over RTP. */
export const RTP_CODECS = new Set(['h264', 'h265', 'aac', 'opus', 'pcma', 'pcmu']);

export function rtpCanCarry(t: Track): boolean {
  return (t.kind === 'video' || t.kind === 'audio') && RTP_CODECS.has(t.codec);
}

/** Per stream track: the writer whose sequence numbers every viewer's packets continue. */
export interface TrackRtp {
  track: Track;
  writer: RtpWriter;
  packetizer: Packetizer | null;
  configVersion: number;
  payloadType: number;
  ssrc: number;
  /** RTP clock of the SDP rtpmap. */
  clock: number;
  /** Random RTP timestamp base. */
  base: number;
  /** Last RTP timestamp sent and when (ms), for RTCP SR. */
  lastTs: number;
  lastWall: number;
  /** Frames packetized (a pack cache miss) — tests compare it with frames sent to many viewers. */
  built: number;
  /** The wall clock ↔ RTP time mapping of this track's sender reports (linear, so players never jump). */
  srAnchor: { wall: number; rtp: number } | null;
}

const states = new WeakMap<Track, TrackRtp>();

/** Payload type of a stream track: static for 8 kHz mono G.711, else 96.. by kind and index. */
export function payloadTypeOf(t: Track): number {
  const c = t.config;
  if ((c.codec === 'pcma' || c.codec === 'pcmu') && (c.sampleRate ?? 8000) === 8000 && (c.channels ?? 1) === 1) return c.codec === 'pcma' ? 8 : 0;
  return Math.min(127, (t.kind === 'video' ? 96 : 97) + 2 * t.index);
}

function rtpClockOf(t: Track): number {
  const c = t.config;
  if (c.codec === 'h264' || c.codec === 'h265') return 90000;
  if (c.codec === 'opus') return 48000;
  if (c.codec === 'aac' && c.data) { try { return parseAsc(c.data).sampleRate; } catch { /* fall through */ } }
  return c.sampleRate ?? t.clockRate;
}

const rand32 = () => (Math.random() * 0x100000000) >>> 0;

export function trackRtp(t: Track): TrackRtp {
  let s = states.get(t);
  if (!s) {
    s = {
      track: t, writer: new RtpWriter(payloadTypeOf(t), rand32(), rand32() & 0xffff), packetizer: null, configVersion: -1,
      payloadType: payloadTypeOf(t), ssrc: 0, clock: rtpClockOf(t), base: rand32(), lastTs: 0, lastWall: 0, built: 0, srAnchor: null,
    };
    s.ssrc = s.writer.ssrc;
    states.set(t, s);
  }
  return s;
}

/** The RTP timestamp of a stream-timeline time in track clock units. */
export function rtpTime(s: TrackRtp, t: number): number {
  const clock = s.track.clockRate;
  const v = clock === s.clock ? t : Math.round((t * s.clock) / clock);
  return (s.base + v) >>> 0;
}

export interface FramePackets {
  packets: Uint8Array[];
  /** Sum of packet sizes. */
  bytes: number;
  timestamp: number;
}

/** The RTP packets of a frame, built once. */
export function framePackets(f: Frame, mtu: number): FramePackets {
  return f.pack('rtp:' + mtu, (fr): FramePackets => {
    const s = trackRtp(fr.track);
    if (!s.packetizer || s.configVersion !== fr.configVersion) {
      s.packetizer = createPacketizer(fr.config, s.writer, { mtu });
      s.configVersion = fr.configVersion;
    }
    const ts = rtpTime(s, fr.dts + fr.cts);
    const packets = s.packetizer.packetize(fr.data, ts, fr.key);
    let bytes = 0;
    for (const p of packets) bytes += p.length;
    s.lastTs = ts;
    s.lastWall = Date.now();
    s.built++;
    return { packets, bytes, timestamp: ts };
  });
}

/** The frame's packets `$`-framed for interleaved channel `ch`, as one buffer (built once per channel). */
export function frameInterleaved(f: Frame, mtu: number, ch: number): Uint8Array {
  return f.pack('rtsp-tcp:' + mtu + ':' + ch, (fr) => {
    const p = framePackets(fr, mtu);
    const out = new Uint8Array(p.bytes + 4 * p.packets.length);
    let o = 0;
    for (const pkt of p.packets) {
      out.set(interleavedHeader(ch, pkt.length), o);
      out.set(pkt, o + 4);
      o += 4 + pkt.length;
    }
    return out;
  });
}

/** The SDP describing `tracks` with the payload types and controls this server sends them with. */
export function sdpForStream(tracks: Track[], opts: { sessionName?: string; address?: string } = {}): string {
  const outs: SdpTrackOut[] = tracks.map((t, i) => {
    const pt = payloadTypeOf(t);
    return { config: t.config, payloadType: pt < 96 ? undefined : pt, control: `trackID=${i}` };
  });
  return sdpForTracks(outs, { sessionName: opts.sessionName ?? 'm7s', originAddress: opts.address, tool: 'm7s' });
}

/**
 * The RTP time of wall-clock `now` for RTCP SR. One linear mapping per track, anchored at its first use
 * from the newest frame and its arrival: players (ffmpeg) re-base on every SR, so SRs that each guessed
 * from arrival jitter would make timestamps step back and forth. Re-anchored only when the stream's
 * timeline moved away from it by more than a second (a new publisher, a long stall).
 */
export function srTime(s: TrackRtp, now: number): number | undefined {
  const t = s.track;
  if (t.lastDts === -Infinity) return undefined;
  const actual = t.lastDts + ((now - t.lastWrite) * t.clockRate) / 1000;
  const a = s.srAnchor;
  if (a) {
    const predicted = a.rtp + ((now - a.wall) * t.clockRate) / 1000;
    if (Math.abs(predicted - actual) < t.clockRate) return rtpTime(s, Math.round(predicted));
  }
  s.srAnchor = { wall: now, rtp: actual };
  return rtpTime(s, Math.round(actual));
}
