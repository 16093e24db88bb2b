// Run inside a fresh network namespace (unshare -n, lo up) by test/webrtc-media.test.ts, bundled for
// Node first: an m7s with the webrtc plugin, a WHIP publisher (libdatachannel) and a werift WHEP viewer
// that sends NACKs, all on 127.0.0.1 of the namespace. Once media flows, iptables drops 5 % of the UDP
// datagrams the server sends from the viewer's ICE port (the `statistic` match: no netem needed), for
// as long as it takes to drop `--losses` of them; then the rule goes and the viewer has a moment for
// its last NACKs. Prints one JSON line: datagrams dropped by the rule, the packets the viewer never got
// in that span, and the server's NACK and resend counts.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import webrtc from '../../plugins/webrtc/index.ts';
import { ffmpegPath, run, sleep, startServer, until } from './media.ts';
import { accessUnits, cleanupDataChannel, parameterSets, weriftViewer, whipPublish } from './webrtc-client.ts';

const LOSSES = Number(process.argv[2] ?? 40);
/** webrtc.nackhistory (0 turns NACK answers off: how the test was shown to fail). */
const HISTORY = Number(process.argv[3] ?? 1024);
const iptables = (...args: string[]) => {
  const r = spawnSync('iptables', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`iptables ${args.join(' ')}: ${r.stderr || r.error}`);
  return r.stdout;
};
const droppedBy = (port: number) => {
  const line = iptables('-L', 'INPUT', '-v', '-n', '-x').split('\n').find((l) => l.includes('DROP') && l.includes(`spt:${port}`));
  return line ? Number(line.trim().split(/\s+/)[0]) : 0;
};

const dir = mkdtempSync(join(tmpdir(), 'm7s-webrtc-netns-'));
const out = join(dir, 'src.h264');
const r = await run(ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=25:duration=4',
  '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-profile:v', 'baseline', '-threads', '1', '-x264-params', 'slices=1',
  '-b:v', '800k', '-g', '25', '-bf', '0', '-pix_fmt', 'yuv420p', '-f', 'h264', out]);
if (r.code !== 0) throw new Error(r.stderr);
const bytes = new Uint8Array(readFileSync(out));
const S = await startServer([webrtc], `webrtc:\n  port: "udp:0"\n  iceaddresses: ["127.0.0.1"]\n  pli: 1s\n  nackhistory: ${HISTORY}\n`);
const path = 'live/netns';
const pub = await whipPublish(S.http, path, 'h264', accessUnits('h264', bytes), parameterSets('h264', bytes));
let code = 0;
let viewer: Awaited<ReturnType<typeof weriftViewer>> | undefined;
try {
  if (pub.status !== 201) throw new Error(`WHIP ${pub.status} ${pub.text}`);
  await until(() => S.server.engine.getStream(path)?.tracks.some((t) => t.frames > 10), 15_000, 'WHIP frames');
  viewer = await weriftViewer(S.http, path, async (port) => port);
  await until(() => viewer!.packets() > 20, 15_000, `media at the viewer (state ${viewer!.state()})`);
  const port = viewer.serverPort;
  const from = viewer.highest() + 1;
  iptables('-A', 'INPUT', '-p', 'udp', '--sport', String(port), '-m', 'statistic', '--mode', 'random', '--probability', '0.05', '-j', 'DROP');
  await until(() => droppedBy(port) >= LOSSES, 60_000, `${LOSSES} datagrams dropped (${droppedBy(port)} so far)`);
  const dropped = droppedBy(port);
  const to = viewer.highest();
  iptables('-D', 'INPUT', '-p', 'udp', '--sport', String(port), '-m', 'statistic', '--mode', 'random', '--probability', '0.05', '-j', 'DROP');
  await sleep(1500); // the NACKs of the last losses
  let missing = 0;
  for (let s = from; s <= to; s++) if (!viewer.receivedExt.has(s)) missing++;
  const info = ((await (await fetch(`${S.http}/webrtc/api/list`)).json()) as any).data.list.find((x: any) => x.kind === 'whep' && x.streamPath === path);
  console.log(JSON.stringify({ dropped, packets: to - from + 1, missing, nacks: info?.peer?.nacks ?? 0, retransmitted: info?.retransmitted ?? 0, nackMisses: info?.nackMisses ?? 0 }));
} catch (err) {
  console.error((err as Error)?.stack ?? err);
  code = 1;
} finally {
  await viewer?.close();
  await pub.close();
  await S.stop();
  rmSync(dir, { recursive: true, force: true });
  cleanupDataChannel();
}
process.exit(code);
