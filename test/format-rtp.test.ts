// RTP packets, the reorder buffer, every (de)packetizer against real ffmpeg output (`-f rtp` captured on
// UDP sockets) and in round trips, the timeline stage and the PTS->DTS extractor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  parseRtp, serializeRtp, parseExtensionElements, buildExtensionElements, seqDiff, RtpWriter, ReorderBuffer,
  NalDepacketizer, NalPacketizer, Mpeg4GenericDepacketizer, Mpeg4GenericPacketizer, LatmDepacketizer, parseStreamMuxConfig,
  FrameDepacketizer, G711Packetizer, Mp2tDepacketizer, createDepacketizer, createPacketizer, RtpTimeline, RtpTimestampUnwrapper, RtpFrameClock,
  type RtpFrame, type RtpPacket,
} from '../src/format/rtp/index.ts';
import { parseRtcp } from '../src/format/rtcp/index.ts';
import { parseSdp } from '../src/format/sdp/index.ts';
import { sdpTracks } from '../src/format/sdp/codec.ts';
import { bytesEqual, fromHex, toHex } from '../src/format/bytes.ts';
import { parseAvcC } from '../src/codec/h264.ts';
import { FlvDemuxer, parseVideoTagBody } from '../src/format/flv.ts';
import { parseHvcC } from '../src/codec/h265.ts';
import { parseAsc } from '../src/codec/aac.ts';
import { opusPacketSamples } from '../src/codec/opus.ts';
import { DtsExtractor } from '../src/codec/dts.ts';
import { h264AacFrames, h265Frames, tempDir } from './helpers/frames.ts';
import { captureRtp } from './helpers/rtp.ts';
import { ffmpegPath, ffprobePath, run } from './helpers/media.ts';
import { nodeOnly } from './helpers/runtime-once.ts';

/** ffmpeg's RTP output and x264/x265's frame order, read by src/format and src/codec: no runtime in it. */
const ONCE = nodeOnly('ffmpeg output read by src/format/rtp and src/codec; RTP over each runtime\'s UDP runs in the rtsp tests');

/** Run `fn` with a temporary directory that is removed afterwards. */
async function withDir(fn: (dir: ReturnType<typeof tempDir>) => Promise<void>): Promise<void> {
  const dir = tempDir();
  try {
    await fn(dir);
  } finally {
    dir.remove();
  }
}

// ---------------------------------------------------------------------------------------------------
// Packets

test('RTP: parse known bytes (CSRC, extension, padding) and serialize them back', () => {
  // V=2 P=1 X=1 CC=1, M=1 PT=96, seq 0xABCD, ts 0x01020304, ssrc 0xDEADBEEF, csrc 0x11223344,
  // one-byte extension (0xBEDE, 1 word: id 1 len 2 "aabbcc"), payload 01 02 03, 2 padding bytes.
  const b = fromHex('b1e0abcd 01020304 deadbeef 11223344 bede0001 12aabbcc 010203 0002');
  const p = parseRtp(b);
  assert.equal(p.marker, true);
  assert.equal(p.payloadType, 96);
  assert.equal(p.sequenceNumber, 0xabcd);
  assert.equal(p.timestamp, 0x01020304);
  assert.equal(p.ssrc, 0xdeadbeef);
  assert.deepEqual(p.csrc, [0x11223344]);
  assert.equal(p.extension!.profile, 0xbede);
  assert.deepEqual(parseExtensionElements(p.extension!).map((e) => [e.id, toHex(e.data)]), [[1, 'aabbcc']]);
  assert.equal(toHex(p.payload), '010203');
  assert.equal(p.padding, 2);
  assert.equal(toHex(serializeRtp(p)), toHex(b));
  // Extension elements round trip, one-byte and two-byte forms.
  for (const els of [[{ id: 3, data: fromHex('0102') }], [{ id: 20, data: new Uint8Array(40) }]]) {
    const ext = buildExtensionElements(els);
    assert.deepEqual(parseExtensionElements(ext).map((e) => [e.id, toHex(e.data)]), els.map((e) => [e.id, toHex(e.data)]));
  }
  assert.throws(() => parseRtp(fromHex('80e0abcd0102030405060708')).payload && parseRtp(fromHex('40e0abcd01020304050607')), /shorter|version/);
  assert.throws(() => parseRtp(fromHex('a0e0abcd 01020304 05060708 00')), /padding/);
  assert.equal(seqDiff(65535, 0), 1);
  assert.equal(seqDiff(0, 65535), -1);
});

