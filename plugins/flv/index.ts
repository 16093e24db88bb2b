// The flv plugin: HTTP-FLV and WS-FLV players, FLV publishing over HTTP POST/PUT and WebSocket, and FLV
// pulls from HTTP(S) URLs and local files. See docs/plugins/flv.md.
//
//   GET  /flv/{streamPath}.flv            play (HTTP-FLV, chunked)      HEAD/OPTIONS never subscribe
//   GET  /flv/{streamPath}.flv  + Upgrade play over WebSocket (WS-FLV); with ?publish: publish over WS
//   POST /flv/{streamPath}.flv            publish the request body (an FLV stream); PUT works the same
//   POST /flv/api/pull {streamPath,url,loop?,speed?}   start a pull → { id }
//   GET  /flv/api/list                    players, publishers and pulls with byte counts
//   POST /flv/api/stop/:id                stop a player, publisher or pull of this plugin

import type { Context } from 'hono';
import { EngineError } from '../../src/core/errors.ts';
import type { Publisher } from '../../src/core/publisher.ts';
import type { Subscriber } from '../../src/core/subscriber.ts';
import { FormatError } from '../../src/format/bytes.ts';
import { wsByteSink, type ByteSink } from '../../src/net/body.ts';
import type { WsConn } from '../../src/net/types.ts';
import { t } from '../../src/config/schema.ts';
import { definePlugin } from '../../src/plugin.ts';
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

/** WebSocket close codes for errors before streaming: 4000 + the HTTP status (4404 not found, …). */
const wsCodeFor = (status: number) => 4000 + Math.min(999, Math.max(0, status));

/** Bytes a WebSocket publisher may send before its publisher is ready (its path is being checked). */
const WS_PRESTART_LIMIT = 4 << 20;

