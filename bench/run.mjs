#!/usr/bin/env node
// The fan-out bench: 1 real-time RTMP publisher -> N players, for each server x protocol x N.
//
//   node bench/run.mjs [--n 10,100,1000] [--proto rtmp,flv,ws] [--seconds 15] [--warmup 4]
//                      [--servers m7s-node,m7s-bun,m7s-deno,nms,nginx] [--quick] [--no-report]
//
// For every combination it starts the server fresh, pinned to core 0 (taskset -c 0), the publisher
// and the players (bench/load/, our own clients, the same for every server) pinned to core 1, waits
// for the warm-up, and measures over the window:
//   server CPU  utime+stime delta of the server process from /proc/<pid>/stat, % of one core
//   RSS         VmRSS from /proc/<pid>/status, highest of the 1 s samples during the window
//   load CPU    the publisher's and players' processes (from /proc), the players' own
//               process.cpuUsage(), and how busy core 1 was as a whole (/proc/stat): a row where
//               core 1 was > 85 % busy is marked load-limited (the client, not the server, set the pace)
//   players     median kb/s per player, first-frame p50, latency p50/p99 from the SEI clock
// Results go to bench/results/<date>.json, then docs/BENCHMARKS.md and docs/bench-cpu.svg are
// regenerated from every result file (bench/report.mjs).
//
// --quick (CI smoke): m7s-node only, N=10, 5 s, all three protocols; exits 1 if any player got no
// video. It writes its JSON under bench/results/quick/ and leaves the docs alone.
// Everything is bounded: each step has a timeout, and every process started here is stopped by pid.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { writeReport } from './report.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const LOAD = join(ROOT, 'bench', 'load');
const { values: args } = parseArgs({
  options: {
    n: { type: 'string', default: '10,100,1000' }, proto: { type: 'string', default: 'rtmp,flv,ws' },
    servers: { type: 'string', default: 'm7s-node,m7s-bun,m7s-deno,nms,nginx' },
    seconds: { type: 'string', default: '15' }, warmup: { type: 'string', default: '4' },
    quick: { type: 'boolean', default: false }, 'no-report': { type: 'boolean', default: false },
    'server-core': { type: 'string', default: '0' }, 'load-core': { type: 'string', default: '1' },
  },
});
if (args.quick) Object.assign(args, { n: '10', seconds: '5', warmup: '3', servers: 'm7s-node', 'no-report': true });
const NS = args.n.split(',').map(Number).filter((x) => x > 0);
const PROTOS = args.proto.split(',');
const SECONDS = Number(args.seconds), WARMUP = Math.max(3, Number(args.warmup));
const SERVER_CORE = args['server-core'], LOAD_CORE = args['load-core'];
const TICKS = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim()) || 100;
const PORTS = { rtmp: 19355, http: 18085 };
const LOAD_LIMIT = 85;

const log = (s) => process.stdout.write(s + '\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------- /proc sampling

/** utime+stime of a process in seconds, or null when it is gone. */
function procCpu(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
    return { user: Number(f[11]) / TICKS, sys: Number(f[12]) / TICKS };
  } catch { return null; }
}
function procRssMB(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch { return null; }
}
/** [busy, total] jiffies of one CPU from /proc/stat. */
function coreTimes(core) {
  const line = readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith(`cpu${core} `));
  if (!line) return null;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = v[3] + (v[4] || 0);
  const total = v.reduce((x, y) => x + y, 0);
  return { busy: total - idle, total };
}

// ---------------------------------------------------------------------------- machine

