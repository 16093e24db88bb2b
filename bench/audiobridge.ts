// CPU per bridged stream (plugins/audiobridge, docs/BENCHMARKS.md "Audio bridge"). N audio sources are
// published at real time by ffmpeg (sine, 44.1 kHz AAC over RTMP, or 48 kHz Opus over RTSP); for each
// stream the engine's audio bridge is started as a viewer would start it (acquire), and over a window
// the script reads the CPU time of every bridge transcoder (/proc/<pid>/stat utime+stime) and of the
// server process (the feeding, framing and parsing around them), the latter against a window of the
// same sources without bridges.
//
//   node_modules/.bin/esbuild bench/audiobridge.ts --bundle --platform=node --format=esm \
//     --packages=external --outfile=.build/audiobridge.mjs && node .build/audiobridge.mjs [aac2opus|opus2aac] [streams] [seconds] [ffmpeg]

import { readFileSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { currentRuntime } from '../adapters/current.ts';
import rtmp from '../plugins/rtmp/index.ts';
import rtsp from '../plugins/rtsp/index.ts';
import audiobridge from '../plugins/audiobridge/index.ts';
import { Logger } from '../src/log.ts';
import { Server } from '../src/server.ts';

const require = createRequire(import.meta.url);
const [mode = 'aac2opus', n = '4', secs = '20', ff = require('@ffmpeg-installer/ffmpeg').path] = process.argv.slice(2);
const streams = Number(n), seconds = Number(secs);
const srcFfmpeg = require('@ffmpeg-installer/ffmpeg').path;
const TICK = 100; // clock ticks per second (/proc stat)

const cpuOf = (pid: number): number => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / TICK; // utime, stime (fields 14, 15)
};
const selfCpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const server = await Server.start({
  runtime: await currentRuntime(), plugins: [rtmp, rtsp, audiobridge], logger: Logger.silent(), watch: false,
  configText: `global:\n  loglevel: error\n  http:\n    listenaddr: "127.0.0.1:0"\nrtmp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\nrtsp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\n  udpaddr: ""\n  rtcpaddr: ""\naudiobridge:\n  ffmpeg: ${JSON.stringify(ff)}\n  linger: 0s\n`,
});
const port = (p: string) => server.listening.find((l) => l.plugin === p && l.proto === 'tcp')!.port;
const pubs: ChildProcess[] = [];
for (let i = 0; i < streams; i++) {
  const src = ['-hide_banner', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', `sine=frequency=${300 + 50 * i}:sample_rate=${mode === 'aac2opus' ? 44100 : 48000}:duration=${seconds * 3 + 30}`];
  const out = mode === 'aac2opus'
    ? ['-c:a', 'aac', '-b:a', '64k', '-f', 'flv', `rtmp://127.0.0.1:${port('rtmp')}/live/a${i}`]
    : ['-c:a', 'libopus', '-b:a', '48k', '-f', 'rtsp', '-rtsp_transport', 'tcp', `rtsp://127.0.0.1:${port('rtsp')}/live/a${i}`];
  pubs.push(spawn(srcFfmpeg, [...src, ...out], { stdio: 'ignore' }));
}
const from = mode === 'aac2opus' ? 'aac' : 'opus', to = mode === 'aac2opus' ? 'opus' : 'aac';
for (let t0 = Date.now(); ;) {
  const ready = [...Array(streams).keys()].filter((i) => server.engine.getStream(`live/a${i}`)?.tracks.some((t) => t.kind === 'audio' && t.frames > 10));
  if (ready.length === streams) break;
  if (Date.now() - t0 > 30_000) throw new Error(`only ${ready.length} of ${streams} sources came up`);
  await sleep(200);
}
await sleep(2000);

// Window 1: sources only.
let s0 = selfCpu(), w0 = performance.now();
await sleep(seconds * 1000);
const baseServer = (selfCpu() - s0) / ((performance.now() - w0) / 1000);

// Window 2: one bridge per stream.
const bridge = server.engine.audioBridge!;
const tracks = [];
for (let i = 0; i < streams; i++) {
  const st = server.engine.getStream(`live/a${i}`)!;
  const src = st.tracks.find((t) => t.kind === 'audio' && t.codec === from)!;
  tracks.push(bridge.acquire(st, src, [to])!);
}
await sleep(3000); // transcoders up and past their start
const kids = () => server.children.filter((c) => c.plugin === 'audiobridge' && c.what?.includes('→'));
const k0 = new Map(kids().map((c) => [c.pid, cpuOf(c.pid)]));
s0 = selfCpu(); w0 = performance.now();
const out0 = bridge.info().reduce((a, b) => a + b.framesOut, 0);
const in0 = bridge.info().reduce((a, b) => a + b.framesIn, 0);
const src0 = [...Array(streams).keys()].reduce((a, i) => a + server.engine.getStream(`live/a${i}`)!.tracks.find((t) => t.codec === from)!.frames, 0);
await sleep(seconds * 1000);
const wall = (performance.now() - w0) / 1000;
const bridgedServer = (selfCpu() - s0) / wall;
let childCpu = 0;
for (const [pid, c] of k0) childCpu += cpuOf(pid) - c;
const outFrames = bridge.info().reduce((a, b) => a + b.framesOut, 0) - out0;
const inFrames = bridge.info().reduce((a, b) => a + b.framesIn, 0) - in0;
const srcFrames = [...Array(streams).keys()].reduce((a, i) => a + server.engine.getStream(`live/a${i}`)!.tracks.find((t) => t.codec === from)!.frames, 0) - src0;
const pct = (x: number) => (x * 100).toFixed(2);
console.log(JSON.stringify({
  mode, streams, seconds, ffmpeg: ff, transcoders: k0.size,
  sourceFramesPerSecPerStream: +(srcFrames / wall / streams).toFixed(1),
  inFramesPerSecPerStream: +(inFrames / wall / streams).toFixed(1),
  outFramesPerSecPerStream: +(outFrames / wall / streams).toFixed(1),
  ffmpegCpuPctPerStream: pct(childCpu / wall / streams),
  serverCpuPct: { sourcesOnly: pct(baseServer), withBridges: pct(bridgedServer), extraPerStream: pct((bridgedServer - baseServer) / streams) },
  totalPerStreamPct: pct((childCpu / wall + bridgedServer - baseServer) / streams),
}));
console.error(JSON.stringify(bridge.info()));
for (const t of tracks) bridge.release(t);
for (const p of pubs) p.kill('SIGKILL');
await server.stop();
process.exit(0);
