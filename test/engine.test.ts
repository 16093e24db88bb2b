import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Engine, EngineError, type Frame, md5Hex, parseStreamPath, Ring, SyntheticSource, syntheticIndex,
  type Subscriber, type SubscriberSink, makeKeyAuthArgs, defaultPublish, defaultSubscribe, Track, Frame as FrameClass, Stream,
} from '../src/core/index.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A sink that records what it gets and simulates a connection with a write queue and a high-water mark. */
class RecSink implements SubscriberSink {
  got: { kind: string; dts: number; key: boolean; index: number; bytes: number }[] = [];
  configs = 0;
  queued = 0;          // bytes "in the socket buffer"
  maxQueued = 0;
  closedReason = '';
  began = false;
  constructor(public highWater = Infinity, public drains = true) {}
  begin() { this.began = true; }
  config() { this.configs++; return 10; }
  frame(f: Frame, dts: number) {
    const kind = f.track.kind;
    this.got.push({ kind, dts, key: f.key, index: syntheticIndex(f.data, kind as 'video' | 'audio'), bytes: f.data.length });
    this.queued += f.data.length;
    if (this.queued > this.maxQueued) this.maxQueued = this.queued;
    return f.data.length;
  }
  flush() {
    if (this.drains) this.queued = 0;
    return this.queued < this.highWater;
  }
  close(reason: string) { this.closedReason = reason; }
  video() { return this.got.filter((g) => g.kind === 'video'); }
}

function assertMonotonic(list: { dts: number }[], what: string) {
  for (let i = 1; i < list.length; i++) {
    assert.ok(list[i].dts >= list[i - 1].dts, `${what}: dts went back at ${i}: ${list[i - 1].dts} -> ${list[i].dts}`);
  }
}

const engines: Engine[] = [];
function mkEngine(pub: Partial<typeof defaultPublish> = {}, sub: Partial<typeof defaultSubscribe> = {}) {
  const e = new Engine({ publish: { ...defaultPublish, ...pub }, subscribe: { ...defaultSubscribe, ...sub } });
  engines.push(e);
  return e;
}
after(() => { for (const e of engines) e.shutdown(); });

describe('md5 and stream paths', () => {
  it('md5 matches RFC 1321 test vectors', () => {
    assert.equal(md5Hex(''), 'd41d8cd98f00b204e9800998ecf8427e');
    assert.equal(md5Hex('abc'), '900150983cd24fb0d6963f7d28e17f72');
    assert.equal(md5Hex('12345678901234567890123456789012345678901234567890123456789012345678901234567890'), '57edf4a22be3c955ac49da2e2107b67a');
  });
  it('parses and rejects stream paths', () => {
    const p = parseStreamPath('/live/cam1?secret=ab&expire=ff');
    assert.deepEqual([p.path, p.app, p.name, p.args.secret, p.args.expire], ['live/cam1', 'live', 'cam1', 'ab', 'ff']);
    assert.equal(parseStreamPath('a/b/c').app, 'a/b');
    for (const bad of ['live', '', 'live/../x', 'live//x', 'live/x y', 'a/' + 'x'.repeat(300), 'live/%zz']) {
      assert.throws(() => parseStreamPath(bad), (e: unknown) => e instanceof EngineError && e.code === 'BadPath', bad);
    }
  });
});

describe('ring', () => {
  it('indexes by sequence, grows, evicts and finds sync points', () => {
    const r = new Ring(16, 64);
    const t = new Track('video', 0, 90000, { codec: 'h264' });
    for (let i = 0; i < 40; i++) r.push(new FrameClass(t, i * 3000, 0, i % 10 === 0, new Uint8Array(10), 0), i % 10 === 0);
    assert.equal(r.size, 40);
    assert.equal(r.get(17)!.dts, 17 * 3000);
    assert.deepEqual([r.syncAt(0), r.latestSync(), r.syncAtOrAfter(11), r.syncAtOrBefore(29)], [0, 30, 20, 20]);
    r.evictTo(15);
    assert.equal(r.get(14), undefined);
    assert.equal(r.syncAt(0), 20);
    assert.equal(r.bytes, 25 * 10);
    for (let i = 40; i < 200; i++) r.push(new FrameClass(t, i * 3000, 0, false, new Uint8Array(1), 0), false);
    assert.ok(r.size <= 64, 'bounded by maxCapacity');
    assert.equal(r.last()!.dts, 199 * 3000);
  });
});

