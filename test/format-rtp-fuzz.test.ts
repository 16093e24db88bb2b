// Seeded fuzzing of every network-facing parser this layer adds: the RTSP message parser and header
// parsers, SDP (with the codec mapping and depacketizer setup it drives), RTP, RTCP, and every
// depacketizer (fed packets in a row, so fragment reassembly state is exercised too). Only FormatError may
// escape, and the heap must stay flat. Cases per target: M7S_FUZZ_CASES [20000, ~12 s on Node].
// Measured with M7S_FUZZ_CASES=100000 (13 targets, 0 failures, heap change per target within +-20 MB
// without a forced GC): Node 52 s wall for the file (74 s on a busier machine), Bun 25 s, Deno 22-27 s;
// the slowest targets are SDP (5-18 s) and the RTSP header parsers (4-20 s).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fuzz, fuzzTarget } from './helpers/fuzz.ts';
import { h264AacFrames, h265Frames, tempDir } from './helpers/frames.ts';
import {
  RtspParser, parseTransport, parseSession, parseRtpInfo, parseNptRange, parseChallenges, parseAuthorization, checkAuthorization,
  serializeRequest, RtspHeaders, serializeResponse, digestChallenge, authorizationFor,
} from '../src/format/rtsp/index.ts';
import { parseSdp } from '../src/format/sdp/index.ts';
import { sdpTracks, sdpForTracks } from '../src/format/sdp/codec.ts';
import {
  parseRtp, parseExtensionElements, RtpWriter, createPacketizer, NalDepacketizer, Mpeg4GenericDepacketizer, Mpeg4GenericPacketizer,
  LatmDepacketizer, FrameDepacketizer, Mp2tDepacketizer, createDepacketizer, RtpTimeline, ReorderBuffer, buildExtensionElements, serializeRtp,
  type RtpPacket,
} from '../src/format/rtp/index.ts';
import { parseRtcp, buildRtcp } from '../src/format/rtcp/index.ts';
import { DtsExtractor } from '../src/codec/dts.ts';
import { parseAvcC } from '../src/codec/h264.ts';
import { parseHvcC } from '../src/codec/h265.ts';
import { FormatError, fromHex, textDecoder, textEncoder } from '../src/format/bytes.ts';
import { TsMuxer } from '../src/format/ts.ts';

const CASES = Number(process.env.M7S_FUZZ_CASES ?? 20000);
const enc = (s: string) => textEncoder.encode(s);


test('fuzz: RTSP message parser and header parsers', () => {
  const req = serializeRequest({ method: 'SETUP', uri: 'rtsp://127.0.0.1/live/a/trackID=0', headers: new RtspHeaders({ CSeq: 3, Transport: 'RTP/AVP/TCP;unicast;interleaved=0-1', Session: 'abc;timeout=60' }) });
  const ann = serializeRequest({ method: 'ANNOUNCE', uri: 'rtsp://127.0.0.1/live/a', headers: new RtspHeaders({ CSeq: 2, 'Content-Type': 'application/sdp' }), body: 'v=0\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n' });
  const res = serializeResponse({ status: 200, headers: new RtspHeaders({ CSeq: 4, 'RTP-Info': 'url=rtsp://h/a/trackID=0;seq=1;rtptime=2', Range: 'npt=0.000-' }) });
  const frames = new Uint8Array([0x24, 0, 0, 4, 0x80, 0x60, 0, 1, 0x24, 1, 0, 0]);
  const seeds = [req, ann, res, new Uint8Array([...frames, ...req, ...frames, ...ann])];
  fuzzTarget('rtsp-parser', seeds, (b) => {
    // Whole, then split in two at a point taken from the input (the state machine across pushes).
    new RtspParser().push(b);
    const p = new RtspParser();
    const cut = b.length ? b[0]! % (b.length + 1) : 0;
    p.push(b.subarray(0, cut));
    p.push(b.subarray(cut));
  });
  const challenge = digestChallenge('m7s', 'abcdef', { qop: true, opaque: 'o' });
  const [c] = parseChallenges([challenge]);
  const authz = authorizationFor(c!, { username: 'u', password: 'p' }, 'DESCRIBE', 'rtsp://h/a');
  const headerSeeds = [
    'RTP/AVP/TCP;unicast;interleaved=0-1, RTP/AVP;unicast;client_port=5000-5001;mode=record', 'abc;timeout=60',
    'url=rtsp://h/a/trackID=0;seq=1;rtptime=2,url=rtsp://h/a/trackID=1;seq=3', 'npt=1:02:03.5-3723.75', challenge, authz, 'Basic dTpw',
  ].map(enc);
  fuzzTarget('rtsp-headers', headerSeeds, (b) => {
    const s = textDecoder.decode(b);
    for (const f of [parseTransport, parseSession, parseRtpInfo, parseNptRange, (x: string) => parseChallenges([x])]) {
      try { f(s); } catch (e) { if (!(e instanceof FormatError)) throw e; }
    }
    const a = parseAuthorization(s);
    checkAuthorization(a, { method: 'DESCRIBE', realm: 'm7s', password: 'p' });
  });
});

