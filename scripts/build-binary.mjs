// Builds the single-file executable. Two routes:
//   npm run build:binary                 → dist/m7s: `bun build --compile` of the Bun entry (the release route)
//   npm run build:binary -- --node       → dist/m7s-node: a Node single-executable application (SEA):
//                                          esbuild → CJS, `node --experimental-sea-config`, postject into
//                                          a copy of this node binary
// Both work offline for the host's own platform. Bun cross targets (`--target=bun-linux-arm64`,
// `bun-darwin-arm64`, `bun-windows-x64`...) make bun fetch that target's runtime from the npm registry
// once. Options: --outfile=PATH, --target=BUN_TARGET.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

const opt = (name) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const node = process.argv.includes('--node');
const outfile = resolve(opt('outfile') ?? (node ? 'dist/m7s-node' : 'dist/m7s'));
const target = opt('target');
const bin = (name) => join(process.cwd(), 'node_modules', '.bin', name);
const run = (cmd, args, what) => {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.error) { console.error(`build:binary: cannot run ${cmd}: ${r.error.message} (${what})`); process.exit(1); }
  if (r.status !== 0) process.exit(r.status ?? 1);
};

mkdirSync(dirname(outfile), { recursive: true });
await (await import('./build-ui.mjs')).buildUi(); // the console's assets go into the binary
const started = Date.now();
if (!node) {
  // The bun npm package (devDependency) ships the binary; a bun on PATH (M7S_BUN or `bun`) works too.
  const bun = process.env.M7S_BUN || (existsSync(bin('bun')) ? bin('bun') : 'bun');
  run(bun, ['build', '--compile', '--minify', ...(target ? [`--target=${target}`] : []), 'adapters/bun/main.ts', '--outfile', outfile], 'install bun, or npm ci for the devDependency');
} else {
  const { build } = await import('esbuild');
  const tmp = mkdtempSync(join(tmpdir(), 'm7s-sea-'));
  try {
    await build({ entryPoints: ['adapters/node/sea.ts'], outfile: join(tmp, 'sea-main.cjs'), bundle: true, platform: 'node', format: 'cjs', target: 'node20', logLevel: 'warning' });
    writeFileSync(join(tmp, 'sea-config.json'), JSON.stringify({ main: join(tmp, 'sea-main.cjs'), output: join(tmp, 'sea.blob'), disableExperimentalSEAWarning: true }));
    run(process.execPath, ['--experimental-sea-config', join(tmp, 'sea-config.json')], 'Node >= 20 with SEA support');
    copyFileSync(process.execPath, outfile);
    chmodSync(outfile, 0o755);
    // The fuse string is in the node binary itself (postject must be told it exactly).
    const fuse = /NODE_SEA_FUSE_[0-9a-f]{32}/.exec(readFileSync(process.execPath, 'latin1'))?.[0];
    if (!fuse) { console.error('build:binary: this node binary has no SEA fuse'); process.exit(1); }
    const postject = process.env.M7S_POSTJECT || bin('postject');
    run(postject, [outfile, 'NODE_SEA_BLOB', join(tmp, 'sea.blob'), '--sentinel-fuse', fuse], 'postject devDependency: npm ci');
  } finally { rmSync(tmp, { recursive: true, force: true }); }
}
const mb = (statSync(outfile).size / 1048576).toFixed(1);
console.log(`${outfile}: ${mb} MiB in ${((Date.now() - started) / 1000).toFixed(1)} s`);
