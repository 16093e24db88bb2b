// Webhooks: a real local receiver gets signed events (publish/subscribe start and end, stream not found,
// server start, keep-alive); a receiver that is down or hangs delays no publish or play (measured
// against a server without hooks) and its events are retried, then dropped and counted in /api/metrics.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { currentRuntime } from '../adapters/current.ts';
import rtmp from '../plugins/rtmp/index.ts';
import flv from '../plugins/flv/index.ts';
import { RtmpClient, parseRtmpUrl } from '../plugins/rtmp/client.ts';
import { SyntheticSource } from '../src/core/synthetic.ts';
import { verifyHookSignature } from '../src/hooks/webhook.ts';
import { Logger } from '../src/log.ts';
import { startServer, until, type TestServer } from './helpers/media.ts';

const rt = await currentRuntime();
const SECRET = 'hook-secret-xyz';

interface Got { headers: IncomingHttpHeaders; body: string; json: any }

function receiver(): Promise<{ srv: HttpServer; url: string; got: Got[] }> {
  const got: Got[] = [];
  const srv = createServer((rq, rs) => {
    let body = '';
    rq.on('data', (d) => { body += d; });
    rq.on('end', () => { got.push({ headers: rq.headers, body, json: JSON.parse(body) }); rs.writeHead(200); rs.end('ok'); });
  });
  return new Promise((r) => srv.listen(0, '127.0.0.1', () => r({ srv, url: `http://127.0.0.1:${(srv.address() as { port: number }).port}/hook`, got })));
}

/** Accepts connections and never answers. */
function hanging(): Promise<{ close(): Promise<void>; url: string }> {
  const socks = new Set<Socket>();
  const srv = createTcpServer((s) => { socks.add(s); s.on('error', () => {}); s.on('close', () => socks.delete(s)); });
  return new Promise((r) => srv.listen(0, '127.0.0.1', () => r({
    url: `http://127.0.0.1:${(srv.address() as { port: number }).port}/hook`,
    close: () => { for (const s of socks) s.destroy(); return new Promise<void>((res) => srv.close(() => res())); },
  })));
}

/** A port nobody listens on. */
function closedPort(): Promise<number> {
  return new Promise((r) => { const s = createTcpServer(); s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => r(p)); }); });
}

const hookYaml = (url: string, extra = '', keepalive = '300ms') => `  hookkeepalive: ${keepalive}
${extra}  hook:
    default:
      url: ${url}
      secret: ${SECRET}
      timeoutseconds: 1
      retrytimes: 2
      retryinterval: 100ms
rtmp:
  tcp:
    listenaddr: "127.0.0.1:0"
`;

async function rtmpPublish(S: TestServer, name: string): Promise<{ ms: number; c: RtmpClient }> {
  const u = parseRtmpUrl(`rtmp://127.0.0.1:${S.port('rtmp', 'tcp')}/live/${name}`);
  const t0 = performance.now();
  const conn = await rt.connectTcp({ host: u.host, port: u.port });
  const c = new RtmpClient(conn, Logger.silent(), 16 << 20);
  await c.open(u, 4096, 5000);
  const sid = (await c.call(5000, 'createStream', null)).args[0] as number;
  c.sendCommand(sid, 'publish', 0, null, name, 'live');
  await c.waitStatus(sid, /Publish\.Start$/, 5000);
  return { ms: performance.now() - t0, c };
}

