#!/usr/bin/env node
// The fan-out bench: 1 real-time RTMP publisher -> N players, for each server x protocol x N.
//
//   node bench/run.mjs [--n 10,100,1000] [--proto rtmp,flv,ws,rtsp] [--seconds 15] [--warmup 4]
//                      [--servers m7s-node,m7s-bun,m7s-deno,nms,nginx] [--quick] [--no-report]
//                      [--edge-ms 100] [--slow [--slow-kbps 220] [--slow-lead 20]]
//                      [--rtmp-port 19355] [--http-port 18085] [--rtsp-port 18555] [--netns reno] [--by-n]
//
// rtsp rows: the same RTMP publisher, N RTSP players over TCP interleaved (bench/load/rtsp.mjs); m7s only.
//
// For every combination it starts the server fresh, pinned to core 0 (taskset -c 0), the publisher
// and the players (bench/load/, our own clients, the same for every server) pinned to core 1, waits
// for the warm-up, and measures over the window:
//   server CPU  utime+stime delta of the server process from /proc/<pid>/stat, % of one core
//   RSS         VmRSS from /proc/<pid>/status, highest of the 1 s samples during the window
//   load CPU    the publisher's and players' processes (from /proc), the players' own
//               process.cpuUsage(), and how busy core 1 was as a whole (/proc/stat): a row where
//               core 1 was > 85 % busy is marked load-limited (the client, not the server, set the pace)
//   players     median kb/s per player, first-frame p50, latency p50/p99 from the SEI clock, and
//               time to live edge (connect start -> first frame with latency < --edge-ms) p50/max
//   join phase  the server's CPU and the load core's busy % in eight 200 ms slices from the players'
//               start (row.joinPhase, printed with the row): what the join storm cost the server
//   merge       m7s only: the stream's adaptive write merging (autoMerge, ms) and the share of the last
//               second its fan-out took (fanoutBusy), from GET /api/stream/info at the window's start and
//               end (row.merge): merged writes add tens of ms of latency and save CPU
// Results go to bench/results/<date>.json, then docs/BENCHMARKS.md and docs/bench-cpu.svg are
// regenerated from every result file (bench/report.mjs).
//
// --slow runs every row twice: as usual, then with one extra player of the same protocol that reads at
// --slow-kbps (default 220, ~10 % of the stream) and connects --slow-lead seconds (default 20) before
// the N players (0: right after they joined), so that in the window the server has long been holding
// back data for it. The slow player is bench/load/slow_player.py (python3, standard library), its own
// process on the load core (its CPU counts into the players' CPU): it sets a WAN-like MSS (1400) and
// a 64 KiB receive buffer before connecting, so the kernel buffers between it and the server stay
// small and the server sees the backpressure, as with a real slow viewer (on loopback with default
// buffers several MB sit in the kernel instead; Node cannot set those socket options). Its window is
// players.mjs's: the runner forwards window-start/window-end to it over stdin. The second row is marked `slow: true` and records
// what the slow player got (`slowPlayer`: kb/s, keyframes received in the window, its own latency; not
// mixed into the N players' figures) and how the others' latency moved against the first row
// (`slowImpact`: p50/p99 deltas). For m7s the runner also polls GET /api/subscribers/live/bench every
// second in the window (in both rows, so their CPU stays comparable) for the slow subscriber's
// server-side `buffered` bytes (highest sample), framesDropped and skips (`slowPlayer.server`), and
// the other subscribers' highest `buffered` and total drops (`subscribers`).
//
// --netns CC runs the whole bench (servers and load) in a private network namespace (unshare -n, needs
// root) whose TCP congestion control is CC. Why: the slow player's small MSS and receive window keep
// the server's kernel send buffer small only if the server's congestion window stays small while the
// receiver's window limits it, as with cubic/reno. With BBR on loopback (µs RTT, multi-Gb/s rate
// samples, so a TSO-sized cwnd budget of ~150-300 packets) Linux grows the server's send buffer to
// 3 x cwnd x ~2.3 KB, 1-2.6 MB, whatever the client does. With --netns reno it stays at 0.3-0.5 MB
// (reno's cwnd stops at twice the ~47 segments a 64 KiB window lets out, as it would on a WAN). A
// namespace other than the initial one may only pick a CC listed in
// /proc/sys/net/ipv4/tcp_allowed_congestion_control (often reno and the default only). It also
// frees the bench from port clashes with anything else on the machine. It changes the CC of every
// connection in the run (fast players too), so compare rows measured with the same setting (method.netns).
//
// --quick (CI smoke): m7s-node only, N=10, 5 s, every protocol (rtmp, flv, ws, rtsp); exits 1 if any player got no
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
    n: { type: 'string', default: '10,100,1000' }, proto: { type: 'string', default: 'rtmp,flv,ws,rtsp' },
    servers: { type: 'string', default: 'm7s-node,m7s-bun,m7s-deno,nms,nginx' },
    seconds: { type: 'string', default: '15' }, warmup: { type: 'string', default: '4' },
    quick: { type: 'boolean', default: false }, 'no-report': { type: 'boolean', default: false },
    'server-core': { type: 'string', default: '0' }, 'load-core': { type: 'string', default: '1' },
    'edge-ms': { type: 'string', default: '100' },
    slow: { type: 'boolean', default: false }, 'slow-kbps': { type: 'string', default: '220' },
    'slow-lead': { type: 'string', default: '20' },
    'rtmp-port': { type: 'string', default: '19355' }, 'http-port': { type: 'string', default: '18085' }, 'rtsp-port': { type: 'string', default: '18555' },
    netns: { type: 'string' }, 'by-n': { type: 'boolean', default: false },
  },
});
if (args.netns !== undefined && process.env.M7S_BENCH_NETNS !== args.netns) {
  // Re-run this script inside a new network namespace (see --netns above); its exit status is ours.
  if (!/^[a-z0-9_]+$/.test(args.netns)) { console.error(`--netns: want a congestion control name, e.g. reno (got ${args.netns})`); process.exit(2); }
  const r = spawnSync('unshare', ['-n', 'sh', '-c',
    'ip link set lo up && sysctl -qw net.ipv4.tcp_congestion_control="$0" && exec "$@"',
    args.netns, process.execPath, fileURLToPath(import.meta.url), ...process.argv.slice(2)],
  { stdio: 'inherit', env: { ...process.env, M7S_BENCH_NETNS: args.netns } });
  if (r.status !== 0) console.error(`--netns ${args.netns}: ${r.error?.message ?? (r.signal ? `killed by ${r.signal}` : `exit ${r.status}`)} (needs root, unshare and ip; the CC must be in /proc/sys/net/ipv4/tcp_allowed_congestion_control)`);
  process.exit(r.status ?? 1);
}
if (args.quick) Object.assign(args, { n: '10', seconds: '5', warmup: '3', servers: 'm7s-node', 'no-report': true });
const NS = args.n.split(',').filter((x) => x.trim()).map(Number);
if (!NS.length || NS.some((x) => !Number.isInteger(x) || x < 1)) { console.error(`--n: want positive integers, e.g. 10,100,500,1000 (got ${args.n})`); process.exit(2); }
const EDGE_MS = Number(args['edge-ms']), SLOW_KBPS = Number(args['slow-kbps']), SLOW_LEAD = Math.max(0, Number(args['slow-lead']));
const PROTOS = args.proto.split(',');
const SECONDS = Number(args.seconds), WARMUP = Math.max(3, Number(args.warmup));
const SERVER_CORE = args['server-core'], LOAD_CORE = args['load-core'];
const TICKS = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim()) || 100;
const PORTS = { rtmp: Number(args['rtmp-port']), http: Number(args['http-port']), rtsp: Number(args['rtsp-port']) };
if (![PORTS.rtmp, PORTS.http].every((p) => Number.isInteger(p) && p > 0 && p < 65536) || PORTS.rtmp === PORTS.http) {
  console.error(`--rtmp-port / --http-port: want two different ports (got ${args['rtmp-port']}, ${args['http-port']})`); process.exit(2);
}
const LOAD_LIMIT = 85;
const PYTHON = args.slow ? which('python3') : null;
if (args.slow && !PYTHON) { console.error('--slow needs python3 (bench/load/slow_player.py sets TCP_MAXSEG / SO_RCVBUF, which Node cannot): not found on PATH; aborting'); process.exit(2); }

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
  // The console's assets (a generated, uncommitted module) first, as scripts/build.mjs does.
  await (await import(join(ROOT, 'scripts/build-ui.mjs'))).buildUi();
  const outfile = join(ROOT, 'bench/.build/m7s.mjs');
  await build({
    entryPoints: [join(ROOT, 'adapters/node/main.ts')], outfile, bundle: true, platform: 'node', format: 'esm',
    target: 'node20', packages: 'external', logLevel: 'warning', absWorkingDir: ROOT,
  });
  return outfile;
}

