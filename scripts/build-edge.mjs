// Bundles the edge module (adapters/edge/worker.ts) into dist/edge.mjs: one ES module on web APIs
// only, the same file for workerd / Cloudflare Workers, `deno serve` and `bun`.
// Usage: npm run build:edge [-- --outfile=dist/edge.mjs]
import { build } from 'esbuild';

const outfile = process.argv.find((a) => a.startsWith('--outfile='))?.slice(10) ?? 'dist/edge.mjs';
await build({
  entryPoints: ['adapters/edge/worker.ts'],
  outfile,
  bundle: true,
  platform: 'neutral',
  format: 'esm',
  target: 'es2022',
  logLevel: 'warning',
});
