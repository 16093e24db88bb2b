// The hls and llhls plugins end to end: ffmpeg publishes over HTTP-FLV POST, ffprobe plays the TS,
// fMP4 and LL-HLS playlists; segment durations in the playlist are checked against ffprobe of each
// segment; LL-HLS parts and blocking reloads are timed; ?timeout waits for a late stream; an HLS pull
// of our own output is played back over HTTP-FLV; 100 synthetic streams are segmented for memory; bad
// requests get clear statuses.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import flv from '../plugins/flv/index.ts';
import hls from '../plugins/hls/index.ts';
import llhls from '../plugins/hls/llhls.ts';
import mp4 from '../plugins/mp4/index.ts';
import { parsePlaylist } from '../plugins/hls/pull.ts';
import { parseInit, parseSegment } from '../plugins/hls/fmp4demux.ts';
import { SyntheticSource } from '../src/core/synthetic.ts';
import { ffmpegPath, ffprobePath, run, sleep, start, startServer, testSourceArgs, until, type TestServer } from './helpers/media.ts';

const FRAME = 1 / 25;

/** until() for checks that return a value or false: the value, typed without the false. */
const untilV = <T,>(fn: () => Promise<T | false | undefined>, ms: number, what: string) => until(fn, ms, what) as Promise<T>;

interface Listed { uri: string; duration: number; msn: number }
/** EXTINF/URI pairs and the header tags of a media playlist. */
function parseMedia(text: string): { segs: Listed[]; tags: Map<string, string>; parts: { uri: string; duration: number; independent: boolean }[]; hint?: string } {
  const tags = new Map<string, string>();
  const segs: Listed[] = [];
  const parts: { uri: string; duration: number; independent: boolean }[] = [];
  let dur = -1, seq = 0, hint: string | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('#EXTINF:')) dur = parseFloat(line.slice(8));
    else if (line.startsWith('#EXT-X-PART:')) {
      parts.push({ uri: /URI="([^"]+)"/.exec(line)![1]!, duration: parseFloat(/DURATION=([\d.]+)/.exec(line)![1]!), independent: line.includes('INDEPENDENT=YES') });
    } else if (line.startsWith('#EXT-X-PRELOAD-HINT:')) hint = /URI="([^"]+)"/.exec(line)![1];
    else if (line.startsWith('#')) {
      const i = line.indexOf(':');
      if (i > 0 && !tags.has(line.slice(0, i))) tags.set(line.slice(0, i), line.slice(i + 1));
      if (line.startsWith('#EXT-X-MEDIA-SEQUENCE:')) seq = Number(line.slice(22));
    } else if (line.trim() && dur >= 0) {
      segs.push({ uri: line.trim(), duration: dur, msn: seq + segs.length });
      dur = -1;
    }
  }
  return { segs, tags, parts, hint };
}

async function get(url: string, init?: RequestInit): Promise<{ status: number; headers: Headers; text: string; bytes: Uint8Array; ms: number }> {
  const t0 = Date.now();
  const r = await fetch(url, init);
  const bytes = new Uint8Array(await r.arrayBuffer());
  return { status: r.status, headers: r.headers, text: new TextDecoder().decode(bytes), bytes, ms: Date.now() - t0 };
}

/** ffprobe with -v error: streams and packets, and stderr that must stay empty. */
async function probe(url: string, seconds?: number): Promise<{ streams: any[]; packets: any[]; stderr: string }> {
  const args = ['-v', 'error', '-print_format', 'json', '-show_streams', '-show_packets'];
  if (seconds) args.push('-read_intervals', `%+${seconds}`);
  args.push(url);
  const r = await run(ffprobePath, args, 60_000);
  assert.equal(r.code, 0, `ffprobe ${url}: ${r.stderr}`);
  const j = JSON.parse(r.stdout);
  return { streams: j.streams ?? [], packets: j.packets ?? [], stderr: r.stderr.trim() };
}

