// Issue 9, fault 7 in-process, on whichever runtime runs the test: the HTTP header timeout closes a
// connection that never sends a byte, the keep-alive idle timeout closes an idle one, and with
// global.limits.maxconn reached the oldest silent connection makes room for a real client (HTTP and
// RTMP listeners alike).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import rtmp from '../plugins/rtmp/index.ts';
import flv from '../plugins/flv/index.ts';
import { sleep, startServer, type TestServer } from './helpers/media.ts';

/** A raw socket; `closed` resolves with the ms from connect to the server's close. */
function rawSocket(port: number): Promise<{ s: Socket; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port });
    s.on('error', () => {});
    s.on('data', () => {});
    s.once('connect', () => {
      const t0 = Date.now();
      const closed = new Promise<number>((r) => s.once('close', () => r(Date.now() - t0)));
      resolve({ s, closed });
    });
    s.once('error', reject);
  });
}

const within = <T>(p: Promise<T>, ms: number, what: string) =>
  Promise.race([p, sleep(ms).then(() => { throw new Error(`${what}: not within ${ms} ms`); })]);

describe('limits: HTTP and TCP connection limits', () => {
  let s: TestServer;
  let port = 0, rtmpPort = 0;
  before(async () => {
    s = await startServer([flv, rtmp], [
      '    readheadertimeout: 3s',
      '    idletimeout: 1s',
      '  limits:',
      '    maxconn: 6',
      'rtmp:',
      '  tcp:',
      '    listenaddr: "127.0.0.1:0"',
      '',
    ].join('\n'));
    port = s.server.http!.port;
    rtmpPort = s.port('rtmp', 'tcp');
  });
  after(async () => { await s?.stop(); });

  it('a connection that never sends a request head is closed after readheadertimeout', async () => {
    const { closed } = await rawSocket(port);
    const ms = await within(closed, 8000, 'silent connection closed');
    assert.ok(ms >= 2500, `closed after ${ms} ms`);
  });

  it('a keep-alive connection idle after its response is closed after idletimeout', async () => {
    const { s: sock, closed } = await rawSocket(port);
    let got = '';
    sock.on('data', (d) => { got += d; });
    sock.write('GET /api/sysinfo HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await within(closed, 8000, 'idle keep-alive connection closed');
    assert.match(got, /^HTTP\/1\.1 200/);
  });

  it('with maxconn reached, the oldest silent connection makes room for a real request', async () => {
    const silent = await Promise.all(Array.from({ length: 6 }, () => rawSocket(port)));
    // Bun's node:http reports a connection ~1 s after it is accepted: let every runtime see all six.
    await sleep(1200);
    const r = await within(fetch(`http://127.0.0.1:${port}/api/sysinfo`), 3000, 'request over a full listener');
    assert.equal(r.status, 200);
    await r.body?.cancel();
    // A silent socket (the oldest the runtime reported; Bun reports them out of order) was closed to
    // make room, before the 3 s header timeout would have.
    const first = await within(Promise.race(silent.map((x) => x.closed)), 2500, 'a silent socket evicted');
    assert.ok(first < 2800, `closed after ${first} ms`);
    for (const x of silent) x.s.destroy();
  });

  it('the RTMP listener: a full listener evicts its oldest silent socket for a client that speaks', async () => {
    const silent = await Promise.all(Array.from({ length: 6 }, () => rawSocket(rtmpPort)));
    await sleep(100);
    const { s: c, closed } = await rawSocket(rtmpPort);
    let got = 0;
    c.on('data', (d: Uint8Array) => { got += d.length; });
    c.write(new Uint8Array(1537).fill(0, 1).fill(3, 0, 1)); // C0 + C1
    await within(silent[0].closed, 2000, 'oldest silent RTMP socket evicted');
    const t0 = Date.now();
    while (got < 1 + 1536 * 2 && Date.now() - t0 < 3000) await sleep(20);
    assert.ok(got >= 1 + 1536 * 2, `S0+S1+S2 received (${got} bytes)`);
    c.destroy();
    await closed;
    for (const x of silent) x.s.destroy();
  });
});