describe('engine: publish and subscribe', () => {
  it('the first frame a new subscriber gets is the latest keyframe, then every frame in order', async () => {
    const e = mkEngine();
    const pub = await e.publish('live/first', { protocol: 'test' });
    const src = new SyntheticSource(pub, { gop: 10 });
    src.burst(25); // keyframes at 0, 10, 20
    const sink = new RecSink();
    await e.subscribe('live/first', { protocol: 'test', sink });
    assert.ok(sink.began);
    const v = sink.video();
    assert.equal(v[0].key, true);
    assert.equal(v[0].index, 20, 'starts at the latest keyframe, not the oldest');
    assert.equal(v[0].dts, 0, 'rebased to start at 0');
    src.burst(15);
    const idx = sink.video().map((g) => g.index);
    assert.deepEqual(idx, Array.from({ length: 20 }, (_, i) => 20 + i));
    assert.equal(sink.configs, 2, 'one config (sequence header) per track');
    assertMonotonic(sink.video(), 'video');
  });

  it('a never-draining subscriber stays within its bound and skips to keyframes; another gets every frame', async () => {
    const e = mkEngine();
    const pub = await e.publish('live/slow', { protocol: 'test' });
    const src = new SyntheticSource(pub, { gop: 30, videoBytes: 20_000 });
    src.burst(1);
    const fast = new RecSink();
    const HW = 512 * 1024;
    const slow = new RecSink(HW, false); // its socket never drains
    await e.subscribe('live/slow', { protocol: 'test', sink: fast });
    const sub = await e.subscribe('live/slow', { protocol: 'test', sink: slow });
    src.burst(600); // 20 s of video at ~4.8 Mb/s
    // Bound: high-water mark + one batch (64 KiB) + one frame.
    const bound = HW + 64 * 1024 + 100_000;
    assert.ok(slow.maxQueued <= bound, `slow subscriber queued ${slow.maxQueued} > bound ${bound}`);
    assert.equal(sub.state, 'blocked');
    const fastIdx = fast.video().map((g) => g.index);
    assert.deepEqual(fastIdx, Array.from({ length: 601 }, (_, i) => i), 'fast subscriber got every frame in order');
    // The slow one drains now: it must resume at a keyframe and count what it skipped.
    slow.queued = 0; slow.drains = true;
    const before = slow.video().length;
    sub.resume();
    const after = slow.video().slice(before);
    assert.ok(after.length > 0);
    assert.equal(after[0].key, true, 'resumes at a keyframe');
    assert.ok(sub.framesDropped > 0 && sub.skips > 0, 'drops are counted');
    assertMonotonic(slow.video(), 'slow');
    const info = sub.info();
    assert.equal(info.framesDropped, sub.framesDropped);
    // Memory of the stream itself stays bounded by GOPs, not by the slow reader.
    const ring = e.getStream('live/slow')!.ring;
    assert.ok(ring.size <= 2 * 30 + 2 * 60 + 10, `ring holds ${ring.size} frames`);
  });

  it('a slow reader (10% drain, real time) keeps getting keyframes', async () => {
    const e = mkEngine({}, { maxlag: 1000 });
    const pub = await e.publish('live/trickle', { protocol: 'test' });
    const src = new SyntheticSource(pub, { fps: 50, gop: 25, videoBytes: 4000, audio: false });
    src.burst(1);
    const slow = new RecSink(16 * 1024, false);
    const sub = await e.subscribe('live/trickle', { protocol: 'test', sink: slow });
    // Average bitrate: (5 + 24) * 4000 B per 25 frames at 50 fps = 232 kB/s; drain 10 % of it.
    const drainPerTick = Math.round((232_000 * 0.1) / 50);
    src.start();
    const t = setInterval(() => {
      slow.queued = Math.max(0, slow.queued - drainPerTick);
      if (slow.queued < slow.highWater) sub.resume();
    }, 20);
    await sleep(3000);
    clearInterval(t);
    src.stop();
    const keys = slow.video().filter((g) => g.key).length;
    assert.ok(keys >= 3, `got ${keys} keyframes in 3 s`);
    assert.ok(sub.framesDropped > 0, 'skipped frames are counted');
    assert.ok(slow.maxQueued <= 16 * 1024 + 64 * 1024 + 20_000, `bounded: ${slow.maxQueued}`);
    assertMonotonic(slow.video(), 'trickle');
    // It skipped more than once within DEGRADE_WINDOW_MS: now it gets keyframes only, which it can use.
    assert.ok(sub.skips >= 2, `${sub.skips} skips`);
    assert.equal(sub.info().degraded, true);
    const lastVideo = slow.video().slice(-3);
    assert.ok(lastVideo.every((g) => g.key), `keyframes only at the end: ${JSON.stringify(lastVideo.map((g) => g.key))}`);
  });

  it('publisher drops and another returns within waittimeout: subscribers continue with monotonic timestamps', async () => {
    const e = mkEngine({}, { waittimeout: 2000 });
    const pub1 = await e.publish('live/re', { protocol: 'test' });
    const src1 = new SyntheticSource(pub1, { gop: 10 });
    src1.burst(30);
    const sink = new RecSink();
    const sub = await e.subscribe('live/re', { protocol: 'test', sink });
    src1.burst(20);
    pub1.close('connection lost');
    assert.equal(e.getStream('live/re')!.state, 'waiting');
    await sleep(100);
    const pub2 = await e.publish('live/re', { protocol: 'test' });
    // The new source starts its clock from 0 again.
    const src2 = new SyntheticSource(pub2, { gop: 10 });
    src2.burst(30);
    assert.equal(sub.state, 'live');
    assert.equal(sink.closedReason, '');
    assertMonotonic(sink.video(), 'video across reconnect');
    assertMonotonic(sink.got.filter((g) => g.kind === 'audio'), 'audio across reconnect');
    // After the reconnect, video resumes at a keyframe of the new publisher.
    const v = sink.video();
    const firstNew = v.findIndex((g, i) => i > 0 && g.index < v[i - 1].index);
    assert.ok(firstNew > 0 && v[firstNew].key && v[firstNew].index === 0);
    assert.equal(e.getStream('live/re')!.publishCount, 2);
  });

  it('publisher lost and not back within waittimeout: subscribers are ended', async () => {
    const e = mkEngine({}, { waittimeout: 200 });
    const pub = await e.publish('live/gone', { protocol: 'test' });
    new SyntheticSource(pub).burst(5);
    const sink = new RecSink();
    await e.subscribe('live/gone', { protocol: 'test', sink });
    pub.close();
    await sleep(400);
    assert.match(sink.closedReason, /did not return/);
    assert.equal(e.getStream('live/gone'), undefined);
  });

  it('duplicate publish is refused; kickexist takes over', async () => {
    const e = mkEngine();
    const a = await e.publish('live/k', { protocol: 'test' });
    await assert.rejects(e.publish('live/k', { protocol: 'test' }), (err: unknown) => err instanceof EngineError && err.code === 'DuplicatePublish');
    let stopped = '';
    a.onStop = (r) => { stopped = r; };
    const sink = new RecSink();
    new SyntheticSource(a).burst(3);
    await e.subscribe('live/k', { protocol: 'test', sink });
    const b = await e.publish('live/k?kickexist=1', { protocol: 'test', config: { ...defaultPublish, kickexist: true } });
    assert.match(stopped, /kicked/);
    assert.equal(a.closed, true);
    assert.equal(e.getStream('live/k')!.publisher, b);
    assert.equal(sink.closedReason, '', 'subscribers are adopted by the new publisher');
  });

  it('publishtimeout ends a publisher that sends nothing', async () => {
    const e = mkEngine({ publishtimeout: 300 });
    const pub = await e.publish('live/quiet', { protocol: 'test' });
    let reason = '';
    pub.onStop = (r) => { reason = r; };
    new SyntheticSource(pub).burst(2);
    await sleep(800);
    assert.match(reason, /publishtimeout/);
    assert.equal(e.getStream('live/quiet'), undefined, 'no subscribers: the stream is gone');
  });

  it('delayclosetimeout stops the stream after the last subscriber leaves', async () => {
    const e = mkEngine({ delayclosetimeout: 300 });
    const pub = await e.publish('live/dc', { protocol: 'test' });
    let reason = '';
    pub.onStop = (r) => { reason = r; };
    const src = new SyntheticSource(pub);
    src.burst(2);
    const s1 = await e.subscribe('live/dc', { protocol: 'test', sink: new RecSink() });
    await sleep(400);
    assert.equal(reason, '', 'still watched: keeps running');
    s1.close();
    await sleep(150);
    const s2 = await e.subscribe('live/dc', { protocol: 'test', sink: new RecSink() });
    await sleep(300);
    assert.equal(reason, '', 'a subscriber came back within the delay');
    s2.close();
    await sleep(500);
    assert.match(reason, /delayclosetimeout/);
  });

  it('idletimeout stops a stream nobody subscribes to', async () => {
    const e = mkEngine({ idletimeout: 300 });
    const pub = await e.publish('live/idle', { protocol: 'test' });
    const src = new SyntheticSource(pub);
    src.start();
    await sleep(800);
    src.stop();
    assert.equal(pub.closed, true);
    assert.match(pub.closeReason, /idletimeout/);
  });

  it('subscribing to a missing stream runs the on-demand pull with the templated URL, then plays', async () => {
    const e = mkEngine();
    const calls: { url: string; streamPath: string }[] = [];
    e.setPullTriggers('testpull', { 'pull/(.+)': 'rtmp://origin.example/live/$1' }, async ({ url, streamPath }) => {
      calls.push({ url, streamPath });
      const pub = await e.publish(streamPath, { protocol: 'testpull', type: 'pull' });
      new SyntheticSource(pub).burst(3);
    });
    const sink = new RecSink();
    await e.subscribe('pull/cam7', { protocol: 'test', sink });
    assert.deepEqual(calls, [{ url: 'rtmp://origin.example/live/cam7', streamPath: 'pull/cam7' }]);
    assert.ok(sink.video().length >= 1);
    // A path that does not match the pattern times out as not found.
    await assert.rejects(e.subscribe('other/x', { protocol: 'test', sink: new RecSink(), config: { ...defaultSubscribe, waittimeout: 100 } }),
      (err: unknown) => err instanceof EngineError && err.code === 'NotFound');
    assert.equal(calls.length, 1);
  });

  it('onpub actions run with the templated target when a stream starts', async () => {
    const e = mkEngine();
    const got: string[] = [];
    e.setPublishActions('testpush', 'push', { 'live/(.+)': 'rtmp://cdn.example/app/$1' }, ({ target }) => { got.push(target); });
    await e.publish('live/act', { protocol: 'test' });
    await sleep(10);
    assert.deepEqual(got, ['rtmp://cdn.example/app/act']);
  });

  it('key auth: a bad or expired secret is rejected, a good one accepted', async () => {
    const e = mkEngine({ key: 's3cret' }, { key: 'v13w' });
    const now = Math.floor(Date.now() / 1000);
    const conf = { key: 's3cret', secretargname: 'secret', expireargname: 'expire' };
    await assert.rejects(e.publish('live/auth', { protocol: 'test' }), (err: unknown) => err instanceof EngineError && err.code === 'Unauthorized');
    await assert.rejects(e.publish('live/auth?secret=00&expire=' + (now + 60).toString(16), { protocol: 'test' }), /bad secret/);
    const expired = makeKeyAuthArgs(conf, 'live/auth', now - 10);
    await assert.rejects(e.publish('live/auth', { protocol: 'test', args: expired }), /expired/);
    const good = makeKeyAuthArgs(conf, 'live/auth', now + 60);
    const pub = await e.publish('live/auth', { protocol: 'test', args: good });
    new SyntheticSource(pub).burst(2);
    await assert.rejects(e.subscribe('live/auth', { protocol: 'test', sink: new RecSink(), args: good }), /bad secret/, 'subscribe has its own key');
    const subArgs = makeKeyAuthArgs({ ...conf, key: 'v13w' }, 'live/auth', now + 60);
    await e.subscribe('live/auth', { protocol: 'test', sink: new RecSink(), args: subArgs });
    assert.equal(e.totals.authFailures, 4);
  });

  it('auth hooks can deny, and every protocol passes the same gate', async () => {
    const e = mkEngine();
    e.addAuthHook('jwt', (req) => req.args.token === 'ok');
    await assert.rejects(e.publish('live/h', { protocol: 'rtmp' }), /denied by jwt/);
    await e.publish('live/h?token=ok', { protocol: 'rtmp' });
  });

  it('audio-only, video-only and keyframe-only subscriptions; track selection by arg', async () => {
    const e = mkEngine();
    const pub = await e.publish('live/sel', { protocol: 'test' });
    const src = new SyntheticSource(pub, { gop: 5 });
    const small = pub.addTrack('video', { codec: 'h264', width: 160, height: 90 }, { index: 1 });
    src.burst(1);
    const audioOnly = new RecSink(), videoOnly = new RecSink(), keysOnly = new RecSink(), smallSink = new RecSink();
    await e.subscribe('live/sel?subvideo=false', { protocol: 'test', sink: audioOnly, config: { ...defaultSubscribe, subvideo: false } });
    await e.subscribe('live/sel', { protocol: 'test', sink: videoOnly, config: { ...defaultSubscribe, subaudio: false } });
    await e.subscribe('live/sel', { protocol: 'test', sink: keysOnly, config: { ...defaultSubscribe, iframeonly: true } });
    await e.subscribe('live/sel?vts=1', { protocol: 'test', sink: smallSink });
    for (let i = 0; i < 20; i++) {
      src.step();
      pub.write(small, i * 3000, 0, i % 5 === 0, new Uint8Array([0, 0, 0, 1, 0x65, 0, 0, 0, i]));
    }
    assert.ok(audioOnly.got.length > 0 && audioOnly.got.every((g) => g.kind === 'audio'));
    assert.ok(videoOnly.got.length > 0 && videoOnly.got.every((g) => g.kind === 'video'));
    assert.ok(keysOnly.video().length >= 4 && keysOnly.video().every((g) => g.key));
    assert.ok(smallSink.video().length > 0 && smallSink.video().every((g) => g.bytes === 9), 'vts=1 picks the small stream');
  });

  it('subscriber limit and stop via engine', async () => {
    const e = mkEngine({}, { maxcount: 1 });
    const pub = await e.publish('live/lim', { protocol: 'test' });
    new SyntheticSource(pub).burst(2);
    const sink = new RecSink();
    await e.subscribe('live/lim', { protocol: 'test', sink });
    await assert.rejects(e.subscribe('live/lim', { protocol: 'test', sink: new RecSink() }), (err: unknown) => err instanceof EngineError && err.code === 'TooManySubscribers');
    assert.equal(e.stopStream('live/lim', 'stopped by test'), true);
    assert.equal(sink.closedReason, 'stopped by test');
    assert.equal(pub.closed, true);
  });

  it('a sink that throws ends only its own subscriber; the publisher and the others carry on', async () => {
    const e = mkEngine();
    const pub = await e.publish('live/boom', { protocol: 'test' });
    const src = new SyntheticSource(pub, { gop: 5 });
    src.burst(1);
    const good = new RecSink();
    let told = '';
    await e.subscribe('live/boom', { protocol: 'test', sink: good });
    const bad = await e.subscribe('live/boom', { protocol: 'test', sink: {
      frame(f) { if (f.track.kind === 'video' && !f.key) throw new Error('plugin bug'); return 1; },
      flush: () => true,
      close: (r) => { told = r; },
    } });
    src.burst(10); // must not throw out of the publisher
    assert.equal(bad.state, 'closed');
    assert.match(bad.info().error ?? '', /plugin bug/);
    assert.match(told, /sink failed/, 'the plugin is told');
    assert.equal(e.getStream('live/boom')!.subscribers.size, 1);
    assert.equal(good.video().length, 11);
  });

  it('waittimeout 0 means do not wait for a missing stream', async () => {
    const e = mkEngine({}, { waittimeout: 0 });
    const t0 = Date.now();
    await assert.rejects(e.subscribe('live/never', { protocol: 'test', sink: new RecSink() }), (err: unknown) => err instanceof EngineError && err.code === 'NotFound');
    assert.ok(Date.now() - t0 < 200);
    assert.equal(e.getStream('live/never'), undefined, 'nothing left behind');
  });

  it('source timestamp jumps are tamed into a monotonic timeline', async () => {
    const e = mkEngine();
    const pub = await e.publish('live/jump', { protocol: 'test' });
    const v = pub.addTrack('video', { codec: 'h264' });
    const sink = new RecSink();
    pub.write(v, 0, 0, true, new Uint8Array(9));
    await e.subscribe('live/jump', { protocol: 'test', sink });
    const src = [3000, 6000, 9000, 90000 * 3600, 90000 * 3600 + 3000, 500, 3500, 3400, 6500];
    for (const d of src) pub.write(v, d, 0, false, new Uint8Array(9));
    const dts = sink.video().map((g) => g.dts);
    assertMonotonic(sink.video(), 'jumps');
    assert.ok(dts[dts.length - 1] < 90000 * 10, `no hour-long gap: ${dts}`);
  });

  it('buffer submode starts buffertime back', async () => {
    const e = mkEngine({ buffertime: 3000 });
    const pub = await e.publish('live/buf', { protocol: 'test' });
    const src = new SyntheticSource(pub, { gop: 30 });
    src.burst(200);
    const real = new RecSink(), buf = new RecSink();
    await e.subscribe('live/buf', { protocol: 'test', sink: real });
    await e.subscribe('live/buf', { protocol: 'test', sink: buf, config: { ...defaultSubscribe, submode: 'buffer', buffertime: 3000 } });
    assert.equal(real.video()[0].index, 180);
    assert.ok(buf.video()[0].index <= 110 && buf.video()[0].key, `buffer mode started at ${buf.video()[0].index}`);
  });
});