function checkStreams(p: { streams: any[]; packets: any[]; stderr: string }, what: string): void {
  assert.equal(p.stderr, '', `${what}: ffprobe -v error printed: ${p.stderr}`);
  const v = p.streams.find((s) => s.codec_type === 'video');
  const a = p.streams.find((s) => s.codec_type === 'audio');
  assert.equal(v?.codec_name, 'h264', `${what}: video codec`);
  assert.equal(v.width, 320);
  assert.equal(v.height, 240);
  assert.equal(a?.codec_name, 'aac', `${what}: audio codec`);
  assert.equal(Number(a.sample_rate), 44100);
  for (const idx of [v.index, a.index]) {
    const ts = p.packets.filter((k) => k.stream_index === idx).map((k) => Number(k.dts_time ?? k.pts_time));
    assert.ok(ts.length > 10, `${what}: stream ${idx} has ${ts.length} packets`);
    for (let i = 1; i < ts.length; i++) assert.ok(ts[i]! >= ts[i - 1]!, `${what}: stream ${idx} dts went back ${ts[i - 1]} → ${ts[i]}`);
  }
}

/** Media duration of a segment file by ffprobe: the video packets' span plus one frame. */
async function segmentDuration(file: string): Promise<number> {
  const p = await probe(file);
  assert.equal(p.stderr, '', `segment ${file}: ${p.stderr}`);
  const v = p.streams.find((s) => s.codec_type === 'video');
  const pts = p.packets.filter((k) => k.stream_index === v.index).map((k) => Number(k.pts_time)).sort((a, b) => a - b);
  return pts[pts.length - 1]! - pts[0]! + FRAME;
}