test('fuzz: SDP (parse, codec mapping, depacketizer setup)', async () => {
  const dir = tempDir();
  try {
    const media = await h264AacFrames(dir.dir, 1);
    const h265 = await h265Frames(dir.dir, 1);
    const text = sdpForTracks([media.video, { config: h265.video.config }, media.audio!, { config: { codec: 'opus', channels: 2 } }, { config: { codec: 'pcma' } }].map((t) => ({ config: t.config })));
    const latm = 'v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=audio 0 RTP/AVP 96\r\na=rtpmap:96 MP4A-LATM/44100/1\r\na=fmtp:96 profile-level-id=1;cpresent=0;config=40002a103fc0\r\nm=video 0 RTP/AVP 33\r\n';
    fuzzTarget('sdp', [enc(text), enc(latm)], (b) => {
      for (const t of sdpTracks(parseSdp(b))) {
        try { createDepacketizer(t); } catch (e) { if (!(e instanceof FormatError)) throw e; }
      }
    });
  } finally {
    dir.remove();
  }
});

test('fuzz: RTP packets and RTCP compound packets', () => {
  const rtp = [
    fromHex('b1e0abcd 01020304 deadbeef 11223344 bede0001 12aabbcc 010203 0002'),
    serializeRtp({ marker: false, payloadType: 96, sequenceNumber: 1, timestamp: 2, ssrc: 3, extension: buildExtensionElements([{ id: 20, data: new Uint8Array(30) }]), payload: new Uint8Array(50) }),
  ];
  fuzzTarget('rtp', rtp, (b) => {
    const p = parseRtp(b);
    if (p.extension) parseExtensionElements(p.extension);
  });
  const rtcp = [
    fromHex('80c80006 11111111 e3a1b2c3 80000000 00010000 00000064 00001388 81ca0003 11111111 01036d37 73000000'),
    buildRtcp([
      { type: 'rr', ssrc: 5, reports: [{ ssrc: 7, fractionLost: 12, packetsLost: -3, highestSeq: 70000, jitter: 33, lsr: 1, dlsr: 2 }] },
      { type: 'bye', ssrcs: [1, 2], reason: 'teardown' }, { type: 'pli', senderSsrc: 1, mediaSsrc: 2 },
      { type: 'fir', senderSsrc: 1, entries: [{ ssrc: 2, seq: 9 }] }, { type: 'nack', senderSsrc: 1, mediaSsrc: 2, lost: [100, 101, 105] },
    ]),
  ];
  fuzzTarget('rtcp', rtcp, (b) => parseRtcp(b));
});

/** Fuzz a depacketizer with one long-lived instance: mutated packets in a row, state carried across. */
function fuzzDepacketizer(name: string, packets: Uint8Array[], make: () => { push(p: RtpPacket): unknown[] }, after?: (frames: any[]) => void): void {
  let d = make();
  let n = 0, out = 0;
  fuzzTarget(`depacketize-${name}`, packets.slice(0, 400), (b) => {
    if (++n % 5000 === 0) d = make(); // a fresh one now and then (constructor paths too)
    const frames = d.push(parseRtp(b));
    out += frames.length;
    after?.(frames);
  });
  // The mutated stream still carries enough intact packets for frames to come out (the fuzzer reaches
  // the reassembly paths, not only the header checks).
  console.log(`fuzz ${name}: ${out} frames out`);
  assert.ok(out > CASES / 1000, `${name}: only ${out} frames from ${CASES} packets`);
}

