// The RTMP plugin: an RTMP/RTMPS server (publish and play), and pull/push clients.
//
//   ffmpeg -re -i in.mp4 -c copy -f flv rtmp://host/live/x     publish live/x
//   ffplay rtmp://host/live/x                                   play it
//   pull:  rtmp: { pull: { live/cam: rtmp://origin/live/cam } }
//   push:  rtmp: { onpub: { push: { "live/(.+)": rtmp://cdn/live/$1 } } }
//   API:   POST /rtmp/api/pull {streamPath,url}, POST /rtmp/api/push {streamPath,url},
//          GET /rtmp/api/list, POST /rtmp/api/stop/:id
// See docs/plugins/rtmp.md.

import type { OutboundOrigin } from '../../src/core/outbound.ts';
import { t } from '../../src/config/schema.ts';
import { definePlugin } from '../../src/plugin.ts';
import type { TcpConn } from '../../src/net/types.ts';
import { type ClientEnv, parseRtmpUrl, RtmpJob } from './client.ts';
import { RtmpSession, type SessionEnv } from './session.ts';

export default definePlugin({
  name: 'rtmp',
  description: 'RTMP/RTMPS server (publish, play) and pull/push client',
  needs: ['net'],
  pull: true,
  push: true,
  defaults: {
    tcp: { listenaddr: ':1935', listenaddrtls: '' },
    /** PEM certificate and key for RTMPS (tcp.listenaddrtls). */
    certfile: '',
    keyfile: '',
    /** Outgoing chunk size, announced with Set Chunk Size after connect. */
    chunksize: t.num(4096, { min: 128, max: 65536, int: true }),
    /** Close a connection that has not completed the handshake and `connect` in this time. */
    handshaketimeout: t.dur('10s'),
    /** Close a connection that is not playing and has sent nothing for this long. */
    idletimeout: t.dur('30s'),
    /** Largest RTMP message accepted; a bigger one closes the connection (nginx-rtmp's max_message, 1M). */
    maxmessagesize: t.num(1024 * 1024, { min: 64 * 1024, max: 256 * 1024 * 1024, int: true }),
    /** Largest message before the peer sends `publish` (handshake, connect, play: small commands only). */
    maxcommandsize: t.num(16 * 1024, { min: 1024, max: 1024 * 1024, int: true }),
    /** Bytes held in partially received messages over all RTMP connections; a connection that would go over it is closed. 0 = no limit. */
    maxpendingbytes: t.num(256 * 1024 * 1024, { min: 0, int: true }),
    /** Pull/push: retries after a failure (-1 = forever) and the first retry delay (doubles, capped at 30 s). */
    retrycount: t.num(-1, { min: -1, int: true }),
    retryinterval: t.dur('2s'),
    /** Pull/push: how long to wait for the remote server's answers. */
    clienttimeout: t.dur('10s'),
    /** Verify certificates of rtmps:// servers we pull from or push to. */
    tlsverify: true,
    /** Bytes queued per connection before a player counts as slow (it stops taking frames and, once
     * behind by subscribe.maxlag, skips to a keyframe). Applies to connections accepted after a change. */
    writebuffer: t.num(256 * 1024, { min: 16 * 1024, int: true }),
  },
  async setup(ctx) {
    const cfg = ctx.config;
    ctx.sessions.declareGroups('sessions', 'pulls', 'pushes');
    const budget = { used: 0, max: cfg.maxpendingbytes, peak: 0 };
    /** Bytes in partially received messages over all connections now, the most seen, and the cap (rtmp.maxpendingbytes). */
    ctx.sessions.listExtra(() => ({ pendingBytes: { used: budget.used, peak: budget.peak, max: budget.max } }));
    const sessionEnv = (): SessionEnv => {
      budget.max = cfg.maxpendingbytes;
      return { ctx, logger: ctx.logger, chunkSize: cfg.chunksize, maxMessageSize: cfg.maxmessagesize, maxCommandSize: cfg.maxcommandsize, budget };
    };
    const clientEnv = (): ClientEnv => ({
      ctx, logger: ctx.logger, chunkSize: cfg.chunksize, maxMessageSize: cfg.maxmessagesize, tlsVerify: cfg.tlsverify,
      retryCount: cfg.retrycount, retryInterval: cfg.retryinterval, timeout: cfg.clienttimeout,
    });
    let stopping = false;

    const onConn = (conn: TcpConn) => {
      if (stopping) { conn.destroy(); return; }
      conn.setNoDelay(true);
      new RtmpSession(conn, sessionEnv());
    };
    await ctx.listenTcp(cfg.tcp.listenaddr, onConn, { what: 'RTMP', highWaterMark: cfg.writebuffer });
    if (cfg.tcp.listenaddrtls) {
      if (!cfg.certfile || !cfg.keyfile) throw new Error('rtmp.tcp.listenaddrtls needs rtmp.certfile and rtmp.keyfile');
      const tls = {
        cert: await ctx.runtime.readTextFile(ctx.resolvePath(cfg.certfile)),
        key: await ctx.runtime.readTextFile(ctx.resolvePath(cfg.keyfile)),
      };
      await ctx.listenTcp(cfg.tcp.listenaddrtls, onConn, { tls, what: 'RTMPS', highWaterMark: cfg.writebuffer });
    }

    // Handshake and idle timeouts: one sweep a second over all sessions.
    const sweep = setInterval(() => {
      const now = Date.now();
      for (const h of ctx.sessions.list({ live: true })) {
        const s = h.ref;
        if (!(s instanceof RtmpSession)) continue;
        if (!s.handshakeDone || !s.isConnected) {
          if (now - s.startTime > cfg.handshaketimeout) s.fail(new Error(`handshake and connect not completed within ${cfg.handshaketimeout} ms`));
        } else if (cfg.idletimeout > 0 && !s.playing && now - s.lastRead > cfg.idletimeout) {
          s.fail(new Error(`nothing received for ${cfg.idletimeout} ms (idletimeout)`));
        }
      }
    }, 1000);

    const startJob = (kind: 'pull' | 'push', streamPath: string, url: string, origin: OutboundOrigin): RtmpJob => {
      parseRtmpUrl(url); // throws on a bad URL before anything starts
      const release = ctx.outbound.acquire(url);
      const env = clientEnv();
      env.origin = origin;
      if (origin === 'api') env.retryCount = ctx.outbound.retryCap('api', env.retryCount, (n) => n < 0);
      const job = new RtmpJob(kind, streamPath, url, env);
      void job.run().finally(release);
      return job;
    };

    ctx.registerPuller(({ streamPath, url }) => { startJob('pull', streamPath, url, 'config'); });
    ctx.registerPusher(({ streamPath, target }) => { startJob('push', streamPath, target, 'config'); });

    // Sessions and jobs are stopped by the server (they are in ctx.sessions).
    ctx.onStop(() => {
      stopping = true;
      clearInterval(sweep);
    });

    // ------------------------------------------------------------------------------------ HTTP API
    const startFromApi = async (c: any, kind: 'pull' | 'push') => {
      let body: any;
      try { body = await c.req.json(); } catch { return ctx.fail(c, 400, 'body must be JSON {streamPath, url}'); }
      const streamPath = typeof body?.streamPath === 'string' ? body.streamPath.replace(/^\/+/, '') : '';
      const url = typeof body?.url === 'string' ? body.url : '';
      if (!/^[^/?]+\/[^?]+$/.test(streamPath)) return ctx.fail(c, 400, 'streamPath must be app/name');
      try {
        parseRtmpUrl(url);
      } catch (err) {
        return ctx.fail(c, 400, (err as Error).message);
      }
      // global.outbound: one answer for a refused or unreachable destination (EngineError → 403/503).
      await ctx.outbound.checkUrl(url, 'api');
      const job = startJob(kind, streamPath, url, 'api');
      return ctx.ok(c, { id: job.id });
    };
    ctx.http.post('/api/pull', (c) => startFromApi(c, 'pull'));
    ctx.http.post('/api/push', (c) => startFromApi(c, 'push'));
    // GET /rtmp/api/list ({sessions, pulls, pushes, list}) and POST /rtmp/api/stop/:id come from ctx.sessions.
  },
});