// ---------------------------------------------------------------------------------------------------
// Reorder buffer

function feed(rb: ReorderBuffer<number>, seqs: number[]): number[] {
  const out: number[] = [];
  for (const s of seqs) out.push(...rb.push(s, s));
  return out;
}

test('reorder buffer: reorders within the window, counts lost, late, duplicate and reordered, wraps at 65535', () => {
  let rb = new ReorderBuffer<number>(8);
  assert.deepEqual(feed(rb, [10, 12, 11, 13]), [10, 11, 12, 13]);
  assert.equal(rb.stats.reordered, 1);
  assert.equal(rb.stats.lost, 0);
  // Duplicates: of a delivered packet and of one waiting in the buffer.
  assert.deepEqual(feed(rb, [13, 15, 15, 14]), [14, 15]);
  assert.equal(rb.stats.duplicate, 2);
  // Loss: 16 never comes; the window (8 numbers from 16) moves past it when 24 arrives.
  assert.deepEqual(feed(rb, [17, 18, 19, 20, 21, 22, 23]), []);
  assert.equal(rb.pending, 7);
  assert.deepEqual(feed(rb, [24]), [17, 18, 19, 20, 21, 22, 23, 24]);
  assert.equal(rb.stats.lost, 1);
  // Late: 16 arrives after it was given up on.
  assert.deepEqual(feed(rb, [16]), []);
  assert.equal(rb.stats.late, 1);
  // Wrap-around.
  rb = new ReorderBuffer<number>(64);
  assert.deepEqual(feed(rb, [65533, 65535, 65534, 1, 0, 2]), [65533, 65534, 65535, 0, 1, 2]);
  assert.equal(rb.stats.reordered, 2);
  // A jump too large to be loss (a restarted sender) starts over without counting loss.
  assert.deepEqual(feed(rb, [30000, 30001]), [30000, 30001]);
  assert.equal(rb.stats.resets, 1);
  assert.equal(rb.stats.lost, 0);
  // flush() hands out what waits and counts the gaps.
  assert.deepEqual(feed(rb, [30003, 30005]), []);
  assert.deepEqual(rb.flush(), [30003, 30005]);
  assert.equal(rb.stats.lost, 2);
});

test('reorder buffer: a shuffled stream with 2% loss comes out in order, losses counted exactly', () => {
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const sent: number[] = [];
  for (let i = 0; i < 20000; i++) if (rnd() >= 0.02) sent.push((60000 + i) & 0xffff);
  const dropped = 20000 - sent.length;
  // Local shuffles of up to 10 positions (within a 64-packet window).
  for (let i = 0; i < sent.length - 10; i += 1) if (rnd() < 0.05) { const j = i + 1 + Math.floor(rnd() * 9); [sent[i], sent[j]] = [sent[j]!, sent[i]!]; }
  const rb = new ReorderBuffer<number>(64);
  const out = [...feed(rb, sent), ...rb.flush()];
  assert.equal(out.length, sent.length);
  for (let i = 1; i < out.length; i++) assert.ok(seqDiff(out[i - 1]!, out[i]!) >= 1, `order at ${i}`);
  // The first packet may itself have been shuffled later, so allow the few before it as late.
  assert.ok(Math.abs(rb.stats.lost - dropped) <= 10, `lost ${rb.stats.lost} vs dropped ${dropped}`);
  assert.equal(rb.stats.duplicate, 0);
  assert.ok(rb.stats.reordered > 100);
});

// ---------------------------------------------------------------------------------------------------
// (De)packetizers: round trips

