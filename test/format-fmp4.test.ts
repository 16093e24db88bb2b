// fMP4/CMAF: init segment box tree (ftyp/moov/trak/stsd entries, esds, dOps, mvex), fragment layout
// (mfhd, tfhd, tfdt v1, trun v1 offsets and signed composition offsets, mdat), sample durations, and real
// decoders (ffprobe/ffmpeg) on files written from real x264/x265/AAC frames in whole-GOP and LL-HLS-part sized
// fragments.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  defaultFrameDuration, fragment, initSegment, sampleDurations, styp, trackFragment, SAMPLE_FLAGS_NON_SYNC, SAMPLE_FLAGS_SYNC,
  type Fmp4Track,
} from '../src/format/fmp4.ts';
import { bytesEqual, FormatError, toHex } from '../src/format/bytes.ts';
import { buildAsc } from '../src/codec/aac.ts';
import { buildOpusHead } from '../src/codec/opus.ts';
import { h264AacFrames, h265Frames, probeFile, tempDir, writeParts, type TestMedia } from './helpers/frames.ts';

interface Box { type: string; start: number; size: number; body: Uint8Array; children?: Box[] }
const CONTAINERS = new Set(['moov', 'trak', 'mdia', 'minf', 'dinf', 'stbl', 'mvex', 'moof', 'traf']);

/** Walk a box tree (containers above; stsd's entries and sample entries are handled by the tests). */
function boxes(b: Uint8Array, start = 0, end = b.length): Box[] {
  const out: Box[] = [];
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let p = start;
  while (p < end) {
    assert.ok(end - p >= 8, `box header at ${p}`);
    const size = v.getUint32(p);
    const type = String.fromCharCode(...b.subarray(p + 4, p + 8));
    assert.ok(size >= 8 && p + size <= end, `box ${type} size ${size} fits`);
    const box: Box = { type, start: p, size, body: b.subarray(p + 8, p + size) };
    if (CONTAINERS.has(type)) box.children = boxes(b, p + 8, p + size);
    out.push(box);
    p += size;
  }
  return out;
}

function find(list: Box[], path: string): Box {
  let cur: Box | undefined;
  let l = list;
  for (const t of path.split('/')) {
    cur = l.find((x) => x.type === t);
    assert.ok(cur, `box ${path} (${t})`);
    l = cur.children ?? [];
  }
  return cur!;
}

const SPS = Uint8Array.from([0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfa, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0x99, 0x60]);
const ASC = buildAsc({ objectType: 2, sampleRate: 48000, channelConfig: 2 });

