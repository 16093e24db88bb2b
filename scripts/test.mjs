// Runs the whole suite on Bun, Deno and Node (in that order, so Node's summary closes the output),
// then prints one total line. Usage: node scripts/test.mjs [node|bun|deno ...] [-- file filters]
// Test files: test/**/*.test.ts and *.test.ts beside the code in src/, plugins/, adapters/.
import { build } from 'esbuild';
import { spawn } from 'node:child_process';
import { readdirSync, statSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const args = process.argv.slice(2);
const sep = args.indexOf('--');
const runtimes = (sep < 0 ? args : args.slice(0, sep)).filter((a) => ['node', 'bun', 'deno'].includes(a));
const filters = sep < 0 ? [] : args.slice(sep + 1);
const which = runtimes.length ? runtimes : ['bun', 'deno', 'node'];

function walk(dir, out = []) {
  let names = [];
  try { names = readdirSync(dir); } catch { return out; }
  for (const n of names) {
    if (n === 'node_modules' || n.startsWith('.')) continue;
    const p = join(dir, n);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (n.endsWith('.test.ts')) out.push(p);
  }
  return out;
}
const files = ['test', 'src', 'plugins', 'adapters'].flatMap((d) => walk(d)).sort()
  .filter((f) => !filters.length || filters.some((x) => f.includes(x)));
if (!files.length) { console.error('no test files matched'); process.exit(1); }

function binOf(pkg, name) {
  // The deno and bun npm packages ship the real binaries; node_modules/.bin has their launchers.
  return join(process.cwd(), 'node_modules', '.bin', name);
}

function run(cmd, argv, env = {}) {
  return new Promise((resolve) => {
    let out = '';
    const p = spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout.on('data', (d) => { out += d; process.stdout.write(d); });
    p.stderr.on('data', (d) => { out += d; process.stderr.write(d); });
    p.on('close', (code) => resolve({ code: code ?? 1, out }));
    p.on('error', (e) => { out += String(e); resolve({ code: 1, out }); });
  });
}

// The console's assets module (plugins/console/assets.gen.ts) must exist before any runtime imports the plugins.
await (await import('./build-ui.mjs')).buildUi();

const strip = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');

// A full run (no file filter) type-checks first: a type error fails the suite like a failing test.
if (!filters.length) {
  console.log('=== typecheck: deno check src/ adapters/ plugins/ test/ ===');
  const t = await run(binOf('deno', 'deno'), ['check', '--quiet', 'src/', 'adapters/', 'plugins/', 'test/'], { NO_COLOR: '1' });
  if (t.code !== 0) {
    console.log('typecheck failed');
    console.log('\n=== summary ===\ntotal: 0 passed, 1 failed, 0 skipped');
    process.exit(1);
  }
  console.log('typecheck ok');
}
const totals = { passed: 0, failed: 0, skipped: 0 };

// The failing tests' names and first error lines, repeated under the summary: CI keeps only the tail
// of a long log, and a flaky test is found by its name.
function failures(rt, out) {
  const lines = strip(out).split('\n');
  const got = [];
  if (rt === 'bun') {
    // Bun prints a test's error above its "(fail)" line, after the previous test's result line.
    lines.forEach((l, i) => {
      if (!l.startsWith('(fail) ')) return;
      let j = i - 1;
      while (j >= 0 && i - j <= 60 && !/^\((pass|skip|fail|todo)\) /.test(lines[j])) j--;
      const block = lines.slice(j + 1, i).map((x) => x.trim());
      const said = block.filter((x) => /^(\w*Error\b|error:)/.test(x)).slice(0, 3);
      const where = block.filter((x) => /^at .*\/(test|src|plugins|adapters)\//.test(x)).slice(0, 2);
      got.push(l, ...[...said, ...where].map((x) => '    ' + x));
    });
  } else if (rt === 'node') {
    // TAP: "not ok N - name", then a YAML block with the error; a failing suite repeats its child.
    lines.forEach((l, i) => {
      const m = l.match(/^(\s*)not ok \d+ - (.*)$/);
      if (!m) return;
      const detail = [];
      for (let j = i + 1; j < lines.length && j < i + 40 && !/^\s*\.\.\.$/.test(lines[j]); j++) {
        if (/^\s*(error|location|failureType|code):/.test(lines[j])) detail.push('    ' + lines[j].trim());
      }
      got.push(`not ok - ${m[2]}`, ...detail.slice(0, 4));
    });
  } else {
    // Deno lists "name => file:line" under "FAILURES" at the end.
    const at = lines.findIndex((l) => /^\s*FAILURES\s*$/.test(l));
    if (at >= 0) for (let j = at + 1; j < lines.length && lines[j].trim(); j++) got.push(lines[j].trim());
    const err = lines.findIndex((l) => /^\s*ERRORS\s*$/.test(l));
    const end = at > err ? Math.min(at, err + 16) : err + 16;
    if (err >= 0) got.push(...lines.slice(err + 1, end).filter((x) => x.trim()).map((x) => '    ' + x.trim()));
  }
  return got.slice(0, 60);
}
let anyFail = false;
const results = [];

for (const rt of which) {
  console.log(`\n=== ${rt}: ${files.length} test files ===`);
  let r;
  if (rt === 'node') {
    // A build folder per run, so two runs at once (two developers, or a developer and CI) don't clash.
    const buildDir = join('.build', `test-${process.pid}`);
    rmSync(buildDir, { recursive: true, force: true });
    process.on('exit', () => rmSync(buildDir, { recursive: true, force: true }));
    const outs = files.map((f) => join(buildDir, relative('.', f)).replace(/\.ts$/, '.mjs'));
    await build({
      entryPoints: files.map((f, i) => ({ in: f, out: outs[i].replace(/\.mjs$/, '') })),
      outdir: '.', outExtension: { '.js': '.mjs' }, bundle: true, platform: 'node', format: 'esm',
      target: 'node20', packages: 'external', sourcemap: 'inline', logLevel: 'warning',
    });
    r = await run(process.execPath, ['--test', '--test-concurrency=1', ...outs], { M7S_TEST_RUNTIME: 'node' });
    const m = strip(r.out);
    const pass = +(m.match(/^# pass (\d+)/m)?.[1] ?? 0), fail = +(m.match(/^# fail (\d+)/m)?.[1] ?? 0);
    const skip = +(m.match(/^# skipped (\d+)/m)?.[1] ?? 0) + +(m.match(/^# todo (\d+)/m)?.[1] ?? 0);
    results.push({ rt, pass, fail, skip, code: r.code, failed: failures(rt, r.out) });
  } else if (rt === 'deno') {
    r = await run(binOf('deno', 'deno'), ['test', '-A', '--no-check', ...files], { M7S_TEST_RUNTIME: 'deno', NO_COLOR: '1' });
    const m = strip(r.out).match(/(ok|FAILED) \| (\d+) passed(?: \((\d+) steps?\))? \| (\d+) failed(?: \((\d+) steps?\))?(?: \| (\d+) ignored(?: \((\d+) steps?\))?)?/);
    // describe/it become steps under Deno; count steps when present so the figures compare with Node's.
    const pass = m ? +(m[3] ?? m[2]) : 0, fail = m ? +(m[5] ?? m[4]) : 0, skip = m ? +(m[7] ?? m[6] ?? 0) : 0;
    results.push({ rt, pass, fail, skip, code: r.code, failed: failures(rt, r.out) });
  } else {
    r = await run(binOf('bun', 'bun'), ['test', '--timeout', '300000', ...files.map((f) => './' + f)], { M7S_TEST_RUNTIME: 'bun' });
    const m = strip(r.out);
    const pass = +(m.match(/^\s*(\d+) pass/m)?.[1] ?? 0), fail = +(m.match(/^\s*(\d+) fail/m)?.[1] ?? 0);
    const skip = +(m.match(/^\s*(\d+) skip/m)?.[1] ?? 0);
    results.push({ rt, pass, fail, skip, code: r.code, failed: failures(rt, r.out) });
  }
  if (r.code !== 0) anyFail = true;
}

console.log('\n=== summary ===');
for (const x of results) {
  console.log(`${x.rt.padEnd(5)} ${x.pass} passed, ${x.fail} failed, ${x.skip} skipped (exit ${x.code})`);
  totals.passed += x.pass; totals.failed += x.fail; totals.skipped += x.skip;
  if (x.code !== 0 && x.fail === 0) totals.failed += 1; // a runner that crashed counts as a failure
}
for (const x of results) {
  if (!x.failed.length) continue;
  console.log(`\n--- failed on ${x.rt} ---`);
  for (const l of x.failed) console.log(l);
}
console.log(`total: ${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exit(anyFail || totals.failed ? 1 : 0);
