// The console's Devices page (/admin/#/devices) in headless Chromium (playwright-core with Debian's
// /usr/bin/chromium) against the tests' own simulated GB28181 device (test/helpers/gb-device.ts): the
// device shows online with its GBK Chinese channel name; Play invites the channel on demand (HTTP-FLV)
// and the video advances ≥ 2 s; holding a PTZ button sends the GB/T 28181 A.3 PTZCmd for that direction
// and speed, releasing it sends stop; a preset call, playback by time range and Stop (BYE) reach the
// device. The ONVIF page (on a server without gb28181: no Devices entry) finds the tests' simulated ONVIF
// camera, shows a wrong password's error, adds the camera and adds a profile as a pull. Screenshots go to
// test-artifacts/console/devices-*.png and onvif-*.png.
//
// Node pass only: the browser is the client and the GB28181 media path does not depend on the runtime
// (test/gb28181.test.ts covers the plugin on every runtime).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import gb28181 from '../plugins/gb28181/index.ts';
import flv from '../plugins/flv/index.ts';
import admin from '../plugins/console/index.ts';
import onvif from '../plugins/onvif/index.ts';
import rtsp from '../plugins/rtsp/index.ts';
import { startServer, until, type TestServer } from './helpers/media.ts';
import { tempDir } from './helpers/frames.ts';
import { GbDevice, makeGbMedia } from './helpers/gb-device.ts';
import { nodeOnly } from './helpers/runtime-once.ts';
import { camera, PASS, USER } from './helpers/onvif-camera.ts';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'];
const only = nodeOnly('the browser is the client; the GB28181 plugin runs on every runtime in test/gb28181.test.ts').skip;
const skip = only || (!existsSync(CHROMIUM) && !process.env.CI ? `${CHROMIUM} not installed (apt-get install chromium)` : false);

const SERVER = '34020000002000000001', REALM = '3402000000';
const DEV = '34020000001320000001', CH1 = '34020000001310000001', CH2 = '34020000001310000002';
const root = (() => { let d = dirname(new URL(import.meta.url).pathname); while (!existsSync(join(d, 'package.json'))) d = dirname(d); return d; })();
const SHOTS = join(root, 'test-artifacts', 'console');
const axePath = (() => { try { return createRequire(import.meta.url).resolve('axe-core/axe.min.js', { paths: [root] }); } catch { return null; } })();

/** Serious or critical axe-core violations on the page as it is (axe injected: the page needs bypassCSP). */
async function axe(page: any): Promise<string[]> {
  if (!axePath) return [];
  await page.addScriptTag({ path: axePath });
  const r = await page.evaluate(async () => (window as any).axe.run(document, { resultTypes: ['violations'] }));
  console.log(`axe-core on ${page.url()}: ${r.violations.length} violations of any impact (${r.violations.map((v: any) => `${v.id}:${v.impact}`).join(', ')})`);
  return r.violations.filter((v: any) => v.impact === 'serious' || v.impact === 'critical').map((v: any) => `${v.id} (${v.impact}) ${v.nodes.length}× ${v.help}`);
}

/** A PTZCmd as GB/T 28181-2016 A.3 lays it out: A5 0F addr instr data1 data2 data3<<4 checksum. */
function ptzCmd(instr: number, data1 = 0, data2 = 0, zoom = 0): string {
  const b = [0xa5, 0x0f, 0x00, instr, data1, data2, zoom << 4];
  b.push(b.reduce((a, x) => a + x, 0) % 256);
  return b.map((x) => x.toString(16).padStart(2, '0')).join('').toUpperCase();
}

