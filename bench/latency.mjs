#!/usr/bin/env node
// HLS / LL-HLS / HTTP-FLV latency in a real browser, and the memory 100 HLS streams cost. Results go to
// the "HLS / LL-HLS latency" and "HTTP-FLV glass-to-glass" sections of docs/BENCHMARKS.md (by hand:
// this prints the numbers).
//
//   node bench/latency.mjs [--modes llhls,hls,flv] [--warmup 5] [--seconds 20] [--gop 1]   latency
//        flv only: [--joins 3] [--flv-config '{"isLive":true}']
//   node bench/latency.mjs --memory 100 [--kbps 500] [--seconds 30]                       memory
//
// Latency. m7s (bundled like `npm run build`, its own Node process, `hls.fragment: 1s`,
// `llhls.part: 200ms`) gets one RTMP stream from ffmpeg (libx264 ultrafast/zerolatency, 320×240 25 fps,
// keyframe every 25 frames, no audio). The raw frames come from this script: each carries the wall
// clock (ms) at which it was handed to ffmpeg, drawn as 48 black/white blocks. Headless Chromium
// (Debian's /usr/bin/chromium via playwright-core) plays the stream with hls.js from node_modules,
// in test/browser/player.html; on every presented frame (requestVideoFrameCallback) the page reads the
// blocks back from a canvas. Two figures per sample, every 500 ms after a warm-up:
//   glass-to-glass = the frame's expected display time − the clock drawn into it: encoder, RTMP,
//                    segmenting/parts, playlist reloads, HTTP, hls.js buffer, decode; not the screen.
//   PDT            = Date.now() − hls.playingDate (from EXT-X-PROGRAM-DATE-TIME, the server arrival
//                    time of the segment's first frame): the server-to-screen part alone.
// --gop sets the keyframe interval in seconds (default 1, or 2 when every mode is flv; scene-cut
// keyframes are off, so keyframes are exactly every gop·25 frames).
//
// WHEP (`whep`): the browser's own RTCPeerConnection plays /webrtc/play/live/clock (video only; the
// webrtc plugin on 127.0.0.1); glass-to-glass is read the same way, PDT does not apply.
//
// HTTP-FLV (`flv`): mpegts.js (node_modules/mpegts.js/dist) plays /flv/live/clock.flv with the config
// --flv-config (default {"isLive":true}: mpegts.js defaults otherwise, so no liveBufferLatencyChasing,
// stash buffer on). Two variants: m7s's default `subscribe.catchup` (100 ms: the cached GOP's video
// is retimed into 100 ms ending at the live edge) and `?catchup=0` (the GOP with its own timestamps).
// Every flv player is a warm one joining an old stream; --joins players per variant join at GOP phases
// spread over the GOP ((k + 0.5)/joins of it after a keyframe was handed to ffmpeg). Extra columns: the
// GOP phase at the join, the glass-to-glass of the first presented frame, and when the per-frame
// glass-to-glass first came within 50 ms of the row's p50 (the end of the catch-up).
//
// Memory. The same server, N in-process RTMP publishers (synthetic H.264/AAC from bench/load, --kbps
// each, keyframe every second so segments are 1 s), then every stream's HLS playlist is fetched every
// 2 s (segmenters on) for --seconds. The server's RSS (/proc) and V8 heap (/api/summary) are sampled:
// idle, with N publishers and no HLS, and with HLS on.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required',
  // whep: WebRTC on loopback only (the server advertises 127.0.0.1 and pairs with nothing else).
  '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns'];

const { values: a } = parseArgs({
  options: {
    modes: { type: 'string', default: 'llhls,hls' },
    gop: { type: 'string', default: '' },
    joins: { type: 'string', default: '3' },
    'flv-config': { type: 'string', default: '{"isLive":true}' },
    warmup: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '' },
    memory: { type: 'string', default: '' },
    kbps: { type: 'string', default: '500' },
  },
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...x) => console.error('#', ...x);
const wallMs = () => performance.timeOrigin + performance.now();
const pct = (xs, p) => { const s = [...xs].sort((x, y) => x - y); return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : NaN; };

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); });
  });
}