function depacketize(d: { push(p: RtpPacket): RtpFrame[] }, packets: Uint8Array[]): RtpFrame[] {
  const out: RtpFrame[] = [];
  for (const p of packets) out.push(...d.push(parseRtp(p)));
  return out;
}

test('H.264 packetize -> depacketize round trip (single NAL, STAP-A, FU-A at a small MTU), parameter sets from the config', () => withDir(async (dir) => {
    const media = await h264AacFrames(dir.dir, 2);
    const v = media.video;
    const avc = parseAvcC(v.config.data!);
    for (const mtu of [300, 1400]) {
      const w = new RtpWriter(96, 0x1234, 65500); // sequence numbers wrap during the run
      const pk = createPacketizer(v.config, w, { mtu });
      const packets: Uint8Array[] = [];
      for (const f of v.frames) packets.push(...pk.packetize(f.data, f.dts + f.cts, f.key));
      for (const p of packets) assert.ok(p.length <= mtu);
      const types = new Set(packets.map((p) => parseRtp(p).payload[0]! & 0x1f));
      assert.ok(types.has(28), 'FU-A used');
      assert.ok(types.has(24), 'STAP-A used (SPS+PPS)');
      const frames = depacketize(new NalDepacketizer('h264'), packets);
      assert.equal(frames.length, v.frames.length);
      for (let i = 0; i < frames.length; i++) {
        assert.ok(bytesEqual(frames[i]!.data, v.frames[i]!.data), `frame ${i} bytes (mtu ${mtu})`);
        assert.equal(frames[i]!.key, v.frames[i]!.key);
        assert.equal(frames[i]!.timestamp, v.frames[i]!.dts + v.frames[i]!.cts);
      }
      // In-band parameter sets became the config of the first frame.
      const cfg = parseAvcC(frames[0]!.config!.data!);
      assert.ok(bytesEqual(cfg.sps[0]!, avc.sps[0]!) && bytesEqual(cfg.pps[0]!, avc.pps[0]!));
      assert.equal(frames[0]!.config!.width, 320);
    }
}));

test('H.264 depacketizer: loss inside a FU-A drops that NAL unit and counts it; the next frames are whole', () => withDir(async (dir) => {
    const v = (await h264AacFrames(dir.dir, 1)).video;
    const w = new RtpWriter(96, 1);
    const pk = createPacketizer(v.config, w, { mtu: 300 });
    const perFrame = v.frames.map((f) => pk.packetize(f.data, f.dts + f.cts, f.key));
    // Lose the second packet of frame 3's fragments.
    const lossy = perFrame.flatMap((ps, i) => (i === 3 ? ps.filter((_, k) => k !== 1) : ps));
    const d = new NalDepacketizer('h264');
    const frames = depacketize(d, lossy);
    assert.equal(d.stats.lostPackets, 1);
    assert.ok(d.stats.droppedFrames >= 1);
    const byTs = new Map(frames.map((f) => [f.timestamp, f]));
    for (let i = 0; i < v.frames.length; i++) {
      const f = byTs.get(v.frames[i]!.dts + v.frames[i]!.cts);
      if (i === 3) { assert.ok(!f || !bytesEqual(f.data, v.frames[i]!.data)); continue; }
      assert.ok(f && bytesEqual(f.data, v.frames[i]!.data), `frame ${i}`);
    }
}));