describe('fMP4 init segment', () => {
  it('writes ftyp + moov with mvhd, trak (tkhd/mdhd/hdlr/minf/stbl) and mvex/trex for AAC and Opus', () => {
    const head = buildOpusHead({ channels: 2, preSkip: 312, inputSampleRate: 44100, outputGain: -256, mappingFamily: 0 });
    const tracks: Fmp4Track[] = [
      { id: 1, kind: 'audio', timescale: 48000, config: { codec: 'aac', data: ASC } },
      { id: 2, kind: 'audio', timescale: 48000, config: { codec: 'opus', data: head } },
    ];
    const init = initSegment(tracks);
    const top = boxes(init);
    assert.deepEqual(top.map((b) => b.type), ['ftyp', 'moov']);
    assert.equal(String.fromCharCode(...top[0]!.body), 'iso6\0\0\0\0iso6cmfcisommp41');
    const moov = top[1]!;
    assert.deepEqual(moov.children!.map((b) => b.type), ['mvhd', 'trak', 'trak', 'mvex']);
    const traks = moov.children!.filter((b) => b.type === 'trak');
    // mdhd timescale, hdlr 'soun', smhd, empty sample tables.
    const mdhd = find(traks[0]!.children!, 'mdia/mdhd').body;
    assert.equal(new DataView(mdhd.buffer, mdhd.byteOffset).getUint32(12), 48000);
    assert.equal(String.fromCharCode(...find(traks[0]!.children!, 'mdia/hdlr').body.subarray(8, 12)), 'soun');
    find(traks[0]!.children!, 'mdia/minf/smhd');
    for (const t of ['stts', 'stsc', 'stco']) assert.equal(toHex(find(traks[0]!.children!, `mdia/minf/stbl/${t}`).body), '0000000000000000');
    // stsd -> mp4a -> esds with the ASC as DecoderSpecificInfo.
    const stsd = find(traks[0]!.children!, 'mdia/minf/stbl/stsd').body;
    const mp4a = boxes(stsd, 8)[0]!;
    assert.equal(mp4a.type, 'mp4a');
    const esds = boxes(mp4a.body, 28)[0]!;
    assert.equal(esds.type, 'esds');
    assert.equal(toHex(esds.body), `00000000031900010004114015${'00'.repeat(11)}0502${toHex(ASC)}060102`);
    // Opus sample entry + dOps (big-endian OpusHead fields).
    const opus = boxes(find(traks[1]!.children!, 'mdia/minf/stbl/stsd').body, 8)[0]!;
    assert.equal(opus.type, 'Opus');
    const dops = boxes(opus.body, 28)[0]!;
    assert.equal(dops.type, 'dOps');
    assert.equal(toHex(dops.body), '000201380000ac44ff0000');
    // trex per track.
    const trex = find(moov.children!, 'mvex').children!;
    assert.deepEqual(trex.map((b) => new DataView(b.body.buffer, b.body.byteOffset).getUint32(4)), [1, 2]);
  });

  it('takes the video size from the SPS when the config has none, and rejects bad input', () => {
    const avcC = Uint8Array.from([1, 0x64, 0, 0x0d, 0xff, 0xe1, 0, SPS.length, ...SPS, 1, 0, 4, 0x68, 0xeb, 0xe3, 0xcb]);
    const init = initSegment([{ id: 1, kind: 'video', timescale: 90000, config: { codec: 'h264', data: avcC } }]);
    const trak = find(boxes(init), 'moov/trak');
    const tkhd = find(trak.children!, 'tkhd').body;
    const dv = new DataView(tkhd.buffer, tkhd.byteOffset);
    const w = dv.getUint32(tkhd.length - 8) / 65536, h = dv.getUint32(tkhd.length - 4) / 65536;
    const avc1 = boxes(find(trak.children!, 'mdia/minf/stbl/stsd').body, 8)[0]!;
    assert.equal(avc1.type, 'avc1');
    const av = new DataView(avc1.body.buffer, avc1.body.byteOffset);
    assert.deepEqual([av.getUint16(24), av.getUint16(26)], [w, h]);
    assert.ok(w > 0 && h > 0);
    const avcCBox = boxes(avc1.body, 78)[0]!;
    assert.equal(avcCBox.type, 'avcC');
    assert.ok(bytesEqual(avcCBox.body, avcC));
    assert.throws(() => initSegment([]), FormatError);
    assert.throws(() => initSegment([{ id: 1, kind: 'video', timescale: 90000, config: { codec: 'h264' } }]), FormatError);
    assert.throws(() => initSegment([{ id: 1, kind: 'video', timescale: 90000, config: { codec: 'vp8' } }]), FormatError);
    assert.throws(() => initSegment([{ id: 1, kind: 'audio', timescale: 0, config: { codec: 'aac', data: ASC } }]), FormatError);
  });
});

