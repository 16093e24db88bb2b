// B-frame sources end to end (issue 10): x264 with 3 B-frames (-bf 3, b-pyramid, as OBS and x264 give by
// default), 2 s GOPs, with AAC, published over RTMP and over HTTP POST. A NEW player of each output joins
// mid-GOP (so the catch-up fast-forward of RTMP/HTTP-FLV/WS-FLV runs) and ffprobe reads its packets: the
// first 150 video frames must have strictly rising dts, pts >= dts, and the encoder's own presentation
// order. The encoder's order comes from ffprobe on the very file that is published (the publisher copies
// it, -c copy), aligned to the player's first frame by the frames' sizes (an output may add bytes to a
// frame, e.g. TS start codes and AUDs, but the same amount to every non-key frame). The seven players join
// together at one mid-GOP point. Node pass only (test/helpers/runtime-once.ts): the order is our code's.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import rtmp from '../plugins/rtmp/index.ts';
import flv from '../plugins/flv/index.ts';
import hls from '../plugins/hls/index.ts';
import llhls from '../plugins/hls/llhls.ts';
import mp4 from '../plugins/mp4/index.ts';
import { ffmpegPath, ffprobePath, run, sleep, start, startServer, until, type TestServer } from './helpers/media.ts';
import { nodeOnly } from './helpers/runtime-once.ts';

const FPS = 30, GOP = 60, FRAMES = 150;

interface Pkt { dts: number; pts: number; size: number; key: boolean }

/** Video packets of ffprobe -show_packets (times in s). */
async function videoPackets(url: string, seconds: number): Promise<Pkt[]> {
  const r = await run(ffprobePath, ['-v', 'error', '-print_format', 'json', '-select_streams', 'v:0', '-show_packets',
    '-read_intervals', `%+${seconds}`, url], 90_000);
  assert.equal(r.code, 0, `ffprobe ${url}: ${r.stderr.slice(-1000)}`);
  const j = JSON.parse(r.stdout);
  return (j.packets as any[]).map((p) => ({
    dts: Number(p.dts_time ?? p.pts_time), pts: Number(p.pts_time), size: Number(p.size), key: String(p.flags).startsWith('K'),
  }));
}

/**
 * The encoder's frames the player's first frames are: the keyframe of `enc` where the player's sizes
 * differ from the encoder's by the same amount on every non-key frame (two amounts at most).
 */
function align(out: Pkt[], enc: Pkt[]): number {
  let best = -1, bestScore = Infinity;
  for (let k = 0; k + out.length <= enc.length; k++) {
    if (!enc[k].key) continue;
    const diffs = new Set<number>();
    for (let i = 0; i < out.length && diffs.size <= 3; i++) if (!out[i].key) diffs.add(out[i].size - enc[k + i].size);
    if (diffs.size < bestScore) { bestScore = diffs.size; best = k; }
  }
  assert.ok(best >= 0 && bestScore <= 2, `the player's frames match none of the encoder's (best ${bestScore} size offsets)`);
  return best;
}

/** The checks of issue 10 on the first FRAMES video frames of a player. */
function checkOrder(all: Pkt[], enc: Pkt[], what: string): { inversions: number; catchupMs: number } {
  assert.ok(all.length >= FRAMES, `${what}: only ${all.length} video packets`);
  const out = all.slice(0, FRAMES);
  assert.ok(out[0].key, `${what}: the first frame is not a keyframe`);
  for (let i = 1; i < out.length; i++) assert.ok(out[i].dts > out[i - 1].dts, `${what}: dts not strictly rising at ${i}: ${out[i - 1].dts} -> ${out[i].dts}`);
  for (let i = 0; i < out.length; i++) assert.ok(out[i].pts >= out[i].dts, `${what}: pts ${out[i].pts} < dts ${out[i].dts} at ${i}`);
  const k = align(out, enc);
  const order = (list: Pkt[]) => list.map((p, i) => [p.pts, i] as const).sort((a, b) => a[0] - b[0]).map((x) => x[1]);
  const mine = order(out), theirs = order(enc.slice(k, k + FRAMES));
  let inversions = 0;
  for (let i = 0; i < FRAMES; i++) if (mine[i] !== theirs[i]) inversions++;
  assert.equal(inversions, 0, `${what}: presentation order differs from the encoder's at ${inversions} of ${FRAMES} places`);
  assert.ok(out.every((p) => p.pts >= out[0].pts), `${what}: a frame is presented before the keyframe`);
  // How fast the first frames came: the decode time the frames up to the encoder's edge span.
  return { inversions, catchupMs: Math.round((out[Math.min(GOP, out.length - 1)].dts - out[0].dts) * 1000) };
}

const WebSocketCtor: Promise<any> = (async () => (globalThis as any).WebSocket ?? (await import('ws')).WebSocket)();

/** WS-FLV bytes of `seconds` into a file (then read by ffprobe). */
async function wsFlvFile(url: string, file: string, seconds: number): Promise<void> {
  const WS = await WebSocketCtor;
  const chunks: Uint8Array[] = [];
  const ws = new WS(url);
  ws.binaryType = 'arraybuffer';
  ws.onmessage = (e: any) => { chunks.push(new Uint8Array(e.data)); };
  await sleep(seconds * 1000);
  ws.close();
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) { all.set(c, o); o += c.length; }
  writeFileSync(file, all);
}

