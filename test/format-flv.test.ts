// FLV: header/tag framing, the streaming demuxer (against a real ffmpeg file), audio/video tag bodies
// including Enhanced RTMP, onMetaData, and seeded fuzzing of every parser.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildAudioTagBody, buildAudioTagHeader, buildOnMetaData, buildScriptTagBody, buildVideoTagBody, buildVideoTagHeader,
  FlvDemuxer, flvHeader, flvTag, parseAudioTagBody, parseFlvHeader, parseFlvTagHeader, parseOnMetaData,
  parseScriptTagBody, parseVideoMetadata, parseVideoTagBody, writeFlvTagHeader,
  type FlvTag, type FlvDemuxerOptions,
} from '../src/format/flv.ts';
import { amf0Encode } from '../src/format/amf.ts';
import { flvMetaData, flvMetaFields } from '../src/format/flv-media.ts';
import { Track } from '../src/core/frame.ts';
import { concat, FormatError, fromHex, toHex, UnsupportedFormatError } from '../src/format/bytes.ts';
import { parseAvcC } from '../src/codec/h264.ts';
import { parseAsc } from '../src/codec/aac.ts';
import { fuzz, prng } from './helpers/fuzz.ts';

function fromBase64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// ffmpeg 5.1: 64x64 H.264 High (x264, 10 fps, B-frames, SEI stripped) + AAC-LC 22050 Hz mono, 0.3 s:
//   ffmpeg -f lavfi -i testsrc=size=64x64:rate=10 -f lavfi -i sine=sample_rate=22050 -t 0.3 -c:v libx264
//     -profile:v high -pix_fmt yuv420p -g 2 -bf 1 -b:v 20k -bsf:v filter_units=remove_types=6 -c:a aac -ac 1
//     -b:a 16k -map_metadata -1 -fflags +bitexact -flvflags no_duration_filesize small.flv
const SMALL_FLV = fromBase64(
  'RkxWAQUAAAAJAAAAABIAAOYAAAAAAAAAAgAKb25NZXRhRGF0YQgAAAAKAAV3aWR0aABAUAAAAAAAAAAGaGVpZ2h0AEBQAAAAAAAAAA12aWRlb2' +
  'RhdGFyYXRlAEAziAAAAAAAAAlmcmFtZXJhdGUAQCQAAAAAAAAADHZpZGVvY29kZWNpZABAHAAAAAAAAAANYXVkaW9kYXRhcmF0ZQBAL0AAAAAA' +
  'AAAPYXVkaW9zYW1wbGVyYXRlAEDViIAAAAAAAA9hdWRpb3NhbXBsZXNpemUAQDAAAAAAAAAABnN0ZXJlbwEAAAxhdWRpb2NvZGVjaWQAQCQAAA' +
  'AAAAAAAAkAAADxCQAAMQAAAAAAAAAXAAAAAAFkAAr/4QAYZ2QACqzkEJsBEAAAAwAQAAADAUDxIlEgAQAFaOvssiz9+PgAAAAAPAgAAAcAAAAA' +
  'AAAArwATiFblAAAAABIJAAH0AAAAAAAAABcBAABkAAAB62WIhACnzRyR7hL/+h3k4NcDYOtO/7q9FeJ0+SjdFXaiEyGXHjoEUWAnOfYO3aq8ae' +
  '5vXjsZcIfkLxmsBvJsesGilltq8lp9EtHa/3kbm3u5R0mcVIxF2DsQJklYBQAsJU0P2kmh94VHDKCT5r4K+f2Y4xVLSFWu6WkCiE72Q5KNJL7r' +
  '9fNlQQG4SXDynLFETvo+Zkh21l/pLjqMVWhsjn3eU59gBDtOdF9TpX/IIjluQB8KUlYP8k/SjabZ750BFt7M5vmlOm++KmEbmvMerKvlzJrCO3' +
  'J2j9XhPeRlmH4fGPMc5WRPw6J96tbMuN1fCuzNMXTFEOQ9C3xJXNGZrf8bHlyZRjxnNG4azSDUXJtL45LzsTJycPuQdG+kOxcdsZZwviHfQoOx' +
  'dJRAxxcD8ziWBun3n6WrPSLpI4P6f2p20xMAmvMlj3whpsU/7s03hNI55Vr4YRn/8U3EjV8JalCuPvoNqHzNq3HR8piHzW4FVrAUoYL0CURcyt' +
  'rOwcroLVoqKExZqLCZS8i3k36uChLGUzPDNHmxGJBEvbxc5n8V+mwIjzcotT7wXobJXXDORFRaOkoovbmnDGHFRNHUrD1Zg8Gkqbcub1ke8CFw' +
  'dhjJ/YZpNqu2k9tqnTEzv+pFUlRHMQYAopSqtfThAAAB/wgAAJUAADYAAAAArwHeAgBMYXZjNTkuMzcuMTAwAAJYolRSIv7XdZz7/rv8Snj43m' +
  'pU1SQsMVicVicViePdVNGVTGtV2tWWxYmzcZ4/Db7pVRqwpQpU7YqzJVmSfWylUZVGVxkoGBv6N/RgYGBgYGBgYGBgY2bBgZEiBgYGBgZEilll' +
  'llllllllllllllllllllllllllllllllllllll4AAACgCQAAGAAAZAAAAAAnAQAAZAAAAA9BmiWxDX89MwunKqjEgYAAAAAjCAAAhQAAZAAAAA' +
  'CvAQESktrKc2S5slzZLl//T/+/x1cvXv//W/9/rri71+f/6v/z9+uL1r+P/6v/2+OtanQdvaTDIMDAwMDOiVPX6mK9hOLYEZGMRqIqNcVH0io+' +
  'kVH03cSoN9NfGIyzm41PyRvSmAm1EZkUbIo3oo3og9FEA8yKKMPMgNdCYqeeeeef5c3AAAAAkAgAAGkAAJIAAAAArwEBHvEZEFKrLfbJ4v7fP+' +
  'Pa501LTVS7aStQHS2OMyO7u7iDNVSWm314s1kmayEz/x8GT7+5D4+Gx7+8IyfGYZ/cg/8GDvvCH/hsO+8I+PjMM/voB/jME++gP5MwX76A/8GC' +
  'dGgI+OHAAAAAdAgAAF4AAMEAAAAArwEA6jEQ9lJ5nVTvE+f/7Nf/P8la1l86yRe2syQXipEiRI6zYHOgb4QP6sg7OODgZ7v06WaXosXnMXnLgz' +
  'SxEQS6lBYpQoyfPsc9ulHoBsl8RgMy2S88hQqCkL7vPwAAAGkJAAHFAADIAAAAABcBAABkAAABvGWIggAx/9CHfWw+//OZSB1JP4TaiCnN+NQ7' +
  '2evWOeFYMIThoQx6vr1Y+J++z6PKcjonVjxevBGzmpLWvmXRiib1Tf6aQyifO4NTbpIMfJaJ5wiFUHyKzONU6qZpulIyRtPHpkJbLFHKubbwGu' +
  'nTPK+U15tnQGHJc3Uo5rDQjFZSCCwJ6s4OC6yagEDjpGJyKAwpiH4mUNEmitlWZpjaG2sRJnTgiY75f5k+0+uJPlLMY4tnocao+S1x8qp/nreO' +
  'dVuLSrNClKz0E4983TIzlfXUkKS0aDIVeVkH/b0nW4DIjOVwnhzA1Ev3ndqkG8o3ZroWTmSLkEOFsfCe/uE8SCVJ5+Y7EHx3XzY748bl/WqxhD' +
  'HHSMNxUllw1FnD/F0YnKxHvN63HE6a2HhKv5QAxbDFbKPBOpumQP2BeYaoZf/g+n9GgPD/4Mh5BqAENiwg27JezQqF/su6btgLutshyQ+g68c3' +
  '1utHKYft67D73CyjpBeYcs4ZILJzGPPdZD9R9tKOmzi8agc1721UziULiccDt43jhB6Fa/dvY/DpR8YrvJcAjNxHF8nF8mQsPmTAhvTOhrVNy6' +
  'z4qOoDfQAAAdAIAACOAADvAAAAAK8BAT4xACxrKwkaxICgn//7frOM3//e3/5/9b74yO9aMuSS6UADjfcKLC5eLXBIPogKcs0SOWQHyg0tAZZ5' +
  'VBiT4YWDDx70hh7B4M28OKHvKXAMDHvOlPYVx2Y2ecSOG9epc5wvpEgRih5QscBHMKkFS41TzFvKZcZ3bxTIp7WO0Yk12DZD+1AeWiMOecAAAA' +
  'CZCAAAWQABHgAAAACvAQDwMREyMbNZPd3uf/h9v+v/N21nWM47uVz1K5uxEDRo1Syy/0Ofyv9+j4mCLVq1atTV1rDqrjr4qzcPzpVKuFOVZ57y' +
  'kLszTDOZp5oVxNdj9w1zAVtp4AAAAGQIAABkAAFMAAAAAK8BAUYxE+NNTvKp9vz/p7fWOqcUvOt3dXLWAAAMRjw8PDw+1Qe4etYgAAABhi0PDw' +
  '8PPvAAAAAp3Dw8+63AAAAU7uHh4e27wAAA7vGHh593cAAABh3Dw8PPu8AAAGFPGHh4e3wAAABvCAAAXwABewAAAACvAQE6MQvjc0XPXOZf6taT' +
  'WS2s1U0XIH/j4+PjM7n99GRsO+/v7+4P8fHx8GGf39/cgf4+PhsD39/eEg/8fGYAZ/f30AfHx8fACff39wB8fHw2B7+/v7gP/Hx8GCffgAAAAG' +
  'oJAAAFAADIAAAAABcCAAAAAAAAEA==',
);
// [type, timestamp, dataSize] of every tag in SMALL_FLV.
const SMALL_TAGS: [number, number, number][] = [
  [18, 0, 230], [9, 0, 49], [8, 0, 7], [9, 0, 500], [8, 54, 149], [9, 100, 24], [8, 100, 133], [8, 146, 105],
  [8, 193, 94], [9, 200, 453], [8, 239, 142], [8, 286, 89], [8, 332, 100], [8, 379, 95], [9, 200, 5],
];

