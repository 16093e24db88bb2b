// The UDP contract of the runtime adapter (UdpSocket: errors, receive buffer, multicast) and the UDP
// seams above it (port pairs from a range, the peer demux, the plugin's ephemeral sockets), on Node,
// Bun and Deno. All traffic stays on 127.0.0.0/8 (multicast leaves by the loopback interface, TTL 0/1).

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { currentRuntime } from '../adapters/current.ts';
import type { Runtime, UdpSocket } from '../src/net/types.ts';
import { bindUdpPair, evenPairsIn, parsePortRange, PortRangeExhaustedError, UdpDemux } from '../src/net/udp.ts';
import { Server } from '../src/server.ts';
import { definePlugin, type PluginContext } from '../src/plugin.ts';
import { Logger } from '../src/log.ts';

const rt: Runtime = await currentRuntime();
const HOST = '127.0.0.1';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const open: UdpSocket[] = [];
async function bind(opts: Parameters<Runtime['bindUdp']>[0]): Promise<UdpSocket> {
  const s = await rt.bindUdp(opts);
  open.push(s);
  return s;
}

/** Resolves with the first datagram `s` receives (or rejects after `ms`). */
function nextMessage(s: UdpSocket, ms = 3000): Promise<{ data: Uint8Array; from: { address: string; port: number } }> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no datagram on port ${s.port} within ${ms} ms`)), ms);
    s.onMessage = (data, from) => { clearTimeout(t); s.onMessage = null; resolve({ data, from }); };
  });
}

/** A random base for a private port range, so parallel runs (and other agents) rarely collide. */
const randomBase = () => 20000 + 2 * Math.floor(Math.random() * 15000);

describe(`UDP adapter contract (${rt.name})`, () => {
  after(async () => { for (const s of open.splice(0)) await s.close(); });

  it('sends and receives, reports the source address, and closes once', async () => {
    const a = await bind({ port: 0, host: HOST });
    const b = await bind({ port: 0, host: HOST });
    const got = nextMessage(b);
    a.send(new Uint8Array([1, 2, 3]), b.port, HOST);
    const m = await got;
    assert.deepEqual([...m.data], [1, 2, 3]);
    assert.deepEqual(m.from, { address: HOST, port: a.port });
    assert.equal(a.closed, false);
    await a.close();
    assert.equal(a.closed, true);
    await a.close(); // twice is fine
    a.send(new Uint8Array([9]), b.port, HOST); // after close: dropped, no throw
  });

  it('reports a failed send through onError and keeps the socket usable', async () => {
    const a = await bind({ port: 0, host: HOST });
    const b = await bind({ port: 0, host: HOST });
    const errors: Error[] = [];
    a.onError = (e) => errors.push(e);
    a.send(new Uint8Array([1]), 0, HOST); // port 0: the runtime refuses the send
    a.send(new Uint8Array([1]), 5000, 'not-an-address.invalid'); // name that cannot resolve
    for (let i = 0; i < 50 && errors.length < 2; i++) await sleep(50);
    assert.ok(errors.length >= 1, 'a bad send reaches onError');
    assert.ok(errors.every((e) => e instanceof Error && e.message.length > 0));
    const got = nextMessage(b);
    a.send(new Uint8Array([7]), b.port, HOST);
    assert.deepEqual([...(await got).data], [7]);
  });

  it('sets the kernel receive buffer (bind option and later call)', async () => {
    const small = await bind({ port: 0, host: HOST, recvBufferSize: 64 * 1024 });
    const big = await bind({ port: 0, host: HOST, recvBufferSize: 1 << 20 });
    const s1 = small.getRecvBufferSize(), s2 = big.getRecvBufferSize();
    // Linux doubles what was asked and caps at net.core.rmem_max (4 MiB here).
    assert.ok(s1 >= 64 * 1024 && s1 < 1 << 20, `small buffer ${s1}`);
    assert.ok(s2 >= 1 << 20, `big buffer ${s2}`);
    small.setRecvBufferSize(512 * 1024);
    assert.ok(small.getRecvBufferSize() >= 512 * 1024);
    await small.close();
    assert.equal(small.getRecvBufferSize(), 0);
    assert.throws(() => small.setRecvBufferSize(1024), /closed/);
  });

  it('joins a multicast group on loopback: two members on one port both receive, TTL/interface/loopback set', async () => {
    const group = `239.255.${1 + Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
    const r1 = await bind({ port: 0, host: '0.0.0.0', reuseAddr: true });
    const r2 = await bind({ port: r1.port, host: '0.0.0.0', reuseAddr: true });
    r1.addMembership(group, HOST);
    r2.addMembership(group, HOST);
    const tx = await bind({ port: 0, host: HOST });
    tx.setMulticastInterface(HOST);
    tx.setMulticastTTL(1);
    tx.setMulticastLoopback(true);
    const g1 = nextMessage(r1), g2 = nextMessage(r2);
    tx.send(new TextEncoder().encode('to the group'), r1.port, group);
    const [m1, m2] = await Promise.all([g1, g2]);
    assert.equal(new TextDecoder().decode(m1.data), 'to the group');
    assert.equal(new TextDecoder().decode(m2.data), 'to the group');
    assert.equal(m1.from.port, tx.port);
    r2.dropMembership(group, HOST);
    // Leaving a group twice, or joining a unicast address, is a clear error naming the runtime.
    assert.throws(() => r2.dropMembership(group, HOST), (e: Error) => e.message.includes(`leave ${group}`) && e.message.includes(rt.name));
    assert.throws(() => r1.addMembership('127.0.0.2', HOST), (e: Error) => /multicast membership \(join 127\.0\.0\.2\)/.test(e.message));
    assert.throws(() => tx.setMulticastTTL(1000), /multicast TTL/);
  });
});

