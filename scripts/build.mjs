// Bundles the Node entry point into dist/m7s.mjs (the `m7s` bin) with esbuild.
// Dependencies stay external: they are in node_modules after `npm ci`.
import { build } from 'esbuild';
import { chmodSync } from 'node:fs';
import { buildUi } from './build-ui.mjs';

await buildUi(); // the console's assets, embedded in the bundle (plugins/console/assets.gen.ts)

await build({
  entryPoints: ['adapters/node/main.ts'],
  outfile: 'dist/m7s.mjs',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  sourcemap: 'linked',
  banner: { js: '#!/usr/bin/env node' },
  logLevel: 'warning',
});
chmodSync('dist/m7s.mjs', 0o755);
