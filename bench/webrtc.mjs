#!/usr/bin/env node
// WHEP fan-out bench: one real-time ~600 kb/s H.264 stream (bench/load/publish.mjs over RTMP: SEI wall
// clock + filler slices, 30 fps, IDR every 2 s), N WHEP players on node-datachannel
// (bench/load/whep-players.ts, one process), and beside each WHEP row an RTMP row of the same run (the
// same N, bench/load/players.mjs), on one m7s (Node) server.
//
//   node bench/webrtc.mjs [--n 10,100,300] [--seconds 10] [--warmup 4] [--video-kbps 600]
//                         [--server-core 0] [--load-core 1] [--http-port 18095] [--rtmp-port 19365]
//                         [--protos whep,rtmp] [--loglevel warn] [--server-log FILE] [--ramp 10 (WHEP joins per 100 ms)]
//                         [--fastsend on|off (webrtc.fastsend)] [--cpu-prof DIR (the server's V8 CPU profile)]
//                         [--ice-port udp:0 (webrtc.port: udp:0 = every session on one shared port; "" = a port per session)]
//
// Server pinned to --server-core, publisher and players to --load-core (taskset). Over each window:
// server CPU (utime+stime from /proc, % of one core), its highest RSS, viewers per core
// (N / (CPU% / 100)), per-player kb/s, and latency p50/p99 (arrival − SEI clock). Also the machine's
// load average (other work on the machine shows there). Writes bench/results/webrtc/<date>.json and
// prints a Markdown table for docs/BENCHMARKS.md. Not part of npm test.

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: a } = parseArgs({
  options: {
    n: { type: 'string', default: '10,100,300' }, seconds: { type: 'string', default: '10' }, warmup: { type: 'string', default: '4' },
    'video-kbps': { type: 'string', default: '600' }, 'server-core': { type: 'string', default: '0' }, 'load-core': { type: 'string', default: '1' },
    'http-port': { type: 'string', default: '18095' }, 'rtmp-port': { type: 'string', default: '19365' },
    protos: { type: 'string', default: 'whep,rtmp' }, ramp: { type: 'string', default: '10' }, loglevel: { type: 'string', default: 'warn' }, 'server-log': { type: 'string' },
    fastsend: { type: 'string', default: 'on' }, 'cpu-prof': { type: 'string' }, 'ice-port': { type: 'string', default: 'udp:0' },
  },
});
const TICKS = 100;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (s) => process.stdout.write(s + '\n');