/** `subscribe` settings of an m7s variant ("mergewrite=100ms,catchup=0"), as YAML lines. */
const subscribeLines = (spec) => spec
  ? ['  subscribe:', ...spec.split(',').map((kv) => { const [k, v] = kv.split('='); return `    ${k}: ${v}`; })]
  : [];
const m7sConfig = (dir, spec = '', httpLines = []) => {
  const file = join(dir, 'm7s.yaml');
  writeFileSync(file, [
    '# written by bench/run.mjs',
    'global:', '  loglevel: warn', '  http:', `    listenaddr: 127.0.0.1:${PORTS.http}`, ...httpLines, ...subscribeLines(spec),
    'rtmp:', '  tcp:', `    listenaddr: 127.0.0.1:${PORTS.rtmp}`,
    'rtsp:', '  tcp:', `    listenaddr: 127.0.0.1:${PORTS.rtsp}`, '  udpaddr: ""', '  rtcpaddr: ""',
    // GB28181 listens on a fixed port (5060): off, so a bench can run beside another m7s (a test, bench/webrtc.mjs).
    'gb28181:', '  enable: false', '',
  ].join('\n'));
  return file;
};
const m7sUrls = {
  rtmp: `rtmp://127.0.0.1:${PORTS.rtmp}/live/bench`,
  flv: `http://127.0.0.1:${PORTS.http}/flv/live/bench.flv`,
  ws: `ws://127.0.0.1:${PORTS.http}/flv/live/bench.flv`,
  rtsp: `rtsp://127.0.0.1:${PORTS.rtsp}/live/bench`,
};