describe('engine: merged writes (subscribe.mergewrite)', () => {
  /** RecSink that counts flushes and the frames in each. */
  class FlushSink extends RecSink {
    batches: number[] = [];
    private n = 0;
    override frame(f: Frame, dts: number) { this.n++; return super.frame(f, dts); }
    override flush() { if (this.n) this.batches.push(this.n); this.n = 0; return super.flush(); }
  }

  it('mergewrite 0: one write per video frame, audio rides with the next video frame', async () => {
    const e = mkEngine();
    const pub = await e.publish('live/mw0', { protocol: 'test' });
    const src = new SyntheticSource(pub, { fps: 25, gop: 25, sampleRate: 44100 });
    src.burst(5);
    const sink = new FlushSink();
    await e.subscribe('live/mw0', { protocol: 'test', sink });
    const before = sink.batches.length, framesBefore = sink.got.length;
    const videoBefore = sink.video().length;
    src.burst(50);
    const videoSent = sink.video().length - videoBefore;
    const writes = sink.batches.length - before;
    // Every video frame caused exactly one write, and that write ended with it: nothing video waits.
    assert.equal(writes, videoSent, `${writes} writes for ${videoSent} video frames`);
    assert.equal(sink.got[sink.got.length - 1].kind, 'video');
    assert.ok(sink.got.length - framesBefore > videoSent, 'audio frames went out with the video frames');
  });

  it('mergewrite 100ms: frames are held and go out in one write once the window has passed', async () => {
    const e = mkEngine({}, { mergewrite: 100 });
    const pub = await e.publish('live/mw100', { protocol: 'test' });
    const src = new SyntheticSource(pub, { fps: 25, gop: 25, sampleRate: 44100 });
    src.burst(5);
    const sink = new FlushSink();
    await e.subscribe('live/mw100', { protocol: 'test', sink });
    const n0 = sink.got.length, w0 = sink.batches.length;
    src.burst(10); // all arrive within the same few ms: younger than the window
    assert.equal(sink.got.length, n0, 'nothing written inside the window');
    // No further frame comes: the stream's timer writes the held frames after mergewrite + the audio hold.
    await until(() => sink.got.length > n0, 1000);
    assert.equal(sink.batches.length - w0, 1, 'one write for the held frames');
    assert.ok(sink.got.length - n0 >= 10, `held frames all sent (${sink.got.length - n0})`);
    // A video frame arriving once the oldest held frame is older than the window flushes at once.
    src.burst(1);
    await sleep(110);
    const n1 = sink.got.length;
    src.burst(2); // the 2nd step includes a video frame
    assert.ok(sink.got.length > n1, 'a video frame after the window flushed without waiting for the timer');
  });

  it('an audio-only stream with mergewrite 0 writes each frame at once', async () => {
    const e = mkEngine();
    const pub = await e.publish('live/mwa', { protocol: 'test' });
    const src = new SyntheticSource(pub, { video: false, sampleRate: 44100 });
    src.burst(60); // >= 1 s of audio: sync points
    const sink = new FlushSink();
    await e.subscribe('live/mwa', { protocol: 'test', sink, config: { ...defaultSubscribe, waittrack: 'audio' } });
    const n0 = sink.got.length, w0 = sink.batches.length;
    src.burst(5);
    const sent = sink.got.length - n0;
    assert.ok(sent >= 5, `${sent} frames sent`);
    assert.deepEqual(sink.batches.slice(w0), new Array(sent).fill(1), 'one write per frame');
  });
});

