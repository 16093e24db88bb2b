// Recording load: N streams of synthetic H.264-shaped video + AAC-shaped audio at a given bitrate,
// published in-process at real time, each recorded by the record plugin (fMP4, no-skip). Reports the
// server process's CPU, the bytes written per second, recorder drops/behind counts and the largest
// write queue seen. The payload is not decodable video: this measures the recording path (ring →
// recorder → fragments → disk), not a codec.
//
//   node_modules/.bin/esbuild bench/record-streams.ts --bundle --platform=node --format=esm \
//     --packages=external --outfile=/tmp/record-streams.mjs && node /tmp/record-streams.mjs [streams] [kbps] [seconds]

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { currentRuntime } from '../adapters/current.ts';
import record from '../plugins/record/index.ts';
import { SyntheticSource } from '../src/core/synthetic.ts';
import { Logger } from '../src/log.ts';
import { Server } from '../src/server.ts';

const [streams = 50, kbps = 2000, seconds = 20] = process.argv.slice(2).map(Number);
const dir = mkdtempSync(join(tmpdir(), 'm7s-benchrec-'));
const server = await Server.start({
  runtime: await currentRuntime(), plugins: [record], logger: Logger.silent(), watch: false,
  configText: `global:\n  loglevel: error\n  http:\n    listenaddr: "127.0.0.1:0"\nrecord:\n  fragment: 60s\n  indexfile: "${dir}/index.jsonl"\n  filepath: "${dir}/{streamPath}/{unix}"\n`,
});
const http = `http://127.0.0.1:${server.http!.port}`;
const fps = 25, gop = 50;
// Bytes per P frame so that a GOP (keyframe = 5 P frames) averages `kbps` with the audio (~200 B × 47/s).
const videoKbps = kbps - (200 * 8 * 47) / 1000;
const pBytes = Math.round(((videoKbps * 1000) / 8) * (gop / fps) / (gop - 1 + 5));
const sources: SyntheticSource[] = [];
for (let i = 0; i < streams; i++) {
  const pub = await server.engine.publish(`bench/s${i}`, { protocol: 'bench', type: 'pull' });
  sources.push(new SyntheticSource(pub, { fps, gop, videoBytes: pBytes, sampleRate: 48000 }));
}
for (const s of sources) s.start();
const started = await Promise.all(sources.map((_, i) => fetch(`${http}/record/api/start/bench/s${i}`, { method: 'POST' }).then((r) => r.json() as Promise<any>)));
const refused = started.filter((r) => r.code !== 0);
if (refused.length) throw new Error(`${refused.length} recorders did not start: ${JSON.stringify(refused[0])}`);
let maxQueued = 0;
const poll = setInterval(async () => {
  const l = ((await (await fetch(`${http}/record/api/list`)).json()) as any).data.recorders as any[];
  for (const r of l) maxQueued = Math.max(maxQueued, r.queued);
}, 1000);
let lagMax = 0, last = performance.now();
const lagT = setInterval(() => { const now = performance.now(); lagMax = Math.max(lagMax, now - last - 50); last = now; }, 50);
const cpu0 = process.cpuUsage();
const t0 = performance.now();
await new Promise((r) => setTimeout(r, seconds * 1000));
for (const s of sources) s.stop();
const wall = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
clearInterval(poll);
clearInterval(lagT);
const recs = ((await (await fetch(`${http}/record/api/list`)).json()) as any).data.recorders as any[];
const bytes = recs.reduce((a, r) => a + r.bytes, 0);
const dropped = recs.reduce((a, r) => a + r.framesDropped, 0);
const behind = recs.reduce((a, r) => a + r.behind, 0);
const frames = sources.reduce((a, s) => a + s.videoFrames + s.audioFrames, 0);
const t1 = performance.now();
await Promise.all(sources.map((_, i) => fetch(`${http}/record/api/stop/bench/s${i}`, { method: 'POST' })));
const stopMs = performance.now() - t1;
console.log(JSON.stringify({
  runtime: server.runtime.name, streams, kbps, seconds: Math.round(wall * 10) / 10, framesPublished: frames,
  cpuPercentOfOneCore: Math.round(((cpu.user + cpu.system) / 1e6 / wall) * 1000) / 10,
  writeMBps: Math.round((bytes / wall / 1e6) * 100) / 100, recorded: recs.length, framesDropped: dropped, behind,
  maxQueuedBytes: maxQueued, eventLoopLagMaxMs: Math.round(lagMax), stopAllMs: Math.round(stopMs),
}));
await server.stop();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
