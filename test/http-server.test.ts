// m7s's own HTTP/1.1 and WebSocket server (adapters/http-server.ts: the default HTTP server on Node, on
// node:net, and on Bun, on Bun's raw sockets). The adapter contract (test/adapters.test.ts) covers what
// every runtime's server does; this file drives the protocol details a server of our own must get right
// with exact bytes from a raw TCP client: keep-alive and pipelining, request bodies (chunked,
// 100-continue, unread), HEAD, refusals with their status, the header timeout and the connection guard,
// a request's signal when its client leaves, a live body's head sent with its first chunk (Node and Bun;
// Deno serves node:http); and WebSocket control frames, protocol errors and refused upgrades on every
// runtime's default server (m7s does the upgrade itself on all three).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Hono } from 'hono';
import { currentRuntime } from '../adapters/current.ts';
import type { HttpServer, Runtime, TcpConn, WsConn } from '../src/net/types.ts';
import { concat } from '../src/format/bytes.ts';
import { Conn, SocketServer, socketStreamResponse, socketUpgradeWebSocket, type Wire } from '../adapters/http-server.ts';

const rt: Runtime = await currentRuntime();
const HOST = '127.0.0.1';
const enc = (s: string) => new TextEncoder().encode(s);
const latin1 = (b: Uint8Array) => String.fromCharCode(...b);

