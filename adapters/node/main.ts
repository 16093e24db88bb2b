// Entry point: m7s on node. With global.workers / --workers N > 1 this process becomes the primary of
// N workers (adapters/node/workers.ts); each worker runs main() like a single process.
import { nodeRuntime } from './runtime.ts';
import { main } from '../../src/main.ts';
import { builtinPlugins } from '../../plugins/index.ts';
import { isPrimary, runPrimary, workerCount } from './workers.ts';

const n = isPrimary() ? await workerCount(nodeRuntime, builtinPlugins) : 1;
if (n > 1) await runPrimary(n);
else await main(nodeRuntime, builtinPlugins);
