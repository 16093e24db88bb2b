// RTMP plugin: handshake, chunk streams, shared chunking, and integration with real clients (ffmpeg,
// ffprobe, GStreamer) and with a second m7s instance (pull, push, recovery).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { currentRuntime } from '../adapters/current.ts';
import rtmp from '../plugins/rtmp/index.ts';
import { sha256, hmacSha256 } from '../plugins/rtmp/sha256.ts';
import { ClientHandshake, checkDigestS2, digestOffset, digestPacket, findC1Digest, ServerHandshake } from '../plugins/rtmp/handshake.ts';
import { ChunkReader, chunkMessage, MSG, type RtmpMessage, type1Header, chunkBody, basicHeader } from '../plugins/rtmp/chunk.ts';
import { RtmpClient, parseRtmpUrl } from '../plugins/rtmp/client.ts';
import { RtmpPlaySink } from '../plugins/rtmp/sink.ts';
import { RtmpConnection } from '../plugins/rtmp/conn.ts';
import { Engine } from '../src/core/engine.ts';
import { defaultSubscribe } from '../src/core/config.ts';
import { SyntheticSource } from '../src/core/synthetic.ts';
import { makeKeyAuthArgs } from '../src/core/auth.ts';
import { Logger } from '../src/log.ts';
import { Server } from '../src/server.ts';
import type { Runtime } from '../src/net/types.ts';
import type { TcpConn } from '../src/net/types.ts';
import { ffmpegPath, ffprobe, run, sleep, start, startServer, testSourceArgs, until, videoLoss, type TestServer } from './helpers/media.ts';

const rt = await currentRuntime();
const TLS_CERT = 'test/fixtures/tls-cert.pem';
const TLS_KEY = 'test/fixtures/tls-key.pem';

/** A free TCP port (for instances that must come back on the same port). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
  });
}

const rtmpYaml = (extra = '') => `rtmp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\n${extra}`;

/** Our own client, connected and past `connect`. */
async function client(url: string): Promise<RtmpClient> {
  const u = parseRtmpUrl(url);
  const conn = await rt.connectTcp({ host: u.host, port: u.port, tls: u.tls ? { rejectUnauthorized: false } : undefined });
  const c = new RtmpClient(conn, Logger.silent(), 16 << 20);
  await c.open(u, 4096, 5000);
  return c;
}

function concatAll(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const o = new Uint8Array(n);
  let i = 0;
  for (const p of parts) { o.set(p, i); i += p.length; }
  return o;
}

// ---------------------------------------------------------------------------------------------------

describe('rtmp: handshake', () => {
  it('SHA-256 and HMAC-SHA256 match node:crypto', () => {
    for (const n of [0, 1, 55, 56, 63, 64, 65, 1504, 1536, 5000]) {
      const d = new Uint8Array(n).map((_, i) => (i * 31 + n) & 0xff);
      assert.equal(Buffer.from(sha256(d)).toString('hex'), createHash('sha256').update(d).digest('hex'), `sha256 of ${n} bytes`);
      const k = d.subarray(0, Math.min(n, 100));
      assert.equal(Buffer.from(hmacSha256(k, d)).toString('hex'), createHmac('sha256', k).update(d).digest('hex'), `hmac of ${n} bytes`);
    }
  });

  it('a digest C1 (both schemas) gets a digest S1 and a correctly signed S2; a plain C1 an echo', () => {
    for (const schema of [0, 1] as const) {
      const c1 = digestPacket('client', schema);
      const d = findC1Digest(c1);
      assert.ok(d, `schema ${schema} detected`);
      assert.equal(d!.schema, schema);
      const hs = new ServerHandshake();
      // Fed in awkward pieces.
      const all = concatAll([new Uint8Array([3]), c1]);
      let out: Uint8Array[] = [];
      for (let i = 0; i < all.length; i += 100) out = out.concat(hs.feed(all.subarray(i, i + 100)).out);
      assert.equal(hs.mode, 'digest');
      const resp = concatAll(out);
      assert.equal(resp.length, 1 + 1536 * 2);
      const s1 = resp.subarray(1, 1537), s2 = resp.subarray(1537);
      // S1 carries a digest keyed with the server key (first 36 bytes) at the same schema position.
      const at = digestOffset(s1, schema);
      const msg = concatAll([s1.subarray(0, at), s1.subarray(at + 32)]);
      const fmsKey = new Uint8Array([...Buffer.from('Genuine Adobe Flash Media Server 001')]);
      assert.deepEqual(hmacSha256(fmsKey, msg), s1.slice(at, at + 32));
      assert.ok(checkDigestS2(s2, d!.digest), 'S2 signed with the key derived from the C1 digest');
      const rest = hs.feed(concatAll([new Uint8Array(1536), new Uint8Array([1, 2, 3])]));
      assert.equal(rest.done, true);
      assert.deepEqual([...rest.rest!], [1, 2, 3], 'bytes after C2 go to the chunk reader');
    }
    const plain = new ClientHandshake().start();
    const hs = new ServerHandshake();
    const r = hs.feed(concatAll(plain));
    assert.equal(hs.mode, 'plain');
    assert.deepEqual(concatAll(r.out).subarray(1537 + 8), plain[1].subarray(8), 'S2 echoes C1');
    // A flipped digest byte is not a digest C1.
    const bad = digestPacket('client', 1);
    bad[digestOffset(bad, 1)] ^= 1;
    assert.equal(findC1Digest(bad), null);
    assert.throws(() => new ServerHandshake().feed(new Uint8Array(1537).fill(6)), /RTMPE|version/);
  });
});