describe('fMP4 fragments', () => {
  it('lays out moof (mfhd, tfhd, tfdt v1, trun v1) + mdat with data offsets into the parts', () => {
    const v1 = new Uint8Array(10).fill(1), v2 = new Uint8Array(20).fill(2), a1 = new Uint8Array(7).fill(3);
    const base = 2 ** 32 + 5; // needs the 64-bit tfdt
    const parts = fragment(7, [
      { trackId: 1, baseDts: base, samples: [{ duration: 3600, size: 10, key: true, cts: 7200 }, { duration: 3600, size: 20, key: false, cts: -3600 }], data: [v1, v2] },
      { trackId: 2, baseDts: 1024, samples: [{ duration: 1024, size: 7, key: true, cts: 0 }], data: [a1] },
    ]);
    assert.equal(parts.length, 4);
    assert.equal(parts[1], v1, 'sample data passed through, not copied');
    const head = parts[0]!;
    const file = new Uint8Array(head.length + 37);
    file.set(head);
    file.set(v1, head.length); file.set(v2, head.length + 10); file.set(a1, head.length + 30);
    const top = boxes(file);
    assert.deepEqual(top.map((b) => b.type), ['moof', 'mdat']);
    assert.equal(top[1]!.size, 8 + 37);
    const moof = top[0]!;
    assert.equal(new DataView(find([moof], 'moof/mfhd').body.buffer, find([moof], 'moof/mfhd').body.byteOffset).getUint32(4), 7);
    const trafs = moof.children!.filter((b) => b.type === 'traf');
    const rd = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
    const tfhd = rd(find(trafs[0]!.children!, 'tfhd').body);
    assert.equal(tfhd.getUint32(0), 0x020000, 'default-base-is-moof');
    const tfdt = rd(find(trafs[0]!.children!, 'tfdt').body);
    assert.equal(tfdt.getUint8(0), 1);
    assert.equal(tfdt.getUint32(4) * 2 ** 32 + tfdt.getUint32(8), base);
    const trun = rd(find(trafs[0]!.children!, 'trun').body);
    assert.equal(trun.getUint32(0), 0x01000f01);
    assert.equal(trun.getUint32(4), 2);
    const off0 = trun.getInt32(8);
    assert.ok(bytesEqual(file.subarray(off0, off0 + 10), v1), 'data_offset (from moof start) points at the first sample');
    assert.deepEqual([trun.getUint32(12), trun.getUint32(16), trun.getUint32(20), trun.getInt32(24)], [3600, 10, SAMPLE_FLAGS_SYNC, 7200]);
    assert.deepEqual([trun.getUint32(28), trun.getUint32(32), trun.getUint32(36), trun.getInt32(40)], [3600, 20, SAMPLE_FLAGS_NON_SYNC, -3600]);
    const trun2 = rd(find(trafs[1]!.children!, 'trun').body);
    const off1 = trun2.getInt32(8);
    assert.equal(off1, off0 + 30);
    assert.ok(bytesEqual(file.subarray(off1, off1 + 7), a1));
    assert.throws(() => fragment(1, [{ trackId: 1, baseDts: 0, samples: [{ duration: 1, size: 5, key: true, cts: 0 }], data: [v1] }]), FormatError);
    assert.equal(String.fromCharCode(...styp().subarray(4, 12)), 'stypmsdh');
  });

  it('derives sample durations, using the next dts or the typical duration for the last sample', () => {
    assert.deepEqual(sampleDurations([0, 3600, 7200], 10800, 3000), [3600, 3600, 3600]);
    assert.deepEqual(sampleDurations([0, 3600, 7200], undefined, 3000), [3600, 3600, 3000]);
    assert.deepEqual(sampleDurations([100, 90], undefined, 10), [0, 10], 'never negative');
    assert.equal(defaultFrameDuration({ codec: 'aac', data: ASC }, 48000), 1024);
    assert.equal(defaultFrameDuration({ codec: 'opus' }, 48000), 960);
    assert.equal(defaultFrameDuration({ codec: 'h264' }, 90000), 3600);
    const tf = trackFragment(3, [{ dts: 10, cts: 5, key: true, data: new Uint8Array(3) }, { dts: 20, cts: 0, key: false, data: new Uint8Array(4) }], 35, 99);
    assert.deepEqual(tf.samples, [{ duration: 10, size: 3, key: true, cts: 5 }, { duration: 15, size: 4, key: false, cts: 0 }]);
    assert.equal(tf.baseDts, 10);
  });
});

/** Fragments of about `perFragment` seconds (both tracks in each), as a live fMP4/LL-HLS packager would cut. */
function muxFmp4(m: TestMedia, perFragment: number): Uint8Array[] {
  const tracks: Fmp4Track[] = [{ id: 1, kind: 'video', timescale: m.video.clockRate, config: m.video.config }];
  if (m.audio) tracks.push({ id: 2, kind: 'audio', timescale: m.audio.clockRate, config: m.audio.config });
  const parts: Uint8Array[] = [initSegment(tracks)];
  const vf = m.video.frames, af = m.audio?.frames ?? [];
  const vTyp = defaultFrameDuration(m.video.config, m.video.clockRate);
  const aTyp = m.audio ? defaultFrameDuration(m.audio.config, m.audio.clockRate) : 0;
  let seq = 1, vi = 0, ai = 0;
  for (let t = perFragment; vi < vf.length || ai < af.length; t += perFragment) {
    const v: typeof vf = [], a: typeof af = [];
    while (vi < vf.length && vf[vi]!.dts / m.video.clockRate < t - 1e-9) v.push(vf[vi++]!);
    while (ai < af.length && af[ai]!.dts / m.audio!.clockRate < t - 1e-9) a.push(af[ai++]!);
    const trafs = [];
    // The last fragment does not know the next dts yet: its last sample gets the typical duration.
    if (v.length) trafs.push(trackFragment(1, v, vf[vi]?.dts, vTyp));
    if (a.length) trafs.push(trackFragment(2, a, af[ai]?.dts, aTyp));
    if (trafs.length) parts.push(...fragment(seq++, trafs));
  }
  return parts;
}

