// A WHIP/WHEP client on node-datachannel (libdatachannel, the WebRTC stack OBS uses for WHIP): an
// independent peer for the webrtc plugin's tests. It binds to 127.0.0.1 only. Media is RTP built and read
// with our own src/format/rtp code; libdatachannel carries it (ICE, DTLS, SRTP).
import assert from 'node:assert/strict';
import type * as NDC from 'node-datachannel';
import { splitAnnexB, joinAvcc, h264NalType, H264_NAL_SPS, H264_NAL_PPS, H264_NAL_IDR } from '../../src/codec/h264.ts';
import { h265NalType, H265_NAL_VPS, H265_NAL_SPS, H265_NAL_PPS, isH265Irap } from '../../src/codec/h265.ts';
import { NalDepacketizer, NalPacketizer, parseRtp, RtpWriter, type RtpFrame } from '../../src/format/rtp/index.ts';

/**
 * libdatachannel, loaded on first use, not at import: under `deno test` each file runs in its own isolate,
 * and a file that only imported it (for the helpers below) made Deno 2.9.5 panic in the next file that
 * used it ("attempt to access Handle hosted by disposed Isolate").
 */
// deno-lint-ignore no-explicit-any
let nodeDataChannel: typeof NDC = undefined as any;
async function loadDataChannel(): Promise<void> {
  // deno-lint-ignore no-explicit-any
  nodeDataChannel ??= ((await import('node-datachannel')) as any).default;
}

export type NalCodec = 'h264' | 'h265';

/** Access units (AVCC form) from an Annex B elementary stream with one VCL NAL unit per picture. */
export function accessUnits(codec: NalCodec, annexB: Uint8Array): { au: Uint8Array; key: boolean }[] {
  const out: { au: Uint8Array; key: boolean }[] = [];
  let cur: Uint8Array[] = [];
  let key = false;
  for (const n of splitAnnexB(annexB)) {
    const t = codec === 'h264' ? h264NalType(n) : h265NalType(n);
    cur.push(n);
    const vcl = codec === 'h264' ? t >= 1 && t <= 5 : t < 32;
    if (codec === 'h264' ? t === H264_NAL_IDR : isH265Irap(t)) key = true;
    if (vcl) { out.push({ au: joinAvcc(cur), key }); cur = []; key = false; }
  }
  return out;
}

export function parameterSets(codec: NalCodec, annexB: Uint8Array): Uint8Array[] {
  const want = codec === 'h264' ? [H264_NAL_SPS, H264_NAL_PPS] : [H265_NAL_VPS, H265_NAL_SPS, H265_NAL_PPS];
  const seen = new Map<number, Uint8Array>();
  for (const n of splitAnnexB(annexB)) {
    const t = codec === 'h264' ? h264NalType(n) : h265NalType(n);
    if (want.includes(t) && !seen.has(t)) seen.set(t, n);
    if (seen.size === want.length) break;
  }
  return want.map((t) => seen.get(t)!).filter(Boolean);
}

