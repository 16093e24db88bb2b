#!/usr/bin/env node
// N players in one process (one event loop), for the fan-out bench.
//
//   node bench/load/players.mjs --proto rtmp|flv|ws|rtsp --url URL --n 100 [--warmup 4] [--seconds 15]
//                               [--ramp 50] [--join-timeout 20] [--edge-ms 100] [--linger 0]
//
// Players connect in batches of --ramp per 20 ms. After the last one has joined (or timed out) the
// process waits --warmup seconds (at least 3, so every latency sample is from a frame received more
// than 3 s after its player joined), then measures for --seconds. It prints JSON lines on stdout:
//   {"event":"joined",...}  {"event":"window-start"}  {"event":"window-end"}  {"event":"result",...}
// so the runner can sample the server's /proc counters at exactly the window edges.
//
// Per player: first-frame time (connect start -> first video message), bytes in the window, and the
// latency of every video frame in the window = now - the SEI wall clock the publisher stamped into it.
// Latencies go into one shared histogram (no per-sample allocation).
//
// Time to live edge: from connect start to the first video frame whose SEI latency is below --edge-ms.
// A new player first gets the server's cached GOP (old frames, high latency), then live frames; the
// clock is read per frame only until the player has reached the edge. Both edges (live and display) are
// reported as p50 over the players that reached them and as p50All over all players, those that never
// did counting as never (null when fewer than half did).
//
// The runner's --slow player is not here: it is bench/load/slow_player.py, its own process (it needs
// socket options Node cannot set), driven by this process's window-start/window-end lines.
//
// --linger keeps every connection open that many seconds after the result line, so the runner can
// still read the server's view of the players (m7s's subscriber API) at the end of the window.

import { parseArgs } from 'node:util';
import { connect } from './conn.mjs';
import { FlvReader, HttpBody, splitHead, WsFrames } from './flv.mjs';
import { findSeiMicros, wallMicros } from './media.mjs';
import { rtmpSession } from './rtmp.mjs';
import { rtspPlay } from './rtsp.mjs';

const { values: a } = parseArgs({
  options: {
    proto: { type: 'string', default: 'rtmp' }, url: { type: 'string' }, n: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '4' }, seconds: { type: 'string', default: '15' },
    ramp: { type: 'string', default: '50' }, 'join-timeout': { type: 'string', default: '20' },
    'edge-ms': { type: 'string', default: '100' }, linger: { type: 'string', default: '0' },
  },
});
const N = Math.max(1, Number(a.n));
const WARMUP = Math.max(3, Number(a.warmup));
const SECONDS = Math.max(1, Number(a.seconds));
const RAMP = Math.max(1, Number(a.ramp));
const JOIN_TIMEOUT = Number(a['join-timeout']) * 1000;
const EDGE_US = Math.max(1, Number(a['edge-ms'])) * 1000;
const LINGER = Math.max(0, Number(a.linger));
const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');

// ---- latency histograms: 10 µs bins to 50 ms, then 1 ms bins to 60 s, then overflow
const FINE = 5000, COARSE = 60000;
class Hist {
  constructor() { this.h = new Uint32Array(FINE + COARSE + 1); this.samples = 0; this.max = 0; }
  record(us) {
    if (us < 0) us = 0;
    if (us > this.max) this.max = us;
    const b = us < FINE * 10 ? Math.floor(us / 10) : Math.min(FINE + Math.floor(us / 1000), FINE + COARSE);
    this.h[b]++; this.samples++;
  }
  quantileMs(q) {
    if (this.samples === 0) return null;
    const want = Math.ceil(q * this.samples);
    let acc = 0;
    for (let b = 0; b < this.h.length; b++) {
      acc += this.h[b];
      if (acc >= want) return b < FINE ? (b * 10 + 5) / 1000 : b - FINE + 0.5;
    }
    return this.max / 1000;
  }
}
/** Arrival latency: now - the SEI clock, for every video frame received. */
const arrival = new Hist();
/**
 * Display latency: when a player without a buffer of its own would show the frame - the SEI clock.
 * The model paces frames by their timestamps from the first one; a frame arriving after its time
 * stalls the clock (the player waits). It shows what the timestamps do to a viewer: a GOP sent at
 * once with its original times is shown a GOP age late for the whole session, a fast-forwarded one
 * (m7s subscribe.catchup) reaches the live edge.
 */
const display = new Hist();

// ---- players
let measuring = false;
const players = [];