function version(cmd, argv) {
  try { const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 10000 }); return (r.stdout + r.stderr).trim().split('\n')[0] || null; } catch { return null; }
}
function which(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}
const BUN = existsSync(join(ROOT, 'node_modules/.bin/bun')) ? realpathSync(join(ROOT, 'node_modules/.bin/bun')) : which('bun');
const DENO = existsSync(join(ROOT, 'node_modules/.bin/deno')) ? realpathSync(join(ROOT, 'node_modules/.bin/deno')) : which('deno');
const NMS_APP = join(ROOT, 'node_modules/node-media-server/bin/app.js');
const NGINX = which('nginx');
const NGINX_RTMP = ['/usr/lib/nginx/modules/ngx_rtmp_module.so', '/usr/share/nginx/modules/ngx_rtmp_module.so'].find(existsSync);

function machine() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  return {
    nproc: os.cpus().length,
    cpu: /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1] ?? 'unknown',
    kernel: os.release(),
    node: process.version,
    bun: BUN ? version(BUN, ['--version']) : null,
    deno: DENO ? version(DENO, ['--version']) : null,
    nms: existsSync(NMS_APP) ? JSON.parse(readFileSync(join(ROOT, 'node_modules/node-media-server/package.json'), 'utf8')).version : null,
    nginx: NGINX ? version(NGINX, ['-v']) : null,
    m7s: JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version,
    m7sCommit: version('git', ['-C', ROOT, 'describe', '--always', '--dirty']),
  };
}

// ---------------------------------------------------------------------------- servers

/** Bundles the Node entry point the way scripts/build.mjs does, into bench/.build (not dist/). */
async function buildM7s() {
  const { build } = await import('esbuild');
  const outfile = join(ROOT, 'bench/.build/m7s.mjs');
  await build({
    entryPoints: [join(ROOT, 'adapters/node/main.ts')], outfile, bundle: true, platform: 'node', format: 'esm',
    target: 'node20', packages: 'external', logLevel: 'warning', absWorkingDir: ROOT,
  });
  return outfile;
}

const m7sConfig = (dir) => {
  const file = join(dir, 'm7s.yaml');
  writeFileSync(file, [
    '# written by bench/run.mjs',
    'global:', '  loglevel: warn', '  http:', `    listenaddr: 127.0.0.1:${PORTS.http}`,
    'rtmp:', '  tcp:', `    listenaddr: 127.0.0.1:${PORTS.rtmp}`, '',
  ].join('\n'));
  return file;
};
const m7sUrls = {
  rtmp: `rtmp://127.0.0.1:${PORTS.rtmp}/live/bench`,
  flv: `http://127.0.0.1:${PORTS.http}/flv/live/bench.flv`,
  ws: `ws://127.0.0.1:${PORTS.http}/flv/live/bench.flv`,
};

