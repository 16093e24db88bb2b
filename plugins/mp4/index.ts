// The mp4 plugin: live fragmented MP4 over HTTP (chunked) and WebSocket. See docs/plugins/mp4.md.
//
//   GET /mp4/{streamPath}.mp4             init segment, then one moof+mdat per frame, from a keyframe
//   GET /mp4/{streamPath}.mp4 + Upgrade   the same over WebSocket (one message per batch of fragments)
//   GET /mp4/api/list                     players (ctx.sessions: { total, list, players })
//   POST /mp4/api/stop/:id                stop a player (ctx.sessions)

import { t } from '../../src/config/schema.ts';
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
    ctx.sessions.declareGroups('players');

    ctx.http.on(['GET', 'HEAD'], '/*', (c, next) => {
      const url = new URL(c.req.url);
      const m = /^\/mp4\/(.+)\.mp4$/i.exec(url.pathname);
      if (!m) return next();
      const streamPath = m[1]!;
      if (c.req.method === 'HEAD') return new Response(null, { status: 200, headers: HEADERS });
      return ctx.play(c, {
        target: streamPath + url.search, streamPath, kind: { http: 'http', ws: 'ws' }, headers: HEADERS,
        highWaterMark: ctx.config.writebuffer, make: (out) => new Mp4PlaySink(out),
      });
    });
  },
});