/** Each server: label, protocols, why it is unavailable (or null), and how to start it in `dir`. */
const SERVERS = {
  'm7s-node': {
    label: () => `m7s ${info.m7s} (Node ${process.versions.node})`, protos: ['rtmp', 'flv', 'ws', 'rtsp'], urls: m7sUrls,
    missing: () => null,
    // M7S_BENCH_NODE_ARGS: extra node flags for the server, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
    cmd: (dir) => ['node', [...(process.env.M7S_BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []), m7sBuild, '-c', m7sConfig(dir)]],
  },
  'm7s-bun': {
    label: () => `m7s ${info.m7s} (Bun ${info.bun})`, protos: ['rtmp', 'flv', 'ws', 'rtsp'], urls: m7sUrls,
    missing: () => (BUN ? null : 'bun not found (npm ci installs it as a devDependency)'),
    // M7S_BENCH_BUN_ARGS: extra bun flags for the server, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
    cmd: (dir) => [BUN, [...(process.env.M7S_BENCH_BUN_ARGS?.split(' ').filter(Boolean) ?? []), join(ROOT, 'adapters/bun/main.ts'), '-c', m7sConfig(dir)]],
  },
  'm7s-deno': {
    label: () => `m7s ${info.m7s} (Deno ${info.deno?.split(' ')[1]})`, protos: ['rtmp', 'flv', 'ws', 'rtsp'], urls: m7sUrls,
    missing: () => (DENO ? null : 'deno not found (npm ci installs it as a devDependency)'),
    cmd: (dir) => [DENO, ['run', '-A', '--v8-flags=--max-semi-space-size=2', join(ROOT, 'adapters/deno/main.ts'), '-c', m7sConfig(dir)]],
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
function startPinned(core, cmd, argv, logFile, onLine, { stdin = false } = {}) {
  const child = spawn('taskset', ['-c', core, cmd, ...argv], { cwd: ROOT, stdio: [stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  child.stdin?.on('error', () => {}); // EPIPE once the child is gone
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
function startLoad(cmd, argv, logFile, opts) {
  const listeners = new Set();
  const child = startPinned(LOAD_CORE, cmd, argv, logFile, (l) => { for (const f of [...listeners]) f(l); }, opts);
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

// ---------------------------------------------------------------------------- m7s subscriber API

/** m7s only: GET /api/<path> on the bench's HTTP port -> the answer's `data` (docs/api.md), or null. */
async function m7sApi(path) {
  try {
    const r = await fetch(`http://127.0.0.1:${PORTS.http}/api/${path}`, { signal: AbortSignal.timeout(2000) });
    const body = await r.json();
    return body?.data ?? null;
  } catch { return null; }
}

/** m7s only: GET /api/subscribers/live/bench -> [SubscriberInfo], or null. */
async function m7sSubscribers() {
  const list = await m7sApi('subscribers/live/bench');
  return Array.isArray(list) ? list : null;
}

/**
 * m7s only: the stream's `autoMerge` and `fanoutBusy` from GET /api/stream/info/live/bench (docs/api.md:
 * ms of merged writes the stream added by itself under load, and the share of the last second its
 * fan-out took), or null. Merged writes add tens of ms of latency and save CPU.
 */
async function m7sMerge() {
  const info = await m7sApi('stream/info/live/bench');
  return typeof info?.autoMerge === 'number' ? { autoMerge: info.autoMerge, fanoutBusy: info.fanoutBusy ?? null } : null;
}

/**
 * Samples the subscriber list every second while the window runs. The slow player is the subscriber
 * whose `remote` port is the slow player's local port (slow_player.py reports it); when that does not
 * match (a proxy, an address format we do not know) it is the one with the fewest bytes sent: it joined
 * together with the others and reads at a tenth of their rate.
 */
function subscriberSampler(slowPort) {
  const samples = [];
  let slowMax = 0, othersMax = 0, last = null;
  const pick = (list) => {
    if (slowPort === undefined) return [null, 'none'];
    const byPort = list.find((x) => typeof x.remote === 'string' && x.remote.endsWith(`:${slowPort}`));
    if (byPort) return [byPort, 'port'];
    return [list.reduce((m, x) => (m === null || x.bytesSent < m.bytesSent ? x : m), null), 'lowest bytesSent'];
  };
  const take = async () => {
    const list = await m7sSubscribers();
    if (!list) return;
    const [slow] = pick(list);
    if (slow) slowMax = Math.max(slowMax, slow.buffered ?? 0);
    for (const x of list) if (x !== slow) othersMax = Math.max(othersMax, x.buffered ?? 0);
    samples.push(list.length);
    last = list;
  };
  const pending = [take()];
  const timer = setInterval(() => { pending.push(take()); }, 1000);
  return {
    /** Stops sampling, takes a last sample and summarizes. */
    async stop() {
      clearInterval(timer);
      await Promise.all(pending);
      await take();
      if (!last) return { subscribers: null, slow: null };
      const [slow, matchedBy] = pick(last);
      const others = last.filter((x) => x !== slow);
      return {
        subscribers: { samples: samples.length, count: others.length, maxBuffered: othersMax,
          framesDropped: others.reduce((t, x) => t + (x.framesDropped ?? 0), 0), skips: others.reduce((t, x) => t + (x.skips ?? 0), 0) },
        slow: slow && { matchedBy, maxBuffered: slowMax, buffered: slow.buffered, framesDropped: slow.framesDropped, skips: slow.skips,
          framesSent: slow.framesSent, bytesSent: slow.bytesSent, lagMs: slow.lagMs, state: slow.state },
      };
    },
  };
}

// ---------------------------------------------------------------------------- one measurement

/** One row. `slow`: add the throttled player; `sampleApi`: poll m7s's subscriber list in the window. */
async function measure(serverId, proto, n, tmp, { slow = false, sampleApi = false } = {}) {
  const def = SERVERS[serverId];
  const row = { server: serverId, label: def.label(), proto, n, seconds: SECONDS, ok: false, ...(slow ? { slow: true } : {}) };
  const dir = mkdtempSync(join(tmp, `${serverId}-${proto}-${n}${slow ? '-slow' : ''}-`));
  const logs = (what) => join(dir, `${what}.log`);
  let server, pub, players, slowP;
  try {
    if (!(await waitPortFree(PORTS.rtmp, 10000)) || !(await waitPortFree(PORTS.http, 10000)) || !(await waitPortFree(PORTS.rtsp, 10000))) throw new Error('bench ports still busy');
    row.idleBeforePct = await waitQuiet(20000);
    const [cmd, argv] = def.cmd(dir);
    server = startPinned(SERVER_CORE, cmd, argv, logs('server'));
    const port = proto === 'rtmp' ? PORTS.rtmp : proto === 'rtsp' ? PORTS.rtsp : PORTS.http;
    if (!(await waitPort(PORTS.rtmp, 30000, server)) || !(await waitPort(port, 5000, server))) {
      throw new Error(`server did not listen: ${server.lines.slice(-5).join(' | ')}`);
    }
    pub = startLoad('node', [join(LOAD, 'publish.mjs'), '--url', def.urls.rtmp, '--max-seconds', String(SECONDS + WARMUP + 120)], logs('publisher'));
    if (!(await waitEvent(pub, 'publishing', 15000))) throw new Error(`publisher failed: ${pub.lines.slice(-3).join(' | ')}`);
    await sleep(1000); // a keyframe or so in the server's cache before players join
    // The slow player (own process, see the file comment): before the N players with a lead, else
    // right after they joined (so it does not change their join figures); it warms up with them.
    let slowJoined = null;
    const startSlow = async () => {
      slowP = startLoad(PYTHON, [join(LOAD, 'slow_player.py'), '--proto', proto, '--url', def.urls[proto],
        '--kbps', String(SLOW_KBPS), '--edge-ms', String(EDGE_MS)], logs('slow-player'), { stdin: true });
      const j = await waitEvent(slowP, 'joined', 30000);
      if (!j?.ok) throw new Error(`slow player did not join: ${j?.error ?? slowP.lines.slice(-3).join(' | ')}`);
      slowJoined = j;
    };
    if (slow && SLOW_LEAD > 0) { await startSlow(); await sleep(SLOW_LEAD * 1000); }
    players = startLoad('node', [join(LOAD, 'players.mjs'), '--proto', proto, '--url', def.urls[proto], '--n', String(n),
      '--warmup', String(WARMUP), '--seconds', String(SECONDS), '--edge-ms', String(EDGE_MS),
      ...(sampleApi ? ['--linger', '3'] : [])], logs('players')); // connections stay up for the last API sample
    // The join storm, in 200 ms slices from the players' start: the server's CPU (% of its core) and how
    // busy the load core was. A first-frame figure measured while the load core was ~100 % busy says as
    // much about the players as about the server.
    const joinPhase = { sliceMs: 200, serverPct: [], loadCorePct: [] };
    let jPrev = { srv: procCpu(server.pid), core: coreTimes(LOAD_CORE), t: performance.now() };
    const joinTimer = setInterval(() => {
      const cur = { srv: procCpu(server.pid), core: coreTimes(LOAD_CORE), t: performance.now() };
      if (cur.srv && jPrev.srv) joinPhase.serverPct.push(Math.round(((cur.srv.user - jPrev.srv.user + cur.srv.sys - jPrev.srv.sys) * 1000 / (cur.t - jPrev.t)) * 100));
      if (cur.core && jPrev.core) joinPhase.loadCorePct.push(Math.round(((cur.core.busy - jPrev.core.busy) / Math.max(1, cur.core.total - jPrev.core.total)) * 100));
      jPrev = cur;
      if (joinPhase.serverPct.length >= 8) clearInterval(joinTimer);
    }, joinPhase.sliceMs);
    row.joinPhase = joinPhase;
    // players.mjs's window edges go straight on to the slow player
    if (slow) players.lineHooks.add((l) => { const e = tryJson(l)?.event; if (e === 'window-start') slowP?.stdin.write('start\n'); else if (e === 'window-end') slowP?.stdin.write('end\n'); });
    const joined = await waitEvent(players, 'joined', 60000);
    if (!joined) throw new Error(`players did not join: ${players.lines.slice(-3).join(' | ')}`);
    row.joined = joined;
    if (slow && !slowJoined) await startSlow();
    if (!(await waitEvent(players, 'window-start', (WARMUP + 10) * 1000))) throw new Error('no window start');
    const a = { t: performance.now(), srv: procCpu(server.pid), pub: procCpu(pub.pid), pl: procCpu(players.pid), sl: slowP && procCpu(slowP.pid), core: coreTimes(LOAD_CORE), score: coreTimes(SERVER_CORE) };
    const isM7s = serverId.startsWith('m7s');
    const mergeAtStart = isM7s ? m7sMerge() : null; // read after the counters, not waited for here
    // RSS: highest 1 s sample over the window
    let rss = procRssMB(server.pid) ?? 0;
    const rssTimer = setInterval(() => { rss = Math.max(rss, procRssMB(server.pid) ?? 0); }, 1000);
    const sampler = sampleApi ? subscriberSampler(slow ? slowJoined.localPort ?? null : undefined) : null;
    const end = await waitEvent(players, 'window-end', (SECONDS + 10) * 1000);
    clearInterval(rssTimer);
    if (!end) { await sampler?.stop(); throw new Error('no window end'); }
    const b = { t: performance.now(), srv: procCpu(server.pid), pub: procCpu(pub.pid), pl: procCpu(players.pid), sl: slowP && procCpu(slowP.pid), core: coreTimes(LOAD_CORE), score: coreTimes(SERVER_CORE) };
    const api = await sampler?.stop();
    if (isM7s) row.merge = { start: await mergeAtStart, end: await m7sMerge() };
    rss = Math.max(rss, procRssMB(server.pid) ?? 0);
    const result = await waitEvent(players, 'result', 10000);
    if (!result) throw new Error('no player result');
    const slowResult = slow ? await waitEvent(slowP, 'result', 5000) : null;
    if (slow && !slowResult) throw new Error(`no slow player result: ${slowP.lines.slice(-3).join(' | ')}`);
    const secs = (b.t - a.t) / 1000;
    const pct = (x, y) => (x && y ? ((y.user - x.user + y.sys - x.sys) / secs) * 100 : null);
    if (!a.srv || !b.srv) throw new Error('server process vanished during the window');
    Object.assign(row, {
      ok: true,
      serverCpu: { pct: pct(a.srv, b.srv), userPct: ((b.srv.user - a.srv.user) / secs) * 100, sysPct: ((b.srv.sys - a.srv.sys) / secs) * 100 },
      serverCoreBusyPct: ((b.score.busy - a.score.busy) / (b.score.total - a.score.total)) * 100,
      rssMB: rss,
      load: {
        // playersPct includes the slow player's process (also on its own: slowPlayerPct)
        publisherPct: pct(a.pub, b.pub), playersPct: slow ? (pct(a.pl, b.pl) ?? 0) + (pct(a.sl, b.sl) ?? 0) : pct(a.pl, b.pl),
        ...(slow ? { slowPlayerPct: pct(a.sl, b.sl) } : {}), playersSelfPct: result.loadCpu.pct,
        coreBusyPct: ((b.core.busy - a.core.busy) / (b.core.total - a.core.total)) * 100,
      },
      players: result.players, kbpsMedian: result.kbpsMedian, kbpsMin: result.kbpsMin,
      firstFrameP50: result.firstFrameMs.p50, firstFrameMax: result.firstFrameMs.max,
      liveEdgeMs: result.liveEdgeMs,
      latency: result.latencyMs, display: result.displayMs,
    });
    if (api) row.subscribers = api.subscribers;
    if (slow) row.slowPlayer = { ...slowResult.slow, joined: slowJoined, server: api?.slow ?? null };
    // The mark uses the load generator's own processes; core 1 busy % also counts anything else that
    // ran there (and kernel work), and is reported beside it.
    const loadGen = (row.load.publisherPct ?? 0) + (row.load.playersPct ?? 0);
    row.loadLimited = loadGen > LOAD_LIMIT;
    // Other work on the server's core during the window (core busy well above the server's own CPU).
    row.serverCoreNoisy = row.serverCoreBusyPct - row.serverCpu.pct > 15;
  } catch (e) {
    row.error = String(e?.message ?? e);
  } finally {
    slowP?.stdin.end(); // EOF: slow_player.py exits (stopProc is the fallback)
    await stopProc(slowP);
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
// Variants: "m7s-node:mergewrite=100ms" (several settings joined by "+", e.g. "m7s-node:mergewrite=100ms+catchup=0")
// is m7s-node with those global.subscribe settings (and the two below); it gets its own rows and label.
for (const id of wanted) {
  const m = /^(m7s-(?:node|bun|deno)):([a-z]+=[0-9a-z.]+(?:\+[a-z]+=[0-9a-z.]+)*)$/.exec(id);
  if (!m || SERVERS[id]) continue;
  const base = SERVERS[m[1]], label = m[2].replaceAll('+', ' ');
  // directwrite=0 is not a config key: it sets M7S_DIRECT_WRITE=0 (the Node adapter then writes through
  // socket.write(), as before the direct write path), for before/after rows in one run.
  // nativeserver=true is global.http.nativeserver (Bun.serve / Deno's own server instead of node:http).
  const settings = m[2].split('+'), env = settings.filter((kv) => kv.startsWith('directwrite=')).map((kv) => `M7S_DIRECT_WRITE=${kv.split('=')[1]}`);
  const httpLines = settings.filter((kv) => kv.startsWith('nativeserver=')).map((kv) => `    nativeserver: ${kv.split('=')[1]}`);
  const spec = settings.filter((kv) => !kv.startsWith('directwrite=') && !kv.startsWith('nativeserver=')).join(',');
  SERVERS[id] = {
    ...base, label: () => `${base.label()} ${label}`,
    cmd: (dir) => {
      const [c, argv] = base.cmd(dir), args2 = argv.map((x) => (x.endsWith('m7s.yaml') ? m7sConfig(dir, spec, httpLines) : x));
      return env.length ? ['env', [...env, c, ...args2]] : [c, args2];
    },
  };
}
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
/** Prints one row as a line (and, for a slow row, a second line about the slow player). */
function report(row) {
  const { server: id, proto, n } = row;
  const tag = `${id.padEnd(9)} ${proto.padEnd(4)} N=${String(n).padEnd(5)}${row.slow ? '+slow ' : ''}`;
  if (!row.ok) { log(`${tag} FAILED: ${row.error} (logs: ${row.logs})`); return; }
  log(`${tag} cpu ${fmt(row.serverCpu.pct)}% (user ${fmt(row.serverCpu.userPct)}) rss ${fmt(row.rssMB, 0)}MB` +
    ` | load ${fmt((row.load.publisherPct ?? 0) + (row.load.playersPct ?? 0), 0)}% (core ${fmt(row.load.coreBusyPct, 0)}%)${row.loadLimited ? ' LOAD-LIMITED' : ''}${row.serverCoreNoisy ? ` NOISY core ${SERVER_CORE} ${fmt(row.serverCoreBusyPct, 0)}%` : ''}` +
    ` | ${fmt(row.kbpsMedian, 0)} kb/s, first ${fmt(row.firstFrameP50, 0)} ms, live edge p50 ${fmt(row.liveEdgeMs?.p50, 0)} max ${fmt(row.liveEdgeMs?.max, 0)} ms (${row.liveEdgeMs?.reached ?? '-'}/${n})` +
    `, display p50 ${fmt(row.display?.p50, 0)} ms, display edge p50 ${fmt(row.display?.edge?.p50, 0)} ms (${row.display?.edge?.reached ?? '-'}/${n}; of all ${row.display?.edge && 'p50All' in row.display.edge ? fmt(row.display.edge.p50All, 0) : '?'})` +
    `, lat p50 ${fmt(row.latency.p50)} p99 ${fmt(row.latency.p99)} ms` +
    ` | players ok ${row.players.ok}/${n}${row.players.noVideo ? `, ${row.players.noVideo} got no video` : ''}` +
    (row.joinPhase ? ` | join (per ${row.joinPhase.sliceMs} ms) server ${row.joinPhase.serverPct.join('/')} %, load core ${row.joinPhase.loadCorePct.join('/')} %` : '') +
    (row.merge ? ` | autoMerge ${row.merge.start?.autoMerge ?? '-'}/${row.merge.end?.autoMerge ?? '-'} ms, fan-out busy ${fmt(row.merge.start?.fanoutBusy, 2)}/${fmt(row.merge.end?.fanoutBusy, 2)}` : '') +
    (row.subscribers ? ` | server: others max buffered ${fmt(row.subscribers.maxBuffered / 1024, 0)} KB, dropped ${row.subscribers.framesDropped}` : ''));
  const s = row.slowPlayer;
  if (!s) return;
  const sv = s.server;
  log(`${' '.repeat(tag.length)} slow player: ${fmt(s.kbps, 0)} kb/s (target ${s.targetKbps}), ${s.keyframes} keyframes, ${s.videoFrames} video frames in the window,` +
    ` own lat p50 ${fmt(s.latencyMs.p50, 0)} p99 ${fmt(s.latencyMs.p99, 0)} max ${fmt(s.latencyMs.max, 0)} ms, first frame ${fmt(s.firstFrameMs, 0)} ms${s.error ? `, error: ${s.error}` : ''}` +
    (sv ? ` | server: buffered max ${fmt(sv.maxBuffered / 1024, 0)} KB (end ${fmt(sv.buffered / 1024, 0)} KB), dropped ${sv.framesDropped}, skips ${sv.skips}, lag ${sv.lagMs} ms, ${sv.state} [by ${sv.matchedBy}]` : '') +
    (row.slowImpact ? ` | others p50 ${fmt(row.slowImpact.baseP50)} -> ${fmt(row.latency.p50)} (${fmt(row.slowImpact.p50DeltaMs, 1)}), p99 ${fmt(row.slowImpact.baseP99)} -> ${fmt(row.latency.p99)} (${fmt(row.slowImpact.p99DeltaMs, 1)}) ms` : ''));
}

// --by-n: for each N, every protocol back to back (rtmp N=10, rtsp N=10, rtmp N=100, ...), so that rows
// compared at one N are measured close together on a machine whose background load drifts. Such a run
// is a paired comparison: bench/report.mjs shows it on its own with ratios, out of the main tables.
const combos = [];
for (const id of runnable) {
  if (args['by-n']) { for (const n of NS) for (const proto of PROTOS) combos.push([id, proto, n]); }
  else for (const proto of PROTOS) for (const n of NS) combos.push([id, proto, n]);
}
for (const [id, proto, n] of combos) {
  if (!SERVERS[id].protos.includes(proto)) { log(`skip ${id} ${proto} N=${n}: not supported by this server`); continue; }
  // With --slow: the usual row first, then the same with the slow player; both poll m7s's API.
  const sampleApi = args.slow && id.startsWith('m7s-');
  const row = await measure(id, proto, n, tmp, { sampleApi });
  rows.push(row);
  report(row);
  if (!args.slow) continue;
  const withSlow = await measure(id, proto, n, tmp, { slow: true, sampleApi });
  if (row.ok && withSlow.ok) {
    const d = (k) => (row.latency[k] !== null && withSlow.latency[k] !== null ? withSlow.latency[k] - row.latency[k] : null);
    withSlow.slowImpact = { p50DeltaMs: d('p50'), p99DeltaMs: d('p99'), baseP50: row.latency.p50, baseP99: row.latency.p99 };
  }
  rows.push(withSlow);
  report(withSlow);
}

const out = { date: started.toISOString(), command: `node bench/run.mjs ${process.argv.slice(2).join(' ')}`.trim(), machine: info,
  method: { serverCore: SERVER_CORE, loadCore: LOAD_CORE, seconds: SECONDS, warmup: WARMUP, loadLimitPct: LOAD_LIMIT, edgeMs: EDGE_MS,
    ...(args.netns !== undefined ? { netns: args.netns } : {}), ...(args['by-n'] ? { byN: true } : {}),
    ...(args.slow ? { slowKbps: SLOW_KBPS, slowLead: SLOW_LEAD } : {}) }, rows };
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