/** Each server: label, protocols, why it is unavailable (or null), and how to start it in `dir`. */
const SERVERS = {
  'm7s-node': {
    label: () => `m7s ${info.m7s} (Node ${process.versions.node})`, protos: ['rtmp', 'flv', 'ws'], urls: m7sUrls,
    missing: () => null,
    cmd: (dir) => ['node', [m7sBuild, '-c', m7sConfig(dir)]],
  },
  'm7s-bun': {
    label: () => `m7s ${info.m7s} (Bun ${info.bun})`, protos: ['rtmp', 'flv', 'ws'], urls: m7sUrls,
    missing: () => (BUN ? null : 'bun not found (npm ci installs it as a devDependency)'),
    cmd: (dir) => [BUN, [join(ROOT, 'adapters/bun/main.ts'), '-c', m7sConfig(dir)]],
  },
  'm7s-deno': {
    label: () => `m7s ${info.m7s} (Deno ${info.deno?.split(' ')[1]})`, protos: ['rtmp', 'flv', 'ws'], urls: m7sUrls,
    missing: () => (DENO ? null : 'deno not found (npm ci installs it as a devDependency)'),
    cmd: (dir) => [DENO, ['run', '-A', join(ROOT, 'adapters/deno/main.ts'), '-c', m7sConfig(dir)]],
  },
  nms: {
    label: () => `node-media-server ${info.nms} (Node ${process.versions.node})`, protos: ['rtmp', 'flv', 'ws'],
    urls: {
      rtmp: `rtmp://127.0.0.1:${PORTS.rtmp}/live/bench`,
      flv: `http://127.0.0.1:${PORTS.http}/live/bench.flv`,
      ws: `ws://127.0.0.1:${PORTS.http}/live/bench.flv`,
    },
    missing: () => (existsSync(NMS_APP) ? null : 'node-media-server not installed (npm ci: it is a devDependency)'),
    cmd: (dir) => {
      // A complete v4 config: with secrets set and no users, it never writes itself back.
      const file = join(dir, 'nms.json');
      writeFileSync(file, JSON.stringify({
        bind: '127.0.0.1', notify: { url: '' }, store: { path: join(dir, 'nms-data'), maxHistory: 100 },
        auth: { play: false, publish: false, secret: 'bench', jwt: { secret: 'bench-jwt-secret-0123456789abcdef', expiresIn: '24h', refreshExpiresIn: '7d', algorithm: 'HS256', users: [] } },
        rtmp: { port: PORTS.rtmp }, http: { port: PORTS.http }, webadmin: { enable: false },
        record: { auto: false, path: join(dir, 'nms-record') },
      }));
      return ['node', [NMS_APP, '-c', file]];
    },
  },
  nginx: {
    label: () => `nginx-rtmp (${info.nginx?.replace(/^nginx version: /, '')}, Debian)`, protos: ['rtmp'],
    urls: { rtmp: `rtmp://127.0.0.1:${PORTS.rtmp}/live/bench` },
    missing: () => (!NGINX ? 'nginx not installed (apt-get install nginx libnginx-mod-rtmp)'
      : !NGINX_RTMP ? 'nginx rtmp module not installed (apt-get install libnginx-mod-rtmp)' : null),
    cmd: (dir) => {
      // One process (master_process off) so /proc/<pid> is the whole server.
      mkdirSync(join(dir, 'logs'), { recursive: true });
      const conf = join(dir, 'nginx.conf');
      writeFileSync(conf, [
        `load_module ${NGINX_RTMP};`, 'daemon off;', 'master_process off;', 'worker_processes 1;',
        `pid ${join(dir, 'nginx.pid')};`, `error_log ${join(dir, 'logs/error.log')} warn;`,
        'events { worker_connections 4096; }',
        `rtmp { server { listen 127.0.0.1:${PORTS.rtmp}; chunk_size 4096; application live { live on; } } }`, '',
      ].join('\n'));
      return [NGINX, ['-p', dir, '-c', conf]];
    },
  },
};

// ---------------------------------------------------------------------------- processes

/** Starts `cmd argv` pinned to `core`; stdout lines go to onLine, everything also to logFile. */
function startPinned(core, cmd, argv, logFile, onLine) {
  const child = spawn('taskset', ['-c', core, cmd, ...argv], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  const out = readline.createInterface({ input: child.stdout });
  out.on('line', (l) => { lines.push(l); if (lines.length > 2000) lines.shift(); onLine?.(l); });
  const err = readline.createInterface({ input: child.stderr });
  err.on('line', (l) => { lines.push(l); if (lines.length > 2000) lines.shift(); });
  child.on('exit', () => writeFileSync(logFile, lines.join('\n') + '\n'));
  child.lines = lines;
  return child;
}

/** SIGTERM, then SIGKILL after 3 s; resolves when the process is gone. */
async function stopProc(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  if (await Promise.race([gone.then(() => true), sleep(3000).then(() => false)])) return;
  child.kill('SIGKILL');
  await Promise.race([gone, sleep(2000)]);
}

/** Resolves true once something accepts connections on the port (bounded by timeoutMs). */
async function waitPort(port, timeoutMs, child) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child.exitCode !== null) return false;
    const ok = await new Promise((r) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => { s.destroy(); r(true); });
      s.once('error', () => r(false));
    });
    if (ok) return true;
    await sleep(100);
  }
  return false;
}
/** Resolves true when nothing listens on the port any more (the previous server is gone). */
async function waitPortFree(port, timeoutMs) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const free = await new Promise((r) => {
      const srv = net.createServer();
      srv.once('error', () => r(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => r(true)));
    });
    if (free) return true;
    await sleep(200);
  }
  return false;
}