describe('hls plugin', () => {
  let S: TestServer;
  let pubs: { kill(): Promise<void> }[] = [];
  let dir: string;
  const publish = (path: string, seconds = 150) => {
    const p = start(ffmpegPath, [...testSourceArgs({ seconds }), '-f', 'flv', '-method', 'POST', `${S.http}/flv/${path}.flv`]);
    pubs.push(p);
    return p;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'm7s-hls-'));
    S = await startServer([flv, hls, llhls, mp4], 'hls:\n  fragment: 1s\n  idletimeout: 4s\n  onpub:\n    transform:\n      "pre/.*": ""\nllhls:\n  part: 200ms\n');
    publish('live/x');
    await until(() => S.server.engine.getStream('live/x')?.publisher, 15_000, 'publisher live/x');
  });

  after(async () => {
    for (const p of pubs) await p.kill();
    await S?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves a TS playlist ffprobe plays, EXTINF matching each segment', async () => {
    const first = await get(`${S.http}/hls/live/x.m3u8`);
    assert.equal(first.status, 200, first.text);
    assert.equal(first.headers.get('content-type'), 'application/vnd.apple.mpegurl');
    assert.match(first.headers.get('cache-control') ?? '', /no-cache/);
    // Wait for a full window of 3 segments.
    const pl = await untilV(async () => { const r = parseMedia((await get(`${S.http}/hls/live/x.m3u8`)).text); return r.segs.length >= 3 && r; }, 15_000, '3 segments');
    assert.equal(pl.tags.get('#EXT-X-TARGETDURATION'), '1');
    assert.ok(pl.tags.has('#EXT-X-PROGRAM-DATE-TIME'));
    assert.ok(Number(pl.tags.get('#EXT-X-MEDIA-SEQUENCE')) > 0);
    let sumList = 0, sumMedia = 0;
    for (const s of pl.segs) {
      const r = await get(`${S.http}/hls/live/${s.uri}`);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('content-type'), 'video/mp2t');
      assert.match(r.headers.get('cache-control') ?? '', /immutable, max-age=|max-age=\d+, immutable/);
      const f = join(dir, `seg-${s.msn}.ts`);
      writeFileSync(f, r.bytes);
      const d = await segmentDuration(f);
      assert.ok(Math.abs(d - s.duration) <= FRAME + 1e-3, `segment ${s.msn}: EXTINF ${s.duration} vs media ${d.toFixed(3)}`);
      sumList += s.duration;
      sumMedia += d;
    }
    console.log(`# TS: ${pl.segs.length} segments, EXTINF sum ${sumList.toFixed(3)} s vs ffprobe ${sumMedia.toFixed(3)} s`);
    checkStreams(await probe(`${S.http}/hls/live/x.m3u8`, 3), 'TS HLS');
  });

  it('serves fMP4 segments with ?fmp4 (EXT-X-MAP, init, durations)', async () => {
    const pl = await untilV(async () => { const r = parseMedia((await get(`${S.http}/hls/live/x.m3u8?fmp4`)).text); return r.segs.length >= 2 && r; }, 15_000, 'fmp4 segments');
    const map = /URI="([^"]+)"/.exec(pl.tags.get('#EXT-X-MAP') ?? '')?.[1];
    assert.ok(map, 'EXT-X-MAP');
    const init = await get(`${S.http}/hls/live/${map}`);
    assert.equal(init.status, 200);
    assert.equal(init.headers.get('content-type'), 'video/mp4');
    const tracks = parseInit(init.bytes);
    assert.deepEqual(tracks.map((t) => t.config.codec).sort(), ['aac', 'h264']);
    for (const s of pl.segs) {
      const r = await get(`${S.http}/hls/live/${s.uri}`);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('content-type'), 'video/mp4');
      // Our own demuxer: the first video sample is a keyframe.
      const samples = parseSegment(r.bytes, tracks, new Map());
      assert.ok(samples.find((x) => x.track.kind === 'video')?.key, 'segment starts with a keyframe');
      const f = join(dir, `seg-${s.msn}.mp4`);
      writeFileSync(f, Buffer.concat([init.bytes, r.bytes]));
      const d = await segmentDuration(f);
      assert.ok(Math.abs(d - s.duration) <= FRAME + 1e-3, `fmp4 segment ${s.msn}: EXTINF ${s.duration} vs media ${d.toFixed(3)}`);
    }
    checkStreams(await probe(`${S.http}/hls/live/x.m3u8?fmp4`, 3), 'fMP4 HLS');
  });

  it('LL-HLS: ~200 ms parts, blocking reload held until the part exists, far future → 400', async () => {
    const url = `${S.http}/llhls/live/x/index.m3u8`;
    const r = await get(url);
    assert.equal(r.status, 200, r.text);
    const pl = parseMedia(r.text);
    assert.match(pl.tags.get('#EXT-X-SERVER-CONTROL') ?? '', /CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0\.6/);
    assert.equal(pl.tags.get('#EXT-X-PART-INF'), 'PART-TARGET=0.200');
    assert.ok(pl.parts.length >= 3, `parts listed: ${pl.parts.length}`);
    // Parts of a segment (not the last, forced-short one) are ~200 ms; the first of a segment is independent.
    const durs = pl.parts.map((p) => p.duration);
    const full = durs.filter((d) => d > 0.1);
    for (const d of full) assert.ok(d <= 0.2 + 1e-3 && d >= 0.16 - 1e-3, `part duration ${d}`);
    assert.ok(pl.parts.some((p) => p.independent && /\.0\.m4s$/.test(p.uri)), 'an independent part 0');
    console.log(`# LL-HLS part durations: ${durs.slice(0, 12).join(', ')}`);
    // A listed part is served.
    const part = await get(`${S.http}/llhls/live/x/${pl.parts[pl.parts.length - 1]!.uri}`);
    assert.equal(part.status, 200);
    assert.equal(part.headers.get('content-type'), 'video/mp4');
    // Blocking reload for the part after the hinted one (it cannot exist yet: the hinted part is still
    // being written, or just finished).
    const fresh = parseMedia((await get(url)).text);
    const [msn, hintIdx] = fresh.hint!.replace('.m4s', '').split('.').map(Number) as [number, number];
    const idx = hintIdx + 1;
    const held = await get(`${url}?_HLS_msn=${msn}&_HLS_part=${idx}`);
    assert.equal(held.status, 200, held.text);
    const after = parseMedia(held.text);
    assert.ok(after.parts.some((p) => p.uri === `${msn}.${idx}.m4s`) || after.segs.some((s) => s.msn === msn), `part ${msn}.${idx} listed after the hold`);
    assert.ok(held.ms >= 50 && held.ms < 1500, `hold ${held.ms} ms`);
    console.log(`# LL-HLS blocking reload for ${msn}.${idx} (one after the hint) held ${held.ms} ms`);
    // The preload-hinted part itself is held until it exists.
    const next = parseMedia(held.text).hint!;
    const hinted = await get(`${S.http}/llhls/live/x/${next}`);
    assert.equal(hinted.status, 200);
    console.log(`# LL-HLS preload-hint part ${next} held ${hinted.ms} ms`);
    // Far future and malformed.
    const far = await get(`${url}?_HLS_msn=${msn + 10}`);
    assert.equal(far.status, 400, far.text);
    assert.equal((await get(`${url}?_HLS_msn=abc`)).status, 400);
    assert.equal((await get(`${url}?_HLS_part=1`)).status, 400);
    checkStreams(await probe(url, 3), 'LL-HLS');
  });

  it('?timeout= waits for a stream that starts later', async () => {
    const t0 = Date.now();
    const pending = get(`${S.http}/hls/live/late.m3u8?timeout=20s`);
    await sleep(1500);
    publish('live/late', 60); // long enough for the idle test near the end of this file
    const r = await pending;
    assert.equal(r.status, 200, r.text);
    assert.ok(parseMedia(r.text).segs.length >= 1);
    assert.ok(Date.now() - t0 >= 1500);
    console.log(`# ?timeout: playlist answered after ${Date.now() - t0} ms (publisher started at 1500 ms)`);
  });

  it('marks a publisher change with EXT-X-DISCONTINUITY', async () => {
    const p1 = publish('live/d', 60);
    await until(() => S.server.engine.getStream('live/d')?.publisher, 15_000, 'publisher live/d');
    assert.equal((await get(`${S.http}/hls/live/d.m3u8`)).status, 200);
    await p1.kill();
    await sleep(500);
    publish('live/d', 60);
    const text = await untilV(async () => { const t = (await get(`${S.http}/hls/live/d.m3u8`)).text; return t.includes('#EXT-X-DISCONTINUITY') && t; }, 15_000, 'discontinuity');
    // The tag sits right before the first segment of the new publisher, which has a fresh PROGRAM-DATE-TIME.
    assert.match(text, /#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:[^\n]+\n#EXTINF/);
  });

  it('bad requests: unknown stream 404 JSON, segment outside the window 404, bad timeout 400', async () => {
    const r = await get(`${S.http}/hls/live/nope.m3u8`);
    assert.equal(r.status, 404);
    const j = JSON.parse(r.text);
    assert.ok(j.code !== 0 && /not found/.test(j.message), r.text);
    const pl = parseMedia((await get(`${S.http}/hls/live/x.m3u8`)).text);
    const old = pl.segs[0]!.msn - 20;
    assert.equal((await get(`${S.http}/hls/live/x/${old}.ts`)).status, 404);
    assert.equal((await get(`${S.http}/hls/live/x/${pl.segs[0]!.msn + 1000}.ts`)).status, 404);
    assert.equal((await get(`${S.http}/hls/live/nope/1.ts`)).status, 404);
    assert.equal((await get(`${S.http}/hls/live/x.m3u8?timeout=soon`)).status, 400);
    assert.equal((await get(`${S.http}/llhls/live/nope/1.0.m4s`)).status, 404);
  });

  it('pulls our own HLS (TS and fMP4) into new streams that play over HTTP-FLV', async () => {
    for (const [path, q] of [['live/pulled', ''], ['live/pulled4', '?fmp4']] as const) {
      const r = await get(`${S.http}/hls/api/pull`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ streamPath: path, url: `${S.http}/hls/live/x.m3u8${q}` }) });
      assert.equal(r.status, 200, r.text);
      await until(() => S.server.engine.getStream(path)?.publisher, 15_000, `pull ${path}`);
      checkStreams(await probe(`${S.http}/flv/${path}.flv`, 3), `HLS pull ${q || 'ts'} → FLV`);
    }
    const list = JSON.parse((await get(`${S.http}/hls/api/list`)).text).data;
    assert.equal(list.pulls.length, 2);
    for (const p of list.pulls) assert.equal(p.badSegments, 0, JSON.stringify(p));
    // Bad pull requests.
    assert.equal((await get(`${S.http}/hls/api/pull`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' })).status, 400);
    assert.equal((await get(`${S.http}/hls/api/pull`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ streamPath: 'a/b', url: 'rtmp://x/y' }) })).status, 400);
  });

  it('memory: 100 synthetic streams segmented stay bounded', async () => {
    const engine = S.server.engine;
    const srcs: SyntheticSource[] = [];
    const paths = Array.from({ length: 100 }, (_, i) => `mem/s${i}`);
    const gc = () => { (globalThis as any).Bun?.gc?.(true); (globalThis as any).gc?.(); };
    const mem = () => { gc(); const m = process.memoryUsage(); return { heap: m.heapUsed + (m.external ?? 0), rss: m.rss }; };
    const m0 = mem();
    for (const p of paths) {
      const pub = await engine.publish(p, { protocol: 'test' });
      const s = new SyntheticSource(pub, { fps: 25, gop: 25, videoBytes: 1500, sampleRate: 44100 });
      s.start();
      srcs.push(s);
    }
    const fetchAll = () => Promise.all(paths.map(async (p) => {
      const r = await get(`${S.http}/hls/${p}.m3u8`);
      assert.equal(r.status, 200, `${p}: ${r.text}`);
    }));
    try {
      await fetchAll();
      const samples: { heap: number; rss: number }[] = [];
      for (let i = 0; i < 5; i++) { await sleep(2500); await fetchAll(); samples.push(mem()); }
      const segBytes = engine.streams.size && JSON.parse((await get(`${S.http}/hls/api/list`)).text).data.segmenters
        .filter((x: any) => x.streamPath.startsWith('mem/')).reduce((a: number, x: any) => a + x.bytes, 0);
      const mid = samples[1]!, last = samples[samples.length - 1]!;
      console.log(`# memory: 100 streams, segment bytes held ${(segBytes / 1e6).toFixed(1)} MB (${(segBytes / 100 / 1024).toFixed(0)} KiB/stream); ` +
        `heap+external ${(m0.heap / 1e6).toFixed(0)} → ${samples.map((s) => (s.heap / 1e6).toFixed(0)).join('/')} MB, ` +
        `rss ${(m0.rss / 1e6).toFixed(0)} → ${samples.map((s) => (s.rss / 1e6).toFixed(0)).join('/')} MB; ` +
        `≈ ${((last.heap - m0.heap) / 100 / 1024).toFixed(0)} KiB heap/stream`);
      // Bounded: each stream holds window+extra+1 = 7 one-second segments at ~40 KB/s ≈ 300 KB.
      assert.ok(segBytes / 100 < 600 * 1024, `segment bytes per stream ${segBytes / 100}`);
      // Heap does not keep growing once the windows are full (allow GC noise).
      assert.ok(last.heap < mid.heap * 1.5 + 64e6, `heap grew ${mid.heap} → ${last.heap}`);
    } finally {
      for (const s of srcs) s.stop();
      for (const p of paths) engine.stopStream(p, 'test over');
    }
    // Segmenters end with their streams.
    await until(async () => !JSON.parse((await get(`${S.http}/hls/api/list`)).text).data.segmenters.some((x: any) => x.streamPath.startsWith('mem/')), 5000, 'segmenters gone');
  });

  it('stops an idle segmenter after idletimeout', async () => {
    const has = async (p: string) => JSON.parse((await get(`${S.http}/hls/api/list`)).text).data.segmenters.some((x: any) => x.streamPath === p && x.kind === 'ts');
    assert.equal((await get(`${S.http}/hls/live/late.m3u8`)).status, 200);
    assert.ok(await has('live/late'));
    await until(async () => !(await has('live/late')), 9000, 'idle segmenter stopped');
  });

  it('onpub.transform segments a matching stream from its start (pinned, not idled)', async () => {
    const pub = await S.server.engine.publish('pre/a', { protocol: 'test' });
    const src = new SyntheticSource(pub, { fps: 25, gop: 25, videoBytes: 500, sampleRate: 44100 });
    src.start();
    try {
      const list = async () => JSON.parse((await get(`${S.http}/hls/api/list`)).text).data.segmenters.find((x: any) => x.streamPath === 'pre/a');
      const s = await until(async () => { const x = await list(); return x && x.segments >= 2 && x; }, 10_000, 'pinned segmenter');
      assert.equal(s.pinned, true);
      // The first playlist answers at once with the segments made before anyone asked.
      const r = await get(`${S.http}/hls/pre/a.m3u8`);
      assert.equal(r.status, 200);
      assert.ok(parseMedia(r.text).segs.length >= 2 && r.ms < 500, `${parseMedia(r.text).segs.length} segments in ${r.ms} ms`);
    } finally {
      src.stop();
      S.server.engine.stopStream('pre/a');
    }
  });

  it('parses playlists defensively', () => {
    assert.throws(() => parsePlaylist('garbage', 'http://h/a.m3u8'));
    assert.throws(() => parsePlaylist('#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n', 'http://h/a.m3u8'));
    const p = parsePlaylist('#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:2.5,\na.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:NaN,\nb.ts\n', 'http://h/x/a.m3u8');
    assert.ok(!p.master);
    if (!p.master) {
      assert.deepEqual(p.segments.map((s) => [s.msn, s.uri, s.duration, s.discontinuity]), [[7, 'http://h/x/a.ts', 2.5, false], [8, 'http://h/x/b.ts', 0, true]]);
    }
    assert.throws(() => parseSegment(new Uint8Array([0, 0, 0, 100, 0x6d, 0x6f, 0x6f, 0x66]), [], new Map()));
  });
});