describe('UDP port pairs and demux', () => {
  after(async () => { for (const s of open.splice(0)) await s.close(); });

  it('parses ranges and counts even/odd pairs', () => {
    assert.deepEqual(parsePortRange('10000-20000'), { min: 10000, max: 20000 });
    assert.deepEqual(parsePortRange('5004'), { min: 5004, max: 5004 });
    assert.equal(evenPairsIn({ min: 10000, max: 10003 }), 2);
    assert.equal(evenPairsIn({ min: 10001, max: 10004 }), 1); // 10002/10003
    assert.equal(evenPairsIn({ min: 10000, max: 10000 }), 0);
    assert.throws(() => parsePortRange('20000-10000'), /min ≤ max/);
    assert.throws(() => parsePortRange('x-y'), /invalid UDP port range/);
    assert.throws(() => parsePortRange('1-70000'), /65535/);
  });

  it('allocates RTP on even and RTCP on the next odd port, and fails clearly when the range is full', async () => {
    let base = 0, a: { rtp: UdpSocket; rtcp: UdpSocket } | undefined;
    // A 4-port range holds two pairs; retry a few random bases in case another process holds one.
    for (let i = 0; i < 10 && !a; i++) {
      base = randomBase();
      try {
        a = await bindUdpPair(bind, { min: base, max: base + 3 }, { host: HOST });
        const b = await bindUdpPair(bind, { min: base, max: base + 3 }, { host: HOST });
        assert.deepEqual(new Set([a.rtp.port, b.rtp.port]), new Set([base, base + 2]));
        for (const p of [a, b]) {
          assert.equal(p.rtp.port % 2, 0, 'RTP port even');
          assert.equal(p.rtcp.port, p.rtp.port + 1, 'RTCP = RTP + 1');
        }
      } catch (err) {
        if (err instanceof PortRangeExhaustedError && !a) continue;
        if (err instanceof PortRangeExhaustedError) { await a!.rtp.close(); await a!.rtcp.close(); a = undefined; continue; }
        throw err;
      }
    }
    assert.ok(a, 'found a free range');
    await assert.rejects(bindUdpPair(bind, { min: base, max: base + 3 }, { host: HOST }), (e: Error) =>
      e instanceof PortRangeExhaustedError && e.message.includes(`${base}-${base + 3}`));
    // An odd port held by someone else skips that pair.
    await a.rtp.close();
    await a.rtcp.close();
    const squat = await bind({ port: a.rtp.port + 1, host: HOST });
    await assert.rejects(bindUdpPair(bind, { min: base, max: base + 3 }, { host: HOST }), PortRangeExhaustedError);
    await squat.close();
    const again = await bindUdpPair(bind, { min: base, max: base + 3 }, { host: HOST });
    assert.equal(again.rtp.port, a.rtp.port);
  });

  it('demultiplexes one shared socket by peer address and port', async () => {
    const server = await bind({ port: 0, host: HOST });
    const demux = new UdpDemux(server);
    const p1 = await bind({ port: 0, host: HOST });
    const p2 = await bind({ port: 0, host: HOST });
    const stranger = await bind({ port: 0, host: HOST });
    const got1: number[] = [], got2: number[] = [], unknown: number[] = [];
    const off1 = demux.register(HOST, p1.port, (d) => got1.push(d[0]!));
    demux.register('::ffff:' + HOST, p2.port, (d) => got2.push(d[0]!)); // mapped form: same peer
    demux.onUnknown = (_d, from) => unknown.push(from.port);
    assert.throws(() => demux.register(HOST, p1.port, () => {}), /already registered/);
    for (let i = 0; i < 5; i++) { p1.send(new Uint8Array([1]), server.port, HOST); p2.send(new Uint8Array([2]), server.port, HOST); }
    stranger.send(new Uint8Array([3]), server.port, HOST);
    for (let i = 0; i < 60 && got1.length + got2.length + unknown.length < 11; i++) await sleep(50);
    assert.deepEqual(got1, [1, 1, 1, 1, 1]);
    assert.deepEqual(got2, [2, 2, 2, 2, 2]);
    assert.deepEqual(unknown, [stranger.port]);
    off1();
    assert.equal(demux.size, 1);
    p1.send(new Uint8Array([1]), server.port, HOST);
    for (let i = 0; i < 60 && unknown.length < 2; i++) await sleep(50);
    assert.deepEqual(unknown, [stranger.port, p1.port], 'after unregistering, the peer is unknown');
    assert.equal(got1.length, 5);
    assert.equal(demux.unknownCount, 2);
  });
});