async function until(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await sleep(5);
  }
}

describe('engine: catch-up to the live edge (subscribe.catchup)', () => {
  class CatchupSink extends RecSink { readonly catchup = true; }

  it('a new player gets the cached keyframe at once, its GOP fast-forwarded into catchup ms, then live times', async () => {
    const e = mkEngine({}, { catchup: 200 });
    const pub = await e.publish('live/cu', { protocol: 'test' });
    const src = new SyntheticSource(pub, { fps: 25, gop: 50, sampleRate: 44100 });
    src.burst(40); // 1.6 s into a 2 s GOP
    const sink = new CatchupSink();
    await e.subscribe('live/cu', { protocol: 'test', sink });
    const burst = sink.got.slice();
    assert.ok(burst[0].kind === 'video' && burst[0].key, 'starts at the cached keyframe');
    assert.equal(burst.filter((g) => g.kind === 'video').length, 40, 'every cached video frame is sent (they decode in a chain)');
    assert.equal(burst.filter((g) => g.kind === 'audio').length, 0, 'cached audio is left out');
    const span = (burst[burst.length - 1].dts - burst[0].dts) / 90;
    assert.ok(span <= 200 && span >= 190, `the cached 1.56 s play in ${span} ms`);
    src.burst(25);
    const all = sink.got;
    assertMonotonic(all.filter((g) => g.kind === 'video'), 'video');
    const live = all.slice(burst.length).filter((g) => g.kind === 'video');
    assert.equal(live[0].dts - burst[burst.length - 1].dts, 3600, 'live frames continue 40 ms after the edge');
    assert.ok(all.slice(burst.length).some((g) => g.kind === 'audio'), 'audio from the live edge on');
    const audio = all.slice(burst.length).filter((g) => g.kind === 'audio');
    // audio's first time is at the live edge, not in the fast-forwarded past (both clocks in ms)
    assert.ok(audio[0].dts / 44.1 >= burst[burst.length - 1].dts / 90 - 40, 'audio starts at the edge');
  });

  it('off (0) or sinks that do not opt in: the GOP keeps its times and audio', async () => {
    const e = mkEngine({}, { catchup: 200 });
    const pub = await e.publish('live/cu2', { protocol: 'test' });
    const src = new SyntheticSource(pub, { fps: 25, gop: 50, sampleRate: 44100 });
    src.burst(40);
    const sink = new RecSink(); // a recorder / segmenter: no catchup flag
    await e.subscribe('live/cu2', { protocol: 'test', sink });
    const v = sink.video();
    assert.equal((v[v.length - 1].dts - v[0].dts) / 90, 39 * 40);
    assert.ok(sink.got.some((g) => g.kind === 'audio'));
  });
});