class Player {
  constructor(i) {
    this.i = i; this.t0 = 0; this.joinedAt = 0; this.firstFrameMs = -1; this.liveEdgeMs = -1;
    this.bytes = 0; this.bytesAtStart = 0; this.bytesAtEnd = 0;
    this.videoFrames = 0; this.seiFrames = 0; this.error = null; this.closed = false; this.socket = null;
    this.dispBase = NaN; this.lastTs = -Infinity; this.displayEdgeMs = -1; this.rtmp = false;
  }
  /** Called for every video message/tag with its timestamp (ms) and the first bytes of its body. */
  video(prefix, len, ts) {
    this.videoFrames++;
    const now = performance.now();
    if (this.firstFrameMs < 0) this.firstFrameMs = now - this.t0;
    // display model (see `display`): wall time = ts + dispBase. Sequence headers are not frames.
    const b0 = prefix[0];
    if (len > 1 && ((b0 & 0x80) ? (b0 & 0x0f) === 0 : prefix[1] === 0)) return;
    if (ts < this.lastTs) ts = this.lastTs; // sequence headers and the like may repeat a time
    this.lastTs = ts;
    if (this.dispBase !== this.dispBase) this.dispBase = now - ts;
    let due = ts + this.dispBase;
    if (due < now) { this.dispBase += now - due; due = now; }
    const sent = findSeiMicros(prefix, len);
    if (sent < 0) return;
    this.seiFrames++;
    const sample = measuring && now - this.joinedAt > 3000;
    if (this.liveEdgeMs >= 0 && this.displayEdgeMs >= 0 && !sample) return; // read the clock only when needed
    const us = wallMicros() - sent;
    const dus = us + (due - now) * 1000;
    if (this.liveEdgeMs < 0 && us < EDGE_US) this.liveEdgeMs = now - this.t0;
    if (this.displayEdgeMs < 0 && dus < EDGE_US) this.displayEdgeMs = now - this.t0;
    if (sample) { arrival.record(us); display.record(dus); }
  }
  fail(e) { if (!this.error) this.error = String(e?.message ?? e); }
  /** Bytes received so far (RTMP: the socket's count, conn.mjs). */
  received() { return this.rtmp ? this.socket.bytesIn : this.bytes; }
}

const target = new URL(a.url);

function startRtmp(p) {
  return rtmpSession(a.url, 'play', {
    onMedia: (type, ts, prefix, len) => { if (type === 9) p.video(prefix, len, ts); },
    onError: (e) => { p.fail(e); p.closed = true; },
    timeoutMs: JOIN_TIMEOUT,
  }).then(({ socket }) => {
    p.socket = socket;
    p.rtmp = true; // bytes: socket.bytesIn (conn.mjs), read when needed
  });
}

/** RTSP over TCP interleaved (bench/load/rtsp.mjs): one video call per RTP frame, SEI from its packets. */
function startRtsp(p) {
  return rtspPlay(a.url, {
    onVideo: (prefix, len, ts) => p.video(prefix, len, ts),
    onError: (e) => { p.fail(e); p.closed = true; },
    timeoutMs: JOIN_TIMEOUT,
  }).then(({ socket }) => {
    p.socket = socket;
    socket.prependListener('data', (d) => { p.bytes += d.length; });
  });
}

