// Entry point: m7s on node.
import { nodeRuntime } from './runtime.ts';
import { main } from '../../src/main.ts';
import { builtinPlugins } from '../../plugins/index.ts';

await main(nodeRuntime, builtinPlugins);
