// deploy/ (issue 14): the Dockerfile lints clean (dockerfile-utils) and EXPOSEs every default port the
// code listens on; compose and Kubernetes publish the same ports; `kubectl kustomize deploy/k8s`
// validates with kubernetes-models and its ConfigMap is a config m7s accepts; the systemd unit passes
// `systemd-analyze verify` with no warning and scores as hardened in `systemd-analyze security`.
// Node pass only (file checks and host tools); each tool that is missing skips its test with the reason.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseAllDocuments, parse } from 'yaml';
import { currentRuntime, detectRuntime } from '../adapters/current.ts';
import { Server } from '../src/server.ts';
import { builtinPlugins } from '../plugins/index.ts';

const root = resolve('.');
const onNode = detectRuntime() === 'node';

/** A dev dependency, from node_modules (or M7S_EXTRA_NODE_MODULES, for a checkout whose npm ci predates it). */
// deno-lint-ignore no-explicit-any
function devDep(name: string): any {
  for (const dir of [join(root, 'node_modules'), process.env.M7S_EXTRA_NODE_MODULES].filter(Boolean) as string[]) {
    try { return createRequire(join(dir, 'x.js'))(name); } catch { /* next */ }
  }
  return undefined;
}
/** An ESM-only dev dependency file (kubernetes-models), by its path under node_modules without .js. */
// deno-lint-ignore no-explicit-any
async function devDepEsm(file: string): Promise<any> {
  for (const dir of [join(root, 'node_modules'), process.env.M7S_EXTRA_NODE_MODULES].filter(Boolean) as string[]) {
    const f = join(dir, file + '.js');
    if (existsSync(f)) return await import(pathToFileURL(f).href);
  }
  return undefined;
}
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/** Every default listen address of the built-in plugins and global: "1935/tcp", "5060/udp"... */
async function defaultPorts(): Promise<Set<string>> {
  const { config } = await Server.loadConfig({ runtime: await currentRuntime(), plugins: builtinPlugins, env: {} });
  const out = new Set<string>();
  const walk = (o: unknown, path: string[]) => {
    if (!o || typeof o !== 'object') return;
    for (const [k, v] of Object.entries(o)) {
      if (/^listenaddr/.test(k) && typeof v === 'string' && /:\d+$/.test(v)) {
        out.add(`${v.split(':').pop()}/${path.some((p) => /udp/.test(p)) || /udp/.test(k) ? 'udp' : 'tcp'}`);
      } else walk(v, [...path, k]);
    }
  };
  walk(config, []);
  return out;
}

const dockerfile = readFileSync(join(root, 'deploy/Dockerfile'), 'utf8');
const exposed = new Set(dockerfile.split('\n').filter((l) => l.startsWith('EXPOSE ')).flatMap((l) => l.slice(7).trim().split(/\s+/)));