/** Bundles the Node entry point as scripts/build.mjs does, into bench/.build (not dist/). */
async function buildM7s() {
  const { build } = await import('esbuild');
  // The console's assets (a generated, uncommitted module) first, as scripts/build.mjs does.
  await (await import(join(ROOT, 'scripts/build-ui.mjs'))).buildUi();
  const outfile = join(ROOT, 'bench/.build/m7s.mjs');
  await build({
    entryPoints: [join(ROOT, 'adapters/node/main.ts')], outfile, bundle: true, platform: 'node', format: 'esm',
    target: 'node20', packages: 'external', logLevel: 'warning', absWorkingDir: ROOT,
  });
  return outfile;
}

/** Starts m7s in its own process on free loopback ports; resolves once its API answers. */
async function startM7s(dir) {
  const http = await freePort(), rtmp = await freePort();
  const cfg = join(dir, 'm7s.yaml');
  writeFileSync(cfg, [
    '# written by bench/latency.mjs',
    'global:', '  loglevel: warn', '  http:', `    listenaddr: 127.0.0.1:${http}`,
    'rtmp:', '  tcp:', `    listenaddr: 127.0.0.1:${rtmp}`,
    'hls:', '  fragment: 1s',
    'llhls:', '  part: 200ms',
    'webrtc:', '  port: ""', '  iceaddresses: ["127.0.0.1"]', '',
  ].join('\n'));
  const proc = spawn(process.execPath, [await buildM7s(), '-c', cfg], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d) => { err = (err + d).slice(-4000); });
  const base = `http://127.0.0.1:${http}`;
  for (let i = 0; ; i++) {
    if (proc.exitCode !== null) throw new Error(`m7s exited: ${err}`);
    try { if ((await fetch(`${base}/api/sysinfo`)).ok) break; } catch { /* not yet */ }
    if (i > 100) throw new Error(`m7s did not start: ${err}`);
    await sleep(100);
  }
  return { proc, base, rtmp: `rtmp://127.0.0.1:${rtmp}`, stop: () => stopProc(proc) };
}

async function stopProc(p) {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), 3000);
  await gone;
  clearTimeout(t);
}

// ---------------------------------------------------------------------------- the clock publisher

const W = 320, H = 240, FPS = 25;
const BLOCK = 20, COLS = 16, ROWS = 3;   // 48 blocks: 44 bits of ms, 4 bits of checksum

/** A yuv420p frame with `ms` drawn as blocks in the top 60 rows and a moving bar below. */
function clockFrame(ms, n) {
  const y = Buffer.alloc(W * H, 96), uv = Buffer.alloc((W * H) / 2, 128);
  const bits = [];
  let v = ms, sum = 0;
  for (let i = 0; i < 11; i++) { const nib = v % 16; sum += nib; v = Math.floor(v / 16); for (let b = 0; b < 4; b++) bits.push((nib >> b) & 1); }
  for (let b = 0; b < 4; b++) bits.push(((sum % 16) >> b) & 1);
  bits.forEach((bit, i) => {
    const x0 = (i % COLS) * BLOCK, y0 = Math.floor(i / COLS) * BLOCK;
    for (let yy = y0; yy < y0 + BLOCK; yy++) y.fill(bit ? 235 : 16, yy * W + x0, yy * W + x0 + BLOCK);
  });
  const bar = (n * 4) % W;
  for (let yy = 80; yy < H; yy++) y.fill(200, yy * W + bar, yy * W + Math.min(W, bar + 16));
  return Buffer.concat([y, uv]);
}

