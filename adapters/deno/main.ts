// Entry point: m7s on deno.
import { denoRuntime } from './runtime.ts';
import { main } from '../../src/main.ts';
import { builtinPlugins } from '../../plugins/index.ts';

await main(denoRuntime, builtinPlugins);
