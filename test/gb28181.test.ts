// GB28181 plugin against the tests' own simulated device (test/helpers/gb-device.ts, written from the
// standard, no server code): digest REGISTER over UDP and TCP (401 → 200, wrong password → 403),
// Catalog with GBK Chinese names shown right by the API, keepalive loss → offline, unregister, channels
// kept across a restart; then (Node pass only: the media path does not depend on the runtime) an
// HTTP-FLV viewer inviting a channel on demand over UDP, TCP passive and TCP active with ffprobe reading
// H.264 + G.711A, HLS, release after the last viewer, PTZ/preset bytes, playback with seek and 2× speed,
// an INVITE that is never answered, H.265, and hostile SIP datagrams during play.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { rmSync } from 'node:fs';
import gb28181 from '../plugins/gb28181/index.ts';
import flv from '../plugins/flv/index.ts';
import hls from '../plugins/hls/index.ts';
import { ffprobe, sleep, startServer, until, type TestServer } from './helpers/media.ts';
import { tempDir } from './helpers/frames.ts';
import { GbDevice, makeGbMedia, type GbMedia } from './helpers/gb-device.ts';

const runtime = process.env.M7S_TEST_RUNTIME ?? 'node';
const nodeOnly = runtime === 'node' ? false : 'runtime-independent interop: Node pass only';
const SERVER = '34020000002000000001', REALM = '3402000000';
const DEV = '34020000001320000001', DEV_TCP = '34020000001320000002';
const CH1 = '34020000001310000001', CH2 = '34020000001310000002';

function config(datafile: string, extra = ''): string {
  return `gb28181:\n  serial: "${SERVER}"\n  realm: "${REALM}"\n  password: "12345678"\n  sip:\n    listenaddr: ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]\n` +
    `  sipip: 127.0.0.1\n  mediaport: ""\n  keepaliveinterval: 1s\n  releasedelay: 300ms\n  invitetimeout: 3s\n  datafile: ${JSON.stringify(datafile)}\n${extra}` +
    `flv:\n  enable: true\nhls:\n  enable: true\n`;
}

