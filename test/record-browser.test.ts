// VOD HLS of recordings in a real player: hls.js in headless Chromium plays /record/vod/{path}.m3u8 of
// 20 s recorded as TS segments and as fMP4 segments (byte ranges), and seeks: to 13 s (the third
// segment) and back to 2 s, playing on after each seek with no error.
//
// Node pass only: the browser is the client; the server runtimes are covered by the other record tests.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import rtmp from '../plugins/rtmp/index.ts';
import record from '../plugins/record/index.ts';
import { sleep, start, startServer, until, type TestServer } from './helpers/media.ts';
import { FFMPEG51, sourceArgs } from './helpers/record.ts';

const CHROMIUM = '/usr/bin/chromium';
const onNode = (process.env.M7S_TEST_RUNTIME ?? 'node') === 'node' && !(globalThis as any).Bun && !(globalThis as any).Deno;
const skip = !onNode ? 'Node pass only: the browser is the client; the server runtimes are covered elsewhere'
  : !existsSync(CHROMIUM) ? `${CHROMIUM} not installed` : false;
const require = createRequire(import.meta.url);
const root = (() => { let d = dirname(new URL(import.meta.url).pathname); while (!existsSync(join(d, 'package.json'))) d = dirname(d); return d; })();

describe('record: VOD HLS in hls.js (Chromium)', { skip }, () => {
  let S: TestServer;
  let dir: string;
  let browser: any;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'm7s-recbrowser-'));
    S = await startServer([rtmp, record], `rtmp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\nrecord:\n  fragment: 5s\n  filepath: "${dir}/{unix}"\n  subscribe:\n    waittimeout: 1s\n  indexfile: "${dir}/index.jsonl"\n`);
    const starts = ['hls', 'fmp4'].map((t) => fetch(`${S.http}/record/api/start/live/b?type=${t}&filepath=${encodeURIComponent(`${dir}/${t}/{unix}`)}`, { method: 'POST' }));
    const pub = start(FFMPEG51, [...sourceArgs(20, 4), '-f', 'flv', `rtmp://127.0.0.1:${S.port('rtmp')}/live/b`]);
    await Promise.all(starts);
    await new Promise<void>((r) => pub.proc.once('close', () => r()));
    await until(async () => ((await (await fetch(`${S.http}/record/api/list`)).json()) as any).data.recorders.length === 0, 15_000, 'recordings to end');
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--autoplay-policy=no-user-gesture-required'] });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await S?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const type of ['hls', 'fmp4']) {
    it(`plays the ${type} recording and seeks (13 s, then 2 s)`, async () => {
      const page = await browser.newPage();
      const logs: string[] = [];
      page.on('console', (m: any) => logs.push(`${m.type()}: ${m.text()}`));
      try {
        await page.goto(`${S.http}/record/api/stats`); // same origin as the playlist
        await page.setContent('<video id="v" muted playsinline width="320" height="240"></video>');
        await page.addScriptTag({ path: require.resolve('hls.js/dist/hls.min.js', { paths: [root] }) });
        await page.evaluate((url: string) => {
          const w = window as any;
          w.errors = [];
          const v = (globalThis as any).document.getElementById('v');
          const hls = new w.Hls();
          hls.on(w.Hls.Events.ERROR, (_: unknown, d: any) => { if (d.fatal) w.errors.push(`${d.type} ${d.details}`); });
          hls.loadSource(url);
          hls.attachMedia(v);
          hls.on(w.Hls.Events.MANIFEST_PARSED, () => { v.play(); });
        }, `${S.http}/record/vod/live/b.m3u8?type=${type}`);
        const state = () => page.evaluate(() => { const v = (globalThis as any).document.getElementById('v'); return { t: v.currentTime, d: v.duration, errors: (window as any).errors as string[], w: v.videoWidth }; });
        const why = async () => `${JSON.stringify(await state())}\n${logs.slice(-10).join('\n')}`;
        await until(async () => (await state()).t >= 1.5, 20_000, 'playback to start').catch(async (e) => { throw new Error(`${e.message}: ${await why()}`); });
        const s0 = await state();
        assert.deepEqual(s0.errors, []);
        assert.ok(Math.abs(s0.d - 20) <= 0.2, `duration ${s0.d}`);
        assert.equal(s0.w, 320);
        for (const to of [13, 2]) {
          await page.evaluate((x: number) => { ((globalThis as any).document.getElementById('v')).currentTime = x; }, to);
          await until(async () => { const s = await state(); return s.t >= to + 1 && s.t < to + 5; }, 15_000, `playing on after a seek to ${to} s`)
            .catch(async (e) => { throw new Error(`${e.message}: ${await why()}`); });
        }
        assert.deepEqual((await state()).errors, []);
        await sleep(100);
      } finally {
        await page.close();
      }
    });
  }
});