/** HTTP-FLV or WS-FLV over a raw socket: request, response head, then the body decoders. */
function startHttp(p, ws) {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: target.hostname, port: Number(target.port || 80) });
    p.socket = socket;
    socket.setNoDelay(true);
    const timer = setTimeout(() => { socket.destroy(); reject(new Error('join timeout')); }, JOIN_TIMEOUT);
    const flv = new FlvReader((type, ts, prefix, len) => { if (type === 9) p.video(prefix, len, ts); });
    const feedFlv = (b, s, e) => flv.push(b, s, e);
    let head = Buffer.alloc(0), body = null;
    socket.on('connect', () => {
      const path = target.pathname + target.search;
      const extra = ws
        ? 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: bTdzLWJlbmNoLWtleS0xMg==\r\n'
        : 'Connection: keep-alive\r\n';
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${target.host}\r\nUser-Agent: m7s-bench\r\n${extra}\r\n`);
    });
    socket.ondata = (d) => {
      p.bytes += d.length;
      try {
        if (body) { body.push(d, 0, d.length); return; }
        head = Buffer.concat([head, d]); // a copy: d is the shared read buffer (conn.mjs)
        const split = splitHead(head);
        if (!split) { if (head.length > 16384) throw new Error('response head too large'); return; }
        const [text, start] = split;
        const status = Number(text.split(' ', 2)[1]);
        if (ws ? status !== 101 : status !== 200) throw new Error(`HTTP ${status}: ${text.split('\r\n', 1)[0]}`);
        if (ws) body = new WsFrames(feedFlv, (f) => socket.write(f));
        else body = new HttpBody(/transfer-encoding:\s*chunked/i.test(text), feedFlv);
        clearTimeout(timer);
        resolve();
        if (start < head.length) body.push(head, start, head.length);
        head = null;
      } catch (e) { p.fail(e); clearTimeout(timer); socket.destroy(); reject(e); }
    };
    socket.on('error', (e) => { p.fail(e); clearTimeout(timer); reject(e); });
    socket.on('close', () => { p.closed = true; clearTimeout(timer); reject(new Error('closed')); });
  });
}

function start(p) {
  p.t0 = performance.now();
  const go = a.proto === 'rtmp' ? startRtmp(p) : a.proto === 'rtsp' ? startRtsp(p) : a.proto === 'flv' ? startHttp(p, false) : a.proto === 'ws' ? startHttp(p, true) : null;
  if (!go) throw new Error(`unknown --proto ${a.proto}`);
  return go.then(() => { p.joinedAt = performance.now(); }, (e) => { p.fail(e); p.closed = true; });
}

const median = (xs) => { if (!xs.length) return null; const s = [...xs].sort((x, y) => x - y); return s[Math.floor((s.length - 1) / 2)]; };
/**
 * The median over all `n` players of a time some of them never reached (they count as never): the
 * same rank as median() over n values, or null when fewer than half reached it. The median over only
 * those who reached it says nothing when few did (9 of 1000 players reaching the display edge at once
 * gave a "p50" of 80 ms while 991 never got there).
 */
const medianOfAll = (xs, n) => { const s = [...xs].sort((x, y) => x - y); const k = Math.floor((n - 1) / 2); return k < s.length ? s[k] : null; };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const cpu0 = process.cpuUsage();
  const joins = [];
  for (let i = 0; i < N; i++) {
    const p = new Player(i);
    players.push(p);
    joins.push(start(p));
    if ((i + 1) % RAMP === 0) await sleep(20);
  }
  await Promise.all(joins);
  const ok = players.filter((p) => !p.error).length;
  emit({ event: 'joined', ok, failed: N - ok, firstError: players.find((p) => p.error)?.error ?? null });
  await sleep(WARMUP * 1000);

  // ---- the window
  for (const p of players) p.bytesAtStart = p.received();
  const cpuA = process.cpuUsage(), tA = performance.now();
  measuring = true;
  emit({ event: 'window-start' });
  await sleep(SECONDS * 1000);
  measuring = false;
  const cpuB = process.cpuUsage(), tB = performance.now();
  for (const p of players) p.bytesAtEnd = p.received();
  emit({ event: 'window-end' });

  const secs = (tB - tA) / 1000;
  const kbps = players.map((p) => ((p.bytesAtEnd - p.bytesAtStart) * 8) / 1000 / secs);
  const ff = players.filter((p) => p.firstFrameMs >= 0).map((p) => p.firstFrameMs);
  const edge = players.filter((p) => p.liveEdgeMs >= 0).map((p) => p.liveEdgeMs);
  const dEdge = players.filter((p) => p.displayEdgeMs >= 0).map((p) => p.displayEdgeMs);
  const used = (cpuB.user - cpuA.user + cpuB.system - cpuA.system) / 1000 / (tB - tA);
  emit({
    event: 'result',
    proto: a.proto, n: N, windowSeconds: secs,
    players: { ok: players.filter((p) => !p.error && !p.closed).length, failed: players.filter((p) => p.error).length,
      closed: players.filter((p) => p.closed).length, noVideo: players.filter((p) => p.videoFrames === 0).length,
      noSei: players.filter((p) => p.videoFrames > 0 && p.seiFrames === 0).length,
      firstError: players.find((p) => p.error)?.error ?? null },
    kbpsMedian: median(kbps), kbpsMin: kbps.length ? Math.min(...kbps) : null, kbpsTotal: kbps.reduce((x, y) => x + y, 0),
    firstFrameMs: { p50: median(ff), max: ff.length ? Math.max(...ff) : null },
    liveEdgeMs: { p50: median(edge), p50All: medianOfAll(edge, N), max: edge.length ? Math.max(...edge) : null, reached: edge.length, thresholdMs: EDGE_US / 1000 },
    latencyMs: { samples: arrival.samples, p50: arrival.quantileMs(0.5), p99: arrival.quantileMs(0.99), max: arrival.max / 1000 },
    displayMs: { samples: display.samples, p50: display.quantileMs(0.5), p99: display.quantileMs(0.99), max: display.max / 1000,
      edge: { p50: median(dEdge), p50All: medianOfAll(dEdge, N), max: dEdge.length ? Math.max(...dEdge) : null, reached: dEdge.length } },
    loadCpu: { pct: used * 100, userPct: ((cpuB.user - cpuA.user) / 1000 / (tB - tA)) * 100,
      totalSinceStartSec: (process.cpuUsage(cpu0).user + process.cpuUsage(cpu0).system) / 1e6 },
  });
  await sleep(LINGER * 1000);
  for (const p of players) p.socket?.destroy();
  setTimeout(() => process.exit(0), 200).unref();
}

process.on('SIGTERM', () => process.exit(0));
main().catch((e) => { emit({ event: 'fatal', error: String(e?.stack ?? e) }); process.exit(1); });
