// Issue 9, Build 4: limits in the engine. subscribe.writetimeout ends viewers whose connection stays
// blocked; global.limits.ringmemory bounds the bytes all rings hold together.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../src/core/engine.ts';
import { EngineError } from '../src/core/errors.ts';
import { defaultPublish, defaultSubscribe } from '../src/core/config.ts';
import { SyntheticSource } from '../src/core/synthetic.ts';
import type { Subscriber } from '../src/core/subscriber.ts';
import { sleep, until } from './helpers/media.ts';

describe('limits: engine', () => {
  it('subscribe.writetimeout ends a viewer whose connection never drains; one that drains stays', { timeout: 20_000 }, async () => {
    const e = new Engine({ subscribe: { ...defaultSubscribe, writetimeout: 600 } });
    try {
      const pub = await e.publish('live/wt', { protocol: 't' });
      const src = new SyntheticSource(pub, { fps: 25, gop: 25 });
      src.burst(30);
      let closedWith = '';
      // Never drains: flush() always reports backpressure and nobody calls resume().
      const stuck = await e.subscribe('live/wt', {
        protocol: 't', sink: { frame: (f) => f.data.length, flush: () => false, close: (r) => { closedWith = r; } },
      });
      // Pushes back too, but drains 50 ms later every time.
      let drains = 0;
      let ok!: Subscriber;
      ok = await e.subscribe('live/wt', {
        protocol: 't', sink: { frame: (f) => f.data.length, flush: () => { setTimeout(() => { drains++; ok.resume(); }, 50); return false; } },
      });
      src.start();
      await until(() => stuck.state === 'closed', 5000, 'the blocked viewer to be ended');
      assert.match(closedWith, /writetimeout/);
      assert.equal(e.totals.writeTimeouts, 1);
      await sleep(1200);
      assert.notEqual(ok.state, 'closed', 'a viewer that keeps draining is not ended');
      assert.ok(drains > 5);
      src.stop();
    } finally { e.shutdown(); }
  });

  it('writetimeout 0 never ends a blocked viewer', { timeout: 10_000 }, async () => {
    const e = new Engine({ subscribe: { ...defaultSubscribe, writetimeout: 0 } });
    try {
      const pub = await e.publish('live/wt0', { protocol: 't' });
      const src = new SyntheticSource(pub, { fps: 25, gop: 25 });
      src.burst(30);
      const stuck = await e.subscribe('live/wt0', { protocol: 't', sink: { frame: (f) => f.data.length, flush: () => false } });
      await sleep(1500);
      assert.equal(stuck.state, 'blocked');
    } finally { e.shutdown(); }
  });

  it('global.limits.ringmemory trims the largest rings to their latest GOP, then refuses new publishers', async () => {
    const e = new Engine({
      publish: { ...defaultPublish, ringbytes: 64 << 20 },
      limits: { maxstreams: 0, maxwaiting: 0, ringmemory: 600_000 },
    });
    try {
      // Three streams of 10 KB frames (keyframes 50 KB); each ring keeps its last two GOPs by itself.
      const srcs: SyntheticSource[] = [];
      for (const name of ['a', 'b', 'c']) {
        const pub = await e.publish(`live/${name}`, { protocol: 't' });
        const s = new SyntheticSource(pub, { fps: 25, gop: 10, videoBytes: 10_000, audio: false });
        srcs.push(s);
      }
      // Stream a gets much more than the others.
      srcs[0].burst(40);
      srcs[1].burst(12);
      srcs[2].burst(12);
      const before = e.ringMemory();
      assert.ok(before > 600_000, `rings hold ${before} bytes before`);
      e.enforceRingMemory();
      const after = e.ringMemory();
      const a = e.getStream('live/a')!;
      console.log(`# ring memory ${before} -> ${after} bytes (limit 600000); live/a ring ${a.ring.bytes} bytes, ${a.ring.syncCount} sync point(s)`);
      assert.ok(after <= 600_000 || [...e.streams.values()].every((s) => s.ring.syncCount <= 1), `after ${after}`);
      assert.equal(a.ring.syncCount, 1, 'the largest ring keeps its latest GOP');
      assert.ok(e.totals.ringTrims >= 1);
      // Every ring down to one GOP and still over the limit: a new publisher is refused.
      const tight = new Engine({ limits: { maxstreams: 0, maxwaiting: 0, ringmemory: 10_000 } });
      try {
        const p1 = await tight.publish('live/x', { protocol: 't' });
        new SyntheticSource(p1, { fps: 25, gop: 10, videoBytes: 10_000, audio: false }).burst(5);
        await assert.rejects(tight.publish('live/y', { protocol: 't' }), (err: EngineError) => err.code === 'TooManyStreams' && /ringmemory/.test(err.message));
        assert.equal(tight.getStream('live/x')!.publisher, p1, 'the running stream carries on');
      } finally { tight.shutdown(); }
    } finally { e.shutdown(); }
  });
});