describe('engine: catch-up of a B-frame GOP', () => {
  // x264 -bf 3 (b-pyramid): decode order I0 P4 B2 b1 b3 P8 B6 b5 b7 ..., presentation delayed by 2 frames.
  const D = 3600; // 25 fps in 90 kHz
  const pres = (i: number) => (i === 0 ? 0 : [4, 2, 1, 3][(i - 1) % 4] + 4 * Math.floor((i - 1) / 4));
  class CtsSink implements SubscriberSink {
    readonly catchup = true;
    got: { dts: number; pts: number; p: number; key: boolean }[] = [];
    frame(f: Frame, dts: number, _s: Subscriber, cts?: number) {
      if (f.track.kind === 'video') this.got.push({ dts, pts: dts + (cts ?? f.cts), p: f.pts / D, key: f.key });
      return f.data.length;
    }
    flush() { return true; }
  }
  async function join(frames: number, catchup: number, gop = 61) { // 1 + whole groups of 4: closed GOPs
    const e = mkEngine({}, { catchup });
    const pub = await e.publish('live/bf' + frames + '_' + catchup, { protocol: 'test' });
    const v = pub.addTrack('video', { codec: 'h264' });
    const seqPres: number[] = []; // presentation index of each frame in decode order
    for (let i = 0; i < frames; i++) {
      const g = Math.floor(i / gop), j = i % gop; // closed GOPs: the pattern restarts at each keyframe
      const p = g * gop + (j === 0 ? 0 : pres(j));
      seqPres.push(p);
      pub.write(v, i * D, (p + 2 - i) * D, j === 0, new Uint8Array([i & 255]));
    }
    const sink = new CtsSink();
    await e.subscribe(pub.stream.path, { protocol: 'test', sink });
    for (let i = frames; i < frames + 40; i++) {
      const j = i % gop, p = Math.floor(i / gop) * gop + (j === 0 ? 0 : pres(j));
      pub.write(v, i * D, (p + 2 - i) * D, j === 0, new Uint8Array([i & 255]));
    }
    return sink.got;
  }
  function check(got: { dts: number; pts: number; p: number }[], what: string) {
    for (let i = 1; i < got.length; i++) {
      assert.ok(got[i].dts > got[i - 1].dts, `${what}: dts not rising at ${i}: ${got[i - 1].dts} -> ${got[i].dts}`);
      // FLV/RTMP carry whole ms: the order must hold there too
      assert.ok(Math.round(got[i].dts / 90) > Math.round(got[i - 1].dts / 90), `${what}: dts (ms) not rising at ${i}`);
    }
    for (const g of got) assert.ok(g.pts >= g.dts, `${what}: pts < dts`);
    // Presentation order (pts sorted) must be the source's presentation order.
    const byPts = got.slice().sort((a, b) => a.pts - b.pts).map((g) => g.p);
    const bySrc = got.map((g) => g.p).sort((a, b) => a - b);
    assert.deepEqual(byPts, bySrc, `${what}: presentation order differs from the source's`);
    const ms = got.slice().sort((a, b) => a.pts - b.pts).map((g) => Math.round(g.pts / 90));
    for (let i = 1; i < ms.length; i++) assert.ok(ms[i] > ms[i - 1], `${what}: presentation times (ms) not distinct at ${i}`);
  }

  it('keeps decode order, pts >= dts and presentation order, inside the fast-forward and across its end', async () => {
    for (const n of [37, 45, 58, 61 + 30, 61 + 54]) {
      const got = await join(n, 100);
      assert.ok(got[0].key, 'starts at the keyframe');
      const live = got.findIndex((g) => g.dts / 90 > (got[0].dts / 90) + 150);
      assert.ok(live > 0, 'live frames follow');
      check(got, `joined after ${n} frames`);
      // the fast-forward is still fast: the frames up to the edge span about catchup ms of decode time
      const edge = got.findIndex((g, i) => i > 0 && g.dts - got[i - 1].dts >= D - 1);
      assert.ok(edge > 0 && (got[edge - 1].dts - got[0].dts) / 90 <= 110, `fast-forward spans ${(got[edge - 1].dts - got[0].dts) / 90} ms`);
    }
  });

  it('a long GOP at a high frame rate still leaves whole ms between frames', async () => {
    const got = await join(230, 100, 249); // 229 frames behind into 100 ms: under 1 ms per frame unless stretched
    check(got, '250-frame GOP');
  });
});

