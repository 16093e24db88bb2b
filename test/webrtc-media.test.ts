// WHEP media path: the RTP packets of a frame are built once and shared by every viewer (counted), and
// viewers' NACKs are answered from the per-stream packet history through a lossy path (a seeded userspace
// UDP relay dropping 5 % of the server's media datagrams; netem is not available on every kernel).
// Publisher: node-datachannel (libdatachannel) by WHIP. Viewers: node-datachannel by WHEP, and werift as
// the lossy viewer (its receiver sends generic NACKs; libdatachannel's does not). Every candidate is on
// 127.0.0.1.
//
// Runtime-independent interop (the server logic is the same on every runtime; webrtc.test.ts covers the
// runtimes): Node pass only.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { createSocket, type Socket } from 'node:dgram';
import { join } from 'node:path';
import webrtc from '../plugins/webrtc/index.ts';
import { trackRtp } from '../plugins/rtsp/packets.ts';
import { ffmpegPath, run, sleep, startServer, until, type TestServer } from './helpers/media.ts';
import { fuzz } from './helpers/fuzz.ts';
import { FormatError } from '../src/format/bytes.ts';
import { parseRtp, RtpWriter, VpxDepacketizer, VpxPacketizer, av1Obus, type VpxCodec } from '../src/format/rtp/index.ts';
import { accessUnits, cleanupDataChannel, parameterSets, weriftViewer, whepPlay, whipPublish } from './helpers/webrtc-client.ts';

const onNode = (process.env.M7S_TEST_RUNTIME ?? 'node') === 'node' && !(globalThis as any).Bun && !(globalThis as any).Deno;
const skip = onNode ? false : 'runtime-independent interop: Node pass only';

const CONFIG = 'webrtc:\n  port: "udp:0"\n  iceaddresses: ["127.0.0.1"]\n  pli: 1s\n  nackhistory: 1024\n';

/** Seeded PRNG (mulberry32): a failing run repeats. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) >>> 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A UDP relay between one WebRTC client and the server's ICE port. Datagrams from the server that are
 * SRTP media (RTP version 2, not an RTCP payload type) are dropped with probability `loss`; STUN, DTLS
 * and RTCP pass. The SRTP header is in the clear, so the relay knows which sequence numbers it dropped
 * the first time they came by.
 */
class LossyRelay {
  private down!: Socket; // the client talks to this one
  private up!: Socket; // this one talks to the server
  private client?: { address: string; port: number };
  private readonly rand: () => number;
  private readonly seen = new Set<number>();
  readonly droppedFirst = new Set<number>();
  dropped = 0;
  forwarded = 0;
  port = 0;

  constructor(private readonly server: number, private readonly loss: number, seed: number) { this.rand = prng(seed); }

  async start(): Promise<void> {
    this.down = createSocket('udp4');
    this.up = createSocket('udp4');
    await new Promise<void>((r) => this.down.bind(0, '127.0.0.1', r));
    await new Promise<void>((r) => this.up.bind(0, '127.0.0.1', r));
    this.port = this.down.address().port;
    this.down.on('message', (b, from) => {
      this.client = { address: from.address, port: from.port };
      this.up.send(b, this.server, '127.0.0.1');
    });
    this.up.on('message', (b) => {
      if (!this.client) return;
      const media = b.length >= 12 && b[0]! >> 6 === 2 && !(b[1]! >= 192 && b[1]! <= 223);
      if (media) {
        const seq = (b[2]! << 8) | b[3]!;
        const first = !this.seen.has(seq);
        this.seen.add(seq);
        if (this.rand() < this.loss) {
          this.dropped++;
          if (first) this.droppedFirst.add(seq);
          return;
        }
      }
      this.forwarded++;
      this.down.send(b, this.client.port, this.client.address);
    });
  }

  stop(): void {
    try { this.down.close(); } catch { /* closed */ }
    try { this.up.close(); } catch { /* closed */ }
  }
}

