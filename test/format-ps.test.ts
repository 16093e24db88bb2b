// MPEG-PS (src/format/ps.ts): our muxer's H.264+G.711 output read by ffprobe, ffmpeg's own PS read by our
// demuxer, a round trip with frames split across PES and RTP-sized chunks, H.265, and the seeded fuzzer
// (M7S_FUZZ_CASES [100 000 on Node; 5 000 on Bun/Deno]).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { fuzz } from './helpers/fuzz.ts';
import { ffmpegPath, ffprobePath, run } from './helpers/media.ts';
import { tempDir } from './helpers/frames.ts';
import { PsDemuxer, PsMuxer, type PsUnit } from '../src/format/ps.ts';
import { splitAnnexB } from '../src/codec/h264.ts';

const runtime = process.env.M7S_TEST_RUNTIME ?? 'node';
const CASES = Number(process.env.M7S_FUZZ_CASES ?? (runtime === 'node' ? 100000 : 5000));

/** Split an Annex-B elementary stream into access units (an AUD or a new first-slice starts one). */
function accessUnits(es: Uint8Array, h265: boolean): Uint8Array[] {
  const out: Uint8Array[] = [];
  // Find start code offsets.
  const starts: number[] = [];
  for (let i = 0; i + 3 < es.length; i++) {
    if (es[i] === 0 && es[i + 1] === 0 && (es[i + 2] === 1 || (es[i + 2] === 0 && es[i + 3] === 1))) {
      starts.push(i);
      i += 3;
    }
  }
  let auStart = 0;
  for (let k = 0; k < starts.length; k++) {
    const s = starts[k]!;
    const h = es[s + 2] === 1 ? s + 3 : s + 4;
    const type = h265 ? (es[h]! >> 1) & 0x3f : es[h]! & 0x1f;
    const isAud = h265 ? type === 35 : type === 9;
    if (isAud && s > auStart) { out.push(es.subarray(auStart, s)); auStart = s; }
  }
  out.push(es.subarray(auStart));
  return out;
}

async function makeEs(dir: string, h265: boolean): Promise<{ video: Uint8Array[]; alaw: Uint8Array }> {
  const v = `${dir}/v.${h265 ? 'h265' : 'h264'}`, a = `${dir}/a.alaw`;
  const r = await run(ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25:duration=2',
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=8000:duration=2',
    '-map', '0:v', '-c:v', h265 ? 'libx265' : 'libx264', '-preset', 'ultrafast', '-g', '25', '-bf', '0', '-pix_fmt', 'yuv420p',
    ...(h265 ? ['-x265-params', 'aud=1:keyint=25:min-keyint=25:scenecut=0:log-level=error'] : ['-x264-params', 'aud=1']), '-f', h265 ? 'hevc' : 'h264', v,
    '-map', '1:a', '-c:a', 'pcm_alaw', '-f', 'alaw', a]);
  assert.equal(r.code, 0, r.stderr);
  return { video: accessUnits(readFileSync(v), h265), alaw: readFileSync(a) };
}

function mux(video: Uint8Array[], alaw: Uint8Array, codec: 'h264' | 'h265'): Uint8Array[] {
  const m = new PsMuxer({ video: codec, audio: 'pcma' });
  const packs: Uint8Array[] = [];
  let ai = 0;
  video.forEach((au, i) => {
    const pts = 3600 * i + 90000;
    const key = splitAnnexB(au).some((n) => codec === 'h264' ? (n[0]! & 0x1f) === 5 : ((n[0]! >> 1) & 0x3f) >= 16 && ((n[0]! >> 1) & 0x3f) <= 21);
    packs.push(m.video(au, pts, pts, key));
    // 40 ms of A-law (320 bytes) per video frame.
    if (ai + 320 <= alaw.length) { packs.push(m.audio(alaw.subarray(ai, ai + 320), pts)); ai += 320; }
  });
  return packs;
}