function procCpu(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / TICKS;
  } catch { return null; }
}
/** [user, system] CPU seconds of a process (the kernel's UDP send path, loopback delivery included, is system time). */
function procTimes(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return [Number(f[11]) / TICKS, Number(f[12]) / TICKS];
  } catch { return [0, 0]; }
}
function procRssMB(pid) {
  try { const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8')); return m ? Number(m[1]) / 1024 : null; } catch { return null; }
}

async function build() {
  const { build } = await import('esbuild');
  await (await import(join(ROOT, 'scripts/build-ui.mjs'))).buildUi(); // the console's generated assets
  const out = join(ROOT, 'bench/.build');
  await build({ entryPoints: [join(ROOT, 'adapters/node/main.ts')], outfile: join(out, 'm7s.mjs'), bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', logLevel: 'warning', absWorkingDir: ROOT });
  await build({ entryPoints: [join(ROOT, 'bench/load/whep-players.ts')], outfile: join(out, 'whep-players.mjs'), bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', logLevel: 'warning', absWorkingDir: ROOT });
  return { m7s: join(out, 'm7s.mjs'), whep: join(out, 'whep-players.mjs') };
}

function startPinned(core, cmd, argv, onLine, onErr, stopWaitMs = 3000) {
  const child = spawn('taskset', ['-c', core, cmd, ...argv], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const errs = [];
  readline.createInterface({ input: child.stdout }).on('line', (l) => onLine?.(l));
  readline.createInterface({ input: child.stderr }).on('line', (l) => { onErr?.(l); errs.push(l); if (errs.length > 50) errs.shift(); });
  const done = new Promise((r) => child.on('exit', (code) => r(code)));
  return { child, errs, done, stop: async () => { if (child.exitCode === null) { child.kill('SIGTERM'); await Promise.race([done, sleep(stopWaitMs)]); if (child.exitCode === null) child.kill('SIGKILL'); } } };
}

/** Runs a players process; samples the server's CPU/RSS at its window edges. */
async function players(core, cmd, argv, serverPid) {
  let cpu0 = 0, t0 = 0, cpu1 = 0, t1 = 0, rss = 0, result = null, joined = null, times0 = [0, 0], times1 = [0, 0];
  let sampler;
  const p = startPinned(core, cmd, argv, (line) => {
    let e; try { e = JSON.parse(line); } catch { return; }
    if (e.event === 'joined') joined = e;
    if (e.event === 'window-start') { cpu0 = procCpu(serverPid); times0 = procTimes(serverPid); t0 = performance.now(); rss = procRssMB(serverPid) ?? 0; sampler = setInterval(() => { rss = Math.max(rss, procRssMB(serverPid) ?? 0); }, 1000); }
    if (e.event === 'window-end') { cpu1 = procCpu(serverPid); times1 = procTimes(serverPid); t1 = performance.now(); clearInterval(sampler); rss = Math.max(rss, procRssMB(serverPid) ?? 0); }
    if (e.event === 'result') result = e;
    if (e.event === 'fatal') log(`  players fatal: ${e.error}`);
  });
  const code = await Promise.race([p.done, sleep(600_000).then(() => 'timeout')]);
  await p.stop();
  clearInterval(sampler);
  if (!result) throw new Error(`players gave no result (exit ${code}): ${p.errs.slice(-5).join(' | ')}`);
  const cpuPct = ((cpu1 - cpu0) / ((t1 - t0) / 1000)) * 100;
  const secs = (t1 - t0) / 1000;
  return { ...result, joined, server: { cpuPct, userPct: ((times1[0] - times0[0]) / secs) * 100, sysPct: ((times1[1] - times0[1]) / secs) * 100, rssMB: rss }, viewersPerCore: cpuPct > 0 ? result.n / (cpuPct / 100) : null };
}

async function main() {
  const Ns = a.n.split(',').map(Number);
  const bins = await build();
  const dir = mkdtempSync(join(os.tmpdir(), 'm7s-bench-webrtc-'));
  const cfg = join(dir, 'm7s.yaml');
  writeFileSync(cfg, ['global:', `  loglevel: ${a.loglevel}`, '  http:', `    listenaddr: 127.0.0.1:${a['http-port']}`,
    'rtmp:', '  tcp:', `    listenaddr: 127.0.0.1:${a['rtmp-port']}`, 'rtsp:', '  enable: false',
    'webrtc:', `  port: ${JSON.stringify(a['ice-port'])}`, '  iceaddresses: ["127.0.0.1"]', '  connecttimeout: 60s', `  fastsend: ${a.fastsend !== 'off'}`, ''].join('\n'));
  const serverLog = [];
  const prof = a['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', resolve(a['cpu-prof'])] : [];
  // A profiled server gets longer to stop: the profile is written as it exits.
  const server = startPinned(a['server-core'], 'node', [...prof, bins.m7s, '-c', cfg], (l) => serverLog.push(l), (l) => serverLog.push(l), prof.length ? 20000 : 3000);
  const load0 = os.loadavg();
  const rows = [];
  let pub;
  try {
    await sleep(1500);
    const rtmpUrl = `rtmp://127.0.0.1:${a['rtmp-port']}/live/bench`;
    pub = startPinned(a['load-core'], 'node', [join(ROOT, 'bench/load/publish.mjs'), '--url', rtmpUrl, '--video-kbps', a['video-kbps'], '--audio-kbps', '32']);
    await sleep(3000);
    const idle = { cpu: procCpu(server.child.pid), t: performance.now() };
    await sleep(3000);
    const idleCpuPct = ((procCpu(server.child.pid) - idle.cpu) / ((performance.now() - idle.t) / 1000)) * 100;
    log(`# server ${server.child.pid} (webrtc.fastsend ${a.fastsend !== 'off'}, port ${JSON.stringify(a['ice-port'])}): publisher only, CPU ${idleCpuPct.toFixed(1)} %, RSS ${procRssMB(server.child.pid)?.toFixed(0)} MB; load average ${load0.map((x) => x.toFixed(2)).join(' ')}`);
    for (const n of Ns) {
      for (const proto of a.protos.split(',')) {
        const argv = proto === 'whep'
          ? [bins.whep, '--url', `http://127.0.0.1:${a['http-port']}/webrtc/play/live/bench`, '--n', String(n), '--seconds', a.seconds, '--warmup', a.warmup, '--ramp', a.ramp]
          : [join(ROOT, 'bench/load/players.mjs'), '--proto', 'rtmp', '--url', rtmpUrl, '--n', String(n), '--seconds', a.seconds, '--warmup', a.warmup];
        const r = await players(a['load-core'], 'node', argv, server.child.pid);
        r.loadavg = os.loadavg();
        rows.push(r);
        log(`${proto.padEnd(4)} N=${String(n).padStart(3)}: ok ${r.players.ok}/${n}, server CPU ${r.server.cpuPct.toFixed(1)} % (user ${r.server.userPct.toFixed(1)}, sys ${r.server.sysPct.toFixed(1)}), RSS ${r.server.rssMB.toFixed(0)} MB, ` +
          `${r.viewersPerCore?.toFixed(0)} viewers/core, ${r.kbpsMedian?.toFixed(0)} kb/s median, latency p50 ${r.latencyMs?.p50?.toFixed(1)} ms p99 ${r.latencyMs?.p99?.toFixed(1)} ms, ` +
          `load CPU ${r.loadCpu?.pct?.toFixed(0)} %, loadavg ${r.loadavg.map((x) => x.toFixed(2)).join(' ')}`);
        await sleep(proto === 'whep' ? 3000 : 1000);
      }
    }
    const out = { date: new Date().toISOString(), node: process.versions.node, fastsend: a.fastsend !== 'off', icePort: a['ice-port'], cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, videoKbps: Number(a['video-kbps']),
      idleCpuPct, loadavgStart: load0, rows };
    // Its own folder: bench/report.mjs reads bench/results/*.json as bench/run.mjs rows.
    mkdirSync(join(ROOT, 'bench/results/webrtc'), { recursive: true });
    const file = join(ROOT, 'bench/results/webrtc', `${out.date.slice(0, 19).replace(/:/g, '-')}.json`);
    writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
    log(`\nwritten ${file}\n`);
    log('| N | protocol | players ok | server CPU % | viewers per core | server RSS MB | kb/s per player | latency p50 / p99 ms | load avg (1 min) |');
    log('|---|---|---|---|---|---|---|---|---|');
    for (const r of rows) log(`| ${r.n} | ${r.proto === 'whep' ? 'WHEP' : 'RTMP'} | ${r.players.ok} | ${r.server.cpuPct.toFixed(1)} | ${r.viewersPerCore?.toFixed(0)} | ${r.server.rssMB.toFixed(0)} | ${r.kbpsMedian?.toFixed(0)} | ${r.latencyMs?.p50?.toFixed(1)} / ${r.latencyMs?.p99?.toFixed(1)} | ${r.loadavg[0].toFixed(2)} |`);
  } finally {
    await pub?.stop();
    await server.stop();
    if (a['server-log']) writeFileSync(a['server-log'], serverLog.join('\n') + '\n');
    rmSync(dir, { recursive: true, force: true });
  }
}

// exit explicitly: the esbuild service started by build() would keep the process alive.
main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
