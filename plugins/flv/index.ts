// The flv plugin: HTTP-FLV and WS-FLV players, FLV publishing over HTTP POST/PUT and WebSocket, and FLV
// pulls from HTTP(S) URLs and local files. See docs/plugins/flv.md.
//
//   GET  /flv/{streamPath}.flv            play (HTTP-FLV, chunked)      HEAD/OPTIONS never subscribe
//   GET  /flv/{streamPath}.flv  + Upgrade play over WebSocket (WS-FLV); with ?publish: publish over WS
//   POST /flv/{streamPath}.flv            publish the request body (an FLV stream); PUT works the same
//   POST /flv/api/pull {streamPath,url,loop?,speed?}   start a pull → { id }
//   GET  /flv/api/list                    players, publishers and pulls with byte counts (ctx.sessions)
//   POST /flv/api/stop/:id                stop a player, publisher or pull of this plugin (ctx.sessions)

import type { Context } from 'hono';
import { EngineError } from '../../src/plugin.ts';
import type { Publisher } from '../../src/plugin.ts';
import { requestAuth } from '../../src/http/peer.ts';
import { urlParts } from '../../src/http/url.ts';
import { FormatError } from '../../src/format/bytes.ts';
import type { WsConn } from '../../src/net/types.ts';
import { t } from '../../src/config/schema.ts';
import { definePlugin, type SessionHandle } from '../../src/plugin.ts';
import { closeWsWithError } from '../../src/plugin.ts';
import { FlvFeed } from './feed.ts';
import { FlvPlaySink } from './play.ts';
import { filePathOf, PullJob, pullKind, type PullOptions, type PullSettings } from './pull.ts';
import type { OutboundOrigin } from '../../src/core/outbound.ts';

const PLAY_HEADERS = {
  'content-type': 'video/x-flv',
  'cache-control': 'no-cache, no-store, must-revalidate',
  pragma: 'no-cache',
  expires: '0',
  // Players behind a proxy (nginx) must not have the stream buffered.
  'x-accel-buffering': 'no',
};

/** Bytes a WebSocket publisher may send before its publisher is ready (its path is being checked). */
const WS_PRESTART_LIMIT = 4 << 20;

