// The edge's live-body splitters (adapters/edge/live.ts): FLV tags and fMP4 boxes cut the same way
// whatever the chunking, headers/sequence headers marked for late joiners, starts only on video
// keyframes; hostile origin bytes throw FormatError only (seeded fuzzer). Also the stream key that
// picks a Durable Object.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FlvSplitter, Mp4Splitter, type Splitter, type Unit } from '../adapters/edge/live.ts';
import { classify } from '../adapters/edge/hub.ts';
import { streamKey } from '../adapters/edge/worker.ts';
import { flvHeader, flvTag } from '../src/format/flv.ts';
import { fragment, initSegment, trackFragment, type Fmp4Track } from '../src/format/fmp4.ts';
import { buildAvcC } from '../src/codec/h264.ts';
import { buildAsc } from '../src/codec/aac.ts';
import { FormatError } from '../src/format/bytes.ts';
import { fuzz } from './helpers/fuzz.ts';

const cat = (parts: Uint8Array[]) => { const o = new Uint8Array(parts.reduce((n, p) => n + p.length, 0)); let i = 0; for (const p of parts) { o.set(p, i); i += p.length; } return o; };
const SPS = Uint8Array.from([0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfa, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0x99, 0x60]);
const PPS = Uint8Array.from([0x68, 0xee, 0x3c, 0x80]);
const AVCC = buildAvcC([SPS], [PPS]);
const ASC = buildAsc({ objectType: 2, sampleRate: 44100, channelConfig: 2 });

/** An FLV stream: header, script, AVC + AAC sequence headers, key, inter, audio, key. */
function flvStream(): Uint8Array {
  const tag = (type: 8 | 9 | 18, ts: number, body: number[] | Uint8Array) => cat(flvTag(type, ts, [Uint8Array.from(body)]));
  return cat([
    flvHeader(),
    tag(18, 0, [2, 0, 10, ...new TextEncoder().encode('onMetaData'), 8, 0, 0, 0, 0, 0, 0, 9]),
    tag(9, 0, Uint8Array.from([0x17, 0, 0, 0, 0, ...AVCC])),
    tag(8, 0, [0xaf, 0, ...ASC]),
    tag(9, 0, [0x17, 1, 0, 0, 0, 0, 0, 0, 2, 0x65, 0x88]),
    tag(9, 40, [0x27, 1, 0, 0, 0, 0, 0, 0, 2, 0x41, 0x9a]),
    tag(8, 23, [0xaf, 1, 0x21, 0x10]),
    tag(9, 1000, [0x17, 1, 0, 0, 0, 0, 0, 0, 2, 0x65, 0x88]),
  ]);
}

/** An fMP4 stream: ftyp+moov (H.264 + AAC), then key video, inter video, audio, key video fragments. */
function mp4Stream(): Uint8Array {
  const tracks: Fmp4Track[] = [
    { id: 1, kind: 'video', timescale: 90000, config: { codec: 'h264', data: AVCC } },
    { id: 2, kind: 'audio', timescale: 44100, config: { codec: 'aac', data: ASC } },
  ];
  const v = (dts: number, key: boolean) => cat(fragment(dts + 1, [trackFragment(1, [{ dts, cts: 0, key, data: Uint8Array.from([0, 0, 0, 2, key ? 0x65 : 0x41, 0x88]) }], dts + 3600, 3600)]));
  const a = (dts: number) => cat(fragment(dts + 2, [trackFragment(2, [{ dts, cts: 0, key: true, data: Uint8Array.from([0x21, 0x10]) }], dts + 1024, 1024)]));
  return cat([initSegment(tracks), v(0, true), v(3600, false), a(0), v(7200, true)]);
}

function splitAll(s: Splitter, b: Uint8Array, chunk: number): Unit[] {
  const out: Unit[] = [];
  for (let i = 0; i < b.length; i += chunk) out.push(...s.push(b.subarray(i, i + chunk)));
  return out;
}

describe('edge live splitters', () => {
  it('FLV: one unit per tag whatever the chunking; init parts marked; starts on video keyframes only', () => {
    const b = flvStream();
    const whole = splitAll(new FlvSplitter(), b, b.length);
    for (const n of [1, 3, 7, 100]) {
      const parts = splitAll(new FlvSplitter(), b, n);
      assert.deepEqual(parts.map((u) => u.bytes.length), whole.map((u) => u.bytes.length), `chunks of ${n}`);
    }
    assert.equal(cat(whole.map((u) => u.bytes)).length, b.length, 'nothing lost');
    assert.deepEqual(whole.map((u) => u.init ?? (u.isJoin() ? 'JOIN' : '-')), ['header', 'script', 'video', 'audio', 'JOIN', '-', '-', 'JOIN']);
  });

  it('fMP4: ftyp/moov init, moof+mdat kept together, starts on video keyframe fragments only', () => {
    const b = mp4Stream();
    const whole = splitAll(new Mp4Splitter(), b, b.length);
    for (const n of [1, 5, 64]) {
      assert.deepEqual(splitAll(new Mp4Splitter(), b, n).map((u) => u.bytes.length), whole.map((u) => u.bytes.length), `chunks of ${n}`);
    }
    assert.deepEqual(whole.map((u) => u.init ?? (u.isJoin() ? 'JOIN' : '-')), ['ftyp', 'moov', 'JOIN', '-', '-', 'JOIN']);
  });

  it('hostile origin bytes: FormatError only (seeded fuzz)', () => {
    assert.throws(() => new FlvSplitter().push(new TextEncoder().encode('<html>not flv</html>')), FormatError);
    assert.throws(() => new Mp4Splitter().push(Uint8Array.from([0, 0, 0, 4, 0x6d, 0x6f, 0x6f, 0x66])), FormatError);
    fuzz('FlvSplitter', [flvStream()], (b) => { const s = new FlvSplitter(); for (const u of s.push(b)) u.isJoin(); }, 3000, 141);
    fuzz('Mp4Splitter', [mp4Stream()], (b) => { const s = new Mp4Splitter(); for (const u of s.push(b)) u.isJoin(); }, 3000, 142);
  });

  it('request kinds and the per-stream key (one Durable Object per stream)', () => {
    assert.equal(classify('/hls/live/x.m3u8'), 'playlist');
    assert.equal(classify('/llhls/live/x/index.m3u8'), 'playlist');
    assert.equal(classify('/hls/live/x/12.ts'), 'object');
    assert.equal(classify('/llhls/live/x/12.3.m4s'), 'object');
    assert.equal(classify('/hls/live/x/init-1.mp4'), 'object');
    assert.equal(classify('/flv/live/x.flv'), 'live-flv');
    assert.equal(classify('/mp4/live/x.mp4'), 'live-mp4');
    assert.equal(classify('/flv/api/list'), 'pass');
    for (const p of ['/hls/live/x.m3u8', '/hls/live/x/12.ts', '/llhls/live/x/index.m3u8', '/llhls/live/x/12.3.m4s', '/llhls/live/x/init-2.mp4', '/flv/live/x.flv', '/mp4/live/x.mp4']) {
      assert.equal(streamKey(p), 'live/x', p);
    }
    assert.equal(streamKey('/flv/a/b/c.flv'), 'a/b/c');
  });
});
