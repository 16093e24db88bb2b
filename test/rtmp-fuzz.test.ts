// Hostile input for the RTMP plugin: the handshake parser, the chunk reader and the command decoder get
// random bytes, truncations and bit flips of valid captures (seeded, reproducible); then a running
// server gets a few hundred hostile connections while a player keeps receiving a stream.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { currentRuntime } from '../adapters/current.ts';
import rtmp from '../plugins/rtmp/index.ts';
import { ServerHandshake, digestPacket, HandshakeError, plainPacket } from '../plugins/rtmp/handshake.ts';
import { ChunkReader, chunkMessage, MSG, type1Header, chunkBody, basicHeader } from '../plugins/rtmp/chunk.ts';
import { decodeCommand } from '../plugins/rtmp/conn.ts';
import { amf0Encode } from '../src/format/amf.ts';
import { RtmpClient, parseRtmpUrl } from '../plugins/rtmp/client.ts';
import { FormatError } from '../src/format/bytes.ts';
import { SyntheticSource } from '../src/core/synthetic.ts';
import { Logger } from '../src/log.ts';
import { sleep, startServer, until } from './helpers/media.ts';

const rt = await currentRuntime();
const CASES = 100_000;

/** mulberry32: a small seeded PRNG. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (n: number) => Math.floor(next() * n) };
}

type Rand = ReturnType<typeof prng>;

function randomBytes(r: Rand, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = r.int(256);
  return b;
}

/** One mutation of a valid capture: truncation, bit flips, byte overwrites, a random splice, or noise. */
function mutate(r: Rand, valid: Uint8Array): Uint8Array {
  switch (r.int(5)) {
    case 0: return valid.subarray(0, r.int(valid.length + 1));
    case 1: {
      const b = valid.slice();
      for (let k = 1 + r.int(8); k > 0; k--) b[r.int(b.length)] ^= 1 << r.int(8);
      return b;
    }
    case 2: {
      const b = valid.slice();
      for (let k = 1 + r.int(4); k > 0; k--) b[r.int(b.length)] = [0, 0xff, 0x7f, 0x80, 3, 6][r.int(6)];
      return b;
    }
    case 3: {
      const at = r.int(valid.length);
      const b = new Uint8Array(valid.length + 16);
      b.set(valid.subarray(0, at));
      b.set(randomBytes(r, 16), at);
      b.set(valid.subarray(at), at + 16);
      return b;
    }
    default: return randomBytes(r, r.int(valid.length * 2 + 1));
  }
}

/** Feed `data` in random slices. */
function slices(r: Rand, data: Uint8Array, fn: (b: Uint8Array) => void): void {
  for (let i = 0; i < data.length;) {
    const n = 1 + r.int(r.next() < 0.5 ? 16 : 2048);
    fn(data.subarray(i, i + n));
    i += n;
  }
}

/** Run `cases` cases; every thrown error must be one of `clean`. Reports the slowest case and heap growth. */
function fuzz(name: string, cases: number, seed: number, clean: (e: unknown) => boolean, one: (r: Rand, i: number) => void) {
  const r = prng(seed);
  const heap0 = process.memoryUsage().heapUsed;
  let slowest = 0, errors = 0;
  const t0 = Date.now();
  for (let i = 0; i < cases; i++) {
    const s = performance.now();
    try { one(r, i); } catch (e) {
      errors++;
      if (!clean(e)) throw new Error(`${name} case ${i} (seed ${seed}): unclean error ${(e as Error)?.name}: ${(e as Error)?.message}\n${(e as Error)?.stack}`);
    }
    const d = performance.now() - s;
    if (d > slowest) slowest = d;
  }
  (globalThis as { gc?: () => void }).gc?.();
  const grown = process.memoryUsage().heapUsed - heap0;
  console.log(`${name}: ${cases} cases in ${Date.now() - t0} ms, ${errors} clean errors, slowest case ${slowest.toFixed(1)} ms, heap +${(grown / 1048576).toFixed(1)} MiB`);
  assert.ok(slowest < 1000, `${name}: a case took ${slowest} ms`);
  assert.ok(grown < 64 * 1048576, `${name}: heap grew ${grown} bytes`);
}