test('UDP path: 5% reordering and 2% loss through ReorderBuffer + depacketizer: untouched frames arrive whole, losses counted', () => withDir(async (dir) => {
    const v = (await h264AacFrames(dir.dir, 3)).video;
    const pk = createPacketizer(v.config, new RtpWriter(96, 1, 65000), { mtu: 400 });
    const perFrame = v.frames.map((f) => pk.packetize(f.data, f.dts + f.cts, f.key));
    let seed = 11;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const damaged = new Set<number>();
    const sent: Uint8Array[] = [];
    perFrame.forEach((ps, i) => ps.forEach((p) => { if (rnd() < 0.02) damaged.add(i); else sent.push(p); }));
    const dropped = perFrame.flat().length - sent.length;
    for (let i = 0; i < sent.length - 12; i++) if (rnd() < 0.05) { const j = i + 1 + Math.floor(rnd() * 10); [sent[i], sent[j]] = [sent[j]!, sent[i]!]; }
    const rb = new ReorderBuffer<RtpPacket>(64);
    const d = new NalDepacketizer('h264');
    const frames: RtpFrame[] = [];
    for (const b of sent) { const p = parseRtp(b); for (const q of rb.push(p.sequenceNumber, p)) frames.push(...d.push(q)); }
    for (const q of rb.flush()) frames.push(...d.push(q));
    assert.equal(rb.stats.lost, dropped);
    assert.equal(d.stats.lostPackets, dropped);
    assert.ok(rb.stats.reordered > 10);
    const byTs = new Map(frames.map((f) => [f.timestamp, f]));
    let whole = 0;
    v.frames.forEach((f, i) => {
      if (damaged.has(i)) return;
      const got = byTs.get(f.dts + f.cts);
      assert.ok(got && bytesEqual(got.data, f.data), `undamaged frame ${i}`);
      whole++;
    });
    assert.ok(whole >= v.frames.length * 0.5 && damaged.size > 0, `${whole} whole, ${damaged.size} damaged`);
}));

test('H.265 packetize -> depacketize round trip (single, AP, FU)', () => withDir(async (dir) => {
    const v = (await h265Frames(dir.dir, 2)).video;
    const w = new RtpWriter(96, 5);
    const pk = createPacketizer(v.config, w, { mtu: 400 });
    const packets = v.frames.flatMap((f) => pk.packetize(f.data, f.dts, f.key));
    const types = new Set(packets.map((p) => (parseRtp(p).payload[0]! >> 1) & 0x3f));
    assert.ok(types.has(49) && types.has(48), `FU and AP used: ${[...types]}`);
    const frames = depacketize(new NalDepacketizer('h265'), packets);
    assert.equal(frames.length, v.frames.length);
    frames.forEach((f, i) => assert.ok(bytesEqual(f.data, v.frames[i]!.data), `frame ${i}`));
    const h = parseHvcC(frames[0]!.config!.data!);
    assert.equal(h.vps.length + h.sps.length + h.pps.length, 3);
    assert.equal(frames[0]!.config!.width, 320);
}));

test('AAC mpeg4-generic packetize -> depacketize round trip, fragmented AUs too', () => withDir(async (dir) => {
    const a = (await h264AacFrames(dir.dir, 2)).audio!;
    for (const mtu of [1400, 100]) {
      const pk = new Mpeg4GenericPacketizer(new RtpWriter(97, 9), { mtu });
      const packets = a.frames.flatMap((f) => pk.packetize(f.data, f.dts));
      const frames = depacketize(new Mpeg4GenericDepacketizer({ config: a.config.data! }), packets);
      assert.equal(frames.length, a.frames.length);
      frames.forEach((f, i) => {
        assert.ok(bytesEqual(f.data, a.frames[i]!.data), `frame ${i}`);
        assert.equal(f.timestamp, a.frames[i]!.dts);
      });
      assert.equal(frames[0]!.config!.sampleRate, 44100);
    }
}));

test('G.711 packetizer splits at the MTU with per-sample timestamps; the depacketizer passes packets through', () => {
  const frame = new Uint8Array(1000).map((_, i) => i & 0xff);
  const packets = new G711Packetizer(new RtpWriter(8, 3), { mtu: 412 }).packetize(frame, 8000);
  assert.deepEqual(packets.map((p) => [parseRtp(p).timestamp, parseRtp(p).payload.length]), [[8000, 400], [8400, 400], [8800, 200]]);
  const frames = depacketize(new FrameDepacketizer('pcma'), packets);
  assert.ok(bytesEqual(frames.map((f) => f.data).reduce((a, b) => new Uint8Array([...a, ...b])), frame));
});

