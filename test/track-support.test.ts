// Tracks a format cannot carry, and what the server says about them (issue 10, item 7):
// - every track has its RFC 6381 codecs string in /api/stream/info, MP3 ("mp4a.6B") and G.711 ("alaw",
//   "ulaw") included;
// - G.711 audio left out of HLS (TS and fMP4) and live fMP4 is said once per stream and format at warn
//   level, not dropped in silence;
// - an HTTP-FLV publish refused with 409 (the stream is already published) is logged like RTMP's.
// ffmpeg publishes over HTTP POST; the server runs in this process on each runtime.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import flv from '../plugins/flv/index.ts';
import hls from '../plugins/hls/index.ts';
import mp4 from '../plugins/mp4/index.ts';
import { currentRuntime } from '../adapters/current.ts';
import { codecStringOf } from '../src/codec/codec-string.ts';
import { Logger } from '../src/log.ts';
import { Server } from '../src/server.ts';
import { ffmpegPath, sleep, start, testSourceArgs, until } from './helpers/media.ts';
import { nodeOnly } from './helpers/runtime-once.ts';

/** The test source with another audio encoder (`-c:a aac -b:a 64k` replaced). */
function sourceWith(audio: string[], seconds = 40): string[] {
  const a = testSourceArgs({ seconds, rate: audio.includes('8000') ? 8000 : 44100 });
  const i = a.indexOf('-c:a');
  return [...a.slice(0, i), ...audio];
}

describe('tracks a format cannot carry', nodeOnly('codec strings and what is logged are plugins/ code; ffmpeg is the source'), () => {
  let server: Server;
  let base = '';
  const lines: string[] = [];
  const pubs: { kill(): Promise<void>; stderr(): string }[] = [];
  const warnings = (re: RegExp) => lines.filter((l) => re.test(l));

  before(async () => {
    const logger = Logger.create({ pretty: false, write: (l) => { lines.push(l); } }, 'warn');
    server = await Server.start({
      runtime: await currentRuntime(), plugins: [flv, hls, mp4], logger, watch: false,
      configText: 'global:\n  loglevel: warn\n  http:\n    listenaddr: "127.0.0.1:0"\nhls:\n  fragment: 1s\n',
    });
    base = `http://127.0.0.1:${server.http!.port}`;
    const streams: [string, string[]][] = [
      ['alaw', ['-c:a', 'pcm_alaw', '-ar', '8000', '-ac', '1']],
      ['ulaw', ['-c:a', 'pcm_mulaw', '-ar', '8000', '-ac', '1']],
      ['mp3', ['-c:a', 'libmp3lame', '-b:a', '64k']],
    ];
    for (const [name, audio] of streams) {
      pubs.push(start(ffmpegPath, [...sourceWith(audio), '-f', 'flv', '-method', 'POST', `${base}/flv/live/${name}.flv`]));
    }
    for (const [name] of streams) {
      await until(() => server.engine.getStream(`live/${name}`)?.tracks.some((t) => t.kind === 'audio'), 15_000, `live/${name} with audio`)
        .catch((e) => { throw new Error(`${e.message}; ffmpeg: ${pubs.map((p) => p.stderr()).join(' | ')}`); });
    }
  });

  after(async () => {
    for (const p of pubs) await p.kill();
    await server?.stop();
  });

  it('codecs strings of MP3 and G.711 tracks in /api/stream/info', async () => {
    const want: Record<string, [string, string]> = { alaw: ['pcma', 'alaw'], ulaw: ['pcmu', 'ulaw'], mp3: ['mp3', 'mp4a.6B'] };
    for (const [name, [codec, str]] of Object.entries(want)) {
      const info = await (await fetch(`${base}/api/stream/info/live/${name}`)).json();
      const audio = info.data.tracks.find((t: any) => t.kind === 'audio');
      const video = info.data.tracks.find((t: any) => t.kind === 'video');
      assert.equal(audio.codec, codec, JSON.stringify(info.data.tracks));
      assert.equal(audio.codecString, str, JSON.stringify(info.data.tracks));
      assert.match(video.codecString, /^avc1\.[0-9a-f]{6}$/);
    }
    // The same helper for the codecs that carry setup bytes; unreadable bytes give no string.
    assert.equal(codecStringOf('aac', Uint8Array.of(0x12, 0x10)), 'mp4a.40.2');
    assert.equal(codecStringOf('aac', Uint8Array.of()), undefined);
    assert.equal(codecStringOf('opus'), 'opus');
    assert.equal(codecStringOf('vp9'), undefined);
  });

  it('G.711 left out of HLS TS, HLS fMP4 and live fMP4 is logged once per stream and format', async () => {
    for (let round = 0; round < 2; round++) {
      for (const q of ['', '?fmp4']) {
        const r = await fetch(`${base}/hls/live/alaw.m3u8${q}`);
        const text = await r.text();
        assert.equal(r.status, 200, text);
        // The segments still play: video only.
        const seg = text.split('\n').find((l) => /^\d+\.(ts|m4s)$/.test(l.split('/').pop() ?? ''));
        assert.ok(seg, text);
      }
      const ac = new AbortController();
      const r = await fetch(`${base}/mp4/live/alaw.mp4`, { signal: ac.signal });
      assert.equal(r.status, 200);
      await r.body!.getReader().read();
      ac.abort();
      await sleep(1500); // the HLS manager's 1 s sweep looks again
    }
    assert.equal(warnings(/HLS MPEG-TS segments of live\/alaw leave out its pcma audio track/).length, 1, lines.join('\n'));
    assert.equal(warnings(/HLS fMP4 segments of live\/alaw leave out its pcma audio track/).length, 1, lines.join('\n'));
    assert.equal(warnings(/live fMP4 of live\/alaw leaves out its pcma audio track/).length, 1, lines.join('\n'));
    for (const l of warnings(/leave/)) assert.equal(JSON.parse(l).level, 'warn');
    // MP3 is carried: nothing said about it.
    assert.equal((await fetch(`${base}/hls/live/mp3.m3u8`)).status, 200);
    await sleep(1200);
    assert.equal(warnings(/live\/mp3/).length, 0, lines.join('\n'));
  });

  it('an HTTP publish refused with 409 is logged', async () => {
    const r = await fetch(`${base}/flv/live/ulaw.flv`, { method: 'POST', body: new Uint8Array(16) });
    assert.equal(r.status, 409, await r.text());
    await until(() => warnings(/publish refused/).length > 0, 2000, 'a log line').catch(() => {});
    const w = warnings(/publish refused/).map((l) => JSON.parse(l));
    assert.equal(w.length, 1, lines.join('\n'));
    assert.equal(w[0].stream, 'live/ulaw');
    assert.equal(w[0].status, 409);
    assert.match(w[0].reason, /already being published/);
  });
});