interface Session {
  id: number;
  kind: 'http-flv' | 'ws-flv' | 'http-publish' | 'ws-publish';
  streamPath: string;
  remote?: string;
  sub?: Subscriber;
  pub?: Publisher;
  feed?: FlvFeed;
  stop(reason: string): void;
}

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
    const sessions = new Map<number, Session>();
    const pulls = new Map<number, PullJob>();
    let nextId = 1;
    let shuttingDown = false;

    const settings = (): PullSettings => ({
      maxtagsize: ctx.config.maxtagsize, retryinterval: ctx.config.retryinterval, retrymax: ctx.config.retrymax,
      retrycount: ctx.config.retrycount, readtimeout: ctx.config.readtimeout, filepull: ctx.config.filepull,
      publish: ctx.config.publish,
    });

    /** Start a pull, or return the one already feeding `streamPath`. */
    /** Finished pulls stay listed for a minute so the API can show why they ended (pruned on access,
     * not by a timer, which would keep the process alive). */
    const endedAt = new Map<number, number>();
    const prunePulls = () => {
      const now = Date.now();
      for (const [id, at] of endedAt) if (now - at > 60_000) { endedAt.delete(id); pulls.delete(id); }
    };

    const startPull = (streamPath: string, url: string, opts: PullOptions = {}): PullJob => {
      if (shuttingDown) throw new EngineError('Closed', 'server is shutting down');
      prunePulls();
      for (const j of pulls.values()) if (j.streamPath === streamPath && !j.stopped) return j;
      const release = ctx.outbound.acquire(url);
      let job: PullJob;
      try { job = new PullJob(nextId++, streamPath, url, ctx, settings, log, opts); } catch (err) { release(); throw err; }
      pulls.set(job.id, job);
      log.info('pull started', { stream: streamPath, url, id: job.id, loop: job.loop, origin: opts.origin ?? 'config' });
      void job.done.then(() => {
        release();
        log.info('pull ended', { stream: streamPath, url, id: job.id, reason: job.stopReason });
        endedAt.set(job.id, Date.now());
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

    ctx.onStop(() => {
      shuttingDown = true;
      for (const j of pulls.values()) j.stop('server shutting down');
      for (const s of sessions.values()) s.stop('server shutting down');
    });

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

    ctx.http.get('/api/list', (c) => {
      prunePulls();
      const players: unknown[] = [], publishers: unknown[] = [];
      for (const s of sessions.values()) {
        if (s.sub) {
          const i = s.sub.info();
          players.push({
            id: s.id, type: s.kind, streamPath: s.streamPath, remote: s.remote, subscriberId: i.id, state: i.state,
            startTime: i.startTime, bytesSent: i.bytesSent, framesSent: i.framesSent, framesDropped: i.framesDropped,
            skips: i.skips, buffered: i.buffered, lagMs: i.lagMs,
          });
        } else if (s.pub || s.kind.endsWith('publish')) {
          publishers.push({
            id: s.id, type: s.kind, streamPath: s.streamPath, remote: s.remote, publisherId: s.pub?.id,
            bytesReceived: s.feed?.bytes ?? 0, tags: s.feed?.tags ?? 0,
          });
        }
      }
      return ctx.ok(c, { players, publishers, pulls: [...pulls.values()].map((j) => j.info()) });
    });

    ctx.http.post('/api/stop/:id', (c) => {
      const id = Number(c.req.param('id'));
      const job = pulls.get(id);
      if (job) { job.stop('stopped by API'); return ctx.ok(c, { id, type: 'pull' }); }
      const s = sessions.get(id);
      if (s) { s.stop('stopped by API'); return ctx.ok(c, { id, type: s.kind }); }
      return ctx.fail(c, 404, `no flv session or pull with id ${c.req.param('id')}`);
    });

    // ------------------------------------------------------------------------------------ streams

    ctx.http.on(['GET', 'HEAD', 'POST', 'PUT', 'OPTIONS'], '/*', async (c, next) => {
      const url = new URL(c.req.url);
      // The stream path: everything after /flv/ with the .flv extension removed; the query = args.
      const m = /^\/flv\/(.+)\.flv$/i.exec(url.pathname);
      if (!m) return next();
      const streamPath = m[1]!;
      const target = streamPath + url.search;
      const method = c.req.method;
      if (method === 'OPTIONS') return new Response(null, { status: 204, headers: { allow: 'GET, HEAD, POST, PUT, OPTIONS' } });
      if (method === 'HEAD') return new Response(null, { status: 200, headers: PLAY_HEADERS });
      const peer = ctx.runtime.connInfo(c);
      const remote = peer ? `${peer.address}:${peer.port}` : undefined;
      if (method === 'POST' || method === 'PUT') return httpPublish(c, target, streamPath, remote);
      if (c.req.header('upgrade')?.toLowerCase() === 'websocket') {
        const isPublish = url.searchParams.has('publish');
        const res = await ctx.upgradeWebSocket(c, isPublish ? wsPublish(target, streamPath, remote) : wsPlay(target, streamPath, remote));
        if (res) return res;
      }
      return httpPlay(c, target, streamPath, remote);
    });

    /** An error before streaming as an HTTP status and a JSON body. */
    const errorResponse = (c: Context, err: unknown): Response => {
      if (err instanceof EngineError) return ctx.fail(c, err.httpStatus, err.message);
      if (err instanceof FormatError) return ctx.fail(c, 400, `bad FLV input: ${err.message}`);
      log.error('flv request failed', { error: err });
      return ctx.fail(c, 500, (err as Error)?.message ?? String(err));
    };

    const addSession = (s: Omit<Session, 'id'>): Session => {
      const full = { ...s, id: nextId++ } as Session;
      sessions.set(full.id, full);
      return full;
    };

    // ---- HTTP-FLV play

    async function httpPlay(c: Context, target: string, streamPath: string, remote?: string): Promise<Response> {
      // The response head goes out only once the subscription is accepted (begin() opens the body), so
      // a missing stream or a refused key still gets its own status.
      let streamed: { sink: ByteSink; response: Response } | undefined;
      const player = new FlvPlaySink(() => (streamed = ctx.streamBody(c, 200, PLAY_HEADERS, ctx.config.writebuffer)).sink);
      // The client may leave while we wait for the stream: then the subscription is dropped at once.
      const abort = c.req.raw.signal;
      let sub: Subscriber;
      try {
        sub = await ctx.subscribe(target, { sink: player, remote });
      } catch (err) {
        if (streamed) { streamed.sink.end(); return streamed.response; } // the head went out: just end
        return errorResponse(c, err);
      }
      if (!streamed) { sub.close('no response body'); return ctx.fail(c, 500, sub.error || 'stream could not start'); }
      const { sink, response } = streamed;
      const session = addSession({ kind: 'http-flv', streamPath, remote, sub, stop: (r) => { sub.close(r); sink.end(); } });
      const forget = () => sessions.delete(session.id);
      player.onEnd = forget;
      const prevClose = sink.onClose;
      sink.onClose = (err) => { forget(); prevClose?.(err); };
      if (sink.closed || abort?.aborted) { forget(); sub.close('client disconnected'); }
      else abort?.addEventListener('abort', () => { forget(); sub.close('client disconnected'); sink.end(); }, { once: true });
      return response;
    }

    // ---- WS-FLV play

    function wsPlay(target: string, streamPath: string, remote?: string) {
      let sub: Subscriber | null = null;
      let out: ByteSink | null = null;
      let session: Session | null = null;
      let gone = false;
      return {
        onOpen(ws: WsConn) {
          out = wsByteSink(ws, ctx.config.writebuffer);
          const player = new FlvPlaySink(out);
          ctx.subscribe(target, { sink: player, remote }).then((s) => {
            sub = s;
            if (gone) { s.close('client disconnected'); return; }
            session = addSession({ kind: 'ws-flv', streamPath, remote, sub: s, stop: (r) => { s.close(r); out?.end(); } });
            player.onEnd = () => { if (session) sessions.delete(session.id); };
          }, (err) => {
            const status = err instanceof EngineError ? err.httpStatus : 500;
            ws.close(wsCodeFor(status), reasonText(err));
          });
        },
        onMessage() { /* players send nothing we need */ },
        onClose() {
          gone = true;
          out?.end();
          sub?.close('client disconnected');
          if (session) sessions.delete(session.id);
        },
      };
    }

    // ---- publish over HTTP (POST/PUT with an FLV body)

    async function httpPublish(c: Context, target: string, streamPath: string, remote?: string): Promise<Response> {
      const stream = c.req.raw.body;
      if (!stream) return ctx.fail(c, 400, 'publishing needs a request body (an FLV stream)');
      let pub: Publisher;
      try {
        pub = await ctx.publish(target, { remote });
      } catch (err) {
        await stream.cancel().catch(() => {});
        return errorResponse(c, err);
      }
      const feed = new FlvFeed(pub, { maxTagSize: ctx.config.maxtagsize, warn: (m) => log.warn(m, { stream: pub.stream.path, remote }) });
      const reader = stream.getReader();
      // Every answer to a publish request closes the connection: when we answer before the client has
      // finished sending (an error, the engine stopped the publisher), that is what tells it to stop.
      c.header('connection', 'close');
      let stopReason = '';
      const session = addSession({
        kind: 'http-publish', streamPath, remote, pub, feed,
        stop: (r) => { stopReason = r; pub.stop(r); },
      });
      pub.onStop = (reason) => { stopReason ||= reason; reader.cancel(reason).catch(() => {}); };
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          feed.push(value);
        }
        if (stopReason) return ctx.fail(c, 409, `publisher stopped: ${stopReason}`);
        feed.end();
        pub.close('publisher finished');
        return ctx.ok(c, { bytes: feed.bytes, tags: feed.tags });
      } catch (err) {
        reader.cancel().catch(() => {});
        if (stopReason) {
          pub.close(stopReason);
          return ctx.fail(c, 409, `publisher stopped: ${stopReason}`);
        }
        const bad = err instanceof FormatError;
        const msg = (err as Error)?.message ?? String(err);
        log.warn(bad ? 'publish closed: bad FLV input' : 'publish connection lost', { stream: pub.stream.path, remote, error: msg, bytes: feed.bytes });
        pub.close(bad ? `bad FLV input: ${msg}` : 'publisher connection lost');
        return bad ? ctx.fail(c, 400, `bad FLV input: ${msg}`) : ctx.fail(c, 500, msg);
      } finally {
        sessions.delete(session.id);
      }
    }

    // ---- publish over WebSocket (?publish): binary messages are FLV bytes

    function wsPublish(target: string, streamPath: string, remote?: string) {
      let pub: Publisher | null = null;
      let feed: FlvFeed | null = null;
      let session: Session | null = null;
      let early: Uint8Array[] | null = [];
      let earlyBytes = 0;
      let gone = false;
      const fail = (ws: WsConn, code: number, reason: string) => {
        gone = true;
        ws.close(code, reason.slice(0, 100));
        pub?.close(reason);
        if (session) sessions.delete(session.id);
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
          ctx.publish(target, { remote }).then((p) => {
            if (gone) { p.close('client disconnected'); return; }
            pub = p;
            feed = new FlvFeed(p, { maxTagSize: ctx.config.maxtagsize, warn: (m) => log.warn(m, { stream: p.stream.path, remote }) });
            session = addSession({ kind: 'ws-publish', streamPath, remote, pub: p, feed, stop: (r) => p.stop(r) });
            p.onStop = (reason) => fail(ws, 1000, reason);
            const q = early!;
            early = null;
            for (const d of q) if (!gone) take(ws, d);
          }, (err) => {
            const status = err instanceof EngineError ? err.httpStatus : 500;
            gone = true;
            ws.close(wsCodeFor(status), reasonText(err));
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
          if (session) sessions.delete(session.id);
        },
      };
    }
  },
});

function reasonText(err: unknown): string {
  const m = (err as Error)?.message ?? String(err);
  return m.length > 100 ? m.slice(0, 100) : m;
}

