// The runtime adapter contract: the same file runs under Node (bundled by esbuild), Bun and Deno, and
// checks that the Runtime for the current runtime (adapters/current.ts) behaves as src/net/types.ts
// promises. Every server and socket is closed in `after`, so Deno's resource sanitizer stays quiet.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rename, writeFile as fsWriteFile } from 'node:fs/promises';
import { Hono } from 'hono';
import { currentRuntime, detectRuntime } from '../adapters/current.ts';
import { directWriteEnabled } from '../adapters/node/direct-write.ts';
import { createBodySink, wsByteSink, type ByteSink } from '../src/net/body.ts';
import { framedConcat } from '../src/net/framing.ts';
import type { HttpServer, Runtime, TcpConn, TcpServer, UdpSocket, WsConn } from '../src/net/types.ts';

const rt: Runtime = await currentRuntime();
const HOST = '127.0.0.1';
const MiB = 1 << 20;

// ---------------------------------------------------------------------------------------------------
// helpers

/** Byte at stream position x of the test pattern: depends on the position, so loss, duplication and
 * reordering all show up as mismatches. */
const patternByte = (x: number) => (x ^ (x >>> 8) ^ (x >>> 16) ^ (x >>> 24)) & 255;

function pattern(offset: number, length: number): Uint8Array {
  const b = new Uint8Array(length);
  for (let i = 0; i < length; i++) b[i] = patternByte(offset + i);
  return b;
}