describe('engine: adaptive merging under load', () => {
  it('a stream whose fan-out takes most of the time merges writes, and gives it back when the load goes', async () => {
    const e = mkEngine();
    const pub = await e.publish('live/busy', { protocol: 'test' });
    const src = new SyntheticSource(pub, { fps: 25, gop: 25, audio: false });
    src.burst(2);
    let cost = 30; // ms of work per frame written: 25 fps x 30 ms = 75 % of the time
    let flushes = 0;
    class SlowWriter extends RecSink {
      override frame(f: Frame, dts: number) { const end = performance.now() + cost; while (performance.now() < end) { /* busy */ } return super.frame(f, dts); }
      override flush() { flushes++; return super.flush(); }
    }
    await e.subscribe('live/busy', { protocol: 'test', sink: new SlowWriter() });
    const stream = e.getStream('live/busy')!;
    src.start();
    try {
      await until(() => stream.autoMerge >= 50, 9000);
      const f0 = flushes, n0 = src.pub.stream.ring.head;
      await sleep(1000);
      const frames = src.pub.stream.ring.head - n0, writes = flushes - f0;
      assert.ok(writes < frames * 0.8, `${writes} writes for ${frames} frames under load`);
      cost = 0;
      await until(() => stream.autoMerge === 0, 8000);
    } finally {
      src.stop();
    }
  });
});

