// The shared ICE port (plugins/webrtc/icemux.ts) on its own, with real UDP sockets: STUN read by
// src/format/stun.ts (RFC 5769's sample request, and messages built by werift's own STUN code), requests
// routed by the ufrag in USERNAME, responses by transaction id, everything else by the address the
// session was reached from; unknown senders dropped and counted; a TURN client moved to a socket of its
// own; a closed transport forgotten. The whole plugin over the mux: test/webrtc*.test.ts.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { Message, classes, methods } from 'werift';
import { IceMux, type MuxTransport } from '../plugins/webrtc/icemux.ts';
import { iceLocalUfrag, peekStun, StunClass, StunMethod } from '../src/format/stun.ts';
import { fromHex } from '../src/format/bytes.ts';
import type { UdpSocket } from '../src/net/types.ts';
import { currentRuntime } from '../adapters/current.ts';
import { fuzz } from './helpers/fuzz.ts';
import { until } from './helpers/media.ts';

// RFC 5769 §2.1, "Sample Request": USERNAME "evtj:h6vY", SOFTWARE, PRIORITY, ICE-CONTROLLED,
// MESSAGE-INTEGRITY and FINGERPRINT.
const RFC5769_REQUEST = fromHex(
  '000100582112a442b7e7a701bc34d686fa87dfae802200105354554e20746573742063' +
  '6c69656e74002400046e0001ff80290008932ff9b151263b36000600096576746a3a68' +
  '367659202020000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a280280004e57a3bcf');

/** A STUN message from werift's own encoder (not ours): class, method, optional USERNAME. */
function weriftStun(cls: number, method: number, username?: string, txid?: Uint8Array): Uint8Array {
  const m = new Message(method, cls, txid ? Buffer.from(txid) : undefined);
  if (username) m.setAttribute('USERNAME', username);
  if (cls === classes.REQUEST) m.setAttribute('PRIORITY', 0x6e0001ff);
  m.addFingerprint();
  return new Uint8Array(m.bytes);
}

describe('STUN header and USERNAME (src/format/stun.ts)', () => {
  it('RFC 5769 sample request: a Binding request for ufrag "evtj"', () => {
    const h = peekStun(RFC5769_REQUEST)!;
    assert.deepEqual(h, { cls: StunClass.Request, method: StunMethod.Binding, txid: 'b7e7a701bc34d686fa87dfae', length: 0x58 });
    assert.equal(iceLocalUfrag(RFC5769_REQUEST), 'evtj');
  });

  it('messages from werift: classes, methods, USERNAME', () => {
    const req = weriftStun(classes.REQUEST, methods.BINDING, 'abcdef0123:xyz');
    assert.equal(peekStun(req)!.cls, StunClass.Request);
    assert.equal(iceLocalUfrag(req), 'abcdef0123');
    assert.equal(peekStun(weriftStun(classes.RESPONSE, methods.BINDING))!.cls, StunClass.Success);
    assert.equal(peekStun(weriftStun(classes.ERROR, methods.BINDING))!.cls, StunClass.Error);
    assert.equal(peekStun(weriftStun(classes.INDICATION, methods.SEND))!.cls, StunClass.Indication);
    const alloc = peekStun(weriftStun(classes.REQUEST, methods.ALLOCATE))!;
    assert.deepEqual([alloc.cls, alloc.method], [StunClass.Request, StunMethod.Allocate]);
    assert.equal(peekStun(weriftStun(classes.REQUEST, methods.CHANNEL_BIND))!.method, StunMethod.ChannelBind);
    assert.equal(iceLocalUfrag(weriftStun(classes.REQUEST, methods.BINDING)), undefined, 'no USERNAME');
    assert.equal(iceLocalUfrag(weriftStun(classes.REQUEST, methods.BINDING, 'nocolon')), undefined);
  });

  it('not STUN: DTLS, RTP, a wrong cookie, a length that disagrees', () => {
    assert.equal(peekStun(new Uint8Array([22, 0xfe, 0xfd, ...new Array(30).fill(0)])), undefined);
    assert.equal(peekStun(new Uint8Array([0x80, 96, ...new Array(30).fill(0)])), undefined);
    const bad = RFC5769_REQUEST.slice();
    bad[4] = 0;
    assert.equal(peekStun(bad), undefined);
    assert.equal(peekStun(RFC5769_REQUEST.subarray(0, 60)), undefined);
  });

  it('fuzz: only FormatError escapes the USERNAME reader; peekStun never throws', () => {
    fuzz('stun', [RFC5769_REQUEST, weriftStun(classes.REQUEST, methods.BINDING, 'u:v')], (b) => {
      if (peekStun(b)) iceLocalUfrag(b);
    }, 20000);
  });
});