function demuxAll(chunks: Uint8Array[], opts?: FlvDemuxerOptions): FlvTag[] {
  const tags: FlvTag[] = [];
  const d = new FlvDemuxer((t) => tags.push({ ...t, data: t.data.slice() }), opts);
  for (const c of chunks) d.push(c);
  d.end();
  return tags;
}

describe('FLV framing', () => {
  it('writes the file header', () => {
    assert.equal(toHex(flvHeader({ audio: true, video: true })), '464c5601050000000900000000');
    assert.equal(toHex(flvHeader({ video: true })), '464c5601010000000900000000');
    assert.deepEqual(parseFlvHeader(flvHeader({ audio: true })), { version: 1, audio: true, video: false, dataOffset: 9 });
    assert.throws(() => parseFlvHeader(fromHex('464c5702050000000900')), /signature/);
    assert.throws(() => parseFlvHeader(fromHex('464c5601050000000000')), /dataOffset/);
  });

  it('writes tags with the extended timestamp byte and PreviousTagSize', () => {
    const payload = fromHex('aabbcc');
    const parts = flvTag(9, 0x12345678, [payload.subarray(0, 1), payload.subarray(1)]);
    assert.equal(parts.length, 4);
    assert.equal(parts[1]!.buffer, payload.buffer); // payload not copied
    assert.equal(toHex(concat(parts)), '09000003' + '345678' + '12' + '000000' + 'aabbcc' + '0000000e');
    const h = parseFlvTagHeader(concat(parts));
    assert.deepEqual(h, { type: 9, dataSize: 3, timestamp: 0x12345678, streamId: 0 });
    // Negative or > 32-bit timestamps wrap modulo 2^32; fractional ms are floored.
    assert.equal(parseFlvTagHeader(concat(flvTag(8, 2 ** 32 + 5.7, []))).timestamp, 5);
    assert.equal(parseFlvTagHeader(concat(flvTag(8, -1, []))).timestamp, 0xffffffff);
    assert.throws(() => writeFlvTagHeader(new Uint8Array(11), 0, 8, 0x1000000, 0), /16 MiB/);
  });

  it('rejects unknown, reserved and encrypted tag headers', () => {
    assert.throws(() => parseFlvTagHeader(fromHex('07000001000000000000000')), FormatError);
    assert.throws(() => parseFlvTagHeader(fromHex('0700000100000000000000')), /unknown FLV tag type 7/);
    assert.throws(() => parseFlvTagHeader(fromHex('2900000100000000000000')), UnsupportedFormatError);
    assert.throws(() => parseFlvTagHeader(fromHex('4900000100000000000000')), /reserved bits/);
    assert.throws(() => parseFlvTagHeader(fromHex('09000001')), /needs 11 bytes/);
  });
});