describe('rtmp: chunk stream', () => {
  it('reads every header type, extended timestamps (also on fmt-3 chunks) at any slicing', () => {
    const cs = 100;
    const body = (n: number, s: number) => new Uint8Array(n).map((_, i) => (i + s) & 0xff);
    const parts: Uint8Array[] = [];
    // fmt 0 with a small timestamp, two chunks.
    parts.push(...chunkMessage(6, MSG.VIDEO, 1, 1000, [body(250, 1)], cs));
    // fmt 1 delta 40, three chunks.
    parts.push(type1Header(6, 40, 300, MSG.VIDEO), ...chunkBody(6, [body(300, 2)], cs));
    // fmt 2 (delta 40, same length/type).
    const f2 = basicHeader(2, 6);
    parts.push(concatAll([f2, new Uint8Array([0, 0, 40])]), ...chunkBody(6, [body(300, 3)], cs));
    // fmt 3 new message: same delta again.
    parts.push(basicHeader(3, 6), ...chunkBody(6, [body(300, 4)], cs));
    // fmt 0 with an extended timestamp, continuation chunks repeat it; csid 300 (3-byte basic header).
    parts.push(...chunkMessage(300, MSG.AUDIO, 1, 0x1234567, [body(210, 5)], cs));
    // An empty message, and a 2-byte-basic-header csid.
    parts.push(...chunkMessage(70, MSG.DATA_AMF0, 1, 5, [], cs));
    const wire = concatAll(parts);
    for (const step of [1, 7, 99, 100, 101, 4096]) {
      const got: RtmpMessage[] = [];
      const r = new ChunkReader((m) => got.push(m));
      r.setChunkSize(cs);
      for (let i = 0; i < wire.length; i += step) r.feed(wire.subarray(i, i + step));
      assert.deepEqual(got.map((m) => [m.csid, m.type, m.timestamp, m.payload.length, m.payload[0]]), [
        [6, 9, 1000, 250, 1], [6, 9, 1040, 300, 2], [6, 9, 1080, 300, 3], [6, 9, 1120, 300, 4],
        [300, 8, 0x1234567, 210, 5], [70, 18, 5, 0, undefined],
      ], `slicing ${step}`);
    }
  });

  it('refuses oversized messages, too many chunk streams, and headers without a start', () => {
    const r1 = new ChunkReader(() => {}, { maxMessageSize: 1000 });
    assert.throws(() => r1.feed(concatAll(chunkMessage(4, 9, 1, 0, [new Uint8Array(1001)], 128))), /maxmessagesize/);
    assert.throws(() => r1.feed(new Uint8Array([4])), /maxmessagesize/, 'stays failed');
    const r2 = new ChunkReader(() => {}, { maxChunkStreams: 4 });
    assert.throws(() => { for (let c = 2; c < 10; c++) r2.feed(concatAll(chunkMessage(c, 9, 1, 0, [new Uint8Array(1)], 128))); }, /too many chunk streams/);
    assert.throws(() => new ChunkReader(() => {}).feed(type1Header(5, 1, 1, 9)), /type-1 header/);
    // A 16 MiB announcement with 1 byte sent costs little memory.
    const r3 = new ChunkReader(() => {});
    r3.feed(concatAll(chunkMessage(4, 9, 1, 0, [new Uint8Array(16 << 20)], 128)).subarray(0, 13));
    assert.ok(r3.pendingBytes <= 64 * 1024, `pending ${r3.pendingBytes}`);
  });
});