test('PS mux: ffprobe reads our H.264 + G.711A program stream', async () => {
  const t = tempDir();
  try {
    const { video, alaw } = await makeEs(t.dir, false);
    const packs = mux(video, alaw, 'h264');
    const f = `${t.dir}/out.ps`;
    writeFileSync(f, Buffer.concat(packs));
    const r = await run(ffprobePath, ['-v', 'error', '-print_format', 'json', '-show_streams', '-count_frames', '-f', 'mpeg', f]);
    assert.equal(r.code, 0, r.stderr);
    const streams = JSON.parse(r.stdout).streams;
    const v = streams.find((s: any) => s.codec_type === 'video'), a = streams.find((s: any) => s.codec_type === 'audio');
    assert.equal(v?.codec_name, 'h264');
    assert.equal(Number(v.nb_read_frames), video.length);
    assert.equal(a?.codec_name, 'pcm_alaw');
  } finally { t.remove(); }
});

for (const codec of ['h264', 'h265'] as const) {
  test(`PS demux: our ${codec} + G.711 packs in 1400-byte chunks give back every frame, keyframes and config`, async () => {
    const t = tempDir();
    try {
      const { video, alaw } = await makeEs(t.dir, codec === 'h265');
      const bytes = Buffer.concat(mux(video, alaw, codec));
      const units: PsUnit[] = [];
      const d = new PsDemuxer((u) => units.push(u), { strict: true });
      for (let i = 0; i < bytes.length; i += 1400) d.push(bytes.subarray(i, i + 1400));
      d.end();
      const v = units.filter((u) => u.kind === 'video'), a = units.filter((u) => u.kind === 'audio');
      assert.equal(v.length, video.length);
      assert.equal(v.filter((u) => u.key).length, 2);
      assert.equal(v[0]!.config?.codec, codec);
      assert.equal(v[0]!.config?.data?.[0], 1, 'avcC/hvcC version 1');
      assert.equal(v[1]!.pts - v[0]!.pts, 3600);
      assert.ok(a.length >= 45 && a.every((u) => u.codec === 'pcma' && u.data.length === 320), `audio ${a.length}`);
      assert.equal(d.stats.errors, 0);
    } finally { t.remove(); }
  });
}

test("PS demux: ffmpeg's own MPEG-PS (no PSM, frames split over several PES)", async () => {
  const t = tempDir();
  try {
    const f = `${t.dir}/ff.ps`;
    const r = await run(ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=640x480:rate=25:duration=2',
      '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '25', '-bf', '0', '-b:v', '4M', '-f', 'vob', f]);
    assert.equal(r.code, 0, r.stderr);
    const units: PsUnit[] = [];
    const d = new PsDemuxer((u) => units.push(u));
    d.push(readFileSync(f));
    d.end();
    assert.equal(units.filter((u) => u.kind === 'video').length, 50);
    assert.equal(units.filter((u) => u.key).length, 2);
  } finally { t.remove(); }
});

test(`fuzz: PS demuxer (${CASES} cases)`, () => {
  const m = new PsMuxer({ video: 'h264', audio: 'pcma' });
  const sps = [0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x47, 0xfe, 0xc8], pps = [0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80];
  const idr = [0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00, 0x33, 0xff];
  const seeds = [
    m.video(new Uint8Array([...sps, ...pps, ...idr]), 9000, 9000, true),
    m.audio(new Uint8Array(160).fill(0xd5), 9000),
    new Uint8Array([...m.video(new Uint8Array(idr), 12600, 12600, false), ...m.audio(new Uint8Array(10), 12600)]),
  ];
  fuzz('ps', seeds, (b) => {
    const d = new PsDemuxer(() => {}, { strict: true });
    d.push(b.subarray(0, b.length >> 1));
    d.push(b.subarray(b.length >> 1));
    d.end();
  }, CASES, 21);
  // Non-strict: bad data is counted, never thrown.
  fuzz('ps lenient', seeds, (b) => { const d = new PsDemuxer(() => {}); d.push(b); d.end(); }, CASES / 10, 22);
});
