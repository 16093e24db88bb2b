// WebRTC in headless Chromium against a live m7s: Chromium with a fake camera and microphone publishes by
// WHIP and a second page plays it by WHEP (video time advancing ≥ 5 s, inbound audio and video RTP in
// getStats); ffmpeg publishes RTMP H.264 + AAC and Chromium plays the video by WHEP. The pages are the
// plugin's own test pages (/webrtc/test/publish and /webrtc/test/play).
//
// Every ICE candidate stays on 127.0.0.1: the server gathers on loopback only (webrtc.iceaddresses),
// Chromium is allowed loopback candidates and shows no mDNS names, and the server drops and never pairs
// with any other remote address.
//
// Node pass only: the browser is the client, and the WebRTC server's runtimes are covered by
// webrtc.test.ts (node-datachannel). Without /usr/bin/chromium the suite is skipped, except under CI.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import rtmp from '../plugins/rtmp/index.ts';
import webrtc from '../plugins/webrtc/index.ts';
import { ffmpegPath, sleep, start, startServer, testSourceArgs, until, type TestServer } from './helpers/media.ts';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = 'test-artifacts';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required',
  '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
  '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns'];

const onNode = (process.env.M7S_TEST_RUNTIME ?? 'node') === 'node' && !(globalThis as any).Bun && !(globalThis as any).Deno;
const haveChromium = existsSync(CHROMIUM);
const skip = !onNode ? 'Node pass only: the browser is the client; the server runtimes are covered by webrtc.test.ts'
  : !haveChromium && !process.env.CI ? `${CHROMIUM} not installed (apt-get install chromium)` : false;
const root = (() => { let d = dirname(new URL(import.meta.url).pathname); while (!existsSync(join(d, 'package.json'))) d = dirname(d); return d; })();

export const LOOPBACK_WEBRTC = 'webrtc:\n  port: "udp:0"\n  iceaddresses: ["127.0.0.1"]\n  pli: 1s\n';

interface Stats {
  currentTime: number; width: number; height: number; firstFrameMs: number | null; state: string | null;
  video: { packets: number; frames: number; lost: number; codec: string | null } | null; audio: { packets: number; audioLevel: number } | null;
}