describe('rtmp: writes per join', () => {
  // What the server writes to a joining player: the handshake reply, one write per command reply, and
  // play's status events with the whole catch-up GOP as one vectored write (one syscall, not one per
  // message or per 64 KB batch). The server runs on the real runtime and sockets; only its accepted
  // connections are wrapped to count write()/writev() calls.
  it('a player gets connect, createStream and play (status + 300 KB catch-up GOP) in one write each', async () => {
    const calls: { conn: number; parts: number; bytes: number }[] = [];
    let conns = 0;
    const counting = (c: TcpConn): TcpConn => {
      const id = ++conns;
      return new Proxy(c, {
        get(t, k) {
          if (k === 'write') return (b: Uint8Array) => { calls.push({ conn: id, parts: 1, bytes: b.length }); return t.write(b); };
          if (k === 'writev') return (bs: Uint8Array[]) => { calls.push({ conn: id, parts: bs.length, bytes: bs.reduce((n, b) => n + b.length, 0) }); return t.writev(bs); };
          const v = (t as unknown as Record<string | symbol, unknown>)[k];
          return typeof v === 'function' ? v.bind(t) : v;
        },
        set(t, k, v) { (t as unknown as Record<string | symbol, unknown>)[k] = v; return true; },
      });
    };
    const runtime = new Proxy(rt, {
      get(t, k) {
        if (k === 'listenTcp') return (o: Parameters<Runtime['listenTcp']>[0], on: (c: TcpConn) => void) => t.listenTcp(o, (c) => on(counting(c)));
        const v = (t as unknown as Record<string | symbol, unknown>)[k];
        return typeof v === 'function' ? v.bind(t) : v;
      },
    });
    const server = await Server.start({ runtime, plugins: [rtmp], configText: `global:\n  http:\n    listenaddr: "127.0.0.1:0"\n${rtmpYaml()}`, logger: Logger.silent(), watch: false });
    try {
      const port = server.listening.find((x) => x.plugin === 'rtmp')!.port;
      const pub = await server.engine.publish('live/join', { protocol: 'test' });
      const src = new SyntheticSource(pub, { fps: 25, gop: 50, videoBytes: 20_000, sampleRate: 44100 });
      src.burst(15); // a keyframe and 14 more frames cached: ~300 KB of catch-up
      const c = await client(`rtmp://127.0.0.1:${port}/live/join`);
      try {
        const sid = (await c.call(5000, 'createStream', null)).args[0] as number;
        const afterCreate = calls.length;
        let video = 0;
        const got = new Promise<void>((resolve) => { c.onMediaMessage = (m) => { if (m.type === MSG.VIDEO && ++video === 15) resolve(); }; });
        c.sendCommand(sid, 'play', 0, null, 'join', -2000);
        await Promise.race([got, sleep(5000).then(() => { throw new Error(`${video} of 15 video messages`); })]);
        const mine = calls.filter((x) => x.conn === conns);
        const play = calls.slice(afterCreate).filter((x) => x.conn === conns);
        const playBytes = play.reduce((n, x) => n + x.bytes, 0);
        assert.ok(playBytes > 300_000, `play answered with ${playBytes} bytes`);
        // handshake, connect (window ack, peer bandwidth, chunk size, _result), createStream, play
        assert.ok(mine.length <= 4, `the server wrote to the player ${mine.length} times: ${JSON.stringify(mine)}`);
        assert.equal(play.length, 1, `play: ${JSON.stringify(play)}`);
      } finally { c.close(); }
    } finally { await server.stop(); }
  });
});

