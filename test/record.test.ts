// The record plugin end to end: ffmpeg publishes 20 s of media over RTMP at 4× real time (-readrate 4,
// Debian's ffmpeg 5.1) while four recorders (fmp4, mp4, flv, hls) write 5 s segments; each segment reads
// in ffprobe with h264 + aac, starts at a keyframe, and the four add up to the published duration within
// one frame. Then the index answers time-range queries, and /record/api/list over 10 000 synthetic
// segments is timed.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import rtmp from '../plugins/rtmp/index.ts';
import record from '../plugins/record/index.ts';
import flv from '../plugins/flv/index.ts';
import hls from '../plugins/hls/index.ts';
import mp4 from '../plugins/mp4/index.ts';
import { start, startServer, until, type TestServer } from './helpers/media.ts';
import { FFMPEG51, filesUnder, probe, sourceArgs } from './helpers/record.ts';

const post = (url: string) => fetch(url, { method: 'POST' }).then((r) => r.json() as Promise<any>);

describe('record plugin: four formats, 5 s segments', () => {
  let S: TestServer;
  let dir: string;
  const types = ['fmp4', 'mp4', 'flv', 'hls'] as const;
  let published = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'm7s-record-'));
    S = await startServer([rtmp, flv, hls, mp4, record], `rtmp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\nrecord:\n  fragment: 5s\n  filepath: "${dir}/{streamPath}/{unix}"\n  subscribe:\n    waittimeout: 1s\n  indexfile: "${dir}/index.jsonl"\n  onsub:\n    pull:\n      "vod/(.+)": "$1"\n`);
    const starts = types.map((t) => post(`${S.http}/record/api/start/live/rec?type=${t}&filepath=${encodeURIComponent(`${dir}/${t}/{streamPath}/{unix}`)}`));
    const t0 = Date.now();
    const pub = start(FFMPEG51, [...sourceArgs(20, 4), '-f', 'flv', `rtmp://127.0.0.1:${S.port('rtmp')}/live/rec`]);
    for (const r of await Promise.all(starts)) assert.equal(r.code, 0, JSON.stringify(r));
    await new Promise<void>((r) => pub.proc.once('close', () => r()));
    published = Date.now() - t0;
    // The stream ends with its publisher; each recorder closes its last segment.
    await until(async () => (await (await fetch(`${S.http}/record/api/list`)).json() as any).data.recorders.length === 0, 15_000, 'recorders to end');
  });

  after(async () => {
    await S?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const type of types) {
    it(`${type}: 4 segments cut at keyframes, h264 + aac, 20 s within one frame`, async () => {
      const ext = type === 'flv' ? '.flv' : type === 'hls' ? '.ts' : '.mp4';
      const files = filesUnder(join(dir, type), ext);
      assert.equal(files.length, 4, `segments: ${files.join(', ')}`);
      if (type === 'mp4') assert.equal(filesUnder(join(dir, type), '.part').length, 0, 'no .part left');
      let total = 0;
      for (const f of files) {
        const p = await probe(f);
        assert.equal(p.errors, '', `${f}: ${p.errors}`);
        const v = p.streams.find((s) => s.codec_type === 'video');
        const a = p.streams.find((s) => s.codec_type === 'audio');
        assert.equal(v?.codec_name, 'h264', f);
        assert.equal(a?.codec_name, 'aac', f);
        assert.equal(v.width, 320);
        const vp = p.packets.filter((x) => x.codec_type === 'video');
        assert.ok(vp[0].flags.startsWith('K'), `${f} starts at a keyframe`);
        // The video of a segment: its frames times the frame duration (ffprobe's format duration mixes in
        // the audio's own end).
        const vdur = vp.length / 25;
        total += vdur;
        assert.ok(Math.abs(vdur - 5) < 0.001, `${f}: ${vp.length} video frames (5 s = 125)`);
        assert.ok(Math.abs(Number(p.format.duration) - 5) <= 0.05, `${f}: ffprobe duration ${p.format.duration}`);
      }
      assert.ok(Math.abs(total - 20) <= 0.04, `total ${total} s`);
      if (type === 'hls') {
        const lists = filesUnder(join(dir, type), '.m3u8');
        assert.equal(lists.length, 1);
        const text = readFileSync(lists[0]!, 'utf8');
        assert.match(text, /#EXT-X-PLAYLIST-TYPE:VOD/);
        assert.match(text, /#EXT-X-ENDLIST/);
        assert.equal(text.match(/#EXTINF/g)?.length, 4);
        const p = await probe(lists[0]!);
        assert.equal(p.errors, '');
        assert.ok(Math.abs(p.packets.filter((x) => x.codec_type === 'video').length - 500) <= 1, 'playlist plays all 500 frames');
      }
    });
  }

  it('an API filepath outside the folder of record.filepath, or with "..", is refused (403)', async () => {
    for (const fp of ['/etc/m7s-test/{unix}', `${dir}/../escape/{unix}`]) {
      const r = await fetch(`${S.http}/record/api/start/live/rec?filepath=${encodeURIComponent(fp)}`, { method: 'POST' });
      assert.equal(r.status, 403, fp);
    }
  });

  it('published 20 s in well under 20 s (4× real time)', () => {
    assert.ok(published < 15_000, `${published} ms`);
  });

  it('the index lists each segment with start/end, size and codecs, and answers a time range', async () => {
    const all = (await (await fetch(`${S.http}/record/api/list?streamPath=live/rec`)).json() as any).data;
    assert.equal(all.length, 16);
    for (const e of all) {
      assert.deepEqual(e.codecs.sort(), ['aac', 'h264']);
      assert.ok(e.size > 0 && e.end > e.start && Math.abs(e.duration - 5000) < 100, JSON.stringify(e));
    }
    const fmp4 = all.filter((e: any) => e.type === 'fmp4');
    const mid = fmp4[1];
    const some = (await (await fetch(`${S.http}/record/api/list?streamPath=live/rec&start=${mid.start + 10}&end=${mid.end - 10}`)).json() as any).data;
    assert.ok(some.some((e: any) => e.path === mid.path));
    assert.ok(!some.some((e: any) => e.path === fmp4[3].path), 'a segment outside the range is not listed');
    const journal = readFileSync(join(dir, 'index.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(journal.filter((l) => l.op === 'close').length, 16);
  });

  it('/record/download: one MP4 stitched across segments for a 10 s range (± one GOP), with Range requests', async () => {
    const fmp4 = (await (await fetch(`${S.http}/record/api/list?streamPath=live/rec`)).json() as any).data.filter((e: any) => e.type === 'fmp4');
    const from = fmp4[0].start + 3500, to = from + 10_000; // crosses segments 1, 2 and 3
    const url = `${S.http}/record/download/live/rec.mp4?start=${from}&end=${to}`;
    const p = await probe(url);
    assert.equal(p.errors, '', p.errors);
    assert.deepEqual(p.streams.map((s) => s.codec_name).sort(), ['aac', 'h264']);
    const d = Number(p.format.duration);
    assert.ok(d >= 10 - 0.05 && d <= 11 + 0.05, `duration ${d} (10 s asked, GOP 1 s)`);
    const vp = p.packets.filter((x) => x.codec_type === 'video');
    assert.ok(vp[0].flags.startsWith('K'));
    const full = new Uint8Array(await (await fetch(url)).arrayBuffer());
    const head = await fetch(url, { method: 'HEAD' });
    assert.equal(Number(head.headers.get('content-length')), full.length);
    const r = await fetch(url, { headers: { range: 'bytes=1000-200999' } });
    assert.equal(r.status, 206);
    assert.equal(r.headers.get('content-range'), `bytes 1000-200999/${full.length}`);
    const part = new Uint8Array(await r.arrayBuffer());
    assert.equal(part.length, 200_000);
    assert.deepEqual(part, full.subarray(1000, 201_000));
    const tail = new Uint8Array(await (await fetch(url, { headers: { range: 'bytes=-5000' } })).arrayBuffer());
    assert.deepEqual(tail, full.subarray(full.length - 5000));
    assert.equal((await fetch(url, { headers: { range: `bytes=${full.length}-` } })).status, 416);
  });

  it('vod/...: onsub.pull replays 4.5 s of the recording at real speed over HTTP-FLV', async () => {
    const fmp4 = (await (await fetch(`${S.http}/record/api/list?streamPath=live/rec`)).json() as any).data.filter((e: any) => e.type === 'fmp4');
    const from = fmp4[1].start + 500, to = from + 4000; // from the keyframe at the segment's start: 4.5 s
    const t0 = Date.now();
    const p = await probe(`${S.http}/flv/vod/live/rec.flv?start=${from}&end=${to}`);
    const wall = (Date.now() - t0) / 1000;
    assert.equal(p.errors, '', p.errors);
    assert.deepEqual(p.streams.map((s) => s.codec_name).sort(), ['aac', 'h264']);
    const vp = p.packets.filter((x) => x.codec_type === 'video');
    assert.ok(Math.abs(vp.length - 112) <= 2, `${vp.length} video frames (4.5 s = 112)`);
    const media = (Number(vp[vp.length - 1].pts_time) - Number(vp[0].pts_time));
    console.log(`# vod replay: ${media.toFixed(2)} s of media in ${wall.toFixed(2)} s`);
    assert.ok(wall >= media * 0.85 && wall <= media + 3, `real speed: ${media} s of media took ${wall} s`);
  });

  it('Monibuca\'s URLs /mp4/download/… and /hls/vod/…?start= redirect to /record/… and play', async () => {
    const r = await fetch(`${S.http}/mp4/download/live/rec.mp4?start=0`, { redirect: 'manual' });
    assert.equal(r.status, 302);
    assert.equal(r.headers.get('location'), '/record/download/live/rec.mp4?start=0');
    const h = await fetch(`${S.http}/hls/vod/live/rec.m3u8?start=0&type=hls`, { redirect: 'manual' });
    assert.equal(h.headers.get('location'), '/record/vod/live/rec.m3u8?start=0&type=hls');
    const p = await probe(`${S.http}/mp4/download/live/rec.mp4?start=0`);
    assert.equal(p.errors, '');
    assert.ok(Math.abs(Number(p.format.duration) - 20) <= 0.1, `duration ${p.format.duration}`);
    const v = await probe(`${S.http}/hls/vod/live/rec.m3u8?start=0&type=hls`);
    assert.equal(v.errors, '');
    assert.ok(Math.abs(v.packets.filter((x) => x.codec_type === 'video').length - 500) <= 1);
  });

  for (const type of ['hls', 'fmp4'] as const) {
    it(`/record/vod: a VOD HLS playlist of the ${type} segments plays in ffprobe (all 500 frames)`, async () => {
      const url = `${S.http}/record/vod/live/rec.m3u8?type=${type}`;
      const text = await (await fetch(url)).text();
      assert.match(text, /#EXT-X-PLAYLIST-TYPE:VOD/);
      assert.equal(text.match(/#EXTINF/g)?.length, 4);
      const p = await probe(url);
      assert.equal(p.errors, '', p.errors);
      const n = p.packets.filter((x) => x.codec_type === 'video').length;
      assert.ok(Math.abs(n - 500) <= 1, `${n} video frames`);
    });
  }
});

describe('record index', () => {
  it('answers /record/api/list over 10 000 indexed segments in < 50 ms', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'm7s-recidx-'));
    // 10 000 one-minute segments over ~7 days in the index journal the plugin loads at start.
    const t0 = Date.UTC(2026, 0, 1);
    const lines: string[] = [];
    for (let i = 0; i < 10_000; i++) {
      lines.push(JSON.stringify({ op: 'close', seg: { streamPath: 'cam/1', type: 'fmp4', path: `/x/${i}.mp4`, start: t0 + i * 60_000, end: t0 + i * 60_000 + 59_960, duration: 59_960, size: 1_000_000, codecs: ['h264', 'aac'] } }));
    }
    writeFileSync(join(dir, 'index.jsonl'), lines.join('\n') + '\n');
    const S = await startServer([record], `record:\n  indexfile: "${dir}/index.jsonl"\n`);
    try {
      const url = `${S.http}/record/api/list?streamPath=cam/1&start=${t0 + 5000 * 60_000}&end=${t0 + 5060 * 60_000}`;
      await fetch(url).then((r) => r.json());
      const times: number[] = [];
      let n = 0;
      for (let k = 0; k < 5; k++) {
        const a = performance.now();
        const j = await (await fetch(url)).json() as any;
        times.push(performance.now() - a);
        n = j.data.length;
      }
      assert.equal(n, 61);
      const all = performance.now();
      const j = await (await fetch(`${S.http}/record/api/list?streamPath=cam/1`)).json() as any;
      const allMs = performance.now() - all;
      assert.equal(j.data.length, 10_000);
      const best = Math.min(...times);
      console.log(`# /record/api/list over 10 000 segments: one hour ${best.toFixed(1)} ms (median ${times.sort((a, b) => a - b)[2]!.toFixed(1)} ms), all 10 000 ${allMs.toFixed(1)} ms`);
      assert.ok(times[2]! < 50, `median ${times[2]} ms`);
    } finally {
      await S.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

