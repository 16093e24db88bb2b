// The audio bridge with headless Chromium (the audio "Done when" lines): ffmpeg publishes RTMP
// H.264 + AAC and Chromium plays it by WHEP with audio (inbound audio RTP and a non-zero audioLevel in
// getStats: Opus made from the AAC); Chromium's fake camera and microphone publish by WHIP (H.264 + Opus)
// and the same stream plays over HTTP-FLV and HLS with AAC (ffprobe: h264 + aac, no dts going back).
// The pages are the webrtc plugin's own test pages, as in webrtc-browser.test.ts.
//
// Node pass only: the browser is the client (the bridge's runtimes are covered by audiobridge.test.ts).
// Without /usr/bin/chromium the suite is skipped, except under CI.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import rtmp from '../plugins/rtmp/index.ts';
import flv from '../plugins/flv/index.ts';
import hls from '../plugins/hls/index.ts';
import webrtc from '../plugins/webrtc/index.ts';
import audiobridge from '../plugins/audiobridge/index.ts';
import { ffmpegPath, ffprobe, sleep, start, startServer, testSourceArgs, until, type TestServer } from './helpers/media.ts';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required',
  '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
  '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns'];
const onNode = (process.env.M7S_TEST_RUNTIME ?? 'node') === 'node' && !(globalThis as any).Bun && !(globalThis as any).Deno;
const skip = !onNode ? 'Node pass only: the browser is the client; the bridge on every runtime is in audiobridge.test.ts'
  : !existsSync(CHROMIUM) && !process.env.CI ? `${CHROMIUM} not installed` : false;

function monotonicBack(packets: any[], index: number): { n: number; back: number } {
  let prev = -Infinity, back = 0, n = 0;
  for (const p of packets) {
    if (p.stream_index !== index || p.dts_time === undefined) continue;
    if (Number(p.dts_time) < prev) back++;
    prev = Number(p.dts_time);
    n++;
  }
  return { n, back };
}

describe('audio bridge in headless Chromium (WHEP with Opus from AAC, WHIP Opus to FLV/HLS as AAC)', { skip }, () => {
  let S: TestServer;
  let browser: any;
  const procs: { kill(): Promise<void> }[] = [];

  before(async () => {
    S = await startServer([rtmp, flv, hls, webrtc, audiobridge], 'rtmp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\n' +
      'webrtc:\n  port: "udp:0"\n  iceaddresses: ["127.0.0.1"]\n  pli: 1s\n' + `audiobridge:\n  ffmpeg: ${JSON.stringify(ffmpegPath)}\n  linger: 300ms\n`);
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    for (const p of procs) await p.kill();
    await S?.stop();
  });

  async function page(kind: 'publish' | 'play') {
    const p = await browser.newPage();
    const logs: string[] = [];
    p.on('console', (m: any) => logs.push(`${m.type()}: ${m.text()}`));
    await p.goto(`${S.http}/webrtc/test/${kind}`);
    return { p, logs };
  }

  it('ffmpeg RTMP H.264 + AAC → Chromium WHEP: inbound Opus audio with a non-zero audioLevel, first picture soon after the answer', async () => {
    procs.push(start(ffmpegPath, [...testSourceArgs({ seconds: 60, gop: 50 }), '-f', 'flv', `rtmp://127.0.0.1:${S.port('rtmp', 'tcp')}/live/aac`]));
    await until(() => S.server.engine.getStream('live/aac')?.tracks.some((t) => t.kind === 'audio' && t.frames > 40), 15_000, 'RTMP publisher');
    const { p, logs } = await page('play');
    try {
      await p.evaluate((o: any) => (window as any).m7sWhep(o), { base: S.http, stream: 'live/aac' });
      // The page's <video> is muted (autoplay); Chromium computes audioLevel only for audio it plays out.
      await p.evaluate(() => { const v = (globalThis as any).document.querySelector('video'); v.muted = false; void v.play().catch(() => {}); });
      let st: any, level = 0;
      const t0 = Date.now();
      for (;;) {
        st = await p.evaluate(() => (window as any).m7sStats());
        level = Math.max(level, st.audio?.audioLevel ?? 0);
        if ((st.audio?.packets ?? 0) > 100 && level > 0 && st.currentTime > 2) break;
        assert.ok(Date.now() - t0 < 25_000, `no audio in 25 s: ${JSON.stringify(st)} level ${level}\n${logs.slice(-8).join('\n')}`);
        await sleep(250);
      }
      assert.ok(st.firstFrameMs !== null && st.firstFrameMs <= 1000, `first picture ${st.firstFrameMs} ms after the answer`);
      console.log(`# WHEP of RTMP AAC: ${st.audio.packets} Opus packets, audioLevel max ${level.toFixed(3)}, first picture ${st.firstFrameMs} ms`);
      const sub = [...S.server.engine.getStream('live/aac')!.subscribers].find((s) => s.protocol === 'webrtc');
      assert.equal(sub?.info().audioBridged, 'opus');
      await p.evaluate(() => (window as any).m7sStop('sub'));
    } finally {
      await p.close();
    }
  });

  it('Chromium WHIP (fake camera + microphone, Opus) → HTTP-FLV and HLS: ffprobe reads h264 + aac, no dts going back', async () => {
    const { p: pub } = await page('publish');
    try {
      await pub.evaluate((o: any) => (window as any).m7sWhip(o), { base: S.http, stream: 'live/cam' });
      await until(() => S.server.engine.getStream('live/cam')?.tracks.some((t) => t.kind === 'audio' && t.codec === 'opus' && t.frames > 50), 15_000, 'WHIP Opus');
      for (const url of [`${S.http}/flv/live/cam.flv`, `${S.http}/hls/live/cam.m3u8`]) {
        const pr = await ffprobe(url, { packets: true, seconds: 3 });
        const v = pr.streams.find((s: any) => s.codec_type === 'video'), a = pr.streams.find((s: any) => s.codec_type === 'audio');
        assert.equal(v?.codec_name, 'h264', url);
        assert.equal(a?.codec_name, 'aac', `${url}: ${JSON.stringify(pr.streams)}`);
        const av = monotonicBack(pr.packets, a.index), vv = monotonicBack(pr.packets, v.index);
        assert.ok(av.n >= 40 && vv.n >= 25, `${url}: ${av.n} audio, ${vv.n} video packets`);
        assert.equal(av.back, 0, `${url}: audio dts going back`);
        assert.equal(vv.back, 0, `${url}: video dts going back`);
      }
      await pub.evaluate(() => (window as any).m7sStop('pub'));
    } finally {
      await pub.close();
    }
  });
});