describe('rtmp: messages shared between connections', () => {
  class Conn extends RtmpConnection {
    protected onCommand(): void {}
    protected onMedia(): void {}
    protected onClosed(): void {}
  }
  const recorder = () => {
    const out: Uint8Array[] = [];
    const tcp = {
      id: 0, remoteAddress: '', remotePort: 0, localPort: 0, buffered: 0, closed: false, onData: null, onDrain: null, onClose: null,
      write: (c: Uint8Array) => { out.push(c); return true; }, writev: (cs: Uint8Array[]) => { out.push(...cs); return true; },
      pause() {}, resume() {}, setNoDelay() {}, end() {}, destroy() {},
    } as unknown as TcpConn;
    return { out, conn: new Conn(tcp, { role: 'server', logger: Logger.silent(), maxMessageSize: 1 << 20 }) };
  };
  const status = (c: RtmpConnection, path: string) => () => {
    c.sendUserControl(0, 1);
    c.sendStatus(1, 'status', 'NetStream.Play.Start', `Started playing ${path}.`, { details: path });
  };

  it('sendShared: built once per key and chunk size, then the same buffers; bytes as sent without it', async () => {
    const a = recorder(), b = recorder(), plain = recorder(), other = recorder(), big = recorder();
    a.conn.sendShared('play\0' + 1 + '\0live/s1', status(a.conn, 'live/s1'));
    let built = 0;
    b.conn.sendShared('play\0' + 1 + '\0live/s1', () => { built++; status(b.conn, 'live/s1')(); });
    status(plain.conn, 'live/s1')();
    other.conn.sendShared('play\0' + 1 + '\0live/s2', status(other.conn, 'live/s2'));
    big.conn.outChunkSize = 16; // the status message spans several chunks at this size
    big.conn.sendShared('play\0' + 1 + '\0live/s1', status(big.conn, 'live/s1'));
    await sleep(0); // writes leave at the end of the turn
    assert.equal(built, 0, 'a second connection does not build again');
    assert.ok(a.out.length >= 2 && a.out.every((x, i) => x === b.out[i]), 'the same buffers');
    assert.deepEqual(concatAll(b.out), concatAll(plain.out), 'the bytes a plain send makes');
    assert.notDeepEqual(concatAll(other.out), concatAll(a.out), 'another path: its own bytes');
    assert.ok(new TextDecoder().decode(concatAll(other.out)).includes('live/s2'));
    const plain16 = recorder();
    plain16.conn.outChunkSize = 16;
    status(plain16.conn, 'live/s1')();
    await sleep(0);
    assert.deepEqual(concatAll(big.out), concatAll(plain16.out), 'another chunk size: chunked for it');
    assert.ok(concatAll(big.out).length > concatAll(a.out).length);
  });
});

