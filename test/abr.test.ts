// ABR HLS (issue 18): a 640x360 source (CBR ~1.2 Mb/s) with two transcode renditions (240p, 144p).
// /hls/live/x.m3u8 is a master playlist with BANDWIDTH/RESOLUTION/CODECS per variant, and
// /llhls/live/x/master.m3u8 its LL-HLS twin; the variants' segments are aligned (the same start times
// and durations, read with ffprobe); hls.js in headless Chromium plays the master playlist at the top
// level and switches down when the test throttles the page's network (CDP
// Network.emulateNetworkConditions). Node pass only: the browser and ffmpeg are the clients.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import flv from '../plugins/flv/index.ts';
import hls from '../plugins/hls/index.ts';
import llhls from '../plugins/hls/llhls.ts';
import transcode from '../plugins/transcode/index.ts';
import { managerFor } from '../plugins/hls/manager.ts';
import { ffmpegPath, ffprobe, sleep, start, startServer, until, type TestServer } from './helpers/media.ts';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'];
const onNode = (process.env.M7S_TEST_RUNTIME ?? 'node') === 'node' && !(globalThis as any).Bun && !(globalThis as any).Deno;
const skip = !onNode ? 'Node pass only: the browser and ffmpeg are the clients'
  : !existsSync(CHROMIUM) && !process.env.CI ? `${CHROMIUM} not installed` : false;

const require = createRequire(import.meta.url);
const root = (() => { let d = dirname(new URL(import.meta.url).pathname); while (!existsSync(join(d, 'package.json'))) d = dirname(d); return d; })();
const lib = (spec: string) => require.resolve(spec, { paths: [root] });

/** A 640x360 15 fps source at a constant ~1.2 Mb/s (x264 CBR with filler), 1 s GOP. */
function sourceArgs(seconds: number): string[] {
  return ['-hide_banner', '-loglevel', 'error', '-re',
    '-f', 'lavfi', '-i', `testsrc2=size=640x360:rate=15:duration=${seconds}`,
    '-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=44100:duration=${seconds}`,
    '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-g', '15', '-bf', '0',
    '-b:v', '1200k', '-minrate', '1200k', '-maxrate', '1200k', '-bufsize', '600k', '-x264-params', 'nal-hrd=cbr',
    '-c:a', 'aac', '-b:a', '64k'];
}

function parseMedia(text: string): { uri: string; duration: number }[] {
  const out: { uri: string; duration: number }[] = [];
  let d = -1;
  for (const l of text.split('\n')) {
    if (l.startsWith('#EXTINF:')) d = parseFloat(l.slice(8));
    else if (l && !l.startsWith('#') && d >= 0) { out.push({ uri: l.trim(), duration: d }); d = -1; }
  }
  return out;
}

