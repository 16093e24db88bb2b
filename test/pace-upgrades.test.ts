// paceUpgrades (adapters/node/runtime.ts): on Bun, a burst of WebSocket upgrades is served a few
// milliseconds per event-loop turn so that other sockets (a publisher) are read between turns. The
// logic is runtime-free; here it drives a plain EventEmitter standing in for the node:http server,
// with listeners that cost 1 ms each, on every runtime; a real TCP connection stands in for the
// publisher whose bytes must be read between the turns.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import type { Server } from 'node:http';
import { paceUpgrades } from '../adapters/node/runtime.ts';

const busy = (ms: number) => { const end = performance.now() + ms; while (performance.now() < end) { /* spin */ } };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A fake upgrade: the listener's (req, socket, head) with a socket that records destroy(). */
type FakeSocket = { destroyed: boolean; destroy(): void };
const upgrade = (i: number): [{ i: number }, FakeSocket, Uint8Array] =>
  [{ i }, { destroyed: false, destroy() { this.destroyed = true; } }, new Uint8Array(0)];

describe('paceUpgrades: a burst of WebSocket upgrades spread over event-loop turns', () => {
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
    paceUpgrades(server as unknown as Server);
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
    const perTurn = new Map<number, number>();
    for (const s of served) perTurn.set(s.turn, (perTurn.get(s.turn) ?? 0) + 1);
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
    paceUpgrades(server as unknown as Server);
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

  it('leaves a server without upgrade listeners alone', () => {
    const server = new EventEmitter();
    paceUpgrades(server as unknown as Server);
    assert.equal(server.listenerCount('upgrade'), 0);
  });
});
