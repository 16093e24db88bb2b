// The mp4 plugin: live fragmented MP4 over HTTP (chunked) and WebSocket. See docs/plugins/mp4.md.
//
//   GET /mp4/{streamPath}.mp4             init segment, then one moof+mdat per frame, from a keyframe
//   GET /mp4/{streamPath}.mp4 + Upgrade   the same over WebSocket (one message per batch of fragments)
//   GET /mp4/api/list                     players

import type { Context } from 'hono';
import { EngineError } from '../../src/core/errors.ts';
import type { Subscriber } from '../../src/core/subscriber.ts';
import { t } from '../../src/config/schema.ts';
import { createBodySink, wsByteSink, type ByteSink } from '../../src/net/body.ts';
import type { WsConn } from '../../src/net/types.ts';
import { definePlugin } from '../../src/plugin.ts';
import { Mp4PlaySink } from './sink.ts';

const HEADERS = {
  'content-type': 'video/mp4',
  'cache-control': 'no-cache, no-store, must-revalidate',
  'x-accel-buffering': 'no',
};

export default definePlugin({
  name: 'mp4',
  description: 'live fMP4 over HTTP and WebSocket',
  defaults: {
    /** High-water mark of each player's HTTP body / WebSocket queue (bytes): above it the player skips. */
    writebuffer: t.num(256 * 1024, { min: 16 * 1024, int: true }),
  },
  setup(ctx) {
    const players = new Map<number, { kind: 'http' | 'ws'; streamPath: string; sub: Subscriber; stop(r: string): void }>();

    const fail = (c: Context, err: unknown) => {
      if (err instanceof EngineError) return ctx.fail(c, err.httpStatus, err.message);
      ctx.logger.error('mp4 request failed', { error: err });
      return ctx.fail(c, 500, (err as Error)?.message ?? String(err));
    };

    ctx.onStop(() => { for (const p of [...players.values()]) p.stop('server shutting down'); });

    ctx.http.get('/api/list', (c) => ctx.ok(c, [...players.values()].map((p) => ({ ...p.sub.info(), transport: p.kind, streamPath: p.streamPath }))));

    ctx.http.on(['GET', 'HEAD'], '/*', async (c, next) => {
      const url = new URL(c.req.url);
      const m = /^\/mp4\/(.+)\.mp4$/i.exec(url.pathname);
      if (!m) return next();
      const streamPath = m[1]!;
      const target = streamPath + url.search;
      if (c.req.method === 'HEAD') return new Response(null, { status: 200, headers: HEADERS });
      const peer = ctx.runtime.connInfo(c);
      const remote = peer ? `${peer.address}:${peer.port}` : undefined;
      if (c.req.header('upgrade')?.toLowerCase() === 'websocket') {
        const res = await ctx.upgradeWebSocket(c, wsPlay(target, streamPath, remote));
        if (res) return res;
      }
      const { body, sink } = createBodySink({ highWaterMark: ctx.config.writebuffer });
      const player = new Mp4PlaySink(sink);
      let sub: Subscriber;
      try {
        sub = await ctx.subscribe(target, { sink: player, remote });
      } catch (err) {
        sink.end();
        return fail(c, err);
      }
      const forget = () => players.delete(sub.id);
      players.set(sub.id, { kind: 'http', streamPath, sub, stop: (r) => { sub.close(r); sink.end(); } });
      player.onEnd = forget;
      const prev = sink.onClose;
      sink.onClose = (err) => { forget(); prev?.(err); };
      const abort = c.req.raw.signal;
      if (sink.closed || abort?.aborted) { forget(); sub.close('client disconnected'); }
      else abort?.addEventListener('abort', () => { forget(); sub.close('client disconnected'); sink.end(); }, { once: true });
      return new Response(body, { status: 200, headers: HEADERS });
    });

    function wsPlay(target: string, streamPath: string, remote?: string) {
      let sub: Subscriber | null = null;
      let out: ByteSink | null = null;
      let gone = false;
      return {
        onOpen(ws: WsConn) {
          out = wsByteSink(ws, ctx.config.writebuffer);
          const player = new Mp4PlaySink(out);
          ctx.subscribe(target, { sink: player, remote }).then((s) => {
            sub = s;
            if (gone) { s.close('client disconnected'); return; }
            players.set(s.id, { kind: 'ws', streamPath, sub: s, stop: (r) => { s.close(r); out?.end(); } });
            player.onEnd = () => players.delete(s.id);
          }, (err) => {
            const status = err instanceof EngineError ? err.httpStatus : 500;
            ws.close(4000 + status, String((err as Error)?.message ?? err).slice(0, 100));
          });
        },
        onMessage() { /* players send nothing we need */ },
        onClose() {
          gone = true;
          out?.end();
          sub?.close('client disconnected');
          if (sub) players.delete(sub.id);
        },
      };
    }
  },
});