describe('rtmp: shared chunking', () => {
  /** An RtmpConnection stand-in (chunk size 4096) whose writes are recorded in `out`. */
  const recordingConn = (out: Uint8Array[]) => {
    const fake = {
      buffered: 0, closed: false, remoteAddress: '', remotePort: 0,
      writev: (c: Uint8Array[]) => { out.push(...c); return true; }, write: (c: Uint8Array) => { out.push(c); return true; },
    } as unknown as TcpConn;
    return { conn: fake, outChunkSize: 4096, closed: false, subscribers: new Set(), sendUserControl() {}, writev: (c: Uint8Array[]) => fake.writev(c) } as unknown as RtmpConnection;
  };

  it('two players share the same chunk bytes of a frame; timestamps stay exact for both', async () => {
    const engine = new Engine({ subscribe: { ...defaultSubscribe, catchup: 0 } }); // joiners keep their GOP's times here
    try {
      const pub = await engine.publish('live/share', { protocol: 'test' });
      const src = new SyntheticSource(pub, { fps: 25, gop: 25, sampleRate: 44100 });
      src.burst(10);
      const outs: Uint8Array[][] = [[], []];
      const sinks: RtmpPlaySink[] = [];
      for (let i = 0; i < 2; i++) {
        const rc = recordingConn(outs[i]);
        const sink = new RtmpPlaySink(rc, 1, 4);
        sinks.push(sink);
        await engine.subscribe('live/share', { protocol: 'rtmp', sink });
        if (i === 0) src.burst(5); // the second player joins later, mid-GOP
      }
      const before = outs.map((o) => o.length);
      src.burst(30);
      const a = outs[0].slice(before[0]), b = outs[1].slice(before[1]);
      const setA = new Set(a);
      const sharedObjs = b.filter((x) => setA.has(x));
      assert.ok(sharedObjs.length > 0.9 * b.length, `shared ${sharedObjs.length} of ${b.length} chunk objects`);
      const sharedCount = sinks[1].sharedFrames + sinks[1].sharedRanges;
      assert.ok(sharedCount > 50, `player 2 sent ${sharedCount} frames/ranges as shared chunks (${sinks[1].own} with its own header)`);
      // Both byte streams parse to monotonic per-track timestamps matching the source (40 ms video).
      for (const out of outs) {
        const msgs: RtmpMessage[] = [];
        const r = new ChunkReader((m) => msgs.push(m));
        r.setChunkSize(4096);
        r.feed(concatAll(out));
        const v = msgs.filter((m) => m.type === 9 && m.payload[1] === 1).map((m) => m.timestamp);
        const au = msgs.filter((m) => m.type === 8 && m.payload[1] === 1).map((m) => m.timestamp);
        assert.ok(v.length > 20);
        for (let i = 1; i < v.length; i++) assert.ok(v[i] - v[i - 1] >= 39 && v[i] - v[i - 1] <= 41, `video step ${v[i] - v[i - 1]}`);
        for (let i = 1; i < au.length; i++) assert.ok(au[i] - au[i - 1] >= 22 && au[i] - au[i - 1] <= 24, `audio step ${au[i] - au[i - 1]}`);
        // Audio and video stay aligned (no drift from rounding deltas): last timestamps within 50 ms.
        assert.ok(Math.abs(v[v.length - 1] - au[au.length - 1]) < 60, `A/V ${v[v.length - 1]} vs ${au[au.length - 1]}`);
      }
    } finally { engine.shutdown(); }
  });

  for (const catchup of [100, 0]) it(`players joining at one point share one start burst (catchup ${catchup}), then continue on shared chunks`, async () => {
    const engine = new Engine({ subscribe: { ...defaultSubscribe, catchup } });
    try {
      const pub = await engine.publish('live/start', { protocol: 'test' });
      const src = new SyntheticSource(pub, { fps: 25, gop: 50, sampleRate: 44100 });
      src.burst(30);
      const outs: Uint8Array[][] = [[], [], []];
      const sinks: RtmpPlaySink[] = [];
      for (let i = 0; i < 3; i++) {
        const rc = recordingConn(outs[i]);
        const sink = new RtmpPlaySink(rc, i === 2 ? 2 : 1, 4); // player 2: another message stream id
        sinks.push(sink);
        await engine.subscribe('live/start', { protocol: 'rtmp', sink });
      }
      // Player 1 writes player 0's start chunks, fmt-0 headers included; only its metadata is its own.
      const set0 = new Set(outs[0]);
      const own = (o: Uint8Array[]) => o.filter((x) => !set0.has(x)).length;
      assert.ok(own(outs[1]) <= 3, `player 1's own chunks: ${own(outs[1])}`);
      // (the per-frame path makes its own sequence-header and fmt-0 headers: 6 or more)
      assert.ok(own(outs[2]) > 3, `another stream id (in the fmt-0 headers) builds its own (${own(outs[2])})`);
      src.burst(30);
      assert.deepEqual(concatAll(outs[1]), concatAll(outs[0]), 'same bytes after the shared start');
      assert.ok(sinks[1].sharedFrames + sinks[1].sharedRanges > 20, 'and it continues on shared chunks');
      for (const out of [outs[0], outs[2]]) {
        const msgs: RtmpMessage[] = [];
        const r = new ChunkReader((m) => msgs.push(m));
        r.setChunkSize(4096);
        r.feed(concatAll(out));
        const v = msgs.filter((m) => m.type === 9 && m.payload[1] === 1);
        assert.equal(v[0]!.payload[0]! >> 4, 1, 'starts at a keyframe');
        if (catchup) assert.ok(v[1]!.timestamp - v[0]!.timestamp < 20, 'the cached GOP is fast-forwarded');
        else assert.equal(v[1]!.timestamp - v[0]!.timestamp, 40, 'the cached GOP keeps its times');
        for (let i = 1; i < v.length; i++) assert.ok(v[i]!.timestamp > v[i - 1]!.timestamp, 'video timestamps rise');
        assert.equal(v[v.length - 1]!.timestamp - v[v.length - 2]!.timestamp, 40, 'then live at 25 fps');
        assert.ok(v.every((m) => m.streamId === (out === outs[2] ? 2 : 1)), 'its own message stream id');
      }
    } finally { engine.shutdown(); }
  });
});

// ---------------------------------------------------------------------------------------------------
// Integration

/** Count packets and check monotonic timestamps in ffprobe -show_packets output. */
function checkPackets(probe: any, seconds: number, fps: number) {
  const streams = probe.streams as any[];
  const v = streams.find((s) => s.codec_type === 'video'), a = streams.find((s) => s.codec_type === 'audio');
  assert.equal(v?.codec_name, 'h264');
  assert.equal(a?.codec_name, 'aac');
  assert.equal(v.width, 320);
  assert.equal(v.height, 240);
  assert.equal(Number(a.sample_rate), 44100);
  const pk = probe.packets as any[];
  const vp = pk.filter((p) => p.stream_index === v.index), ap = pk.filter((p) => p.stream_index === a.index);
  for (const list of [vp, ap]) {
    for (let i = 1; i < list.length; i++) {
      assert.ok(Number(list[i].dts) >= Number(list[i - 1].dts), `dts went back at ${i}: ${list[i - 1].dts} -> ${list[i].dts}`);
    }
  }
  // Loss over the span after the catch-up fast-forward (see videoLoss); the span must be ~all of it.
  const loss = videoLoss(vp, fps);
  assert.ok(loss.span >= seconds - 1, `only ${loss.span} s of video`);
  return { video: loss.count, audio: ap.length, expected: Math.round(loss.expected), err: loss.err };
}