test('fuzz: every depacketizer (H.264, H.265, AAC mpeg4-generic, MP4A-LATM, Opus/G.711, MP2T), with the timeline and DTS extractor behind', async () => {
  const dir = tempDir();
  try {
    const media = await h264AacFrames(dir.dir, 1);
    const h265 = await h265Frames(dir.dir, 1);
    const pk = (cfg: any, frames: { data: Uint8Array; dts: number; cts: number; key: boolean }[], mtu: number) => {
      const p = createPacketizer(cfg, new RtpWriter(96, 1), { mtu });
      return frames.slice(0, 12).flatMap((f) => p.packetize(f.data, f.dts + f.cts, f.key));
    };
    // H.264 with the DTS extractor and the timeline consuming its output.
    const avc = parseAvcC(media.video.config.data!);
    const tl = new RtpTimeline();
    const vt = tl.addTrack(90000);
    const ex = new DtsExtractor('h264');
    ex.setParameterSets(avc.sps[0]!);
    fuzzDepacketizer('h264', [...pk(media.video.config, media.video.frames, 300), ...pk(media.video.config, media.video.frames, 1400)], () => new NalDepacketizer('h264', { sps: avc.sps, pps: avc.pps }), (fs) => {
      for (const f of fs) ex.extract(f.data, tl.time(vt, f.timestamp));
    });
    const hv = parseHvcC(h265.video.config.data!);
    const ex5 = new DtsExtractor('h265');
    ex5.setParameterSets(hv.sps[0]!, hv.pps[0]!);
    fuzzDepacketizer('h265', [...pk(h265.video.config, h265.video.frames, 300), ...pk(h265.video.config, h265.video.frames, 1400)], () => new NalDepacketizer('h265', { vps: hv.vps, sps: hv.sps, pps: hv.pps }), (fs) => {
      for (const f of fs) ex5.extract(f.data, f.timestamp);
    });
    const asc = media.audio!.config.data!;
    const aacPk = new Mpeg4GenericPacketizer(new RtpWriter(97, 2), { mtu: 120 });
    const aacPackets = media.audio!.frames.slice(0, 20).flatMap((f) => aacPk.packetize(f.data, f.dts));
    fuzzDepacketizer('aac', aacPackets, () => new Mpeg4GenericDepacketizer({ config: asc }));
    // LATM: StreamMuxConfig for AAC-LC 44.1 kHz mono; one AudioMuxElement per packet.
    const smc = fromHex('40002a103fc0');
    const latm = media.audio!.frames.slice(0, 20).map((f, i) => {
      const len: number[] = [];
      let n = f.data.length;
      while (n >= 255) { len.push(255); n -= 255; }
      len.push(n);
      return serializeRtp({ marker: true, payloadType: 96, sequenceNumber: i, timestamp: i * 1024, ssrc: 4, payload: [Uint8Array.from(len), f.data] });
    });
    fuzzDepacketizer('latm', latm, () => new LatmDepacketizer({ config: smc }));
    const opus = Array.from({ length: 10 }, (_, i) => serializeRtp({ marker: false, payloadType: 111, sequenceNumber: i, timestamp: i * 960, ssrc: 5, payload: Uint8Array.of(0xfc, i, 1, 2, 3) }));
    fuzzDepacketizer('opus-g711', opus, () => new FrameDepacketizer('opus'));
    // MP2T: TS packets of the same media in RTP payloads of 7 x 188 bytes.
    const mux = new TsMuxer({ video: { config: media.video.config, clockRate: 90000 }, audio: { config: media.audio!.config, clockRate: media.audio!.clockRate } });
    const tsParts = [mux.tables()];
    for (const f of media.video.frames.slice(0, 8)) tsParts.push(mux.video(f.dts, f.cts, f.key, f.data));
    for (const f of media.audio!.frames.slice(0, 8)) tsParts.push(mux.audio(f.dts, f.data));
    const tsAll = new Uint8Array(tsParts.reduce((n, x) => n + x.length, 0));
    let o = 0;
    for (const x of tsParts) { tsAll.set(x, o); o += x.length; }
    const payloads: Uint8Array[] = [];
    for (let p = 0; p < tsAll.length; p += 188 * 7) payloads.push(tsAll.subarray(p, Math.min(tsAll.length, p + 188 * 7)));
    const mp2t = payloads.map((p, i) => serializeRtp({ marker: false, payloadType: 33, sequenceNumber: i, timestamp: i * 3000, ssrc: 6, payload: p }));
    fuzzDepacketizer('mp2t', mp2t, () => new Mp2tDepacketizer());
  } finally {
    dir.remove();
  }
});

test('fuzz: reorder buffer with random sequence numbers stays bounded and loses nothing it was given in order', () => {
  const rb = new ReorderBuffer<number>(64);
  let delivered = 0;
  fuzzTarget('reorder', [Uint8Array.of(0, 1), Uint8Array.of(255, 255)], (b) => {
    const seq = b.length >= 2 ? (b[0]! << 8) | b[1]! : b.length ? b[0]! : 0;
    delivered += rb.push(seq, seq).length;
    assert.ok(rb.pending <= 64);
  });
  assert.ok(delivered > 0);
  assert.equal(rb.stats.received, rb.stats.delivered + rb.stats.duplicate + rb.stats.late + rb.pending);
});
