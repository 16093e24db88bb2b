#!/usr/bin/env node
// Workers bench: one real-time RTMP publisher, N RTMP players, m7s on Node with `--workers W` for each W.
//
//   node bench/workers.mjs [--workers 1,2] [--n 1000] [--seconds 10] [--warmup 4] [--video-kbps 500]
//
// No core pinning (workers: 2 needs both cores; the players share them): the figures are CPU per
// process over the window (utime+stime from /proc/<pid>/stat, % of one core) for the primary and each
// worker, the viewers each worker serves (its /api/summary over its loopback listener, the internal
// cascade subscriber counted on the worker that holds the publisher), what the players received (kb/s,
// latency from the publisher's SEI clock), and the machine's load (/proc/loadavg, all cores busy %
// from /proc/stat) — on a shared machine compare the rows of one run as ratios, not absolute numbers.
// Prints a Markdown table and writes bench/results/workers/<date>.json.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const ROOT = resolve(new URL('..', import.meta.url).pathname);
const LOAD = join(ROOT, 'bench/load');
const { values: a } = parseArgs({
  options: {
    workers: { type: 'string', default: '1,2' }, n: { type: 'string', default: '1000' }, seconds: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '4' }, 'video-kbps': { type: 'string', default: '500' },
  },
});
const WORKERS = a.workers.split(',').map(Number);
const N = Number(a.n), SECONDS = Number(a.seconds), WARMUP = Number(a.warmup);
const TICK = os.constants?.signals ? 100 : 100; // USER_HZ on Linux

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const freePort = () => new Promise((res) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); }); });
const cpuTicks = (pid) => { try { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return Number(f[11]) + Number(f[12]); } catch { return NaN; } };
const children = (pid) => { try { return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number); } catch { return []; } };
const allCpu = () => { const l = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number); const idle = l[3] + l[4]; return { idle, total: l.reduce((x, y) => x + y, 0) }; };

function lines(child, fn) {
  let buf = '';
  child.stdout.on('data', (d) => { buf += d; let i; while ((i = buf.indexOf('\n')) >= 0) { const l = buf.slice(0, i); buf = buf.slice(i + 1); fn(l); } });
}