/** ffmpeg encodes frames we draw in real time (each stamped when handed over) and publishes over RTMP. */
function clockPublisher(url, ffmpeg, gop) {
  const p = spawn(ffmpeg, ['-hide_banner', '-loglevel', 'error', '-f', 'rawvideo', '-pix_fmt', 'yuv420p', '-s', `${W}x${H}`,
    '-r', String(FPS), '-i', 'pipe:0', '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', String(gop),
    '-x264-params', 'scenecut=0', '-bf', '0', '-pix_fmt', 'yuv420p', '-flush_packets', '1', '-f', 'flv', url], { stdio: ['pipe', 'ignore', 'pipe'] });
  let err = '';
  p.stderr.on('data', (d) => { err = (err + d).slice(-4000); });
  p.stdin.on('error', () => {});
  const t0 = performance.now();
  let n = 0, timer, lastKey = 0;
  const tick = () => {
    const due = Math.floor((performance.now() - t0) / (1000 / FPS)) + 1;
    while (n < due && p.exitCode === null) {
      const ms = Math.round(wallMs());
      if (n % gop === 0) lastKey = ms;
      p.stdin.write(clockFrame(ms, n++));
    }
    timer = setTimeout(tick, t0 + n * (1000 / FPS) - performance.now());
  };
  tick();
  // lastKey: the clock drawn into the newest keyframe (frame n % gop === 0) handed to ffmpeg.
  return { stderr: () => err, lastKey: () => lastKey, stop: async () => { clearTimeout(timer); p.stdin.end(); await stopProc(p); } };
}

/** Page script: on every presented frame, decode the drawn clock; keeps the latest latency in window.g2g. */
const READER = `(() => {
  const v = document.getElementById('v');
  const c = document.createElement('canvas'); c.width = ${W}; c.height = ${ROWS * BLOCK};
  const g = c.getContext('2d', { willReadFrequently: true });
  // first: the first presented frame read back (its glass-to-glass and when); series: [t, g2g] of the
  // first 500 frames (t = performance.now() time of the frame's expected display).
  window.g2g = { last: null, frames: 0, bad: 0, first: null, series: [] };
  const onFrame = (_now, meta) => {
    if (v.videoWidth === ${W}) {
      g.drawImage(v, 0, 0, ${W}, ${H}, 0, 0, ${W}, ${H});
      const px = g.getImageData(0, 0, ${W}, ${ROWS * BLOCK}).data;
      const bit = (i) => px[(((Math.floor(i / ${COLS}) * ${BLOCK} + ${BLOCK / 2}) * ${W}) + (i % ${COLS}) * ${BLOCK} + ${BLOCK / 2}) * 4] > 128 ? 1 : 0;
      let ms = 0, sum = 0, mul = 1;
      for (let k = 0; k < 11; k++) { let nib = 0; for (let b = 0; b < 4; b++) nib |= bit(k * 4 + b) << b; sum += nib; ms += nib * mul; mul *= 16; }
      let chk = 0; for (let b = 0; b < 4; b++) chk |= bit(44 + b) << b;
      if (chk === sum % 16) {
        const l = performance.timeOrigin + meta.expectedDisplayTime - ms;
        window.g2g.last = l; window.g2g.frames++;
        if (!window.g2g.first) window.g2g.first = { g2g: l, at: meta.expectedDisplayTime, clock: ms };
        if (window.g2g.series.length < 500) window.g2g.series.push([meta.expectedDisplayTime, l]);
      }
      else window.g2g.bad++;
    }
    v.requestVideoFrameCallback(onFrame);
  };
  v.requestVideoFrameCallback(onFrame);
})();`;

