// Codec helpers: H.264/H.265 parameter sets and framing, AAC config/ADTS, Opus, G.711 — against bytes
// produced by ffmpeg 5.1 (x264, x265, native AAC, libopus), plus seeded fuzzing of every parser.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  aacCodecString, adtsHeader, annexBToAvcc, avccToAnnexB, buildAsc, buildAvcC, buildHvcC, buildOpusHead,
  g711Samples, G711_CHANNELS, G711_SAMPLE_RATE, h264CodecString, h264NalType, h265CodecString, h265NalType,
  isH265Irap, isKeyframeAvcc, isKeyframeHvcc, joinAvcc, normalizeAvcc, opusFrameCount, opusPacketSamples,
  parseAdtsHeader, parseAsc, parseAvcC, parseH264Sps, parseH265Sps, parseHvcC, parseOpusHead, splitAdts,
  splitAnnexB, splitAvcc, unescapeRbsp, AAC_SAMPLES_PER_FRAME,
} from '../src/codec/index.ts';
import { BitReader, BitWriter, ByteReader, ByteWriter, concat, FormatError, fromHex, toHex, UnsupportedFormatError } from '../src/format/bytes.ts';
import { prng, fuzz } from './helpers/fuzz.ts';

// x264 SPS/PPS from `ffmpeg -f lavfi -i testsrc=size=WxH:rate=R -c:v libx264 ...` (Annex B output).
const SPS_720P_HIGH = fromHex('6764001facd9405005bb0110000003001000000303c0f1831960'); // 1280x720 High L3.1 30 fps
const SPS_1080P_HIGH = fromHex('67640028acd940780227e5c044000003000400000300c83c60c658'); // 1920x1080 (1088 cropped) 25 fps
const SPS_576I = fromHex('6764001eacd940b424d8088000000300800000190f8a14cb'); // 720x576 interlaced (PAFF/MBAFF) 25 fps
const SPS_444 = fromHex('67f4000d919b282c12d808800000030080000018078a14cb'); // 352x288 High 4:4:4 Predictive, 24 fps
const SPS_BASELINE = fromHex('6742c00dd90141fb011000000300100000030320f142a480'); // 320x240 Constrained Baseline 25 fps
// Hand-written High-profile SPS exercising seq_scaling_matrix (explicit 4x4 and 8x8 lists, a default
// list), pic_order_cnt_type 1, field coding (frame_mbs_only_flag 0 + MBAFF), cropping, SAR 4:3, full
// range and timing 50/1; its fields were checked with ffmpeg's trace_headers bitstream filter.
const SPS_SCALING_FIELD = fromHex(
  '67640028ad999999999999999990894924924924924924924924926db6db6db6db6db6db6db6db50a990e501e0113f7ff80020001b70101014000003000400000300ca10',
);

// avcC of the FLV written by ffmpeg (see format-flv.test.ts), with its SPS and PPS.
const AVCC_FFMPEG = fromHex('0164000affe100186764000aace4109b011000000300100000030140f122512001000568ebecb22cfdf8f800');

// x265 (ffmpeg -c:v libx265, 1920x1080 Main): parameter sets and the hvcC ffmpeg's mp4 muxer wrote.
const HEVC_VPS = fromHex('40010c01ffff016000000300900000030000030078959809');
const HEVC_SPS = fromHex('420101016000000300900000030000030078a003c08010e596566924caf0168080000003008000000f04');
const HEVC_PPS = fromHex('4401c172b46240');
// ffmpeg's hvcC for that stream, cut after its VPS/SPS/PPS arrays (it also had a prefix-SEI array,
// dropped here with numOfArrays patched from 4 to 3).
const HVCC_FFMPEG = fromHex(
  '01016000000090000000000078f000fcfdf8f800000f03' +
    'a00001001840010c01ffff016000000300900000030000030078959809' +
    'a10001002a420101016000000300900000030000030078a003c08010e596566924caf0168080000003008000000f04' +
    'a2000100074401c172b46240',
);
// x265 426x240: coded 432x240 with a conformance window (right offset 3 chroma samples = 6 luma).
const HEVC_SPS_CROP = fromHex('42010101600000030090000003000003003ca00d880f1c9e5959a4932bc05a020000030002000003003c10');