async function api(s: TestServer, path: string, init?: RequestInit): Promise<any> {
  const r = await fetch(`${s.http}/gb28181/api/${path}`, init);
  return { status: r.status, ...(await r.json() as object) };
}
const post = (s: TestServer, path: string, body: unknown = {}) => api(s, path, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

function device(s: TestServer, id: string, transport: 'udp' | 'tcp', media?: GbMedia, extra: Partial<ConstructorParameters<typeof GbDevice>[0]> = {}): GbDevice {
  return new GbDevice({
    id, serverId: SERVER, realm: REALM, password: '12345678', transport,
    server: { host: '127.0.0.1', port: s.port('gb28181', transport) },
    channels: [{ id: CH1, name: '摄像机一号', ptz: true }, { id: CH2, name: '东门入口' }],
    media, keepaliveMs: 500, ...extra,
  });
}

describe('gb28181: registration, catalog, keepalive, persistence', { skip: process.env.GB_ONLY ? 'GB_ONLY' : false }, () => {
  const t = tempDir();
  const datafile = `${t.dir}/devices.json`;
  let s: TestServer;
  const devs: GbDevice[] = [];
  before(async () => { s = await startServer([gb28181, flv, hls], config(datafile)); });
  after(async () => { for (const d of devs) await d.close(); await s?.stop(); t.remove(); });

  it('REGISTER with digest over UDP and TCP (401 then 200), wrong password 403; Catalog names in GBK shown right', async () => {
    const a = device(s, DEV, 'udp'), b = device(s, DEV_TCP, 'tcp');
    devs.push(a, b);
    await a.open(); await b.open();
    assert.equal(await a.register(), 200);
    assert.deepEqual(a.statuses, [401, 200]);
    assert.match(a.lastVia, /;rport=\d+;received=127\.0\.0\.1/, 'rport answered (RFC 3581)');
    assert.equal(await b.register(), 200);
    assert.deepEqual(b.statuses, [401, 200]);
    const bad = device(s, '34020000001320000009', 'udp', undefined, { password: 'wrong' });
    devs.push(bad);
    await bad.open();
    assert.equal(await bad.register(), 403);
    assert.deepEqual(bad.statuses, [401, 403]);
    for (const id of [DEV, DEV_TCP]) {
      const d = await until(async () => { const r = await api(s, `devices/${id}`); return r.data?.channels?.length === 2 && r.data.name ? r.data : null; }, 10_000, `catalog of ${id}`);
      assert.equal(d.online, true);
      assert.equal(d.transport, id === DEV ? 'udp' : 'tcp');
      assert.equal(d.name, '模拟设备');
      assert.deepEqual(d.channels.map((c: any) => [c.deviceId, c.name]).sort(), [[CH1, '摄像机一号'], [CH2, '东门入口']]);
    }
    const list = await api(s, 'devices');
    assert.deepEqual(list.data.filter((d: any) => d.online).map((d: any) => d.id).sort(), [DEV, DEV_TCP]);
    // Devices are in the session registry (GET /gb28181/api/list).
    const sessions = await api(s, 'list');
    assert.equal(sessions.data.devices.length, 2);
  });

  it('keepalives keep a device online; silence takes it offline within 3 × keepaliveinterval; unregister', async () => {
    const [a, b] = devs;
    a!.startKeepalive(400);
    b!.startKeepalive(400);
    await sleep(3500);
    assert.equal((await api(s, `devices/${DEV}`)).data.online, true, 'online with keepalives past 3 intervals');
    a!.stopKeepalive();
    const t0 = Date.now();
    await until(async () => (await api(s, `devices/${DEV}`)).data.online === false, 8000, 'offline');
    const took = Date.now() - t0;
    assert.ok(took <= 3000 + 1500, `offline after ${took} ms (3 × 1 s allowed, plus the sweep)`);
    assert.match((await api(s, `devices/${DEV}`)).data.offlineReason, /keepalive/);
    assert.equal(await b!.register(0), 200);
    await until(async () => (await api(s, `devices/${DEV_TCP}`)).data.online === false, 3000, 'unregistered');
    assert.equal((await api(s, `devices/${DEV_TCP}`)).data.offlineReason, 'unregistered');
  });

  it('channels survive a restart (datafile)', async () => {
    await s.stop();
    s = await startServer([gb28181, flv, hls], config(datafile));
    const d = (await api(s, `devices/${DEV}`)).data;
    assert.equal(d.online, false);
    assert.deepEqual(d.channels.map((c: any) => c.name).sort(), ['东门入口', '摄像机一号']);
  });
});

describe('gb28181: live invite, PTZ, playback, failures', { skip: nodeOnly }, () => {
  const t = tempDir();
  let s: TestServer;
  let media: GbMedia;
  const devs: GbDevice[] = [];
  before(async () => {
    media = await makeGbMedia(t.dir, 'h264', 4);
    s = await startServer([gb28181, flv, hls], config(`${t.dir}/devices.json`));
  });
  after(async () => { for (const d of devs) await d.close(); await s?.stop(); t.remove(); });

  async function online(id: string, transport: 'udp' | 'tcp', m: GbMedia = media, extra = {}): Promise<GbDevice> {
    const d = device(s, id, transport, m, extra);
    devs.push(d);
    await d.open();
    assert.equal(await d.register(), 200);
    d.startKeepalive(500);
    await until(async () => (await api(s, `devices/${id}`)).data?.channels?.length === 2, 10_000, 'catalog');
    return d;
  }

  it('an HTTP-FLV viewer invites the channel on demand (UDP); ffprobe reads H.264 + G.711A; BYE after the last viewer', async () => {
    const d = await online(DEV, 'udp');
    const probe = await ffprobe(`${s.http}/flv/gb28181/${DEV}/${CH1}.flv`, { packets: true, seconds: 2 });
    const v = probe.streams.find((x: any) => x.codec_type === 'video'), a = probe.streams.find((x: any) => x.codec_type === 'audio');
    assert.equal(v?.codec_name, 'h264');
    assert.equal(v.width, 320);
    assert.equal(a?.codec_name, 'pcm_alaw');
    assert.ok(probe.packets.filter((p: any) => p.codec_type === 'video').length >= 20);
    assert.equal(d.invites.length, 1);
    assert.equal(d.invites[0]!.transport, 'udp');
    assert.equal(d.invites[0]!.s, 'Play');
    assert.match(d.invites[0]!.y, /^0\d{9}$/);
    // The viewer left: the call ends after releasedelay.
    await until(() => d.byes >= 1, 15_000, 'BYE after the last viewer');
    await until(async () => !(await api(s, 'list')).data.invites.some((x: any) => !x.ended), 5000, 'invite removed');
    // HLS of the same channel invites it again (video; HLS carries no G.711).
    const hlsProbe = await ffprobe(`${s.http}/hls/gb28181/${DEV}/${CH1}.m3u8?timeout=10s`, { timeoutMs: 30_000 });
    assert.ok(hlsProbe.streams.some((x: any) => x.codec_name === 'h264'), JSON.stringify(hlsProbe).slice(0, 300));
    assert.equal(d.invites.length, 2);
    assert.equal((await post(s, `bye/${DEV}/${CH1}`)).code, 0);
    await until(() => d.byes >= 2, 5000, 'BYE');
  });

  for (const transport of ['tcp-passive', 'tcp-active'] as const) {
    it(`${transport}: API invite, ffprobe over HTTP-FLV, API bye`, async () => {
      const d = devs[0]!;
      const r = await post(s, `invite/${DEV}/${CH2}`, { transport });
      assert.equal(r.code, 0, r.message);
      const probe = await ffprobe(`${s.http}/flv/gb28181/${DEV}/${CH2}.flv`, { packets: true, seconds: 1.5 });
      assert.equal(probe.streams.find((x: any) => x.codec_type === 'video')?.codec_name, 'h264');
      assert.equal(probe.streams.find((x: any) => x.codec_type === 'audio')?.codec_name, 'pcm_alaw');
      assert.equal(d.invites.at(-1)!.transport, transport);
      const byes = d.byes;
      assert.equal((await post(s, `bye/${DEV}/${CH2}`)).code, 0);
      await until(() => d.byes > byes, 5000, 'BYE');
    });
  }

  it('PTZ and preset commands reach the device as GB/T 28181 A.3 PTZCmd bytes; IFameCmd', async () => {
    const d = devs[0]!;
    assert.equal((await post(s, `ptz/${DEV}/${CH1}`, { direction: 'left', speed: 0x40 })).code, 0);
    assert.equal((await post(s, `ptz/${DEV}/${CH1}`, { direction: 'stop' })).code, 0);
    assert.equal((await post(s, `preset/${DEV}/${CH1}`, { op: 'call', preset: 3 })).code, 0);
    assert.equal((await post(s, `keyframe/${DEV}/${CH1}`)).code, 0);
    await until(() => d.ptz.length >= 3 && d.controls.length >= 4, 3000, 'controls');
    // A5 0F 00 | 02 (left) | 40 (pan speed) | 00 | 00 | checksum (A5+0F+02+40) % 256 = F6
    assert.deepEqual(d.ptz.map((p) => [p.channel, p.cmd]), [[CH1, 'A50F00024000'.concat('00F6')], [CH1, 'A50F0000000000B4'], [CH1, 'A50F0082000300' + ((0xa5 + 0x0f + 0x82 + 3) % 256).toString(16).toUpperCase()]]);
    assert.match(d.controls.at(-1)!, /<IFameCmd>Send<\/IFameCmd>/);
    assert.equal((await post(s, `ptz/${DEV}/${CH1}`, { direction: 'sideways' })).status, 400);
  });

  it('RecordInfo, playback by time range (s=Playback, u=, t=), seek and 2× speed via MANSRTSP INFO', async () => {
    const d = devs[0]!;
    (d.o as any).records = [{ start: '2026-11-30T10:00:00', end: '2026-11-30T10:10:00' }];
    const recs = await api(s, `records/${DEV}/${CH1}?start=2026-11-30T09:00:00Z&end=2026-11-30T11:00:00Z`);
    assert.equal(recs.code, 0, recs.message);
    assert.deepEqual(recs.data.map((r: any) => [r.startTime, r.endTime]), [['2026-11-30T10:00:00', '2026-11-30T10:10:00']]);
    const start = 1796032800, end = start + 600;
    const r = await post(s, `playback/${DEV}/${CH1}`, { start, end });
    assert.equal(r.code, 0, r.message);
    const inv = d.invites.at(-1)!;
    assert.deepEqual([inv.s, inv.t, /^u=(.*)$/m.exec(inv.sdp)?.[1]?.trim()], ['Playback', `${start} ${end}`, `${CH1}:0`]);
    assert.match(inv.y, /^1\d{9}$/);
    const info = async () => (await fetch(`${s.http}/api/stream/info/${r.data.streamPath}`).then((x) => x.json()) as any).data;
    await until(async () => (await info())?.tracks?.length >= 1, 10_000, 'playback stream');
    // Frames per second of wall time, at 1× then at 2×.
    const sent = () => d.callFrames.at(-1)!;
    const rate = async () => { const f0 = sent(), t0 = Date.now(); await sleep(1500); return (sent() - f0) / ((Date.now() - t0) / 1000); };
    const r1 = await rate();
    assert.equal((await post(s, 'playback/speed', { streamPath: r.data.streamPath, speed: 2 })).code, 0);
    const r2 = await rate();
    assert.ok(r2 / r1 > 1.6 && r2 / r1 < 2.4, `2× speed: ${r1.toFixed(1)} → ${r2.toFixed(1)} frames/s`);
    assert.equal((await post(s, 'playback/seek', { streamPath: r.data.streamPath, seconds: 2 })).code, 0);
    assert.equal((await post(s, 'playback/pause', { streamPath: r.data.streamPath })).code, 0);
    const f = sent();
    await sleep(400);
    assert.ok(sent() - f <= 1, 'paused');
    assert.equal((await post(s, 'playback/resume', { streamPath: r.data.streamPath })).code, 0);
    assert.deepEqual(d.infos.map((x) => x.split('\r\n').filter((l) => /^(PLAY|PAUSE|Scale|Range)/.test(l)).join('|')), [
      'PLAY RTSP/1.0|Scale: 2.0', 'PLAY RTSP/1.0|Range: npt=2-', 'PAUSE RTSP/1.0', 'PLAY RTSP/1.0|Range: npt=now-',
    ]);
    await post(s, `bye/${DEV}/${CH1}`, { streamPath: r.data.streamPath });
  });

  it('hostile SIP datagrams do not disturb a playing stream', async () => {
    const r = await post(s, `invite/${DEV}/${CH1}`, { transport: 'udp' });
    assert.equal(r.code, 0, r.message);
    const frames = async () => (await fetch(`${s.http}/api/stream/info/${r.data.streamPath}`).then((x) => x.json()) as any).data?.tracks?.find((x: any) => x.kind === 'video')?.frames ?? 0;
    await until(async () => (await frames()) > 10, 10_000, 'frames');
    const sock = dgram.createSocket('udp4');
    const port = s.port('gb28181', 'udp');
    const f0 = await frames();
    for (let i = 0; i < 2000; i++) {
      const junk = i % 3 === 0 ? Buffer.from(`REGISTER sip:x SIP/2.0\r\nVia: ${'A'.repeat(i % 200)}\r\nContent-Length: 99999\r\n\r\n`)
        : i % 3 === 1 ? Buffer.from(Array.from({ length: 1 + (i % 1400) }, (_, k) => (k * 7 + i) & 0xff))
        : Buffer.from(`MESSAGE sip:a SIP/2.0\r\nFrom: <sip:${DEV}@x>\r\nTo: <sip:a@b>\r\nCall-ID: ${i}\r\nCSeq: 1 MESSAGE\r\nContent-Length: 20\r\n\r\n<Notify><CmdType>&#`);
      sock.send(junk, port, '127.0.0.1');
      if (i % 200 === 0) await sleep(5);
    }
    await sleep(1000);
    sock.close();
    const f1 = await frames();
    assert.ok(f1 - f0 >= 20, `frames kept coming: ${f0} → ${f1}`);
    const list = await api(s, 'list');
    assert.ok(list.data.sip.malformed >= 300, `malformed counted: ${list.data.sip.malformed}`);
    assert.equal((await api(s, `devices/${DEV}`)).data.online, true);
    await post(s, `bye/${DEV}/${CH1}`);
  });

  it('an INVITE the device never answers: clean timeout, the viewer gets an error, nothing left open', async () => {
    const d = await online(DEV_TCP, 'udp', media, { answerInvite: false });
    const t0 = Date.now();
    const res = await fetch(`${s.http}/flv/gb28181/${DEV_TCP}/${CH1}.flv`);
    const text = await res.text();
    const took = Date.now() - t0;
    // HTTP-FLV sends its head when the subscription starts waiting, so the error is a 200 with an empty
    // body that ends at the invite timeout (a missing stream is a 404 only before the wait starts).
    assert.ok(res.status >= 400 || text.length === 0, `viewer status ${res.status}, ${text.length} bytes`);
    assert.ok(took < 9000, `error after ${took} ms (invitetimeout 3 s)`);
    assert.ok(d.invites.length >= 1);
    await sleep(300);
    const list = await api(s, 'list');
    assert.equal(list.data.invites.filter((x: any) => !x.ended).length, 0);
    const sys = await fetch(`${s.http}/api/sysinfo`).then((x) => x.json()) as any;
    assert.ok(!JSON.stringify(sys).includes(`GB28181 media gb28181/${DEV_TCP}`), 'media socket closed');
  });

  it('H.265 + G.711 over UDP: ffprobe reads HEVC over HTTP-FLV (Enhanced FLV) and HLS', async () => {
    const m265 = await makeGbMedia(t.dir, 'h265', 2);
    await online('34020000001320000003', 'udp', m265);
    // The npm ffprobe (test/helpers/media.ts) reads HEVC in Enhanced FLV; Debian's 5.1 does not.
    const flvProbe = await ffprobe(`${s.http}/flv/gb28181/34020000001320000003/${CH1}.flv`, { timeoutMs: 30_000 });
    const fv = flvProbe.streams.find((x: any) => x.codec_type === 'video');
    assert.equal(fv?.codec_name, 'hevc', JSON.stringify(flvProbe.streams).slice(0, 400));
    assert.equal(fv.width, 320);
    const probe = await ffprobe(`${s.http}/hls/gb28181/34020000001320000003/${CH1}.m3u8?timeout=10s`, { timeoutMs: 30_000 });
    const v = probe.streams.find((x: any) => x.codec_type === 'video');
    assert.equal(v?.codec_name, 'hevc');
    assert.equal(v.width, 320);
    const info = (await fetch(`${s.http}/api/stream/info/gb28181/34020000001320000003/${CH1}`).then((x) => x.json()) as any).data;
    assert.equal(info?.tracks?.find((x: any) => x.kind === 'video')?.codec, 'h265', JSON.stringify(info).slice(0, 400));
    await post(s, `bye/34020000001320000003/${CH1}`);
  });
});
