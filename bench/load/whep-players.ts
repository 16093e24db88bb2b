// N WHEP players in one process on node-datachannel (libdatachannel), for bench/webrtc.mjs. Bundled by
// the runner with esbuild (it imports our RTP parser from src/).
//
//   node bench/.build/whep-players.mjs --url http://127.0.0.1:18085/webrtc/play/live/bench --n 100
//                                      [--warmup 4] [--seconds 10] [--ramp 10] [--join-timeout 60]
//
// Prints the same JSON lines as bench/load/players.mjs: joined, window-start, window-end, result
// (kb/s per player, first-packet time, latency p50/p99 = arrival − the SEI wall clock the bench
// publisher stamped into each frame, read from single-NAL and STAP-A packets).
import nodeDataChannel from 'node-datachannel';
import { parseArgs } from 'node:util';
import { parseRtp } from '../../src/format/rtp/packet.ts';
// @ts-ignore plain JS module of the bench
import { SEI_PAYLOAD_SIZE, SEI_UUID, wallMicros } from './media.mjs';

const { values: a } = parseArgs({
  options: {
    url: { type: 'string' }, n: { type: 'string', default: '10' }, warmup: { type: 'string', default: '4' },
    seconds: { type: 'string', default: '10' }, ramp: { type: 'string', default: '10' }, 'join-timeout': { type: 'string', default: '60' },
  },
});
const N = Number(a.n), WARMUP = Math.max(3, Number(a.warmup)), SECONDS = Number(a.seconds), RAMP = Number(a.ramp);
const emit = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Player { track?: nodeDataChannel.Track; location?: string; pc?: nodeDataChannel.PeerConnection; bytes: number; start: number; firstMs: number; error?: string; seis: number; a0: number; a1: number }
const players: Player[] = [];
const lat: number[] = [];
let measuring = false;

function seiMicros(nal: Uint8Array): number {
  if ((nal[0]! & 0x1f) !== 6 || nal[1] !== 5 || nal[2] !== SEI_PAYLOAD_SIZE || nal.length < 27) return -1;
  for (let i = 0; i < 16; i++) if (nal[3 + i] !== SEI_UUID[i]) return -1;
  let v = 0;
  for (let i = 0; i < 8; i++) v = v * 128 + (nal[19 + i]! & 0x7f);
  return v;
}

function onPacket(p: Player, b: Uint8Array): void {
  if (b.length < 12 || (b[1]! >= 192 && b[1]! <= 223)) return; // RTCP
  p.bytes += b.length;
  if (p.firstMs < 0) p.firstMs = Date.now() - p.start;
  if (!measuring) return;
  let pl: Uint8Array;
  try { pl = parseRtp(b).payload; } catch { return; }
  const t = pl[0]! & 0x1f;
  let us = -1;
  if (t === 6) us = seiMicros(pl);
  else if (t === 24) {
    for (let o = 1; o + 2 < pl.length && us < 0;) {
      const n = (pl[o]! << 8) | pl[o + 1]!;
      us = seiMicros(pl.subarray(o + 2, o + 2 + n));
      o += 2 + n;
    }
  }
  if (us > 0) { p.seis++; lat.push((wallMicros() - us) / 1000); }
}

async function join(p: Player): Promise<void> {
  p.start = Date.now();
  const pc = new nodeDataChannel.PeerConnection('bench', { iceServers: [], bindAddress: '127.0.0.1' });
  p.pc = pc;
  const v = new nodeDataChannel.Video('0', 'RecvOnly');
  v.addH264Codec(96);
  const track = pc.addTrack(v);
  p.track = track; // kept: a collected Track object stops delivering messages
  track.onMessage((m) => onPacket(p, new Uint8Array(m as Uint8Array)));
  pc.setLocalDescription();
  const t0 = Date.now();
  while (pc.gatheringState() !== 'complete') {
    if (Date.now() - t0 > 10_000) throw new Error('gathering did not complete');
    await sleep(10);
  }
  const res = await fetch(a.url!, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: pc.localDescription()!.sdp });
  const text = await res.text();
  if (res.status !== 201) throw new Error(`${res.status} ${text.slice(0, 200)}`);
  p.location = new URL(res.headers.get('location') ?? '', a.url).href;
  pc.setRemoteDescription(text, 'answer' as nodeDataChannel.DescriptionType);
  const deadline = Date.now() + Number(a['join-timeout']) * 1000;
  while (p.firstMs < 0) {
    if (Date.now() > deadline) throw new Error(`no media (state ${pc.state()})`);
    await sleep(50);
  }
}

const median = (x: number[]) => { if (!x.length) return null; const s = [...x].sort((m, n) => m - n); return s[Math.floor(s.length / 2)]!; };
const quant = (x: number[], q: number) => { if (!x.length) return null; const s = [...x].sort((m, n) => m - n); return s[Math.min(s.length - 1, Math.floor(q * s.length))]!; };

async function main() {
  const joins: Promise<void>[] = [];
  for (let i = 0; i < N; i++) {
    const p: Player = { bytes: 0, start: 0, firstMs: -1, seis: 0, a0: 0, a1: 0 };
    players.push(p);
    joins.push(join(p).catch((e) => { p.error = String(e?.message ?? e); }));
    if ((i + 1) % RAMP === 0) await sleep(100);
  }
  await Promise.all(joins);
  const ok = players.filter((p) => !p.error).length;
  emit({ event: 'joined', ok, failed: N - ok, firstError: players.find((p) => p.error)?.error ?? null });
  await sleep(WARMUP * 1000);
  for (const p of players) p.a0 = p.bytes;
  const c0 = process.cpuUsage(), t0 = performance.now();
  measuring = true;
  emit({ event: 'window-start' });
  await sleep(SECONDS * 1000);
  measuring = false;
  const c1 = process.cpuUsage(), t1 = performance.now();
  for (const p of players) p.a1 = p.bytes;
  emit({ event: 'window-end' });
  const secs = (t1 - t0) / 1000;
  const kbps = players.filter((p) => !p.error).map((p) => ((p.a1 - p.a0) * 8) / 1000 / secs);
  emit({
    event: 'result', proto: 'whep', n: N, windowSeconds: secs,
    players: { ok, failed: N - ok, noVideo: players.filter((p) => !p.error && p.a1 === p.a0).length, noSei: players.filter((p) => !p.error && !p.seis).length,
      firstError: players.find((p) => p.error)?.error ?? null },
    kbpsMedian: median(kbps), kbpsMin: kbps.length ? Math.min(...kbps) : null,
    firstPacketMs: { p50: median(players.filter((p) => p.firstMs >= 0).map((p) => p.firstMs)) },
    latencyMs: { samples: lat.length, p50: quant(lat, 0.5), p99: quant(lat, 0.99) },
    loadCpu: { pct: ((c1.user - c0.user + c1.system - c0.system) / 1000 / (t1 - t0)) * 100 },
  });
  // End the sessions (DELETE) so the next row starts from a server without them.
  await Promise.all(players.map((p) => p.location ? fetch(p.location, { method: 'DELETE' }).then((r) => r.body?.cancel()).catch(() => {}) : undefined));
  for (const p of players) { try { p.pc?.close(); } catch { /* closed */ } }
  await sleep(300);
  process.exit(0);
}

process.on('SIGTERM', () => process.exit(0));
main().catch((e) => { emit({ event: 'fatal', error: String(e?.stack ?? e) }); process.exit(1); });