// ffmpeg native AAC encoder, ADTS output: 48000 Hz mono, 4 frames (raw sizes 142, 159, 126, 5).
const ADTS_48K_MONO = fromHex(
  'fff14c4012bffcde02004c61766335392e33372e313030000268a359a1288d35874a995f6f8a711e697b92243c2249fffeae481374c37362b4' +
    'f5b36d748babb83b668efc37b8b056ca9ad3252255cdb519ccb44a44a4489929128181819103031b366c1819122446cd9b368912296596cdc0' +
    '12a2e237044aa9c8d64d8d708cf6d15748ce5d056c8cd392aa1c069929c9a26b9296aefff14c4014dffc013494dac95d964bab25d414e9bfdf' +
    'ceadb5ab9ff6f1fbf9d6b8d5ebffe2f5fbf9d6b8d5ebffec5fe3ceb5ad6ac6d4ecdbae79e60d65b2cf70a2f7fb28183740fa50afa503e9f4d6' +
    '603e9f4fa5007d3e9f4d607d3e9f4d741801f4fa7d3599b006b9eb458b549fcdb748843133e5133e5133e5f288983e5f2e31307cbe5c4983e5' +
    'f2f94511003e5f2f9718a2005973d67024242424242424242424242424e7fff14c4010bffc013895b2c95d944b9d364bab25ce973faf5c69c3' +
    'abd7fe93f5eb8be35aaffe9ebdbad5f1abd78ff5f8eb57ad5ec31fb97bfa6a8de5030232b8995f2a15f2a04e3e5f21351d3194d979031335' +
    '933593df420c1f46c060fa7d00799f4fa0039d83e9f4fa481f1c462ea23698f4c7747747747faae1f129f69f53ea7d4fa9fefff14c40019ffc' +
    '011881b470',
);

// libopus (ffmpeg -c:a libopus, 48 kHz stereo): OpusHead from the Ogg stream and a first packet's TOC.
const OPUS_HEAD = fromHex('4f707573486561640102380180bb0000000000');

describe('bytes helpers', () => {
  it('reads and writes big-endian values with bounds checks', () => {
    const w = new ByteWriter(2);
    w.u8(1).u16(0x0203).u24(0x040506).u32(0x0708090a).i16(-2).i32(-3).f64(1.5).fourcc('hvc1');
    const r = new ByteReader(w.finish());
    assert.deepEqual([r.u8(), r.u16(), r.u24(), r.u32(), r.i16(), r.i32(), r.f64(), r.fourcc()], [1, 0x0203, 0x040506, 0x0708090a, -2, -3, 1.5, 'hvc1']);
    assert.equal(r.remaining, 0);
    assert.throws(() => r.u8(), FormatError);
    assert.throws(() => new ByteReader(fromHex('0001')).bytes(3), /need 3 byte/);
    assert.equal(new ByteReader(fromHex('800000')).i24(), -0x800000);
    assert.throws(() => ByteWriter.fixed(2).u32(1), RangeError);
  });

  it('reads bits and Exp-Golomb codes', () => {
    const w = new BitWriter();
    w.bits(3, 5).bits(32, 0xdeadbeef).bits(1, 1); // then ue(4) = 00101, se(-2) = 00101 -> k=4
    w.bits(5, 0b00101).bits(5, 0b00101);
    const br = new BitReader(w.finish());
    assert.equal(br.bits(3), 5);
    assert.equal(br.bits(32), 0xdeadbeef);
    assert.equal(br.bool(), true);
    assert.equal(br.ue(), 4);
    assert.equal(br.se(), -2);
    assert.throws(() => new BitReader(new Uint8Array(8)).ue(), /longer than 32 bits/);
    assert.throws(() => new BitReader(fromHex('ff')).bits(9), /end of bitstream/);
  });
});