/** Time to the first FLV bytes of a play. */
async function flvFirstBytes(S: TestServer, path: string): Promise<number> {
  const t0 = performance.now();
  const r = await fetch(`${S.http}/flv/${path}.flv`);
  assert.equal(r.status, 200);
  const rd = r.body!.getReader();
  const { value } = await rd.read();
  const ms = performance.now() - t0;
  assert.equal(new TextDecoder().decode(value!.subarray(0, 3)), 'FLV');
  await rd.cancel();
  return ms;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const metricLine = (text: string, prefix: string) => Number(text.split('\n').find((l) => l.startsWith(prefix))?.split(' ').pop() ?? NaN);

describe('webhooks: a local receiver', () => {
  let R: Awaited<ReturnType<typeof receiver>>;
  let S: TestServer;
  before(async () => {
    R = await receiver();
    S = await startServer([rtmp, flv], hookYaml(R.url) + 'flv:\n  subscribe:\n    waittimeout: 300ms\n');
  });
  after(async () => { await S?.stop(); R.srv.closeAllConnections?.(); await new Promise((r) => R.srv.close(r)); });

  it('gets server_start, publish/subscribe start and end, stream_not_found and keep-alives, each with a valid signature', async () => {
    await until(() => R.got.some((g) => g.json.event === 'server_start'), 5000, 'server_start');
    const { c } = await rtmpPublish(S, 'w1');
    const src = new SyntheticSource(S.server.engine.getStream('live/w1')!.publisher!, { fps: 25, gop: 25 });
    src.start();
    await flvFirstBytes(S, 'live/w1');
    const missing = await fetch(`${S.http}/flv/live/nobody.flv`);
    await missing.body?.cancel();
    src.stop();
    c.close();
    const pulled = await S.server.engine.publish('live/pulled', { protocol: 'rtmp', type: 'pull' });
    pulled.stop('pull ended');
    const need = ['publish_start', 'subscribe_start', 'subscribe_end', 'publish_end', 'stream_not_found', 'server_keep_alive', 'pull_start', 'pull_end'];
    await until(() => need.every((e) => R.got.some((g) => g.json.event === e)), 10_000, 'all events');
    const by = (e: string) => R.got.find((g) => g.json.event === e)!;
    assert.equal(by('publish_start').json.stream.path, 'live/w1');
    assert.equal(by('publish_start').json.publisher.protocol, 'rtmp');
    assert.equal(by('subscribe_start').json.subscriber.protocol, 'flv');
    assert.equal(by('stream_not_found').json.stream.path, 'live/nobody');
    assert.ok(typeof by('publish_end').json.reason === 'string');
    assert.ok(by('server_keep_alive').json.server.version);
    assert.equal(by('pull_end').json.stream.path, 'live/pulled');
    assert.ok(!R.got.some((g) => g.json.event === 'publish_start' && g.json.stream.path === 'live/pulled'), 'a pull is reported as pull_*, not publish_*');
    for (const g of R.got) {
      const ts = String(g.headers['x-m7s-timestamp']);
      const sig = String(g.headers['x-m7s-signature']);
      const want = 'sha256=' + createHmac('sha256', SECRET).update(ts + '.' + g.body).digest('hex');
      assert.equal(sig, want, `signature of ${g.json.event}`);
      assert.ok(await verifyHookSignature(SECRET, ts, g.body, sig));
      assert.ok(!(await verifyHookSignature('wrong', ts, g.body, sig)));
      assert.equal(g.headers['x-m7s-event'], g.json.event);
      assert.ok(Math.abs(Number(ts) - Date.now() / 1000) < 60);
    }
    const m = await (await fetch(`${S.http}/api/metrics`)).text();
    assert.ok(metricLine(m, 'm7s_webhook_sent_total') >= need.length, m);
    assert.equal(metricLine(m, 'm7s_webhook_failures_total'), 0);
  });
});

describe('webhooks: a receiver that is down or hangs', () => {
  let base: TestServer, down: TestServer, hang: TestServer;
  let H: Awaited<ReturnType<typeof hanging>>;
  before(async () => {
    H = await hanging();
    const port = await closedPort();
    base = await startServer([rtmp, flv], 'rtmp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\n');
    down = await startServer([rtmp, flv], hookYaml(`http://127.0.0.1:${port}/hook`, '', '0s'));
    hang = await startServer([rtmp, flv], hookYaml(H.url, '  hookqueue: 8\n  hookconcurrency: 2\n', '0s'));
  });
  after(async () => { await base?.stop(); await down?.stop(); await hang?.stop(); await H?.close(); });

  it('publish and first-frame times match a server without hooks; events are retried then dropped and counted', async () => {
    const times: Record<string, { pub: number[]; play: number[] }> = {};
    for (let round = 0; round < 5; round++) {
      for (const [name, S] of [['none', base], ['down', down], ['hang', hang]] as const) {
        const t = (times[name] ??= { pub: [], play: [] });
        const { ms, c } = await rtmpPublish(S, `m${round}`);
        t.pub.push(ms);
        const src = new SyntheticSource(S.server.engine.getStream(`live/m${round}`)!.publisher!, { fps: 25, gop: 25 });
        src.start();
        t.play.push(await flvFirstBytes(S, `live/m${round}`));
        src.stop();
        c.close();
      }
    }
    const row = (n: string) => `${n.padEnd(5)} publish median ${median(times[n].pub).toFixed(1)} ms (max ${Math.max(...times[n].pub).toFixed(1)}), first FLV bytes median ${median(times[n].play).toFixed(1)} ms (max ${Math.max(...times[n].play).toFixed(1)})`;
    console.log(['webhook receiver down / hanging vs no hooks (5 rounds each):', row('none'), row('down'), row('hang')].join('\n  '));
    for (const n of ['down', 'hang']) {
      // Generous: a delivery on the media path would cost at least the 1 s timeout on `hang`.
      assert.ok(median(times[n].pub) < median(times.none.pub) + 300, `${n} publish ${median(times[n].pub)} vs ${median(times.none.pub)}`);
      assert.ok(median(times[n].play) < median(times.none.play) + 300, `${n} play ${median(times[n].play)} vs ${median(times.none.play)}`);
      assert.ok(Math.max(...times[n].pub) < 900 && Math.max(...times[n].play) < 900, `${n}: no single publish/play waited for a delivery`);
    }
    // Down: every event fails 1 + retrytimes (2) times, then is dropped.
    await until(() => down.server.webhooks.pending === 0, 10_000, 'down queue drained');
    const md = await (await fetch(`${down.http}/api/metrics`)).text();
    const dropped = metricLine(md, 'm7s_webhook_dropped_total{reason="retries"}');
    const failures = metricLine(md, 'm7s_webhook_failures_total');
    console.log(`down: ${failures} failed attempts, ${dropped} events dropped after retries`);
    assert.ok(dropped >= 20, `dropped ${dropped}`);
    assert.equal(failures, dropped * 3, 'each dropped event was tried 3 times');
    assert.equal(metricLine(md, 'm7s_webhook_sent_total'), 0);
    // Hang: a bounded queue (8) with 2 stuck deliveries: the rest is dropped as queue_full, nothing waits on it.
    const mh = await (await fetch(`${hang.http}/api/metrics`)).text();
    const full = metricLine(mh, 'm7s_webhook_dropped_total{reason="queue_full"}');
    console.log(`hang: queue ${metricLine(mh, 'm7s_webhook_queue')}, dropped (queue full) ${full}`);
    assert.ok(full > 0, 'queue bound reached');
    assert.ok(metricLine(mh, 'm7s_webhook_queue') <= 8);
  });
});