describe('fMP4 with real H.264/H.265/AAC frames and ffprobe', () => {
  const tmp = tempDir();
  let h264: TestMedia;
  let h265: TestMedia;
  before(async () => {
    h264 = await h264AacFrames(tmp.dir);
    h265 = await h265Frames(tmp.dir);
  });
  after(() => tmp.remove());

  for (const per of [1, 0.2]) {
    it(`H.264 (B-frames) + AAC in ${per} s fragments: ffprobe is silent, codecs/size/rate/counts/timestamps/duration right`, async () => {
      const file = tmp.file(`h264-${per}.mp4`);
      writeParts(file, muxFmp4(h264, per));
      const p = await probeFile(file);
      assert.equal(p.errors, '', 'ffprobe/ffmpeg -v error say nothing');
      const v = p.streams.find((s) => s.codec_type === 'video'), a = p.streams.find((s) => s.codec_type === 'audio');
      assert.equal(v.codec_name, 'h264');
      assert.equal(v.width, 320);
      assert.equal(v.height, 240);
      assert.equal(a.codec_name, 'aac');
      assert.equal(+a.sample_rate, 44100);
      assert.equal(a.channels, 1);
      const vp = p.packets.filter((x) => x.codec_type === 'video'), ap = p.packets.filter((x) => x.codec_type === 'audio');
      assert.equal(vp.length, h264.video.frames.length);
      assert.equal(ap.length, h264.audio!.frames.length);
      assert.equal(vp.filter((x) => x.flags.startsWith('K')).length, h264.video.frames.filter((f) => f.key).length, 'sync samples');
      for (let i = 1; i < vp.length; i++) assert.ok(+vp[i].dts > +vp[i - 1].dts, `video dts increases at ${i}`);
      for (let i = 1; i < ap.length; i++) assert.ok(+ap[i].pts > +ap[i - 1].pts, `audio pts increases at ${i}`);
      // Exact timestamps and sizes in the track timescales (ffprobe reports them in 1/90000 and 1/44100).
      for (const [i, f] of h264.video.frames.entries()) {
        assert.equal(+vp[i].dts, f.dts, `video dts #${i}`);
        assert.equal(+vp[i].pts, f.dts + f.cts, `video pts #${i}`);
        assert.equal(+vp[i].size, f.data.length);
      }
      for (const [i, f] of h264.audio!.frames.entries()) assert.equal(+ap[i].pts, f.dts, `audio pts #${i}`);
      assert.ok(Math.abs(+p.format.duration - 3) < 0.15, `duration ${p.format.duration} ≈ 3 s`);
    });
  }

  it('H.265 in 1 s fragments: ffprobe is silent, hevc 320x240, 75 packets, 3 s', async () => {
    const file = tmp.file('h265.mp4');
    writeParts(file, muxFmp4(h265, 1));
    const p = await probeFile(file);
    assert.equal(p.errors, '');
    assert.equal(p.streams[0].codec_name, 'hevc');
    assert.equal(p.streams[0].codec_tag_string, 'hvc1');
    assert.equal(p.streams[0].width, 320);
    assert.equal(p.streams[0].height, 240);
    assert.equal(p.packets.length, 75);
    assert.equal(p.packets.filter((x) => x.flags.startsWith('K')).length, h265.video.frames.filter((f) => f.key).length);
    for (let i = 1; i < p.packets.length; i++) assert.ok(+p.packets[i].dts > +p.packets[i - 1].dts);
    assert.ok(Math.abs(+p.format.duration - 3) < 0.15, `duration ${p.format.duration}`);
  });
});