describe('console Devices page against a simulated GB28181 device (headless Chromium)', { skip }, () => {
  const t = tempDir();
  let s: TestServer;
  let dev: GbDevice;
  let browser: any;
  const errors: string[] = [];

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    const media = await makeGbMedia(t.dir, 'h264', 4);
    s = await startServer([gb28181, flv, admin],
      `gb28181:\n  serial: "${SERVER}"\n  realm: "${REALM}"\n  password: "12345678"\n  sip:\n    listenaddr: ["udp:127.0.0.1:0"]\n` +
      `  sipip: 127.0.0.1\n  mediaport: ""\n  keepaliveinterval: 2s\n  releasedelay: 2s\n  invitetimeout: 5s\n  datafile: ""\n`);
    dev = new GbDevice({
      id: DEV, serverId: SERVER, realm: REALM, password: '12345678', transport: 'udp',
      server: { host: '127.0.0.1', port: s.port('gb28181', 'udp') },
      channels: [{ id: CH1, name: '摄像机一号', ptz: true }, { id: CH2, name: '东门入口' }],
      media, keepaliveMs: 1000,
      records: [{ start: '2026-11-30T10:00:00', end: '2026-11-30T10:10:00' }],
    });
    await dev.open();
    assert.equal(await dev.register(), 200);
    dev.startKeepalive(1000);
    await until(async () => {
      const r = await (await fetch(`${s.http}/gb28181/api/devices/${DEV}`)).json() as any;
      return r.data?.channels?.length === 2;
    }, 10_000, 'catalog');
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await dev?.close();
    await s?.stop();
    t.remove();
  });

  it('the device is online with its Chinese channel names; Play plays; PTZ press/release, preset, playback and Stop reach the device', async () => {
    // UTC in the page: the playback inputs (datetime-local) are read in the browser's time zone.
    // bypassCSP only so that axe-core can be injected at the end.
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, timezoneId: 'UTC', bypassCSP: !!axePath });
    const page = await ctx.newPage();
    page.on('console', (m: any) => { if (m.type() === 'error') errors.push(m.text()); });
    page.on('pageerror', (e: Error) => errors.push(e.message));
    await page.goto(`${s.http}/admin/#/devices`);
    // The nav shows Devices (gb28181 runs) and not ONVIF (it does not).
    await page.waitForSelector('nav a[href="#/devices"][aria-current=page]');
    assert.equal(await page.$('nav a[href="#/onvif"]'), null);
    await page.waitForSelector(`[data-dev="${DEV}"] [data-online="true"]`, { timeout: 10_000 });
    assert.equal((await page.textContent(`[data-dev="${DEV}"] h2`)).trim(), '模拟设备');
    assert.match(await page.textContent(`[data-dev="${DEV}"] tr[data-ch="${CH1}"]`), /摄像机一号.*ON/s);
    assert.match(await page.textContent(`[data-dev="${DEV}"] tr[data-ch="${CH2}"]`), /东门入口/);

    // Play: the FLV player asks for gb28181/{dev}/{ch}, which invites the channel on demand.
    await page.click(`button[data-play="${DEV}/${CH1}"]`);
    const ok = await page.waitForFunction(() => {
      const v = document.querySelector('#gbplayer video') as HTMLVideoElement | null;
      const w = window as any;
      if (v && v.currentTime > 0 && w.__t0 === undefined) w.__t0 = v.currentTime;
      return w.__t0 !== undefined && v!.currentTime - w.__t0 >= 2;
    }, undefined, { timeout: 20_000, polling: 200 }).then(() => true, () => false);
    const state = await page.evaluate(() => { const v = document.querySelector('#gbplayer video') as HTMLVideoElement | null; return { t: v?.currentTime, w: v?.videoWidth, h: v?.videoHeight, err: document.querySelector('#perr')?.textContent }; });
    assert.ok(ok, `video did not advance 2 s: ${JSON.stringify(state)}; errors ${JSON.stringify(errors)}`);
    assert.deepEqual([state.w, state.h], [320, 240], 'decoded at the simulator\'s size');
    assert.equal(dev.invites.length, 1);
    assert.equal(dev.invites[0]!.s, 'Play');
    assert.equal(dev.invites[0]!.channel, CH1);
    await page.screenshot({ path: join(SHOTS, 'devices-1280.png') });

    // PTZ: hold "up" at speed 64, release; hold "zoom in", release; call preset 3.
    await page.evaluate(() => { const r = document.querySelector('#ptzspeed') as HTMLInputElement; r.value = '64'; });
    const hold = async (dir: string, n: number) => {
      await page.hover(`#ptz button[data-dir="${dir}"]`);
      await page.mouse.down();
      await until(() => dev.ptz.length >= n, 5000, `${dir} pressed`);
      await page.mouse.up();
      await until(() => dev.ptz.length >= n + 1, 5000, `${dir} released`);
    };
    await hold('up', 1);
    await hold('zoomin', 3);
    await page.fill('#preset input[name=preset]', '3');
    await page.click('#preset button[value=call]');
    await until(() => dev.ptz.length >= 5, 5000, 'preset');
    const STOP = ptzCmd(0);
    assert.deepEqual(dev.ptz.map((p) => [p.channel, p.cmd]), [
      [CH1, ptzCmd(0x08, 0, 64)], // up: tilt speed in byte 6
      [CH1, STOP],
      [CH1, ptzCmd(0x10, 0, 0, 64 >> 4)], // zoom in: zoom speed in the high nibble of byte 7
      [CH1, STOP],
      [CH1, ptzCmd(0x82, 0, 3)], // call preset 3
    ]);

    // Playback by time range: s=Playback with t= the range; the stream plays in the same panel.
    await page.fill('#pb input[name=start]', '2026-11-30T10:00');
    await page.fill('#pb input[name=end]', '2026-11-30T10:05');
    await page.click('#pb button[value=play]');
    await until(() => dev.invites.length >= 2, 10_000, 'playback invite');
    const pb = dev.invites[1]!;
    const start = Date.UTC(2026, 10, 30, 10, 0) / 1000;
    assert.deepEqual([pb.s, pb.t, pb.channel], ['Playback', `${start} ${start + 300}`, CH1]);
    await page.waitForSelector(`#gbplayer h2:has-text("playback-${start}-${start + 300}")`, { timeout: 5000 });

    // Stop: the player goes and the call ends with BYE.
    const byes = dev.byes;
    await page.click('#gbstop');
    await until(() => dev.byes > byes, 5000, 'BYE');
    // …of the playback call (the API found it: releasedelay 2 s had not ended it yet); the live call ended
    // by itself once its player went.
    const stopped = `stopped gb28181/${DEV}/${CH1}/playback-${start}-${start + 300}`;
    await page.waitForFunction((want: string) => document.querySelector('#gbmsg')?.textContent === want, stopped, { timeout: 5000 })
      .catch(async () => assert.fail(`status: ${await page.textContent('#gbmsg')}`));
    await until(async () => {
      const l = (await (await fetch(`${s.http}/gb28181/api/list`)).json() as any).data;
      return !l.invites.some((x: any) => !x.ended);
    }, 8000, 'no call left open');
    assert.equal(await page.isHidden('#gbplayer'), true);
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: join(SHOTS, 'devices-390.png'), fullPage: true });
    assert.deepEqual(await axe(page), [], 'axe-core: no serious or critical violations on the Devices page');
    await ctx.close();
    // mpegts.js logs the stopped player's network end as an error; anything else is a fault.
    assert.deepEqual(errors.filter((e) => !/net::ERR|NetworkError|Failed to load resource|IOException|Early-EOF|UnrecoverableEarlyEof/i.test(e)), []);
  });
});