// ---------------------------------------------------------------------------------------------------
// Real ffmpeg RTP output

test('ffmpeg -f rtp H.264 + AAC (mpeg4-generic): SDP, depacketized frames equal the source frames, RTCP SRs parse', ONCE, () => withDir(async (dir) => {
    const media = await h264AacFrames(dir.dir, 3);
    const cap = await captureRtp(['-re', '-i', dir.file('src.flv')], [['-map', '0:v', '-c', 'copy'], ['-map', '0:a', '-c', 'copy']]);
    const tracks = sdpTracks(parseSdp(cap.sdp));
    assert.deepEqual(tracks.map((t) => t.codec), ['h264', 'aac']);
    assert.ok(tracks[0]!.config && bytesEqual(parseAvcC(tracks[0]!.config.data!).sps[0]!, parseAvcC(media.video.config.data!).sps[0]!), 'SPS from sprop-parameter-sets');
    const v = depacketize(createDepacketizer(tracks[0]!), cap.rtp[0]!);
    assert.equal(v.length, media.video.frames.length, 'video frame count');
    v.forEach((f, i) => assert.ok(bytesEqual(f.data, media.video.frames[i]!.data), `video frame ${i}`));
    // RTP timestamps follow the source pts (ffmpeg adds a random base).
    const base = v[0]!.timestamp - (media.video.frames[0]!.dts + media.video.frames[0]!.cts);
    v.forEach((f, i) => assert.equal((f.timestamp - base) >>> 0, media.video.frames[i]!.dts + media.video.frames[i]!.cts));
    const a = depacketize(createDepacketizer(tracks[1]!), cap.rtp[1]!);
    // ffmpeg aggregates several AUs per packet and never sends the last, partly filled packet.
    assert.ok(a.length <= media.audio!.frames.length && a.length >= media.audio!.frames.length - 8, `audio frame count ${a.length}`);
    a.forEach((f, i) => assert.ok(bytesEqual(f.data, media.audio!.frames[i]!.data), `audio frame ${i}`));
    assert.ok(a.some((f, i) => i > 0 && ((f.timestamp - a[i - 1]!.timestamp) >>> 0) === 1024));
    const srs = cap.rtcp.flat().flatMap((p) => parseRtcp(p)).filter((r) => r.type === 'sr');
    assert.ok(srs.length >= 2, `${srs.length} SRs`);
    // The timeline stage: dts from the B-frame stream's pts equals the source dts up to a constant, cts >= 0.
    const clock = new RtpFrameClock(new RtpTimeline(), 'h264', 90000);
    const stamped = v.map((f) => clock.stamp(f));
    const src = media.video.frames;
    const off = stamped[0]!.dts + stamped[0]!.cts - (src[0]!.dts + src[0]!.cts);
    stamped.forEach((s, i) => {
      assert.ok(s.cts >= 0 && (i === 0 || s.dts > stamped[i - 1]!.dts), `frame ${i}`);
      assert.equal(s.dts + s.cts - off, src[i]!.dts + src[i]!.cts, `pts ${i}`);
    });
    const dOff = stamped[10]!.dts - src[10]!.dts;
    assert.ok(stamped.filter((s, i) => s.dts - src[i]!.dts === dOff).length >= stamped.length - 3, 'dts follow the source dts');
}));

test('ffmpeg -f rtp H.265 (in-band parameter sets) depacketizes to the source access units', ONCE, () => withDir(async (dir) => {
    const media = await h265Frames(dir.dir, 2);
    const cap = await captureRtp(['-re', '-f', 'hevc', '-i', dir.file('src.hevc')], [['-c', 'copy']]);
    const [t] = sdpTracks(parseSdp(cap.sdp));
    assert.equal(t!.codec, 'h265');
    const frames = depacketize(createDepacketizer(t!), cap.rtp[0]!);
    assert.equal(frames.length, media.video.frames.length);
    frames.forEach((f, i) => assert.ok(bytesEqual(f.data, media.video.frames[i]!.data), `frame ${i}`));
    assert.ok(frames[0]!.key && frames[0]!.config?.codec === 'h265');
}));

