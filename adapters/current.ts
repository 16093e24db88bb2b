// Pick the Runtime for whichever runtime is executing this code. Entry points import their adapter
// directly; this is for code that must work anywhere (tests, tools). The adapter is loaded with a
// dynamic import so that, say, Node never evaluates the Bun adapter.

import type { Runtime } from '../src/net/types.ts';

export type RuntimeName = 'node' | 'bun' | 'deno';

/** Which runtime we are on. Bun and Deno both provide a `process` global, so test for them first. */
export function detectRuntime(): RuntimeName {
  const g = globalThis as { Bun?: unknown; Deno?: unknown };
  if (g.Bun !== undefined) return 'bun';
  if (g.Deno !== undefined) return 'deno';
  return 'node';
}

let cached: Promise<Runtime> | undefined;

// The Bun and Deno adapters are imported through a variable so that bundlers (esbuild for the Node
// build and tests) leave those imports alone: bundling them would hoist `hono/bun` (which touches the
// `Bun` global when loaded) into Node code. Bun and Deno run the .ts sources directly, so the runtime
// import works there. Compiled single-file builds should import their adapter directly instead.
const BUN_ADAPTER = './bun/runtime.ts';
const DENO_ADAPTER = './deno/runtime.ts';

export async function currentRuntime(): Promise<Runtime> {
  return (cached ??= (async () => {
    switch (detectRuntime()) {
      case 'bun':
        return ((await import(BUN_ADAPTER)) as typeof import('./bun/runtime.ts')).bunRuntime;
      case 'deno':
        return ((await import(DENO_ADAPTER)) as typeof import('./deno/runtime.ts')).denoRuntime;
      default:
        return (await import('./node/runtime.ts')).nodeRuntime;
    }
  })());
}