describe('console ONVIF page against a simulated ONVIF camera (headless Chromium)', { skip }, () => {
  let s: TestServer;
  let cam: Awaited<ReturnType<typeof camera>>;
  let browser: any;
  let rtspPort = 0;

  before(async () => {
    cam = await camera(() => `rtsp://127.0.0.1:${rtspPort}/live/nothing`);
    s = await startServer([onvif, rtsp, admin], 'rtsp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\n  udpaddr: ""\n  rtcpaddr: ""\n' +
      `onvif:\n  discovertimeout: 500ms\n  probetargets: ["127.0.0.1:${cam.udpPort}"]\n`);
    rtspPort = s.port('rtsp', 'tcp');
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  });
  after(async () => { await browser?.close().catch(() => {}); cam?.close(); await s?.stop(); });

  it('discovered camera → wrong password shows the error → added → a profile added as a pull', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, bypassCSP: !!axePath });
    const errors: string[] = [];
    page.on('pageerror', (e: Error) => errors.push(e.message));
    await page.goto(`${s.http}/admin/#/onvif`);
    await page.waitForSelector('nav a[href="#/onvif"][aria-current=page]');
    assert.equal(await page.$('nav a[href="#/devices"]'), null, 'no Devices entry without gb28181');
    await page.click('#disc');
    await page.waitForSelector('#found button[data-use]', { timeout: 5000 });
    await page.click('#found button[data-use]');
    assert.equal(await page.inputValue('#oadd input[name=xaddr]'), `http://127.0.0.1:${cam.port}/onvif/device_service`);
    await page.fill('#oadd input[name=username]', USER);
    await page.fill('#oadd input[name=password]', 'wrong');
    await page.click('#oadd button[type=submit]');
    await page.waitForSelector('#omsg.bad', { timeout: 10_000 });
    assert.match(await page.textContent('#omsg'), /refused the credentials/);
    await page.fill('#oadd input[name=password]', PASS);
    await page.click('#oadd button[type=submit]');
    await page.waitForSelector('#odevs button[data-pull][data-profile="main"]', { timeout: 10_000 });
    await page.click('#odevs button[data-pull][data-profile="main"]');
    const id = `127.0.0.1_${cam.port}`;
    await page.waitForSelector(`#odevs a[href="#/stream/onvif/${id}"]`, { timeout: 10_000 });
    assert.match(await page.textContent('#omsg'), new RegExp(`pulling into onvif/${id}`));
    const pulls = (await (await fetch(`${s.http}/rtsp/api/list`)).json() as any).data.pulls as any[];
    // The camera's GetStreamUri answer, pulled by the rtsp plugin (the list shows it without the credentials).
    assert.ok(pulls.some((p) => p.streamPath === `onvif/${id}` && p.url === `rtsp://127.0.0.1:${rtspPort}/live/nothing`), JSON.stringify(pulls));
    await page.screenshot({ path: join(SHOTS, 'onvif-1280.png') });
    assert.deepEqual(await axe(page), [], 'axe-core: no serious or critical violations on the ONVIF page');
    await page.close();
    assert.deepEqual(errors, []);
  });
});
