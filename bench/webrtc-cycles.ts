// WHIP/WHEP session churn soak (issue 12 "every session is freed ... RSS flat"): one live H.264 WHIP
// stream (node-datachannel), then CYCLES times: a WHIP publish (another path) and a WHEP play of the live
// stream at once, both DELETEd right after the answer. Every EVERY cycles, after a full GC: RSS, V8 heap
// used, external, array buffers, open fds, werift-side sessions. Prints one row per sample and the RSS
// slope over the second half (KiB per cycle), which is ~0 when memory plateaus and > 0 on a leak.
//
//   node_modules/.bin/esbuild bench/webrtc-cycles.ts --bundle --platform=node --format=esm \
//     --packages=external --outfile=.build/webrtc-cycles.mjs && node .build/webrtc-cycles.mjs [cycles] [every] [mode]
//   bun bench/webrtc-cycles.ts [cycles] [every] [mode]
//   deno run -A bench/webrtc-cycles.ts [cycles] [every] [mode]
//
// mode: both (default) | push (WHIP only) | play (WHEP only)

import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import webrtc from '../plugins/webrtc/index.ts';
import { ffmpegPath, run, sleep, startServer, until } from '../test/helpers/media.ts';
import { accessUnits, cleanupDataChannel, offerText, parameterSets, whipPublish } from '../test/helpers/webrtc-client.ts';

const args = (globalThis as any).Deno ? (globalThis as any).Deno.args : process.argv.slice(2);
const [nArg = '1500', everyArg = '100', mode = 'both'] = args as string[];
const CYCLES = Number(nArg), EVERY = Number(everyArg);

function forceGc(): void {
  const B = (globalThis as any).Bun;
  if (B?.gc) { B.gc(true); return; }
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc(); gc();
}
const fds = (): number => { try { return readdirSync('/proc/self/fd').length; } catch { return -1; } };
const MiB = (n: number) => (n / 1048576).toFixed(1);

const dir = mkdtempSync(join(tmpdir(), 'm7s-webrtc-cycles-'));
const r = await run(ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25:duration=2',
  '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-profile:v', 'baseline', '-threads', '1', '-g', '25', '-bf', '0',
  '-pix_fmt', 'yuv420p', '-f', 'h264', join(dir, 'src.h264')]);
if (r.code !== 0) throw new Error(r.stderr);
const bytes = new Uint8Array(readFileSync(join(dir, 'src.h264')));
const S = await startServer([webrtc], 'webrtc:\n  subscribe:\n    waittimeout: 1s\n  port: ""\n  iceaddresses: ["127.0.0.1"]\n  pli: 1s\n');
const live = await whipPublish(S.http, 'live/cycles', 'h264', accessUnits('h264', bytes), parameterSets('h264', bytes));
await until(() => S.server.engine.getStream('live/cycles')?.tracks.some((t) => t.frames > 5), 15_000, 'live stream');
const pubOffer = await offerText('h264', 'SendOnly');
const playOffer = await offerText('h264', 'RecvOnly');
const post = async (path: string, body: string) => {
  const res = await fetch(`${S.http}/webrtc/${path}`, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body });
  const text = await res.text();
  if (res.status !== 201) throw new Error(`${path}: ${res.status} ${text}`);
  return res.headers.get('location')!;
};
const del = async (loc: string) => { const d = await fetch(S.http + loc, { method: 'DELETE' }); await d.text(); };
const cycle = async (i: number) => {
  const locs = await Promise.all([
    ...(mode !== 'play' ? [post(`push/live/cycle${i}`, pubOffer)] : []),
    ...(mode !== 'push' ? [post('play/live/cycles', playOffer)] : []),
  ]);
  await Promise.all(locs.map(del));
};

const rows: { i: number; rss: number }[] = [];
const sample = async (i: number, ms: number) => {
  await sleep(200);
  forceGc();
  const m = process.memoryUsage();
  const n = S.server.sessions.list('webrtc').length;
  rows.push({ i, rss: m.rss });
  console.log(`${String(i).padStart(5)}  rss ${MiB(m.rss).padStart(6)}  heapUsed ${MiB(m.heapUsed).padStart(6)}  heapTotal ${MiB(m.heapTotal).padStart(6)}  external ${MiB(m.external).padStart(6)}  arrayBuffers ${MiB(m.arrayBuffers).padStart(6)}  fds ${fds()}  sessions ${n}  ${ms.toFixed(1)} ms/cycle`);
};
const rt = (globalThis as any).Bun ? 'bun' : (globalThis as any).Deno ? 'deno' : 'node';
console.log(`# ${rt}: ${CYCLES} cycles (${mode}), sample every ${EVERY}`);
await sample(0, 0);
let t = Date.now();
for (let i = 1; i <= CYCLES; i++) {
  await cycle(i);
  if (i % EVERY === 0) {
    await sample(i, (Date.now() - t) / EVERY);
    // M7S_HEAPSNAP=dir (Node): heap snapshots at a third and at the end, to diff by constructor.
    if (process.env.M7S_HEAPSNAP && (i === Math.round(CYCLES / 3 / EVERY) * EVERY || i === CYCLES)) {
      const { writeHeapSnapshot } = await import('node:v8');
      console.log('# heap snapshot ' + writeHeapSnapshot(join(process.env.M7S_HEAPSNAP, `cycles-${i}.heapsnapshot`)));
    }
    t = Date.now();
  }
}
// Least-squares slope of RSS over the second half of the samples.
const half = rows.filter((x) => x.i >= CYCLES / 2);
const mx = half.reduce((a, x) => a + x.i, 0) / half.length, my = half.reduce((a, x) => a + x.rss, 0) / half.length;
const slope = half.reduce((a, x) => a + (x.i - mx) * (x.rss - my), 0) / half.reduce((a, x) => a + (x.i - mx) ** 2, 0);
console.log(`# RSS slope over cycles ${half[0]?.i}..${CYCLES}: ${(slope / 1024).toFixed(1)} KiB per cycle; RSS ${MiB(rows[0]!.rss)} → ${MiB(rows.at(-1)!.rss)} MiB`);
await live.close();
await S.stop();
rmSync(dir, { recursive: true, force: true });
// Bun 1.4.5 crashes (bus error) when libdatachannel's threads are torn down at exit: leave them to the exit.
if (!(globalThis as any).Bun) cleanupDataChannel();
process.exit(0);