describe('rtmp fuzz: parsers', () => {
  it(`handshake parser: ${CASES} cases`, () => {
    const c0 = new Uint8Array([3]);
    const captures = [digestPacket('client', 0), digestPacket('client', 1), plainPacket()].map((c1) => {
      const b = new Uint8Array(1 + 1536 * 2 + 20);
      b.set(c0); b.set(c1, 1);
      return b;
    });
    let done = 0;
    fuzz('handshake', CASES, 1, (e) => e instanceof HandshakeError, (r) => {
      const input = r.next() < 0.8 ? mutate(r, captures[r.int(captures.length)]) : randomBytes(r, r.int(4000));
      const hs = new ServerHandshake();
      let finished = false;
      slices(r, input, (b) => {
        if (finished) return;
        const st = hs.feed(b);
        if (st.done) { finished = true; done++; }
      });
    });
    assert.ok(done > 1000, `some cases complete the handshake (${done})`);
  });

  it(`chunk reader: ${CASES} cases`, () => {
    // A valid capture: Set Chunk Size-sized chunks of every header type, an extended timestamp, csids of all sizes.
    const body = (n: number) => new Uint8Array(n).map((_, i) => i);
    const parts: Uint8Array[] = [
      ...chunkMessage(2, MSG.SET_CHUNK_SIZE, 0, 0, [new Uint8Array([0, 0, 0, 64])], 128),
      ...chunkMessage(6, MSG.VIDEO, 1, 100, [body(200)], 64),
      type1Header(6, 40, 150, MSG.VIDEO), ...chunkBody(6, [body(150)], 64),
      new Uint8Array([...basicHeader(2, 6), 0, 0, 40]), ...chunkBody(6, [body(150)], 64),
      basicHeader(3, 6), ...chunkBody(6, [body(150)], 64),
      ...chunkMessage(300, MSG.AUDIO, 1, 0x1000000, [body(130)], 64),
      ...chunkMessage(70, MSG.COMMAND_AMF0, 0, 0, [amf0Encode('connect', 1, { app: 'live', tcUrl: 'rtmp://h/live' })], 64),
    ];
    let n = 0;
    for (const p of parts) n += p.length;
    const capture = new Uint8Array(n);
    n = 0;
    for (const p of parts) { capture.set(p, n); n += p.length; }
    let messages = 0;
    fuzz('chunk reader', CASES, 2, (e) => e instanceof FormatError, (r) => {
      const input = r.next() < 0.85 ? mutate(r, capture) : randomBytes(r, r.int(3000));
      const reader = new ChunkReader((m) => {
        messages++;
        if (m.type === MSG.SET_CHUNK_SIZE && m.payload.length >= 4) reader.setChunkSize(((m.payload[0] << 24) | (m.payload[1] << 16) | (m.payload[2] << 8) | m.payload[3]) >>> 0);
      }, { maxMessageSize: 1 << 20, maxChunkStreams: 16 });
      slices(r, input, (b) => reader.feed(b));
      assert.ok(reader.pendingBytes <= 2 << 20);
    });
    assert.ok(messages > CASES, `messages decoded: ${messages}`);
  });

  it(`command decoder (AMF0/AMF3 commands): ${CASES} cases`, () => {
    const captures = [
      amf0Encode('connect', 1, { app: 'live', flashVer: 'FMLE/3.0', tcUrl: 'rtmp://h/live', fpad: false, capabilities: 15, audioCodecs: 4071, videoCodecs: 252, videoFunction: 1, objectEncoding: 0, fourCcList: ['hvc1', 'av01'] }),
      amf0Encode('publish', 0, null, 'x?secret=abc&expire=ffff', 'live'),
      amf0Encode('_result', 1, { fmsVer: 'FMS/3,5,7,7009' }, { level: 'status', code: 'NetConnection.Connect.Success', list: [1, 2, { a: null }], d: new Date(0) }),
      new Uint8Array([0, ...amf0Encode('play', 4, null, 'x', -2000)]),
      // AMF3 inside: the avmplus marker then an AMF3 object with traits and references.
      new Uint8Array([...amf0Encode('onStatus', 0, null), 0x11, 0x0a, 0x0b, 0x01, 0x09, 0x63, 0x6f, 0x64, 0x65, 0x06, 0x05, 0x6f, 0x6b, 0x01]),
    ];
    let ok = 0;
    fuzz('command decoder', CASES, 3, (e) => e instanceof FormatError, (r) => {
      const i = r.int(captures.length);
      const payload = r.next() < 0.85 ? mutate(r, captures[i]) : randomBytes(r, r.int(600));
      decodeCommand({ type: i === 3 ? MSG.COMMAND_AMF3 : MSG.COMMAND_AMF0, payload, streamId: 0 });
      ok++;
    });
    assert.ok(ok > 1000, `valid decodes: ${ok}`);
  });
});

// ---------------------------------------------------------------------------------------------------

