// The flv plugin end to end: HTTP-FLV and WS-FLV play, FLV publish over HTTP POST and WebSocket,
// publisher reconnects, 50 concurrent players, file and HTTP pulls, hostile input, and a seeded fuzz of
// the FLV demuxer. Driven by real ffmpeg/ffprobe where it matters and by our own FLV parser elsewhere.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type Socket } from 'node:net';
import flv from '../plugins/flv/index.ts';
import { SyntheticSource } from '../src/core/synthetic.ts';
import { FlvDemuxer, flvHeader, parseVideoTagBody, FLV_TAG_VIDEO, type FlvTag } from '../src/format/flv.ts';
import { FormatError } from '../src/format/bytes.ts';
import { FlvFeed } from '../plugins/flv/feed.ts';
import { FlvPlaySink } from '../plugins/flv/play.ts';
import { prefixedStart } from '../src/net/batch-sink.ts';
import { Engine } from '../src/core/engine.ts';
import { defaultSubscribe } from '../src/core/config.ts';
import type { SharedStartBytes } from '../src/core/subscriber.ts';
import type { ByteSink } from '../src/net/body.ts';
import type { Framing } from '../src/net/framing.ts';
import { ffmpegPath, ffprobe, run, sleep, start, startServer, testSourceArgs, until, videoLoss, type TestServer } from './helpers/media.ts';
import { prng } from './helpers/fuzz.ts';

interface Tag { type: number; ts: number; key: boolean; seq: boolean; size: number; at: number }

/** An HTTP-FLV player that parses tags as they arrive, until stop(). */
const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== 'undefined';

/** GET over a plain TCP socket; resolves once `bytes` of the response arrived (the socket stays open). */
function rawHttpGet(url: string, bytes: number): Promise<Socket> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = connect(Number(u.port), u.hostname, () => sock.write(`GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\n\r\n`));
    let got = 0;
    sock.on('data', (d: Uint8Array) => { got += d.length; if (got >= bytes) resolve(sock); });
    sock.on('error', reject);
    setTimeout(() => reject(new Error('raw GET: no data')), 10_000);
  });
}

class Player {
  tags: Tag[] = [];
  bytes = 0;
  status = 0;
  ended = false;
  error: unknown = null;
  readonly done: Promise<void>;
  private readonly ac = new AbortController();
  constructor(readonly url: string) {
    this.done = this.run().catch((e) => { if (!this.ac.signal.aborted) this.error = e; });
  }
  private async run(): Promise<void> {
    const r = await fetch(this.url, { signal: this.ac.signal });
    this.status = r.status;
    if (r.status !== 200) { await r.body?.cancel(); this.ended = true; return; }
    const demux = new FlvDemuxer((t) => this.tags.push(toTag(t)));
    const reader = r.body!.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      this.bytes += value.byteLength;
      demux.push(value);
    }
    this.ended = true;
  }
  media(type?: number): Tag[] { return this.tags.filter((t) => (type ? t.type === type : t.type !== 18)); }
  stop(): void { this.ac.abort(); }
}

function toTag(t: FlvTag): Tag {
  let key = false, seq = false;
  if (t.type === FLV_TAG_VIDEO && t.data.length > 0) {
    try {
      const v = parseVideoTagBody(t.data);
      key = v.frameType === 'key' && v.packet === 'nalu';
      seq = v.packet === 'seqhdr';
    } catch { /* not ours to judge */ }
  }
  return { type: t.type, ts: t.timestamp, key, seq, size: t.data.length, at: Date.now() };
}

/** Per tag type, timestamps never go back. */
function assertMonotonic(tags: Tag[], what: string): void {
  for (const type of [8, 9]) {
    let last = -1;
    for (const t of tags) {
      if (t.type !== type) continue;
      assert.ok(t.ts >= last, `${what}: ${type === 9 ? 'video' : 'audio'} timestamp went back ${last} → ${t.ts}`);
      last = t.ts;
    }
  }
}

const WebSocketCtor: Promise<any> = (async () => (globalThis as any).WebSocket ?? (await import('ws')).WebSocket)();

async function json(url: string, init?: RequestInit): Promise<any> {
  const r = await fetch(url, init);
  return { status: r.status, body: await r.json() };
}