/** Checks a stream chunk by chunk against the pattern. */
class PatternChecker {
  pos = 0;
  firstMismatch = -1;
  feed(chunk: Uint8Array): void {
    for (let i = 0; i < chunk.byteLength; i++) {
      if (this.firstMismatch < 0 && chunk[i] !== patternByte(this.pos + i)) this.firstMismatch = this.pos + i;
    }
    this.pos += chunk.byteLength;
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.byteLength;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

function deferred<T = void>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Fails (instead of hanging the suite) when `p` takes longer than `ms`. */
async function within<T>(ms: number, p: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** True when `p` settles within `ms`. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<boolean>((r) => {
    timer = setTimeout(() => r(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A sink written as fast as it takes bytes, to see backpressure reach it (the HTTP flood routes). */
interface Flood { sink: ByteSink; written: number; blocked: boolean; finished: boolean; drained: Deferred<void>; done: Deferred<void> }

/**
 * Writes to `sink` through `step` (one write, adding to `written`; false once the sink pushes back)
 * until the sink stays blocked for 500 ms (`blocked`), then waits for its drain (`drained`) and ends it
 * (`done`). Stops at 256 MiB should it never block.
 */
function startFlood(sink: ByteSink, step: (f: Flood) => boolean): Flood {
  const f: Flood = { sink, written: 0, blocked: false, finished: false, drained: deferred(), done: deferred() };
  (async () => {
    while (f.written < 256 * MiB && !sink.closed) {
      while (f.written < 256 * MiB && step(f)) { /* until it pushes back */ }
      const drainedNow = deferred();
      sink.onDrain = () => drainedNow.resolve();
      if (!(await settlesWithin(drainedNow.promise, 500))) {
        f.blocked = true;
        await drainedNow.promise;
        f.drained.resolve();
        break;
      }
    }
    sink.end();
    f.finished = true;
    f.done.resolve();
  })();
  return f;
}

/** Resolves once `cond()` holds; rejects after `ms`. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** Everything a test opened, closed in `after` (connections first, then listeners). */
class Resources {
  conns: TcpConn[] = [];
  servers: (TcpServer | HttpServer | UdpSocket)[] = [];
  conn<T extends TcpConn>(c: T): T {
    this.conns.push(c);
    return c;
  }
  server<T extends TcpServer | HttpServer | UdpSocket>(s: T): T {
    this.servers.push(s);
    return s;
  }
  async closeAll(): Promise<void> {
    for (const c of this.conns) if (!c.closed) c.destroy();
    await until(() => this.conns.every((c) => c.closed), 5000, 'connections to close').catch(() => {});
    for (const s of this.servers) await s.close();
    this.conns = [];
    this.servers = [];
    // Let the runtime finish closing handles before the sanitizer looks.
    await sleep(20);
  }
}

/** Collects exactly `n` bytes from a connection. */
function readBytes(conn: TcpConn, n: number): Promise<Uint8Array> {
  const done = deferred<Uint8Array>();
  const parts: Uint8Array[] = [];
  let got = 0;
  conn.onData = (d) => {
    parts.push(d);
    got += d.byteLength;
    if (got >= n) done.resolve(concat(parts));
  };
  conn.onClose = (err) => {
    if (got < n) done.reject(err ?? new Error(`closed after ${got} of ${n} bytes`));
  };
  return done.promise;
}

/** An echo server that respects backpressure. */
async function echoServer(res: Resources, tls?: { cert: string; key: string }) {
  const accepted: TcpConn[] = [];
  const server = res.server(
    await rt.listenTcp({ port: 0, host: HOST, tls }, (c) => {
      accepted.push(res.conn(c));
      c.onDrain = () => c.resume();
      c.onData = (d) => {
        if (!c.write(d)) c.pause();
      };
    }),
  );
  return { server, accepted };
}

const cert = await rt.readTextFile('test/fixtures/tls-cert.pem');
const key = await rt.readTextFile('test/fixtures/tls-key.pem');

// ---------------------------------------------------------------------------------------------------

describe(`runtime adapter contract on ${rt.name}`, () => {
  it('currentRuntime() returns the adapter of the runtime we are on', () => {
    assert.equal(rt.name, detectRuntime());
    const info = rt.sysinfo();
    assert.equal(info.runtime, rt.name);
    assert.match(info.runtimeVersion, /^\d+\.\d+/);
    assert.ok(info.cpus >= 1);
    assert.ok(info.memory.rss > 0 && info.memory.total > 0);
    assert.equal(typeof info.pid, 'number');
    const expected = rt.env().M7S_TEST_RUNTIME;
    if (expected) assert.equal(expected, rt.name);
  });
});

describe('TCP', () => {
  const res = new Resources();
  after(() => res.closeAll());

  it('echoes 1 MiB byte-exact', async () => {
    const { server, accepted } = await echoServer(res);
    const client = res.conn(await rt.connectTcp({ host: HOST, port: server.port }));
    assert.equal(client.remotePort, server.port);
    const data = pattern(0, MiB);
    const echoed = readBytes(client, data.byteLength);
    for (let off = 0; off < data.byteLength; off += 65536) client.write(data.subarray(off, off + 65536));
    const got = await within(10_000, echoed, 'echo of 1 MiB');
    assert.equal(got.byteLength, data.byteLength);
    assert.ok(sameBytes(got, data), 'echoed bytes differ');
    assert.equal(accepted.length, 1);
    assert.equal(accepted[0]!.remoteAddress, HOST);
    assert.equal(accepted[0]!.remotePort, client.localPort);
    assert.notEqual(accepted[0]!.id, client.id);
  });

  it('reports backpressure past the high-water mark and drains once the peer reads, losing nothing', async () => {
    const CHUNK = 64 * 1024;
    const CAP = 512 * MiB; // far above any kernel buffer: if write() never says false, fail instead
    const hwm = MiB;
    const accepted = deferred<TcpConn>();
    const server = res.server(
      await rt.listenTcp({ port: 0, host: HOST, highWaterMark: hwm }, (c) => {
        accepted.resolve(res.conn(c));
      }),
    );
    // The client does not set onData yet, so it reads nothing and the kernel buffers fill up.
    const client = res.conn(await rt.connectTcp({ host: HOST, port: server.port }));
    const sc = await within(5000, accepted.promise, 'accept');
    // Write until the queue is above the high-water mark and stays there. A false return alone does
    // not prove the peer is slow (Deno's node:net queues a whole synchronous burst before writing any
    // of it), so a false that drains within 300 ms means "keep going".
    let written = 0;
    let blocked = false;
    while (!blocked && written < CAP) {
      const ok = sc.write(pattern(written, CHUNK));
      written += CHUNK;
      if (!ok) {
        const drainedSoon = deferred();
        sc.onDrain = () => drainedSoon.resolve();
        blocked = !(await settlesWithin(drainedSoon.promise, 300));
      } else if (written % (16 * CHUNK) === 0) {
        await sleep(1);
      }
    }
    assert.equal(blocked, true, `the write queue never stayed above the high-water mark (${written} bytes written)`);
    let drains = 0;
    const drained = deferred();
    sc.onDrain = () => {
      drains++;
      drained.resolve();
    };
    const bufferedAtFalse = sc.buffered;
    assert.ok(bufferedAtFalse >= hwm, `buffered ${bufferedAtFalse} should be >= ${hwm} when write() is false`);
    // Writing on anyway keeps returning false and the queue keeps growing.
    for (let i = 0; i < 4; i++) {
      assert.equal(sc.write(pattern(written, CHUNK)), false);
      written += CHUNK;
    }
    assert.ok(sc.buffered >= bufferedAtFalse + 3 * CHUNK, `buffered did not grow: ${sc.buffered}`);
    await sleep(300);
    assert.equal(drains, 0, 'onDrain fired although the peer was not reading');

    // Now the client reads: the queue drains, then the server sends a tail and ends.
    const check = new PatternChecker();
    const clientClosed = deferred<Error | undefined>();
    client.onClose = (err) => clientClosed.resolve(err);
    client.onData = (d) => check.feed(d);
    await within(20_000, drained.promise, 'onDrain after the client started reading');
    assert.equal(sc.buffered < hwm, true);
    sc.write(pattern(written, CHUNK));
    written += CHUNK;
    sc.end();
    const err = await within(20_000, clientClosed.promise, 'client to see the end of the stream');
    assert.equal(err, undefined);
    assert.equal(check.firstMismatch, -1, `data corrupted at byte ${check.firstMismatch}`);
    assert.equal(check.pos, written, 'bytes lost or duplicated');
    assert.equal(drains, 1);
  });

  it('writes go to the socket handle directly on Node and Deno, through socket.write() on Bun', { skip: process.env.M7S_DIRECT_WRITE === '0' && 'M7S_DIRECT_WRITE=0' }, () => {
    // If a runtime release drops the internals adapters/node/direct-write.ts relies on, it falls back
    // silently; this says so.
    assert.equal(directWriteEnabled, rt.name !== 'bun');
  });

  it('bytes queued for a peer that does not read survive the writer dropping its buffers (GC)', async () => {
    // Node's direct write path (adapters/node/direct-write.ts) hands libuv a pointer, not a copy: the
    // request must keep each buffer alive until the kernel took it. Here every chunk is dropped right
    // after write(), then garbage is made until the collector has run, and only then does the peer read.
    const CHUNK = 256 * 1024, COUNT = 48;
    const accepted = deferred<TcpConn>();
    const server = res.server(await rt.listenTcp({ port: 0, host: HOST }, (c) => accepted.resolve(res.conn(c))));
    const client = res.conn(await rt.connectTcp({ host: HOST, port: server.port }));
    const sc = await within(5000, accepted.promise, 'accept');
    for (let i = 0; i < COUNT; i++) sc.write(pattern(i * CHUNK, CHUNK));
    assert.ok(sc.buffered > 0, 'nothing queued: the peer must not be reading yet');
    const gc = (globalThis as { gc?: () => void }).gc;
    for (let round = 0; round < 8; round++) {
      let junk: unknown[] = [];
      for (let i = 0; i < 64; i++) junk.push(new Uint8Array(MiB).fill(round));
      for (let i = 0; i < 200_000; i++) junk.push({ i });
      junk = [];
      gc?.();
      await sleep(5);
    }
    const check = new PatternChecker();
    const closed = deferred<Error | undefined>();
    client.onClose = (err) => closed.resolve(err);
    client.onData = (d) => check.feed(d);
    await within(20_000, until(() => check.pos >= COUNT * CHUNK || client.closed, 20_000, 'all bytes'), 'reading the queued bytes');
    assert.equal(check.firstMismatch, -1, `queued bytes corrupted at ${check.firstMismatch}`);
    assert.equal(check.pos, COUNT * CHUNK, 'bytes lost');
    assert.equal(sc.closed, false, 'the writing side failed');
    sc.end();
    assert.equal(await within(10_000, closed.promise, 'end'), undefined);
  });

  it('fans out the same buffers to 1000 concurrent connections', async () => {
    const N = 1000;
    const FRAMES = 100;
    const SIZE = 1316;
    const accepted: TcpConn[] = [];
    const allAccepted = deferred();
    const server = res.server(
      await rt.listenTcp({ port: 0, host: HOST }, (c) => {
        accepted.push(res.conn(c));
        c.onData = () => {};
        if (accepted.length === N) allAccepted.resolve();
      }),
    );
    const checkers: PatternChecker[] = [];
    const clients: TcpConn[] = [];
    let complete = 0;
    const allReceived = deferred();
    for (let batch = 0; batch < N; batch += 100) {
      const conns = await Promise.all(
        Array.from({ length: Math.min(100, N - batch) }, () => rt.connectTcp({ host: HOST, port: server.port })),
      );
      for (const c of conns) {
        res.conn(c);
        const check = new PatternChecker();
        checkers.push(check);
        clients.push(c);
        c.onData = (d) => {
          check.feed(d);
          if (check.pos === FRAMES * SIZE && ++complete === N) allReceived.resolve();
        };
      }
    }
    await within(10_000, allAccepted.promise, `accepting ${N} connections`);
    const frames = Array.from({ length: FRAMES }, (_, k) => pattern(k * SIZE, SIZE));
    for (let k = 0; k < FRAMES; k++) {
      for (const c of accepted) c.write(frames[k]!);
      if (k % 10 === 9) await sleep(0);
    }
    await within(20_000, allReceived.promise, 'every client to receive every frame');
    assert.equal(clients.length, N);
    for (const check of checkers) {
      assert.equal(check.pos, FRAMES * SIZE);
      assert.equal(check.firstMismatch, -1);
    }
    for (const c of clients) c.end();
    await within(10_000, until(() => accepted.every((c) => c.closed) && clients.every((c) => c.closed), 10_000, 'all closed'), 'close');
  });

  it('writev() sends the chunks in order', async () => {
    const received: Uint8Array[] = [];
    const server = res.server(
      await rt.listenTcp({ port: 0, host: HOST }, (c) => {
        res.conn(c);
        c.onData = (d) => received.push(d);
      }),
    );
    const client = res.conn(await rt.connectTcp({ host: HOST, port: server.port }));
    const sizes = [1, 188, 70_000, 0, 5, 1316, 200_000, 3];
    let off = 0;
    const expected: Uint8Array[] = [];
    for (let round = 0; round < 20; round++) {
      const chunks = sizes.map((n) => {
        const c = pattern(off, n);
        off += n;
        return c;
      });
      expected.push(...chunks);
      // The return value reports the queue against the (default 1 MiB) high-water mark.
      assert.equal(client.writev(chunks), client.buffered < MiB);
    }
    const total = off;
    await within(10_000, until(() => received.reduce((n, c) => n + c.byteLength, 0) >= total, 10_000, 'bytes'), 'writev data');
    assert.ok(sameBytes(concat(received), concat(expected)), 'writev reordered or lost bytes');
  });

  it('TLS: echo through listenTcp({tls}) and connectTcp({tls})', async () => {
    const { server } = await echoServer(res, { cert, key });
    // Not verifying the certificate.
    const c1 = res.conn(await rt.connectTcp({ host: HOST, port: server.port, tls: { rejectUnauthorized: false } }));
    const data = pattern(7, 256 * 1024);
    const echoed = readBytes(c1, data.byteLength);
    c1.write(data);
    assert.ok(sameBytes(await within(10_000, echoed, 'TLS echo'), data));
    // Verifying it against the fixture CA, by host name.
    const c2 = res.conn(await rt.connectTcp({ host: HOST, port: server.port, tls: { ca: cert, servername: 'localhost' } }));
    const small = pattern(99, 1000);
    const echoed2 = readBytes(c2, small.byteLength);
    c2.write(small);
    assert.ok(sameBytes(await within(10_000, echoed2, 'verified TLS echo'), small));
    // And an untrusted certificate is refused by default.
    await assert.rejects(within(10_000, rt.connectTcp({ host: HOST, port: server.port, tls: true }), 'TLS reject'));
  });

  it('connectTcp rejects on a refused port and on a timeout', async () => {
    const tmp = await rt.listenTcp({ port: 0, host: HOST }, (c) => c.destroy());
    const port = tmp.port;
    await tmp.close();
    await assert.rejects(within(10_000, rt.connectTcp({ host: HOST, port }), 'refused'));
    // A plain TCP server that never answers the TLS handshake: only the timeout can end the attempt.
    const silent = res.server(await rt.listenTcp({ port: 0, host: HOST }, (c) => {
      res.conn(c);
      c.onData = () => {};
    }));
    const t0 = Date.now();
    await assert.rejects(
      within(10_000, rt.connectTcp({ host: HOST, port: silent.port, tls: { rejectUnauthorized: false }, timeout: 300 }), 'timeout'),
      /timed out/,
    );
    assert.ok(Date.now() - t0 < 5000);
  });

  it('close: onClose fires exactly once on both sides; destroy() mid-write does not throw', async () => {
    const accepted: TcpConn[] = [];
    const acceptedOne = deferred();
    const server = res.server(
      await rt.listenTcp({ port: 0, host: HOST }, (c) => {
        accepted.push(res.conn(c));
        c.onData = () => {};
        acceptedOne.resolve();
      }),
    );

    // 1. A graceful end() from the client.
    const a = res.conn(await rt.connectTcp({ host: HOST, port: server.port }));
    await within(5000, acceptedOne.promise, 'accept');
    const sa = accepted[0]!;
    const closes = { client: [] as (Error | undefined)[], server: [] as (Error | undefined)[] };
    a.onData = () => {};
    a.onClose = (e) => closes.client.push(e);
    sa.onClose = (e) => closes.server.push(e);
    a.end();
    await within(5000, until(() => a.closed && sa.closed, 5000, 'both closed'), 'graceful close');
    await sleep(100);
    assert.deepEqual(closes.client, [undefined]);
    assert.deepEqual(closes.server, [undefined]);
    assert.equal(a.write(new Uint8Array(10)), false, 'write after close must return false');
    assert.doesNotThrow(() => a.destroy());
    assert.doesNotThrow(() => a.end());

    // 2. The server destroys a connection in the middle of a big write.
    const b = res.conn(await rt.connectTcp({ host: HOST, port: server.port }));
    await until(() => accepted.length === 2, 5000, 'second accept');
    const sb = accepted[1]!;
    let bCloses = 0;
    let sbCloses = 0;
    b.onData = () => {};
    b.onClose = () => bCloses++;
    sb.onClose = () => sbCloses++;
    const big = pattern(0, 4 * MiB);
    assert.doesNotThrow(() => {
      sb.write(big);
      sb.writev([big, big]);
      sb.destroy();
      sb.write(big);
      sb.destroy(new Error('again'));
    });
    await within(5000, until(() => b.closed && sb.closed, 5000, 'both closed after destroy'), 'destroy');
    await sleep(100);
    assert.equal(bCloses, 1);
    assert.equal(sbCloses, 1);

    // 3. A handler that throws (a parser choking on hostile bytes) closes that connection with the
    //    error, and the server keeps accepting.
    const c = res.conn(await rt.connectTcp({ host: HOST, port: server.port }));
    await until(() => accepted.length === 3, 5000, 'third accept');
    const sc = accepted[2]!;
    const scClosed = deferred<Error | undefined>();
    sc.onData = () => {
      throw new Error('bad input');
    };
    sc.onClose = (e) => scClosed.resolve(e);
    c.onData = () => {};
    c.write(new Uint8Array([1, 2, 3]));
    const err = await within(5000, scClosed.promise, 'close after a throwing onData');
    assert.equal(err?.message, 'bad input');
    await within(5000, until(() => c.closed, 5000, 'client sees the close'), 'client close');
    const d = res.conn(await rt.connectTcp({ host: HOST, port: server.port }));
    await until(() => accepted.length === 4, 5000, 'server still accepting');
    d.destroy();
  });
});

describe('UDP', () => {
  const res = new Resources();
  after(() => res.closeAll());

  it('delivers 1000 × 1200 B datagrams with a send window', async () => {
    const COUNT = 1000;
    const SIZE = 1200;
    const WINDOW = 32;
    const receiver = res.server(await rt.bindUdp({ port: 0, host: HOST, recvBufferSize: 1 << 20 }));
    const sender = res.server(await rt.bindUdp({ port: 0, host: HOST }));
    assert.ok(receiver.port > 0 && sender.port > 0);
    const seen = new Uint8Array(COUNT);
    let received = 0;
    let corrupt = 0;
    let wrongSource = 0;
    receiver.onMessage = (data, from) => {
      if (from.port !== sender.port || from.address !== HOST) wrongSource++;
      const seq = data[0]! | (data[1]! << 8);
      if (data.byteLength !== SIZE || seq >= COUNT || !sameBytes(data.subarray(2), pattern(seq * SIZE, SIZE - 2))) {
        corrupt++;
        return;
      }
      if (!seen[seq]) received++;
      seen[seq] = 1;
      // Acknowledge, so the sender can keep a window of packets in flight.
      receiver.send(data.subarray(0, 2), from.port, from.address);
    };
    // Sender: at most WINDOW unacknowledged datagrams in flight (acks carry the sequence number).
    let next = 0;
    const outstanding = new Set<number>();
    let progress = Date.now();
    const packet = (seq: number) => {
      const p = new Uint8Array(SIZE);
      p[0] = seq & 255;
      p[1] = seq >> 8;
      p.set(pattern(seq * SIZE, SIZE - 2), 2);
      return p;
    };
    const pump = () => {
      while (outstanding.size < WINDOW && next < COUNT) {
        outstanding.add(next);
        sender.send(packet(next++), receiver.port, HOST);
      }
    };
    sender.onMessage = (ack) => {
      if (outstanding.delete(ack[0]! | (ack[1]! << 8))) {
        progress = Date.now();
        pump();
      }
    };
    pump();
    // A lost datagram (or ack) would stall the window: after 200 ms without progress, give up on the
    // outstanding ones and go on.
    let stalls = 0;
    await within(
      20_000,
      (async () => {
        while (received < COUNT) {
          await sleep(10);
          if (Date.now() - progress > 200) {
            if (next >= COUNT) break;
            stalls++;
            outstanding.clear();
            progress = Date.now();
            pump();
          }
        }
      })(),
      'UDP transfer',
    );
    assert.equal(corrupt, 0);
    assert.equal(wrongSource, 0);
    assert.ok(received >= COUNT * 0.99, `only ${received} of ${COUNT} datagrams arrived (${stalls} stalls)`);
    // Sending after close is a silent no-op.
    await sender.close();
    assert.doesNotThrow(() => sender.send(new Uint8Array(4), receiver.port, HOST));
  });
});

// Every runtime serves HTTP through m7s's default server (its own on Node and Bun, node:http on Deno)
// and through the runtime's own with global.http.nativeserver (node:http, Bun.serve, Deno's server):
// the contract holds for both.
for (const native of [false, true]) {
  describe(`HTTP${native ? " (the runtime's own server: global.http.nativeserver)" : ''}`, () => {
    const res = new Resources();
    let http: HttpServer;
    let base: string;
    // Per-test coordination between the routes and the clients.
    const gates = new Map<string, Deferred<void>>();
    const liveSinks: { sink: ByteSink; closed: Deferred<Error | undefined>; closes: number }[] = [];
    let flood: Flood | undefined;
    let wsFlood: Flood | undefined;
    let directFlood: (Flood & { direct: boolean }) | undefined;
    const wsEvents: string[] = [];
    let wsServerClose = deferred<{ code: number; reason: string; closed: boolean }>();
    let sinkClosed = deferred<Error | undefined>();

    before(async () => {
      const app = new Hono();
      app.get('/json', (c) => c.json({ ok: true, runtime: rt.name }));

      // Two chunks; the second is only written once the client has read the first.
      app.get('/stream/:id', (c) => {
        const { body, sink } = createBodySink();
        const gate = deferred();
        gates.set(c.req.param('id'), gate);
        sink.write(pattern(0, 1000));
        gate.promise.then(() => {
          sink.writev([pattern(1000, 500), pattern(1500, 20_000)]);
          sink.end();
        });
        return new Response(body, { headers: { 'content-type': 'video/x-flv' } });
      });

      // One chunk, then nothing: only the runtime's cancel() can tell this sink that the client left.
      app.get('/idle', () => {
        const { body, sink } = createBodySink();
        const entry = { sink, closed: deferred<Error | undefined>(), closes: 0 };
        liveSinks.push(entry);
        sink.onClose = (err) => {
          entry.closes++;
          entry.closed.resolve(err);
        };
        sink.write(pattern(0, 1024));
        return new Response(body, { headers: { 'content-type': 'application/octet-stream' } });
      });

      // Writes forever until the client goes away.
      app.get('/live', () => {
        const { body, sink } = createBodySink();
        const entry = { sink, closed: deferred<Error | undefined>(), closes: 0 };
        liveSinks.push(entry);
        let off = 0;
        const timer = setInterval(() => {
          if (sink.closed) return;
          sink.write(pattern(off, 1024));
          off += 1024;
        }, 10);
        sink.onClose = (err) => {
          clearInterval(timer);
          entry.closes++;
          entry.closed.resolve(err);
        };
        sink.write(pattern(off, 1024));
        off += 1024;
        return new Response(body, { headers: { 'content-type': 'application/octet-stream' } });
      });

      // Writes as fast as the client takes it, to see backpressure reach the sink.
      app.get('/flood', () => {
        const { body, sink } = createBodySink({ highWaterMark: MiB });
        const chunk = new Uint8Array(64 * 1024).fill(0x5a);
        flood = startFlood(sink, (f) => { f.written += chunk.byteLength; return sink.write(chunk); });
        return new Response(body);
      });

      app.get('/ws', async (c) => {
        const upgraded = await rt.upgradeWebSocket(c, {
          onOpen(ws) {
            wsEvents.push('open');
            ws.send('hello');
          },
          onMessage(ws, data) {
            wsEvents.push(typeof data === 'string' ? 'text' : data instanceof Uint8Array ? 'binary' : 'other');
            ws.send(data);
          },
          onClose(ws, code, reason) {
            wsEvents.push('close');
            wsServerClose.resolve({ code, reason, closed: ws.closed });
          },
        });
        return upgraded ?? c.text('WebSocket expected', 426);
      });

      // The live-response path the players use (Runtime.streamResponse, as PluginContext.streamBody picks
      // it; a ReadableStream body where the runtime has none): the pattern as fast as the client takes
      // it, through write(), writev() and writeFramed() of a buffer framed for the sink, as shared
      // packagings are.
      app.get('/flood-direct', (c) => {
        const headers = { 'content-type': 'application/octet-stream' };
        const direct = rt.streamResponse?.(c, 200, headers, MiB);
        const { sink, response } = direct ?? (() => {
          const b = createBodySink({ highWaterMark: MiB, copyShared: rt.copySharedBody });
          return { sink: b.sink, response: new Response(b.body, { headers }) };
        })();
        const next = (f: Flood, n: number) => { const p = pattern(f.written, n); f.written += n; return p; };
        directFlood = Object.assign(startFlood(sink, (f) => {
          const k = (f.written / 65_536) % 3 | 0;
          if (k === 0) return sink.write(next(f, 65_536));
          if (k === 1) return sink.writev([next(f, 30_000), next(f, 35_536)]);
          if (!sink.writeFramed) return sink.write(next(f, 65_536));
          return sink.writeFramed(framedConcat(sink.framing ?? '', [next(f, 65_536)], 65_536));
        }), { direct: !!direct });
        return response;
      });

      // Binary messages as fast as the client takes them, through wsByteSink.
      app.get('/ws-flood', async (c) => {
        const upgraded = await rt.upgradeWebSocket(c, {
          onOpen(ws) {
            const sink = wsByteSink(ws, MiB);
            const chunk = new Uint8Array(64 * 1024).fill(0xa5);
            wsFlood = startFlood(sink, (f) => { f.written += chunk.byteLength; return sink.write(chunk); });
          },
        });
        return upgraded ?? c.text('WebSocket expected', 426);
      });

      app.get('/ws-throw', async (c) => {
        const upgraded = await rt.upgradeWebSocket(c, {
          onMessage() {
            throw new Error('hostile frame');
          },
        });
        return upgraded ?? c.text('WebSocket expected', 426);
      });

      app.get('/ws-sink', async (c) => {
        let sink: ByteSink | undefined;
        const upgraded = await rt.upgradeWebSocket(c, {
          onOpen(ws: WsConn) {
            sink = wsByteSink(ws);
            sink.onClose = (err) => sinkClosed.resolve(err);
            assert.equal(sink.write(pattern(0, 3000)), true);
            assert.equal(sink.writev([pattern(3000, 100), pattern(3100, 50_000)]), true);
            sink.end();
          },
          onClose() {
            sink?.end();
          },
        });
        return upgraded ?? c.text('WebSocket expected', 426);
      });

      http = res.server(await rt.serveHttp({ port: 0, host: HOST, native }, app.fetch));
      base = `http://${HOST}:${http.port}`;
    });
    after(() => res.closeAll());

    it('serves JSON', async () => {
      assert.ok(http.port > 0);
      const r = await within(5000, fetch(`${base}/json`), 'GET /json');
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type') ?? '', /application\/json/);
      assert.deepEqual(await r.json(), { ok: true, runtime: rt.name });
    });

    it('streams a body incrementally (chunks arrive before the response ends)', async () => {
      const r = await within(5000, fetch(`${base}/stream/a`), 'GET /stream');
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('content-type'), 'video/x-flv');
      const reader = r.body!.getReader();
      const parts: Uint8Array[] = [];
      // The server holds back the rest until we have the first chunk: this only completes if that
      // chunk is delivered while the response is still open.
      let got = 0;
      while (got < 1000) {
        const { value, done } = await within(5000, reader.read(), 'first chunk');
        assert.equal(done, false, 'stream ended before the first chunk');
        parts.push(value!);
        got += value!.byteLength;
      }
      assert.equal(got, 1000);
      gates.get('a')!.resolve();
      for (;;) {
        const { value, done } = await within(5000, reader.read(), 'rest of the stream');
        if (done) break;
        parts.push(value);
      }
      assert.ok(sameBytes(concat(parts), pattern(0, 21_500)));
    });

    for (const route of ['/live', '/idle']) {
      it(`cancels a streaming body when the client disconnects (${route === '/live' ? 'while writing' : 'idle stream'})`, async () => {
        const ac = new AbortController();
        const r = await within(5000, fetch(`${base}${route}`, { signal: ac.signal }), `GET ${route}`);
        const reader = r.body!.getReader();
        const first = await within(5000, reader.read(), 'first chunk');
        assert.ok(first.value && first.value.byteLength > 0);
        const entry = liveSinks[liveSinks.length - 1]!;
        assert.equal(entry.sink.closed, false);
        ac.abort();
        await reader.read().catch(() => {});
        const err = await within(3000, entry.closed.promise, 'sink.onClose after the client aborted');
        assert.ok(err instanceof Error, 'a cancelled body reports an Error');
        assert.equal(entry.sink.closed, true);
        assert.equal(entry.sink.write(new Uint8Array(10)), false);
        await sleep(50);
        assert.equal(entry.closes, 1);
      });
    }

    it('propagates backpressure from a slow client to the body sink, then drains', async () => {
      const client = res.conn(await rt.connectTcp({ host: HOST, port: http.port }));
      client.write(new TextEncoder().encode(`GET /flood HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`));
      // The client reads nothing until the server-side sink reports that it is blocked.
      await until(() => flood?.blocked === true || flood?.finished === true, 60_000, 'the sink to block on a client that does not read');
      const f = flood!;
      assert.equal(f.blocked, true, `sink never blocked after ${f.written} bytes`);
      assert.ok(f.sink.buffered >= MiB, `sink.buffered ${f.sink.buffered}`);
      let received = 0;
      const closed = deferred();
      client.onClose = () => closed.resolve();
      client.onData = (d) => {
        received += d.byteLength;
      };
      await within(20_000, f.drained.promise, 'onDrain once the client reads');
      await within(20_000, f.done.promise, 'flood end');
      await within(20_000, closed.promise, 'response end');
      assert.ok(received >= f.written, `received ${received} of ${f.written} bytes`);
    });

    it('a live response (Runtime.streamResponse) reports backpressure from a client that does not read, then drains, bytes intact', async () => {
      const client = res.conn(await rt.connectTcp({ host: HOST, port: http.port }));
      client.write(new TextEncoder().encode(`GET /flood-direct HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`));
      await until(() => directFlood?.blocked === true || directFlood?.finished === true, 60_000, 'the sink to block on a client that does not read');
      const f = directFlood!;
      // streamResponse answers requests of m7s's default servers, and of node:http (Node's own server);
      // Bun.serve and Deno's server do not have it.
      assert.equal(f.direct, !native || rt.name === 'node', 'streamResponse used where the server has it');
      assert.equal(f.blocked, true, `sink never blocked after ${f.written} bytes`);
      assert.ok(f.sink.buffered >= MiB, `sink.buffered ${f.sink.buffered}`);
      // Read it all: the head, then the body (chunked, or raw until close), checked against the pattern.
      const parts: Uint8Array[] = [];
      const closed = deferred();
      client.onClose = () => closed.resolve();
      client.onData = (d) => { parts.push(d.slice()); };
      await within(20_000, f.drained.promise, 'onDrain once the client reads');
      await within(20_000, f.done.promise, 'flood end');
      await within(20_000, closed.promise, 'response end');
      const all = concat(parts);
      const text = new TextDecoder('latin1').decode(all.subarray(0, Math.min(all.byteLength, 4096)));
      const headEnd = text.indexOf('\r\n\r\n');
      assert.ok(headEnd > 0, 'response head');
      assert.match(text.slice(0, headEnd), /^HTTP\/1\.1 200/);
      const chunked = /\r\ntransfer-encoding:\s*chunked/i.test(text.slice(0, headEnd));
      const check = new PatternChecker();
      let p = headEnd + 4;
      if (!chunked) check.feed(all.subarray(p));
      else {
        for (;;) {
          let e = p;
          while (e + 1 < all.byteLength && !(all[e] === 13 && all[e + 1] === 10)) e++;
          const size = parseInt(new TextDecoder().decode(all.subarray(p, e)), 16);
          assert.ok(Number.isFinite(size) && e + 2 + size + 2 <= all.byteLength, `chunk header at ${p}`);
          if (size === 0) break;
          check.feed(all.subarray(e + 2, e + 2 + size));
          assert.ok(all[e + 2 + size] === 13 && all[e + 3 + size] === 10, `CRLF after the chunk at ${p}`);
          p = e + 4 + size;
        }
      }
      assert.equal(check.firstMismatch, -1, `body differs at byte ${check.firstMismatch}`);
      assert.equal(check.pos, f.written, `received ${check.pos} of ${f.written} bytes`);
    });

    it('upgrades WebSockets and echoes binary and text', async () => {
      const WS: typeof WebSocket = (globalThis as { WebSocket?: typeof WebSocket }).WebSocket ??
        ((await import('ws')).WebSocket as unknown as typeof WebSocket);
      // A plain GET to the WebSocket route is refused by the route.
      const plain = await within(5000, fetch(`${base}/ws`), 'GET /ws');
      assert.equal(plain.status, 426);
      await plain.text();

      wsServerClose = deferred();
      const ws = new WS(`ws://${HOST}:${http.port}/ws`);
      ws.binaryType = 'arraybuffer';
      const messages: (string | Uint8Array)[] = [];
      const opened = deferred();
      const closed = deferred<number>();
      let want = 3;
      const allIn = deferred();
      ws.onopen = () => opened.resolve();
      ws.onerror = () => opened.reject(new Error('WebSocket error'));
      ws.onmessage = (e: MessageEvent) => {
        messages.push(typeof e.data === 'string' ? e.data : new Uint8Array(e.data as ArrayBuffer));
        if (messages.length === want) allIn.resolve();
      };
      ws.onclose = (e: CloseEvent) => closed.resolve(e.code);
      await within(5000, opened.promise, 'WebSocket open');
      const bin = pattern(11, 100_000);
      ws.send(bin);
      ws.send('héllo ✓');
      await within(5000, allIn.promise, 'echoes');
      assert.equal(messages[0], 'hello');
      assert.ok(messages[1] instanceof Uint8Array && sameBytes(messages[1], bin), 'binary echo differs');
      assert.equal(messages[2], 'héllo ✓');
      ws.close(4001, 'bye');
      const sc = await within(5000, wsServerClose.promise, 'server onClose');
      assert.equal(sc.code, 4001);
      assert.equal(sc.reason, 'bye');
      assert.equal(sc.closed, true);
      await within(5000, closed.promise, 'client close');
      assert.deepEqual(wsEvents, ['open', 'binary', 'text', 'close']);
      want = 0;
    });

    it('wsByteSink writes binary messages and closes normally on end()', async () => {
      const WS: typeof WebSocket = (globalThis as { WebSocket?: typeof WebSocket }).WebSocket ??
        ((await import('ws')).WebSocket as unknown as typeof WebSocket);
      sinkClosed = deferred();
      const ws = new WS(`ws://${HOST}:${http.port}/ws-sink`);
      ws.binaryType = 'arraybuffer';
      const messages: Uint8Array[] = [];
      const closed = deferred<number>();
      ws.onmessage = (e: MessageEvent) => messages.push(new Uint8Array(e.data as ArrayBuffer));
      ws.onclose = (e: CloseEvent) => closed.resolve(e.code);
      assert.equal(await within(5000, closed.promise, 'close from the sink'), 1000);
      assert.equal(messages.length, 2, 'write() is one message, writev() is one message');
      assert.ok(sameBytes(concat(messages), pattern(0, 53_100)));
      assert.equal(await within(5000, sinkClosed.promise, 'sink onClose'), undefined);
    });

    it('wsByteSink reports backpressure from a client that does not read, then drains', async () => {
      // A hand-made WebSocket handshake over a raw TCP client, so that it can stop reading.
      const client = res.conn(await rt.connectTcp({ host: HOST, port: http.port }));
      client.write(new TextEncoder().encode(
        `GET /ws-flood HTTP/1.1\r\nHost: ${HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      ));
      await until(() => wsFlood?.blocked === true || wsFlood?.finished === true, 60_000, 'the WebSocket sink to block');
      const f = wsFlood!;
      assert.equal(f.blocked, true, `the WebSocket sink never blocked after ${f.written} bytes`);
      assert.ok(f.sink.buffered >= MiB, `sink.buffered ${f.sink.buffered}`);
      let received = 0;
      client.onData = (d) => {
        received += d.byteLength;
      };
      await within(20_000, f.drained.promise, 'onDrain once the client reads');
      await within(20_000, f.done.promise, 'flood end');
      await until(() => received >= f.written, 20_000, `all ${f.written} bytes to arrive`);
      client.destroy();
    });

    it('survives garbage requests and handlers that throw', async () => {
      // Not HTTP at all: the connection is answered with an error or closed, and the server carries on.
      const conn = res.conn(await rt.connectTcp({ host: HOST, port: http.port }));
      const closed = deferred();
      const chunks: Uint8Array[] = [];
      conn.onData = (d) => chunks.push(d);
      conn.onClose = () => closed.resolve();
      conn.write(new TextEncoder().encode('\x00\x01GARBAGE \xff\r\n\r\n'));
      await within(5000, closed.promise, 'server to drop a garbage request');
      const answer = new TextDecoder().decode(concat(chunks));
      assert.ok(answer === '' || /^HTTP\/1\.[01] 4\d\d/.test(answer), `unexpected answer: ${answer.slice(0, 80)}`);

      // A WebSocket handler that throws closes that socket with 1011.
      const WS: typeof WebSocket = (globalThis as { WebSocket?: typeof WebSocket }).WebSocket ??
        ((await import('ws')).WebSocket as unknown as typeof WebSocket);
      const ws = new WS(`ws://${HOST}:${http.port}/ws-throw`);
      const wsClosed = deferred<number>();
      ws.onopen = () => ws.send('boom');
      ws.onclose = (e: CloseEvent) => wsClosed.resolve(e.code);
      assert.equal(await within(5000, wsClosed.promise, 'close after a throwing handler'), 1011);

      const r = await within(5000, fetch(`${base}/json`), 'GET /json after abuse');
      assert.equal(r.status, 200);
      await r.json();
    });

    it('serves HTTPS with the tls option', async () => {
      const app = new Hono();
      app.get('/', (c) => c.text('secure'));
      const https = res.server(await rt.serveHttp({ port: 0, host: HOST, tls: { cert, key }, native }, app.fetch));
      // fetch() has no portable way to trust a test CA, so speak HTTP/1.1 over our own TLS client.
      const conn = res.conn(await rt.connectTcp({ host: HOST, port: https.port, tls: { ca: cert, servername: 'localhost' } }));
      const chunks: Uint8Array[] = [];
      const closed = deferred();
      conn.onData = (d) => chunks.push(d);
      conn.onClose = () => closed.resolve();
      conn.write(new TextEncoder().encode(`GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`));
      await within(5000, closed.promise, 'HTTPS response');
      const text = new TextDecoder().decode(concat(chunks));
      assert.match(text, /^HTTP\/1\.1 200/);
      assert.match(text, /secure/);
    });
  });

  describe(`HTTP server close${native ? " (the runtime's own server)" : ''}`, () => {
    const res = new Resources();
    after(() => res.closeAll());

    /** A server with one endless stream route and one WebSocket route, plus a client on each. */
    async function serverWithClients() {
      const sinks: ByteSink[] = [];
      const sinkClosed = deferred<Error | undefined>();
      const app = new Hono();
      app.get('/stream', () => {
        const { body, sink } = createBodySink();
        sinks.push(sink);
        sink.onClose = (err) => sinkClosed.resolve(err);
        sink.write(pattern(0, 100));
        return new Response(body);
      });
      app.get('/ws', async (c) => (await rt.upgradeWebSocket(c, {})) ?? c.text('WebSocket expected', 426));
      const server = await rt.serveHttp({ port: 0, host: HOST, native }, app.fetch);
      const ac = new AbortController();
      const r = await within(5000, fetch(`http://${HOST}:${server.port}/stream`, { signal: ac.signal }), 'GET /stream');
      const reader = r.body!.getReader();
      await within(5000, reader.read(), 'first chunk');
      const WS: typeof WebSocket = (globalThis as { WebSocket?: typeof WebSocket }).WebSocket ??
        ((await import('ws')).WebSocket as unknown as typeof WebSocket);
      const ws = new WS(`ws://${HOST}:${server.port}/ws`);
      const opened = deferred();
      const wsClosed = deferred();
      ws.onopen = () => opened.resolve();
      ws.onclose = () => wsClosed.resolve();
      await within(5000, opened.promise, 'WebSocket open');
      // Whatever happens, release the client side at the end.
      const cleanup = async () => {
        ac.abort();
        await reader.cancel().catch(() => {});
        ws.close();
      };
      return { server, sinks, sinkClosed, wsClosed, cleanup };
    }

    it('close() completes once open streams are ended, and closes WebSockets', async () => {
      const s = await serverWithClients();
      try {
        // What the engine does at shutdown: end every subscriber's sink, then close the server.
        setTimeout(() => s.sinks.forEach((k) => k.end()), 100);
        await within(5000, s.server.close(), 'close()');
        await within(5000, s.wsClosed.promise, 'WebSocket closed by the server');
        await within(5000, s.sinkClosed.promise, 'sink closed');
      } finally {
        await s.cleanup();
      }
    });

    it('close() also ends streams nobody ended', { skip: rt.name === 'deno' && native ? "Deno's own server only shuts down gracefully" : false }, async () => {
      const s = await serverWithClients();
      try {
        await within(5000, s.server.close(), 'close()');
        const err = await within(5000, s.sinkClosed.promise, 'sink cancelled by close()');
        assert.ok(err instanceof Error);
        await within(5000, s.wsClosed.promise, 'WebSocket closed by the server');
      } finally {
        await s.cleanup();
      }
    });
  });
}

describe('files and host', () => {
  const dir = `test-artifacts/adapters-${rt.name}-${Date.now()}`;
  const stops: (() => void)[] = [];
  after(async () => {
    for (const s of stops) s();
    await rt.remove(dir);
  });

  it('reads, writes, appends, stats, lists and removes', async () => {
    await rt.mkdir(`${dir}/sub`);
    await rt.writeFile(`${dir}/a.txt`, 'héllo');
    assert.equal(await rt.readTextFile(`${dir}/a.txt`), 'héllo');
    const bytes = await rt.readFile(`${dir}/a.txt`);
    assert.ok(bytes instanceof Uint8Array);
    assert.equal(bytes.byteLength, 6);
    const w = await rt.openWrite(`${dir}/b.bin`);
    await w.write(pattern(0, 1000));
    await w.write(pattern(1000, 70_000));
    await w.close();
    assert.ok(sameBytes(await rt.readFile(`${dir}/b.bin`), pattern(0, 71_000)));
    const st = await rt.stat(`${dir}/b.bin`);
    assert.equal(st?.size, 71_000);
    assert.equal(st?.isFile, true);
    assert.equal((await rt.stat(`${dir}/sub`))?.isDirectory, true);
    assert.equal(await rt.stat(`${dir}/missing`), null);
    assert.deepEqual((await rt.readDir(dir)).sort(), ['a.txt', 'b.bin', 'sub']);
    await rt.remove(`${dir}/sub`);
    await rt.remove(`${dir}/never-existed`);
    assert.equal(await rt.stat(`${dir}/sub`), null);
  });

  it('watchFile notices in-place writes and rename-over replacement, debounced', async () => {
    const file = `${dir}/config.yaml`;
    await rt.writeFile(file, 'a: 1\n');
    let changes = 0;
    stops.push(rt.watchFile(file, () => changes++));
    await sleep(100);
    // A burst of writes is one change.
    for (let i = 0; i < 5; i++) await rt.writeFile(file, `a: ${i + 2}\n`);
    await within(5000, until(() => changes >= 1, 5000, 'first change'), 'in-place change');
    await sleep(400);
    assert.equal(changes, 1, 'a burst of writes should be reported once');
    // An editor-style save: write a temporary file and rename it over the original.
    await fsWriteFile(`${file}.tmp`, 'a: 100\nb: 2\n');
    await rename(`${file}.tmp`, file);
    await within(5000, until(() => changes >= 2, 5000, 'second change'), 'rename-over change');
    // And the watch still works after the rename.
    await sleep(300);
    await rt.writeFile(file, 'a: 101\nbb: 3\n');
    await within(5000, until(() => changes >= 3, 5000, 'third change'), 'change after rename');
  });
});