async function gathered(pc: NDC.PeerConnection): Promise<void> {
  const t0 = Date.now();
  while (pc.gatheringState() !== 'complete') {
    if (Date.now() - t0 > 5000) throw new Error('node-datachannel: gathering did not complete');
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface Client {
  pc: NDC.PeerConnection;
  track: NDC.Track;
  location: string;
  state(): string;
  close(): Promise<void>;
}

const PT = 96;

function videoSection(codec: NalCodec, dir: 'SendOnly' | 'RecvOnly', ssrc: number): NDC.Video {
  const v = new nodeDataChannel.Video('0', dir);
  if (codec === 'h264') v.addH264Codec(PT); else v.addH265Codec(PT);
  if (dir === 'SendOnly') v.addSSRC(ssrc, 'm7s-test');
  return v;
}

/** POST an offer; returns the response (answer applied when 201). */
async function signal(pc: NDC.PeerConnection, url: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string; location: string }> {
  pc.setLocalDescription();
  await gathered(pc);
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/sdp', ...headers }, body: pc.localDescription()!.sdp });
  const text = await res.text();
  if (res.status === 201) pc.setRemoteDescription(text, 'answer' as NDC.DescriptionType);
  return { status: res.status, text, location: res.headers.get('location') ?? '' };
}

function client(pc: NDC.PeerConnection, track: NDC.Track, base: string, location: string): Client {
  let closed = false;
  return {
    pc, track, location,
    state: () => pc.state(),
    async close() {
      if (closed) return;
      closed = true;
      if (location) await fetch(base + location, { method: 'DELETE' }).then((r) => r.body?.cancel()).catch(() => {});
      try { track.close(); } catch { /* already */ }
      pc.close();
    },
  };
}

/** Just the offer text of a send-only (WHIP) or receive-only (WHEP) video peer, then closed. */
export async function offerText(codec: NalCodec, dir: 'SendOnly' | 'RecvOnly'): Promise<string> {
  await loadDataChannel();
  const pc = new nodeDataChannel.PeerConnection('offer', { iceServers: [], bindAddress: '127.0.0.1' });
  const track = pc.addTrack(videoSection(codec, dir, 0x1234));
  pc.setLocalDescription();
  await gathered(pc);
  const sdp = pc.localDescription()!.sdp;
  track.close();
  pc.close();
  return sdp;
}

/**
 * Publish `aus` by WHIP at `fps`, looping, until close(). Packets are built with our NalPacketizer
 * (parameter sets before each keyframe). `plis` counts keyframe requests the server sent us.
 */
export async function whipPublish(base: string, path: string, codec: NalCodec, aus: { au: Uint8Array; key: boolean }[], ps: Uint8Array[], fps = 25,
  headers: Record<string, string> = {}): Promise<Client & { status: number; text: string; plis: () => number; sent: () => number }> {
  await loadDataChannel();
  const pc = new nodeDataChannel.PeerConnection('whip', { iceServers: [], bindAddress: '127.0.0.1' });
  const ssrc = 0x2000 + Math.floor(Math.random() * 1000);
  const track = pc.addTrack(videoSection(codec, 'SendOnly', ssrc));
  let plis = 0, sent = 0;
  track.onMessage((m) => {
    const b = new Uint8Array(m as Uint8Array);
    // RTCP PSFB (206) with FMT 1 = PLI (compound packets: look at each).
    for (let p = 0; p + 4 <= b.length;) {
      if (b[p + 1] === 206 && (b[p]! & 0x1f) === 1) plis++;
      p += (((b[p + 2]! << 8) | b[p + 3]!) + 1) * 4;
    }
  });
  const r = await signal(pc, `${base}/webrtc/push/${path}`, headers);
  const c = client(pc, track, base, r.location);
  let timer: ReturnType<typeof setInterval> | undefined;
  if (r.status === 201) {
    const writer = new RtpWriter(PT, ssrc, 1);
    const pk = new NalPacketizer(codec, writer);
    pk.setParameterSets(ps);
    let i = 0, ts = 1000;
    timer = setInterval(() => {
      if (!track.isOpen()) return;
      const f = aus[i++ % aus.length]!;
      for (const p of pk.packetize(f.au, ts, f.key)) { track.sendMessageBinary(p as any); sent++; }
      ts += 90000 / fps;
    }, 1000 / fps);
  }
  const close = c.close;
  return { ...c, status: r.status, text: r.text, plis: () => plis, sent: () => sent, close: async () => { clearInterval(timer); await close(); } };
}

export interface SenderReport {
  ssrc: number; ntpSec: number; ntpFrac: number; rtpTimestamp: number; packetCount: number; octetCount: number;
  /** Arrival (Date.now()), RTP packets received before it and the last RTP timestamp received before it. */
  at: number; packetsBefore: number; lastTimestampBefore: number;
}

/** Play by WHEP; frames are depacketized with our NalDepacketizer. */
export async function whepPlay(base: string, path: string, codec: NalCodec, headers: Record<string, string> = {}): Promise<Client & {
  status: number; text: string; frames: RtpFrame[]; rtp: { seq: number; timestamp: number }[]; packets: () => number; firstPacketAt: () => number; answeredAt: number; requestKeyframe(): boolean;
  /** RTCP Sender Reports received (RFC 3550 §6.4.1), with the RTP packets received before each and the media SSRCs. */
  srs: SenderReport[]; ssrcs: Set<number>;
}> {
  await loadDataChannel();
  const pc = new nodeDataChannel.PeerConnection('whep', { iceServers: [], bindAddress: '127.0.0.1' });
  const track = pc.addTrack(videoSection(codec, 'RecvOnly', 0));
  const frames: RtpFrame[] = [];
  const rtp: { seq: number; timestamp: number }[] = [];
  const depack = new NalDepacketizer(codec);
  let packets = 0, firstPacketAt = 0;
  const srs: SenderReport[] = [];
  const ssrcs = new Set<number>();
  let lastTimestamp = 0;
  track.onMessage((m) => {
    const b = new Uint8Array(m as Uint8Array);
    if (b.length >= 28 && b[1] === 200) { // SR (first of a compound packet)
      const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
      srs.push({ ssrc: v.getUint32(4), ntpSec: v.getUint32(8), ntpFrac: v.getUint32(12), rtpTimestamp: v.getUint32(16), packetCount: v.getUint32(20),
        octetCount: v.getUint32(24), at: Date.now(), packetsBefore: packets, lastTimestampBefore: lastTimestamp });
    }
    if (b.length < 12 || (b[1]! >= 200 && b[1]! <= 206)) return; // RTCP
    packets++;
    ssrcs.add(new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(8));
    lastTimestamp = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(4);
    if (!firstPacketAt) firstPacketAt = Date.now();
    try {
      const p = parseRtp(b);
      if (rtp.length < 5000) rtp.push({ seq: p.sequenceNumber, timestamp: p.timestamp });
      frames.push(...depack.push(p));
    } catch { /* counted by the depacketizer */ }
  });
  const r = await signal(pc, `${base}/webrtc/play/${path}`, headers);
  const answeredAt = Date.now();
  const c = client(pc, track, base, r.location);
  return { ...c, status: r.status, text: r.text, frames, rtp, packets: () => packets, firstPacketAt: () => firstPacketAt, answeredAt, requestKeyframe: () => track.requestKeyframe(), srs, ssrcs };
}

export function cleanupDataChannel(): void {
  nodeDataChannel?.cleanup();
}

/** A WHEP viewer on werift (recvonly H.264 with NACK) whose traffic goes through `relayFor(serverPort)`. */
export async function weriftViewer(base: string, path: string, relayFor: (serverPort: number) => Promise<number>) {
  const { RTCPeerConnection, RTCRtpCodecParameters } = await import('werift');
  const pc = new RTCPeerConnection({
    iceServers: [], iceUseIpv6: false, iceInterfaceAddresses: { udp4: '127.0.0.1' }, iceAdditionalHostAddresses: ['127.0.0.1'],
    codecs: {
      audio: [],
      video: [new RTCRtpCodecParameters({ mimeType: 'video/H264', clockRate: 90000, parameters: 'level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f',
        rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }] })],
    },
  });
  const received = new Set<number>();
  /** Extended (unwrapped) sequence numbers received: a 16-bit number plus 65536 per wrap. */
  const receivedExt = new Set<number>();
  let packets = 0, highest = -1;
  const tr = pc.addTransceiver('video', { direction: 'recvonly' });
  tr.onTrack.subscribe((track) => track.onReceiveRtp.subscribe((rtp) => {
    packets++;
    const seq = rtp.header.sequenceNumber;
    received.add(seq);
    // Nearest to the highest so far (RFC 3550 A.1 style): late and resent packets land below it.
    let ext = seq;
    if (highest >= 0) { ext = (highest & ~0xffff) + seq; if (ext < highest - 0x8000) ext += 0x10000; else if (ext > highest + 0x8000) ext -= 0x10000; }
    receivedExt.add(ext);
    if (ext > highest) highest = ext;
  }));
  const offer = await pc.createOffer();
  for (const t of pc.iceTransports) (t.connection as { stunServer?: unknown }).stunServer = undefined; // no STUN to the internet
  await pc.setLocalDescription(offer);
  // No candidates in the offer: the server learns the relay's address from the checks (peer reflexive),
  // so every packet takes the relay.
  const sdp = pc.localDescription!.sdp.split('\r\n').filter((l) => !l.startsWith('a=candidate:') && l !== 'a=end-of-candidates').join('\r\n');
  const res = await fetch(`${base}/webrtc/play/${path}`, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: sdp });
  const answer = await res.text();
  assert.equal(res.status, 201, answer);
  const location = res.headers.get('location')!;
  const serverPort = Number(/a=candidate:\S+ \d+ \S+ \d+ 127\.0\.0\.1 (\d+) typ host/.exec(answer)![1]);
  const relayPort = await relayFor(serverPort);
  await pc.setRemoteDescription({ type: 'answer', sdp: answer.replace(new RegExp(` 127\\.0\\.0\\.1 ${serverPort} typ host`, 'g'), ` 127.0.0.1 ${relayPort} typ host`) });
  return {
    received, receivedExt, highest: () => highest, serverPort, packets: () => packets, state: () => pc.connectionState, location,
    async close() {
      await fetch(base + location, { method: 'DELETE' }).then((r) => r.body?.cancel()).catch(() => {});
      await pc.close().catch(() => {});
    },
  };
}
