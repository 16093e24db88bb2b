// Issue 9, fault 8: RTMP memory before a publish. rtmp.maxmessagesize (1 MB, nginx-rtmp's default),
// rtmp.maxcommandsize before `publish`, and rtmp.maxpendingbytes, a server-wide budget for partially
// received messages.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { currentRuntime } from '../adapters/current.ts';
import rtmp from '../plugins/rtmp/index.ts';
import { ChunkReader, chunkMessage, MSG, type PendingBudget } from '../plugins/rtmp/chunk.ts';
import { plainPacket } from '../plugins/rtmp/handshake.ts';
import { amf0Encode } from '../src/format/amf.ts';
import { ffmpegPath, ffprobe, sleep, start, startServer, testSourceArgs, until } from './helpers/media.ts';

const rt = await currentRuntime();
const concat = (parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
};
/** A fmt-0 header on csid 4 announcing a message of `len` bytes (type 20, stream 0). */
const bigHeader = (len: number) => new Uint8Array([0x04, 0, 0, 0, len >> 16, (len >> 8) & 0xff, len & 0xff, 20, 0, 0, 0, 0]);

describe('limits: RTMP message memory', () => {
  it('ChunkReader: a small limit before publish, raised by setLimits', () => {
    const got: number[] = [];
    const r = new ChunkReader((m) => got.push(m.payload.length), { maxMessageSize: 16 * 1024 });
    r.feed(concat(chunkMessage(3, MSG.COMMAND_AMF0, 0, 0, [new Uint8Array(10_000)], 128)));
    assert.deepEqual(got, [10_000]);
    r.setLimits(1 << 20);
    r.feed(concat(chunkMessage(5, MSG.VIDEO, 1, 0, [new Uint8Array(500_000)], 4096 > 128 ? 128 : 128)));
    assert.deepEqual(got, [10_000, 500_000]);
    const r2 = new ChunkReader(() => {}, { maxMessageSize: 16 * 1024 });
    assert.throws(() => r2.feed(bigHeader(20_000)), /exceeds maxmessagesize \(16384\)/);
  });

  it('ChunkReader: readers sharing a budget stay below it together; release() gives bytes back', () => {
    const budget: PendingBudget = { used: 0, max: 300_000 };
    const a = new ChunkReader(() => {}, { maxMessageSize: 1 << 20, budget });
    const b = new ChunkReader(() => {}, { maxMessageSize: 1 << 20, budget });
    const part = (n: number) => concat(chunkMessage(4, MSG.VIDEO, 1, 0, [new Uint8Array(1 << 20)], 1 << 20)).subarray(0, 12 + n);
    a.setChunkSize(1 << 20); b.setChunkSize(1 << 20);
    a.feed(part(200_000));
    assert.ok(budget.used >= 200_000 && budget.used <= 300_000, `used ${budget.used}`);
    assert.throws(() => b.feed(part(200_000)), /server-wide budget/);
    const usedA = a.pendingBytes;
    b.release();
    assert.equal(budget.used, usedA, 'the failed reader gave its bytes back');
    a.release();
    assert.equal(budget.used, 0);
  });

  it('20 connections sending huge messages before connect are closed and add little memory; a publish still works', { timeout: 120_000 }, async () => {
    const s = await startServer([rtmp], 'rtmp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\n');
    const port = s.port('rtmp', 'tcp');
    try {
      const hs = new Uint8Array([3, ...plainPacket(), ...new Uint8Array(1536)]);
      const chunk = new Uint8Array(64 * 1024); // one buffer reused for every write: the test itself stays small
      const rss0 = rt.sysinfo().memory.rss;
      let closedEarly = 0, sentMax = 0;
      await Promise.all(Array.from({ length: 20 }, async () => {
        const c = await rt.connectTcp({ host: '127.0.0.1', port });
        let closed = false;
        const done = new Promise<void>((res) => { c.onClose = () => { closed = true; res(); }; });
        c.onData = () => {};
        c.write(hs);
        await sleep(100);
        c.write(bigHeader(0xffffff)); // a 16 MiB "command" before connect, with chunk size 128…
        c.write(new Uint8Array([0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff])); // …then Set Chunk Size 2^31-1 (on csid 2)
        let sent = 0;
        while (!closed && sent < 32 * 1024 * 1024) {
          if (!c.write(chunk)) await Promise.race([new Promise<void>((r) => { c.onDrain = () => r(); }), done, sleep(500)]);
          sent += chunk.length;
        }
        if (closed) closedEarly++;
        sentMax = Math.max(sentMax, sent);
        c.destroy();
      }));
      await sleep(300);
      const rss1 = rt.sysinfo().memory.rss;
      const list = ((await (await fetch(`${s.http}/rtmp/api/list`)).json()) as any).data;
      console.log(`# ${rt.name}: 20 hostile pre-connect connections: ${closedEarly} closed by the server, at most ${(sentMax / 1048576).toFixed(1)} MiB sent on one; RSS (server and this client) ${(rss0 / 1048576).toFixed(0)} -> ${(rss1 / 1048576).toFixed(0)} MB; ` +
        `unfinished-message bytes peaked at ${list.pendingBytes.peak}`);
      assert.equal(closedEarly, 20, 'every connection closed by the server');
      // What the server held for them: at most maxcommandsize (16 KiB) per connection, not 16-32 MiB.
      assert.ok(list.pendingBytes.peak <= 20 * 16 * 1024, `peak ${list.pendingBytes.peak}`);
      assert.equal(list.pendingBytes.used, 0, 'closed connections gave their bytes back');
      // Loose: RSS includes this client's own queued writes and the GC's mood (was +690-730 MB).
      assert.ok(rss1 - rss0 < 200 * 1048576, `RSS grew by ${((rss1 - rss0) / 1048576).toFixed(0)} MB`);
      await until(async () => ((await (await fetch(`${s.http}/rtmp/api/list`)).json()) as any).data.sessions.length === 0, 5000, 'sessions gone');

      // A normal publish (ffmpeg, keyframes well over maxcommandsize) still works.
      const pubUrl = `rtmp://127.0.0.1:${port}/live/ok`;
      const ff = start(ffmpegPath, [...testSourceArgs({ seconds: 20, size: '640x360' }), '-f', 'flv', pubUrl]);
      try {
        await until(() => s.server.engine.getStream('live/ok')?.publisher, 15_000, 'ffmpeg to publish');
        const probe = await ffprobe(pubUrl, { timeoutMs: 30_000 });
        assert.deepEqual(probe.streams.map((x: any) => x.codec_name).sort(), ['aac', 'h264']);
      } finally { await ff.kill(); }
    } finally { await s.stop(); }
  });

  it('a connect command bigger than rtmp.maxcommandsize closes the connection', async () => {
    const s = await startServer([rtmp], 'rtmp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\n  maxcommandsize: 2048\n');
    try {
      const c = await rt.connectTcp({ host: '127.0.0.1', port: s.port('rtmp', 'tcp') });
      const closed = new Promise<void>((res) => { c.onClose = () => res(); });
      c.onData = () => {};
      c.write(new Uint8Array([3, ...plainPacket(), ...new Uint8Array(1536)]));
      await sleep(100);
      for (const p of chunkMessage(3, MSG.COMMAND_AMF0, 0, 0, [amf0Encode('connect', 1, { app: 'live', pad: 'x'.repeat(4000) })], 128)) c.write(p);
      await Promise.race([closed, sleep(3000).then(() => { throw new Error('not closed'); })]);
    } finally { await s.stop(); }
  });

  it('a connection that completes the handshake but never sends connect is closed after handshaketimeout', async () => {
    const s = await startServer([rtmp], 'rtmp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\n  handshaketimeout: 1s\n  idletimeout: 30s\n');
    try {
      const c = await rt.connectTcp({ host: '127.0.0.1', port: s.port('rtmp', 'tcp') });
      const t0 = Date.now();
      const closed = new Promise<number>((res) => { c.onClose = () => res(Date.now() - t0); });
      let got = 0;
      c.onData = (d) => { got += d.length; };
      c.write(new Uint8Array([3, ...plainPacket()]));
      await until(() => got >= 1 + 2 * 1536, 3000, 'S0+S1+S2');
      c.write(new Uint8Array(1536)); // C2: the handshake is complete; then silence
      const ms = await Promise.race([closed, sleep(5000).then(() => -1)]);
      assert.ok(ms >= 900 && ms < 5000, `closed after ${ms} ms (idletimeout is 30 s)`);
    } finally { await s.stop(); }
  });
});