describe('H.264', () => {
  it('parses x264 SPS: size, profile, level, frame rate', () => {
    const s = parseH264Sps(SPS_720P_HIGH);
    assert.deepEqual([s.width, s.height, s.profile, s.level, s.chromaFormat, s.bitDepthLuma, s.interlaced, s.fps], [1280, 720, 100, 31, 1, 8, false, 30]);
    const f = parseH264Sps(SPS_1080P_HIGH);
    assert.deepEqual([f.width, f.height, f.codedWidth, f.codedHeight, f.crop.bottom, f.fps, f.level], [1920, 1080, 1920, 1088, 4, 25, 40]);
    const i = parseH264Sps(SPS_576I);
    assert.deepEqual([i.width, i.height, i.interlaced, i.fps], [720, 576, true, 25]);
    const q = parseH264Sps(SPS_444);
    assert.deepEqual([q.width, q.height, q.profile, q.chromaFormat, q.fps], [352, 288, 244, 3, 24]);
    const b = parseH264Sps(SPS_BASELINE);
    assert.deepEqual([b.width, b.height, b.profile, b.compat, b.fps], [320, 240, 66, 0xc0, 25]);
  });

  it('parses scaling lists, POC type 1, field coding, cropping and VUI', () => {
    const s = parseH264Sps(SPS_SCALING_FIELD);
    assert.deepEqual([s.codedWidth, s.codedHeight, s.width, s.height, s.interlaced], [1920, 1088, 1920, 1080, true]);
    assert.deepEqual(s.sar, { num: 4, den: 3 });
    assert.equal(s.fullRange, true);
    assert.equal(s.fps, 25);
    assert.deepEqual(s.timing, { numUnitsInTick: 1, timeScale: 50, fixedFrameRate: true });
  });

  it('builds the same avcC as ffmpeg and parses it back', () => {
    const cfg = parseAvcC(AVCC_FFMPEG);
    assert.deepEqual([cfg.profile, cfg.compat, cfg.level, cfg.lengthSize, cfg.sps.length, cfg.pps.length], [100, 0, 10, 4, 1, 1]);
    assert.deepEqual([cfg.chromaFormat, cfg.bitDepthLuma, cfg.bitDepthChroma, cfg.spsExt?.length], [1, 8, 8, 0]);
    assert.equal(toHex(buildAvcC(cfg.sps, cfg.pps)), toHex(AVCC_FFMPEG));
    assert.equal(h264CodecString(cfg.sps[0]!), 'avc1.64000a');
    assert.equal(h264CodecString(SPS_720P_HIGH), 'avc1.64001f');
    assert.equal(h264CodecString(AVCC_FFMPEG), 'avc1.64000a');
    // Baseline: no High-profile extension.
    const base = buildAvcC([SPS_BASELINE], [fromHex('68cb83cb20')]);
    assert.equal(toHex(base), '0142c00dffe10018' + toHex(SPS_BASELINE) + '010005' + '68cb83cb20');
    assert.equal(parseAvcC(base).chromaFormat, undefined);
    assert.throws(() => parseAvcC(fromHex('0164000affe10018')), /SPS #0/);
    assert.throws(() => parseAvcC(fromHex('02640000ffe000')), /configurationVersion/);
    assert.throws(() => buildAvcC([], []), FormatError);
  });

  it('converts between Annex B and length-prefixed NAL units', () => {
    const sps = SPS_BASELINE;
    const idr = fromHex('65888000000301');
    const slice = fromHex('419a80');
    // 4-byte and 3-byte start codes, a leading zero, trailing zeros and an empty NAL.
    const annexB = concat([fromHex('0000000001'), sps, fromHex('000001'), idr, fromHex('0000000001'), slice, fromHex('0000'), fromHex('000001')]);
    const nalus = splitAnnexB(annexB);
    assert.deepEqual(nalus.map(toHex), [sps, idr, slice].map(toHex));
    assert.deepEqual(nalus.map(h264NalType), [7, 5, 1]);
    const avcc = annexBToAvcc(annexB);
    assert.equal(toHex(avcc), toHex(joinAvcc([sps, idr, slice])));
    assert.deepEqual(splitAvcc(avcc).map(toHex), [sps, idr, slice].map(toHex));
    assert.equal(toHex(avccToAnnexB(avcc)), '00000001' + toHex(sps) + '00000001' + toHex(idr) + '00000001' + toHex(slice));
    assert.equal(isKeyframeAvcc(avcc), true);
    assert.equal(isKeyframeAvcc(joinAvcc([slice])), false);
    // Two-byte lengths normalized to four.
    const short = fromHex('0003' + '419a00' + '0002' + '0605');
    assert.equal(toHex(normalizeAvcc(short, 2)), '00000003419a00000000020605');
    assert.equal(normalizeAvcc(avcc, 4), avcc);
    // Hostile lengths.
    assert.throws(() => splitAvcc(fromHex('0000ffff00')), /exceeds/);
    assert.throws(() => splitAvcc(fromHex('000000')), /truncated NAL length/);
    assert.throws(() => splitAvcc(avcc, 5), /length size/);
    assert.throws(() => splitAnnexB(fromHex('0102030405')), /no Annex B start code/);
    assert.throws(() => splitAnnexB(fromHex('ff000001 65')), /before the first/);
  });

  it('removes emulation prevention bytes only where present', () => {
    const plain = fromHex('6742c00d');
    assert.equal(unescapeRbsp(plain), plain);
    assert.equal(toHex(unescapeRbsp(fromHex('000003010000030000000302'))), '000001000000000002');
    assert.equal(toHex(unescapeRbsp(fromHex('aa000003bb000003'))), 'aa0000bb0000');
    assert.equal(toHex(unescapeRbsp(fromHex('00000300000301'))), '0000000001');
  });
});

describe('H.265', () => {
  it('parses the x265 SPS', () => {
    const s = parseH265Sps(HEVC_SPS);
    assert.deepEqual([s.width, s.height, s.profile, s.tier, s.level, s.chromaFormat, s.bitDepthLuma, s.maxSubLayers, s.temporalIdNested],
      [1920, 1080, 1, 0, 120, 1, 8, 1, true]);
    assert.equal(s.compat, 0x60000000);
    const c = parseH265Sps(HEVC_SPS_CROP);
    assert.deepEqual([c.codedWidth, c.codedHeight, c.width, c.height, c.crop.right], [432, 240, 426, 240, 6]);
    assert.throws(() => parseH265Sps(HEVC_PPS), FormatError);
  });

  it('builds the same hvcC as ffmpeg and parses it back', () => {
    assert.equal(toHex(buildHvcC([HEVC_VPS], [HEVC_SPS], [HEVC_PPS])), toHex(HVCC_FFMPEG));
    const cfg = parseHvcC(HVCC_FFMPEG);
    assert.deepEqual([cfg.profile, cfg.level, cfg.lengthSize, cfg.numTemporalLayers, cfg.temporalIdNested, cfg.chromaFormat], [1, 120, 4, 1, true, 1]);
    assert.deepEqual([cfg.vps.map(toHex), cfg.sps.map(toHex), cfg.pps.map(toHex)], [[toHex(HEVC_VPS)], [toHex(HEVC_SPS)], [toHex(HEVC_PPS)]]);
    assert.deepEqual(cfg.arrays.map((a) => [a.type, a.complete]), [[32, true], [33, true], [34, true]]);
    assert.equal(h265CodecString(cfg), 'hvc1.1.6.L120.90');
    assert.equal(h265CodecString(parseH265Sps(HEVC_SPS), 'hev1'), 'hev1.1.6.L120.90');
    // Main 10, high tier, with trailing zero constraint bytes dropped.
    assert.equal(h265CodecString({ profileSpace: 0, tier: 1, profile: 2, compat: 0x20000000, constraint: fromHex('b00000000000'), level: 153 }), 'hvc1.2.4.H153.B0');
    assert.throws(() => parseHvcC(HVCC_FFMPEG.subarray(0, 40)), FormatError);
    assert.throws(() => parseHvcC(concat([HVCC_FFMPEG.subarray(0, 23), fromHex('a0ffff')])), /claims 65535 units/);
  });

  it('classifies NAL types and keyframes', () => {
    assert.deepEqual([HEVC_VPS, HEVC_SPS, HEVC_PPS].map(h265NalType), [32, 33, 34]);
    assert.equal(isH265Irap(19), true);
    assert.equal(isH265Irap(21), true);
    assert.equal(isH265Irap(1), false);
    assert.equal(isKeyframeHvcc(joinAvcc([fromHex('4e01ff'), fromHex('2601af')])), true); // SEI + IDR_W_RADL
    assert.equal(isKeyframeHvcc(joinAvcc([fromHex('0201d0')])), false); // TRAIL_R
  });
});

describe('AAC', () => {
  it('parses and builds AudioSpecificConfig', () => {
    const a = parseAsc(fromHex('1210'));
    assert.deepEqual([a.objectType, a.sampleRate, a.channelConfig, a.channels, a.samplesPerFrame], [2, 44100, 2, 2, 1024]);
    assert.equal(aacCodecString(a), 'mp4a.40.2');
    const m = parseAsc(fromHex('1188'));
    assert.deepEqual([m.objectType, m.sampleRate, m.channels], [2, 48000, 1]);
    assert.equal(toHex(buildAsc({ objectType: 2, sampleRate: 44100, channelConfig: 2 })), '1210');
    assert.equal(toHex(buildAsc({ objectType: 2, sampleRate: 48000, channelConfig: 1 })), '1188');
    // ffmpeg's FLV ASC for 22050 Hz mono, with a backward-compatible SBR sync extension after it.
    const f = parseAsc(fromHex('138856e500'));
    assert.deepEqual([f.objectType, f.sampleRate, f.channels], [2, 22050, 1]);
    // 960-sample frames.
    assert.equal(parseAsc(buildAsc({ objectType: 2, sampleRate: 48000, channelConfig: 2, frameLengthFlag: true })).samplesPerFrame, 960);
    assert.equal(AAC_SAMPLES_PER_FRAME, 1024);
  });

  it('handles escaped object types, explicit rates and explicit HE-AAC', () => {
    const esc = buildAsc({ objectType: 42, sampleRate: 50000, channelConfig: 2 });
    const e = parseAsc(esc);
    assert.deepEqual([e.objectType, e.sampleRate, e.samplingIndex, e.channels], [42, 50000, 15, 2]);
    // HE-AAC v1, explicit: type 5, 24 kHz core, stereo, 48 kHz extension, core type AAC-LC.
    const he = new BitWriter().bits(5, 5).bits(4, 6).bits(4, 2).bits(4, 3).bits(5, 2).bits(3, 0).finish();
    const h = parseAsc(he);
    assert.deepEqual([h.objectType, h.extensionObjectType, h.sampleRate, h.extensionSampleRate, h.channels], [2, 5, 24000, 48000, 2]);
    assert.equal(aacCodecString(h), 'mp4a.40.5');
  });

  it('rejects invalid configs', () => {
    assert.throws(() => parseAsc(fromHex('00')), /too short/);
    assert.throws(() => parseAsc(fromHex('0010')), /object type 0/);
    assert.throws(() => parseAsc(fromHex('1690')), /reserved AAC samplingFrequencyIndex 13/);
    assert.throws(() => buildAsc({ objectType: 31, sampleRate: 44100, channelConfig: 2 }), FormatError);
  });

  it('splits ffmpeg ADTS into raw frames and rebuilds the same headers', () => {
    const { config, frames } = splitAdts(ADTS_48K_MONO);
    assert.deepEqual([config.objectType, config.sampleRate, config.channelConfig], [2, 48000, 1]);
    assert.deepEqual(frames.map((f) => f.length), [142, 159, 126, 5]);
    assert.equal(frames[0]!.buffer, ADTS_48K_MONO.buffer); // views, not copies
    const rebuilt = concat(frames.flatMap((f) => [adtsHeader(config, f.length), f]));
    assert.equal(toHex(rebuilt), toHex(ADTS_48K_MONO));
    const h = parseAdtsHeader(ADTS_48K_MONO);
    assert.deepEqual([h.frameLength, h.headerLength, h.protectionAbsent, h.rawBlocks, h.bufferFullness], [149, 7, true, 1, 0x7ff]);
    // An HE-AAC config is written as AAC-LC.
    assert.equal(parseAdtsHeader(concat([adtsHeader({ objectType: 5, sampleRate: 24000, channelConfig: 2 }, 1), fromHex('00')])).config.objectType, 2);
  });

  it('rejects broken ADTS', () => {
    assert.throws(() => splitAdts(ADTS_48K_MONO.subarray(0, 100)), /truncated ADTS frame/);
    assert.throws(() => splitAdts(concat([ADTS_48K_MONO, fromHex('00')])), /needs 7 bytes/);
    assert.throws(() => splitAdts(concat([ADTS_48K_MONO, new Uint8Array(9)])), /no ADTS syncword at offset 460/);
    const multi = ADTS_48K_MONO.slice();
    multi[6] = 0xfd; // two raw data blocks
    assert.throws(() => splitAdts(multi), UnsupportedFormatError);
    const changed = ADTS_48K_MONO.slice();
    changed[149 + 2] = (changed[149 + 2]! & ~0x3c) | (4 << 2); // second frame says 44.1 kHz
    assert.throws(() => splitAdts(changed), /changes/);
    assert.throws(() => adtsHeader({ objectType: 2, sampleRate: 44100, channelConfig: 2 }, 9000), /too large/);
    assert.throws(() => adtsHeader({ objectType: 2, sampleRate: 50000, channelConfig: 2 }, 10), /sampling rate/);
    assert.throws(() => splitAdts(new Uint8Array(0)), /empty/);
  });
});

describe('Opus and G.711', () => {
  it('computes packet durations from the TOC', () => {
    assert.equal(opusPacketSamples(fromHex('7c87fcb4')), 960); // libopus: config 15 (hybrid 20 ms), code 0
    assert.equal(opusPacketSamples(fromHex('f8')), 960); // CELT 20 ms
    assert.equal(opusPacketSamples(fromHex('f9')), 1920); // two frames
    assert.equal(opusPacketSamples(fromHex('00')), 480); // SILK NB 10 ms
    assert.equal(opusPacketSamples(fromHex('1b 02')), 5760); // SILK 60 ms x 2 = 120 ms
    assert.equal(opusFrameCount(fromHex('e3 05')), 5);
    assert.throws(() => opusPacketSamples(fromHex('1b 03')), /exceeds 120 ms/);
    assert.throws(() => opusPacketSamples(fromHex('e3 00')), /frame count of 0/);
    assert.throws(() => opusPacketSamples(fromHex('e3')), /frame count byte/);
    assert.throws(() => opusPacketSamples(new Uint8Array(0)), /empty/);
  });

  it('parses and builds OpusHead', () => {
    const h = parseOpusHead(OPUS_HEAD);
    assert.deepEqual(h, { version: 1, channels: 2, preSkip: 312, inputSampleRate: 48000, outputGain: 0, mappingFamily: 0 });
    assert.equal(toHex(buildOpusHead(h)), toHex(OPUS_HEAD));
    const surround = { channels: 6, preSkip: 312, inputSampleRate: 48000, outputGain: -256, mappingFamily: 1, streamCount: 4, coupledCount: 2, mapping: fromHex('000401020305') };
    const back = parseOpusHead(buildOpusHead(surround));
    assert.deepEqual({ ...back, mapping: toHex(back.mapping!) }, { version: 1, ...surround, mapping: '000401020305' });
    assert.throws(() => parseOpusHead(OPUS_HEAD.subarray(0, 10)), /shorter than 19/);
    assert.throws(() => parseOpusHead(concat([fromHex('4f707573546167730102'), new Uint8Array(9)])), /signature/);
    assert.throws(() => buildOpusHead({ channels: 3, preSkip: 0, inputSampleRate: 0, outputGain: 0, mappingFamily: 0 }), FormatError);
  });

  it('has G.711 constants', () => {
    assert.equal(G711_SAMPLE_RATE, 8000);
    assert.equal(G711_CHANNELS, 1);
    assert.equal(g711Samples(new Uint8Array(160)), 160);
  });
});

describe('codec fuzz', () => {
  const h264Sps = [SPS_720P_HIGH, SPS_1080P_HIGH, SPS_576I, SPS_444, SPS_BASELINE, SPS_SCALING_FIELD];

  it('H.264 parsers throw only FormatError', () => {
    fuzz('parseH264Sps', h264Sps, parseH264Sps, 4000, 21);
    fuzz('parseAvcC', [AVCC_FFMPEG, buildAvcC([SPS_BASELINE], [HEVC_PPS])], parseAvcC, 3000, 22);
    fuzz('buildAvcC', h264Sps, (s) => buildAvcC([s], [fromHex('68ee3c80')]), 2000, 23);
    const annexB = concat([fromHex('00000001'), SPS_BASELINE, fromHex('000001'), fromHex('65888000000301'), fromHex('00000001419a80')]);
    fuzz('splitAnnexB', [annexB], (b) => annexBToAvcc(b), 3000, 24);
    fuzz('splitAvcc', [annexBToAvcc(annexB)], (b) => {
      splitAvcc(b);
      isKeyframeAvcc(b);
      avccToAnnexB(b, 2);
      normalizeAvcc(b, 1);
    }, 3000, 25);
  });

  it('H.265 parsers throw only FormatError', () => {
    fuzz('parseH265Sps', [HEVC_SPS, HEVC_SPS_CROP], parseH265Sps, 4000, 31);
    fuzz('parseHvcC', [HVCC_FFMPEG], parseHvcC, 3000, 32);
    fuzz('buildHvcC', [HEVC_SPS, HEVC_SPS_CROP], (s) => buildHvcC([HEVC_VPS], [s], [HEVC_PPS]), 2000, 33);
    fuzz('isKeyframeHvcc', [joinAvcc([fromHex('4e01ff'), fromHex('2601af')])], (b) => isKeyframeHvcc(b), 2000, 34);
  });

  it('audio parsers throw only FormatError', () => {
    fuzz('parseAsc', [fromHex('1210'), fromHex('138856e500'), buildAsc({ objectType: 42, sampleRate: 50000, channelConfig: 2 }), fromHex('2b1188')], parseAsc, 4000, 41);
    fuzz('splitAdts', [ADTS_48K_MONO], splitAdts, 3000, 42);
    fuzz('parseOpusHead', [OPUS_HEAD, buildOpusHead({ channels: 3, preSkip: 0, inputSampleRate: 0, outputGain: 0, mappingFamily: 1, streamCount: 2, coupledCount: 1, mapping: fromHex('000102') })], parseOpusHead, 3000, 43);
    fuzz('opusPacketSamples', [fromHex('7c87fcb4'), fromHex('e305')], opusPacketSamples, 2000, 44);
  });
});
