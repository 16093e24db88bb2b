// Entry point: m7s on bun. global.workers / --workers N > 1: node:cluster as on Node (Bun shares the
// listening ports between the workers with SO_REUSEPORT, Linux only; adapters/node/workers.ts).
import { bunRuntime } from './runtime.ts';
import { main } from '../../src/main.ts';
import { builtinPlugins } from '../../plugins/index.ts';
import { isPrimary, runPrimary, workerCount } from '../node/workers.ts';

const n = isPrimary() ? await workerCount(bunRuntime, builtinPlugins) : 1;
if (n > 1) await runPrimary(n);
else await main(bunRuntime, builtinPlugins);
