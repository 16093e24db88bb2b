// Entry point: m7s on bun.
import { bunRuntime } from './runtime.ts';
import { main } from '../../src/main.ts';
import { builtinPlugins } from '../../plugins/index.ts';

await main(bunRuntime, builtinPlugins);