describe('ABR HLS', { skip }, () => {
  let S: TestServer;
  let pub: ReturnType<typeof start>;
  let browser: any;

  before(async () => {
    // hls segments live/x from its start (onpub.transform), before it has renditions: the master
    // request must restart that segmenter on the aligned grid.
    S = await startServer([flv, hls, llhls, transcode], `hls:
  fragment: 1s
  window: 4
  onpub:
    transform:
      "live/x": ""
transcode:
  profiles:
    240p: { height: 240, videobitrate: 300k, preset: ultrafast }
    144p: { height: 144, videobitrate: 100k, preset: ultrafast }
  onpub:
    transform:
      "live/x": "240p 144p"
`);
    pub = start(ffmpegPath, [...sourceArgs(120), '-f', 'flv', '-method', 'POST', `${S.http}/flv/live/x.flv`]);
    await until(() => managerFor(S.server.engine, S.server.logger).find('live/x', 'ts'), 15_000, 'pinned segmenter');
    assert.equal(managerFor(S.server.engine, S.server.logger).find('live/x', 'ts')!.seg.align, false, 'started before the renditions: not aligned yet');
    const running = async () => ((await (await fetch(`${S.http}/transcode/api/list`)).json() as any).data.jobs as any[]).filter((j) => j.state === 'running' && !j.ended).length;
    await until(async () => (await running()) === 2 && S.server.engine.getStream('live/x/144p')?.tracks.some((t) => t.kind === 'video' && t.bps > 0), 30_000, 'two renditions');
    // Bitrates are measured over a second: let them settle.
    await sleep(2000);
  });
  after(async () => {
    await browser?.close().catch(() => {});
    await pub?.kill();
    await S?.stop();
  });

  it('the master playlist lists the variants; their segments are aligned', async () => {
    // One variant's segmenter starts 2.5 s before the others: alignment must not depend on when.
    assert.equal((await fetch(`${S.http}/hls/live/x/144p.m3u8`)).status, 200);
    await sleep(2500);
    const r = await fetch(`${S.http}/hls/live/x.m3u8`);
    assert.equal(r.status, 200);
    const text = await r.text();
    console.log(`# master playlist:\n${text.trim().split('\n').map((l) => '#   ' + l).join('\n')}`);
    const inf = [...text.matchAll(/#EXT-X-STREAM-INF:(.*)\n(.*)/g)].map((m) => ({ attrs: m[1]!, uri: m[2]! }));
    assert.deepEqual(inf.map((v) => v.uri), ['x.m3u8?media', 'x/240p.m3u8', 'x/144p.m3u8'], text);
    const res = inf.map((v) => /RESOLUTION=(\d+x\d+)/.exec(v.attrs)?.[1]);
    assert.deepEqual(res, ['640x360', '426x240', '256x144'], text);
    const bw = inf.map((v) => Number(/BANDWIDTH=(\d+)/.exec(v.attrs)![1]));
    assert.ok(bw[0]! > bw[1]! && bw[1]! > bw[2]!, `bandwidths descend: ${bw}`);
    for (const v of inf) assert.match(v.attrs, /CODECS="avc1\.[0-9a-fA-F]{6},mp4a\.40\.2",FRAME-RATE=15\.000/, v.attrs);

    const ll = await fetch(`${S.http}/llhls/live/x/master.m3u8`);
    assert.equal(ll.status, 200);
    assert.deepEqual([...(await ll.text()).matchAll(/#EXT-X-STREAM-INF:.*\n(.*)/g)].map((m) => m[1]), ['index.m3u8', '240p/index.m3u8', '144p/index.m3u8']);
    assert.equal((await fetch(`${S.http}/llhls/live/none/master.m3u8`)).status, 404);
    // Each LL-HLS variant is a low-latency media playlist with parts.
    for (const u of ['index.m3u8', '240p/index.m3u8', '144p/index.m3u8']) {
      const v = await fetch(`${S.http}/llhls/live/x/${u}`);
      assert.equal(v.status, 200, u);
      assert.match(await v.text(), /#EXT-X-PART:DURATION=[\d.]+,URI="/, u);
    }

    // Aligned: the variants' segmenters (started one after the other by the master request) cut at the
    // same times of the shared timeline: the same segment start times, the same durations (the
    // playlists' EXTINF and ffprobe's reading of each segment).
    const base = `${S.http}/hls/live/`;
    await sleep(3000);
    const mgr = managerFor(S.server.engine, S.server.logger);
    for (const p of ['live/x', 'live/x/240p', 'live/x/144p']) assert.equal(mgr.find(p, 'ts')?.seg.align, true, `${p} segments on the aligned grid`);
    const starts: Map<string, number>[] = [];
    for (const [u, path] of [['x.m3u8?media', 'live/x'], ['x/240p.m3u8', 'live/x/240p'], ['x/144p.m3u8', 'live/x/144p']] as const) {
      const pl = await (await fetch(base + u)).text();
      const segs = parseMedia(pl);
      assert.ok(segs.length >= 2, pl);
      const seg = mgr.find(path, 'ts')!.seg;
      const m = new Map<string, number>();
      for (const s of segs) {
        const msn = Number(/(\d+)\.ts/.exec(s.uri)![1]);
        // ffprobe: the video packets' span (+ one frame at 15 fps) is the EXTINF duration.
        const p = await ffprobe(new URL(s.uri, base + u).href, { packets: true });
        const pts = p.packets.filter((x: any) => x.codec_type === 'video').map((x: any) => Number(x.pts_time));
        const span = Math.max(...pts) - Math.min(...pts) + 1 / 15;
        assert.ok(Math.abs(span - s.duration) < 0.15, `${path} ${s.uri}: ffprobe ${span} s, EXTINF ${s.duration}`);
        m.set(seg.segment(msn)!.start.toFixed(2), s.duration);
      }
      starts.push(m);
    }
    console.log(`# segment start → duration per variant: ${starts.map((m) => JSON.stringify([...m])).join(' | ')}`);
    // Starts are on the streams' shared timeline (seconds since the source began), not each segmenter's own from 0.
    for (const m of starts) assert.ok(Math.min(...[...m.keys()].map(Number)) >= 2, `segment starts on the stream timeline: ${[...m.keys()]}`);
    const common = [...starts[0]!.keys()].filter((k) => starts.every((m) => m.has(k)));
    assert.ok(common.length >= 2, `at least two segments start at the same time in every variant: ${starts.map((m) => [...m.keys()].join(',')).join(' | ')}`);
    for (const k of common.slice(0, -1)) {
      const d = starts.map((m) => m.get(k)!);
      assert.ok(Math.max(...d) - Math.min(...d) < 0.1, `segment at ${k}: durations ${d}`);
    }
  });

  it('hls.js plays the master playlist and switches level when the bandwidth is throttled', async () => {
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    const page = await browser.newPage({ viewport: { width: 640, height: 400 } });
    const logs: string[] = [];
    page.on('console', (m: any) => logs.push(`${m.type()}: ${m.text()}`));
    await page.setContent('<!doctype html><video id="v" muted autoplay playsinline width="640" height="360"></video>');
    await page.addScriptTag({ path: lib('hls.js/dist/hls.min.js') });
    await page.evaluate((url: string) => {
      const w = window as any;
      const v = (globalThis as any).document.getElementById('v');
      // Levels are sorted by bandwidth, lowest first: 2 is the source. ABR stays on (auto level).
      const hls = new w.Hls({ startLevel: 2, capLevelToPlayerSize: false, abrEwmaDefaultEstimate: 5_000_000 });
      w.r = { switches: [] as number[], errors: [] as string[] };
      hls.on(w.Hls.Events.LEVEL_SWITCHED, (_: unknown, d: any) => w.r.switches.push([hls.levels[d.level].height, Math.round(performance.now())]));
      hls.on(w.Hls.Events.ERROR, (_: unknown, d: any) => { if (d.fatal) w.r.errors.push(d.details); });
      hls.loadSource(url);
      hls.attachMedia(v);
      w.hls = hls;
      w.report = () => ({ ...w.r, t: v.currentTime, heights: hls.levels.map((l: any) => l.height), level: hls.currentLevel >= 0 ? hls.levels[hls.currentLevel].height : -1, w: v.videoWidth, h: v.videoHeight, est: Math.round(hls.bandwidthEstimate) });
    }, `${S.http}/hls/live/x.m3u8`);
    const report = () => page.evaluate(() => (window as any).report());
    const why = async () => `${JSON.stringify(await report())}\n${logs.slice(-10).join('\n')}`;
    await until(async () => { const r = await report(); return r.t > 3 && r.h === 360 && r.level === 360; }, 30_000, 'playing the 360p source').catch(async (e) => { throw new Error(`${e.message}: ${await why()}`); });
    assert.deepEqual((await report()).heights, [144, 240, 360]);
    const cdp = await page.context().newCDPSession(page);
    // ~250 kb/s: the source (~1.3 Mb/s) cannot be fetched in time; the lower levels can.
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 50, downloadThroughput: 250_000 / 8, uploadThroughput: 1_000_000 / 8 });
    const t0 = Date.now();
    const pageT0: number = await page.evaluate(() => performance.now());
    await until(async () => { const r = await report(); return r.level > 0 && r.level < 360 && r.switches.some(([h, at]: number[]) => h < 360 && at >= pageT0); }, 40_000, 'a switch to a lower level')
      .catch(async (e) => { throw new Error(`${e.message}: ${await why()}`); });
    const r = await report();
    console.log(`# hls.js switched to ${r.level}p ${((Date.now() - t0) / 1000).toFixed(1)} s after the throttle; switches ${JSON.stringify(r.switches)}, estimate ${r.est} b/s`);
    assert.deepEqual(r.errors, []);
    const tBefore = r.t;
    await until(async () => (await report()).t > tBefore + 1, 20_000, 'playback continues at the lower level');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  });
});