test('ffmpeg -f rtp MP4A-LATM (-rtpflags latm) depacketizes to the same AAC frames as mpeg4-generic', ONCE, () => withDir(async (dir) => {
    const media = await h264AacFrames(dir.dir, 2);
    const cap = await captureRtp(['-re', '-i', dir.file('src.flv')], [['-map', '0:a', '-c', 'copy', '-rtpflags', 'latm']]);
    const [t] = sdpTracks(parseSdp(cap.sdp));
    assert.equal(t!.aacMode, 'latm');
    const want = parseAsc(media.audio!.config.data!), got = parseAsc(t!.config!.data!);
    assert.deepEqual([got.objectType, got.sampleRate, got.channelConfig], [want.objectType, want.sampleRate, want.channelConfig], `ASC ${toHex(t!.config!.data!)} from StreamMuxConfig`);
    const frames = depacketize(createDepacketizer(t!), cap.rtp[0]!);
    assert.ok(frames.length >= media.audio!.frames.length - 8, `${frames.length} frames`);
    frames.forEach((f, i) => assert.ok(bytesEqual(f.data, media.audio!.frames[i]!.data), `frame ${i}`));
}));

test('ffmpeg -f rtp PCMA / PCMU / Opus: payload bytes equal ffmpeg\'s raw encoding; Opus packets are whole', ONCE, () => withDir(async (dir) => {
    const src = ['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=8000:duration=1'];
    for (const [codec, raw] of [['pcm_alaw', 'alaw'], ['pcm_mulaw', 'mulaw']] as const) {
      const r = await run(ffmpegPath, ['-v', 'error', '-y', ...src, '-c:a', codec, '-f', raw, dir.file('ref')]);
      assert.equal(r.code, 0);
      const ref = new Uint8Array(readFileSync(dir.file('ref')));
      const cap = await captureRtp(src, [['-c:a', codec]]);
      const [t] = sdpTracks(parseSdp(cap.sdp));
      assert.equal(t!.codec, codec === 'pcm_alaw' ? 'pcma' : 'pcmu');
      assert.equal(t!.payloadType, codec === 'pcm_alaw' ? 8 : 0);
      const frames = depacketize(createDepacketizer(t!), cap.rtp[0]!);
      const got = new Uint8Array(frames.reduce((n, f) => n + f.data.length, 0));
      let o = 0;
      for (const f of frames) { got.set(f.data, o); o += f.data.length; }
      assert.ok(bytesEqual(got, ref), `${codec}: ${got.length} vs ${ref.length} bytes`);
      assert.equal(frames[0]!.config!.sampleRate, 8000);
    }
    const cap = await captureRtp(['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000:duration=1'], [['-c:a', 'libopus', '-b:a', '32k']]);
    const [t] = sdpTracks(parseSdp(cap.sdp));
    assert.equal(t!.codec, 'opus');
    assert.equal(t!.clockRate, 48000);
    const frames = depacketize(createDepacketizer(t!), cap.rtp[0]!);
    assert.ok(frames.length >= 49 && frames.length <= 51, `${frames.length} Opus packets for 1 s`);
    for (let i = 1; i < frames.length; i++) assert.equal((frames[i]!.timestamp - frames[i - 1]!.timestamp) >>> 0, opusPacketSamples(frames[i - 1]!.data));
}));

test('ffmpeg -f rtp_mpegts (MP2T): the TS demuxer gets every access unit', ONCE, () => withDir(async (dir) => {
    const media = await h264AacFrames(dir.dir, 2);
    const socksCap = await captureMp2t(dir.file('src.flv'));
    const d = new Mp2tDepacketizer();
    const units = socksCap.flatMap((p) => d.push(parseRtp(p)));
    const video = units.filter((u) => u.codec === 'h264');
    assert.ok(video.length >= media.video.frames.length - 1, `${video.length} video units of ${media.video.frames.length}`);
    assert.ok(units.some((u) => u.codec === 'aac'));
}));

