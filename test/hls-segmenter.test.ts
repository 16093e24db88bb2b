// The HLS segmenter's playlists as a player sees them (issue 10): a fresh segmenter of an audio+video
// stream lists no discontinuity and one init segment, a real codec change gives exactly one of each;
// EXT-X-DISCONTINUITY-SEQUENCE follows RFC 8216 6.2.2 while discontinuities scroll out (polled over HTTP
// until it rose 3 times); LL-HLS parts never outlast PART-TARGET with jittered timestamps. Real H.264/AAC frames.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Engine, defaultPublish, defaultSubscribe, type Publisher, type Track } from '../src/core/index.ts';
import { Segmenter, type SegmentKind } from '../plugins/hls/segmenter.ts';
import flv from '../plugins/flv/index.ts';
import hls from '../plugins/hls/index.ts';
import llhls from '../plugins/hls/llhls.ts';
import { h264AacFrames, tempDir, type TestMedia } from './helpers/frames.ts';
import { ffmpegPath, run, sleep, startServer, type TestServer } from './helpers/media.ts';
import { nodeOnly } from './helpers/runtime-once.ts';

let media: TestMedia;
const tmp = tempDir();
before(async () => { media = await h264AacFrames(tmp.dir, 4); });
after(() => tmp.remove());

/** Writes the test media into a publisher in time order, looped, with an optional dts jitter (ms). */
class Feeder {
  v: Track;
  a: Track;
  private vi = 0;
  private ai = 0;
  private loops = 0;
  /** `rawLoop`: timestamps start again at 0 when the source loops (as a looped file gives them; the
   * publisher re-bases them), instead of continuing. */
  constructor(readonly pub: Publisher, private readonly jitterMs = 0, private readonly rawLoop = false, private seed = 7) {
    this.v = pub.addTrack('video', media.video.config);
    this.a = pub.addTrack('audio', media.audio!.config, { clockRate: media.audio!.clockRate });
  }
  private rand(): number { this.seed = (this.seed * 1103515245 + 12345) & 0x7fffffff; return this.seed / 0x7fffffff; }
  /** Media seconds of the source, looped. */
  private get span(): number { const f = media.video.frames; return (f[f.length - 1].dts + 3600) / 90000; }
  /** Write every frame up to media time `sec` (video and audio interleaved by time). */
  until(sec: number): void {
    const vf = media.video.frames, af = media.audio!.frames;
    for (;;) {
      const vs = this.loops * this.span + vf[this.vi].dts / 90000;
      const as = this.ai >= af.length ? Infinity : this.loops * this.span + af[this.ai].dts / media.audio!.clockRate;
      const t = Math.min(vs, as);
      if (t > sec) return;
      if (vs <= as) {
        const f = vf[this.vi];
        const j = this.jitterMs ? Math.round((this.rand() - 0.5) * 2 * this.jitterMs * 90) : 0;
        const base = this.rawLoop ? this.loops * this.span : 0;
        this.pub.write(this.v, Math.max(0, Math.round((vs - base) * 90000) + j), f.cts, f.key, f.data);
        if (++this.vi >= vf.length) { this.vi = 0; this.ai = 0; this.loops++; } // audio restarts with the loop
      } else {
        const f = af[this.ai];
        const base = this.rawLoop ? this.loops * this.span : 0;
        this.pub.write(this.a, Math.round((as - base) * media.audio!.clockRate), 0, true, f.data);
        this.ai++; // past the end: no audio until video loops
      }
    }
  }
}

const engines: Engine[] = [];
after(() => { for (const e of engines) e.shutdown(); });

async function segmenterOf(kind: SegmentKind, opts: { part?: number; jitterMs?: number; fragment?: number; rawLoop?: boolean } = {}) {
  const e = new Engine({ publish: { ...defaultPublish }, subscribe: { ...defaultSubscribe } });
  engines.push(e);
  const path = `live/seg${engines.length}`;
  const pub = await e.publish(path, { protocol: 'test' });
  const feed = new Feeder(pub, opts.jitterMs ?? 0, opts.rawLoop ?? false);
  feed.until(0.5);
  const seg = new Segmenter(kind, { fragment: opts.fragment ?? 1000, window: 6, extra: 0, part: opts.part ?? 200 });
  await e.subscribe(path, { protocol: 'test', sink: seg, type: 'transform', counted: false });
  return { e, pub, feed, seg };
}

const count = (text: string, tag: string) => text.split('\n').filter((l) => l.startsWith(tag)).length;
const discs = (text: string) => text.split('\n').filter((l) => l === '#EXT-X-DISCONTINUITY').length;