describe('WebRTC in headless Chromium (WHIP and WHEP)', { skip }, () => {
  let S: TestServer;
  let browser: any;
  const procs: { kill(): Promise<void>; stderr(): string }[] = [];

  before(async () => {
    mkdirSync(join(root, ARTIFACTS), { recursive: true });
    S = await startServer([rtmp, webrtc], 'rtmp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\n' + LOOPBACK_WEBRTC);
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    for (const p of procs) await p.kill();
    await S?.stop();
  });

  async function page(kind: 'publish' | 'play') {
    const p = await browser.newPage({ viewport: { width: 700, height: 600 } });
    const logs: string[] = [];
    p.on('console', (m: any) => logs.push(`${m.type()}: ${m.text()}`));
    p.on('pageerror', (e: Error) => logs.push(`pageerror: ${e.message}`));
    await p.goto(`${S.http}/webrtc/test/${kind}`);
    return { p, logs };
  }

  /** Play `stream` by WHEP until the video advanced `seconds`; returns the last stats. */
  async function playFor(stream: string, seconds: number, needAudio: boolean): Promise<Stats> {
    const { p, logs } = await page('play');
    try {
      await p.evaluate((o: any) => (window as any).m7sWhep(o), { base: S.http, stream });
      const t0 = Date.now();
      let st: Stats;
      let startTime = -1;
      for (;;) {
        st = await p.evaluate(() => (window as any).m7sStats());
        if (startTime < 0 && st.currentTime > 0) startTime = st.currentTime;
        if (startTime >= 0 && st.currentTime - startTime >= seconds && (!needAudio || (st.audio?.packets ?? 0) > 0)) break;
        assert.ok(Date.now() - t0 < 25_000, `not ${seconds} s of video in 25 s: ${JSON.stringify(st)}\n${logs.slice(-10).join('\n')}`);
        await sleep(250);
      }
      await p.screenshot({ path: join(root, ARTIFACTS, `webrtc-${stream.replace(/\//g, '-')}.png`) });
      await p.evaluate(() => (window as any).m7sStop('sub'));
      return st;
    } finally {
      await p.close();
    }
  }

  it('Chromium publishes camera + microphone by WHIP; a second page plays it by WHEP (≥ 5 s, audio and video RTP)', async () => {
    const { p: pub, logs } = await page('publish');
    try {
      const loc = await pub.evaluate((o: any) => (window as any).m7sWhip(o), { base: S.http, stream: 'live/cam' });
      assert.match(loc, /^\/webrtc\/session\/[0-9a-f]+$/);
      await until(() => {
        const s = S.server.engine.getStream('live/cam');
        return s && s.tracks.some((t) => t.kind === 'video' && t.frames > 10) && s.tracks.some((t) => t.kind === 'audio' && t.frames > 10);
      }, 15_000, 'WHIP video+audio frames').catch(async (e) => {
        const list = await (await fetch(`${S.http}/webrtc/api/list`)).text();
        throw new Error(`${e.message}: ${list} ${JSON.stringify(S.server.engine.getStream('live/cam')?.tracks.map((t) => t.info()))} ${logs.slice(-5).join(' | ')}`);
      });
      const s = S.server.engine.getStream('live/cam')!;
      assert.equal(s.tracks.find((t) => t.kind === 'video')!.codec, 'h264');
      assert.equal(s.tracks.find((t) => t.kind === 'audio')!.codec, 'opus');
      const st = await playFor('live/cam', 5, true);
      assert.ok(st.video && st.video.packets > 100, JSON.stringify(st));
      assert.ok(st.video.frames > 50, `frames decoded: ${JSON.stringify(st)}`);
      assert.ok(st.audio && st.audio.packets > 100, `inbound audio RTP: ${JSON.stringify(st)}`);
      assert.equal(st.width, 640);
      // WHIP DELETE ends the publisher.
      await pub.evaluate(() => (window as any).m7sStop('pub'));
      await until(() => !S.server.engine.getStream('live/cam')?.publisher, 5000, 'publisher gone after DELETE');
    } finally {
      await pub.close();
    }
  });

  for (const codec of ['VP8', 'VP9', 'AV1'] as const) {
    it(`Chromium publishes ${codec} by WHIP; a second page plays it by WHEP (passthrough, codec in getStats, first picture ≤ 1.5 s after the answer)`, async () => {
      const path = `live/${codec.toLowerCase()}`;
      const { p: pub, logs } = await page('publish');
      try {
        await pub.evaluate((o: any) => (window as any).m7sWhip(o), { base: S.http, stream: path, codec });
        await until(() => S.server.engine.getStream(path)?.tracks.some((t) => t.kind === 'video' && t.frames > 10), 20_000, `WHIP ${codec} frames`)
          .catch((e) => { throw new Error(`${e.message}: ${logs.slice(-5).join(' | ')}`); });
        const v = S.server.engine.getStream(path)!.tracks.find((t) => t.kind === 'video')!;
        assert.equal(v.codec, codec.toLowerCase());
        assert.ok(v.keyframes >= 1, 'keyframes detected');
        const st = await playFor(path, 2, false);
        console.log(`# webrtc ${codec} WHIP → WHEP: first picture ${st.firstFrameMs?.toFixed(0)} ms after the answer, ${st.video?.frames} frames decoded, ${st.width}x${st.height}, codec ${st.video?.codec}`);
        assert.equal(st.video?.codec, `video/${codec}`);
        assert.ok(st.video && st.video.frames > 20, JSON.stringify(st));
        assert.equal(st.width, 640);
        // The cached keyframe goes out as soon as ICE/DTLS is up. Measured on the loaded 2-core dev machine
        // (load 3-5), 11 runs: VP8 53-185 ms, VP9 26-233 ms, AV1 68-125 ms (before: ~120-240, 140-380, 160-480).
        // The bound is a sanity check, not the target: both pages encode and decode in software on the CI
        // machine's two cores while other tests run, and on a slower host the full suite measured VP8 316,
        // VP9 478, AV1 837 ms (the same test alone: 374, 239, 303). A viewer without a keyframe sends PLI,
        // which the server passes to the Chromium publisher, so even without the cache the picture would
        // come within round trips and an encode; how soon is bench/webrtc-first-picture.ts's to measure.
        const limit = 1500;
        assert.ok(st.firstFrameMs !== null && st.firstFrameMs <= limit, `first picture ${st.firstFrameMs} ms after the answer (limit ${limit})`);
        await pub.evaluate(() => (window as any).m7sStop('pub'));
      } finally {
        await pub.close();
      }
    });
  }

  it('ffmpeg publishes RTMP H.264 + AAC; Chromium plays the video by WHEP, first picture ≤ 500 ms after the answer', async () => {
    const src = testSourceArgs({ seconds: 60, gop: 50 });
    procs.push(start(ffmpegPath, [...src, '-f', 'flv', `rtmp://127.0.0.1:${S.port('rtmp', 'tcp')}/live/rtmp`]));
    await until(() => S.server.engine.getStream('live/rtmp')?.tracks.some((t) => t.kind === 'video' && t.frames > 60), 15_000, 'RTMP publisher');
    const st = await playFor('live/rtmp', 5, false);
    assert.ok(st.video && st.video.packets > 100 && st.video.frames > 100, JSON.stringify(st));
    assert.equal(st.width, 320);
    console.log(`# webrtc RTMP H.264 → WHEP: first picture ${st.firstFrameMs?.toFixed(0)} ms after the answer, ${st.video.frames} frames decoded`);
    // The cached keyframe goes out as soon as DTLS is up (bench/webrtc-first-picture.ts has the timeline):
    // 51-104 ms in 9 of 10 runs on the loaded 2-core dev machine (load 3-5), once 484 ms (before: 261-537).
    assert.ok(st.firstFrameMs !== null && st.firstFrameMs <= 500, `first picture ${st.firstFrameMs} ms after the answer`);
  });
});