describe('B-frame sources (x264 -bf 3, 2 s GOP, AAC): every output keeps decode and presentation order for a new player',
  nodeOnly('the order is plugins/ code checked by ffprobe; every runtime plays these outputs in rtmp, flv, hls and mp4 tests'), () => {
  let S: TestServer;
  let dir: string;
  let src: string;
  let enc: Pkt[];
  const procs: { kill(): Promise<void> }[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'm7s-bf-'));
    src = join(dir, 'src.flv');
    const r = await run(ffmpegPath, [
      '-hide_banner', '-loglevel', 'error', '-y',
      '-f', 'lavfi', '-i', `testsrc2=size=320x240:rate=${FPS}`, '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100',
      '-t', '40', '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-bf', '3', '-g', String(GOP),
      '-keyint_min', String(GOP), '-c:a', 'aac', '-b:a', '64k', '-f', 'flv', src,
    ], 120_000);
    assert.equal(r.code, 0, r.stderr);
    enc = await videoPackets(src, 1000);
    // The source really has reordered B-frames: pts order differs from decode order.
    assert.ok(enc.some((p, i) => i > 0 && p.pts < enc[i - 1].pts), 'the encoder made B-frames');
    S = await startServer([rtmp, flv, hls, llhls, mp4],
      'rtmp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\nhls:\n  fragment: 1s\nllhls:\n  part: 200ms\n');
  });

  after(async () => {
    for (const p of procs) await p.kill();
    await S?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Wait until the newest video frame is at least 0.6 s past the latest keyframe: a player joining now
   * gets a cached GOP to fast-forward. */
  async function midGop(path: string): Promise<void> {
    await until(() => {
      const s = S.server.engine.getStream(path);
      const key = s?.ring.latestSync();
      const v = s?.tracks.find((t) => t.kind === 'video');
      if (!s || key === undefined || !v) return false;
      const kf = s.ring.get(key)!;
      const behind = (v.lastDts - kf.dts) / v.clockRate;
      return behind > 0.6 && behind < 1.4;
    }, 10_000, 'a point mid-GOP');
  }

  for (const how of ['rtmp', 'http-post'] as const) {
    it(`published over ${how}: RTMP, HTTP-FLV, WS-FLV, HLS TS and fMP4, LL-HLS, /mp4/`, async () => {
      const path = `live/bf-${how}`;
      const target = how === 'rtmp' ? `rtmp://127.0.0.1:${S.port('rtmp', 'tcp')}/${path}` : `${S.http}/flv/${path}.flv`;
      const pub = start(ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-re', '-i', src, '-c', 'copy', '-f', 'flv',
        ...(how === 'http-post' ? ['-method', 'POST'] : []), target]);
      procs.push(pub);
      await until(() => S.server.engine.getStream(path)?.tracks.length === 2, 15_000, 'the stream');
      // HLS segmenters start with their first viewer: start them now so their playlists have segments.
      const hlsUrls = [`${S.http}/hls/${path}.m3u8`, `${S.http}/hls/${path}.m3u8?fmp4`, `${S.http}/llhls/${path}/index.m3u8`];
      const texts = await until(async (): Promise<string[] | false> => {
        const t = await Promise.all(hlsUrls.map(async (u) => (await fetch(u)).text()));
        return t.every((x) => x.split('#EXTINF').length - 1 >= 2) && t;
      }, 30_000, 'HLS playlists with 2 segments') as string[];
      // Fresh segmenters of an audio+video stream: no discontinuity, one init segment (issue 10, 2).
      texts.forEach((x, i) => {
        assert.ok(!x.split('\n').includes('#EXT-X-DISCONTINUITY'), `${hlsUrls[i]}: a fresh segmenter lists a discontinuity:\n${x}`);
        if (i > 0) assert.equal(x.split('#EXT-X-MAP').length - 1, 1, `${hlsUrls[i]}: one init segment:\n${x}`);
      });
      const secs = FRAMES / FPS + 2;
      const results: Record<string, { inversions: number; catchupMs: number }> = {};
      // Every output gets a new player at once, all joining at the same point mid-GOP (so the catch-up
      // fast-forward of RTMP/HTTP-FLV/WS-FLV runs); at once rather than one after another to keep the
      // test short (each player only reads packets, no decoding).
      await midGop(path);
      const wsFile = join(dir, `ws-${how}.flv`);
      const catchup = new Set(['RTMP', 'HTTP-FLV', 'WS-FLV']);
      const all = await Promise.all(([
        ['RTMP', `rtmp://127.0.0.1:${S.port('rtmp', 'tcp')}/${path}`, secs],
        ['HTTP-FLV', `${S.http}/flv/${path}.flv`, secs],
        ['WS-FLV', wsFile, secs],
        ['HLS TS', hlsUrls[0], secs + 4], ['HLS fMP4', hlsUrls[1], secs + 4], ['LL-HLS', hlsUrls[2], secs + 4],
        ['/mp4/', `${S.http}/mp4/${path}.mp4`, secs + 4],
      ] as [string, string, number][]).map(async ([name, url, sec]) => {
        if (name === 'WS-FLV') await wsFlvFile(`${S.http.replace('http', 'ws')}/flv/${path}.flv`, wsFile, secs);
        return [name, checkOrder(await videoPackets(url, sec), enc, `${how} → ${name}`)] as const;
      }));
      for (const [name, r] of all) {
        results[name] = r;
        // The fast-forward ran: the cached GOP (>= 0.6 s) took well under its own time.
        if (catchup.has(name)) assert.ok(r.catchupMs < 1900, `${how} → ${name}: the first ${GOP} frames span ${r.catchupMs} ms`);
      }
      console.log(`# ${how}: ${Object.entries(results).map(([n, r]) => `${n} ${r.inversions} inversions, first ${GOP} frames in ${r.catchupMs} ms`).join('; ')}`);
      await pub.kill();
    });
  }
});