/** Waits for a JSON line with the given event from a child (bounded). */
function waitEvent(child, event, timeoutMs) {
  return new Promise((resolvePromise) => {
    const seen = child.lines.map(tryJson).find((o) => o?.event === event);
    if (seen) return resolvePromise(seen);
    const timer = setTimeout(() => { cleanup(); resolvePromise(null); }, timeoutMs);
    const onLine = (l) => { const o = tryJson(l); if (o?.event === event || o?.event === 'fatal' || o?.event === 'error') { cleanup(); resolvePromise(o?.event === event ? o : null); } };
    const onExit = () => { cleanup(); resolvePromise(null); };
    const cleanup = () => { clearTimeout(timer); child.lineHooks.delete(onLine); child.off('exit', onExit); };
    child.lineHooks.add(onLine);
    child.once('exit', onExit);
  });
}
function tryJson(l) { try { return JSON.parse(l); } catch { return null; } }
/** startPinned with a listener set that waitEvent can hook. */
function startLoad(cmd, argv, logFile) {
  const listeners = new Set();
  const child = startPinned(LOAD_CORE, cmd, argv, logFile, (l) => { for (const f of [...listeners]) f(l); });
  child.lineHooks = listeners;
  return child;
}

/**
 * Other work on the machine (a test suite, a build) would be billed to nobody here but would steal
 * the cores. Before each row wait (up to maxMs) for a second in which both cores are < 15 % busy.
 */
async function waitQuiet(maxMs) {
  const until = Date.now() + maxMs;
  let busy = 100;
  while (Date.now() < until) {
    const a = [coreTimes(SERVER_CORE), coreTimes(LOAD_CORE)];
    await sleep(1000);
    const b = [coreTimes(SERVER_CORE), coreTimes(LOAD_CORE)];
    busy = Math.max(...a.map((x, i) => ((b[i].busy - x.busy) / (b[i].total - x.total || 1)) * 100));
    if (busy < 15) return busy;
  }
  return busy;
}

// ---------------------------------------------------------------------------- one measurement

