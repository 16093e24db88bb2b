// Builds the single-file executable dist/m7s with `bun build --compile` (Bun entry point, all
// dependencies embedded). Works offline for the host's own platform; cross targets
// (`--target=bun-linux-arm64`, `bun-darwin-arm64`, `bun-windows-x64`...) make bun fetch that target's
// runtime from the npm registry once. Usage:
//   npm run build:binary [-- --target=bun-linux-arm64] [--outfile=dist/m7s-arm64]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

const opt = (name) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const outfile = opt('outfile') ?? 'dist/m7s';
const target = opt('target');
// The bun npm package (devDependency) ships the binary; a bun on PATH (M7S_BUN or `bun`) works too.
const local = join(process.cwd(), 'node_modules', '.bin', 'bun');
const bun = process.env.M7S_BUN || (existsSync(local) ? local : 'bun');

mkdirSync(dirname(outfile), { recursive: true });
const started = Date.now();
const args = ['build', '--compile', '--minify', ...(target ? [`--target=${target}`] : []), 'adapters/bun/main.ts', '--outfile', outfile];
const r = spawnSync(bun, args, { stdio: ['ignore', 'inherit', 'inherit'] });
if (r.error) { console.error(`build:binary: cannot run ${bun}: ${r.error.message} (install bun, or npm ci for the devDependency)`); process.exit(1); }
if (r.status !== 0) process.exit(r.status ?? 1);
const mb = (statSync(outfile).size / 1048576).toFixed(1);
console.log(`${outfile}: ${mb} MiB in ${((Date.now() - started) / 1000).toFixed(1)} s`);