export default definePlugin({
  name: 'flv',
  description: 'HTTP-FLV and WS-FLV play, FLV publish over HTTP/WebSocket, FLV pull from HTTP and files',
  pull: true,
  defaults: {
    /** Largest FLV tag accepted from a publisher or pull (bytes); a bigger one ends that input. */
    maxtagsize: t.num(8 * 1024 * 1024, { min: 1024, max: 0xffffff, int: true }),
    /** High-water mark of each player's HTTP body / WebSocket queue (bytes): above it the player skips. */
    writebuffer: t.num(256 * 1024, { min: 16 * 1024, int: true }),
    /** First reconnect delay of an HTTP pull; doubles per failed attempt up to retrymax. */
    retryinterval: t.dur('1s'),
    retrymax: t.dur('30s'),
    /** Give up an HTTP pull after this many reconnects; 0 = never. */
    retrycount: t.num(0, { min: 0, int: true }),
    /** An HTTP pull that delivers no bytes for this long reconnects. 0 = never. */
    readtimeout: t.dur('10s'),
    /** File pulls: pace at speed × real time (0 = as fast as possible), loop at the end. */
    filepull: { speed: t.num(1, { min: 0 }), loop: false },
  },
  setup(ctx) {
    const log = ctx.logger;
    ctx.sessions.declareGroups('players', 'publishers', 'pulls');
    let shuttingDown = false;

    const settings = (): PullSettings => ({
      maxtagsize: ctx.config.maxtagsize, retryinterval: ctx.config.retryinterval, retrymax: ctx.config.retrymax,
      retrycount: ctx.config.retrycount, readtimeout: ctx.config.readtimeout, filepull: ctx.config.filepull,
      publish: ctx.config.publish,
    });

    /** Start a pull, or return the one already feeding `streamPath`. Finished pulls stay listed for a
     * minute (linger) so the API can show why they ended. */
    const startPull = (streamPath: string, url: string, opts: PullOptions = {}): PullJob => {
      if (shuttingDown) throw new EngineError('Closed', 'server is shutting down');
      for (const h of ctx.sessions.list({ live: true })) {
        const j = h.ref;
        if (j instanceof PullJob && j.streamPath === streamPath && !j.stopped) return j;
      }
      const release = ctx.outbound.acquire(url);
      let job: PullJob | undefined;
      const handle = ctx.sessions.add<PullJob>({
        kind: 'pull', group: 'pulls', streamPath, linger: 60_000,
        stop: (r) => job?.stop(r), info: () => job?.info() ?? {},
      });
      try {
        job = new PullJob(handle.id, streamPath, url, ctx, settings, log, opts);
      } catch (err) {
        handle.remove();
        release();
        throw err;
      }
      handle.spec.ref = job;
      log.info('pull started', { stream: streamPath, url, id: job.id, loop: job.loop, origin: opts.origin ?? 'config' });
      const j = job;
      void j.done.then(() => {
        release();
        log.info('pull ended', { stream: streamPath, url, id: j.id, reason: j.stopReason });
        handle.remove(j.stopReason);
      });
      return job;
    };

    /** Checks a source against global.outbound; for a file, returns the checked path to read. */
    const checkSource = async (url: string, origin: OutboundOrigin): Promise<string | undefined> => {
      if (pullKind(url) === 'file') return ctx.outbound.checkFile(filePathOf(url).path, origin);
      await ctx.outbound.checkUrl(url, origin);
      return undefined;
    };

    ctx.registerPuller(async ({ streamPath, url }) => {
      if (!pullKind(url)) throw new EngineError('BadArgument', `flv cannot pull ${url}`);
      // Written in config.yaml by the admin: any host; files under fileroots only when that is set.
      const filePath = await checkSource(url, 'config');
      // onsub.pull (a subscriber waits) and pull-at-start share this; the subscriber-triggered kind stops
      // retrying once nobody watches. Pull-at-start streams have no subscriber yet, so tell them apart by
      // whether the configured `pull:` map names this path.
      const onDemand = !(ctx.config.pull && Object.hasOwn(ctx.config.pull, streamPath));
      startPull(streamPath, url, { onDemand, filePath, origin: 'config' });
    });

    // Players, publishers and pulls are stopped by the server (they are in ctx.sessions).
    ctx.onStop(() => { shuttingDown = true; });

    // ------------------------------------------------------------------------------------ API

    ctx.http.post('/api/pull', async (c) => {
      let body: any;
      try { body = await c.req.json(); } catch { return ctx.fail(c, 400, 'body must be JSON: { "streamPath": "live/x", "url": "…" }'); }
      const streamPath = typeof body?.streamPath === 'string' ? body.streamPath.replace(/^\/+/, '') : '';
      const url = typeof body?.url === 'string' ? body.url : '';
      if (!streamPath || !url) return ctx.fail(c, 400, 'streamPath and url are required');
      if (!pullKind(url)) return ctx.fail(c, 400, `cannot pull ${url.slice(0, 100)}: use http(s)://, file:// or a file path`);
      const opts: PullOptions = { origin: 'api' };
      if (body.loop !== undefined) opts.loop = body.loop === true || body.loop === 'true' || body.loop === 1;
      if (typeof body.speed === 'number' && body.speed >= 0) opts.speed = body.speed;
      // global.outbound: the same answer for a refused, missing or unreachable source.
      opts.filePath = await checkSource(url, 'api');
      const job = startPull(streamPath, url, opts);
      return ctx.ok(c, { id: job.id });
    });

    // GET /flv/api/list and POST /flv/api/stop/:id are served from ctx.sessions by the server.

    // ------------------------------------------------------------------------------------ streams

    ctx.http.on(['GET', 'HEAD', 'POST', 'PUT', 'OPTIONS'], '/*', async (c, next) => {
      const url = urlParts(c.req.url);
      // The stream path: everything after /flv/ with the .flv extension removed; the query = args.
      const m = /^\/flv\/(.+)\.flv$/i.exec(url.pathname);
      if (!m) return next();
      const streamPath = m[1]!;
      const target = streamPath + url.search;
      const method = c.req.method;
      if (method === 'OPTIONS') return new Response(null, { status: 204, headers: { allow: 'GET, HEAD, POST, PUT, OPTIONS' } });
      if (method === 'HEAD') return new Response(null, { status: 200, headers: PLAY_HEADERS });
      // Publishers' credentials and peer (players get theirs in ctx.play).
      const publisher = () => { const who = requestAuth(c); return { who, remote: who.remote ?? ctx.remoteOf(c) }; };
      if (method === 'POST' || method === 'PUT') { const p = publisher(); return httpPublish(c, target, streamPath, p.remote, p.who); }
      if (c.req.header('upgrade')?.toLowerCase() === 'websocket' && new URLSearchParams(url.search).has('publish')) {
        const p = publisher();
        const res = await ctx.upgradeWebSocket(c, wsPublish(target, streamPath, p.remote, p.who));
        if (res) return res;
      }
      return ctx.play(c, {
        target, streamPath, kind: { http: 'http-flv', ws: 'ws-flv' }, headers: PLAY_HEADERS,
        highWaterMark: ctx.config.writebuffer, make: (out) => new FlvPlaySink(out),
      });
    });

    /** A publish the engine refused (409 stream already published, 403 auth, ...): say so, as RTMP does. */
    const refused = (how: string, streamPath: string, remote: string | undefined, err: unknown) => {
      const status = err instanceof EngineError ? err.httpStatus : 500;
      log.warn('publish refused', { stream: streamPath, remote, via: how, status, reason: (err as Error)?.message ?? String(err) });
    };

    const addPublisher = (kind: 'http-publish' | 'ws-publish', streamPath: string, remote: string | undefined, pub: Publisher, feed: FlvFeed, stop: (r: string) => void) =>
      ctx.sessions.add({
        kind, group: 'publishers', streamPath, remote, ref: pub, stop,
        info: () => ({ type: kind, publisherId: pub.id, bytesReceived: feed.bytes, tags: feed.tags }),
      });

    // ---- publish over HTTP (POST/PUT with an FLV body)

    async function httpPublish(c: Context, target: string, streamPath: string, remote: string | undefined, who: Who): Promise<Response> {
      const stream = c.req.raw.body;
      if (!stream) return ctx.fail(c, 400, 'publishing needs a request body (an FLV stream)');
      let pub: Publisher;
      try {
        pub = await ctx.publish(target, { remote, ip: who.ip, credentials: who.credentials });
      } catch (err) {
        await stream.cancel().catch(() => {});
        refused('http', streamPath, remote, err);
        throw err; // → app.onError (EngineError's status)
      }
      const feed = new FlvFeed(pub, { maxTagSize: ctx.config.maxtagsize, warn: (m) => log.warn(m, { stream: pub.stream.path, remote }) });
      const reader = stream.getReader();
      // Every answer to a publish request closes the connection: when we answer before the client has
      // finished sending (an error, the engine stopped the publisher), that is what tells it to stop.
      c.header('connection', 'close');
      let stopReason = '';
      const session = addPublisher('http-publish', streamPath, remote, pub, feed, (r) => { stopReason = r; pub.stop(r); });
      pub.onStop = (reason) => { stopReason ||= reason; reader.cancel(reason).catch(() => {}); };
      // The engine stopped this publisher (API stop, kicked by a new one): 409, logged.
      const stopped = () => {
        log.warn('publish stopped', { stream: pub.stream.path, remote, via: 'http', status: 409, reason: stopReason });
        return ctx.fail(c, 409, `publisher stopped: ${stopReason}`);
      };
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          feed.push(value);
        }
        if (stopReason) return stopped();
        feed.end();
        pub.close('publisher finished');
        return ctx.ok(c, { bytes: feed.bytes, tags: feed.tags });
      } catch (err) {
        reader.cancel().catch(() => {});
        if (stopReason) {
          pub.close(stopReason);
          return stopped();
        }
        const bad = err instanceof FormatError;
        const msg = (err as Error)?.message ?? String(err);
        log.warn(bad ? 'publish closed: bad FLV input' : 'publish connection lost', { stream: pub.stream.path, remote, error: msg, bytes: feed.bytes });
        pub.close(bad ? `bad FLV input: ${msg}` : 'publisher connection lost');
        return bad ? ctx.fail(c, 400, `bad FLV input: ${msg}`) : ctx.fail(c, 500, msg);
      } finally {
        session.remove();
      }
    }

    // ---- publish over WebSocket (?publish): binary messages are FLV bytes

    function wsPublish(target: string, streamPath: string, remote: string | undefined, who: Who) {
      let pub: Publisher | null = null;
      let feed: FlvFeed | null = null;
      let session: SessionHandle | null = null;
      let early: Uint8Array[] | null = [];
      let earlyBytes = 0;
      let gone = false;
      const fail = (ws: WsConn, code: number, reason: string) => {
        gone = true;
        ws.close(code, reason.slice(0, 100));
        pub?.close(reason);
        session?.remove();
      };
      const take = (ws: WsConn, data: Uint8Array) => {
        try {
          feed!.push(data);
        } catch (err) {
          const msg = (err as Error)?.message ?? String(err);
          log.warn('publish closed: bad FLV input', { stream: streamPath, remote, error: msg });
          fail(ws, 1007, `bad FLV input: ${msg}`);
        }
      };
      return {
        onOpen(ws: WsConn) {
          ctx.publish(target, { remote, ip: who.ip, credentials: who.credentials }).then((p) => {
            if (gone) { p.close('client disconnected'); return; }
            pub = p;
            feed = new FlvFeed(p, { maxTagSize: ctx.config.maxtagsize, warn: (m) => log.warn(m, { stream: p.stream.path, remote }) });
            session = addPublisher('ws-publish', streamPath, remote, p, feed, (r) => p.stop(r));
            p.onStop = (reason) => fail(ws, 1000, reason);
            const q = early!;
            early = null;
            for (const d of q) if (!gone) take(ws, d);
          }, (err) => {
            refused('ws', streamPath, remote, err);
            gone = true;
            closeWsWithError(ws, err);
          });
        },
        onMessage(ws: WsConn, data: Uint8Array | string) {
          if (gone) return;
          if (typeof data === 'string') { fail(ws, 1003, 'FLV publishing takes binary messages'); return; }
          if (early) {
            earlyBytes += data.byteLength;
            if (earlyBytes > WS_PRESTART_LIMIT) { fail(ws, 1009, 'too much data before the publisher was ready'); return; }
            early.push(data);
            return;
          }
          take(ws, data);
        },
        onClose() {
          gone = true;
          pub?.close('publisher disconnected');
          session?.remove();
        },
      };
    }
  },
});

type Who = ReturnType<typeof requestAuth>;