describe('rtmp: ffmpeg publish, ffprobe play (RTMP and RTMPS)', () => {
  let s: TestServer;
  let pubProc: ReturnType<typeof start>;
  before(async () => {
    s = await startServer([rtmp], rtmpYaml(`    listenaddrtls: "127.0.0.1:0"\n  certfile: ${process.cwd()}/${TLS_CERT}\n  keyfile: ${process.cwd()}/${TLS_KEY}\n`));
    pubProc = start(ffmpegPath, [...testSourceArgs({ seconds: 60 }), '-f', 'flv', `rtmp://127.0.0.1:${s.port('rtmp', 'tcp')}/live/x`]);
    await until(() => s.server.engine.getStream('live/x')?.tracks.length === 2, 15_000, 'ffmpeg publishing');
  });
  after(async () => { await pubProc?.kill(); await s?.stop(); });

  it('ffprobe over rtmp:// sees h264 320x240 + aac 44100; 10 s of packets within 2 %, dts monotonic', async () => {
    const probe = await ffprobe(`rtmp://127.0.0.1:${s.port('rtmp', 'tcp')}/live/x`, { packets: true, seconds: 10, timeoutMs: 40_000 });
    const r = checkPackets(probe, 10, 25);
    // ffmpeg's client uses the digest handshake and checks our digest S1/S2: the publisher's session shows it.
    const list = await (await fetch(`${s.http}/rtmp/api/list`)).json() as any;
    assert.ok(list.data.sessions.some((x: any) => x.handshake === 'digest' && x.streams.some((st: any) => st.state === 'publishing')), JSON.stringify(list.data.sessions));
    console.log(`rtmp: ${r.video} video packets (expected ${r.expected}, error ${(r.err * 100).toFixed(2)} %), ${r.audio} audio`);
    assert.ok(r.err <= 0.02, `video packets ${r.video} vs ${r.expected}`);
  });

  it('the same over rtmps://', async () => {
    const probe = await ffprobe(`rtmps://127.0.0.1:${s.port('rtmp', 'tls')}/live/x`, { packets: true, seconds: 10, timeoutMs: 40_000 });
    const r = checkPackets(probe, 10, 25);
    console.log(`rtmps: ${r.video} video packets (expected ${r.expected}, error ${(r.err * 100).toFixed(2)} %), ${r.audio} audio`);
    assert.ok(r.err <= 0.02, `video packets ${r.video} vs ${r.expected}`);
  });

  it('GStreamer rtmp2src plays the stream', async (t) => {
    const gst = ['/usr/bin/gst-launch-1.0', '/usr/local/bin/gst-launch-1.0'].find((p) => existsSync(p));
    if (!gst) {
      if (process.env.CI) assert.fail('gst-launch-1.0 missing on CI');
      t.skip('gst-launch-1.0 not installed');
      return;
    }
    const inspect = await run('gst-inspect-1.0', ['rtmp2src'], 10_000);
    const src = inspect.code === 0 ? 'rtmp2src' : 'rtmpsrc';
    const r = await run(gst, ['-v', src, `location=rtmp://127.0.0.1:${s.port('rtmp', 'tcp')}/live/x`, '!', 'flvdemux', 'name=d',
      'd.video', '!', 'queue', '!', 'fakesink', 'num-buffers=50', 'silent=false'], 30_000);
    const buffers = (r.stdout.match(/chain\s+\*+/g) ?? []).length;
    console.log(`gstreamer ${src}: exit ${r.code}, ${buffers} video buffers`);
    assert.equal(r.code, 0, r.stderr.slice(-1000) + r.stdout.slice(-1000));
    assert.ok(buffers >= 50, `got ${buffers} buffers`);
  });
});