describe('FlvDemuxer', () => {
  it('demuxes an ffmpeg FLV file', () => {
    const tags = demuxAll([SMALL_FLV]);
    assert.deepEqual(tags.map((t) => [t.type, t.timestamp, t.data.length]), SMALL_TAGS);
    const meta = parseOnMetaData(tags[0]!.data)!;
    assert.equal(meta.width, 64);
    assert.equal(meta.height, 64);
    assert.equal(meta.videocodecid, 7);
    assert.equal(meta.audiosamplerate, 22050);
    assert.equal(meta.stereo, false);

    const seq = parseVideoTagBody(tags[1]!.data);
    assert.equal(seq.codec, 'h264');
    assert.equal(seq.packet, 'seqhdr');
    assert.equal(seq.frameType, 'key');
    assert.equal(seq.enhanced, false);
    const avcc = parseAvcC(seq.data);
    assert.equal(avcc.profile, 100);
    assert.equal(avcc.lengthSize, 4);

    const key = parseVideoTagBody(tags[3]!.data);
    assert.deepEqual([key.frameType, key.packet, key.cts, key.data.length], ['key', 'nalu', 100, 495]);
    const inter = parseVideoTagBody(tags[5]!.data);
    assert.deepEqual([inter.frameType, inter.cts], ['inter', 100]);
    assert.equal(parseVideoTagBody(tags[14]!.data).packet, 'end');

    const aseq = parseAudioTagBody(tags[2]!.data);
    assert.deepEqual([aseq.codec, aseq.packet, aseq.soundRate, aseq.soundSize, aseq.channels], ['aac', 'seqhdr', 44100, 16, 2]);
    const asc = parseAsc(aseq.data);
    assert.deepEqual([asc.objectType, asc.sampleRate, asc.channels], [2, 22050, 1]);
    const araw = parseAudioTagBody(tags[4]!.data);
    assert.deepEqual([araw.packet, araw.data.length], ['raw', 147]);
  });

  it('hands out views into the pushed chunk unless asked to copy', () => {
    let viewed = 0;
    const d = new FlvDemuxer((t) => {
      if (t.data.buffer === SMALL_FLV.buffer) viewed++;
    });
    d.push(SMALL_FLV);
    assert.equal(viewed, SMALL_TAGS.length);
    let copied = 0;
    const c = new FlvDemuxer((t) => {
      if (t.data.buffer !== SMALL_FLV.buffer) copied++;
    }, { copy: true });
    c.push(SMALL_FLV);
    assert.equal(copied, SMALL_TAGS.length);
  });

  it('gives the same tags whatever the chunking (1 byte at a time, random splits)', () => {
    const whole = demuxAll([SMALL_FLV]);
    const bytewise: Uint8Array[] = [];
    for (let i = 0; i < SMALL_FLV.length; i++) bytewise.push(SMALL_FLV.subarray(i, i + 1));
    assert.deepEqual(demuxAll(bytewise), whole);
    const rnd = prng(42);
    for (let round = 0; round < 50; round++) {
      const chunks: Uint8Array[] = [];
      for (let p = 0; p < SMALL_FLV.length;) {
        const n = 1 + Math.floor(rnd() * (round % 2 ? 40 : 700));
        chunks.push(SMALL_FLV.subarray(p, p + n));
        p += n;
      }
      assert.deepEqual(demuxAll(chunks), whole);
    }
  });

  it('re-muxes the file byte for byte', () => {
    const tags = demuxAll([SMALL_FLV]);
    const out = [flvHeader({ audio: true, video: true })];
    for (const t of tags) out.push(...flvTag(t.type, t.timestamp, [t.data]));
    assert.equal(toHex(concat(out)), toHex(SMALL_FLV));
  });

  it('reports malformed streams and stays failed', () => {
    const bad = SMALL_FLV.slice();
    bad[13] = 7; // first tag type
    const d = new FlvDemuxer(() => {});
    assert.throws(() => d.push(bad), /unknown FLV tag type 7/);
    assert.throws(() => d.push(SMALL_FLV), /unknown FLV tag type 7/);

    assert.throws(() => demuxAll([SMALL_FLV], { maxTagSize: 400 }), /exceeds the 400-byte limit/);

    const prev = SMALL_FLV.slice();
    prev[13 + 11 + 230 + 3] ^= 1; // PreviousTagSize after the script tag
    assert.throws(() => demuxAll([prev]), /PreviousTagSize/);
    assert.equal(demuxAll([prev], { checkPreviousTagSize: false }).length, SMALL_TAGS.length);

    assert.throws(() => demuxAll([SMALL_FLV.subarray(0, 100)]), /ended inside a tag body/);
    assert.throws(() => demuxAll([SMALL_FLV.subarray(0, 5)]), /ended inside a header/);
    // Ending right after a tag's data, before its PreviousTagSize, is accepted (live cut-off).
    assert.equal(demuxAll([SMALL_FLV.subarray(0, SMALL_FLV.length - 2)]).length, SMALL_TAGS.length);
  });

  it('can start without a file header and skips a larger dataOffset', () => {
    const tags = demuxAll([SMALL_FLV.subarray(13)], { header: false });
    assert.equal(tags.length, SMALL_TAGS.length);
    const padded = concat([fromHex('464c5601050000000c'), fromHex('000000'), SMALL_FLV.subarray(9)]);
    assert.equal(demuxAll([padded]).length, SMALL_TAGS.length);
  });

  it('assembles a large tag from many small chunks', () => {
    const body = new Uint8Array(300_000);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff;
    const bytes = concat([flvHeader(), ...flvTag(9, 40, [body]), ...flvTag(8, 41, [fromHex('af01')])]);
    const chunks: Uint8Array[] = [];
    for (let p = 0; p < bytes.length; p += 1000) chunks.push(bytes.subarray(p, p + 1000));
    const tags = demuxAll(chunks);
    assert.deepEqual(tags.map((t) => [t.type, t.timestamp, t.data.length]), [[9, 40, 300_000], [8, 41, 2]]);
    assert.equal(toHex(tags[0]!.data.subarray(0, 16)), toHex(body.subarray(0, 16)));
    assert.ok(tags[0]!.data.every((v, i) => v === body[i]));
  });

  it('emits empty tags', () => {
    const bytes = concat([flvHeader(), ...flvTag(8, 5, [])]);
    const tags = demuxAll([bytes]);
    assert.equal(tags.length, 1);
    assert.equal(tags[0]!.data.length, 0);
  });
});

