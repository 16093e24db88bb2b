// Run inside a fresh network namespace by test/onvif.test.ts (unshare -n; lo up, 224.0.0.0/4 → lo): a
// server with the onvif plugin (periodic discovery every 1 s) and a simulated camera that joined
// 239.255.255.250:3702. Prints one JSON line: {probe, periodic, profiles}.
import onvif from '../../plugins/onvif/index.ts';
import { startServer, sleep } from './media.ts';
import { camera, USER, PASS } from './onvif-camera.ts';

const cam = await camera(() => 'rtsp://127.0.0.1:1/none', { multicast: true });
const s = await startServer([onvif], 'onvif:\n  discoverinterval: 1s\n  discovertimeout: 500ms\n');
const post = async (p: string, body: unknown) => (await fetch(`${s.http}/onvif/api/${p}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }).then((r) => r.json())) as any;
try {
  await sleep(1800);
  const periodic = (await fetch(`${s.http}/onvif/api/discovered`).then((r) => r.json()) as any).data;
  const probe = (await post('discover', { targets: [] })).data;
  const added = await post('devices', { xaddr: probe[0]?.xaddrs?.[0], username: USER, password: PASS });
  console.log(JSON.stringify({ probe, periodic, profiles: added.data?.profiles?.map((p: any) => p.profile) ?? added }));
} finally {
  cam.close();
  await s.stop();
}
Deno.exit(0);