describe('flv plugin', () => {
  let A: TestServer;
  let dir: string;
  let file: string;

  before(async () => {
    A = await startServer([flv], 'flv:\n  maxtagsize: 262144\n');
    dir = mkdtempSync(join(tmpdir(), 'm7s-flv-'));
    file = join(dir, 'src.flv');
    const r = await run(ffmpegPath, [...testSourceArgs({ seconds: 4 }).filter((a) => a !== '-re'), '-t', '4', '-f', 'flv', file]);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await A?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('ffmpeg publishes by HTTP POST; ffprobe plays HTTP-FLV: codecs, size, rate, no loss, dts monotonic', async () => {
    const ff = start(ffmpegPath, [...testSourceArgs({ seconds: 30 }), '-f', 'flv', '-method', 'POST', `${A.http}/flv/live/x.flv`]);
    try {
      await until(() => A.server.engine.getStream('live/x')?.publisher, 15_000, 'ffmpeg publisher');
      const p = await ffprobe(`${A.http}/flv/live/x.flv`, { packets: true, seconds: 10, timeoutMs: 40_000 });
      const v = p.streams.find((s: any) => s.codec_type === 'video');
      const a = p.streams.find((s: any) => s.codec_type === 'audio');
      assert.equal(v.codec_name, 'h264');
      assert.equal(v.width, 320);
      assert.equal(v.height, 240);
      assert.equal(a.codec_name, 'aac');
      assert.equal(Number(a.sample_rate), 44100);
      for (const s of [v, a]) {
        const pk = p.packets.filter((x: any) => x.stream_index === s.index);
        let last = -Infinity;
        for (const x of pk) {
          const dts = Number(x.dts_time);
          assert.ok(dts >= last, `${s.codec_type} dts went back ${last} → ${dts}`);
          last = dts;
        }
      }
      const vp = p.packets.filter((x: any) => x.stream_index === v.index);
      const { count, expected, span } = videoLoss(vp, 25);
      console.log(`[flv] ffprobe: ${count} video packets over ${span.toFixed(2)} s after the catch-up (expected ${expected.toFixed(1)})`);
      assert.ok(span >= 9, `only ${span} s of packets`);
      assert.ok(Math.abs(count - expected) <= expected * 0.02, `${count} video packets, expected ${expected.toFixed(1)} ± 2 %`);
      // The stream info shows the POST publisher.
      const info = await json(`${A.http}/api/stream/info/live/x`);
      assert.equal(info.body.data.publisher.protocol, 'flv');
      // Stopping the stream ends the publisher's request: ffmpeg notices and exits.
      // (Deno's HTTP server keeps reading a request body after the response, so there the client is
      // not told: a known gap, see docs/plugins/flv.md. The publisher is gone either way.)
      const t0 = Date.now();
      await json(`${A.http}/api/stream/stop/live/x`, { method: 'POST' });
      await until(() => A.server.engine.getStream('live/x')?.publisher == null, 3000, 'publisher stopped');
      if (process.env.M7S_TEST_RUNTIME !== 'deno') {
        await until(() => ff.proc.exitCode !== null || ff.proc.signalCode !== null, 8000, 'ffmpeg to exit after the stream was stopped');
        console.log(`[flv] ffmpeg exited ${Date.now() - t0} ms after the stream was stopped`);
      }
    } finally {
      await ff.kill();
    }
  });

  it('WS-FLV: a WebSocket gets the FLV header, then tags with a keyframe first; WS publish works', async () => {
    const pub = await A.server.engine.publish('live/ws', { protocol: 'test' });
    const src = new SyntheticSource(pub, { fps: 30, gop: 15 });
    src.start();
    const WS = await WebSocketCtor;
    try {
      const chunks: Uint8Array[] = [];
      const tags: Tag[] = [];
      const demux = new FlvDemuxer((t) => tags.push(toTag(t)));
      const ws = new WS(`${A.http.replace('http', 'ws')}/flv/live/ws.flv`);
      ws.binaryType = 'arraybuffer';
      ws.onmessage = (e: any) => {
        const b = new Uint8Array(e.data);
        chunks.push(b);
        demux.push(b);
      };
      // A missing stream closes the socket with 4000 + HTTP status.
      const missing = new WS(`${A.http.replace('http', 'ws')}/flv/live/none.flv?waittimeout=200ms`);
      const code = await new Promise<number>((res) => { missing.onclose = (e: any) => res(e.code); });
      assert.equal(code, 4404);
      await until(() => tags.filter((t) => t.type === 9).length >= 40, 10_000, 'WS-FLV tags');
      ws.close();
      assert.equal(String.fromCharCode(chunks[0][0], chunks[0][1], chunks[0][2]), 'FLV');
      assert.equal(chunks[0][4], 5, 'audio + video flags');
      assert.equal(tags[0].type, 18, 'onMetaData first');
      const v = tags.filter((t) => t.type === 9);
      assert.ok(v[0].seq, 'the video sequence header comes first');
      assert.ok(v[1].key, 'first video frame after the sequence header is a keyframe');
      assert.ok(tags.some((t) => t.type === 8), 'audio tags');
      assertMonotonic(tags, 'WS-FLV');

      // Publish those bytes back over a WebSocket (?publish) and play them over HTTP.
      const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      let o = 0;
      for (const c of chunks) { all.set(c, o); o += c.length; }
      const wp = new WS(`${A.http.replace('http', 'ws')}/flv/live/wspub.flv?publish`);
      wp.binaryType = 'arraybuffer';
      await new Promise<void>((res, rej) => { wp.onopen = () => res(); wp.onerror = rej; });
      for (let i = 0; i < all.length; i += 1000) wp.send(all.subarray(i, i + 1000));
      const player = new Player(`${A.http}/flv/live/wspub.flv`);
      await until(() => player.media(9).length >= 5, 10_000, 'player of the WS-published stream');
      assert.equal(A.server.engine.getStream('live/wspub')?.publisher?.protocol, 'flv');
      const list = await json(`${A.http}/flv/api/list`);
      assert.ok(list.body.data.publishers.some((p: any) => p.type === 'ws-publish' && p.bytesReceived > 0));
      assert.ok(list.body.data.players.some((p: any) => p.type === 'http-flv' && p.streamPath === 'live/wspub'));
      player.stop();
      wp.close();
      await until(() => !A.server.engine.getStream('live/wspub')?.publisher, 5000, 'WS publisher gone after close');
    } finally {
      src.stop();
      A.server.engine.stopStream('live/ws');
    }
  });

  it('50 concurrent HTTP-FLV players each get the stream; one aborting disturbs no other', async () => {
    const pub = await A.server.engine.publish('live/many', { protocol: 'test' });
    const src = new SyntheticSource(pub, { fps: 30, gop: 30 });
    src.start();
    const players: Player[] = [];
    try {
      for (let i = 0; i < 50; i++) players.push(new Player(`${A.http}/flv/live/many.flv`));
      await until(() => players.every((p) => p.media(9).length >= 45), 20_000, 'every player got 45 video tags');
      for (const p of players) {
        assert.equal(p.status, 200);
        const v = p.media(9);
        assert.ok(v[1].key, 'keyframe first');
        assertMonotonic(p.tags, 'player');
      }
      let r = await json(`${A.http}/api/subscribers/live/many`);
      assert.equal(r.body.data.length, 50);
      const count = async () => (await json(`${A.http}/api/subscribers/live/many`)).body.data.length;
      const victim = players[17];
      victim.stop();
      // An aborted fetch() inside the same Deno process sometimes leaves its connection half-open, so
      // Deno.serve never hears of it (a client in another process is noticed within ~20 ms; measured).
      // On Deno the check below is done with a plain TCP client that closes its socket instead.
      if (!isDeno) await until(async () => (await count()) === 49, 3000, 'aborted subscriber removed');
      const ids = async (): Promise<number[]> => (await json(`${A.http}/api/subscribers/live/many`)).body.data.map((x: any) => x.id);
      const known = new Set(await ids());
      const raw = await rawHttpGet(`${A.http}/flv/live/many.flv`, 64 * 1024);
      let rawId = -1;
      await until(async () => { rawId = (await ids()).find((id) => !known.has(id)) ?? -1; return rawId > 0; }, 3000, 'raw TCP player listed');
      raw.destroy();
      const before = players.map((p) => p.media(9).length);
      await until(async () => !(await ids()).includes(rawId), 3000, 'closed TCP player removed');
      await sleep(1000);
      players.forEach((p, i) => {
        if (p === victim) return;
        assert.ok(p.media(9).length >= before[i] + 20, `player ${i} kept receiving (${before[i]} → ${p.media(9).length})`);
        assert.equal(p.error, null);
      });
      r = await json(`${A.http}/api/subscribers/live/many`);
      assert.ok(r.body.data.every((s: any) => s.framesDropped === 0), 'no drops');
    } finally {
      for (const p of players) p.stop();
      src.stop();
      A.server.engine.stopStream('live/many');
    }
  });

  it('a publisher that drops and comes back: the player keeps its connection, timestamps never go back', async () => {
    const url = `${A.http}/flv/live/re.flv`;
    const ff1 = start(ffmpegPath, [...testSourceArgs({ seconds: 3 }), '-f', 'flv', '-method', 'POST', url]);
    let player: Player | undefined;
    try {
      await until(() => A.server.engine.getStream('live/re')?.publisher, 15_000, 'first publisher');
      player = new Player(url);
      await until(() => ff1.proc.exitCode !== null, 15_000, 'first ffmpeg done');
      await until(() => !A.server.engine.getStream('live/re')?.publisher, 5000, 'first publisher gone');
      const gapTags = player.media().length;
      const ff2 = start(ffmpegPath, [...testSourceArgs({ seconds: 3 }), '-f', 'flv', '-method', 'POST', url]);
      await until(() => ff2.proc.exitCode !== null, 15_000, 'second ffmpeg done');
      await sleep(300);
      assert.equal(player.ended, false, 'player connection still open');
      assert.equal(player.error, null);
      assert.ok(player.media().length > gapTags + 100, `tags from the second publisher (${gapTags} → ${player.media().length})`);
      assertMonotonic(player.tags, 'across the reconnect');
      const info = await json(`${A.http}/api/stream/info/live/re`);
      assert.equal(info.body.data.publishCount, 2);
      const v = player.media(9);
      console.log(`[flv] reconnect: ${v.length} video tags, last ts ${v.at(-1)!.ts} ms`);
      assert.ok(v.at(-1)!.ts > 4000, 'the timeline continued past the first publisher');
    } finally {
      player?.stop();
      await ff1.kill();
      A.server.engine.stopStream('live/re');
    }
  });

  it('file pull (loop) plays at real-time speed and loops with monotonic timestamps', async () => {
    // File pulls from the API read only under global.outbound.fileroots (none by default).
    const m = await json(`${A.http}/api/config/modify?save=false`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ global: { outbound: { fileroots: [dir] } } }) });
    assert.equal(m.body.code, 0, JSON.stringify(m.body));
    const r = await json(`${A.http}/flv/api/pull`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ streamPath: 'vod/file', url: file, loop: true }) });
    assert.equal(r.body.code, 0, JSON.stringify(r.body));
    const player = new Player(`${A.http}/flv/vod/file.flv`);
    try {
      await until(() => player.media(9).length > 0, 10_000, 'first tag');
      const t0 = Date.now();
      await sleep(6500);
      const v = player.media(9).filter((t) => !t.seq);
      // Skip the first second (the GOP cache arrives as a burst), then compare media and wall time.
      const a = v.find((t) => t.at - t0 >= 1000)!;
      const b = v.at(-1)!;
      const media = b.ts - a.ts, wall = b.at - a.at;
      console.log(`[flv] file pull: ${media} ms of media in ${wall} ms wall; last ts ${b.ts}`);
      assert.ok(Math.abs(media - wall) <= wall * 0.2, `media ${media} ms vs wall ${wall} ms`);
      assert.ok(b.ts > 5000, 'looped past the 4 s file');
      assertMonotonic(player.tags, 'looping file');
      const list = await json(`${A.http}/flv/api/list`);
      const job = list.body.data.pulls.find((p: any) => p.id === r.body.data.id);
      assert.equal(job.state, 'pulling');
      assert.ok(job.bytes > 0);
      const s = await json(`${A.http}/flv/api/stop/${r.body.data.id}`, { method: 'POST' });
      assert.equal(s.body.code, 0);
      await until(() => !A.server.engine.getStream('vod/file')?.publisher, 3000, 'pull stopped');
    } finally {
      player.stop();
      A.server.engine.stopStream('vod/file');
    }
  });

  it('HTTP pull from another m7s (config pull and onsub.pull) republishes the stream', async () => {
    const pub = await A.server.engine.publish('live/src', { protocol: 'test' });
    const src = new SyntheticSource(pub, { fps: 30, gop: 15 });
    src.start();
    const B = await startServer([flv], [
      'flv:',
      '  pull:',
      `    live/copy: ${A.http}/flv/live/src.flv`,
      '  retryinterval: 200ms',
      '  onsub:',
      '    pull:',
      `      "relay/(.+)": "${A.http}/flv/live/$1.flv"`,
      '',
    ].join('\n'));
    const players: Player[] = [];
    try {
      players.push(new Player(`${B.http}/flv/live/copy.flv`), new Player(`${B.http}/flv/relay/src.flv`));
      await until(() => players.every((p) => p.media(9).length >= 30), 15_000, 'pulled tags');
      for (const p of players) {
        assert.ok(p.media(9)[1].key, 'keyframe first');
        assertMonotonic(p.tags, 'pulled');
      }
      const list = await json(`${B.http}/flv/api/list`);
      assert.equal(list.body.data.pulls.length, 2);
      assert.ok(list.body.data.pulls.every((j: any) => j.state === 'pulling' && j.bytes > 0));
      // A plays B's copy: two FLV subscribers on A's live/src (B's pulls).
      const subs = await json(`${A.http}/api/subscribers/live/src`);
      assert.equal(subs.body.data.length, 2);

      // A pull whose source is not there yet retries (A answers 404) until it is.
      const r = await json(`${B.http}/flv/api/pull`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ streamPath: 'live/late', url: `${A.http}/flv/live/late.flv?waittimeout=100ms` }) });
      assert.equal(r.body.code, 0);
      const late = new Player(`${B.http}/flv/live/late.flv`);
      players.push(late);
      await until(async () => (await json(`${B.http}/flv/api/list`)).body.data.pulls.find((j: any) => j.id === r.body.data.id).retries >= 2, 5000, 'retries');
      const pubLate = await A.server.engine.publish('live/late', { protocol: 'test' });
      const srcLate = new SyntheticSource(pubLate, { fps: 30, gop: 15 });
      srcLate.start();
      try {
        await until(() => late.media(9).length >= 10, 15_000, 'late source pulled after retries');
        const job = (await json(`${B.http}/flv/api/list`)).body.data.pulls.find((j: any) => j.id === r.body.data.id);
        console.log(`[flv] http pull: connected after ${job.retries} retries (${job.error ?? 'no error'})`);
        // API pulls do not echo the remote's answer (the log has it): one text for every failure.
        assert.equal(job.error, 'source not allowed or not reachable');
      } finally {
        srcLate.stop();
        A.server.engine.stopStream('live/late');
      }
    } finally {
      for (const p of players) p.stop();
      await B.stop();
      src.stop();
      A.server.engine.stopStream('live/src');
    }
  });

  it('HTTP errors: not found, bad path, HEAD and OPTIONS never subscribe', async () => {
    let r = await json(`${A.http}/flv/live/none.flv?waittimeout=300ms`);
    assert.equal(r.status, 404);
    assert.equal(r.body.code, 404);
    assert.match(r.body.message, /not found/);
    r = await json(`${A.http}/flv/one.flv`);
    assert.equal(r.status, 400);
    const h = await fetch(`${A.http}/flv/live/head.flv`, { method: 'HEAD' });
    assert.equal(h.status, 200);
    assert.equal(h.headers.get('content-type'), 'video/x-flv');
    const o = await fetch(`${A.http}/flv/live/head.flv`, { method: 'OPTIONS' });
    await o.body?.cancel();
    assert.ok(o.status === 204 || o.status === 200);
    assert.equal(A.server.engine.getStream('live/head'), undefined, 'HEAD/OPTIONS created no stream');
  });

  it('hostile input: garbage, truncated and oversized POSTs fail clearly; other streams carry on', async () => {
    const pub = await A.server.engine.publish('live/safe', { protocol: 'test' });
    const src = new SyntheticSource(pub, { fps: 30 });
    src.start();
    const player = new Player(`${A.http}/flv/live/safe.flv`);
    try {
      await until(() => player.media(9).length > 10, 10_000, 'safe player running');
      const garbage = new Uint8Array(20_000);
      for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 7919 + 13) & 255;
      let r = await json(`${A.http}/flv/live/bad1.flv`, { method: 'POST', body: garbage });
      assert.equal(r.status, 400);
      assert.match(r.body.message, /bad FLV input: not an FLV stream/);

      const valid = readFileSync(file);
      r = await json(`${A.http}/flv/live/bad2.flv`, { method: 'POST', body: valid.subarray(0, 3000) });
      assert.equal(r.status, 400);
      assert.match(r.body.message, /ended inside/);

      const big = new Uint8Array([...flvHeader(), 9, 0x7f, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0x17, 1]);
      r = await json(`${A.http}/flv/live/bad3.flv`, { method: 'POST', body: big });
      assert.equal(r.status, 400);
      assert.match(r.body.message, /exceeds the 262144-byte limit/);

      // A complete, valid file is accepted (200) and reported.
      r = await json(`${A.http}/flv/live/good.flv`, { method: 'POST', body: valid });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.ok(r.body.data.tags > 100);

      for (const p of ['live/bad1', 'live/bad2', 'live/bad3']) assert.equal(A.server.engine.getStream(p)?.publisher ?? null, null);
      const n = player.media(9).length;
      await sleep(500);
      assert.ok(player.media(9).length > n + 5, 'the other stream kept playing');
      assert.equal(player.error, null);
      assert.equal((await json(`${A.http}/api/sysinfo`)).status, 200);
    } finally {
      player.stop();
      src.stop();
      A.server.engine.stopStream('live/safe');
    }
  });

  it('fuzz: FlvDemuxer (and the tag ingest) on 100 000 random, truncated and mutated inputs', () => {
    // A real capture's start (header, metadata, sequence headers, a keyframe, inter frames), as a copy:
    // Buffer#slice would share memory and let mutations pile up across cases.
    const capture = new Uint8Array(readFileSync(file).subarray(0, 24_000));
    const rnd = prng(0xf1f0);
    const int = (n: number) => Math.floor(rnd() * n);
    const heap = () => (globalThis as any).process?.memoryUsage?.().heapUsed ?? 0;
    const fakePub = makeFakePublisher();
    const t0 = Date.now();
    let h0 = 0, errors = 0, tags = 0;
    const CASES = 100_000;
    for (let i = 0; i < CASES; i++) {
      if (i === 10_000) h0 = heap();
      let input: Uint8Array;
      const kind = i % 4;
      if (kind === 0) {
        input = new Uint8Array(int(96));
        for (let j = 0; j < input.length; j++) input[j] = int(256);
        if (i & 8) input.set(flvHeader().subarray(0, Math.min(13, input.length)));
      } else if (kind === 1) {
        input = capture.slice(0, int(capture.length + 1));
      } else {
        input = capture.slice(0, 200 + int(capture.length - 200));
        const flips = 1 + int(8);
        for (let k = 0; k < flips; k++) input[int(input.length)] = kind === 2 ? int(256) : input[int(input.length)] ^ (1 << int(8));
      }
      try {
        if (i % 10 === 0) {
          // Through the plugin's feed: framing plus tag bodies into a (fake) publisher.
          const feed = new FlvFeed(fakePub as any, { maxTagSize: 1 << 16 });
          for (let p = 0; p < input.length;) { const n = 1 + int(700); feed.push(input.subarray(p, p + n)); p += n; }
          feed.end();
          tags += feed.tags;
        } else {
          const d = new FlvDemuxer(() => { tags++; }, { maxTagSize: 1 << 16 });
          for (let p = 0; p < input.length;) { const n = 1 + int(700); d.push(input.subarray(p, p + n)); p += n; }
          d.end();
        }
      } catch (err) {
        errors++;
        if (!(err instanceof FormatError)) throw new Error(`case ${i}: ${(err as Error)?.name}: ${(err as Error)?.message}`);
      }
    }
    const ms = Date.now() - t0;
    const grown = heap() - h0;
    console.log(`[flv] fuzz: ${CASES} cases in ${ms} ms, ${errors} FormatErrors, ${tags} tags; heap +${(grown / 1e6).toFixed(1)} MB`);
    assert.ok(errors > CASES / 4, 'bad inputs were rejected');
    assert.ok(tags > CASES, 'valid prefixes produced tags');
    assert.ok(ms < 60_000, 'bounded time');
    assert.ok(grown < 64e6, `heap grew ${grown} bytes`);
  });
});