describe('engine: adaptive merging policy', () => {
  /** A stream on its own, with adapt() driven by hand: `busy` is the share of each 1 s period spent in fan-out. */
  function driven() {
    const host = { onPublisherLost() {}, onSubscriberRemoved() {}, onStreamClosed() {} };
    const s = new Stream('live/p', 'live', 'p', host, { ...defaultPublish });
    const inner = s as unknown as { fanoutMs: number };
    let t = 10_000;
    s.adapt(t);
    const period = (busy: number) => { inner.fanoutMs = busy * 1000; t += 1000; s.adapt(t); return s.autoMerge; };
    return { s, period };
  }

  it('two overloaded seconds (a join storm, a GC pause) do not merge; three in a row do', () => {
    const { s, period } = driven();
    assert.equal(period(0.9), 0, 'one busy second');
    assert.equal(period(0.9), 0, 'two');
    assert.equal(period(0.3), 0);
    assert.equal(period(0.9), 0, 'busy again, but not three times in a row');
    assert.equal(period(0.9), 0);
    assert.equal(period(0.9), 25, 'three in a row');
    assert.equal(period(0.9), 50, 'and 25 more for each further one');
    assert.equal(s.fanoutBusy, 0.9);
  });

  it('a merged stream gives merging back when its fan-out falls to a third of the time, not only to a fifth', () => {
    const { period } = driven();
    period(0.9); period(0.9); period(0.9); period(0.9);
    assert.equal(period(0.45), 50, 'between a third and a half: kept');
    assert.equal(period(0.25), 50);
    assert.equal(period(0.25), 50, 'two calm seconds: kept');
    assert.equal(period(0.25), 25, 'three: 25 ms back');
    assert.equal(period(0.4), 25, 'the count starts again');
    period(0.3); period(0.3);
    assert.equal(period(0.3), 0);
  });

  it('under a fifth it gives 25 ms back every second', () => {
    const { period } = driven();
    for (let i = 0; i < 6; i++) period(0.8);
    assert.equal(period(0.8), 125);
    assert.equal(period(0.1), 100);
    assert.equal(period(0.05), 75);
  });
});