async function row(W) {
  const dir = mkdtempSync(join(os.tmpdir(), 'm7s-bw-'));
  const hp = await freePort(), rp = await freePort();
  writeFileSync(join(dir, 'c.yaml'), `global:\n  loglevel: warn\n  http:\n    listenaddr: "127.0.0.1:${hp}"\n  limits:\n    maxwaiting: 5000\nrtmp:\n  tcp:\n    listenaddr: "127.0.0.1:${rp}"\n` +
    'rtsp:\n  enable: false\nwebrtc:\n  enable: false\nhls:\n  enable: false\nllhls:\n  enable: false\nrecord:\n  enable: false\n');
  let out = '';
  const srv = spawn(process.execPath, [join(ROOT, 'dist/m7s.mjs'), '-c', join(dir, 'c.yaml'), '--workers', String(W)], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  srv.stdout.on('data', (d) => { out += d; }); srv.stderr.on('data', (d) => { out += d; });
  const procs = [srv];
  try {
    for (let i = 0; i < 200 && (out.match(/rtmp/g) ?? []).length < W; i++) await sleep(100);
    await sleep(500);
    const internal = W > 1 ? ((/internal ports ([\d, ]+)/.exec(out) ?? [])[1] ?? '').split(', ').map(Number) : [hp];
    const workerPids = W > 1 ? children(srv.pid) : [srv.pid];
    const pub = spawn(process.execPath, [join(LOAD, 'publish.mjs'), '--url', `rtmp://127.0.0.1:${rp}/live/bench`, '--video-kbps', a['video-kbps'], '--audio-kbps', '64', '--max-seconds', String(SECONDS + WARMUP + 120)], { stdio: ['ignore', 'pipe', 'inherit'] });
    procs.push(pub);
    await new Promise((res, rej) => { lines(pub, (l) => { if (l.includes('publishing')) res(); }); setTimeout(() => rej(new Error('publisher did not start')), 15000); });
    const players = spawn(process.execPath, [join(LOAD, 'players.mjs'), '--proto', 'rtmp', '--url', `rtmp://127.0.0.1:${rp}/live/bench`, '--n', String(N),
      '--warmup', String(WARMUP), '--seconds', String(SECONDS), '--join-timeout', '40', '--linger', '2'], { stdio: ['ignore', 'pipe', 'inherit'] });
    procs.push(players);
    const pids = () => [srv.pid, ...workerPids, pub.pid, players.pid];
    let A, B, result, viewers = [];
    await new Promise((res, rej) => {
      const t = setTimeout(() => rej(new Error('players did not finish')), (SECONDS + WARMUP + 120) * 1000);
      lines(players, async (l) => {
        let e; try { e = JSON.parse(l); } catch { return; }
        if (e.event === 'window-start') A = { t: Date.now(), cpu: pids().map(cpuTicks), all: allCpu() };
        if (e.event === 'window-end') {
          B = { t: Date.now(), cpu: pids().map(cpuTicks), all: allCpu(), load: os.loadavg() };
        }
        if (e.event === 'result') {
          result = e;
          viewers = await Promise.all(internal.map(async (p) => {
            try { const j = await (await fetch(`http://127.0.0.1:${p}/api/summary`)).json(); return { port: p, subscribers: j.data.subscribeCount, cpuUsage: j.data.cpuUsage }; } catch (err) { return { port: p, error: String(err) }; }
          }));
          clearTimeout(t); res();
        }
      });
    });
    const secs = (B.t - A.t) / 1000;
    const pct = (i) => Math.round(((B.cpu[i] - A.cpu[i]) / TICK / secs) * 1000) / 10;
    const names = ['primary', ...workerPids.map((_, i) => `worker ${i + 1}`), 'publisher', 'players'];
    const cpu = Object.fromEntries(names.map((n, i) => [n, pct(i)]));
    if (W === 1) { delete cpu.primary; cpu['worker 1'] = pct(0); }
    const busy = Math.round((1 - (B.all.idle - A.all.idle) / (B.all.total - A.all.total)) * 1000) / 10;
    return { workers: W, n: N, windowSeconds: secs, cpu, viewers, machineBusyPct: busy, loadavg: B.load.map((x) => Math.round(x * 100) / 100),
      players: result.players, kbpsMedian: result.kbpsMedian, latencyMs: result.latencyMs, firstFrameMs: result.firstFrameMs };
  } finally {
    for (const p of procs.reverse()) { try { p.kill('SIGTERM'); } catch { /* gone */ } }
    await sleep(1500);
    for (const p of procs) { try { p.kill('SIGKILL'); } catch { /* gone */ } }
    rmSync(dir, { recursive: true, force: true });
  }
}

if (!existsSync(join(ROOT, 'dist/m7s.mjs')) || true) {
  const b = spawnSync(process.execPath, [join(ROOT, 'scripts/build.mjs')], { cwd: ROOT, stdio: 'inherit' });
  if (b.status !== 0) process.exit(1);
}
const rows = [];
for (const W of WORKERS) {
  process.stderr.write(`workers ${W}: ${N} RTMP players...\n`);
  rows.push(await row(W));
  process.stderr.write(JSON.stringify(rows[rows.length - 1]) + '\n');
}
const res = { date: new Date().toISOString(), machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version }, rows };
mkdirSync(join(ROOT, 'bench/results/workers'), { recursive: true });
writeFileSync(join(ROOT, 'bench/results/workers', res.date.replace(/[:.]/g, '-') + '.json'), JSON.stringify(res, null, 2));
console.log('| workers | server CPU per process (% of a core) | viewers per worker | server CPU total | players ok / no video | kb/s per player (median) | latency p50 / p99 ms | machine busy % | loadavg 1/5/15 |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  const srvCpu = Object.entries(r.cpu).filter(([k]) => k === 'primary' || k.startsWith('worker'));
  const total = Math.round(srvCpu.reduce((x, [, v]) => x + v, 0) * 10) / 10;
  console.log(`| ${r.workers} | ${srvCpu.map(([k, v]) => `${k} ${v}`).join(', ')} | ${r.viewers.map((v) => v.subscribers).join(' / ')} | ${total} | ${r.players.ok} / ${r.players.noVideo} | ${Math.round(r.kbpsMedian)} | ${Math.round(r.latencyMs.p50)} / ${Math.round(r.latencyMs.p99)} | ${r.machineBusyPct} | ${r.loadavg.join(' / ')} |`);
}
