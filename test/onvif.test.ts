// ONVIF plugin against a simulated camera written here from the ONVIF Core/Media/PTZ specs and
// WS-Discovery (not from the plugin): unicast WS-Discovery on loopback finds it, its GetCapabilities /
// GetProfiles / GetStreamUri (WS-UsernameToken digest checked) lead to an RTSP pull (the camera's URI
// points at an ffmpeg stream on this server's RTSP port), a PTZ ContinuousMove/Stop reaches it, and wrong
// credentials give a clear 401. Multicast discovery inside a network namespace is not tested here.
// Node pass only: runtime-independent interop.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import onvif from '../plugins/onvif/index.ts';
import { Server } from '../src/server.ts';
import { Logger } from '../src/log.ts';
import { currentRuntime } from '../adapters/current.ts';
import rtsp from '../plugins/rtsp/index.ts';
import { ffmpegPath, run, start, startServer, until, type TestServer } from './helpers/media.ts';
import { camera, USER, PASS } from './helpers/onvif-camera.ts';

const runtime = process.env.M7S_TEST_RUNTIME ?? 'node';

describe('onvif: discovery, profiles, RTSP pull, PTZ', { skip: runtime === 'node' ? false : 'runtime-independent interop: Node pass only' }, () => {
  let s: TestServer;
  let cam: Awaited<ReturnType<typeof camera>>;
  let ff: ReturnType<typeof start>;
  before(async () => {
    s = await startServer([rtsp, onvif], 'rtsp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\n  udpaddr: ""\n  rtcpaddr: ""\nonvif:\n  discovertimeout: 500ms\n');
    const rtspPort = s.port('rtsp', 'tcp');
    cam = await camera(() => `rtsp://127.0.0.1:${rtspPort}/live/cam`);
    ff = start(ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25:duration=30',
      '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '25', '-bf', '0', '-pix_fmt', 'yuv420p', '-f', 'rtsp', '-rtsp_transport', 'tcp', `rtsp://127.0.0.1:${rtspPort}/live/cam`]);
  });
  after(async () => { await ff?.kill(); cam?.close(); await s?.stop(); });
  const post = async (p: string, body: unknown) => {
    const r = await fetch(`${s.http}/onvif/api/${p}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    return { status: r.status, ...(await r.json() as any) };
  };

  it('WS-Discovery probe finds the camera; wrong credentials are a clear 401; profiles, stream URI → RTSP pull; PTZ move and stop reach it', async () => {
    const found = await post('discover', { targets: [`127.0.0.1:${cam.udpPort}`], multicast: false });
    assert.equal(found.code, 0, found.message);
    assert.equal(found.data.length, 1);
    const xaddr = found.data[0].xaddrs[0];
    assert.equal(xaddr, `http://127.0.0.1:${cam.port}/onvif/device_service`);
    assert.ok(found.data[0].scopes.includes('onvif://www.onvif.org/name/SimCam'));

    const bad = await post('devices', { xaddr, username: USER, password: 'nope' });
    assert.equal(bad.status, 401);
    assert.match(bad.message, /refused the credentials of user admin/);

    const added = await post('devices', { xaddr, username: USER, password: PASS });
    assert.equal(added.code, 0, added.message);
    assert.deepEqual(added.data.profiles.map((p: any) => [p.profile, p.name, p.ptz]), [['main', 'MainStream', true], ['sub', 'SubStream', false]]);

    await until(async () => (await fetch(`${s.http}/api/stream/info/live/cam`)).ok, 15_000, 'ffmpeg publishing live/cam');
    const pulled = await post('pull', { id: added.data.id, streamPath: 'onvif/cam' });
    assert.equal(pulled.code, 0, pulled.message);
    assert.match(pulled.data.uri, /\/live\/cam$/);
    const info = await until(async () => {
      const r = await fetch(`${s.http}/api/stream/info/onvif/cam`);
      const j = r.ok ? (await r.json() as any).data : null;
      return j?.tracks?.some((x: any) => x.codec === 'h264' && x.frames > 10) ? j : null;
    }, 15_000, 'onvif/cam pulled');
    assert.ok(info);

    assert.equal((await post('ptz/move', { id: added.data.id, x: 0.5, y: -0.25, zoom: 0 })).code, 0);
    assert.equal((await post('ptz/stop', { id: added.data.id })).code, 0);
    assert.deepEqual(cam.moves, ['move main 0.5,-0.25 zoom 0 via /onvif/ptz_service', 'stop main']);
    assert.equal((await post('ptz/move', { id: added.data.id, x: 5 })).status, 400);
  });

  it('a device named through the API obeys global.outbound (defaults: loopback refused, 403, never asked); one announced on the local network can be added', async () => {
    // The defaults (no allowhosts): loopback and private addresses are closed to API-named targets.
    const srv = await Server.start({ runtime: await currentRuntime(), plugins: [rtsp, onvif], logger: Logger.silent(), watch: false,
      configText: 'global:\n  http:\n    listenaddr: "127.0.0.1:0"\nrtsp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\n  udpaddr: ""\n  rtcpaddr: ""\n' +
        `onvif:\n  discovertimeout: 500ms\n  probetargets: ["127.0.0.1:${cam.udpPort}"]\n` });
    try {
      const api = `http://127.0.0.1:${srv.http!.port}/onvif/api/`;
      const call = async (p: string, body: unknown) => {
        const r = await fetch(api + p, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
        return { status: r.status, ...(await r.json() as any) };
      };
      const before = { ...cam.seen };
      const d = await call('devices', { xaddr: `http://127.0.0.1:${cam.port}/onvif/device_service`, username: USER, password: PASS });
      assert.equal(d.status, 403, JSON.stringify(d));
      assert.equal(d.message, 'source not allowed or not reachable');
      const p = await call('discover', { targets: [`127.0.0.1:${cam.udpPort}`], multicast: false });
      assert.equal(p.status, 403, JSON.stringify(p));
      assert.equal((await (await fetch(api + 'devices')).json() as any).data.length, 0, 'a refused device is not listed');
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(cam.seen, before, 'the camera got no SOAP request and no probe');
      // The console's flow: discovery on the local network (here the admin's probetargets), then add.
      const lan = await call('discover', { multicast: false });
      assert.equal(lan.code, 0, lan.message);
      assert.equal(lan.data.length, 1);
      const added = await call('devices', { xaddr: lan.data[0].xaddrs[0], username: USER, password: PASS });
      assert.equal(added.code, 0, added.message);
      assert.equal(added.data.profiles.length, 2);
    } finally { await srv.stop(); }
  });
});

// Multicast WS-Discovery needs a network where 239.255.255.250 stays local: a new network namespace
// (unshare -n, root) with lo up and 224.0.0.0/4 routed to it, where test/helpers/onvif-netns.ts runs the
// server and the camera (with periodic discovery, discoverinterval 1s).
const netnsSkip = runtime !== 'node' ? 'runtime-independent interop: Node pass only'
  : spawnSync('unshare', ['-n', 'true']).status !== 0 ? 'cannot create a network namespace here (unshare -n needs root)' : false;
describe('onvif: multicast discovery in a network namespace', { skip: netnsSkip }, () => {
  it('the camera in the namespace is found by the multicast probe and by periodic discovery', async () => {
    const deno = existsSync('node_modules/.bin/deno') ? 'node_modules/.bin/deno' : 'deno';
    const r = await run('unshare', ['-n', 'sh', '-c', `ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo && exec ${deno} run -A --quiet test/helpers/onvif-netns.ts`], 60_000);
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    assert.equal(out.probe.length, 1, JSON.stringify(out));
    assert.match(out.probe[0].xaddrs[0], /^http:\/\/127\.0\.0\.1:\d+\/onvif\/device_service$/);
    assert.equal(out.periodic.length, 1, 'periodic discovery found it too');
    assert.deepEqual(out.profiles, ['main', 'sub']);
  });
});