describe('webrtc: WHEP media path (packetize once, NACK from the shared history)', { skip }, () => {
  let S: TestServer;
  let dir: string;
  let src: { aus: { au: Uint8Array; key: boolean }[]; ps: Uint8Array[] };
  const sessions = async (): Promise<any[]> => (await (await fetch(`${S.http}/webrtc/api/list`)).json()).data.list;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'm7s-webrtc-media-'));
    const out = join(dir, 'src.h264');
    const r = await run(ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=25:duration=4',
      '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-profile:v', 'baseline', '-threads', '1', '-x264-params', 'slices=1',
      '-b:v', '800k', '-g', '25', '-bf', '0', '-pix_fmt', 'yuv420p', '-f', 'h264', out]);
    assert.equal(r.code, 0, r.stderr);
    const bytes = new Uint8Array(readFileSync(out));
    src = { aus: accessUnits('h264', bytes), ps: parameterSets('h264', bytes) };
    S = await startServer([webrtc], CONFIG);
  });

  after(async () => {
    await S?.stop();
    rmSync(dir, { recursive: true, force: true });
    cleanupDataChannel(); // libdatachannel's threads would keep the process alive
  });

  it('3 WHEP viewers share the RTP packets built once per frame (packetizations vs frames sent); a STUN/DTLS flood on one viewer port leaves all playing', async () => {
    const path = 'live/fanout';
    const pub = await whipPublish(S.http, path, 'h264', src.aus, src.ps);
    const viewers: Awaited<ReturnType<typeof whepPlay>>[] = [];
    try {
      assert.equal(pub.status, 201, pub.text);
      await until(() => S.server.engine.getStream(path)?.tracks.some((t) => t.frames > 10), 15_000, 'WHIP frames');
      for (let i = 0; i < 3; i++) viewers.push(await whepPlay(S.http, path, 'h264'));
      for (const v of viewers) assert.equal(v.status, 201, v.text);
      await until(() => viewers.every((v) => v.frames.length >= 20), 15_000, 'frames at every viewer');
      const track = S.server.engine.getStream(path)!.tracks.find((t) => t.kind === 'video')!;
      const snap = async () => {
        const list = (await sessions()).filter((x) => x.kind === 'whep' && x.streamPath === path);
        return { built: trackRtp(track).built, sent: list.reduce((n, x) => n + (x.framesSent ?? 0), 0), viewers: list.length };
      };
      const a = await snap();
      await sleep(2000);
      const b = await snap();
      const built = b.built - a.built, sent = b.sent - a.sent;
      console.log(`# webrtc packetize once: ${b.viewers} viewers, ${built} frames packetized, ${sent} frames sent (${(sent / built).toFixed(2)} sends per packetization)`);
      assert.equal(b.viewers, 3);
      assert.ok(built >= 20, `frames packetized in 2 s: ${built}`);
      // Each frame is packetized once and sent to all three (±1 frame per viewer at each edge of the window).
      assert.ok(Math.abs(sent - 3 * built) <= 6, `frames sent ${sent} vs 3 × ${built} packetized`);
      // The same bytes: the viewers see the same sequence numbers for the same frames.
      const seqOf = (v: typeof viewers[0]) => new Map(v.rtp.map((r) => [r.timestamp, r.seq]));
      const m0 = seqOf(viewers[0]!), m1 = seqOf(viewers[1]!);
      let same = 0;
      for (const [ts, seq] of m1) if (m0.has(ts)) { assert.equal(m0.get(ts), seq, `sequence number of timestamp ${ts}`); same++; }
      assert.ok(same > 10, `frames both viewers got: ${same}`);

      // A STUN flood on the shared ICE port: well-formed binding requests (USERNAME, PRIORITY,
      // ICE-CONTROLLING, a wrong MESSAGE-INTEGRITY) from an unknown peer, half of them naming viewer 0's
      // ufrag (the mux hands those to its ICE agent) and half an unknown one (dropped by the mux), plus
      // DTLS records of garbage. They are answered with an error or dropped; every viewer keeps playing.
      const port = Number(/a=candidate:\S+ \d+ \S+ \d+ 127\.0\.0\.1 (\d+) typ host/.exec(viewers[0]!.text)![1]);
      const ufrag = /a=ice-ufrag:(\S+)/.exec(viewers[0]!.text)![1]!;
      const sock = createSocket('udp4');
      const counts = viewers.map((v) => v.frames.length);
      const users = [new TextEncoder().encode(`${ufrag}:wxyz`), new TextEncoder().encode('abcd:wxyz')];
      for (let i = 0; i < 3000; i++) {
        let b: Uint8Array;
        if (i % 10 === 9) { b = new Uint8Array(60); crypto.getRandomValues(b); b.set([22, 0xfe, 0xfd]); } // DTLS handshake record of garbage
        else {
          const user = users[i % 2]!;
          const userLen = (user.length + 3) & ~3;
          b = new Uint8Array(20 + 4 + userLen + 8 + 12 + 24);
          const dv = new DataView(b.buffer);
          dv.setUint16(0, 0x0001); dv.setUint16(2, b.length - 20); dv.setUint32(4, 0x2112a442);
          crypto.getRandomValues(b.subarray(8, 20));
          let p = 20;
          dv.setUint16(p, 0x0006); dv.setUint16(p + 2, user.length); b.set(user, p + 4); p += 4 + userLen;
          dv.setUint16(p, 0x0024); dv.setUint16(p + 2, 4); dv.setUint32(p + 4, 0x6e7f1eff); p += 8;
          dv.setUint16(p, 0x802a); dv.setUint16(p + 2, 8); crypto.getRandomValues(b.subarray(p + 4, p + 12)); p += 12;
          dv.setUint16(p, 0x0008); dv.setUint16(p + 2, 20); crypto.getRandomValues(b.subarray(p + 4, p + 24));
        }
        sock.send(b, port, '127.0.0.1');
        if (i % 300 === 0) await sleep(5);
      }
      await sleep(500);
      sock.close();
      await until(() => viewers.every((v, i) => v.frames.length >= counts[i]! + 25), 10_000, `frames after the flood: ${viewers.map((v, i) => v.frames.length - counts[i]!)}`);
      assert.ok(viewers.every((v) => v.state() === 'connected'), 'every viewer still connected');
    } finally {
      for (const v of viewers) await v.close();
      await pub.close();
    }
    await until(async () => (await sessions()).length === 0, 5000, 'sessions gone');
  });

  it('5 % loss on the path: NACKs are answered from the shared history and recover most losses', async () => {
    const path = 'live/lossy';
    const pub = await whipPublish(S.http, path, 'h264', src.aus, src.ps);
    let relay: LossyRelay | undefined;
    let viewer: Awaited<ReturnType<typeof weriftViewer>> | undefined;
    try {
      assert.equal(pub.status, 201, pub.text);
      await until(() => S.server.engine.getStream(path)?.tracks.some((t) => t.frames > 10), 15_000, 'WHIP frames');
      viewer = await weriftViewer(S.http, path, async (port) => {
        relay = new LossyRelay(port, 0.05, 12);
        await relay.start();
        return relay.port;
      });
      await until(() => viewer!.packets() > 0, 15_000, `media through the relay (state ${viewer!.state()})`);
      await until(() => relay!.droppedFirst.size >= 40, 30_000, `losses (${relay!.droppedFirst.size} so far, ${relay!.forwarded} forwarded)`);
      await sleep(1000); // the NACKs of the last losses
      const info = (await sessions()).find((x) => x.kind === 'whep' && x.streamPath === path)!;
      const dropped = [...relay!.droppedFirst];
      const recovered = dropped.filter((s) => viewer!.received.has(s)).length;
      console.log(`# webrtc NACK at 5 % loss: relay dropped ${relay!.dropped} media datagrams (${dropped.length} first sends of ${relay!.forwarded + relay!.dropped}), ` +
        `server got ${info.peer.nacks} NACKs, resent ${info.retransmitted} packets (${info.nackMisses} no longer in the history), ` +
        `viewer recovered ${recovered} of ${dropped.length} lost packets (${((100 * recovered) / dropped.length).toFixed(1)} %)`);
      assert.ok(info.peer.nacks > 0, 'NACKs reached the server');
      assert.ok(info.retransmitted >= recovered, `resent ${info.retransmitted}, recovered ${recovered}`);
      // Most losses recovered (a retransmission is itself lost 5 % of the time; werift retries its NACKs).
      assert.ok(recovered >= 0.8 * dropped.length, `recovered ${recovered} of ${dropped.length}`);
    } finally {
      await viewer?.close();
      relay?.stop();
      await pub.close();
    }
    await until(async () => (await sessions()).length === 0, 5000, 'sessions gone');
  });
});

