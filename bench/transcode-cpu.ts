// Transcode cost: one 720p25 H.264 source (ffmpeg testsrc2, published over HTTP-FLV) and one transcode
// job 720p → 480p (the plugin's default 480p profile: libx264 veryfast 1000k, or the preset given),
// CPU of the job's ffmpeg from /proc/PID/stat over `seconds` after a 5 s warm-up, plus the job's own
// cpuPercent/speed as /transcode/api/list reports them. The source's encoder runs in its own process
// and is not counted. Linux only (/proc).
//
//   node_modules/.bin/esbuild bench/transcode-cpu.ts --bundle --platform=node --format=esm \
//     --packages=external --outfile=/tmp/transcode-cpu.mjs && node /tmp/transcode-cpu.mjs [seconds] [preset]

import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { currentRuntime } from '../adapters/current.ts';
import flv from '../plugins/flv/index.ts';
import transcode from '../plugins/transcode/index.ts';
import { Logger } from '../src/log.ts';
import { Server } from '../src/server.ts';

const seconds = Number(process.argv[2] ?? 30);
const preset = process.argv[3] ?? 'veryfast';
const server = await Server.start({
  runtime: await currentRuntime(), plugins: [flv, transcode], logger: Logger.silent(), watch: false,
  configText: `global:\n  loglevel: error\n  http:\n    listenaddr: "127.0.0.1:0"\ntranscode:\n  profiles:\n    480p: { height: 480, videobitrate: 1000k, preset: ${preset} }\n  onpub:\n    transform:\n      "live/.*": "480p"\n`,
});
const http = `http://127.0.0.1:${server.http!.port}`;
const src = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', `testsrc2=size=1280x720:rate=25:duration=${seconds + 20}`,
  '-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=44100:duration=${seconds + 20}`,
  '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-g', '50', '-bf', '0', '-b:v', '3000k', '-c:a', 'aac', '-b:a', '64k',
  '-f', 'flv', '-method', 'POST', `${http}/flv/live/x.flv`], { stdio: 'ignore' });
const list = async () => ((await (await fetch(`${http}/transcode/api/list`)).json()) as any).data.jobs.filter((j: any) => !j.ended);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let job: any;
for (let i = 0; i < 100 && !(job = (await list()).find((j: any) => j.state === 'running' && j.pid)); i++) await sleep(200);
if (!job) throw new Error('no running job');
await sleep(5000);
const ticks = (pid: number) => { const s = readFileSync(`/proc/${pid}/stat`, 'utf8'); const r = s.slice(s.lastIndexOf(')') + 2).split(' '); return Number(r[11]) + Number(r[12]); };
const load0 = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
const t0 = ticks(job.pid), w0 = performance.now();
const samples: { cpu: number; speed: number }[] = [];
for (let i = 0; i < seconds / 2; i++) { await sleep(2000); const j = (await list())[0]; samples.push({ cpu: j.cpuPercent, speed: j.speed }); }
const cpu = ((ticks(job.pid) - t0) / 100) / ((performance.now() - w0) / 1000) * 100;
const load1 = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
console.log(JSON.stringify({
  preset, seconds, ffmpegCpuPercentOfOneCore: Math.round(cpu * 10) / 10,
  listedCpuPercentAvg: Math.round(avg(samples.map((s) => s.cpu)) * 10) / 10,
  listedSpeedAvg: Math.round(avg(samples.map((s) => s.speed ?? 0)) * 100) / 100,
  loadavg: `${load0} → ${load1}`,
}));
src.kill('SIGKILL');
await server.stop();
process.exit(0);
