// Where the time between the WHEP answer and Chromium's first picture goes (issue 12: "first picture
// ≤ 500 ms after the answer"). ffmpeg publishes RTMP H.264 + AAC (2 s GOP); headless Chromium plays it
// by WHEP RUNS times through the plugin's test page. Timestamps from both sides on one clock (epoch ms,
// performance.timeOrigin + now()): the page's answer applied, its ICE and DTLS "connected", the server
// peer's ICE and connection state changes, the first packet the server sends, and the first frame's
// requestVideoFrameCallback metadata (receiveTime = its last packet arrived, presentationTime).
//
//   node_modules/.bin/esbuild bench/webrtc-first-picture.ts --bundle --platform=node --format=esm \
//     --packages=external --outfile=.build/webrtc-first-picture.mjs && node .build/webrtc-first-picture.mjs [runs]

import rtmp from '../plugins/rtmp/index.ts';
import webrtc from '../plugins/webrtc/index.ts';
import { ffmpegPath, sleep, start, startServer, testSourceArgs, until } from '../test/helpers/media.ts';

const RUNS = Number(process.argv[2] ?? 5);
const now = () => performance.timeOrigin + performance.now();
const S = await startServer([rtmp, webrtc], 'rtmp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\nwebrtc:\n  port: ""\n  iceaddresses: ["127.0.0.1"]\n');
const ff = start(ffmpegPath, [...testSourceArgs({ seconds: 600, gop: 50 }), '-f', 'flv', `rtmp://127.0.0.1:${S.port('rtmp', 'tcp')}/live/rtmp`]);
await until(() => S.server.engine.getStream('live/rtmp')?.tracks.some((t) => t.kind === 'video' && t.frames > 60), 15_000, 'RTMP publisher');
const { chromium } = await import('playwright-core');
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium', headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required',
    '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns'],
});

// Server side: watch each new WHEP session's werift peer from the moment its answer is sent.
const seen = new Set<number>();
const server: Record<string, number> = {};
let current: any;
const watch = setInterval(() => {
  for (const h of S.server.sessions.list('webrtc')) {
    if (h.kind !== 'whep' || seen.has(h.id)) continue;
    seen.add(h.id);
    const s = h.ref as any;
    current = s;
    const pc = s.peer.pc;
    server.registered = now();
    pc.iceConnectionStateChange.subscribe((st: string) => { server['ice ' + st] ??= now(); });
    pc.connectionStateChange.subscribe((st: string) => { server['pc ' + st] ??= now(); });
    for (const dt of pc.dtlsTransports) {
      dt.onStateChange.subscribe((st: string) => { server['dtls ' + st] ??= now(); });
      // DTLS records both ways, named by content type (22 handshake: its message type; 20 CCS; 23 data).
      const what = (b: Uint8Array) => b[0] === 22 ? (b[3] === 0 && b[4] === 0 ? `hs${b[13]}` : 'hs(enc)') : b[0] === 20 ? 'ccs' : `ct${b[0]}`;
      let n = 0, o = 0;
      dt.iceTransport.connection.onData.subscribe((b: Uint8Array) => {
        if (b[0]! >= 20 && b[0]! <= 63 && n < 12) { n++; server[`dtls in #${n} ${what(b)}${dt.dtls ? '' : ' (no DTLS yet)'}`] ??= now(); }
      });
      const conn = dt.iceTransport.connection;
      const send = conn.send.bind(conn);
      conn.send = (b: Uint8Array) => {
        if (b[0]! >= 20 && b[0]! <= 63 && o < 12) { o++; server[`dtls out #${o} ${what(b)}`] ??= now(); }
        return send(b);
      };
    }
    for (const m of s.peer.media) {
      const send = m.send;
      m.send = (p: Uint8Array) => { server[`first ${m.kind} sent`] ??= now(); return send(p); };
    }
  }
}, 1);

const rows: Record<string, number>[] = [];
for (let run = 0; run < RUNS; run++) {
  for (const k of Object.keys(server)) delete server[k];
  const p = await browser.newPage();
  await p.goto(`${S.http}/webrtc/test/play`);
  await p.evaluate(() => {
    const w = window as any;
    const t = () => performance.timeOrigin + performance.now();
    w.marks = {};
    const Orig = w.RTCPeerConnection;
    w.RTCPeerConnection = function (cfg: any) {
      const pc = new Orig(cfg);
      pc.addEventListener('iceconnectionstatechange', () => { w.marks['ice ' + pc.iceConnectionState] ??= t(); });
      pc.addEventListener('connectionstatechange', () => { w.marks['pc ' + pc.connectionState] ??= t(); });
      pc.addEventListener('track', (e: any) => {
        w.marks['track ' + e.track.kind] ??= t();
      });
      const srd = pc.setRemoteDescription.bind(pc);
      pc.setRemoteDescription = async (d: any) => { w.marks['answer received'] = t(); const r = await srd(d); w.marks['answer applied'] = t(); return r; };
      return pc;
    };
    const v = (globalThis as any).document.querySelector('video');
    (v as any).requestVideoFrameCallback((_n: number, md: any) => {
      w.marks['frame presented'] = performance.timeOrigin + md.presentationTime;
      if (md.receiveTime) w.marks['frame received'] = performance.timeOrigin + md.receiveTime;
      w.marks['frame callback'] = t();
    });
  });
  await p.evaluate((o: any) => (window as any).m7sWhep(o), { base: S.http, stream: 'live/rtmp' });
  await until(async () => (await p.evaluate(() => (window as any).marks['frame callback'])) > 0, 10_000, 'first frame');
  const b = await p.evaluate(() => (window as any).marks) as Record<string, number>;
  const st = await p.evaluate(() => (window as any).m7sStats());
  await p.evaluate(() => (window as any).m7sStop('sub'));
  await p.close();
  const t0 = b['answer applied']!;
  const row: Record<string, number> = {};
  for (const [k, v] of Object.entries(b)) row['page ' + k] = v - t0;
  for (const [k, v] of Object.entries(server)) row['server ' + k] = v - t0;
  row['page firstFrameMs'] = st.firstFrameMs;
  rows.push(row);
  console.log(`run ${run + 1}: ` + Object.entries(row).sort((x, y) => x[1] - y[1]).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ') +
    ` | page nacks ${st.video?.nack} plis ${st.video?.pli} lost ${st.video?.lost}; server resent ${current?.sink?.retransmitted} missed ${current?.sink?.nackMisses}`);
  await sleep(500);
}
const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))];
const med = (xs: number[]) => { const s = xs.slice().sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; };
console.log('\nmedian ms after the page applied the answer:');
for (const k of keys.sort((x, y) => med(rows.map((r) => r[x] ?? NaN)) - med(rows.map((r) => r[y] ?? NaN)))) {
  const xs = rows.map((r) => r[k]).filter((x): x is number => x !== undefined);
  console.log(`  ${k.padEnd(32)} ${med(xs).toFixed(0).padStart(6)}   (${xs.map((x) => x.toFixed(0)).join(' ')})`);
}
clearInterval(watch);
await browser.close();
await ff.kill();
await S.stop();
process.exit(0);