describe('FLV video tag bodies', () => {
  const payload = fromHex('0000000265880000000141aa');

  it('builds legacy AVC headers', () => {
    assert.equal(toHex(buildVideoTagHeader({ codec: 'h264', packet: 'seqhdr' })), '1700000000');
    assert.equal(toHex(buildVideoTagHeader({ codec: 'h264', packet: 'nalu', frameType: 'key', cts: 100 })), '1701000064');
    assert.equal(toHex(buildVideoTagHeader({ codec: 'h264', packet: 'nalu', cts: -1 })), '2701ffffff');
    assert.equal(toHex(buildVideoTagHeader({ codec: 'h264', packet: 'end', frameType: 'key' })), '1702000000');
    const [h, p] = buildVideoTagBody({ codec: 'h264', packet: 'nalu', frameType: 'key', cts: -40 }, payload);
    assert.equal(p, payload);
    const v = parseVideoTagBody(concat([h!, p!]));
    assert.deepEqual([v.codec, v.frameType, v.packet, v.cts, toHex(v.data)], ['h264', 'key', 'nalu', -40, toHex(payload)]);
  });

  it('parses the legacy HEVC codec id 12 and can build it', () => {
    const v = parseVideoTagBody(fromHex('1c01000021' + '00000001aa'));
    assert.deepEqual([v.codec, v.frameType, v.packet, v.cts, v.enhanced], ['h265', 'key', 'nalu', 33, false]);
    assert.equal(toHex(buildVideoTagHeader({ codec: 'h265', packet: 'seqhdr', legacyHevc: true })), '1c00000000');
  });

  it('builds and parses E-RTMP headers for hvc1, av01, vp09 and avc1', () => {
    // hvc1 with a composition time uses CodedFrames + SI24; without, CodedFramesX.
    assert.equal(toHex(buildVideoTagHeader({ codec: 'h265', packet: 'seqhdr' })), '9068766331');
    assert.equal(toHex(buildVideoTagHeader({ codec: 'h265', packet: 'nalu', frameType: 'key', cts: 66 })), '9168766331000042');
    assert.equal(toHex(buildVideoTagHeader({ codec: 'h265', packet: 'nalu', frameType: 'inter' })), 'a368766331');
    assert.equal(toHex(buildVideoTagHeader({ codec: 'av1', packet: 'nalu', frameType: 'key' })), '9161763031');
    assert.equal(toHex(buildVideoTagHeader({ codec: 'vp9', packet: 'end' })), '9276703039');
    assert.equal(toHex(buildVideoTagHeader({ codec: 'h264', packet: 'nalu', cts: 5, enhanced: true })), 'a161766331000005');
    const cases: [Parameters<typeof buildVideoTagHeader>[0], string, number][] = [
      [{ codec: 'h265', packet: 'nalu', frameType: 'key', cts: -66 }, 'nalu', -66],
      [{ codec: 'h265', packet: 'nalu', frameType: 'inter' }, 'nalu', 0],
      [{ codec: 'h265', packet: 'seqhdr' }, 'seqhdr', 0],
      [{ codec: 'av1', packet: 'seqhdr' }, 'seqhdr', 0],
      [{ codec: 'av1', packet: 'nalu', frameType: 'inter' }, 'nalu', 0],
      [{ codec: 'vp9', packet: 'nalu', frameType: 'key' }, 'nalu', 0],
      [{ codec: 'vp8', packet: 'nalu', frameType: 'key' }, 'nalu', 0],
      [{ codec: 'h264', packet: 'nalu', frameType: 'key', cts: 7, enhanced: true }, 'nalu', 7],
    ];
    for (const [opts, packet, cts] of cases) {
      const v = parseVideoTagBody(concat(buildVideoTagBody(opts, payload)));
      assert.equal(v.codec, opts.codec);
      assert.equal(v.enhanced, true);
      assert.equal(v.packet, packet);
      assert.equal(v.cts, cts);
      assert.equal(v.frameType, opts.packet === 'seqhdr' ? 'key' : opts.frameType);
      assert.equal(toHex(v.data), toHex(payload));
    }
    assert.throws(() => buildVideoTagHeader({ codec: 'av1', packet: 'nalu', cts: 3 }), /no composition time/);
    assert.throws(() => buildVideoTagHeader({ codec: 'h264', packet: 'nalu', cts: 0x800000 }), /24 bits/);
  });

  it('parses E-RTMP metadata, ModEx and one-track multitrack', () => {
    const meta = amf0Encode('colorInfo', { colorConfig: { bitDepth: 10, colorPrimaries: 9 } });
    const v = parseVideoTagBody(concat([buildVideoTagHeader({ codec: 'h265', packet: 'metadata' }), meta]));
    assert.equal(v.packet, 'metadata');
    assert.deepEqual(parseVideoMetadata(v.data), [['colorInfo', { colorConfig: { bitDepth: 10, colorPrimaries: 9 } }]]);
    // Metadata ignores the frame type bits, even the command value.
    assert.equal(parseVideoTagBody(fromHex('d468766331' + toHex(meta))).packet, 'metadata');

    // ModEx (7): 3 bytes of TimestampOffsetNano = 500000, then type 0 / packet CodedFramesX (3).
    const modex = parseVideoTagBody(fromHex('97 02 07a120 03 68766331 aabb'));
    assert.deepEqual([modex.packet, modex.cts, modex.timestampOffsetNano, toHex(modex.data)], ['nalu', 0, 500000, 'aabb']);
    // ModEx with a 16-bit size (first byte 255 -> UI16 + 1).
    const big = parseVideoTagBody(concat([fromHex('97 ff 0100'), new Uint8Array(257), fromHex('10 68766331')]));
    assert.equal(big.packet, 'seqhdr');

    // Multitrack (6), one-track type (0) with packet CodedFrames (1), FourCC, track id 2, SI24 cts.
    const mt = parseVideoTagBody(fromHex('96 01 68766331 02 000010 cc'));
    assert.deepEqual([mt.codec, mt.trackId, mt.cts, toHex(mt.data)], ['h265', 2, 16, 'cc']);
    assert.throws(() => parseVideoTagBody(fromHex('96 11 68766331 02 000003 000010 cc')), UnsupportedFormatError);
  });

  it('rejects command frames, unknown codecs and short headers cleanly', () => {
    assert.throws(() => parseVideoTagBody(fromHex('5700')), UnsupportedFormatError); // legacy command frame
    assert.throws(() => parseVideoTagBody(fromHex('d168766331 00')), UnsupportedFormatError); // E-RTMP command
    assert.throws(() => parseVideoTagBody(fromHex('1200')), /legacy video codec id 2/);
    assert.throws(() => parseVideoTagBody(fromHex('9078787878')), /FourCC "xxxx"/);
    assert.throws(() => parseVideoTagBody(fromHex('95 68766331')), UnsupportedFormatError); // MPEG2TSSequenceStart
    assert.throws(() => parseVideoTagBody(fromHex('98 68766331')), /packet type 8/);
    assert.throws(() => parseVideoTagBody(fromHex('170100')), /shorter than its 5-byte header/);
    assert.throws(() => parseVideoTagBody(fromHex('1705000000')), /AVC packet type 5/);
    assert.throws(() => parseVideoTagBody(fromHex('0701000000')), /reserved video frame type 0/);
    assert.throws(() => parseVideoTagBody(fromHex('91687663')), /unexpected end/);
    assert.throws(() => parseVideoTagBody(new Uint8Array(0)), /empty video tag/);
  });
});