describe('rtmp fuzz: hostile connections against a running server', () => {
  it('a few hundred hostile connections; a player keeps receiving; the server keeps answering', async () => {
    const s = await startServer([rtmp], `rtmp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\n  handshaketimeout: 1s\n  idletimeout: 2s\n  maxmessagesize: 1048576\n`);
    const port = s.port('rtmp', 'tcp');
    const pub = await s.server.engine.publish('live/fz', { protocol: 'test' });
    const src = new SyntheticSource(pub, { fps: 25, gop: 25 });
    src.start();
    const u = parseRtmpUrl(`rtmp://127.0.0.1:${port}/live/fz`);
    const player = new RtmpClient(await rt.connectTcp({ host: u.host, port: u.port }), Logger.silent(), 16 << 20);
    try {
      await player.open(u, 4096, 5000);
      const arrivals: number[] = [];
      player.onMediaMessage = (m) => { if (m.type === MSG.VIDEO) arrivals.push(Date.now()); };
      const sid = (await player.call(5000, 'createStream', null)).args[0] as number;
      player.sendCommand(sid, 'play', 0, null, 'fz', -2000);
      await player.waitStatus(sid, /Play\.Start$/, 5000);
      await until(() => arrivals.length > 10, 5000, 'player receiving');

      const r = prng(42);
      const valid = new Uint8Array([3, ...plainPacket(), ...new Uint8Array(1536)]);
      const connectCmd = chunkMessage(3, MSG.COMMAND_AMF0, 0, 0, [amf0Encode('connect', 1, { app: 'live' })], 128);
      const kinds = ['random', 'bad-version', 'garbage-chunks', 'huge-message', 'bad-amf', 'many-csids', 'slow', 'flipped-session'];
      const used = new Map<string, number>();
      const hostile = async (i: number) => {
        const kind = kinds[i % kinds.length];
        used.set(kind, (used.get(kind) ?? 0) + 1);
        let c;
        try { c = await rt.connectTcp({ host: '127.0.0.1', port }); } catch { return; }
        const closed = new Promise<void>((res) => { c.onClose = () => res(); });
        c.onData = () => {};
        const send = (b: Uint8Array) => { if (!c.closed) c.write(b); };
        switch (kind) {
          case 'random': send(randomBytes(r, 1 + r.int(5000))); break;
          case 'bad-version': send(new Uint8Array([6, ...randomBytes(r, 1536)])); break;
          case 'garbage-chunks': send(valid); send(randomBytes(r, 2000)); break;
          case 'huge-message': send(valid); send(new Uint8Array([0x04, 0, 0, 0, 0xff, 0xff, 0xff, 9, 1, 0, 0, 0, 1, 2, 3])); break;
          case 'bad-amf': send(valid); for (const p of chunkMessage(3, MSG.COMMAND_AMF0, 0, 0, [randomBytes(r, 300)], 128)) send(p); break;
          case 'many-csids': send(valid); for (let k = 2; k < 200; k++) for (const p of chunkMessage(k, 9, 1, 0, [new Uint8Array(10)], 128)) send(p); break;
          case 'slow': send(valid.subarray(0, 100)); break; // then nothing: the handshake timeout closes it
          case 'flipped-session': {
            const parts = [valid, ...connectCmd, ...chunkMessage(3, MSG.COMMAND_AMF0, 0, 0, [amf0Encode('createStream', 2, null)], 128)];
            for (const p of parts) send(mutate(r, p));
            break;
          }
        }
        // The server closes it (protocol error, handshake/idle timeout); don't wait forever.
        await Promise.race([closed, sleep(4000)]);
        if (!c.closed) c.destroy();
      };
      const before = arrivals.length;
      const t0 = Date.now();
      const N = 320;
      for (let i = 0; i < N; i += 80) await Promise.all(Array.from({ length: 80 }, (_, k) => hostile(i + k)));
      const elapsed = Date.now() - t0;
      // The player never stalled: video kept arriving with no gap over 1 s during the attack.
      const during = arrivals.filter((t) => t >= t0);
      let gap = 0;
      for (let i = 1; i < during.length; i++) gap = Math.max(gap, during[i] - during[i - 1]);
      const expected = (elapsed / 1000) * 25;
      console.log(`hostile: ${N} connections (${[...used].map(([k, v]) => `${k}×${v}`).join(', ')}) in ${elapsed} ms; player got ${arrivals.length - before} video messages (expected ~${expected.toFixed(0)}), longest gap ${gap} ms`);
      assert.ok(gap < 1000, `longest gap ${gap} ms`);
      assert.ok(arrivals.length - before > expected * 0.9, 'player kept up');
      const res = await fetch(`${s.http}/api/sysinfo`);
      assert.equal(res.status, 200);
      await res.body?.cancel();
      // Every hostile session is gone; only the player's remains.
      await until(async () => ((await (await fetch(`${s.http}/rtmp/api/list`)).json()) as any).data.sessions.length === 1, 5000, 'hostile sessions cleaned up');
    } finally {
      player.close();
      src.stop();
      await s.stop();
    }
  });
});
