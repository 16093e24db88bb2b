// MPEG-TS: PSI tables and CRC, PES timestamps, packet invariants (size, sync, continuity, PCR, random
// access), mux -> demux round trips for H.264/H.265/AAC/Opus/MP3, demuxer robustness (resync, CC errors,
// bounds, seeded fuzzing) and real decoders (ffprobe/ffmpeg) on files written from real x264/x265/AAC frames.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { crc32Mpeg, toTsClock, TsDemuxer, TsMuxer, TS_PACKET_SIZE, type TsAccessUnit, type TsMuxerOptions } from '../src/format/ts.ts';
import { bytesEqual, FormatError, toHex } from '../src/format/bytes.ts';
import { buildAsc } from '../src/codec/aac.ts';
import { buildOpusHead } from '../src/codec/opus.ts';
import { h264AacFrames, h265Frames, probeFile, tempDir, writeParts, type TestMedia } from './helpers/frames.ts';
import { prng } from './helpers/fuzz.ts';

// Tiny synthetic H.264 parameter sets (contents are opaque to the muxer): avcC with one SPS and one PPS.
const SPS = Uint8Array.from([0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xbf, 0xe5, 0x84]);
const PPS = Uint8Array.from([0x68, 0xce, 0x3c, 0x80]);
const AVCC = Uint8Array.from([1, 0x42, 0xc0, 0x1e, 0xff, 0xe1, 0, SPS.length, ...SPS, 1, 0, PPS.length, ...PPS]);
const ASC = buildAsc({ objectType: 2, sampleRate: 48000, channelConfig: 2 });

/** A length-prefixed access unit of one NAL unit of `type` and `size` payload bytes. */
function au(type: number, size: number, fill = 0x11): Uint8Array {
  const out = new Uint8Array(4 + 1 + size).fill(fill);
  new DataView(out.buffer).setUint32(0, 1 + size);
  out[4] = type;
  return out;
}