describe('FLV audio tag bodies', () => {
  it('builds legacy headers as ffmpeg does', () => {
    assert.equal(toHex(buildAudioTagHeader({ codec: 'aac', packet: 'seqhdr' })), 'af00');
    assert.equal(toHex(buildAudioTagHeader({ codec: 'aac' })), 'af01');
    assert.equal(toHex(buildAudioTagHeader({ codec: 'pcma' })), '72');
    assert.equal(toHex(buildAudioTagHeader({ codec: 'pcmu' })), '82');
    assert.equal(toHex(buildAudioTagHeader({ codec: 'mp3', soundRate: 44100, channels: 2 })), '2f');
    assert.equal(toHex(buildAudioTagHeader({ codec: 'mp3', soundRate: 22050, channels: 1 })), '2a');
    assert.equal(toHex(buildAudioTagHeader({ codec: 'mp3', soundRate: 8000, channels: 1 })), 'ee');
    assert.throws(() => buildAudioTagHeader({ codec: 'aac', packet: 'end' }), FormatError);
    assert.throws(() => buildAudioTagHeader({ codec: 'speex' }), FormatError);
  });

  it('parses legacy bodies', () => {
    const a = parseAudioTagBody(fromHex('af01 2101'));
    assert.deepEqual([a.codec, a.packet, toHex(a.data)], ['aac', 'raw', '2101']);
    const g = parseAudioTagBody(fromHex('72 d5d5'));
    assert.deepEqual([g.codec, g.packet, g.soundSize, g.channels, g.data.length], ['pcma', 'raw', 16, 1, 2]);
    assert.equal(parseAudioTagBody(fromHex('82 ff')).codec, 'pcmu');
    const m = parseAudioTagBody(fromHex('2f fffb'));
    assert.deepEqual([m.codec, m.soundRate, m.channels], ['mp3', 44100, 2]);
    assert.equal(parseAudioTagBody(fromHex('ee 00')).soundRate, 8000);
    assert.throws(() => parseAudioTagBody(fromHex('af')), /2-byte header/);
    assert.throws(() => parseAudioTagBody(fromHex('af02')), /AAC packet type 2/);
    assert.throws(() => parseAudioTagBody(fromHex('d0')), UnsupportedFormatError);
    assert.throws(() => parseAudioTagBody(new Uint8Array(0)), /empty audio tag/);
  });

  it('builds and parses E-RTMP audio (Opus, FLAC, AC-3, E-AC-3, mp4a)', () => {
    const head = fromHex('4f707573486561640102380180bb00000000 00');
    assert.equal(toHex(buildAudioTagHeader({ codec: 'opus', packet: 'seqhdr' })), '904f707573');
    assert.equal(toHex(buildAudioTagHeader({ codec: 'opus' })), '914f707573');
    const s = parseAudioTagBody(concat(buildAudioTagBody({ codec: 'opus', packet: 'seqhdr' }, head)));
    assert.deepEqual([s.codec, s.packet, s.enhanced, toHex(s.data)], ['opus', 'seqhdr', true, toHex(head)]);
    for (const codec of ['opus', 'flac', 'ac3', 'eac3'] as const) {
      const b = parseAudioTagBody(concat(buildAudioTagBody({ codec }, fromHex('0102'))));
      assert.deepEqual([b.codec, b.packet, toHex(b.data)], [codec, 'raw', '0102']);
    }
    const aac = parseAudioTagBody(concat(buildAudioTagBody({ codec: 'aac', packet: 'seqhdr', enhanced: true }, fromHex('1210'))));
    assert.deepEqual([aac.codec, aac.packet, aac.enhanced, toHex(aac.data)], ['aac', 'seqhdr', true, '1210']);
    assert.equal(parseAudioTagBody(concat(buildAudioTagBody({ codec: 'opus', packet: 'end' }, new Uint8Array(0)))).packet, 'end');
  });

  it('parses E-RTMP multichannel config, ModEx and one-track multitrack', () => {
    const native = parseAudioTagBody(fromHex('94 4f707573 01 06 0000003f'));
    assert.deepEqual(native.multichannel, { order: 1, channelCount: 6, channelFlags: 0x3f });
    const custom = parseAudioTagBody(fromHex('94 4f707573 02 02 0100'));
    assert.deepEqual([custom.multichannel!.order, [...custom.multichannel!.mapping!]], [2, [1, 0]]);
    assert.throws(() => parseAudioTagBody(fromHex('94 4f707573 02 09 0100')), /channel mapping/);
    const modex = parseAudioTagBody(fromHex('97 02 0003e8 01 4f707573 fc'));
    assert.deepEqual([modex.packet, modex.timestampOffsetNano, toHex(modex.data)], ['raw', 1000, 'fc']);
    const mt = parseAudioTagBody(fromHex('95 01 4f707573 03 fc'));
    assert.deepEqual([mt.codec, mt.trackId, toHex(mt.data)], ['opus', 3, 'fc']);
    assert.throws(() => parseAudioTagBody(fromHex('95 21 4f707573 03 fc')), UnsupportedFormatError);
    assert.throws(() => parseAudioTagBody(fromHex('91 78787878')), UnsupportedFormatError);
    assert.throws(() => parseAudioTagBody(fromHex('93 4f707573')), /packet type 3/);
  });
});

