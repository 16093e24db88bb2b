// Origin → edge cascade (plugins/cascade): servers on distinct loopback addresses (127.0.0.x), 100
// HTTP-FLV viewers per edge (raw sockets + our FLV demuxer, cheap), one upstream per edge counted at
// the origin, the origin's publisher killed and republished with the viewers kept and their timestamps
// rising, failover between two origins, and the upstream dropped after the last viewer leaves.
// Runtime-independent interop (sockets and the engine only): Node pass only.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { originUrl } from '../plugins/cascade/index.ts';
import { SyntheticSource } from '../src/core/synthetic.ts';
import { sleep, until } from './helpers/media.ts';
import { type Node, startNode, Viewer } from './helpers/cluster.ts';

const runtime = process.env.M7S_TEST_RUNTIME ?? 'node';
const skip = runtime !== 'node' ? 'runtime-independent interop: Node pass only' : false;

async function publish(n: Node, path: string): Promise<SyntheticSource> {
  const pub = await n.server.engine.publish(path, { protocol: 'test' });
  const src = new SyntheticSource(pub, { fps: 25, gop: 25, videoBytes: 300, audio: false });
  src.start();
  return src;
}

describe('cascade: origin → edges', { skip, timeout: 60_000 }, () => {
  let origin: Node, edgeA: Node, edgeB: Node;
  before(async () => {
    origin = await startNode('127.0.0.1');
    const o = new URL(origin.http);
    // Edge A pulls over HTTP-FLV, edge B over RTMP; both keep viewers 5 s through a publisher gap.
    edgeA = await startNode('127.0.0.2', `cascade:\n  origins: ["${origin.http}"]\n`);
    edgeB = await startNode('127.0.0.3', `cascade:\n  origins: ["${origin.rtmp}"]\n`);
    assert.notEqual(o.hostname, new URL(edgeA.http).hostname);
  });
  after(async () => { await Promise.all([edgeA?.stop(), edgeB?.stop(), origin?.stop()]); });

  it('builds origin URLs', () => {
    assert.equal(originUrl('http://o:8080', 'live/a'), 'http://o:8080/flv/live/a.flv');
    assert.equal(originUrl('http://o:8080/x/', 'live/a', 'k=1'), 'http://o:8080/x/live/a.flv?k=1');
    assert.equal(originUrl('rtmp://o:1935/', 'live/a'), 'rtmp://o:1935/live/a');
    assert.throws(() => originUrl('ftp://o', 'live/a'));
  });

  it('100 viewers per edge share one upstream each; publisher killed and back: viewers kept, timestamps rising', async () => {
    let src = await publish(origin, 'live/a');
    const viewers: Viewer[] = [];
    for (const e of [edgeA, edgeB]) for (let i = 0; i < 100; i++) viewers.push(new Viewer(`${e.http}/flv/live/a.flv`));
    try {
      await until(() => viewers.every((v) => v.ts.length >= 5), 20_000, 'every viewer gets video');
      assert.ok(viewers.every((v) => v.status.includes('200')));
      // One upstream per edge, counted at the origin.
      const os = origin.server.engine.getStream('live/a')!;
      assert.equal(os.subscribers.size, 2, 'origin sees exactly one pull per edge');
      assert.equal(edgeA.server.engine.getStream('live/a')!.subscribers.size, 100);
      assert.equal(edgeB.server.engine.getStream('live/a')!.subscribers.size, 100);

      // Kill the origin's publisher, publish again 1.5 s later.
      const before = viewers.map((v) => v.last());
      src.stop();
      src.pub.close('publisher killed by test');
      await sleep(1500);
      src = await publish(origin, 'live/a');
      await until(() => viewers.every((v, i) => v.last() > before[i] + 500), 20_000, 'viewers continue after republish');
      for (const v of viewers) {
        const c = v.check();
        assert.ok(c.monotonic, 'timestamps never go back');
        assert.ok(c.maxStep < 5000, `no jump (largest step ${c.maxStep} ms)`);
        assert.ok(!v.closed, 'viewer kept');
      }
      assert.equal(origin.server.engine.getStream('live/a')!.subscribers.size, 2, 'still one upstream per edge');
    } finally {
      for (const v of viewers) v.stop();
    }
    // The last viewer left: the upstreams end (delayclosetimeout 0), the origin loses its two pulls.
    await until(() => (origin.server.engine.getStream('live/a')?.subscribers.size ?? 0) === 0, 10_000, 'upstreams dropped');
    assert.equal(edgeA.server.engine.getStream('live/a'), undefined);
    src.stop();
    src.pub.close('done');
  });

  it('two origins: the first dies, the edge fails over to the second', async () => {
    const o2 = await startNode('127.0.0.4');
    const o1 = await startNode('127.0.0.5');
    // This edge keeps an upstream 1.5 s after its last viewer (publish.delayclosetimeout in its section).
    const edge = await startNode('127.0.0.6', `cascade:\n  origins: ["${o1.http}", "${o2.rtmp}"]\n  timeout: 2s\n  publish:\n    delayclosetimeout: 1500ms\n`);
    const s1 = await publish(o1, 'live/f');
    const s2 = await publish(o2, 'live/f');
    const viewers = Array.from({ length: 20 }, () => new Viewer(`${edge.http}/flv/live/f.flv`));
    try {
      await until(() => viewers.every((v) => v.ts.length >= 5), 20_000, 'viewers get video');
      assert.equal(o1.server.engine.getStream('live/f')!.subscribers.size, 1, 'primary feeds the edge');
      assert.equal(o2.server.engine.getStream('live/f')!.subscribers.size, 0);
      const before = viewers.map((v) => v.last());
      s1.stop();
      await o1.stop();
      await until(() => viewers.every((v, i) => v.last() > before[i] + 500), 20_000, 'viewers continue from the second origin');
      assert.equal(o2.server.engine.getStream('live/f')!.subscribers.size, 1, 'the second origin now feeds the edge');
      for (const v of viewers) {
        assert.ok(v.check().monotonic, 'timestamps never go back across the failover');
        assert.ok(!v.closed);
      }
      const list = await (await fetch(`${edge.http}/cascade/api/list`)).json() as any;
      const up = JSON.stringify(list.data);
      assert.match(up, /"failovers":1/);
      // The last viewer leaves: the upstream stays for delayclosetimeout, then the origin loses it.
      for (const v of viewers) v.stop();
      await until(() => edge.server.engine.getStream('live/f')?.countedSubscribers() === 0, 5000, 'viewers gone at the edge');
      const left = Date.now();
      await sleep(500);
      assert.equal(o2.server.engine.getStream('live/f')!.subscribers.size, 1, 'upstream kept within delayclosetimeout');
      await until(() => o2.server.engine.getStream('live/f')!.subscribers.size === 0, 10_000, 'upstream dropped after delayclosetimeout');
      assert.ok(Date.now() - left >= 1400, `dropped after ${Date.now() - left} ms`);
    } finally {
      for (const v of viewers) v.stop();
      s2.stop();
      await edge.stop();
      await o2.stop();
    }
  });
});