describe('rtmp: commands, names, auth', () => {
  let s: TestServer;
  let base: string;
  const key = 'sekrit';
  before(async () => {
    s = await startServer([rtmp], rtmpYaml() + `  publish:\n    key: ""\n  subscribe:\n    waittimeout: 1s\n`);
    base = `rtmp://127.0.0.1:${s.port('rtmp', 'tcp')}`;
  });
  after(() => s?.stop());

  it('several play streams on one connection', async () => {
    const pubs = [];
    for (const n of ['a', 'b']) {
      const p = await s.server.engine.publish(`live/${n}`, { protocol: 'test' });
      const src = new SyntheticSource(p, { fps: 25 });
      src.start();
      pubs.push(src);
    }
    const c = await client(`${base}/live/a`);
    try {
      const counts = new Map<number, number>();
      c.onMediaMessage = (m) => { if (m.type === 9) counts.set(m.streamId, (counts.get(m.streamId) ?? 0) + 1); };
      const ids: number[] = [];
      for (const n of ['a', 'b']) {
        const r = await c.call(5000, 'createStream', null);
        const sid = r.args[0] as number;
        ids.push(sid);
        c.sendCommand(sid, 'play', 0, null, n, -2000);
        await c.waitStatus(sid, /Play\.Start$/, 5000);
      }
      assert.notEqual(ids[0], ids[1]);
      await until(() => (counts.get(ids[0]) ?? 0) > 20 && (counts.get(ids[1]) ?? 0) > 20, 10_000, 'video on both streams');
      const subs = s.server.engine.getStream('live/a')!.subscribers.size + s.server.engine.getStream('live/b')!.subscribers.size;
      assert.equal(subs, 2);
    } finally {
      c.close();
      for (const p of pubs) p.stop();
      s.server.engine.stopStream('live/a');
      s.server.engine.stopStream('live/b');
    }
  });

  it('a bad app is rejected at connect; a bad stream name and a missing stream get error statuses', async () => {
    await assert.rejects(client(`${base}/..%20x/y`), /Connect\.Rejected|closed/);
    const c = await client(`${base}/live/q`);
    const sid = (await c.call(5000, 'createStream', null)).args[0] as number;
    c.sendCommand(sid, 'publish', 0, null, 'bad name!?', 'live');
    await assert.rejects(c.waitStatus(sid, /Publish\.Start$/, 5000), /Publish\.BadName/);
    const c2 = await client(`${base}/live/q`);
    const sid2 = (await c2.call(5000, 'createStream', null)).args[0] as number;
    c2.sendCommand(sid2, 'play', 0, null, 'nobody', -2000);
    await assert.rejects(c2.waitStatus(sid2, /Play\.Start$/, 5000), /Play\.StreamNotFound/);
    // Unknown commands get _error; the connection lives on.
    const c3 = await client(`${base}/live/q`);
    await assert.rejects(c3.call(5000, 'noSuchCommand', null), /Call\.Failed/);
    assert.ok((await c3.call(5000, 'createStream', null)).args[0] as number > 0);
    c.close(); c2.close(); c3.close();
  });

  it('a second publisher to a busy path gets Publish.BadName; the first keeps going', async () => {
    const p = start(ffmpegPath, [...testSourceArgs({ seconds: 20 }), '-f', 'flv', `${base}/live/busy`]);
    try {
      await until(() => s.server.engine.getStream('live/busy')?.tracks.length === 2, 15_000, 'first publisher');
      const c = await client(`${base}/live/busy`);
      const sid = (await c.call(5000, 'createStream', null)).args[0] as number;
      c.sendCommand(sid, 'publish', 0, null, 'busy', 'live');
      await assert.rejects(c.waitStatus(sid, /Publish\.Start$/, 5000), /Publish\.BadName/);
      c.close();
      const frames = s.server.engine.getStream('live/busy')!.tracks[0].frames;
      await sleep(500);
      assert.ok(s.server.engine.getStream('live/busy')!.tracks[0].frames > frames, 'first publisher still writing');
    } finally { await p.kill(); s.server.engine.stopStream('live/busy'); }
  });

  it('publish.key: ffmpeg without a secret is refused, with ?secret=&expire= accepted', async () => {
    const s2 = await startServer([rtmp], rtmpYaml() + `  publish:\n    key: ${key}\n`);
    try {
      const url = `rtmp://127.0.0.1:${s2.port('rtmp', 'tcp')}/live/sec`;
      const r = await run(ffmpegPath, [...testSourceArgs({ seconds: 3 }), '-f', 'flv', url], 20_000);
      assert.notEqual(r.code, 0, 'refused');
      assert.equal(s2.server.engine.getStream('live/sec'), undefined);
      const a = makeKeyAuthArgs({ key, secretargname: 'secret', expireargname: 'expire' }, 'live/sec', Date.now() / 1000 + 3600);
      const p = start(ffmpegPath, [...testSourceArgs({ seconds: 20 }), '-f', 'flv', `${url}?secret=${a.secret}&expire=${a.expire}`]);
      try {
        await until(() => s2.server.engine.getStream('live/sec')?.tracks.length === 2, 15_000, 'authorised publisher');
      } finally { await p.kill(); }
    } finally { await s2.stop(); }
  });
});