describe('FLV script data', () => {
  it('builds and parses onMetaData', () => {
    const body = buildOnMetaData({ width: 1280, height: 720, videocodecid: 7, encoder: 'm7s' });
    assert.equal(body[13], 0x08); // ECMA array after the name
    assert.deepEqual(parseOnMetaData(body), { width: 1280, height: 720, videocodecid: 7, encoder: 'm7s' });
    // RTMP form: '@setDataFrame', 'onMetaData', {...}
    const rtmp = amf0Encode('@setDataFrame', 'onMetaData', { duration: 0 });
    assert.deepEqual(parseOnMetaData(rtmp), { duration: 0 });
    assert.equal(parseOnMetaData(buildScriptTagBody('onCuePoint', { name: 'x' })), undefined);
    const s = parseScriptTagBody(buildScriptTagBody('onTextData', { text: 'hi' }, 2));
    assert.deepEqual(s, { name: 'onTextData', value: { text: 'hi' }, values: [{ text: 'hi' }, 2] });
    assert.throws(() => parseScriptTagBody(amf0Encode(1, 2)), /name string/);
  });

  it('onMetaData for the same tracks is encoded once and shared; a changed field gets its own', () => {
    const v = new Track('video', 0, 90000, { codec: 'h264', width: 1280, height: 720 });
    const a = new Track('audio', 0, 44100, { codec: 'aac', sampleRate: 44100, channels: 2 });
    v.fps = 30;
    const m1 = flvMetaData([v, a]), m2 = flvMetaData([v, a]);
    assert.equal(m2, m1, 'the same bytes object for a second player');
    assert.deepEqual(m1, buildOnMetaData(flvMetaFields([v, a])), 'what encoding the fields gives');
    assert.deepEqual(parseOnMetaData(m1), { width: 1280, height: 720, framerate: 30, videocodecid: 7, audiocodecid: 10, audiosamplerate: 44100, stereo: true, encoder: 'm7s' });
    v.fps = 29.9;
    const m3 = flvMetaData([v, a]);
    assert.notEqual(m3, m1);
    assert.equal(parseOnMetaData(m3)!.framerate, 29.9);
    assert.notEqual(flvMetaData([v]), m1, 'other tracks, other bytes');
    // More distinct values than the cache keeps: still right.
    for (let i = 0; i < 100; i++) { v.fps = i; assert.equal(parseOnMetaData(flvMetaData([v]))!.framerate, i || undefined); }
  });
});