/** A raw client: everything it received, as latin1 text, and whether the server closed it. */
class Raw {
  parts: Uint8Array[] = [];
  closed = false;
  constructor(readonly conn: TcpConn) {
    conn.onData = (d) => { this.parts.push(d.slice()); };
    conn.onClose = () => { this.closed = true; };
  }
  get text(): string { return latin1(concat(this.parts)); }
  send(s: string | Uint8Array): void { this.conn.write(typeof s === 'string' ? enc(s) : s); }
  async until(pred: (text: string) => boolean, what: string, ms = 5000): Promise<string> {
    const end = Date.now() + ms;
    while (!pred(this.text)) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.text.slice(0, 400))}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return this.text;
  }
  async untilClosed(ms = 5000): Promise<void> {
    const end = Date.now() + ms;
    while (!this.closed) {
      if (Date.now() > end) throw new Error('the server did not close the connection');
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

/** A masked client frame (RFC 6455 §5.3). */
function clientFrame(opcode: number, payload: Uint8Array, mask = true): Uint8Array {
  const key = Uint8Array.of(0x12, 0x34, 0x56, 0x78);
  const head = payload.length < 126 ? Uint8Array.of(0x80 | opcode, (mask ? 0x80 : 0) | payload.length)
    : Uint8Array.of(0x80 | opcode, (mask ? 0x80 : 0) | 126, payload.length >> 8, payload.length & 0xff);
  const body = payload.map((b, i) => (mask ? b ^ key[i % 4]! : b));
  return concat(mask ? [head, key, body] : [head, body]);
}

const skip = rt.name === 'deno' && 'Node and Bun only: Deno serves node:http (adapters/deno/runtime.ts)';

describe("m7s's HTTP server on raw sockets (Node, Bun)", { skip }, () => {
  let http: HttpServer;
  const clients: Raw[] = [];
  let aborted = 0;
  const live: { end(): void }[] = [];
  const connect = async () => { const c = new Raw(await rt.connectTcp({ host: HOST, port: http.port })); clients.push(c); return c; };

  before(async () => {
    const app = new Hono();
    app.get('/hello/:n', (c) => c.text(`hello ${c.req.param('n')}`));
    app.post('/len', async (c) => {
      const b = new Uint8Array(await c.req.arrayBuffer());
      let sum = 0;
      for (const x of b) sum = (sum + x) % 65521;
      return c.text(`${b.length} ${sum}`);
    });
    app.post('/refuse', (c) => c.text('no', 401)); // never reads its body
    app.get('/wait', async (c) => {
      await new Promise<void>((resolve) => c.req.raw.signal.addEventListener('abort', () => { aborted++; resolve(); }));
      return c.text('late');
    });
    // A live body (HTTP-FLV's path): its first chunk written in the same turn ('now') or 300 ms later.
    app.get('/live/:when', (c) => {
      const s = rt.streamResponse!(c, 200, { 'content-type': 'video/x-flv' }, 1 << 20)!;
      if (c.req.param('when') === 'now') s.sink.write(enc('FIRST-CHUNK'));
      else setTimeout(() => s.sink.write(enc('LATE-CHUNK')), 300);
      live.push(s.sink);
      return s.response;
    });
    http = await rt.serveHttp({ port: 0, host: HOST, limits: { readHeaderTimeout: 400, idleTimeout: 2000, maxConnections: 6 } }, app.fetch);
  });

  after(async () => {
    for (const s of live) s.end();
    for (const c of clients) c.conn.destroy();
    await http?.close();
  });

  it('keep-alive: two pipelined requests in one write get two answers in order on one connection, with Date and Content-Length', async () => {
    const c = await connect();
    c.send(`GET /hello/1 HTTP/1.1\r\nHost: ${HOST}\r\n\r\nGET /hello/2 HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
    const t = await c.until((s) => s.includes('hello 2'), 'both answers');
    assert.ok(t.indexOf('hello 1') < t.indexOf('hello 2'));
    assert.equal(t.match(/HTTP\/1\.1 200 OK\r\n/g)?.length, 2);
    assert.match(t, /\r\ncontent-length: 7\r\n/);
    assert.match(t, /\r\ndate: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT\r\n/);
    assert.match(t, /\r\nconnection: keep-alive\r\n/);
    assert.equal(c.closed, false);
    c.send(`GET /hello/3 HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`);
    await c.until((s) => s.includes('hello 3'), 'third answer');
    await c.untilClosed();
  });

  it('request bodies: chunked with 100-continue, Content-Length split over writes; an unread body does not stall the next request', async () => {
    const c = await connect();
    c.send(`POST /len HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n`);
    await c.until((s) => s.startsWith('HTTP/1.1 100 Continue\r\n\r\n'), '100 Continue');
    c.send('3;ext=1\r\nabc\r\n');
    await new Promise((r) => setTimeout(r, 20));
    c.send('2\r\nde\r\n0\r\nTrailer: x\r\n\r\n');
    await c.until((s) => s.includes('\r\n\r\n5 495'), 'the chunked body read whole (a..e sum 495)');
    const big = new Uint8Array(100_000).fill(1);
    c.send(`POST /len HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: ${big.length}\r\n\r\n`);
    c.send(big.subarray(0, 40_000));
    await new Promise((r) => setTimeout(r, 20));
    c.send(big.subarray(40_000));
    await c.until((s) => s.includes('100000 34479'), 'a 100 kB body');
    c.send(`POST /refuse HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: ${big.length}\r\n\r\n`);
    c.send(big);
    c.send(`GET /hello/after HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
    await c.until((s) => s.includes('hello after'), 'the request after an unread body');
    assert.match(c.text, /HTTP\/1\.1 401 Unauthorized/);
  });

  it('HEAD: the head, no body, no false Content-Length; the next request on the connection is served', async () => {
    const c = await connect();
    c.send(`HEAD /hello/x HTTP/1.1\r\nHost: ${HOST}\r\n\r\nGET /hello/y HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
    const t = await c.until((s) => s.includes('hello y'), 'the GET after HEAD');
    const head = t.slice(0, t.indexOf('\r\n\r\n'));
    assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
    assert.doesNotMatch(head, /\r\ncontent-length: 0/);
    assert.ok(!t.includes('hello x'), 'no body for HEAD');
  });

  for (const [name, req, status] of [
    ['a space before a colon', `GET / HTTP/1.1\r\nHost: a\r\nBad : x\r\n\r\n`, 400],
    ['Content-Length with Transfer-Encoding (smuggling)', `POST /len HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400],
    ['an unsupported transfer coding', `POST /len HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n`, 501],
    ['HTTP/2.0', `GET / HTTP/2.0\r\nHost: a\r\n\r\n`, 505],
    ['a 20 kB head', `GET / HTTP/1.1\r\nHost: a\r\nX: ${'y'.repeat(20_000)}\r\n\r\n`, 431],
    ['a bad chunked body', `POST /len HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n`, 0],
  ] as const) {
    it(`refuses ${name}${status ? ` with ${status}` : ''} and closes the connection`, async () => {
      const c = await connect();
      c.send(req);
      await c.untilClosed();
      if (status) assert.match(c.text, new RegExp(`^HTTP/1\\.1 ${status} `));
      // The server carries on.
      const d = await connect();
      d.send(`GET /hello/ok HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
      await d.until((s) => s.includes('hello ok'), 'a good request after it');
    });
  }

  it('closes a connection that sends no head, or half a head, within the header timeout; a keep-alive one after the idle timeout', async () => {
    const silent = await connect();
    const half = await connect();
    half.send(`GET /hello/1 HTTP/1.1\r\nHost: `);
    const t0 = Date.now();
    await silent.untilClosed(3000);
    await half.untilClosed(3000);
    assert.ok(Date.now() - t0 < 2000, `closed after ${Date.now() - t0} ms (timeout 400)`);
    assert.equal(half.text, '');
    const idle = await connect();
    idle.send(`GET /hello/1 HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
    await idle.until((s) => s.includes('hello 1'), 'the answer');
    await new Promise((r) => setTimeout(r, 800));
    assert.equal(idle.closed, false, 'not closed by the header timeout between requests');
    await idle.untilClosed(4000);
  });

  it('at the connection cap the oldest silent connection is closed for a new one', async () => {
    // Its own server, with a header timeout far longer than the test: only the cap can close them.
    const app = new Hono();
    app.get('/x', (c) => c.text('served'));
    const capped = await rt.serveHttp({ port: 0, host: HOST, limits: { readHeaderTimeout: 30_000, idleTimeout: 30_000, maxConnections: 3 } }, app.fetch);
    try {
      const open = async () => { const c = new Raw(await rt.connectTcp({ host: HOST, port: capped.port })); clients.push(c); return c; };
      const silent: Raw[] = [];
      for (let i = 0; i < 3; i++) { silent.push(await open()); await new Promise((r) => setTimeout(r, 20)); }
      const c = await open();
      c.send(`GET /x HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
      await c.until((s) => s.includes('served'), 'the new client served');
      await silent[0]!.untilClosed(2000);
      assert.deepEqual(silent.slice(1).map((s) => s.closed), [false, false], 'only the oldest silent one went');
    } finally {
      await capped.close();
    }
  });

  it("a request's signal aborts when its client leaves before the answer", async () => {
    const c = await connect();
    c.send(`GET /wait HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(aborted, 0);
    c.conn.destroy();
    const end = Date.now() + 3000;
    while (aborted === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    assert.equal(aborted, 1);
  });

  it('a live body: the head with a first chunk written in its turn, and alone (at once) when none is', async () => {
    const now = await connect();
    now.send(`GET /live/now HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
    const t = await now.until((s) => s.includes('FIRST-CHUNK'), 'the first chunk');
    assert.match(t, /^HTTP\/1\.1 200 OK\r\n[^]*\r\ntransfer-encoding: chunked\r\n[^]*\r\n\r\nb\r\nFIRST-CHUNK\r\n$/);
    now.conn.destroy();

    const late = await connect();
    const t0 = Date.now();
    late.send(`GET /live/late HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
    const head = await late.until((s) => s.includes('\r\n\r\n'), 'the head alone', 2000);
    assert.ok(Date.now() - t0 < 250, `the head came after ${Date.now() - t0} ms, not at once`);
    assert.ok(!head.includes('LATE-CHUNK'));
    await late.until((s) => s.includes('LATE-CHUNK'), 'the late chunk');
    late.conn.destroy();
  });
});

// WebSocket upgrades m7s does itself, on every runtime's default HTTP server: m7s's own server on Node
// and Bun, and node:http's upgrade event on Deno (adapters/node/ws-upgrade.ts). Both frame with
// src/net/ws-session.ts; the exact bytes here are what RFC 6455 asks of a server.
describe('WebSocket upgrades on the default HTTP server (every runtime)', () => {
  let http: HttpServer;
  const clients: Raw[] = [];
  const wsEvents: string[] = [];
  const connect = async () => { const c = new Raw(await rt.connectTcp({ host: HOST, port: http.port })); clients.push(c); return c; };
  const upgradeHead = (path: string, key = 'dGhlIHNhbXBsZSBub25jZQ==') =>
    `GET ${path} HTTP/1.1\r\nHost: ${HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;

  before(async () => {
    const app = new Hono();
    app.get('/ws', async (c) => (await rt.upgradeWebSocket(c, {
      onOpen: (ws: WsConn) => { wsEvents.push('open'); ws.send('hi'); },
      onMessage: (ws, d) => { wsEvents.push(`msg ${typeof d === 'string' ? d : d.length}`); ws.send(d); },
      onClose: (_ws, code) => { wsEvents.push(`close ${code}`); },
    })) ?? c.text('not an upgrade', 400));
    app.get('/private', (c) => c.text('who are you', 401, { 'www-authenticate': 'Basic realm="m7s"' }));
    http = await rt.serveHttp({ port: 0, host: HOST }, app.fetch);
  });

  after(async () => {
    for (const c of clients) c.conn.destroy();
    await http?.close();
  });

  it('handshake, messages both ways, ping answered with pong, close echoed; an unmasked frame closes with 1002', async () => {
    const c = await connect();
    c.send(`GET /ws HTTP/1.1\r\nHost: ${HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    // RFC 6455 §1.3's example key and accept value.
    await c.until((s) => s.includes('s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi'), 'the 101 and the first message');
    assert.match(c.text, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    const mark = c.text.length;
    c.send(clientFrame(2, Uint8Array.of(1, 2, 3)));
    c.send(clientFrame(9, enc('png')));
    await c.until((s) => s.slice(mark).includes('\x82\x03\x01\x02\x03') && s.slice(mark).includes('\x8a\x03png'), 'the echo and the pong');
    c.send(clientFrame(8, Uint8Array.of(0x03, 0xe8)));
    await c.until((s) => s.slice(mark).includes('\x88\x02\x03\xe8'), 'the close echoed');
    await c.untilClosed();
    assert.deepEqual(wsEvents, ['open', 'msg 3', 'close 1000']);

    const d = await connect();
    d.send(`GET /ws HTTP/1.1\r\nHost: ${HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    await d.until((s) => s.includes('\x81\x02hi'), 'the first message');
    d.send(clientFrame(2, Uint8Array.of(9), false));
    await d.until((s) => s.includes('\x88') && s.slice(s.lastIndexOf('\x88')).startsWith('\x88') && s.includes('\x03\xea'), 'close 1002');
    await d.untilClosed();
    assert.equal(wsEvents.at(-1), 'close 1002');

    const e = await connect();
    e.send(`GET /ws HTTP/1.1\r\nHost: ${HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    await e.until((s) => /^HTTP\/1\.1 400 /.test(s), 'a bad key refused with 400');

    // A frame sent in the same write as the handshake (before the 101) is not lost.
    const f = await connect();
    f.send(concat([enc(`GET /ws HTTP/1.1\r\nHost: ${HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`), clientFrame(1, enc('early'))]));
    await f.until((s) => s.includes('\x81\x05early'), 'the early frame echoed');
  });

  it('an upgrade the route refuses gets its status, headers and body; the server carries on', async () => {
    const a = await connect();
    a.send(upgradeHead('/private'));
    const t = await a.until((s) => s.includes('who are you'), 'the 401 answer');
    assert.match(t, /^HTTP\/1\.1 401 /);
    assert.match(t, /\r\nwww-authenticate: Basic realm="m7s"\r\n/i);
    const b = await connect();
    b.send(upgradeHead('/nowhere'));
    await b.until((s) => /^HTTP\/1\.1 404 /.test(s), 'a 404 for an unknown path');
    const c = await connect();
    c.send(upgradeHead('/ws'));
    await c.until((s) => s.includes('\x81\x02hi'), 'an upgrade after the refusals');
  });

  it('closing the server closes its open WebSockets', async () => {
    const app = new Hono();
    const closes: number[] = [];
    app.get('/ws', async (c) => (await rt.upgradeWebSocket(c, { onClose: (_ws, code) => { closes.push(code); } })) ?? c.text('no', 400));
    const own = await rt.serveHttp({ port: 0, host: HOST }, app.fetch);
    const c = new Raw(await rt.connectTcp({ host: HOST, port: own.port }));
    clients.push(c);
    c.send(upgradeHead('/ws'));
    await c.until((s) => s.includes('\r\n\r\n'), 'the 101');
    assert.match(c.text, /^HTTP\/1\.1 101 /);
    await own.close();
    await c.untilClosed();
    const end = Date.now() + 3000;
    while (!closes.length && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    assert.equal(closes.length, 1, 'the handler heard the close');
  });
});

// How many writes the server makes, seen on a Wire that records them (the in-process client above reads
// after the server's turn, so two writes in one turn arrive as one read there and cannot show this).
describe("m7s's HTTP server: one write for a live body's head or a 101 and the first chunk of its turn", () => {
  class RecordingWire implements Wire {
    readonly peer = { address: '127.0.0.1', port: 40000 };
    readonly buffered = 0;
    readonly gathers = true;
    writes: string[] = [];
    write(b: Uint8Array): void { this.writes.push(latin1(b)); }
    writev(chunks: readonly Uint8Array[]): void { this.writes.push(latin1(concat([...chunks]))); }
    end(): void {}
    terminate(): void {}
    pause(): void {}
    resume(): void {}
  }
  const app = new Hono();
  app.get('/live/:when', (c) => {
    const s = socketStreamResponse(c, 200, { 'content-type': 'video/x-flv' }, 1 << 20)!;
    if (c.req.param('when') === 'now') s.sink.write(enc('FIRST-CHUNK'));
    else setTimeout(() => s.sink.write(enc('LATE-CHUNK')), 50);
    return s.response;
  });
  app.get('/ws', (c) => socketUpgradeWebSocket(c, { onOpen: (ws: WsConn) => ws.send('hi') }) ?? c.text('no', 400));
  const server = new SocketServer(app.fetch, { readHeaderTimeout: 0, idleTimeout: 0, maxConnections: 0 }, false, 'test');
  const open = (head: string) => {
    const wire = new RecordingWire();
    const conn = new Conn(wire, server);
    conn.onData(enc(head));
    return { wire, conn };
  };
  const settle = (ms = 20) => new Promise((r) => setTimeout(r, ms));

  it('a live body: head and first chunk in one write; a late chunk: the head alone at the end of its turn', async () => {
    const now = open('GET /live/now HTTP/1.1\r\nHost: x\r\n\r\n');
    await settle();
    assert.equal(now.wire.writes.length, 1, JSON.stringify(now.wire.writes));
    assert.match(now.wire.writes[0]!, /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nb\r\nFIRST-CHUNK\r\n$/);
    now.conn.destroy();

    const late = open('GET /live/late HTTP/1.1\r\nHost: x\r\n\r\n');
    await settle();
    assert.equal(late.wire.writes.length, 1);
    assert.match(late.wire.writes[0]!, /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\n$/);
    await settle(100);
    assert.deepEqual(late.wire.writes.slice(1), ['a\r\nLATE-CHUNK\r\n']);
    late.conn.destroy();
  });

  it('a WebSocket: the 101 and the message onOpen sent in one write', async () => {
    const ws = open('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    await settle();
    assert.equal(ws.wire.writes.length, 1, JSON.stringify(ws.wire.writes));
    assert.match(ws.wire.writes[0]!, /^HTTP\/1\.1 101 [^]*s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n\r\n\x81\x02hi$/);
    ws.conn.destroy();
  });
});