// The same with a real lossy link: a network namespace (unshare -n) where iptables' `statistic` match drops
// 5 % of what the server sends to the viewer (netem is not available on every kernel; this is). The
// server, the publisher and the viewer run in test/helpers/webrtc-netns.ts inside the namespace.
const netnsSkip = !onNode ? 'runtime-independent interop: Node pass only'
  : spawnSync('unshare', ['-n', 'iptables', '-L', 'INPUT', '-n']).status !== 0
    ? 'cannot use iptables in a new network namespace here (unshare -n and iptables need root; apt-get install iptables)' : false;
describe('webrtc: 5 % loss on a network-namespace link', { skip: netnsSkip }, () => {
  it('NACKs are answered from the shared history and recover most of the datagrams the link drops', async () => {
    // Bundled into the checkout's .build (its imports resolve from node_modules), run by Node in the namespace.
    mkdirSync('.build', { recursive: true });
    const bundle = join(process.cwd(), '.build', `webrtc-netns-${process.pid}.mjs`);
    const { build } = await import('esbuild');
    await build({ entryPoints: ['test/helpers/webrtc-netns.ts'], outfile: bundle, bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', logLevel: 'warning' });
    try {
      const r = await run('unshare', ['-n', 'sh', '-c', `ip link set lo up && exec ${JSON.stringify(process.execPath)} ${JSON.stringify(bundle)} 40`], 120_000);
      assert.equal(r.code, 0, r.stderr.slice(-3000));
      const x = JSON.parse(r.stdout.trim().split('\n').pop()!);
      console.log(`# webrtc NACK on a netns link, 5 % dropped by iptables: ${x.dropped} datagrams dropped while ${x.packets} media packets were sent, ` +
        `server got ${x.nacks} NACKs and resent ${x.retransmitted} (${x.nackMisses} no longer in the history); ${x.missing} never arrived ` +
        `(${(100 * (1 - x.missing / x.dropped)).toFixed(1)} % recovered)`);
      assert.ok(x.dropped >= 40, `dropped ${x.dropped}`);
      assert.ok(x.nacks > 0 && x.retransmitted > 0, `NACKs ${x.nacks}, resent ${x.retransmitted}`);
      assert.ok(x.missing <= 0.2 * x.dropped, `${x.missing} packets never arrived of ${x.dropped} dropped datagrams`);
    } finally { rmSync(bundle, { force: true }); }
  });
});

describe('webrtc: VP8 / VP9 / AV1 RTP (unit, every runtime)', () => {
  const bytes = (n: number, seed: number) => { const r = prng(seed); return Uint8Array.from({ length: n }, () => Math.floor(r() * 256)); };
  const av1Frame = (n: number, key: boolean) => {
    // temporal delimiter, sequence header (type 1, keyframes only), frame (type 6), each with obu_has_size_field.
    const seq = bytes(12, 3), fr = bytes(n, 4);
    return new Uint8Array([0x12, 0x00, ...(key ? [0x0a, seq.length, ...seq] : []), 0x32, ...(fr.length < 128 ? [fr.length] : [0x80 | (fr.length & 0x7f), fr.length >> 7]), ...fr]);
  };
  const frames: Record<VpxCodec, Uint8Array[]> = {
    vp8: [(() => { const f = bytes(3000, 1); f[0] = 0x10; f.set([0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01], 3); return f; })(), (() => { const f = bytes(900, 2); f[0] = 0x01; return f; })()],
    vp9: [bytes(3000, 5), bytes(200, 6)],
    av1: [av1Frame(3000, true), av1Frame(100, false)],
  };

  for (const codec of ['vp8', 'vp9', 'av1'] as const) {
    it(`${codec}: frames survive packetize → depacketize at a 1200-byte MTU (keyframe flag, config)`, () => {
      const w = new RtpWriter(96, 1, 65530);
      const pk = new VpxPacketizer(codec, w, { mtu: 1200 });
      const dp = new VpxDepacketizer(codec);
      const got = [];
      for (const [i, f] of frames[codec].entries()) {
        const pkts = pk.packetize(f, 1000 + i * 3000, i === 0);
        assert.ok(pkts.every((p) => p.length <= 1200), 'MTU');
        if (i === 0) assert.ok(pkts.length >= 3, `${pkts.length} packets`);
        for (const p of pkts) got.push(...dp.push(parseRtp(p)));
      }
      assert.equal(got.length, 2);
      assert.equal(got[0]!.key, true);
      assert.equal(got[1]!.key, false);
      assert.equal(got[0]!.config?.codec, codec);
      if (codec === 'vp8') assert.deepEqual([got[0]!.config?.width, got[0]!.config?.height], [640, 480]);
      // AV1: the temporal delimiter is not carried over RTP; the other OBUs come back as sent.
      const want = codec === 'av1' ? frames.av1.map((f) => f.subarray(2)) : frames[codec];
      assert.deepEqual(got.map((f) => f.data), want);
      if (codec === 'av1') assert.deepEqual(av1Obus(got[0]!.data).map((o) => o.type), [1, 6]);
    });
  }

  it('fuzz: mutated VP8/VP9/AV1 packets only ever give FormatError', () => {
    for (const codec of ['vp8', 'vp9', 'av1'] as const) {
      const seeds = new VpxPacketizer(codec, new RtpWriter(96, 1, 1), { mtu: 600 }).packetize(frames[codec][0]!, 1, true);
      const dp = new VpxDepacketizer(codec, { maxFrameSize: 1 << 16 });
      fuzz(`${codec} rtp`, seeds, (b) => dp.push(parseRtp(b)), 1500);
    }
    assert.throws(() => av1Obus(new Uint8Array([0x32, 0x85])), FormatError);
  });
});