describe('engine: describe (tracks without a cursor) and keyframe requests', () => {
  it('describes a published stream without adding a subscriber', async () => {
    const e = mkEngine();
    const pub = await e.publish('live/desc', { protocol: 'test' });
    new SyntheticSource(pub, { gop: 5 }).burst(6);
    const d = await e.describe('live/desc', { protocol: 'rtsp' });
    assert.deepEqual(d.tracks.map((t) => `${t.kind}:${t.codec}`).sort(), ['audio:aac', 'video:h264']);
    assert.equal(d.path, 'live/desc');
    assert.equal(d.publisher?.protocol, 'test');
    assert.equal(d.stream.subscribers.size, 0, 'no cursor');
    assert.equal(e.totals.subscribes, 0);
    const audioOnly = await e.describe('live/desc', { protocol: 'rtsp', config: { ...defaultSubscribe, subvideo: false } });
    assert.deepEqual(audioOnly.tracks.map((t) => t.kind), ['audio']);
  });

  it('waits (bounded) for a publisher and its tracks, and leaves no stream behind on timeout', async () => {
    const e = mkEngine();
    const p = e.describe('live/late', { protocol: 'rtsp', timeoutMs: 3000 });
    await sleep(30);
    assert.equal(e.getStream('live/late'), undefined, 'describe creates no stream while waiting');
    const pub = await e.publish('live/late', { protocol: 'test' });
    await sleep(30);
    new SyntheticSource(pub, { gop: 5 }).burst(3);
    const d = await p;
    assert.equal(d.tracks.length, 2);
    const t0 = Date.now();
    await assert.rejects(e.describe('live/never', { protocol: 'rtsp', timeoutMs: 150 }), (err: unknown) => err instanceof EngineError && err.code === 'NotFound');
    assert.ok(Date.now() - t0 < 2000);
    assert.equal(e.getStream('live/never'), undefined);
    // A publisher that never sends a keyframe: Timeout, not NotFound.
    const silent = await e.publish('live/silent', { protocol: 'test' });
    silent.addTrack('video', { codec: 'h264' });
    await assert.rejects(e.describe('live/silent', { protocol: 'rtsp', timeoutMs: 100 }), (err: unknown) => err instanceof EngineError && err.code === 'Timeout');
  });

  it('runs the on-demand pull and applies the subscribe auth (key and hooks)', async () => {
    const e = mkEngine({}, { key: 'v13w' });
    const pulls: string[] = [];
    e.setPullTriggers('testpull', { 'pull/(.+)': 'rtsp://cam.example/$1' }, async ({ url, streamPath }) => {
      pulls.push(url);
      const pub = await e.publish(streamPath, { protocol: 'testpull', type: 'pull' });
      new SyntheticSource(pub).burst(3);
    });
    await assert.rejects(e.describe('pull/cam1', { protocol: 'rtsp', timeoutMs: 1000 }), (err: unknown) => err instanceof EngineError && err.code === 'Unauthorized');
    assert.deepEqual(pulls, [], 'no pull for a refused describe');
    const now = Math.floor(Date.now() / 1000);
    const args = makeKeyAuthArgs({ key: 'v13w', secretargname: 'secret', expireargname: 'expire' }, 'pull/cam1', now + 60);
    const d = await e.describe('pull/cam1', { protocol: 'rtsp', args, timeoutMs: 2000 });
    assert.deepEqual(pulls, ['rtsp://cam.example/cam1']);
    assert.equal(d.publisher?.type, 'pull');
    e.addAuthHook('deny-rtsp', (req) => req.protocol !== 'rtsp');
    await assert.rejects(e.describe('pull/cam1', { protocol: 'rtsp', args }), /denied by deny-rtsp/);
  });

  it('Subscriber.requestKeyframe reaches Publisher.onKeyframeRequest, rate-limited', async () => {
    const e = mkEngine();
    const pub = await e.publish('live/kf', { protocol: 'test' });
    new SyntheticSource(pub, { gop: 5 }).burst(3);
    const a = await e.subscribe('live/kf', { protocol: 'rtsp', sink: new RecSink() });
    const b = await e.subscribe('live/kf', { protocol: 'webrtc', sink: new RecSink() });
    assert.equal(a.requestKeyframe(), false, 'no handler: not forwarded');
    const reasons: string[] = [];
    pub.onKeyframeRequest = (why) => reasons.push(why);
    pub.keyframeRequestInterval = 200;
    assert.equal(a.requestKeyframe(), true);
    assert.equal(b.requestKeyframe(), false, 'within the interval: rate-limited');
    assert.equal(a.requestKeyframe(), false);
    await sleep(250);
    assert.equal(b.requestKeyframe(), true);
    assert.deepEqual(reasons, [`rtsp subscriber ${a.id}`, `webrtc subscriber ${b.id}`]);
    const info = pub.info();
    assert.equal(info.keyframeRequests, 5);
    assert.equal(info.keyframeRequestsSent, 2);
    a.close();
    await sleep(250);
    assert.equal(a.requestKeyframe(), false, 'a closed subscriber asks nothing');
    pub.close();
    assert.equal(b.requestKeyframe(), false, 'no publisher: nothing to ask');
  });
});
