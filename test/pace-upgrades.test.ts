// paceUpgrades (adapters/node/runtime.ts): on Bun, a burst of WebSocket upgrades is served a few
// milliseconds per event-loop turn so that other sockets (a publisher) are read between turns. The
// logic is runtime-free; here it drives a plain EventEmitter standing in for the node:http server,
// with listeners that cost 1 ms each, on every runtime.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Server } from 'node:http';
import { paceUpgrades } from '../adapters/node/runtime.ts';

const busy = (ms: number) => { const end = performance.now() + ms; while (performance.now() < end) { /* spin */ } };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A fake upgrade: the listener's (req, socket, head) with a socket that records destroy(). */
type FakeSocket = { destroyed: boolean; destroy(): void };
const upgrade = (i: number): [{ i: number }, FakeSocket, Uint8Array] =>
  [{ i }, { destroyed: false, destroy() { this.destroyed = true; } }, new Uint8Array(0)];

describe('paceUpgrades: a burst of WebSocket upgrades spread over event-loop turns', () => {
  it('serves the first ~5 ms of a burst at once, the rest in later turns, in order, with other work in between', async () => {
    const server = new EventEmitter();
    const served: { i: number; turn: number }[] = [];
    let turn = 0; // advanced by a timer: counts the loop turns that other work got
    server.on('upgrade', (req: { i: number }) => { busy(1); served.push({ i: req.i, turn }); });
    paceUpgrades(server as unknown as Server);
    assert.equal(server.listenerCount('upgrade'), 1);

    const ticker = setInterval(() => { turn++; }, 0);
    let atOnce: number;
    try {
      for (let i = 0; i < 60; i++) server.emit('upgrade', ...upgrade(i)); // one burst, as in Bun's accept loop
      atOnce = served.length;
      const deadline = Date.now() + 10_000;
      while (served.length < 60 && Date.now() < deadline) await sleep(5);
    } finally {
      clearInterval(ticker);
    }
    assert.ok(atOnce >= 1 && atOnce <= 7, `served within the burst's own turn: ${atOnce} (budget 5 ms, 1 ms each)`);

    assert.deepEqual(served.map((s) => s.i), Array.from({ length: 60 }, (_, i) => i), 'every upgrade served once, in arrival order');
    const perTurn = new Map<number, number>();
    for (const s of served) perTurn.set(s.turn, (perTurn.get(s.turn) ?? 0) + 1);
    assert.ok(perTurn.size >= 6, `upgrades spread over ${perTurn.size} turns (60 upgrades of 1 ms, 5 ms per turn)`);
    assert.ok(Math.max(...perTurn.values()) <= 7, `at most ~5 ms of upgrades per turn: ${JSON.stringify([...perTurn])}`);
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