async function captureMp2t(file: string): Promise<Uint8Array[]> {
  const dgram = await import('node:dgram');
  const sock = dgram.createSocket('udp4');
  const got: Uint8Array[] = [];
  sock.on('message', (m) => got.push(new Uint8Array(m)));
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  const rtcp = dgram.createSocket('udp4');
  await new Promise<void>((r) => rtcp.bind(0, '127.0.0.1', () => r()));
  try {
    const r = await run(ffmpegPath, ['-v', 'error', '-re', '-i', file, '-c', 'copy', '-f', 'rtp_mpegts', `rtp://127.0.0.1:${sock.address().port}?rtcpport=${rtcp.address().port}`]);
    assert.equal(r.code, 0, r.stderr);
    await new Promise((res) => setTimeout(res, 200));
    return got;
  } finally {
    sock.close();
    rtcp.close();
  }
}

// ---------------------------------------------------------------------------------------------------
// Timeline and DTS

test('timeline: 32-bit wrap, random bases, first packets aligned, then SR NTP alignment', () => {
  const u = new RtpTimestampUnwrapper();
  assert.equal(u.unwrap(0xfffffff0), 0xfffffff0);
  assert.equal(u.unwrap(0x10), 0x100000010);
  assert.equal(u.unwrap(0xffffffff), 0xffffffff);
  const tl = new RtpTimeline();
  const v = tl.addTrack(90000), a = tl.addTrack(48000);
  // Random bases; video wraps past 2^32 after a few frames.
  const vb = 0xffffffff - 3000, ab = 123456789;
  assert.equal(tl.time(v, vb), 0);
  assert.equal(tl.time(a, ab), 0);
  assert.equal(tl.time(v, (vb + 3600) >>> 0), 3600);
  assert.equal(tl.time(v, (vb + 7200) >>> 0), 7200); // past the wrap
  // SRs: the same NTP instant is video rtp vb+9000 and audio ab+4800+24000 (audio started 0.5 s earlier
  // in wall time than the first-packet alignment assumed... i.e. audio's first packet was 0.5 s before video's).
  const ntp = 3900000000;
  tl.senderReport(v, ntp, 0, (vb + 9000) >>> 0);
  assert.equal(tl.time(v, (vb + 9000) >>> 0), 9000); // the first SR does not move its own track
  tl.senderReport(a, ntp, 0, ab + 4800 + 24000);
  // Audio at the SR instant must now read 0.1 s (video 9000/90000) = 4800 in its clock.
  assert.equal(tl.time(a, ab + 4800 + 24000), 4800);
  assert.equal(tl.time(a, ab + 48000 + 24000), 48000);
  // A later small SR disagreement is ignored; a large one (re-based sender) re-aligns.
  tl.senderReport(a, ntp + 1, 0, ab + 4800 + 24000 + 48000 + 10);
  assert.equal(tl.resyncs, 0);
  tl.senderReport(a, ntp + 2, 0, ab + 4800 + 24000 + 2 * 48000 + 48000);
  assert.equal(tl.resyncs, 1);
});

