// src/format/mp4-file.ts: fragments written by initSegment/fragment read back sample for sample (B-frame
// composition offsets included), a torn last fragment is left out, the progressive MP4 built from them
// plays in ffprobe with every sample, sampleEntryConfig returns the avcC and AudioSpecificConfig, and
// the readers join the seeded fuzzer (only FormatError escapes).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { fragment, initSegment, trackFragment } from '../src/format/fmp4.ts';
import { progressiveMp4, readFragmented, sampleEntryConfig } from '../src/format/mp4-file.ts';
import { concat } from '../src/format/bytes.ts';
import { h264AacFrames, probeFile, tempDir, type TestMedia } from './helpers/frames.ts';
import { fuzz } from './helpers/fuzz.ts';

describe('mp4-file', () => {
  const tmp = tempDir();
  let media: TestMedia;
  let file: Uint8Array;
  let fragEnds: number[];

  before(async () => {
    media = await h264AacFrames(tmp.dir, 2);
    const a = media.audio!;
    const parts: Uint8Array[] = [initSegment([
      { id: 1, kind: 'video', timescale: 90000, config: media.video.config },
      { id: 2, kind: 'audio', timescale: a.clockRate, config: a.config },
    ])];
    fragEnds = [];
    // One fragment per second of video (its keyframes), with the audio of that second.
    let seq = 1, size = parts[0]!.length;
    for (let s = 0; s < 2; s++) {
      const v = media.video.frames.filter((f) => f.dts >= s * 90000 && (s === 1 || f.dts < (s + 1) * 90000));
      const au = a.frames.filter((f) => f.dts >= s * a.clockRate && (s === 1 || f.dts < (s + 1) * a.clockRate));
      const next = media.video.frames.find((f) => f.dts >= (s + 1) * 90000);
      const fr = fragment(seq++, [trackFragment(1, v, next?.dts, 3600), trackFragment(2, au, undefined, 1024)]);
      parts.push(...fr);
      for (const p of fr) size += p.length;
      fragEnds.push(size);
    }
    file = concat(parts);
  });
  after(() => tmp.remove());

  it('reads back every sample with its dts, cts, key flag and bytes', () => {
    const f = readFragmented(file);
    assert.deepEqual(f.tracks.map((t) => [t.id, t.kind, t.timescale, t.width, t.height]), [[1, 'video', 90000, 320, 240], [2, 'audio', media.audio!.clockRate, 0, 0]]);
    const v = f.samples.filter((s) => s.trackId === 1);
    assert.equal(v.length, media.video.frames.length);
    for (const [i, s] of v.entries()) {
      const src = media.video.frames[i]!;
      assert.equal(s.dts, src.dts);
      assert.equal(s.cts, src.cts);
      assert.equal(s.key, src.key);
      assert.deepEqual(file.subarray(s.offset, s.offset + s.size), src.data);
    }
    assert.ok(v.some((s) => s.cts > 0), 'B-frames: composition offsets');
    assert.equal(f.samples.filter((s) => s.trackId === 2).length, media.audio!.frames.length);
    assert.equal(f.validEnd, file.length);
  });

  it('leaves out a torn last fragment', () => {
    const torn = file.subarray(0, fragEnds[1]! - 100);
    const f = readFragmented(torn);
    assert.equal(f.validEnd, fragEnds[0]);
    assert.equal(f.samples.filter((s) => s.trackId === 1).length, media.video.frames.filter((x) => x.dts < 90000).length);
  });

  it('sampleEntryConfig returns the avcC and the AudioSpecificConfig', () => {
    const f = readFragmented(file);
    const v = sampleEntryConfig(f.tracks[0]!.stsd, 'video', 90000);
    assert.equal(v.codec, 'h264');
    assert.deepEqual(v.data, media.video.config.data);
    assert.equal(v.width, 320);
    const a = sampleEntryConfig(f.tracks[1]!.stsd, 'audio', media.audio!.clockRate);
    assert.equal(a.codec, 'aac');
    assert.deepEqual(a.data, media.audio!.config.data);
  });

  it('progressiveMp4: front moov, every sample, plays in ffprobe with the B-frame order', async () => {
    const f = readFragmented(file);
    const { header, mdatSize } = progressiveMp4(f);
    const out = concat([header, ...f.samples.map((s) => file.subarray(s.offset, s.offset + s.size))]);
    assert.equal(out.length, header.length + mdatSize);
    assert.equal(String.fromCharCode(...out.subarray(4, 8)), 'ftyp');
    const path = tmp.file('p.mp4');
    writeFileSync(path, out);
    const p = await probeFile(path);
    assert.equal(p.errors, '');
    const vp = p.packets.filter((x: any) => x.codec_type === 'video');
    assert.equal(vp.length, media.video.frames.length);
    for (const [i, x] of vp.entries()) {
      assert.equal(Number(x.dts), media.video.frames[i]!.dts);
      assert.equal(Number(x.pts), media.video.frames[i]!.dts + media.video.frames[i]!.cts);
    }
  });

  it('fuzz: readFragmented + progressiveMp4 and sampleEntryConfig throw only FormatError', () => {
    fuzz('readFragmented', [file.subarray(0, fragEnds[0]), file], (b) => progressiveMp4(readFragmented(b)), 3000, 13);
    const f = readFragmented(file);
    fuzz('sampleEntryConfig', [f.tracks[0]!.stsd, f.tracks[1]!.stsd], (b) => { sampleEntryConfig(b, 'video', 90000); sampleEntryConfig(b, 'audio', 44100); }, 3000, 14);
  });
});