describe('FLV fuzz', () => {
  const tags = demuxAll([SMALL_FLV]);
  const videoSeeds = [
    ...tags.filter((t) => t.type === 9).map((t) => t.data),
    fromHex('97 02 07a120 03 68766331 aabb'), fromHex('96 01 68766331 02 000010 cc'),
    fromHex('9168766331000042 0000'), fromHex('1c01000021 00000001aa'), fromHex('9461763031 0200'),
  ];
  const audioSeeds = [
    ...tags.filter((t) => t.type === 8).map((t) => t.data),
    fromHex('94 4f707573 02 02 0100'), fromHex('94 4f707573 01 06 0000003f'), fromHex('97 02 0003e8 01 4f707573 fc'),
    fromHex('95 01 4f707573 03 fc'), fromHex('72 d5d5'),
  ];

  it('tag body parsers throw only FormatError', () => {
    fuzz('parseVideoTagBody', videoSeeds, parseVideoTagBody, 4000, 11);
    fuzz('parseAudioTagBody', audioSeeds, parseAudioTagBody, 4000, 12);
    fuzz('parseScriptTagBody', [tags[0]!.data], parseScriptTagBody, 3000, 13);
    fuzz('parseFlvTagHeader', [SMALL_FLV.subarray(13, 24)], (b) => parseFlvTagHeader(b), 2000, 14);
  });

  it('the demuxer throws only FormatError, whatever the chunking', () => {
    const rnd = prng(15);
    fuzz('FlvDemuxer', [SMALL_FLV, SMALL_FLV.subarray(0, 400)], (b) => {
      const d = new FlvDemuxer(() => {}, { maxTagSize: 1 << 16, checkPreviousTagSize: rnd() < 0.5 });
      for (let p = 0; p < b.length;) {
        const n = 1 + Math.floor(rnd() * 300);
        d.push(b.subarray(p, p + n));
        p += n;
      }
      d.end();
    }, 3000, 16);
  });
});
