// The command line: `m7s [-c config.yaml] [--check]`. Runtime-agnostic: each adapter's main.ts calls
// main(runtime, plugins). Prints what listens where; SIGINT/SIGTERM stop gracefully.

import type { Runtime } from './net/types.ts';
import type { PluginDef } from './plugin.ts';
import { ConfigInvalidError, ListenError, Server } from './server.ts';
import { VERSION } from './version.ts';

const USAGE = `m7s ${VERSION} — streaming media server

usage: m7s [options]
  -c, --config FILE   config file (default: ./config.yaml when it exists)
      --check         validate the config and exit
      --workers N     run N worker processes sharing the ports (Node, Bun; overrides global.workers)
  -v, --version       print the version
  -h, --help          this help

Environment overrides: <SECTION>_<KEY>=value, e.g. GLOBAL_HTTP_LISTENADDR=:9090 RTMP_ENABLE=false
Docs: docs/configuration.md, docs/api.md`;

export interface CliArgs { config?: string; check: boolean; help: boolean; version: boolean; workers?: number; error?: string }

export function parseArgs(argv: string[]): CliArgs {
  const a: CliArgs = { check: false, help: false, version: false };
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i];
    if (x === '-c' || x === '--config') {
      if (!argv[i + 1]) { a.error = `${x} needs a file name`; break; }
      a.config = argv[++i];
    } else if (x.startsWith('--config=')) a.config = x.slice(9);
    else if (x === '--check') a.check = true;
    else if (x === '--workers' || x.startsWith('--workers=')) {
      const v = x.includes('=') ? x.slice(10) : argv[++i];
      const n = Number(v);
      if (!(Number.isInteger(n) && n >= 1 && n <= 256)) { a.error = `--workers needs a number from 1 to 256, got ${v ?? 'nothing'}`; break; }
      a.workers = n;
    }
    else if (x === '-h' || x === '--help') a.help = true;
    else if (x === '-v' || x === '--version') a.version = true;
    else { a.error = `unknown argument ${x}`; break; }
  }
  return a;
}

export async function main(rt: Runtime, plugins: PluginDef<any>[]): Promise<Server | null> {
  const out = (s: string) => rt.writeLog(s, 'stdout');
  const err = (s: string) => rt.writeLog(s, 'stderr');
  const args = parseArgs(rt.args());
  if (args.error) { err(`m7s: ${args.error}\n\n${USAGE}`); rt.exit(2); }
  if (args.help) { out(USAGE); rt.exit(0); }
  if (args.version) { out(VERSION); rt.exit(0); }
  let configFile = args.config;
  if (!configFile && (await rt.stat('config.yaml'))?.isFile) configFile = 'config.yaml';

  if (args.check) {
    // Validate only: nothing listens, so this works next to a running server.
    try {
      const { warnings } = await Server.loadConfig({ runtime: rt, plugins, configFile });
      for (const w of warnings) err(`warning: ${w.message}`);
      out(`config OK${configFile ? ' (' + configFile + ')' : ' (defaults)'}${warnings.length ? `, ${warnings.length} warning(s)` : ''}`);
      rt.exit(0);
    } catch (e) {
      err(`m7s: ${(e as Error).message}`);
      rt.exit(1);
    }
  }
  let server: Server;
  try {
    // A worker of `--workers N` (adapters/node/workers.ts): its own loopback HTTP listener for the
    // internal cascade, and the other workers' as origins (M7S_WORKER_PEERS, read by the cascade plugin).
    const env = rt.env();
    const internal = env.M7S_WORKER_HTTP ? { host: env.M7S_WORKER_HTTP.replace(/:\d+$/, ''), port: Number(env.M7S_WORKER_HTTP.replace(/^.*:/, '')) } : undefined;
    server = await Server.start({ runtime: rt, plugins, configFile, internalHttp: internal });
  } catch (e) {
    if (e instanceof ConfigInvalidError) err(`m7s: ${e.message}`);
    else if (e instanceof ListenError) err(`m7s: ${e.message} (set global.failonlistenerror: false to run without it)`);
    else err(`m7s: failed to start: ${(e as Error)?.stack ?? String(e)}`);
    rt.exit(1);
  }
  // Workers are forked by the Node and Bun adapters (adapters/node/workers.ts); Deno runs one process.
  const wantWorkers = args.workers ?? Number(server.config.global.workers ?? 1);
  if (wantWorkers > 1 && !rt.env().M7S_WORKER) err(`m7s: workers: ${wantWorkers} is supported on Node and Bun; ${rt.name} runs one process (docs/cluster.md)`);
  if (rt.env().M7S_WORKER) out(`worker ${rt.env().M7S_WORKER} (pid ${rt.sysinfo().pid})`);
  out(`m7s ${VERSION} on ${rt.name} ${rt.sysinfo().runtimeVersion}${configFile ? ', config ' + configFile : ', default config'}`);
  for (const l of server.describeListeners()) out('  ' + l);
  const disabled = server.pluginStates().filter((p) => !p.enabled && !/enable: false|disableall/.test(p.reason ?? ''));
  for (const p of disabled) if (!server.missingListeners.some((l) => l.plugin === p.name)) err(`  plugin ${p.name} disabled: ${p.reason}`);
  // global.failonlistenerror: false and a listener did not bind: a banner nobody can miss.
  for (const l of server.missingListeners) {
    err(`  !!! NOT LISTENING: ${l.message}` + (l.plugin === 'global' ? '' : ` (plugin ${l.plugin} disabled)`));
  }

  // The command line keeps the process up until a signal, even with nothing listening
  // (failonlistenerror: false) and no streams: the engine holds no timer while idle.
  const keepAlive = setInterval(() => {}, 1 << 30);
  let stopping = false;
  const stop = (sig: string) => {
    if (stopping) { err('m7s: forced exit'); rt.exit(1); }
    stopping = true;
    server.logger.info(`received ${sig}, stopping`);
    const force = setTimeout(() => { err('m7s: stop took too long, exiting'); rt.exit(1); }, 5000);
    server.stop().then(() => { clearTimeout(force); clearInterval(keepAlive); rt.exit(0); });
  };
  rt.onSignal('SIGINT', () => stop('SIGINT'));
  rt.onSignal('SIGTERM', () => stop('SIGTERM'));
  return server;
}