describe('plugin UDP sockets (ctx.bindUdp, ctx.bindUdpPair)', () => {
  let server: Server;
  let ctx!: PluginContext;
  after(async () => { await server?.stop(); });

  it('lists ephemeral sockets while open, unlists them on close, and closes the rest with the server', async () => {
    const plugin = definePlugin({ name: 'udpp', defaults: {}, setup(c) { ctx = c as PluginContext; } });
    server = await Server.start({ runtime: rt, plugins: [plugin], configText: 'global:\n  http:\n    listenaddr: ""\n', logger: Logger.silent() });
    const listed = () => server.listening.filter((l) => l.plugin === 'udpp' && l.proto === 'udp').map((l) => l.port).sort((a, b) => a - b);
    const one = await ctx.bindUdp({ host: HOST, what: 'client RTP' });
    let pair: { rtp: UdpSocket; rtcp: UdpSocket } | undefined;
    for (let i = 0; i < 10 && !pair; i++) {
      const base = randomBase();
      pair = await ctx.bindUdpPair(`${base}-${base + 9}`, { host: HOST, what: 'session' }).catch(() => undefined);
    }
    assert.ok(pair);
    assert.deepEqual(listed(), [one.port, pair.rtp.port, pair.rtcp.port].sort((a, b) => a - b));
    assert.ok(server.listening.some((l) => l.what === 'session (RTCP)' && l.port === pair!.rtcp.port));
    await one.close();
    assert.equal(one.closed, true);
    assert.deepEqual(listed(), [pair.rtp.port, pair.rtcp.port]);
    await server.stop();
    assert.equal(pair.rtp.closed, true, 'closed with the plugin');
    assert.equal(pair.rtcp.closed, true);
    await assert.rejects(ctx.bindUdpPair('5-4'), /min ≤ max/);
  });
});