function concatAll(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

function demuxAll(ts: Uint8Array, chunk = 0, opts = {}): { units: TsAccessUnit[]; dmx: TsDemuxer } {
  const units: TsAccessUnit[] = [];
  const dmx = new TsDemuxer((u) => units.push(u), opts);
  if (!chunk) dmx.push(ts);
  else for (let p = 0; p < ts.length; p += chunk) dmx.push(ts.subarray(p, p + chunk));
  dmx.end();
  return { units, dmx };
}

interface PacketInfo { pid: number; pusi: boolean; cc: number; hasPayload: boolean; rai: boolean; pcr?: number }

/** Parse every packet header, asserting size and sync. */
function packets(ts: Uint8Array): PacketInfo[] {
  assert.equal(ts.length % TS_PACKET_SIZE, 0, 'a whole number of 188-byte packets');
  const out: PacketInfo[] = [];
  for (let p = 0; p < ts.length; p += TS_PACKET_SIZE) {
    assert.equal(ts[p], 0x47, `sync byte at ${p}`);
    const pid = ((ts[p + 1]! & 0x1f) << 8) | ts[p + 2]!;
    const afc = (ts[p + 3]! >> 4) & 3;
    const info: PacketInfo = { pid, pusi: (ts[p + 1]! & 0x40) !== 0, cc: ts[p + 3]! & 15, hasPayload: (afc & 1) === 1, rai: false };
    if (afc & 2) {
      const len = ts[p + 4]!;
      assert.ok(len <= 183, 'adaptation field fits');
      if (len > 0) {
        const flags = ts[p + 5]!;
        info.rai = (flags & 0x40) !== 0;
        if (flags & 0x10) {
          const b = ts.subarray(p + 6, p + 12);
          info.pcr = (((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0) * 2 + (b[4]! >> 7);
        }
      }
    }
    out.push(info);
  }
  return out;
}

/** Continuity counters increment by one (mod 16) per PID on packets with payload. */
function assertContinuity(list: PacketInfo[]): void {
  const last = new Map<number, number>();
  for (const [i, p] of list.entries()) {
    if (!p.hasPayload) continue;
    const prev = last.get(p.pid);
    if (prev !== undefined) assert.equal(p.cc, (prev + 1) & 15, `CC on PID ${p.pid} at packet ${i}`);
    last.set(p.pid, p.cc);
  }
}

describe('TS tables and timestamps', () => {
  it('computes CRC-32/MPEG-2 (check value of "123456789")', () => {
    assert.equal(crc32Mpeg(new TextEncoder().encode('123456789')), 0x0376e6e7);
  });

  it('writes a PAT and PMT that the demuxer and the CRC accept', () => {
    const mux = new TsMuxer({ video: { config: { codec: 'h264', data: AVCC }, clockRate: 90000 }, audio: { config: { codec: 'aac', data: ASC }, clockRate: 48000 } });
    const t = mux.tables();
    assert.equal(t.length, 376);
    // PAT: PID 0, PUSI, pointer 0, table 0, program 1 -> PMT PID 0x1000.
    assert.equal(toHex(t.subarray(0, 17)), '474000100000b00d0001c100000001f000');
    assert.equal(crc32Mpeg(t, 5, 5 + 16), 0, 'PAT section CRC (the CRC of a section with its CRC is 0)');
    // PMT on 0x1000: PCR PID 0x100, H.264 on 0x100, AAC on 0x101.
    const pmt = t.subarray(188);
    assert.equal(toHex(pmt.subarray(0, 4)), '47500010');
    assert.equal(toHex(pmt.subarray(5, 13 + 4 + 10)), '02b0170001c10000e100f0001be100f0000fe101f000');
    const { dmx } = demuxAll(t);
    assert.equal(dmx.pmtPid, 0x1000);
    assert.deepEqual([...dmx.streams.entries()], [[0x100, { streamType: 0x1b, codec: 'h264' }], [0x101, { streamType: 0x0f, codec: 'aac' }]]);
    assert.equal(dmx.stats.errors, 0);
    // Re-sent tables continue the counters.
    const again = packets(concatAll([t, mux.tables()]));
    assertContinuity(again);
  });

  it('uses configured PIDs and signals Opus with registration + extension descriptors', () => {
    const head = buildOpusHead({ channels: 2, preSkip: 312, inputSampleRate: 48000, outputGain: 0, mappingFamily: 0 });
    const mux = new TsMuxer({ audio: { config: { codec: 'opus', data: head }, clockRate: 48000, pid: 0x44 }, pmtPid: 0x20 });
    const t = mux.tables();
    const pmt = t.subarray(188 + 5);
    // PCR on the audio PID; stream_type 6 with 'Opus' registration and DVB extension (0x80, 2 channels).
    assert.equal(toHex(pmt.subarray(8, 12)), 'e044f000');
    assert.equal(toHex(pmt.subarray(12, 12 + 5 + 10)), '06e044f00a05044f7075737f028002');
    const { dmx } = demuxAll(t);
    assert.deepEqual(dmx.streams.get(0x44), { streamType: 6, codec: 'opus' });
  });

  it('converts track clocks to 90 kHz with 33-bit wrap', () => {
    assert.equal(toTsClock(44100, 44100), 90000);
    assert.equal(toTsClock(1024, 48000), 1920);
    assert.equal(toTsClock(2 ** 33 + 5, 90000), 5);
    assert.equal(toTsClock(-1, 90000), 2 ** 33 - 1);
  });

  it('rejects codecs and configs it cannot carry', () => {
    assert.throws(() => new TsMuxer({}), FormatError);
    assert.throws(() => new TsMuxer({ video: { config: { codec: 'vp9' }, clockRate: 90000 } }), FormatError);
    assert.throws(() => new TsMuxer({ audio: { config: { codec: 'aac' }, clockRate: 48000 } }), FormatError);
    assert.throws(() => new TsMuxer({ video: { config: { codec: 'h264', data: new Uint8Array(3) }, clockRate: 90000 } }), FormatError);
    const mux = new TsMuxer({ video: { config: { codec: 'h264', data: AVCC }, clockRate: 90000 } });
    assert.throws(() => mux.video(0, 0, true, Uint8Array.from([0, 0, 0, 9, 1])), FormatError, 'NAL length past the end');
    assert.throws(() => mux.audio(0, new Uint8Array(1)), FormatError, 'no audio track');
  });
});

describe('TsMuxer packets', () => {
  it('packetises PES with PTS/DTS, PCR, random access, stuffing and per-PID continuity', () => {
    const mux = new TsMuxer({ video: { config: { codec: 'h264', data: AVCC }, clockRate: 90000 }, audio: { config: { codec: 'aac', data: ASC }, clockRate: 48000 } });
    const parts = [mux.tables()];
    const sizes = [0, 1, 150, 160, 170, 171, 172, 183, 184, 185, 400, 5000, 70000];
    for (let i = 0; i < sizes.length; i++) {
      parts.push(mux.video(i * 3000, 6000, i % 5 === 0, au(i % 5 === 0 ? 5 : 1, sizes[i]!)));
      parts.push(mux.audio(i * 1024, new Uint8Array(1 + (sizes[i]! % 600)).fill(7)));
    }
    const ts = concatAll(parts);
    const list = packets(ts);
    assertContinuity(list);
    const pes = list.filter((p) => p.pusi && p.pid === 0x100);
    assert.equal(pes.length, sizes.length);
    for (const [i, p] of pes.entries()) {
      assert.equal(p.pcr, i * 3000, `PCR = DTS on the video PES start #${i}`);
      assert.equal(p.rai, i % 5 === 0, `random_access_indicator on keyframe #${i}`);
    }
    assert.ok(list.filter((p) => p.pid === 0x101).every((p) => p.pcr === undefined), 'no PCR on audio when there is video');
    // Round trip: every unit, timestamps in 90 kHz, keyframe flags, exact payloads.
    const { units, dmx } = demuxAll(ts);
    assert.equal(dmx.stats.errors, 0);
    assert.equal(dmx.stats.ccErrors, 0);
    const v = units.filter((u) => u.pid === 0x100), a = units.filter((u) => u.pid === 0x101);
    assert.equal(v.length, sizes.length);
    for (const [i, u] of v.entries()) {
      assert.equal(u.dts, i * 3000);
      assert.equal(u.pts, i * 3000 + 6000);
      assert.equal(u.key, i % 5 === 0);
      assert.ok(bytesEqual(u.data, au(i % 5 === 0 ? 5 : 1, sizes[i]!)), `video payload #${i}`);
      if (i === 0) assert.ok(u.config && bytesEqual(u.config.data!, AVCC), 'avcC rebuilt from the in-band SPS/PPS');
      else assert.equal(u.config, undefined, 'config reported once');
    }
    assert.deepEqual(a.map((u) => u.data.length), sizes.map((s) => 1 + (s % 600)), 'audio frames');
    assert.deepEqual(a.map((u) => u.pts), sizes.map((_, i) => Math.round(i * 1024 * 90000 / 48000)), 'audio pts');
    assert.throws(() => mux.audio(0, new Uint8Array(0)), FormatError, 'an empty AAC frame cannot be framed');
  });

  it('keeps an existing AUD and in-band parameter sets instead of adding its own', () => {
    const mux = new TsMuxer({ video: { config: { codec: 'h264', data: AVCC }, clockRate: 90000 } });
    const inband = concatAll([Uint8Array.from([0, 0, 0, 2, 9, 0xf0]), Uint8Array.from([0, 0, 0, SPS.length]), SPS, Uint8Array.from([0, 0, 0, PPS.length]), PPS, au(5, 10)]);
    const ts = mux.video(0, 0, true, inband);
    // One AUD and one SPS in the Annex B output (the frame's own).
    const hex = toHex(ts);
    assert.equal(hex.split('0000000109f0').length - 1, 1, 'one AUD');
    assert.equal(hex.split('0000000167').length - 1, 1, 'one SPS');
    // Without them, the muxer adds both (keyframe) or just the AUD (other frames).
    assert.equal(toHex(mux.video(0, 0, true, au(5, 10))).split('0000000167').length - 1, 1);
    assert.equal(toHex(mux.video(0, 0, false, au(1, 10))).split('0000000167').length - 1, 0);
    const { units } = demuxAll(concatAll([mux.tables(), ts]));
    assert.equal(units.length, 1);
    assert.ok(bytesEqual(units[0]!.data, au(5, 10)));
  });

  it('puts the PCR on the audio PID when there is no video, with several AAC frames per PES', () => {
    const mux = new TsMuxer({ audio: { config: { codec: 'aac', data: ASC }, clockRate: 48000 } });
    const frames = [new Uint8Array(100).fill(1), new Uint8Array(120).fill(2), new Uint8Array(90).fill(3)];
    const ts = concatAll([mux.tables(), mux.audio(48000, frames), mux.audio(48000 + 3072, frames[0]!)]);
    const list = packets(ts);
    assert.equal(list.filter((p) => p.pcr !== undefined).map((p) => p.pcr).join(), '90000,95760');
    const { units } = demuxAll(ts);
    assert.deepEqual(units.map((u) => u.pts), [90000, 91920, 93840, 95760], 'one unit per ADTS frame, 1024 samples apart');
    assert.deepEqual(units.map((u) => u.data[0]), [1, 2, 3, 1]);
    assert.equal(units[0]!.config?.codec, 'aac');
    assert.ok(bytesEqual(units[0]!.config!.data!, ASC));
    assert.equal(units[0]!.config!.sampleRate, 48000);
  });

  it('round-trips Opus (control headers, 255+ byte packets) and MP3', () => {
    const head = buildOpusHead({ channels: 2, preSkip: 312, inputSampleRate: 48000, outputGain: 0, mappingFamily: 0 });
    const mux = new TsMuxer({ audio: { config: { codec: 'opus', data: head }, clockRate: 48000 } });
    const p1 = new Uint8Array(300).fill(0x22); p1[0] = 0xfc; // CELT 20 ms, one frame
    const p2 = new Uint8Array(255).fill(0x33); p2[0] = 0xfc;
    const ts = concatAll([mux.tables(), mux.audio(960, p1), mux.audio(1920, [p2, p1])]);
    const { units, dmx } = demuxAll(ts, 100);
    assert.equal(dmx.stats.errors, 0);
    assert.deepEqual(units.map((u) => [u.codec, u.pts, u.data.length]), [['opus', 1800, 300], ['opus', 3600, 255], ['opus', 5400, 300]]);
    assert.ok(bytesEqual(units[0]!.data, p1));

    const mp3 = new TsMuxer({ audio: { config: { codec: 'mp3' }, clockRate: 44100 } });
    const f = new Uint8Array(417).fill(0x55);
    const r = demuxAll(concatAll([mp3.tables(), mp3.audio(1152, f)]));
    assert.equal(r.units.length, 1);
    assert.equal(r.units[0]!.codec, 'mp3');
    assert.equal(r.units[0]!.pts, 2351); // 1152 / 44100 s in 90 kHz, rounded
    assert.ok(bytesEqual(r.units[0]!.data, f));
  });

  it('unwraps PTS across the 33-bit rollover', () => {
    const mux = new TsMuxer({ video: { config: { codec: 'h264', data: AVCC }, clockRate: 90000 } });
    const base = 2 ** 33 - 7200;
    const parts = [mux.tables()];
    for (let i = 0; i < 5; i++) parts.push(mux.video(base + i * 3600, 0, i === 0, au(i === 0 ? 5 : 1, 20)));
    const { units } = demuxAll(concatAll(parts));
    assert.deepEqual(units.map((u) => u.dts - base), [0, 3600, 7200, 10800, 14400]);
  });
});

describe('TsDemuxer robustness', () => {
  function sample(): Uint8Array {
    const mux = new TsMuxer({ video: { config: { codec: 'h264', data: AVCC }, clockRate: 90000 }, audio: { config: { codec: 'aac', data: ASC }, clockRate: 48000 } });
    const parts = [mux.tables()];
    for (let i = 0; i < 12; i++) {
      parts.push(mux.video(i * 3600, 3600, i % 6 === 0, au(i % 6 === 0 ? 5 : 1, 50 + i * 97)));
      parts.push(mux.audio(i * 1024, new Uint8Array(60 + i).fill(i)));
    }
    return concatAll(parts);
  }

  it('gives the same units for every chunking of the input', () => {
    const ts = sample();
    const ref = demuxAll(ts).units;
    assert.equal(ref.length, 24);
    for (const chunk of [1, 7, 187, 188, 189, 1000]) {
      const got = demuxAll(ts, chunk).units;
      assert.equal(got.length, ref.length, `chunk ${chunk}`);
      for (let i = 0; i < ref.length; i++) assert.ok(bytesEqual(got[i]!.data, ref[i]!.data) && got[i]!.pts === ref[i]!.pts, `chunk ${chunk} unit ${i}`);
    }
  });

  it('resyncs after garbage and counts continuity errors without failing', () => {
    const ts = sample();
    const garbage = Uint8Array.from({ length: 77 }, (_, i) => (i * 31) & 0xff).map((x) => (x === 0x47 ? 0 : x));
    const withGarbage = concatAll([ts.subarray(0, 188 * 4), garbage, ts.subarray(188 * 4)]);
    const r = demuxAll(withGarbage, 64);
    assert.equal(r.dmx.stats.resyncBytes, 77);
    assert.equal(r.units.length, 24);
    // Drop one packet in the middle of a multi-packet video PES: that PES is lost, the rest survive.
    const list = packets(ts);
    const idx = list.findIndex((p, i) => i > 2 && p.pid === 0x100 && !p.pusi);
    const dropped = concatAll([ts.subarray(0, idx * 188), ts.subarray((idx + 1) * 188)]);
    const d = demuxAll(dropped);
    assert.equal(d.dmx.stats.ccErrors, 1);
    assert.equal(d.units.filter((u) => u.pid === 0x100).length, 11);
    // A duplicated packet is ignored.
    const dup = concatAll([ts.subarray(0, (idx + 1) * 188), ts.subarray(idx * 188)]);
    const u = demuxAll(dup);
    assert.equal(u.dmx.stats.ccErrors, 0);
    assert.equal(u.units.length, 24);
  });

  it('bounds PES size and reports errors as FormatError in strict mode', () => {
    const mux = new TsMuxer({ video: { config: { codec: 'h264', data: AVCC }, clockRate: 90000 } });
    const big = concatAll([mux.tables(), mux.video(0, 0, true, au(5, 100_000)), mux.video(3600, 0, false, au(1, 10))]);
    const r = demuxAll(big, 0, { maxPesSize: 50_000 });
    assert.equal(r.units.length, 1, 'the oversized PES is dropped, the next one survives');
    assert.ok(r.dmx.stats.errors >= 1);
    assert.throws(() => demuxAll(big, 0, { maxPesSize: 50_000, strict: true }), FormatError);
    const bad = sample();
    bad[188 * 2 + 4 + 8 + 9] ^= 0xff; // corrupt the first video PES's payload start code region
    assert.doesNotThrow(() => demuxAll(bad));
  });

  it('survives seeded fuzzing: random, truncated and mutated streams (only FormatError, no hang)', () => {
    const seedTs = sample();
    const rnd = prng(42);
    const int = (n: number) => Math.floor(rnd() * n);
    const started = Date.now();
    let units = 0;
    for (let i = 0; i < 3000; i++) {
      let input: Uint8Array;
      const kind = i % 4;
      if (kind === 0) {
        input = new Uint8Array(int(188 * 6));
        for (let j = 0; j < input.length; j++) input[j] = j % 188 === 0 && rnd() < 0.8 ? 0x47 : int(256);
      } else if (kind === 1) {
        input = seedTs.slice(int(seedTs.length), int(seedTs.length + 1) + seedTs.length / 2);
      } else {
        input = seedTs.slice();
        const flips = 1 + int(kind === 2 ? 3 : 40);
        for (let f = 0; f < flips; f++) input[int(input.length)] = int(256);
      }
      const strict = i % 2 === 0;
      try {
        const r = demuxAll(input, 1 + int(400), { strict, maxPesSize: 64 * 1024 });
        units += r.units.length;
      } catch (e) {
        if (!(e instanceof FormatError)) assert.fail(`case ${i} threw ${(e as Error)?.name}: ${(e as Error)?.message}`);
        assert.ok(strict, `case ${i}: lenient mode threw ${(e as Error).message}`);
      }
    }
    assert.ok(units > 0);
    assert.ok(Date.now() - started < 30_000, 'fuzzing finished in time');
  });
});

// ---------------------------------------------------------------------------------------------------
// Real encoders and decoders

/** Frames of both tracks interleaved by time (as a live stream delivers them). */
function interleave(m: TestMedia): { kind: 'video' | 'audio'; f: TestMedia['video']['frames'][number] }[] {
  const all = [
    ...m.video.frames.map((f) => ({ kind: 'video' as const, t: f.dts / m.video.clockRate, f })),
    ...(m.audio?.frames ?? []).map((f) => ({ kind: 'audio' as const, t: f.dts / m.audio!.clockRate, f })),
  ];
  return all.sort((a, b) => a.t - b.t);
}

function muxTs(m: TestMedia): Uint8Array {
  const opts: TsMuxerOptions = { video: m.video };
  if (m.audio) opts.audio = m.audio;
  const mux = new TsMuxer(opts);
  const parts = [mux.tables()];
  for (const x of interleave(m)) parts.push(x.kind === 'video' ? mux.video(x.f.dts, x.f.cts, x.f.key, x.f.data) : mux.audio(x.f.dts, x.f.data));
  return concatAll(parts);
}

function assertMonotonic(packets: any[], type: string): void {
  const ps = packets.filter((p) => p.codec_type === type);
  for (let i = 1; i < ps.length; i++) assert.ok(+ps[i].dts_time > +ps[i - 1].dts_time, `${type} dts increases at packet ${i}`);
  if (type === 'audio') for (let i = 1; i < ps.length; i++) assert.ok(+ps[i].pts_time > +ps[i - 1].pts_time, `audio pts increases at ${i}`);
}

describe('TS with real H.264/H.265/AAC frames and ffprobe', () => {
  const tmp = tempDir();
  let h264: TestMedia;
  let h265: TestMedia;
  before(async () => {
    h264 = await h264AacFrames(tmp.dir);
    h265 = await h265Frames(tmp.dir);
  });
  after(() => tmp.remove());

  it('H.264 (B-frames) + AAC: ffprobe is silent, codecs/size/rate/counts/timestamps/duration right', async () => {
    assert.equal(h264.video.frames.length, 75);
    assert.ok(h264.video.frames.some((f) => f.cts > 0), 'the source has B-frames (cts > 0)');
    const ts = muxTs(h264);
    const list = packets(ts);
    assertContinuity(list);
    const pcrs = list.filter((p) => p.pcr !== undefined).map((p) => p.pcr!);
    assert.equal(pcrs.length, 75, 'a PCR on every video PES');
    for (let i = 1; i < pcrs.length; i++) assert.ok(pcrs[i]! > pcrs[i - 1]!, 'PCR monotonic');
    const file = tmp.file('h264.ts');
    writeParts(file, [ts]);
    const p = await probeFile(file);
    assert.equal(p.errors, '', 'ffprobe/ffmpeg -v error say nothing');
    const v = p.streams.find((s) => s.codec_type === 'video'), a = p.streams.find((s) => s.codec_type === 'audio');
    assert.equal(v.codec_name, 'h264');
    assert.equal(v.width, 320);
    assert.equal(v.height, 240);
    assert.equal(a.codec_name, 'aac');
    assert.equal(+a.sample_rate, 44100);
    const vp = p.packets.filter((x) => x.codec_type === 'video'), ap = p.packets.filter((x) => x.codec_type === 'audio');
    assert.equal(vp.length, h264.video.frames.length);
    assert.equal(ap.length, h264.audio!.frames.length);
    assert.equal(vp.filter((x) => x.flags.startsWith('K')).length, h264.video.frames.filter((f) => f.key).length, 'keyframes');
    assertMonotonic(p.packets, 'video');
    assertMonotonic(p.packets, 'audio');
    // ffprobe's pts equal ours (relative to the first dts).
    const ours = h264.video.frames.map((f) => (f.dts + f.cts) / 90000).sort((x, y) => x - y);
    const theirs = vp.map((x) => +x.pts_time - +vp[0].dts_time + h264.video.frames[0]!.dts / 90000).sort((x, y) => x - y);
    for (let i = 0; i < ours.length; i++) assert.ok(Math.abs(ours[i]! - theirs[i]!) < 1e-3, `pts #${i}`);
    assert.ok(Math.abs(+p.format.duration - 3) < 0.15, `duration ${p.format.duration} ≈ 3 s`);

    // And our own demuxer gives back exactly the frames.
    const { units, dmx } = demuxAll(ts, 1316);
    assert.equal(dmx.stats.errors + dmx.stats.ccErrors, 0);
    const vu = units.filter((u) => u.codec === 'h264'), au_ = units.filter((u) => u.codec === 'aac');
    assert.equal(vu.length, 75);
    for (const [i, u] of vu.entries()) {
      const f = h264.video.frames[i]!;
      assert.ok(bytesEqual(u.data, f.data), `video frame ${i} bytes`);
      assert.equal(u.dts, f.dts);
      assert.equal(u.pts, f.dts + f.cts);
      assert.equal(u.key, f.key);
    }
    assert.ok(bytesEqual(vu[0]!.config!.data!, h264.video.config.data!), 'same avcC');
    assert.equal(au_.length, h264.audio!.frames.length);
    for (const [i, u] of au_.entries()) {
      assert.ok(bytesEqual(u.data, h264.audio!.frames[i]!.data), `audio frame ${i} bytes`);
      assert.equal(u.pts, toTsClock(h264.audio!.frames[i]!.dts, 44100));
    }
  });

  it('H.265: ffprobe is silent, hevc 320x240, 75 packets, 3 s', async () => {
    assert.equal(h265.video.frames.length, 75);
    const ts = muxTs(h265);
    assertContinuity(packets(ts));
    const file = tmp.file('h265.ts');
    writeParts(file, [ts]);
    const p = await probeFile(file);
    assert.equal(p.errors, '');
    assert.equal(p.streams[0].codec_name, 'hevc');
    assert.equal(p.streams[0].width, 320);
    assert.equal(p.streams[0].height, 240);
    assert.equal(p.packets.length, 75);
    assert.equal(p.packets.filter((x) => x.flags.startsWith('K')).length, h265.video.frames.filter((f) => f.key).length);
    assertMonotonic(p.packets, 'video');
    assert.ok(Math.abs(+p.format.duration - 3) < 0.15, `duration ${p.format.duration}`);
    const { units } = demuxAll(ts);
    assert.equal(units.length, 75);
    for (const [i, u] of units.entries()) assert.ok(bytesEqual(u.data, h265.video.frames[i]!.data) && u.key === h265.video.frames[i]!.key, `frame ${i}`);
    assert.ok(bytesEqual(units[0]!.config!.data!, h265.video.config.data!), 'same hvcC');
  });
});