/** Just enough of a Publisher for FlvIngest: tracks are plain objects, frames are dropped. */
function makeFakePublisher() {
  const track = (kind: string, clockRate: number) => ({ kind, clockRate, index: 0 });
  return {
    config: { speed: 0 },
    addTrack: (kind: string, cfg: any, o: any = {}) => track(kind, o.clockRate ?? (kind === 'video' ? 90000 : cfg.sampleRate ?? 48000)),
    setConfig: () => {},
    write: () => undefined,
    paceDelay: () => 0,
  };
}

describe('flv: shared packaging of frame ranges', () => {
  /** A ByteSink that records every chunk it is handed (framed or not). */
  function recSink(framing: Framing = '', gathers = false) {
    const chunks: Uint8Array[] = [];
    const sink: ByteSink & { chunks: Uint8Array[] } = {
      chunks, buffered: 0, closed: false, onDrain: null, onClose: null, framing, gathers,
      write(c) { chunks.push(c); return true; },
      writev(cs) {
        // unframed writes get the framing here, like a real transport would add it
        let n = 0;
        for (const c of cs) n += c.length;
        if (framing === 'chunked') chunks.push(new TextEncoder().encode(n.toString(16) + '\r\n'));
        chunks.push(...cs);
        if (framing === 'chunked') chunks.push(new Uint8Array([13, 10]));
        return true;
      },
      writeFramed(b) { chunks.push(b); return true; },
      end() {},
    };
    return sink;
  }
  const concat = (cs: Uint8Array[]) => {
    const out = new Uint8Array(cs.reduce((n, c) => n + c.length, 0));
    let o = 0;
    for (const c of cs) { out.set(c, o); o += c.length; }
    return out;
  };
  /** Undo HTTP/1.1 chunked framing. */
  const dechunk = (b: Uint8Array) => {
    const parts: Uint8Array[] = [];
    let i = 0;
    while (i < b.length) {
      let j = i;
      while (b[j] !== 13) j++;
      const n = parseInt(new TextDecoder().decode(b.subarray(i, j)), 16);
      assert.ok(n > 0 && b[j + 1] === 10, `chunk header at ${i}`);
      parts.push(b.subarray(j + 2, j + 2 + n));
      assert.deepEqual([b[j + 2 + n], b[j + 3 + n]], [13, 10], 'chunk trailer');
      i = j + 4 + n;
    }
    return concat(parts);
  };
  const tagsOf = (b: Uint8Array) => {
    const tags: FlvTag[] = [];
    const d = new FlvDemuxer((t) => tags.push({ ...t, data: t.data.slice() }));
    d.push(b);
    return tags;
  };

  it('players at the live edge write one shared buffer per range; bytes equal the per-frame path', async () => {
    const engine = new Engine({ subscribe: { ...defaultSubscribe, catchup: 0 } }); // joiners keep their GOP's times here
    try {
      const pub = await engine.publish('live/shr', { protocol: 'test' });
      const src = new SyntheticSource(pub, { fps: 25, gop: 25, sampleRate: 44100 });
      src.burst(12);
      const a = recSink(), b = recSink(), c = recSink('chunked');
      const sa = new FlvPlaySink(a), sb = new FlvPlaySink(b), sc = new FlvPlaySink(c);
      await engine.subscribe('live/shr', { protocol: 'flv', sink: sa });
      // data: true makes a subscriber take data tracks too, which shared ranges do not cover: per-frame path
      await engine.subscribe('live/shr', { protocol: 'flv', sink: sb, data: true });
      await engine.subscribe('live/shr', { protocol: 'flv', sink: sc });
      const a0 = a.chunks.length, c0 = c.chunks.length;
      src.burst(60);
      // a and c got a single buffer per write (not header/body/trailer pieces) ...
      const aw = a.chunks.slice(a0), cw = c.chunks.slice(c0);
      assert.ok(aw.length >= 60 && aw.length <= 61, `${aw.length} writes for 60 video frames`);
      // ... two players with the same framing share the very same objects; other framings get their own
      const a2 = recSink(), sa2 = new FlvPlaySink(a2);
      await engine.subscribe('live/shr', { protocol: 'flv', sink: sa2 });
      const n0 = a.chunks.length, m0 = a2.chunks.length;
      src.burst(10);
      const same = a2.chunks.slice(m0).filter((x) => a.chunks.slice(n0).includes(x));
      // (the first write may differ: the first player may still hold audio that the joiner got in its GOP)
      assert.ok(same.length >= 9, `the late joiner shares its writes with the first player at the edge (${same.length} of 10)`);
      assert.ok(!cw.some((x) => aw.includes(x)), 'chunked framing is packaged separately');
      // The byte streams are the same FLV whichever path built them.
      const bytesA = concat(a.chunks), bytesB = concat(b.chunks), bytesC = dechunk(concat(c.chunks));
      assert.deepEqual(bytesA, bytesB, 'shared path = per-frame path, byte for byte');
      assert.deepEqual(bytesC, bytesA, 'chunked framing carries the same FLV');
      const all = tagsOf(bytesA);
      for (let i = 1; i < all.length; i++) assert.ok(all[i].timestamp >= all[i - 1].timestamp, 'timestamps never go back');
      const tags = all.filter((t) => t.type === FLV_TAG_VIDEO && t.data[1] !== 0); // frames, not sequence headers
      assert.ok(tags.length >= 70);
      for (let i = 1; i < tags.length; i++) assert.ok(tags[i].timestamp > tags[i - 1].timestamp, 'video timestamps rise');
      // Stream timeline: a late joiner starts at its GOP's keyframe with the time every player has for it.
      const first2 = tagsOf(concat(a2.chunks)).find((t) => t.type === FLV_TAG_VIDEO && t.data[1] !== 0)!;
      assert.ok(first2.timestamp > tags[0].timestamp);
      assert.ok(tags.some((t) => t.timestamp === first2.timestamp && (t.data[0] >> 4) === 1), 'same keyframe, same time');
    } finally {
      engine.shutdown();
    }
  });

  it('a start after a player\'s head bytes: one buffer per distinct head, exact bytes, framed once', () => {
    const u8 = (...b: number[]) => new Uint8Array(b);
    const start: SharedStartBytes = { parts: [u8(1, 2, 3), u8(4, 5)], size: 5, state: 0 };
    const x1 = prefixedStart(start, [u8(9), u8(8)], '')!;
    assert.deepEqual([...x1], [9, 8, 1, 2, 3, 4, 5]);
    const x2 = prefixedStart(start, [u8(9), u8(7)], '')!;
    assert.deepEqual([...x2], [9, 7, 1, 2, 3, 4, 5], 'another head: its own bytes');
    assert.equal(prefixedStart(start, [u8(9, 8)], ''), x1, 'the same head bytes in other chunks: the same buffer');
    assert.equal(prefixedStart(start, [u8(9, 7)], ''), x2);
    assert.deepEqual([...prefixedStart(start, [u8(9, 8, 0)], '')!], [9, 8, 0, 1, 2, 3, 4, 5], 'a longer head is not a match');
    // Kept per start: a few heads; an evicted one is built again, with the right bytes.
    for (let h = 10; h < 15; h++) assert.deepEqual([...prefixedStart(start, [u8(h)], '')!], [h, 1, 2, 3, 4, 5]);
    assert.deepEqual([...prefixedStart(start, [u8(9), u8(8)], '')!], [9, 8, 1, 2, 3, 4, 5]);
    assert.ok(start.withHead!.length <= 4);
    // WebSocket framing: one frame header for head and start together.
    const ws = prefixedStart({ parts: [u8(1, 2, 3)], size: 3, state: 0 }, [u8(7)], 'ws')!;
    assert.deepEqual([...ws], [0x82, 4, 7, 1, 2, 3]);
    assert.equal(prefixedStart(start, [new Uint8Array(16 * 1024 + 1)], ''), null, 'a long head is not shared');
  });

  it('players joining at one point share one start burst (catch-up retimed); bytes equal the per-frame path', async () => {
    const engine = new Engine({ subscribe: { ...defaultSubscribe, catchup: 100 } });
    try {
      const pub = await engine.publish('live/start', { protocol: 'test' });
      const src = new SyntheticSource(pub, { fps: 25, gop: 50, sampleRate: 44100 });
      src.burst(30); // 1.2 s of GOP cached: joiners fast-forward it in 100 ms
      const a = recSink(), b = recSink(), c = recSink(), d = recSink('chunked');
      const subA = await engine.subscribe('live/start', { protocol: 'flv', sink: new FlvPlaySink(a) });
      const subB = await engine.subscribe('live/start', { protocol: 'flv', sink: new FlvPlaySink(b) });
      const b2 = recSink();
      await engine.subscribe('live/start', { protocol: 'flv', sink: new FlvPlaySink(b2) });
      // data: true takes data tracks too, so its start is its own (the per-frame path, flushed in batches)
      const subC = await engine.subscribe('live/start', { protocol: 'flv', sink: new FlvPlaySink(c), data: true });
      await engine.subscribe('live/start', { protocol: 'flv', sink: new FlvPlaySink(d) });
      const biggest = (cs: Uint8Array[]) => cs.reduce((m, x) => (x.length > m.length ? x : m));
      const startA = biggest(a.chunks);
      assert.ok(startA.length > 30_000, `the GOP goes out in one buffer (${startA.length} bytes)`);
      // The builder wrote its headers, then the start; a joiner after it writes both in one buffer
      // (one WebSocket message, one send), and the next joiner with the same headers that same buffer.
      assert.equal(b.chunks.length, 1, 'a joiner\'s headers and start go out in one write');
      const startB = b.chunks[0]!;
      assert.deepEqual(startB.subarray(startB.length - startA.length), startA, 'its start is the builder\'s');
      assert.deepEqual(startB.subarray(0, startB.length - startA.length), concat(a.chunks.slice(0, a.chunks.indexOf(startA))), 'after the same headers');
      assert.equal(b2.chunks.length, 1);
      assert.equal(b2.chunks[0], startB, 'the next joiner with the same headers writes the same buffer');
      assert.ok(![startA, startB].some((x) => c.chunks.includes(x) || d.chunks.includes(x)), 'other selections and framings build their own');
      assert.equal(subB.framesSent, subA.framesSent, 'the shared start counts the frames it carries');
      assert.equal(subB.bytesSent, subA.bytesSent);
      // A connection that gathers (one vectored write) gets the start's chunks as they are: the same
      // objects for every joiner, tag headers included; the per-frame path makes its own headers.
      const g1 = recSink('', true), g2 = recSink('', true);
      await engine.subscribe('live/start', { protocol: 'flv', sink: new FlvPlaySink(g1) });
      await engine.subscribe('live/start', { protocol: 'flv', sink: new FlvPlaySink(g2) });
      const ownOf = (x: Uint8Array[], y: Uint8Array[]) => x.filter((ch) => !y.includes(ch)).length;
      assert.ok(ownOf(g2.chunks, g1.chunks) <= 5, `only begin()'s header chunks are the joiner's own (${ownOf(g2.chunks, g1.chunks)})`);
      assert.ok(ownOf(c.chunks, g1.chunks) >= 30, 'the per-frame path has its own tag headers');
      assert.deepEqual(concat(g2.chunks), concat(a.chunks), 'same bytes gathered or joined');
      src.burst(1);
      const e = recSink();
      await engine.subscribe('live/start', { protocol: 'flv', sink: new FlvPlaySink(e) });
      assert.ok(!a.chunks.includes(biggest(e.chunks)), 'a joiner after the next frame gets a new start');
      src.burst(20);
      const bytesA = concat(a.chunks);
      assert.deepEqual(concat(b.chunks), bytesA, 'shared start = the builder\'s bytes, also after it');
      assert.deepEqual(concat(b2.chunks), bytesA);
      assert.deepEqual(concat(c.chunks), bytesA, 'shared start = per-frame path, byte for byte');
      assert.deepEqual(concat(g2.chunks), bytesA, 'also gathered');
      assert.deepEqual(dechunk(concat(d.chunks)), bytesA, 'chunked framing carries the same FLV');
      assert.equal(subC.framesSent, subA.framesSent);
      for (const bytes of [bytesA, concat(e.chunks)]) {
        const tags = tagsOf(bytes);
        const video = tags.filter((t) => t.type === FLV_TAG_VIDEO && t.data[1] !== 0);
        assert.equal(video[0]!.data[0]! >> 4, 1, 'starts at a keyframe');
        assert.equal(tags.filter((t) => t.type === FLV_TAG_VIDEO && t.data[1] === 0).length, 1, 'one sequence header');
        for (let i = 1; i < video.length; i++) assert.ok(video[i]!.timestamp > video[i - 1]!.timestamp, 'video timestamps rise');
        assert.ok(video[1]!.timestamp - video[0]!.timestamp < 20, 'the cached GOP is fast-forwarded (catch-up)');
        assert.equal(video[video.length - 1]!.timestamp - video[video.length - 2]!.timestamp, 40, 'then live at 25 fps');
      }
    } finally {
      engine.shutdown();
    }
  });
});