async function latency() {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} missing: apt-get install chromium`);
  const { chromium } = await import('playwright-core');
  const ffmpeg = process.env.M7S_FFMPEG || require('@ffmpeg-installer/ffmpeg').path;
  const warmup = Number(a.warmup) * 1000, measureMs = Number(a.seconds || 20) * 1000;
  const modes = a.modes.split(',');
  const gopSec = Number(a.gop || (modes.every((m) => m === 'flv') ? 2 : 1)), gopMs = gopSec * 1000;
  const joins = Math.max(1, Number(a.joins));
  const flvConfig = JSON.parse(a['flv-config']);
  const dir = mkdtempSync(join(tmpdir(), 'm7s-latency-'));
  const S = await startM7s(dir);
  const pub = clockPublisher(`${S.rtmp}/live/clock`, ffmpeg, Math.round(gopSec * FPS));
  log(`GOP ${gopSec} s; mpegts.js config ${JSON.stringify(flvConfig)}`);
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  const results = [];
  try {
    for (let i = 0; i < 100; i++) {
      const info = await fetch(`${S.base}/api/stream/info/live/clock`);
      if (info.ok) break;
      if (i === 99) throw new Error(`no stream: ffmpeg ${pub.stderr()}`);
      await sleep(100);
    }
    // HLS modes twice: 'cold' is the first player (its playlist request starts the segmenter, so hls.js
    // starts with one segment listed); 'warm' joins ~10 s later with the playlist window full.
    // flv: warm players only (the stream has run for a while), catch-up on and off at each GOP phase.
    const runs = modes.flatMap((m) => m !== 'flv' ? [{ mode: m, run: 'cold' }, { mode: m, run: 'warm' }]
      : Array.from({ length: joins }, (_, k) => ['', 'catchup=0'].map((query) =>
        ({ mode: m, run: 'warm', query, phase: Math.round(((k + 0.5) / joins) * gopMs) }))).flat());
    if (modes.every((m) => m === 'flv')) await sleep(Math.max(0, 2 * gopMs - 2000)); // a few GOPs old
    for (const { mode, run, query, phase } of runs) {
      const page = await browser.newPage({ viewport: { width: 640, height: 520 } });
      const warnings = [];
      page.on('console', (m) => { if (m.type() === 'warning' || m.type() === 'error') warnings.push(`${m.type()}: ${m.text()}`.slice(0, 300)); });
      page.on('pageerror', (e) => warnings.push(`pageerror: ${e.message}`));
      await page.setContent(readFileSync(join(ROOT, 'test/browser/player.html'), 'utf8'));
      await page.addScriptTag({ path: require.resolve('hls.js/dist/hls.min.js') });
      if (mode === 'flv' || mode === 'wsflv') await page.addScriptTag({ path: require.resolve('mpegts.js/dist/mpegts.js') });
      await page.addScriptTag({ path: join(ROOT, 'test/browser/player.js') });
      await page.addScriptTag({ content: READER });
      // flv: join when the newest keyframe is `phase` ms old (the GOP m7s has cached is that old).
      if (phase !== undefined) await sleep((((phase - (wallMs() - pub.lastKey())) % gopMs) + gopMs) % gopMs);
      const joinPhase = Math.round(wallMs() - pub.lastKey());
      await page.evaluate((cfg) => { window.playAt = performance.now(); window.m7sPlay(cfg); },
        { mode, base: S.base, stream: 'live/clock', query, flv: flvConfig });
      const t0 = Date.now();
      while (!(await page.evaluate(() => window.m7s.report().playingFor > 0))) {
        if (Date.now() - t0 > 30_000) throw new Error(`${mode}: no playback: ${JSON.stringify(await page.evaluate(() => window.m7s.report()))}`);
        await sleep(100);
      }
      await sleep(warmup);
      const g2g = [], pdt = [];
      const end = Date.now() + measureMs;
      while (Date.now() < end) {
        const s = await page.evaluate(() => ({ g: window.g2g.last, p: window.m7s.latency() }));
        if (s.g !== null) g2g.push(s.g);
        if (s.p !== null) pdt.push(s.p);
        await sleep(500);
      }
      const r = await page.evaluate(() => ({
        ...window.m7s.report(), clock: window.g2g, playAt: window.playAt, playAtWall: performance.timeOrigin + window.playAt,
        firstPlayingAt: window.m7s.state.firstPlayingAt,
        ranges: (({ buffered: b }) => Array.from({ length: b.length }, (_, i) => [+b.start(i).toFixed(3), +b.end(i).toFixed(3)]))(document.getElementById('v')),
        quality: (({ totalVideoFrames, droppedVideoFrames }) => ({ totalVideoFrames, droppedVideoFrames }))(document.getElementById('v').getVideoPlaybackQuality()),
      }));
      await page.screenshot({ path: join(dir, `${mode}-${run}.png`) });
      const sum = (xs) => ({ n: xs.length, p50: Math.round(pct(xs, 50)), p95: Math.round(pct(xs, 95)), min: Math.round(Math.min(...xs)), max: Math.round(Math.max(...xs)) });
      const s50 = pct(g2g, 50);
      const settled = r.clock.series.find(([, l]) => l <= s50 + 50);
      const row = {
        mode, run, query: query ?? '', joinPhaseMs: phase === undefined ? null : joinPhase,
        startupMs: Math.round(r.firstPlayingAt - r.playAt), g2g: sum(g2g), pdt: sum(pdt),
        firstPicture: r.clock.first && { afterMs: Math.round(r.clock.first.at - r.playAt), g2g: Math.round(r.clock.first.g2g), ageAtJoinMs: Math.round(r.playAtWall - r.clock.first.clock) },
        settledMs: settled ? Math.round(settled[0] - r.playAt) : null,
        stalls: r.stalls, frozenMs: r.frozenMs, mediaAheadS: +(r.played - r.playingFor).toFixed(2), quality: r.quality,
        error: r.error, clockFrames: r.clock.frames, clockBad: r.clock.bad, warnings: warnings.slice(0, 10), warningCount: warnings.length, ranges: r.ranges, events: mode === 'flv' ? r.events : undefined,
      };
      results.push(row);
      log(JSON.stringify(row));
      await page.close();
    }
  } finally {
    await browser.close().catch(() => {});
    await pub.stop();
    await S.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const stalls = (r) => `${r.stalls.length}${r.stalls.length ? ` (${Math.max(...r.stalls.map((x) => x.ms))} ms)` : ''}`;
  const hls = results.filter((r) => r.mode !== 'flv'), flv = results.filter((r) => r.mode === 'flv');
  if (hls.length) {
    console.log('| mode | player | glass-to-glass p50 ms | p95 ms | min–max ms | PDT (server→screen) p50 ms | p95 ms | samples | stalls | first frame ms |');
    console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of hls) {
      console.log(`| ${r.mode} | ${r.run} | ${r.g2g.p50} | ${r.g2g.p95} | ${r.g2g.min}–${r.g2g.max} | ${r.pdt.p50} | ${r.pdt.p95} | ${r.g2g.n} | ${stalls(r)} | ${r.startupMs} |`);
    }
  }
  if (flv.length) {
    console.log('| HTTP-FLV | GOP age at join ms | first frame ms | first picture g2g ms | within 50 ms of p50 after ms | glass-to-glass p50 ms | p95 ms | min–max ms | samples | stalls (longest) | dropped / frames |');
    console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|');
    for (const r of flv) {
      console.log(`| ${r.query ? `\`?${r.query}\`` : 'catch-up (default)'} | ${r.joinPhaseMs} | ${r.startupMs} | ${r.firstPicture?.g2g ?? '–'} | ${r.settledMs ?? '–'} | ` +
        `${r.g2g.p50} | ${r.g2g.p95} | ${r.g2g.min}–${r.g2g.max} | ${r.g2g.n} | ${stalls(r)} | ${r.quality.droppedVideoFrames} / ${r.quality.totalVideoFrames} |`);
    }
  }
}

// ---------------------------------------------------------------------------- memory

async function memory(n) {
  const { rtmpSession } = await import('./load/rtmp.mjs');
  const { aacSequenceHeader, audioFrame, avcSequenceHeader, plan, videoFrame, wallMicros } = await import('./load/media.mjs');
  const seconds = Number(a.seconds || 30);
  const dir = mkdtempSync(join(tmpdir(), 'm7s-mem-'));
  const S = await startM7s(dir);
  const rssOf = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${S.proc.pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
  const heapOf = async () => (await (await fetch(`${S.base}/api/summary`)).json()).data.memory.heapUsed;
  const sample = async (label, ms) => {
    const rss = [], heap = [];
    const end = Date.now() + ms;
    while (Date.now() < end) { rss.push(rssOf()); heap.push(await heapOf()); await sleep(1000); }
    const r = { label, rssMB: pct(rss, 50) / 1e6, rssMaxMB: Math.max(...rss) / 1e6, heapMB: pct(heap, 50) / 1e6 };
    log(JSON.stringify(r));
    return r;
  };
  const P = plan({ videoKbps: Number(a.kbps), audioKbps: 64, fps: 25, gopSeconds: 1 });
  const sessions = [];
  let timer, keepAlive;
  try {
    await sleep(2000);
    const idle = await sample('idle', 3000);
    for (let i = 0; i < n; i++) {
      const s = await rtmpSession(`${S.rtmp}/mem/s${i}`, 'publish');
      s.writer.send(6, 9, s.streamId, 0, avcSequenceHeader());
      s.writer.send(7, 8, s.streamId, 0, aacSequenceHeader());
      sessions.push(s);
    }
    // One loop publishes every stream in real time (frames due by now, by the wall clock).
    const audio = audioFrame(P.audioSize);
    const t0 = performance.now();
    let v = 0, au = 0;
    const tick = () => {
      const now = performance.now() - t0;
      while (Math.min(v * (1000 / P.fps), au * (1000 / P.audioFps)) <= now) {
        if (v * (1000 / P.fps) <= au * (1000 / P.audioFps)) {
          const key = v % P.gop === 0;
          const body = videoFrame(key ? P.idrSize : P.pSize, key, wallMicros());
          for (const s of sessions) s.writer.send(6, 9, s.streamId, Math.round(v * (1000 / P.fps)), body);
          v++;
        } else {
          for (const s of sessions) s.writer.send(7, 8, s.streamId, Math.round(au * (1000 / P.audioFps)), audio);
          au++;
        }
      }
      timer = setTimeout(tick, 10);
    };
    tick();
    await sleep(3000);
    const published = await sample(`${n} publishers, no HLS`, 5000);
    const fetchAll = async () => {
      const rs = await Promise.all(sessions.map((_, i) => fetch(`${S.base}/hls/mem/s${i}.m3u8`).then(async (r) => { await r.arrayBuffer(); return r.status; })));
      const bad = rs.filter((x) => x !== 200).length;
      if (bad) throw new Error(`${bad} playlists failed`);
    };
    await fetchAll();
    keepAlive = setInterval(() => fetchAll().catch((e) => log(e.message)), 2000);
    await sleep(8000); // windows fill: window 3 + extra 3 segments of 1 s
    const withHls = await sample(`${n} publishers, HLS on`, seconds * 1000);
    const list = (await (await fetch(`${S.base}/hls/api/list`)).json()).data.segmenters;
    const held = list.reduce((x, s) => x + s.bytes, 0);
    const perStream = (x, y) => ((x - y) * 1e6 / n / 1024).toFixed(0);
    console.log(`| streams | kb/s each | RSS idle MB | RSS publishing MB | RSS with HLS MB (max) | heap idle → publishing → HLS MB | HLS RSS KiB/stream | HLS heap KiB/stream | segment bytes held KiB/stream |`);
    console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    console.log(`| ${n} | ${Number(a.kbps) + 64} | ${idle.rssMB.toFixed(0)} | ${published.rssMB.toFixed(0)} | ${withHls.rssMB.toFixed(0)} (${withHls.rssMaxMB.toFixed(0)}) | ` +
      `${idle.heapMB.toFixed(0)} → ${published.heapMB.toFixed(0)} → ${withHls.heapMB.toFixed(0)} | ${perStream(withHls.rssMB, published.rssMB)} | ` +
      `${perStream(withHls.heapMB, published.heapMB)} | ${(held / n / 1024).toFixed(0)} (${list.length} segmenters) |`);
  } finally {
    clearTimeout(timer);
    clearInterval(keepAlive);
    for (const s of sessions) s.socket.destroy();
    await S.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (a.memory) await memory(Number(a.memory));
else await latency();