describe('rtmp: pull from and push to another instance, with recovery', () => {
  it('pull via config API and push via onpub; both recover when the other instance restarts', async () => {
    const originPort = await freePort();
    const originYaml = rtmpYaml().replace('127.0.0.1:0', `127.0.0.1:${originPort}`) + `  publish:\n    publishtimeout: 30s\n`;
    let origin = await startServer([rtmp], originYaml);
    const edge = await startServer([rtmp], rtmpYaml(`  retryinterval: 200ms\n  onpub:\n    push:\n      "live/(.+)": rtmp://127.0.0.1:${originPort}/pushed/$1\n`) +
      `  subscribe:\n    waittimeout: 20s\n`);
    let feeder: ReturnType<typeof start> | null = null;
    const player: { stop?: () => void } = {};
    try {
      // A source on the origin; the edge pulls it (HTTP API).
      feeder = start(ffmpegPath, [...testSourceArgs({ seconds: 120 }), '-f', 'flv', `rtmp://127.0.0.1:${originPort}/src/cam`]);
      await until(() => origin.server.engine.getStream('src/cam')?.tracks.length === 2, 15_000, 'origin source');
      const res = await fetch(`${edge.http}/rtmp/api/pull`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ streamPath: 'live/cam', url: `rtmp://127.0.0.1:${originPort}/src/cam` }) });
      const body = await res.json() as any;
      assert.equal(body.code, 0, JSON.stringify(body));
      await until(() => (edge.server.engine.getStream('live/cam')?.tracks[0]?.frames ?? 0) > 10, 15_000, 'edge pulled frames');
      // live/cam published on the edge → pushed back to the origin as pushed/cam.
      await until(() => (origin.server.engine.getStream('pushed/cam')?.tracks[0]?.frames ?? 0) > 10, 15_000, 'origin got the push');
      const list = await (await fetch(`${edge.http}/rtmp/api/list`)).json() as any;
      assert.equal(list.data.pulls.length, 1);
      assert.equal(list.data.pulls[0].state, 'running');
      assert.equal(list.data.pushes.length, 1);
      // A player on the edge stays subscribed through the origin's restart.
      const edgeStream = edge.server.engine.getStream('live/cam')!;
      const seen: number[] = [];
      let backwards = 0;
      const last = new Map<string, number>();
      const sub = await edge.server.engine.subscribe('live/cam', { protocol: 'test', sink: { frame: (f, dts) => {
        if (f.track.kind === 'video') seen.push(dts);
        if (dts < (last.get(f.track.kind) ?? -1)) backwards++;
        last.set(f.track.kind, dts);
        return 1;
      }, flush: () => true } });
      player.stop = () => sub.close();

      // Restart the origin on the same port.
      await feeder.kill();
      await origin.stop();
      await until(async () => (await (await fetch(`${edge.http}/rtmp/api/list`)).json() as any).data.pulls[0]?.state === 'retrying', 10_000, 'pull retrying');
      origin = await startServer([rtmp], originYaml);
      feeder = start(ffmpegPath, [...testSourceArgs({ seconds: 120 }), '-f', 'flv', `rtmp://127.0.0.1:${originPort}/src/cam`]);
      const n0 = seen.length;
      await until(() => seen.length > n0 + 25, 30_000, 'edge receives frames again after the restart');
      await until(() => (origin.server.engine.getStream('pushed/cam')?.tracks[0]?.frames ?? 0) > 10, 30_000, 'push recovered to the new origin');
      assert.equal(edge.server.engine.getStream('live/cam'), edgeStream, 'same stream, subscriber kept');
      assert.equal(backwards, 0, 'timestamps never went back across the restart');
      const l2 = await (await fetch(`${edge.http}/rtmp/api/list`)).json() as any;
      assert.ok(l2.data.pulls[0].retries >= 1);
      // Stop the pull through the API: it stays stopped.
      const stop = await (await fetch(`${edge.http}/rtmp/api/stop/${l2.data.pulls[0].id}`, { method: 'POST' })).json() as any;
      assert.equal(stop.code, 0);
      const l3 = await (await fetch(`${edge.http}/rtmp/api/list`)).json() as any;
      assert.equal(l3.data.pulls.length, 0);
    } finally {
      player.stop?.();
      await feeder?.kill();
      await edge.stop();
      await origin.stop();
    }
  });
});
