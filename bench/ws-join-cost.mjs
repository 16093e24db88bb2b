#!/usr/bin/env node
// What a WebSocket join costs the runtime itself, before any m7s code: a 20-line server answers every
// upgrade with one message of --burst bytes (a catch-up GOP's size), and --n clients join the way the
// bench's players do (50 every 20 ms). Measured in the server: its CPU (user, sys) from the first
// connection's open to the last one's, per join. Servers:
//   bun-native   Bun.serve + server.upgrade (what global.http.nativeserver: true runs)
//   bun-nodehttp Bun's node:http + its `ws`
//   node-nodehttp Node's node:http + `ws` (what m7s on Node ran before issue 19's server of its own)
//   deno-nodehttp Deno's node:http + `ws` (m7s's default on Deno)
//   bun-sockets  m7s's own server on Bun.listen (adapters/bun/socket-server.ts; m7s's default on Bun)
//   bun-listen-raw, bun-nodehttp-raw, node-nodehttp-raw: the handshake and one frame written by hand
//                on Bun.listen / node:http sockets (what a join costs below any server code)
//   node-net-raw the same on a bare node:net server (no node:http: the floor of a server of our own on Node)
//   node-m7s-sockets, node-m7s-nodehttp, deno-m7s-*: m7s's HTTP servers (adapters/node/runtime.ts) with
//                a bare handler: its own on node:net (the default on Node) or node:http (nativeserver)
//   --kind flv: those answer an HTTP GET through streamResponse (an HTTP-FLV player) instead of a WebSocket
//
//   node bench/ws-join-cost.mjs [--n 1000] [--burst 55000] [--rounds 3] [--servers bun-native,bun-nodehttp,node-nodehttp,deno-nodehttp]
//
// Prints one line per run and the median per server. Server on core 0, clients on core 1 (taskset when
// present). Compare the servers of one run as ratios: the machine is shared.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as net from 'node:net';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';

const ROOT = resolve(new URL('..', import.meta.url).pathname);
const { values: a } = parseArgs({
  options: {
    n: { type: 'string', default: '1000' }, burst: { type: 'string', default: '55000' }, rounds: { type: 'string', default: '3' },
    kind: { type: 'string', default: 'ws' },
    servers: { type: 'string', default: 'bun-native,bun-sockets,bun-nodehttp,node-nodehttp,deno-nodehttp' },
  },
});
const N = Number(a.n), BURST = Number(a.burst), ROUNDS = Number(a.rounds);
const bin = (name) => (existsSync(join(ROOT, 'node_modules/.bin', name)) ? realpathSync(join(ROOT, 'node_modules/.bin', name)) : name);
const BUN = bin('bun'), DENO = bin('deno');
const TASKSET = spawnSync('taskset', ['-c', '0', 'true']).status === 0;

const script = join(ROOT, 'bench/load/ws-join-server.mjs');

/** adapters/node/runtime.ts bundled for the m7s-* servers (Node runs no TypeScript), built once. */
let bundle = null;
async function runtimeBundle() {
  if (bundle) return bundle;
  const { build } = await import('esbuild');
  const out = join(mkdtempSync(join(tmpdir(), 'm7s-joincost-')), 'runtime.mjs');
  await build({ entryPoints: [join(ROOT, 'adapters/node/runtime.ts')], bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile: out, logLevel: 'error',
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" } });
  return (bundle = out);
}

async function once(server) {
  const [runtime, pre, mode] = {
    'bun-native': [BUN, [], 'native'], 'bun-nodehttp': [BUN, [], 'nodehttp'],
    'bun-nodehttp-raw': [BUN, [], 'nodehttp-raw'], 'bun-listen-raw': [BUN, [], 'bunlisten-raw'], 'bun-sockets': [BUN, [], 'sockets'], 'node-nodehttp-raw': [process.execPath, [], 'nodehttp-raw'], 'node-net-raw': [process.execPath, [], 'net-raw'],
    'node-nodehttp': [process.execPath, [], 'nodehttp'], 'deno-nodehttp': [DENO, ['run', '-A'], 'nodehttp'],
    'node-m7s-sockets': [process.execPath, [], 'm7s-sockets'], 'node-m7s-nodehttp': [process.execPath, [], 'm7s-nodehttp'],
    'deno-m7s-sockets': [DENO, ['run', '-A'], 'm7s-sockets'], 'deno-m7s-nodehttp': [DENO, ['run', '-A'], 'm7s-nodehttp'],
  }[server];
  const env = { ...process.env, M7S_RUNTIME: await runtimeBundle(), KIND: a.kind };
  const argv = [...pre, script, mode, String(N), String(BURST)];
  const p = TASKSET ? spawn('taskset', ['-c', '0', runtime, ...argv], { env }) : spawn(runtime, argv, { env });
  const lines = [];
  let buf = '';
  const next = () => new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error(`${server}: no answer`)), 30_000);
    const look = () => { if (lines.length) { clearTimeout(t); res(JSON.parse(lines.shift())); } else setTimeout(look, 5); };
    look();
  });
  p.stdout.on('data', (d) => { buf += d; let i; while ((i = buf.indexOf('\n')) >= 0) { lines.push(buf.slice(0, i)); buf = buf.slice(i + 1); } });
  p.stderr.on('data', (d) => process.stderr.write(d));
  const { port } = await next();
  const socks = [];
  for (let i = 0; i < N; i++) {
    if (a.kind === 'flv') {
      // An HTTP-FLV player's request; what comes back is read and dropped.
      const s = net.connect(port, '127.0.0.1', () => s.write(`GET /live/test.flv HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n`));
      s.on('data', () => {});
      s.on('error', () => {});
      socks.push({ terminate: () => s.destroy() });
    } else {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
      ws.on('error', () => {});
      socks.push(ws);
    }
    if (i % 50 === 49) await new Promise((r) => setTimeout(r, 20));
  }
  const r = await next();
  for (const ws of socks) ws.terminate();
  await new Promise((res) => p.once('exit', res));
  return r;
}

if (TASKSET) spawnSync('taskset', ['-cp', '1', String(process.pid)]);
const servers = a.servers.split(',');
const all = Object.fromEntries(servers.map((s) => [s, []]));
for (let r = 0; r < ROUNDS; r++) {
  for (const s of servers) {
    const x = await once(s);
    all[s].push(x);
    console.log(`${s.padEnd(14)} round ${r + 1}: user ${x.user.toFixed(0)} µs + sys ${x.sys.toFixed(0)} µs per join`);
  }
}
const med = (v) => { const s = [...v].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
console.log(`\nmedian per join (n ${N}, burst ${BURST} bytes, ${ROUNDS} rounds): | server | user µs | sys µs | total µs |`);
for (const s of servers) {
  const u = med(all[s].map((x) => x.user)), y = med(all[s].map((x) => x.sys)), t = med(all[s].map((x) => x.user + x.sys));
  console.log(`| ${s} | ${u.toFixed(0)} | ${y.toFixed(0)} | ${t.toFixed(0)} |`);
}
