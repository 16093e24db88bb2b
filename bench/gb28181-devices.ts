// 200 simulated GB28181 devices (test/helpers/gb-device.ts) registering with digest over UDP and sending
// keepalives to one m7s process (Node, bundled with esbuild); measures the server's CPU (from
// /proc/PID/stat, Linux) and RSS while they keep alive. The devices run in this process, not the server's.
//
//   node_modules/.bin/deno run -A bench/gb28181-devices.ts [devices=200] [keepaliveSec=5] [seconds=30]
// Measured 2026-11-30 (2-core VM shared with other jobs): 200 devices, keepalive 5 s (40/s): server 2.2 % of one
// core, RSS 106 MB (84 MB before they came); keepalive 1 s (200/s): 4.4 %, 108 MB. Registering all 200: 0.5-0.8 s.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { mkdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { GbDevice } from '../test/helpers/gb-device.ts';

const [N = 200, KA = 5, SECONDS = 30] = (Deno.args ?? []).map(Number);
// The bundle lives in .build/ so its external packages resolve from this checkout's node_modules.
mkdirSync('.build', { recursive: true });
const dir = mkdtempSync(`${process.cwd()}/.build/gbbench-`);
execFileSync('node_modules/.bin/esbuild', ['adapters/node/main.ts', '--bundle', '--platform=node', '--format=esm', `--outfile=${dir}/m7s.mjs`, '--packages=external', '--log-level=warning']);
const sipPort = 25060 + Math.floor(Math.random() * 1000);
writeFileSync(`${dir}/config.yaml`, `global:\n  loglevel: warn\n  http:\n    listenaddr: "127.0.0.1:0"\nrtmp:\n  enable: false\nrtsp:\n  enable: false\nwebrtc:\n  enable: false\nhls:\n  enable: false\nllhls:\n  enable: false\nrtp:\n  enable: false\n` +
  `gb28181:\n  password: "12345678"\n  sip:\n    listenaddr: ["udp:127.0.0.1:${sipPort}"]\n  sipip: 127.0.0.1\n  keepaliveinterval: ${KA}s\n  datafile: ""\n`);
const server = spawn('node', [`${dir}/m7s.mjs`, '-c', `${dir}/config.yaml`], { stdio: ['ignore', 'ignore', 'inherit'] });
await new Promise((r) => setTimeout(r, 1500));
const pid = server.pid!;
const clk = 100; // USER_HZ on Linux
const cpuTicks = () => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' '); return Number(f[11]) + Number(f[12]); };
const rssKb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
const rss0 = rssKb();

const devices: GbDevice[] = [];
const t0 = Date.now();
for (let i = 0; i < N; i++) {
  const id = `3402000000132${String(i).padStart(7, '0')}`;
  const d = new GbDevice({ id, serverId: '34020000002000000001', realm: '3402000000', password: '12345678', transport: 'udp', server: { host: '127.0.0.1', port: sipPort }, channels: [{ id: `3402000000131${String(i).padStart(7, '0')}`, name: '通道' }] });
  await d.open();
  devices.push(d);
}
// In batches of 20: the simulator does not retransmit over UDP, so a burst of 200 would lose some.
const statuses: number[] = [];
for (let i = 0; i < N; i += 20) statuses.push(...await Promise.all(devices.slice(i, i + 20).map((d) => d.register().catch(() => -1))));
const regMs = Date.now() - t0;
for (const d of devices) { d.startKeepalive(KA * 1000); await new Promise((r) => setTimeout(r, (KA * 1000) / N)); }
await new Promise((r) => setTimeout(r, 3000));
const c0 = cpuTicks(), w0 = Date.now();
await new Promise((r) => setTimeout(r, SECONDS * 1000));
const c1 = cpuTicks(), w1 = Date.now();
const cpuPct = ((c1 - c0) / clk) / ((w1 - w0) / 1000) * 100;
console.log(JSON.stringify({
  devices: N, registered: statuses.filter((s) => s === 200).length, registerAllMs: regMs, keepaliveSec: KA, window_s: SECONDS,
  keepalivesPerSec: N / KA, serverCpuPercentOfOneCore: Number(cpuPct.toFixed(2)), serverRssMb: Number((rssKb() / 1024).toFixed(1)), serverRssIdleMb: Number((rss0 / 1024).toFixed(1)),
}));
for (const d of devices) await d.close();
server.kill();
rmSync(dir, { recursive: true, force: true });
Deno.exit(0);