describe('the ICE mux (plugins/webrtc/icemux.ts) with real sockets', () => {
  const open: { close(): unknown }[] = [];
  after(async () => { for (const s of open) await s.close(); });

  async function client(): Promise<Socket & { got: { data: Uint8Array; port: number }[] }> {
    const s = createSocket('udp4') as Socket & { got: { data: Uint8Array; port: number }[] };
    s.got = [];
    s.on('message', (d, r) => s.got.push({ data: new Uint8Array(d), port: r.port }));
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    open.push(s);
    return s;
  }
  async function bound(): Promise<UdpSocket> {
    const s = await (await currentRuntime()).bindUdp({ port: 0, host: '127.0.0.1' });
    open.push(s);
    return s;
  }
  function collect(t: MuxTransport): Uint8Array[] {
    const got: Uint8Array[] = [];
    t.onData = (d) => { got.push(d); };
    return got;
  }
  const send = (c: Socket, b: Uint8Array, port: number) => c.send(b, port, '127.0.0.1');
  const dtls = (n: number) => new Uint8Array([22, 0xfe, 0xfd, n, ...new Array(20).fill(n)]);

  it('routes checks by ufrag, the rest by address; drops and counts the unknown; forgets closed transports', async () => {
    const shared = await bound();
    const mux = new IceMux({ udp4: shared, dedicated: () => bound() });
    const port = mux.port;
    const [a, b] = [mux.transport('udp4', 'ufraga'), mux.transport('udp4', 'ufragb')];
    const [gotA, gotB] = [collect(a), collect(b)];
    const [c1, c2, c3] = [await client(), await client(), await client()];

    // Before any check: nobody is known.
    send(c1, dtls(1), port);
    await until(() => mux.stats.unknownAddress === 1, 2000, 'unknown address counted');
    // Connectivity checks name their session; each client is then known by its address.
    send(c1, weriftStun(classes.REQUEST, methods.BINDING, 'ufraga:remote1'), port);
    send(c2, weriftStun(classes.REQUEST, methods.BINDING, 'ufragb:remote2'), port);
    send(c3, weriftStun(classes.REQUEST, methods.BINDING, 'nosuch:remote3'), port);
    await until(() => gotA.length === 1 && gotB.length === 1 && mux.stats.unknownUfrag === 1, 2000, 'checks routed');
    send(c1, dtls(2), port);
    send(c2, dtls(3), port);
    send(c3, dtls(4), port);
    await until(() => gotA.length === 2 && gotB.length === 2 && mux.stats.unknownAddress === 2, 2000, 'data routed by address');
    assert.deepEqual([gotA[1]![3], gotB[1]![3]], [2, 3]);
    assert.deepEqual(a.rinfo, { address: '127.0.0.1', port: c1.address().port });

    // A check of our own from `a` to c3: the response comes back to `a` by its transaction id, and c3
    // (never checked us: an ICE-lite peer) is known from then on.
    const tx = new Uint8Array(12).fill(7);
    await a.send(weriftStun(classes.REQUEST, methods.BINDING, 'remote3:ufraga', tx), ['127.0.0.1', c3.address().port]);
    await until(() => c3.got.length === 1, 2000, 'check sent');
    assert.equal(c3.got[0]!.port, port, 'sent from the shared port');
    send(c3, weriftStun(classes.RESPONSE, methods.BINDING, undefined, tx), port);
    await until(() => gotA.length === 3, 2000, 'response routed to a');
    send(c3, dtls(5), port);
    await until(() => gotA.length === 4, 2000, 'c3 learned');
    // Sends without an address go to the last sender (werift's rinfo).
    await b.send(dtls(6));
    await until(() => c2.got.length === 1, 2000, 'reply to rinfo');
    assert.equal(c2.got[0]!.port, port);

    // Closed: forgotten, its peers' data dropped.
    await a.close();
    const before = mux.stats.unknownAddress;
    send(c1, dtls(7), port);
    await until(() => mux.stats.unknownAddress === before + 1, 2000, 'data for a closed transport dropped');
    assert.equal(gotA.length, 4);
    assert.deepEqual(mux.counts, { sessions: 1, transports: 1, addresses: 1, transactions: 0 });
    await b.close();
    assert.deepEqual(mux.counts, { sessions: 0, transports: 0, addresses: 0, transactions: 0 });
  });

  it('a session is reached from at most 16 addresses; a checked address moves to the session that names it', async () => {
    const mux = new IceMux({ udp4: await bound(), dedicated: () => bound() });
    const t = mux.transport('udp4', 'many');
    const other = mux.transport('udp4', 'other');
    const got = collect(t);
    const gotOther = collect(other);
    const cs = await Promise.all(Array.from({ length: 17 }, () => client()));
    for (const c of cs) send(c, weriftStun(classes.REQUEST, methods.BINDING, 'many:x'), mux.port);
    await until(() => got.length + mux.stats.refused === 17, 3000, 'all checks seen');
    assert.equal(got.length, 16);
    assert.equal(mux.stats.refused, 1);
    // cs[0] now checks the other session: its address is routed there.
    send(cs[0]!, weriftStun(classes.REQUEST, methods.BINDING, 'other:x'), mux.port);
    send(cs[0]!, dtls(1), mux.port);
    await until(() => gotOther.length === 2, 2000, 'address moved');
    await t.close();
    await other.close();
  });

  it('a TURN client moves to a socket of its own (a TURN server tells allocations apart by address)', async () => {
    const mux = new IceMux({ udp4: await bound(), dedicated: () => bound() });
    const t = mux.transport('udp4', 'turnuser');
    const got = collect(t);
    const turn = await client();
    const tx = new Uint8Array(12).fill(9);
    await t.send(weriftStun(classes.REQUEST, methods.ALLOCATE, undefined, tx), ['127.0.0.1', turn.address().port]);
    await until(() => turn.got.length === 1, 2000, 'allocate sent');
    const own = turn.got[0]!.port;
    assert.notEqual(own, mux.port, 'not from the shared port');
    assert.equal(t.port, own);
    assert.equal(mux.stats.dedicated, 1);
    turn.send(weriftStun(classes.RESPONSE, methods.ALLOCATE, undefined, tx), own, '127.0.0.1');
    await until(() => got.length === 1, 2000, 'response on its own socket');
    // Its ufrag is no longer routed on the shared port.
    send(turn, weriftStun(classes.REQUEST, methods.BINDING, 'turnuser:x'), mux.port);
    await until(() => mux.stats.unknownUfrag === 1, 2000, 'not on the shared port');
    await t.close();
  });

  it('fuzz: random datagrams never throw out of the mux and reach no session without a check', () => {
    const fake = { port: 1, host: '127.0.0.1', closed: false, send() {}, onMessage: null, onError: null } as unknown as UdpSocket;
    const mux = new IceMux({ udp4: fake, dedicated: () => Promise.reject(new Error('none')) });
    const t = mux.transport('udp4', 'fz');
    const got = collect(t);
    const from = { address: '127.0.0.1', port: 5 };
    fuzz('icemux', [RFC5769_REQUEST, weriftStun(classes.RESPONSE, methods.BINDING), dtls(1)], (b) => mux.receive(b, from), 20000);
    assert.equal(got.length, 0);
    mux.receive(weriftStun(classes.REQUEST, methods.BINDING, 'fz:x'), from);
    assert.equal(got.length, 1);
  });
});