async function measure(serverId, proto, n, tmp) {
  const def = SERVERS[serverId];
  const row = { server: serverId, label: def.label(), proto, n, seconds: SECONDS, ok: false };
  const dir = mkdtempSync(join(tmp, `${serverId}-${proto}-${n}-`));
  const logs = (what) => join(dir, `${what}.log`);
  let server, pub, players;
  try {
    if (!(await waitPortFree(PORTS.rtmp, 10000)) || !(await waitPortFree(PORTS.http, 10000))) throw new Error('bench ports still busy');
    row.idleBeforePct = await waitQuiet(20000);
    const [cmd, argv] = def.cmd(dir);
    server = startPinned(SERVER_CORE, cmd, argv, logs('server'));
    const port = proto === 'rtmp' ? PORTS.rtmp : PORTS.http;
    if (!(await waitPort(PORTS.rtmp, 30000, server)) || !(await waitPort(port, 5000, server))) {
      throw new Error(`server did not listen: ${server.lines.slice(-5).join(' | ')}`);
    }
    pub = startLoad('node', [join(LOAD, 'publish.mjs'), '--url', def.urls.rtmp, '--max-seconds', String(SECONDS + WARMUP + 120)], logs('publisher'));
    if (!(await waitEvent(pub, 'publishing', 15000))) throw new Error(`publisher failed: ${pub.lines.slice(-3).join(' | ')}`);
    await sleep(1000); // a keyframe or so in the server's cache before players join
    players = startLoad('node', [join(LOAD, 'players.mjs'), '--proto', proto, '--url', def.urls[proto], '--n', String(n),
      '--warmup', String(WARMUP), '--seconds', String(SECONDS)], logs('players'));
    const joined = await waitEvent(players, 'joined', 60000);
    if (!joined) throw new Error(`players did not join: ${players.lines.slice(-3).join(' | ')}`);
    row.joined = joined;
    if (!(await waitEvent(players, 'window-start', (WARMUP + 10) * 1000))) throw new Error('no window start');
    const a = { t: performance.now(), srv: procCpu(server.pid), pub: procCpu(pub.pid), pl: procCpu(players.pid), core: coreTimes(LOAD_CORE), score: coreTimes(SERVER_CORE) };
    // RSS: highest 1 s sample over the window
    let rss = procRssMB(server.pid) ?? 0;
    const rssTimer = setInterval(() => { rss = Math.max(rss, procRssMB(server.pid) ?? 0); }, 1000);
    const end = await waitEvent(players, 'window-end', (SECONDS + 10) * 1000);
    clearInterval(rssTimer);
    if (!end) throw new Error('no window end');
    const b = { t: performance.now(), srv: procCpu(server.pid), pub: procCpu(pub.pid), pl: procCpu(players.pid), core: coreTimes(LOAD_CORE), score: coreTimes(SERVER_CORE) };
    rss = Math.max(rss, procRssMB(server.pid) ?? 0);
    const result = await waitEvent(players, 'result', 10000);
    if (!result) throw new Error('no player result');
    const secs = (b.t - a.t) / 1000;
    const pct = (x, y) => (x && y ? ((y.user - x.user + y.sys - x.sys) / secs) * 100 : null);
    if (!a.srv || !b.srv) throw new Error('server process vanished during the window');
    Object.assign(row, {
      ok: true,
      serverCpu: { pct: pct(a.srv, b.srv), userPct: ((b.srv.user - a.srv.user) / secs) * 100, sysPct: ((b.srv.sys - a.srv.sys) / secs) * 100 },
      serverCoreBusyPct: ((b.score.busy - a.score.busy) / (b.score.total - a.score.total)) * 100,
      rssMB: rss,
      load: {
        publisherPct: pct(a.pub, b.pub), playersPct: pct(a.pl, b.pl), playersSelfPct: result.loadCpu.pct,
        coreBusyPct: ((b.core.busy - a.core.busy) / (b.core.total - a.core.total)) * 100,
      },
      players: result.players, kbpsMedian: result.kbpsMedian, kbpsMin: result.kbpsMin,
      firstFrameP50: result.firstFrameMs.p50, firstFrameMax: result.firstFrameMs.max,
      latency: result.latencyMs,
    });
    // The mark uses the load generator's own processes; core 1 busy % also counts anything else that
    // ran there (and kernel work), and is reported beside it.
    const loadGen = (row.load.publisherPct ?? 0) + (row.load.playersPct ?? 0);
    row.loadLimited = loadGen > LOAD_LIMIT;
    // Other work on the server's core during the window (core busy well above the server's own CPU).
    row.serverCoreNoisy = row.serverCoreBusyPct - row.serverCpu.pct > 15;
  } catch (e) {
    row.error = String(e?.message ?? e);
  } finally {
    await stopProc(players);
    await stopProc(pub);
    await stopProc(server);
  }
  if (!row.ok) row.logs = dir; else rmSync(dir, { recursive: true, force: true });
  return row;
}

// ---------------------------------------------------------------------------- main

const info = machine();
let m7sBuild = null;
const wanted = args.servers.split(',').filter(Boolean);
const runnable = [];
for (const id of wanted) {
  const def = SERVERS[id];
  if (!def) { log(`skip ${id}: unknown server (known: ${Object.keys(SERVERS).join(', ')})`); continue; }
  const why = def.missing();
  if (why) { log(`skip ${id}: ${why}`); continue; }
  runnable.push(id);
}
if (runnable.some((id) => id.startsWith('m7s-'))) {
  try { m7sBuild = await buildM7s(); } catch (e) {
    log(`skip m7s-*: build failed: ${e.message}`);
    for (let i = runnable.length - 1; i >= 0; i--) if (runnable[i].startsWith('m7s-')) runnable.splice(i, 1);
  }
}
if (!which('taskset')) { log('taskset not found (util-linux): cannot pin; aborting'); process.exit(2); }
if (info.nproc < 2) log('warning: fewer than 2 CPUs; server and load share a core');

