// H.265+AAC published over RTSP (TCP and UDP) plays over RTMP and HTTP-FLV as Enhanced FLV (fourCC
// hvc1), read by a player that knows Enhanced FLV: the npm ffprobe (@ffprobe-installer, a 2023 static
// build of FFmpeg master) reads codec, size, rising dts and the frame count. Debian's ffprobe 5.1 cannot
// (it sees "flashsv" 0x0), and GStreamer 1.22's flvdemux has no H.265 either, so this is the only
// reader here. Runtime-independent interop: Node pass only.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import rtsp from '../plugins/rtsp/index.ts';
import rtmp from '../plugins/rtmp/index.ts';
import flv from '../plugins/flv/index.ts';
import { ffprobePath, run, sleep, start, startServer, until, type TestServer } from './helpers/media.ts';

const FFMPEG = '/usr/bin/ffmpeg';

function skipReason(): string | false {
  const runtime = process.env.M7S_TEST_RUNTIME ?? ((globalThis as any).Deno ? 'deno' : (globalThis as any).Bun ? 'bun' : 'node');
  if (runtime !== 'node') return 'runtime-independent interop: Node pass only';
  if (!existsSync(FFMPEG)) return 'Debian ffmpeg (RTSP publisher with libx265) not installed';
  return false;
}

async function probe(url: string, seconds: number): Promise<any> {
  const r = await run(ffprobePath, ['-v', 'error', '-print_format', 'json', '-show_streams', '-show_packets', '-read_intervals', `%+${seconds}`, url], 60_000);
  if (r.code !== 0) throw new Error(`ffprobe ${url}: ${r.stderr.slice(-1500)}`);
  return JSON.parse(r.stdout);
}

function check(p: any, what: string): void {
  const v = p.streams.find((s: any) => s.codec_type === 'video');
  assert.equal(v?.codec_name, 'hevc', `${what}: video codec`);
  assert.equal(v.width, 320, `${what}: width`);
  assert.equal(v.height, 240, `${what}: height`);
  assert.equal(p.streams.find((s: any) => s.codec_type === 'audio')?.codec_name, 'aac', `${what}: audio codec`);
  const dts = p.packets.filter((x: any) => x.stream_index === v.index && x.dts_time !== undefined).map((x: any) => Number(x.dts_time));
  for (let i = 1; i < dts.length; i++) assert.ok(dts[i] >= dts[i - 1], `${what}: dts goes back at packet ${i}: ${dts[i - 1]} -> ${dts[i]}`);
  // Frames against the span, leaving out the first half second (the cached GOP arrives at once).
  const rest = dts.filter((x: number) => x >= dts[0] + 0.5);
  const span = rest[rest.length - 1] - rest[0];
  const expected = span * 25 + 1;
  assert.ok(span > 2, `${what}: ${span.toFixed(2)} s probed`);
  assert.ok(Math.abs(rest.length - expected) / expected <= 0.01, `${what}: ${rest.length} frames over ${span.toFixed(2)} s, expected ${expected.toFixed(1)} (±1 %)`);
}

describe('rtsp: H.265+AAC in, Enhanced FLV out (RTMP, HTTP-FLV)', { skip: skipReason() }, () => {
  let s: TestServer & { rtsp: string };
  before(async () => {
    for (let attempt = 0; ; attempt++) {
      const up = 20000 + 2 * Math.floor(Math.random() * 10000);
      const srv = await startServer([rtsp, rtmp, flv],
        `rtsp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\n  udpaddr: "127.0.0.1:${up}"\n  rtcpaddr: "127.0.0.1:${up + 1}"\n  multicastiprange: ""\n` +
        `rtmp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\n`);
      if (srv.server.listening.filter((l) => l.plugin === 'rtsp' && l.proto === 'udp').length === 2 || attempt >= 5) {
        s = Object.assign(srv, { rtsp: `rtsp://127.0.0.1:${srv.port('rtsp', 'tcp')}` });
        return;
      }
      await srv.stop(); // a UDP port was taken: another pair
    }
  });
  after(async () => { await s?.stop(); });

  it('ffmpeg publishes over tcp and udp; the npm ffprobe reads hevc 320x240 + aac over RTMP and HTTP-FLV, dts rising, frames within 1 %', async () => {
    const pubs = (['tcp', 'udp'] as const).map((tr) => start(FFMPEG, ['-hide_banner', '-loglevel', 'error', '-re',
      '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25:duration=30', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100:duration=30',
      '-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', 'log-level=error:bframes=0', '-pix_fmt', 'yuv420p', '-g', '25', '-c:a', 'aac', '-b:a', '64k',
      '-f', 'rtsp', '-rtsp_transport', tr, `${s.rtsp}/live/hevc${tr}`]));
    try {
      for (const tr of ['tcp', 'udp']) await until(async () => s.server.engine.streams.get(`live/hevc${tr}`)?.tracks.length === 2, 30_000, `H.265 publisher over ${tr}`);
      await sleep(1000);
      const rtmpPort = s.port('rtmp', 'tcp');
      const results = await Promise.all((['tcp', 'udp'] as const).flatMap((tr) => [
        probe(`rtmp://127.0.0.1:${rtmpPort}/live/hevc${tr}`, 5).then((p) => ({ p, what: `RTSP ${tr} in, RTMP out` })),
        probe(`${s.http}/flv/live/hevc${tr}.flv`, 5).then((p) => ({ p, what: `RTSP ${tr} in, HTTP-FLV out` })),
      ]));
      for (const { p, what } of results) check(p, what);
    } finally {
      for (const p of pubs) await p.kill();
    }
  });
});