describe('deploy/', { skip: onNode ? false : 'checks files and host tools: Node pass only' }, () => {
  it('Dockerfile: dockerfile-utils lint is clean; multi-stage, non-root, HEALTHCHECK on /api/sysinfo', async (t) => {
    const du = devDep('dockerfile-utils');
    if (!du) return t.skip('dockerfile-utils not installed (devDependency: npm ci)');
    const problems = du.validate(dockerfile);
    assert.deepEqual(problems.map((p: any) => `${p.range.start.line + 1}: ${p.message}`), []);
    // The linter sees a bad file (so a clean answer means something).
    assert.ok(du.validate('FROM debian\nMAINTAINER x\nEXPOSE 80/sctp\nHEALTHCHECK NONE x\n').length >= 2);
    assert.ok((dockerfile.match(/^FROM /gm) ?? []).length >= 2, 'multi-stage');
    assert.match(dockerfile, /^USER 10001/m);
    assert.match(dockerfile, /^HEALTHCHECK[^\n]*\n?[^\n]*\/api\/sysinfo/m);
  });

  it('EXPOSE covers every default listen port in the code; compose and Kubernetes publish the same ports', async () => {
    const code = await defaultPorts();
    assert.ok(code.has('8080/tcp') && code.has('1935/tcp'), [...code].join());
    for (const p of code) assert.ok(exposed.has(p), `Dockerfile EXPOSE lacks ${p}`);
    const compose = parse(readFileSync(join(root, 'deploy/compose.yaml'), 'utf8'));
    const published = new Set((compose.services.m7s.ports as string[]).map((p) => p.split(':').pop()!));
    assert.deepEqual([...published].sort(), [...exposed].sort(), 'compose ports = EXPOSE');
    const dep = parse(readFileSync(join(root, 'deploy/k8s/deployment.yaml'), 'utf8'));
    const cports = new Set(dep.spec.template.spec.containers[0].ports.map((p: any) => `${p.containerPort}/${p.protocol.toLowerCase()}`));
    assert.deepEqual([...cports].sort(), [...exposed].sort(), 'containerPorts = EXPOSE');
    const svc = parse(readFileSync(join(root, 'deploy/k8s/service.yaml'), 'utf8'));
    const sports = new Set(svc.spec.ports.map((p: any) => `${p.port}/${p.protocol.toLowerCase()}`));
    assert.deepEqual([...sports].sort(), [...exposed].sort(), 'Service ports = EXPOSE');
  });

  it('kubectl kustomize deploy/k8s validates with kubernetes-models; the ConfigMap is a valid m7s config', async (t) => {
    if (!has('kubectl')) return t.skip('kubectl not installed');
    const models = {
      Deployment: (await devDepEsm('kubernetes-models/apps/v1/Deployment'))?.Deployment,
      Service: (await devDepEsm('kubernetes-models/v1/Service'))?.Service,
      ConfigMap: (await devDepEsm('kubernetes-models/v1/ConfigMap'))?.ConfigMap,
      PodDisruptionBudget: (await devDepEsm('kubernetes-models/policy/v1/PodDisruptionBudget'))?.PodDisruptionBudget,
    } as Record<string, any>;
    if (!models.Deployment) return t.skip('kubernetes-models not installed (devDependency: npm ci)');
    const r = spawnSync('kubectl', ['kustomize', join(root, 'deploy/k8s')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const docs = parseAllDocuments(r.stdout).map((d) => d.toJS());
    assert.deepEqual(docs.map((d) => d.kind).sort(), ['ConfigMap', 'Deployment', 'PodDisruptionBudget', 'Service']);
    for (const d of docs) {
      assert.ok(models[d.kind], d.kind);
      new models[d.kind](d).validate(); // throws on a schema violation
    }
    // The validator rejects a broken Deployment (so passing means something).
    const dep = docs.find((d) => d.kind === 'Deployment');
    assert.throws(() => new models.Deployment({ ...dep, spec: { ...dep.spec, replicas: 'one' } }).validate());
    // Selectors line up; probes and resources are set; the generated ConfigMap name is the one mounted.
    const svc = docs.find((d) => d.kind === 'Service'), pdb = docs.find((d) => d.kind === 'PodDisruptionBudget'), cm = docs.find((d) => d.kind === 'ConfigMap');
    const labels = dep.spec.template.metadata.labels;
    for (const sel of [svc.spec.selector, dep.spec.selector.matchLabels, pdb.spec.selector.matchLabels]) {
      for (const [k, v] of Object.entries(sel)) assert.equal(labels[k], v, `selector ${k}`);
    }
    assert.deepEqual(new Set(svc.spec.ports.map((p: any) => p.protocol)), new Set(['TCP', 'UDP']));
    const c = dep.spec.template.spec.containers[0];
    for (const p of ['startupProbe', 'readinessProbe', 'livenessProbe']) assert.equal(c[p].httpGet.path, '/api/sysinfo', p);
    assert.ok(c.resources.requests && c.resources.limits);
    assert.equal(dep.spec.template.spec.volumes.find((v: any) => v.name === 'config').configMap.name, cm.metadata.name);
    const { warnings } = await Server.loadConfig({ runtime: await currentRuntime(), plugins: builtinPlugins, configText: cm.data['config.yaml'], env: {} });
    assert.deepEqual(warnings, [], 'config.yaml in the ConfigMap: no unknown keys');
  });

  it('kubectl kustomize deploy/k8s/cluster (nodes + Redis) validates; nodes get the cascade keys from the environment', async (t) => {
    if (!has('kubectl')) return t.skip('kubectl not installed');
    const models = {
      StatefulSet: (await devDepEsm('kubernetes-models/apps/v1/StatefulSet'))?.StatefulSet,
      Deployment: (await devDepEsm('kubernetes-models/apps/v1/Deployment'))?.Deployment,
      Service: (await devDepEsm('kubernetes-models/v1/Service'))?.Service,
      ConfigMap: (await devDepEsm('kubernetes-models/v1/ConfigMap'))?.ConfigMap,
      Secret: (await devDepEsm('kubernetes-models/v1/Secret'))?.Secret,
      PodDisruptionBudget: (await devDepEsm('kubernetes-models/policy/v1/PodDisruptionBudget'))?.PodDisruptionBudget,
    } as Record<string, any>;
    if (!models.StatefulSet) return t.skip('kubernetes-models not installed (devDependency: npm ci)');
    const r = spawnSync('kubectl', ['kustomize', join(root, 'deploy/k8s/cluster')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const docs = parseAllDocuments(r.stdout).map((d) => d.toJS());
    assert.deepEqual(docs.map((d) => d.kind).sort(), ['ConfigMap', 'Deployment', 'PodDisruptionBudget', 'Secret', 'Service', 'Service', 'Service', 'StatefulSet']);
    for (const d of docs) new models[d.kind](d).validate();
    assert.throws(() => new models.StatefulSet({ ...docs.find((d) => d.kind === 'StatefulSet'), spec: { replicas: 3 } }).validate());
    const sts = docs.find((d) => d.kind === 'StatefulSet'), redis = docs.find((d) => d.kind === 'Deployment');
    const cm = docs.find((d) => d.kind === 'ConfigMap'), secret = docs.find((d) => d.kind === 'Secret');
    const svcs = docs.filter((d) => d.kind === 'Service');
    // Every Service selects pods that exist; the StatefulSet's governing Service is headless.
    for (const svc of svcs) {
      const pods = [sts, redis].filter((w) => Object.entries(svc.spec.selector).every(([k, v]) => w.spec.template.metadata.labels[k] === v));
      assert.equal(pods.length, 1, `Service ${svc.metadata.name} selects one workload`);
    }
    assert.equal(svcs.find((s) => s.metadata.name === sts.spec.serviceName).spec.clusterIP, 'None');
    const redisSvc = svcs.find((s) => s.spec.selector['app.kubernetes.io/component'] === 'redis');
    const c = sts.spec.template.spec.containers[0];
    assert.equal(sts.spec.template.spec.volumes.find((v: any) => v.name === 'config').configMap.name, cm.metadata.name);
    // Secrets come from the Secret; the env the container gets is a config m7s accepts (Kubernetes
    // expands $(VAR) from earlier entries: done here the same way).
    const env: Record<string, string> = {};
    const fake: Record<string, string> = { POD_NAME: 'm7s-node-0', POD_IP: '10.1.2.3' };
    for (const e of c.env) {
      if (e.valueFrom?.secretKeyRef) { assert.equal(e.valueFrom.secretKeyRef.name, secret.metadata.name); assert.ok(e.valueFrom.secretKeyRef.key in secret.stringData); env[e.name] = secret.stringData[e.valueFrom.secretKeyRef.key]; }
      else if (e.valueFrom?.fieldRef) env[e.name] = fake[e.name];
      else env[e.name] = e.value.replace(/\$\((\w+)\)/g, (_: string, n: string) => env[n]);
    }
    assert.equal(env.CASCADE_DIRECTORY, `redis://:${secret.stringData['redis-password']}@${redisSvc.metadata.name}:${redisSvc.spec.ports[0].port}/0`);
    assert.equal(env.CASCADE_ADVERTISE, 'http://10.1.2.3:8080');
    const { config, warnings } = await Server.loadConfig({ runtime: await currentRuntime(), plugins: builtinPlugins, configText: cm.data['config.yaml'], env });
    assert.deepEqual(warnings, [], 'config.yaml + env: no unknown keys');
    assert.equal(config.cascade.directory, env.CASCADE_DIRECTORY);
    assert.equal(config.cascade.nodeid, 'm7s-node-0');
    assert.equal(config.cascade.secret, secret.stringData['cluster-secret']);
    // Redis runs with the same password and no persistence.
    const rc = redis.spec.template.spec.containers[0];
    assert.ok(rc.args.includes('--requirepass') && rc.args.includes('$(REDIS_PASSWORD)'));
    assert.deepEqual(rc.args.slice(0, 4), ['--save', '', '--appendonly', 'no']);
  });

  it('systemd unit: systemd-analyze verify clean, security exposure below 3', async (t) => {
    if (!has('systemd-analyze')) return t.skip('systemd-analyze not installed (Debian package systemd)');
    // An offline root with the unit, the system units it refers to and an executable at ExecStart.
    const r = mkdtempSync(join(tmpdir(), 'm7s-systemd-'));
    try {
      mkdirSync(join(r, 'usr/local/bin'), { recursive: true });
      mkdirSync(join(r, 'etc/systemd/system'), { recursive: true });
      mkdirSync(join(r, 'usr/lib/systemd'), { recursive: true });
      const sys = ['/usr/lib/systemd/system', '/lib/systemd/system'].find((d) => existsSync(join(d, 'sysinit.target')));
      if (!sys) return t.skip('no systemd unit directory on this host');
      cpSync(sys, join(r, 'usr/lib/systemd/system'), { recursive: true, dereference: false, verbatimSymlinks: true });
      writeFileSync(join(r, 'usr/local/bin/m7s'), '#!/bin/sh\n');
      chmodSync(join(r, 'usr/local/bin/m7s'), 0o755);
      cpSync(join(root, 'deploy/systemd/m7s.service'), join(r, 'etc/systemd/system/m7s.service'));
      const v = spawnSync('systemd-analyze', ['verify', `--root=${r}`, 'm7s.service'], { encoding: 'utf8' });
      assert.equal(v.status, 0, v.stderr);
      assert.equal((v.stdout + v.stderr).trim(), '', 'verify prints nothing (an unknown or bad key is only a warning)');
      // A typo is caught (so clean output means something).
      writeFileSync(join(r, 'etc/systemd/system/m7s.service'), readFileSync(join(root, 'deploy/systemd/m7s.service'), 'utf8').replace('ProtectClock=', 'ProtectClok='));
      const bad = spawnSync('systemd-analyze', ['verify', `--root=${r}`, 'm7s.service'], { encoding: 'utf8' });
      assert.match(bad.stderr, /Unknown key 'ProtectClok'/);
      cpSync(join(root, 'deploy/systemd/m7s.service'), join(r, 'etc/systemd/system/m7s.service'));
      const s = spawnSync('systemd-analyze', ['security', '--offline=true', `--root=${r}`, 'm7s.service'], { encoding: 'utf8' });
      const score = /Overall exposure level for m7s\.service: ([\d.]+)/.exec(s.stdout + s.stderr);
      if (!score) return t.skip(`systemd-analyze security --offline not supported here: ${s.stderr.slice(0, 200)}`);
      console.log(`# systemd-analyze security exposure: ${score[1]} (0 best, 10 worst)`);
      assert.ok(Number(score[1]) < 3, `exposure ${score[1]}`);
    } finally { rmSync(r, { recursive: true, force: true }); }
  });
});