log(`bench: servers ${runnable.join(', ') || '(none)'}; protocols ${PROTOS.join(', ')}; N ${NS.join(', ')}; window ${SECONDS}s after ${WARMUP}s warm-up`);
log(`machine: ${info.nproc} x ${info.cpu}, node ${info.node}, bun ${info.bun ?? '-'}, ${info.deno ?? 'deno -'}`);
const tmp = mkdtempSync(join(os.tmpdir(), 'm7s-bench-'));
const started = new Date();
const rows = [];
const fmt = (x, d = 1) => (x === null || x === undefined || Number.isNaN(x) ? '-' : x.toFixed(d));
for (const id of runnable) {
  for (const proto of PROTOS) {
    if (!SERVERS[id].protos.includes(proto)) { log(`skip ${id} ${proto}: not supported by this server`); continue; }
    for (const n of NS) {
      const row = await measure(id, proto, n, tmp);
      rows.push(row);
      if (!row.ok) { log(`${id.padEnd(9)} ${proto.padEnd(4)} N=${String(n).padEnd(5)} FAILED: ${row.error} (logs: ${row.logs})`); continue; }
      log(`${id.padEnd(9)} ${proto.padEnd(4)} N=${String(n).padEnd(5)} cpu ${fmt(row.serverCpu.pct)}% (user ${fmt(row.serverCpu.userPct)}) rss ${fmt(row.rssMB, 0)}MB` +
        ` | load ${fmt((row.load.publisherPct ?? 0) + (row.load.playersPct ?? 0), 0)}% (core ${fmt(row.load.coreBusyPct, 0)}%)${row.loadLimited ? ' LOAD-LIMITED' : ''}${row.serverCoreNoisy ? ` NOISY core ${SERVER_CORE} ${fmt(row.serverCoreBusyPct, 0)}%` : ''}` +
        ` | ${fmt(row.kbpsMedian, 0)} kb/s, first ${fmt(row.firstFrameP50, 0)} ms, lat p50 ${fmt(row.latency.p50)} p99 ${fmt(row.latency.p99)} ms` +
        ` | players ok ${row.players.ok}/${n}${row.players.noVideo ? `, ${row.players.noVideo} got no video` : ''}`);
    }
  }
}

const out = { date: started.toISOString(), command: `node bench/run.mjs ${process.argv.slice(2).join(' ')}`.trim(), machine: info,
  method: { serverCore: SERVER_CORE, loadCore: LOAD_CORE, seconds: SECONDS, warmup: WARMUP, loadLimitPct: LOAD_LIMIT }, rows };
const resultsDir = join(ROOT, 'bench/results', args.quick ? 'quick' : '');
mkdirSync(resultsDir, { recursive: true });
const file = join(resultsDir, `${started.toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
log(`results: ${file}`);
if (rows.every((r) => r.ok)) rmSync(tmp, { recursive: true, force: true, maxRetries: 2 });
else log(`logs of failed runs kept under ${tmp}`);
if (!args['no-report']) {
  const written = writeReport(ROOT);
  log(`report: ${written.join(', ')}`);
}
if (args.quick) {
  const bad = rows.filter((r) => !r.ok || r.players.noVideo > 0 || !(r.kbpsMedian > 0));
  if (bad.length || rows.length === 0) { log(`quick: FAIL (${bad.map((r) => `${r.server} ${r.proto}: ${r.error ?? 'players received nothing'}`).join('; ') || 'nothing ran'})`); process.exit(1); }
  log('quick: OK');
}
