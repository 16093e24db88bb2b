// The command line on each runtime: starts, prints what listens where, answers /api/sysinfo within
// 5 s, and stops gracefully on SIGTERM. Driven from one process (it starts node, bun and deno itself),
// so it runs in the Node pass only.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createServer } from 'node:net';
import { detectRuntime } from '../adapters/current.ts';

const onNode = detectRuntime() === 'node';
const root = resolve('.');

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => res(p)); });
  });
}

const commands: Record<string, (cfg: string) => [string, string[]]> = {
  node: (cfg) => [process.execPath, [join(root, 'dist/m7s.mjs'), '-c', cfg]],
  bun: (cfg) => [join(root, 'node_modules/.bin/bun'), [join(root, 'adapters/bun/main.ts'), '-c', cfg]],
  deno: (cfg) => [join(root, 'node_modules/.bin/deno'), ['run', '-A', join(root, 'adapters/deno/main.ts'), '-c', cfg]],
};

describe('CLI on node, bun and deno', { skip: onNode ? false : 'drives all three runtimes from the Node pass' }, () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'm7s-cli-'));
    // Always rebuild: a dist/m7s.mjs from before the last edit would test old code.
    const b = spawnSync(process.execPath, [join(root, 'scripts/build.mjs')], { cwd: root });
    assert.equal(b.status, 0, String(b.stderr));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const [rt, cmd] of Object.entries(commands)) {
    it(`${rt}: answers /api/sysinfo within 5 s and exits 0 on SIGTERM`, async () => {
      const port = await freePort();
      const cfg = join(dir, `${rt}.yaml`);
      // All plugins off so the test needs no other ports; the engine and API are what is under test.
      writeFileSync(cfg, `global:\n  disableall: true\n  logformat: json\n  http:\n    listenaddr: "127.0.0.1:${port}"\n`);
      const [bin, args] = cmd(cfg);
      const started = Date.now();
      const p = spawn(bin, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout!.on('data', (d) => { out += d; });
      p.stderr!.on('data', (d) => { out += d; });
      let info: any;
      try {
        while (Date.now() - started < 5000) {
          try {
            const r = await fetch(`http://127.0.0.1:${port}/api/sysinfo`);
            info = await r.json();
            break;
          } catch { await new Promise((r) => setTimeout(r, 100)); }
        }
        assert.ok(info, `no answer within 5 s; output:\n${out}`);
        assert.equal(info.code, 0);
        assert.equal(info.data.runtime, rt);
        assert.match(out, new RegExp(`global\\s+http\\s+127\\.0\\.0\\.1:${port}`), 'prints what listens where');
        const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
        p.kill('SIGTERM');
        const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('timeout'), 5000))]);
        assert.equal(code, 0, `graceful exit; output:\n${out}`);
        assert.match(out, /stopping/);
      } finally {
        if (p.exitCode === null) p.kill('SIGKILL');
      }
    });
  }

  it('a bad config exits 1 and names the key and line', () => {
    const cfg = join(dir, 'bad.yaml');
    writeFileSync(cfg, 'global:\n  http:\n    cors: maybe\n');
    const r = spawnSync(process.execPath, [join(root, 'dist/m7s.mjs'), '-c', cfg], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /global\.http\.cors \(.*bad\.yaml:3\)/);
  });

  // A listener that cannot bind (issue 10, item 6): by default one line naming the plugin, the address
  // and "address in use", no stack trace, exit 1 — for the HTTP server and for a plugin's listener
  // alike. With global.failonlistenerror: false the server runs, prints a NOT LISTENING banner, and
  // /api/plugins shows the plugin disabled with the reason.
  for (const [rt, cmd] of Object.entries(commands)) {
    it(`${rt}: a busy HTTP or RTMP port exits 1 with one line; failonlistenerror: false runs with a banner`, async () => {
      const busy = createServer();
      await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
      const bport = (busy.address() as { port: number }).port;
      const run = (name: string, yaml: string) => {
        const cfg = join(dir, `${rt}-${name}.yaml`);
        writeFileSync(cfg, yaml);
        const [bin, args] = cmd(cfg);
        return spawnSync(bin, args, { cwd: dir, encoding: 'utf8', timeout: 20_000 });
      };
      try {
        const free = await freePort();
        const cases: [string, string, RegExp][] = [
          ['http', `global:\n  disableall: true\n  http:\n    listenaddr: "127.0.0.1:${bport}"\n`,
            new RegExp(`^m7s: global: cannot listen on http 127\\.0\\.0\\.1:${bport}: address in use`, 'm')],
          ['rtmp', `global:\n  disableall: true\n  http:\n    listenaddr: "127.0.0.1:${free}"\nrtmp:\n  enable: true\n  tcp:\n    listenaddr: "127.0.0.1:${bport}"\n`,
            new RegExp(`^m7s: rtmp: cannot listen on tcp 127\\.0\\.0\\.1:${bport}: address in use`, 'm')],
        ];
        for (const [name, yaml, line] of cases) {
          const r = run(name, yaml);
          const out = `${r.stdout}\n${r.stderr}`;
          assert.equal(r.status, 1, `${name}: exit ${r.status}, output:\n${out}`);
          assert.match(r.stderr, line, `${name}: output:\n${out}`);
          assert.doesNotMatch(out, /^\s+at /m, `${name}: no stack trace; output:\n${out}`);
          assert.equal(r.stderr.split('\n').filter((l) => l.includes(String(bport))).length, 1, `${name}: one line; output:\n${out}`);
        }

        // failonlistenerror: false — runs without RTMP and says so.
        const port = await freePort();
        const cfg = join(dir, `${rt}-keep.yaml`);
        writeFileSync(cfg, `global:\n  disableall: true\n  failonlistenerror: false\n  logformat: json\n  http:\n    listenaddr: "127.0.0.1:${port}"\n` +
          `rtmp:\n  enable: true\n  tcp:\n    listenaddr: "127.0.0.1:${bport}"\n`);
        const [bin, args] = cmd(cfg);
        const p = spawn(bin, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        p.stdout!.on('data', (d) => { out += d; });
        p.stderr!.on('data', (d) => { out += d; });
        try {
          let plugins: any;
          const t0 = Date.now();
          while (!plugins && Date.now() - t0 < 10_000) {
            try { plugins = await (await fetch(`http://127.0.0.1:${port}/api/plugins`)).json(); } catch { await new Promise((r) => setTimeout(r, 100)); }
          }
          assert.ok(plugins, `no API within 10 s; output:\n${out}`);
          const r = plugins.data.find((x: any) => x.name === 'rtmp');
          assert.equal(r.enabled, false, JSON.stringify(r));
          assert.equal(r.reason, `cannot listen on tcp 127.0.0.1:${bport}: address in use`);
          await new Promise((r) => setTimeout(r, 200));
          assert.match(out, new RegExp(`!!! NOT LISTENING: rtmp: cannot listen on tcp 127\\.0\\.0\\.1:${bport}: address in use \\(plugin rtmp disabled\\)`), out);
          assert.doesNotMatch(out, /^\s+at /m, `no stack trace; output:\n${out}`);
        } finally {
          p.kill('SIGTERM');
          await new Promise((r) => setTimeout(r, 300));
          if (p.exitCode === null) p.kill('SIGKILL');
        }

        // The same for the HTTP server: the process keeps running (RTMP would still work) and says so.
        const cfg2 = join(dir, `${rt}-keephttp.yaml`);
        writeFileSync(cfg2, `global:\n  disableall: true\n  failonlistenerror: false\n  logformat: json\n  http:\n    listenaddr: "127.0.0.1:${bport}"\n`);
        const [bin2, args2] = cmd(cfg2);
        const p2 = spawn(bin2, args2, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
        let out2 = '';
        p2.stdout!.on('data', (d) => { out2 += d; });
        p2.stderr!.on('data', (d) => { out2 += d; });
        try {
          const t0 = Date.now();
          while (!/!!! NOT LISTENING/.test(out2) && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 100));
          assert.match(out2, new RegExp(`!!! NOT LISTENING: global: cannot listen on http 127\\.0\\.0\\.1:${bport}: address in use`), out2);
          assert.equal(p2.exitCode, null, `still running; output:\n${out2}`);
        } finally {
          p2.kill('SIGTERM');
          await new Promise((r) => setTimeout(r, 300));
          if (p2.exitCode === null) p2.kill('SIGKILL');
        }
      } finally {
        busy.close();
      }
    });
  }

  // README: `npx m7s -c config.yaml`, `npx m7s --check`, `npm start -- …`, `npm run start:deno -- …`
  // and `deno task start` work in a checkout after `npm ci` (m7s itself is not on the PATH there).
  // `--no-install` keeps npx from asking the registry should the local bin ever be missing.
  it('the README commands run the CLI after npm ci: npx m7s, npm start --, deno task start', () => {
    const cfg = join(dir, 'readme.yaml');
    writeFileSync(cfg, 'global:\n  disableall: true\n  http:\n    listenaddr: ""\n');
    const nodeBin = dirname(process.execPath);
    // The PATH of a shell after `npm ci`: node's folder and the system, not node_modules/.bin.
    const env = { ...process.env, PATH: `${nodeBin}:/usr/bin:/bin` };
    const runs: [string, string, string[]][] = [
      ['npx m7s --check', join(nodeBin, 'npx'), ['--no-install', 'm7s', '-c', cfg, '--check']],
      ['npx m7s --version', join(nodeBin, 'npx'), ['--no-install', 'm7s', '--version']],
      ['npm start -- --check', join(nodeBin, 'npm'), ['start', '--silent', '--', '-c', cfg, '--check']],
      ['npm run start:deno -- --check', join(nodeBin, 'npm'), ['run', '--silent', 'start:deno', '--', '-c', cfg, '--check']],
      ['deno task start --check', join(root, 'node_modules/.bin/deno'), ['task', 'start', '-c', cfg, '--check']],
    ];
    for (const [what, bin, args] of runs) {
      const r = spawnSync(bin, args, { cwd: root, env: { ...env, NO_COLOR: '1' }, encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 0, `${what}: exit ${r.status}\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, what.includes('--version') ? /^\d+\.\d+\.\d+/m : /config OK \(.*readme\.yaml\)/, `${what}: ${r.stdout}\n${r.stderr}`);
    }
  });

  it('a config with errors and unknown keys shows both, at start and with --check', () => {
    const cfg = join(dir, 'both.yaml');
    writeFileSync(cfg, 'global:\n  http:\n    cors: maybe\n  loglevle: debug\nrtmpp:\n  enable: true\n');
    for (const extra of [[], ['--check']]) {
      const r = spawnSync(process.execPath, [join(root, 'dist/m7s.mjs'), '-c', cfg, ...extra], { encoding: 'utf8', timeout: 10_000 });
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /global\.http\.cors \(.*both\.yaml:3\)/, r.stderr);
      assert.match(r.stderr, /loglevle.*both\.yaml:4/, `the unknown key too: ${r.stderr}`);
      assert.match(r.stderr, /rtmpp.*both\.yaml:5.*unknown plugin section/, `the unknown section too: ${r.stderr}`);
    }
  });

  it('--check validates without starting; --version and unknown flags', () => {
    const cfg = join(dir, 'ok.yaml');
    writeFileSync(cfg, 'global:\n  disableall: true\n  http:\n    listenaddr: ""\n');
    const r = spawnSync(process.execPath, [join(root, 'dist/m7s.mjs'), '-c', cfg, '--check'], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /config OK/);
    const v = spawnSync(process.execPath, [join(root, 'dist/m7s.mjs'), '--version'], { encoding: 'utf8' });
    assert.match(v.stdout, /^\d+\.\d+\.\d+/);
    const u = spawnSync(process.execPath, [join(root, 'dist/m7s.mjs'), '--nope'], { encoding: 'utf8' });
    assert.equal(u.status, 2);
  });
});
