// paceRequests (adapters/node/runtime.ts): on Bun, a burst of requests and WebSocket upgrades is
// served a few milliseconds per event-loop turn so that other sockets (a publisher) are read between
// turns. The logic is runtime-free; here it drives a plain EventEmitter standing in for the node:http
// server, with listeners that cost 1 ms each, on every runtime; a real TCP connection stands in for the
// publisher whose bytes must be read between the turns. Last, a real node:http server under the pacer:
// requests served in later turns still get their bodies.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import type { Server } from 'node:http';
import { createServer as createHttpServer } from 'node:http';
import { paceRequests } from '../adapters/node/runtime.ts';

const busy = (ms: number) => { const end = performance.now() + ms; while (performance.now() < end) { /* spin */ } };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A fake upgrade: the listener's (req, socket, head) with a socket that records destroy(). */
type FakeSocket = { destroyed: boolean; destroy(): void };
const upgrade = (i: number): [{ i: number }, FakeSocket, Uint8Array] =>
  [{ i }, { destroyed: false, destroy() { this.destroyed = true; } }, new Uint8Array(0)];

describe('paceRequests: a burst of requests and WebSocket upgrades spread over event-loop turns', () => {
  it('serves the first ~5 ms of a burst at once, the rest in later turns, in order, reading sockets in between', async () => {
    // The "publisher": a socket that receives a byte every 2 ms; `received` counts its data events.
    let received = 0;
    const tcp = createServer((s) => s.on('data', () => { received++; }));
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', () => r()));
    const feeder: Socket = connect((tcp.address() as AddressInfo).port, '127.0.0.1');
    await new Promise<void>((r) => feeder.once('connect', () => r()));
    const feed = setInterval(() => feeder.write('x'), 2);
    await sleep(20);

    const server = new EventEmitter();
    const served: { i: number; turn: number; received: number }[] = [];
    // Loop turns: an immediate that re-arms itself runs once per turn of the event loop, as the
    // queue's own immediates do.
    let turn = 0, ticking = true;
    const tick = () => { turn++; if (ticking) setImmediate(tick); };
    setImmediate(tick);
    server.on('upgrade', (req: { i: number }) => { busy(1); served.push({ i: req.i, turn, received }); });
    paceRequests(server as unknown as Server);
    assert.equal(server.listenerCount('upgrade'), 1);

    let atOnce: number;
    try {
      for (let i = 0; i < 60; i++) server.emit('upgrade', ...upgrade(i)); // one burst, as in Bun's accept loop
      atOnce = served.length;
      const deadline = Date.now() + 10_000;
      while (served.length < 60 && Date.now() < deadline) await sleep(5);
    } finally {
      ticking = false;
      clearInterval(feed);
      feeder.destroy();
      tcp.close();
    }
    assert.ok(atOnce >= 1 && atOnce <= 7, `served within the burst's own turn: ${atOnce} (budget 5 ms, 1 ms each)`);

    assert.deepEqual(served.map((s) => s.i), Array.from({ length: 60 }, (_, i) => i), 'every upgrade served once, in arrival order');
    // Per turn of the queue (the burst's own turn counted above: the queue's first turn may run before
    // the turn counter's first immediate does).
    const perTurn = new Map<number, number>();
    for (const s of served.slice(atOnce)) perTurn.set(s.turn, (perTurn.get(s.turn) ?? 0) + 1);
    assert.ok(perTurn.size >= 6, `upgrades spread over ${perTurn.size} turns (60 upgrades of 1 ms, 5 ms per turn)`);
    assert.ok(Math.max(...perTurn.values()) <= 7, `at most ~5 ms of upgrades per turn: ${JSON.stringify([...perTurn])}`);
    // The socket's bytes were read while the queue was served, not only after it: of the turns after
    // the first, most saw new data events before they began.
    const firsts: number[] = [];
    served.forEach((s, k) => { if (k === 0 || s.turn !== served[k - 1]!.turn) firsts.push(s.received); });
    let readBetween = 0;
    for (let k = 1; k < firsts.length; k++) if (firsts[k]! > firsts[k - 1]!) readBetween++;
    assert.ok(readBetween >= (firsts.length - 1) / 2, `data read between ${readBetween} of ${firsts.length - 1} turn pairs`);
  });

  it('outside a burst upgrades are served at once; a listener that throws costs only its own socket', async () => {
    const server = new EventEmitter();
    const served: number[] = [];
    server.on('upgrade', (req: { i: number }) => { if (req.i === 1) throw new Error('bad upgrade'); served.push(req.i); });
    paceRequests(server as unknown as Server);
    const a = upgrade(0), b = upgrade(1), c = upgrade(2);
    server.emit('upgrade', ...a);
    assert.deepEqual(served, [0], 'served in the same turn');
    await sleep(20);
    server.emit('upgrade', ...b);
    server.emit('upgrade', ...c);
    assert.equal(b[1].destroyed, true, 'the socket whose listener threw is destroyed');
    assert.equal(c[1].destroyed, false);
    assert.deepEqual(served, [0, 2]);
  });

  it('leaves a server without listeners alone', () => {
    const server = new EventEmitter();
    paceRequests(server as unknown as Server);
    assert.equal(server.listenerCount('upgrade'), 0);
    assert.equal(server.listenerCount('request'), 0);
  });

  it('requests and upgrades share one queue and one budget: served in arrival order across turns', async () => {
    const server = new EventEmitter();
    const served: string[] = [];
    const turns = new Set<number>();
    let turn = 0, ticking = true;
    const tick = () => { turn++; if (ticking) setImmediate(tick); };
    setImmediate(tick);
    server.on('request', (req: { i: number }) => { busy(1); served.push(`r${req.i}`); turns.add(turn); });
    server.on('upgrade', (req: { i: number }) => { busy(1); served.push(`u${req.i}`); turns.add(turn); });
    paceRequests(server as unknown as Server);
    const sent: string[] = [];
    let atOnce: number;
    try {
      for (let i = 0; i < 40; i++) {
        if (i % 3 === 0) { server.emit('upgrade', ...upgrade(i)); sent.push(`u${i}`); } else { server.emit('request', ...upgrade(i)); sent.push(`r${i}`); }
      }
      atOnce = served.length;
      const deadline = Date.now() + 10_000;
      while (served.length < 40 && Date.now() < deadline) await sleep(5);
    } finally {
      ticking = false;
    }
    assert.ok(atOnce >= 1 && atOnce <= 7, `one budget for both kinds in the burst's turn: ${atOnce} served at once`);
    assert.deepEqual(served, sent, 'every request and upgrade served once, in arrival order');
    assert.ok(turns.size >= 5, `spread over ${turns.size} turns`);
  });

  it('a real node:http server: requests served in later turns get their bodies and answers', async () => {
    const servedAt = new Map<string, number>(), arrivedAt = new Map<string, number>();
    const server = createHttpServer((req, res) => {
      servedAt.set(req.url!, performance.now());
      busy(2);
      let n = 0, sum = 0;
      req.on('data', (d: Uint8Array) => { n += d.length; for (const b of d) sum = (sum + b) % 65521; });
      req.on('end', () => res.end(`${req.method} ${req.url} ${n} ${sum}`));
    });
    paceRequests(server);
    // Added after the pacer, so not paced: when each request arrived (after its handler if served at once).
    server.on('request', (req) => { arrivedAt.set(req.url!, performance.now()); });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as AddressInfo).port;
    const body = (i: number) => { const b = new Uint8Array(20_000 + i); for (let k = 0; k < b.length; k++) b[k] = (k * 7 + i) & 0xff; return b; };
    const sumOf = (b: Uint8Array) => { let s = 0; for (const x of b) s = (s + x) % 65521; return s; };
    const socks: Socket[] = [];
    try {
      // Thirty connections first, then every request written at once: the server reads them in a burst.
      for (let i = 0; i < 30; i++) {
        const c = connect(port, '127.0.0.1');
        await new Promise<void>((r) => c.once('connect', () => r()));
        socks.push(c);
      }
      const answers = socks.map((c, i) => new Promise<{ i: number; post: boolean; text: string }>((resolve, reject) => {
        let got = '';
        c.setEncoding('latin1');
        c.on('data', (d: string) => { got += d; });
        c.on('end', () => resolve({ i, post: i % 2 === 1, text: got }));
        c.on('error', reject);
      }));
      socks.forEach((c, i) => {
        const post = i % 2 === 1, b = post ? body(i) : new Uint8Array(0);
        c.write(`${post ? 'POST' : 'GET'} /x${i} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: ${b.length}\r\n\r\n`);
        if (post) c.write(b);
      });
      for (const a of await Promise.all(answers)) {
        assert.match(a.text, /^HTTP\/1\.1 200 /, `request ${a.i} answered`);
        assert.ok(a.text.endsWith(a.post ? `POST /x${a.i} ${20_000 + a.i} ${sumOf(body(a.i))}` : `GET /x${a.i} 0 0`), `request ${a.i}: ${a.text.slice(-40)}`);
      }
      const deferred = [...servedAt].filter(([u, t]) => t > arrivedAt.get(u)!).map(([u]) => Number(u.slice(2)));
      assert.ok(deferred.some((i) => i % 2 === 1), `some POSTs waited in the queue and still got their bodies (deferred: ${deferred.join(' ')})`);
    } finally {
      for (const c of socks) c.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