describe('hls segmenter: discontinuities and init segments', () => {
  for (const kind of ['ts', 'fmp4'] as const) {
    it(`${kind}: a fresh segmenter of audio+video lists no discontinuity${kind === 'fmp4' ? ' and one init segment' : ''}; a codec change gives one`, async () => {
      const { feed, seg, pub } = await segmenterOf(kind);
      feed.until(6);
      let pl = seg.playlist('', kind === 'fmp4');
      assert.ok(count(pl, '#EXTINF') >= 4, `segments listed:\n${pl}`);
      assert.equal(discs(pl), 0, `no discontinuity in a fresh playlist:\n${pl}`);
      if (kind === 'fmp4') {
        assert.equal(count(pl, '#EXT-X-MAP'), 1, `one init segment:\n${pl}`);
        assert.equal(seg.inits.size, 1);
      }
      // A real codec change: other SPS/PPS bytes (the level in the avcC record).
      const cfg = media.video.config;
      const data = cfg.data!.slice();
      data[3] = data[3] === 0x1f ? 0x1e : 0x1f;
      pub.setConfig(feed.v, { ...cfg, data });
      feed.until(9);
      pl = seg.playlist('', kind === 'fmp4');
      assert.equal(discs(pl), 1, `one discontinuity after a codec change:\n${pl}`);
      if (kind === 'fmp4') {
        assert.equal(count(pl, '#EXT-X-MAP'), 2, `a second init segment after the change:\n${pl}`);
        const [a, b] = [...seg.inits.values()];
        assert.notDeepEqual(a, b, 'the new init segment differs');
        // The tag and the new map go before the same segment.
        assert.match(pl, /#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="init-1\.mp4"/);
      }
    });
  }
});

describe('LL-HLS parts and PART-TARGET', () => {
  for (const [what, opts] of [
    ['jittered timestamps (±12 ms)', { jitterMs: 12 }],
    ['a looped file (timestamps start again at each loop)', { rawLoop: true }],
    ['both', { jitterMs: 12, rawLoop: true }],
  ] as const) {
    it(`with ${what}, no part outlasts PART-TARGET; parts add up to their segment`, async () => {
      const { feed, seg } = await segmenterOf('fmp4', { part: 200, ...opts });
      feed.until(20); // the 4 s source loops 4 times
      let parts = 0, worst = 0, least = Infinity;
      for (const s of seg.complete()) {
        let sum = 0;
        s.parts.forEach((p, i) => {
          parts++; sum += p.duration; worst = Math.max(worst, p.duration);
          if (i < s.parts.length - 1) least = Math.min(least, p.duration);
        });
        assert.ok(Math.abs(sum - s.duration) < 1e-6, `segment ${s.msn}: parts add up to ${sum}, segment ${s.duration}`);
      }
      assert.ok(parts >= 25, `${parts} parts`);
      assert.ok(worst <= 0.2 + 1e-6, `longest part ${worst.toFixed(4)} s > PART-TARGET 0.200`);
      const pl = seg.playlist('', true);
      for (const m of pl.matchAll(/#EXT-X-PART:DURATION=([\d.]+)/g)) assert.ok(Number(m[1]) <= 0.2, `listed part ${m[0]}`);
      console.log(`# ${what}: ${parts} parts, longest ${worst.toFixed(4)} s, shortest (not last of a segment) ${least.toFixed(4)} s, target 0.200 s`);
    });
  }
});

describe('LL-HLS parts of a looped file pull (the source issue 10 saw)', nodeOnly('part lengths are plugins/hls code; file pulls run on every runtime in flv tests'), () => {
  let S: TestServer;
  before(async () => { S = await startServer([flv, hls, llhls], 'llhls:\n  part: 200ms\nhls:\n  fragment: 1s\n'); });
  after(async () => { await S?.stop(); });

  it('/flv/api/pull of a 3 s file with loop: every EXT-X-PART over 10 s is <= PART-TARGET', async () => {
    const file = tmp.file('loop.flv');
    const r = await run(ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25',
      '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100', '-t', '3', '-c:v', 'libx264', '-preset', 'veryfast', '-bf', '3',
      '-g', '25', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-b:a', '64k', '-f', 'flv', file]);
    assert.equal(r.code, 0, r.stderr);
    const res = await fetch(`${S.http}/flv/api/pull`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ streamPath: 'vod/loop', url: file, loop: true }) });
    assert.equal((await res.json()).code, 0);
    const parts = new Map<string, number>();
    const t0 = Date.now();
    while (Date.now() - t0 < 10_000) {
      const pl = await fetch(`${S.http}/llhls/vod/loop/index.m3u8`);
      const text = await pl.text();
      if (pl.status === 200) {
        assert.match(text, /#EXT-X-PART-INF:PART-TARGET=0\.200/);
        for (const m of text.matchAll(/#EXT-X-PART:DURATION=([\d.]+),URI="([^"]+)"/g)) parts.set(m[2]!, Number(m[1]));
      }
      await sleep(150);
    }
    S.server.engine.stopStream('vod/loop');
    const worst = Math.max(...parts.values());
    assert.ok(parts.size > 20, `${parts.size} parts listed`);
    assert.ok(worst <= 0.2, `longest part ${worst} > PART-TARGET 0.200 (${[...parts].filter(([, d]) => d > 0.2).map(([u, d]) => `${u} ${d}`).join(', ')})`);
    console.log(`# looped file: ${parts.size} parts, longest ${worst.toFixed(3)} s`);
  });
});

describe('EXT-X-DISCONTINUITY-SEQUENCE while discontinuities scroll out (RFC 8216 6.2.2)', nodeOnly('playlist numbering is plugins/hls code; HLS serving runs on every runtime in hls tests'), () => {
  let S: TestServer;
  before(async () => { S = await startServer([flv, hls, llhls], 'hls:\n  fragment: 1s\n  window: 2\n  extra: 1\nllhls:\n  part: 200ms\n'); });
  after(async () => { await S?.stop(); });

  it('a poll (until the sequence rose 3 times, at most 20 s) of TS, fMP4 and LL-HLS playlists: every segment keeps its discontinuity sequence number', async () => {
    const path = 'live/dsn';
    const engine = S.server.engine;
    let pub = await engine.publish(path, { protocol: 'test' });
    let feed = new Feeder(pub);
    const t0 = Date.now();
    let lastSwap = t0, mediaOffset = 0;
    // Real time: write up to the wall clock every 20 ms; a new publisher every 2.5 s (a discontinuity).
    let stop = false;
    const pump = (async () => {
      while (!stop) {
        const now = Date.now();
        if (now - lastSwap > 2500) {
          lastSwap = now;
          pub.close('next publisher');
          pub = await engine.publish(path, { protocol: 'test' });
          feed = new Feeder(pub);
          mediaOffset = (now - t0) / 1000;
        }
        feed.until((now - t0) / 1000 - mediaOffset);
        await sleep(20);
      }
    })();
    const urls = [`${S.http}/hls/${path}.m3u8`, `${S.http}/hls/${path}.m3u8?fmp4`, `${S.http}/llhls/${path}/index.m3u8`];
    const seen = urls.map(() => new Map<string, number>()); // segment URI -> its discontinuity sequence number
    const dsnSeen = urls.map(() => new Set<number>());
    let polls = 0;
    try {
      // Until every playlist's sequence rose 3 times (4 values: one more than asserted below), at most 20 s.
      while (Date.now() - t0 < 20_000 && dsnSeen.some((x) => x.size < 4)) {
        await Promise.all(urls.map(async (u, k) => {
          const r = await fetch(u);
          const text = await r.text();
          if (r.status !== 200) return;
          polls++;
          let dsn = 0, n = 0;
          for (const line of text.split('\n')) {
            if (line.startsWith('#EXT-X-DISCONTINUITY-SEQUENCE:')) dsn = Number(line.slice(30));
            else if (line === '#EXT-X-DISCONTINUITY') n++;
            else if (line && !line.startsWith('#')) {
              const num = dsn + n, was = seen[k].get(line);
              assert.ok(was === undefined || was === num, `${u}: segment ${line} had discontinuity sequence ${was}, now ${num}:\n${text}`);
              seen[k].set(line, num);
            }
          }
          const prev = [...dsnSeen[k]].pop();
          assert.ok(prev === undefined || dsn >= prev, `${u}: EXT-X-DISCONTINUITY-SEQUENCE went back ${prev} -> ${dsn}`);
          dsnSeen[k].add(dsn);
        }));
        await sleep(150);
      }
    } finally {
      stop = true;
      await pump;
    }
    // Discontinuities did scroll out: the sequence rose several times in every playlist.
    for (let k = 0; k < urls.length; k++) assert.ok(dsnSeen[k].size >= 3, `${urls[k]}: sequence values seen ${[...dsnSeen[k]]}`);
    console.log(`# ${polls} playlists polled; discontinuity sequences seen: ${dsnSeen.map((s) => [...s].join(',')).join(' | ')}`);
  });
});