test('DTS extractor: libx264 -bf 3 (b-pyramid) pts -> dts rises strictly, pts >= dts, equals ffmpeg\'s dts up to a constant', ONCE, () => withDir(async (dir) => {
    for (const [bf, pyramid] of [[3, 'normal'], [3, 'none'], [1, 'none']] as const) {
      const file = dir.file(`bf${bf}.flv`);
      const r = await run(ffmpegPath, ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25', '-t', '8', '-c:v', 'libx264',
        '-preset', 'fast', '-bf', String(bf), '-g', '50', '-pix_fmt', 'yuv420p', '-x264-params', `b-pyramid=${pyramid}`, '-f', 'flv', file]);
      assert.equal(r.code, 0, r.stderr);
      // ffmpeg's own dts and pts (FLV: ms) for every frame, in decode order.
      const frames: { dts: number; pts: number; data: Uint8Array }[] = [];
      let sps: Uint8Array | undefined;
      const dmx = new FlvDemuxer((tag) => {
        if (tag.type !== 9) return;
        const v = parseVideoTagBody(tag.data);
        if (v.packet === 'seqhdr') sps = parseAvcC(v.data).sps[0]!.slice();
        else if (v.packet === 'nalu') frames.push({ dts: tag.timestamp * 90, pts: (tag.timestamp + v.cts) * 90, data: v.data.slice() });
      });
      dmx.push(new Uint8Array(readFileSync(file)));
      assert.equal(frames.length, 200);
      assert.ok(frames.some((f) => f.pts !== f.dts), 'the stream has B-frames');
      // These are ffprobe's dts and pts too (FLV time base 1/1000).
      const probe = JSON.parse((await run(ffprobePath, ['-v', 'error', '-print_format', 'json', '-show_packets', '-select_streams', 'v', file])).stdout);
      assert.deepEqual(probe.packets.map((p: any) => [p.dts * 90, p.pts * 90]), frames.map((f) => [f.dts, f.pts]));
      const ex = new DtsExtractor('h264');
      ex.setParameterSets(sps!);
      const dts: number[] = [];
      for (let i = 0; i < frames.length; i++) {
        const f = frames[i]!;
        const d = ex.extract(f.data, f.pts);
        assert.ok(d <= f.pts, `bf=${bf} frame ${i}: dts ${d} > pts ${f.pts}`);
        if (i) assert.ok(d > dts[i - 1]!, `bf=${bf} frame ${i}: dts ${d} after ${dts[i - 1]}`);
        dts.push(d);
      }
      const off = dts[10]! - frames[10]!.dts;
      let same = 0;
      for (let i = 0; i < dts.length; i++) if (dts[i]! - frames[i]!.dts === off) same++;
      assert.ok(same >= dts.length - 3, `bf=${bf} pyramid=${pyramid}: ${same} of ${dts.length} dts equal ffmpeg's + ${off}`);
      assert.ok(Math.abs(off) <= 3600, `bf=${bf}: offset ${off}`);
    }
}));

test('DTS extractor: libx265 bframes=3 (via MPEG-TS, whose dts ffmpeg wrote) rises strictly, pts >= dts, equals ffmpeg\'s dts up to a constant', ONCE, () => withDir(async (dir) => {
    const file = dir.file('x265.ts');
    const r = await run(ffmpegPath, ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25', '-t', '6', '-c:v', 'libx265',
      '-preset', 'fast', '-x265-params', 'bframes=3:keyint=50:log-level=error', '-pix_fmt', 'yuv420p', '-f', 'mpegts', file]);
    assert.equal(r.code, 0, r.stderr);
    const { TsDemuxer } = await import('../src/format/ts.ts');
    const units: { pts: number; dts: number; data: Uint8Array; config?: { data?: Uint8Array } }[] = [];
    const dmx = new TsDemuxer((u) => { if (u.codec === 'h265') units.push(u); });
    dmx.push(new Uint8Array(readFileSync(file)));
    dmx.end();
    assert.equal(units.length, 150);
    assert.ok(units.some((u) => u.pts !== u.dts), 'the stream has B-frames');
    const hv = parseHvcC(units[0]!.config!.data!);
    const ex = new DtsExtractor('h265');
    ex.setParameterSets(hv.sps[0]!, hv.pps[0]!);
    const dts = units.map((u) => ex.extract(u.data, u.pts));
    dts.forEach((d, i) => {
      assert.ok(d <= units[i]!.pts, `frame ${i}: dts ${d} > pts ${units[i]!.pts}`);
      if (i) assert.ok(d > dts[i - 1]!, `frame ${i}: dts ${d} after ${dts[i - 1]}`);
    });
    const off = dts[10]! - units[10]!.dts;
    const same = dts.filter((d, i) => d - units[i]!.dts === off).length;
    assert.ok(same >= dts.length - 3, `${same} of ${dts.length} dts equal ffmpeg's + ${off}`);
}));
