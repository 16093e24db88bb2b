// GB28181 SIP edge cases driven by SIPp (Debian sip-tester), a SIP implementation that is not ours:
// REGISTER with a wrong password (401 then 403), a device that stops its keepalives (offline within
// 3 × keepaliveinterval, not before), and an INVITE the device never answers (the viewer gets its error at
// invitetimeout, the server CANCELs the INVITE and ACKs the 487, nothing stays open). Scenarios in
// test/fixtures/sipp/. Node pass only: the result does not depend on the runtime.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import gb28181 from '../plugins/gb28181/index.ts';
import flv from '../plugins/flv/index.ts';
import { run, sleep, start, startServer, until, type TestServer } from './helpers/media.ts';
import { tempDir } from './helpers/frames.ts';

const runtime = process.env.M7S_TEST_RUNTIME ?? 'node';
const SIPP = '/usr/bin/sipp';
const skip = runtime !== 'node' ? 'runtime-independent interop: Node pass only' : !existsSync(SIPP) ? 'sipp not installed (Debian package sip-tester)' : false;
const SERVER = '34020000002000000001', REALM = '3402000000', PASSWORD = '12345678';
const FIX = 'test/fixtures/sipp';

describe('gb28181 with SIPp', { skip }, () => {
  const t = tempDir();
  let s: TestServer;
  before(async () => {
    s = await startServer([gb28181, flv], `gb28181:\n  serial: "${SERVER}"\n  realm: "${REALM}"\n  password: "${PASSWORD}"\n  sip:\n    listenaddr: ["udp:127.0.0.1:0"]\n` +
      `  sipip: 127.0.0.1\n  mediaport: ""\n  keepaliveinterval: 1s\n  invitetimeout: 3s\n  datafile: ""\n`);
  });
  after(async () => { await s?.stop(); t.remove(); });

  const sippArgs = (scenario: string, dev: string, extra: string[] = [], password = PASSWORD) => [
    `127.0.0.1:${s.port('gb28181', 'udp')}`, '-sf', `${FIX}/${scenario}`, '-m', '1', '-i', '127.0.0.1', '-p', String(40000 + Math.floor(Math.random() * 20000)),
    '-key', 'server', SERVER, '-key', 'realm', REALM, '-key', 'dev', dev, '-au', dev, '-ap', password, '-d', '100',
    '-timeout', '8', '-timeout_error', '-nostdin', '-trace_err', '-error_file', `${t.dir}/${dev}.err`, ...extra,
  ];
  const api = async (p: string) => (await fetch(`${s.http}/gb28181/api/${p}`).then((r) => r.json()) as any);

  it('REGISTER with a wrong password: 401, then 403', async () => {
    const r = await run(SIPP, sippArgs('register-wrong-password.xml', '34020000001320000011', [], 'wrong-password'));
    assert.equal(r.code, 0, `sipp exit ${r.code}: ${r.stderr.slice(-500)} ${existsSync(`${t.dir}/34020000001320000011.err`) ? readFileSync(`${t.dir}/34020000001320000011.err`, 'utf8').slice(-1500) : ''}`);
    assert.equal((await api('devices/34020000001320000011')).code, 404, 'not registered');
  });

  it('a device that stops keepalives is offline within 3 × keepaliveinterval, not before', async () => {
    const dev = '34020000001320000012';
    const r = await run(SIPP, sippArgs('register-keepalive.xml', dev));
    const last = Date.now();
    assert.equal(r.code, 0, `sipp exit ${r.code}: ${r.stdout.slice(-1500)}`);
    assert.equal((await api(`devices/${dev}`)).data.online, true);
    await until(async () => (await api(`devices/${dev}`)).data.online === false, 8000, 'offline');
    const took = Date.now() - last;
    assert.ok(took >= 2500 && took <= 4500, `offline ${took} ms after the last keepalive (interval 1 s)`);
  });

  it('an INVITE that is never answered: the viewer gets its error at invitetimeout, the server CANCELs, nothing left open', async () => {
    const dev = '34020000001320000013';
    const log = `${t.dir}/ooc.log`;
    const sipp = start(SIPP, [...sippArgs('register-keepalive.xml', dev, ['-oocsf', `${FIX}/ooc-no-answer.xml`, '-trace_logs', '-log_file', log]).map((a, i, all) => all[i - 1] === '-d' ? '9000' : a)]);
    try {
      await until(async () => (await api(`devices/${dev}`)).data?.online === true, 10_000, 'SIPp registered');
      const t0 = Date.now();
      const res = await fetch(`${s.http}/flv/gb28181/${dev}/34020000001310000001.flv`);
      const body = await res.text();
      const took = Date.now() - t0;
      assert.ok(res.status >= 400 || body.length === 0, `viewer: ${res.status}, ${body.length} bytes`);
      assert.ok(took >= 2500 && took < 8000, `viewer ended after ${took} ms (invitetimeout 3 s)`);
      await until(() => existsSync(log) && /ACK received/.test(readFileSync(log, 'utf8')), 5000, 'CANCEL, 487 and ACK in the SIPp log');
      const text = readFileSync(log, 'utf8');
      assert.match(text, /INVITE received/);
      assert.match(text, /CANCEL received/);
      const list = await api('list');
      assert.equal(list.data.invites.filter((x: any) => !x.ended).length, 0, 'no invite left');
      const streams = await fetch(`${s.http}/api/stream/list`).then((r) => r.json()) as any;
      assert.equal(JSON.stringify(streams.data).includes(dev), false, 'no stream left');
    } finally {
      await sipp.kill();
    }
    await sleep(10);
  });
});
