// global.workers / `m7s --workers N` on Node: the primary process forks N workers with node:cluster; they
// share every listening port (the primary accepts and hands connections out round-robin). Each worker
// also listens on its own loopback port, and the cascade plugin uses the other workers' ports as
// origins (M7S_WORKER_PEERS), so a stream published to one worker is served by all. A worker that dies
// is started again. SIGINT/SIGTERM stop the workers, then the primary.
import cluster from 'node:cluster';
import { createServer } from 'node:net';
import { Server } from '../../src/server.ts';
import { parseArgs } from '../../src/main.ts';
import type { PluginDef } from '../../src/plugin.ts';
import type { Runtime } from '../../src/net/types.ts';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
  });
}

/** How many workers this start asks for: --workers, else global.workers (1 when the config cannot be read: main() reports it). */
export async function workerCount(rt: Runtime, plugins: PluginDef<any>[]): Promise<number> {
  const a = parseArgs(rt.args());
  if (a.error || a.help || a.version || a.check) return 1;
  if (a.workers) return a.workers;
  try {
    let configFile = a.config;
    if (!configFile && (await rt.stat('config.yaml'))?.isFile) configFile = 'config.yaml';
    const { config } = await Server.loadConfig({ runtime: rt, plugins, configFile });
    return Number((config.global as { workers?: number }).workers ?? 1) || 1;
  } catch {
    return 1;
  }
}

/** Run as the primary of `n` workers (this process serves nothing itself). */
export async function runPrimary(n: number): Promise<void> {
  const ports: number[] = [];
  for (let i = 0; i < n; i++) ports.push(await freePort());
  const urls = ports.map((p) => `http://127.0.0.1:${p}`);
  let stopping = false;
  const fork = (i: number) => {
    const w = cluster.fork({
      M7S_WORKER: String(i + 1),
      M7S_WORKER_HTTP: `127.0.0.1:${ports[i]}`,
      M7S_WORKER_PEERS: urls.filter((_, j) => j !== i).join(','),
    });
    w.on('exit', (code, signal) => {
      if (stopping) return;
      process.stderr.write(`m7s: worker ${i + 1} exited (${signal ?? code}); starting it again\n`);
      setTimeout(() => fork(i), 1000);
    });
  };
  process.stdout.write(`m7s: primary ${process.pid} starting ${n} workers (internal ports ${ports.join(', ')})\n`);
  for (let i = 0; i < n; i++) fork(i);
  const stop = (sig: NodeJS.Signals) => {
    if (stopping) process.exit(1);
    stopping = true;
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill(sig);
    const force = setTimeout(() => process.exit(1), 7000);
    const check = setInterval(() => {
      if (Object.keys(cluster.workers ?? {}).length === 0) { clearTimeout(force); clearInterval(check); process.exit(0); }
    }, 100);
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

export const isPrimary = (): boolean => cluster.isPrimary;
