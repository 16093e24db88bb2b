// Shared fuzzing helpers: a seeded PRNG (so a failing case reproduces) and a loop that feeds random,
// truncated and mutated inputs to a parser, allowing only FormatError to escape.
import assert from 'node:assert/strict';
import { FormatError, toHex } from '../../src/format/bytes.ts';

/** Deterministic PRNG (mulberry32): a failing fuzz case reproduces from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Run fn on random, truncated and mutated inputs; only FormatError may escape. */
export function fuzz(name: string, seeds: Uint8Array[], fn: (b: Uint8Array) => unknown, cases = 3000, seed = 1): void {
  const rnd = prng(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  for (let i = 0; i < cases; i++) {
    let input: Uint8Array;
    const kind = i % 4;
    const base = seeds[int(seeds.length)]!;
    if (kind === 0) {
      input = new Uint8Array(int(64));
      for (let j = 0; j < input.length; j++) input[j] = int(256);
    } else if (kind === 1) {
      input = base.slice(0, int(base.length + 1));
    } else {
      input = base.slice();
      const flips = 1 + int(kind === 2 ? 1 : 4);
      for (let f = 0; f < flips && input.length; f++) input[int(input.length)] = int(256);
    }
    try {
      fn(input);
    } catch (e) {
      if (!(e instanceof FormatError)) {
        assert.fail(`${name}: case ${i} (seed ${seed}) threw ${(e as Error)?.name}: ${(e as Error)?.message} for ${toHex(input.subarray(0, 256))}`);
      }
    }
  }
}

function heapUsed(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed;
}

/** fuzz() with `cases` (M7S_FUZZ_CASES by default) and a seed from the name; reports its speed and
 * checks the heap did not grow by more than `boundMb`. */
export function fuzzTarget(name: string, seeds: Uint8Array[], fn: (b: Uint8Array) => unknown, boundMb = 64, cases = Number(process.env.M7S_FUZZ_CASES ?? 20000)): void {
  const before = heapUsed();
  const t0 = Date.now();
  fuzz(name, seeds, fn, cases, 0x5eed ^ name.length);
  const ms = Date.now() - t0;
  const grown = (heapUsed() - before) / 1048576;
  console.log(`fuzz ${name}: ${cases} cases in ${ms} ms, heap ${grown >= 0 ? '+' : ''}${grown.toFixed(1)} MB`);
  assert.ok(grown < boundMb, `${name}: heap grew by ${grown.toFixed(1)} MB over ${cases} cases`);
}
