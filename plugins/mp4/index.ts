// The mp4 plugin: live fragmented MP4 over HTTP (chunked) and WebSocket. See docs/plugins/mp4.md.
//
//   GET /mp4/{streamPath}.mp4             init segment, then one moof+mdat per frame, from a keyframe
//   GET /mp4/{streamPath}.mp4 + Upgrade   the same over WebSocket (one message per batch of fragments)
//   GET /mp4/api/list                     players (ctx.sessions: { total, list, players })
//   POST /mp4/api/stop/:id                stop a player (ctx.sessions)

import { t } from '../../src/config/schema.ts';
import { definePlugin, type Subscriber } from '../../src/plugin.ts';
import { AUDIO_CODECS, Mp4PlaySink, VIDEO_CODECS } from './sink.ts';

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

    // A track live fMP4 does not carry here (G.711 audio, ...) is left out: said once per stream.
    const reported = new WeakMap<object, Set<string>>();
    const reportUnsupported = (sub: Subscriber) => {
      for (const t of sub.stream.tracks) {
        if (t.kind === 'data' || (t.kind === 'video' ? VIDEO_CODECS : AUDIO_CODECS).has(t.codec)) continue;
        let seen = reported.get(sub.stream);
        if (!seen) reported.set(sub.stream, (seen = new Set()));
        if (seen.has(`${t.kind}:${t.codec}`)) continue;
        seen.add(`${t.kind}:${t.codec}`);
        ctx.logger.warn(`live fMP4 of ${sub.stream.path} leaves out its ${t.codec} ${t.kind} track: it carries ` +
          `${[...VIDEO_CODECS].join('/')} video and ${[...AUDIO_CODECS].join('/')} audio`, { stream: sub.stream.path, codec: t.codec });
      }
    };

    // Monibuca's download of recordings (/mp4/download/{path}.mp4?start=&end=) is served by the record plugin.
    ctx.http.on(['GET', 'HEAD'], '/download/*', (c) => {
      const url = new URL(c.req.url);
      return c.redirect(url.pathname.replace(/^\/mp4\/download\//, '/record/download/') + url.search, 302);
    });

    ctx.http.on(['GET', 'HEAD'], '/*', (c, next) => {
      const url = new URL(c.req.url);
      const m = /^\/mp4\/(.+)\.mp4$/i.exec(url.pathname);
      if (!m) return next();
      const streamPath = m[1]!;
      if (c.req.method === 'HEAD') return new Response(null, { status: 200, headers: HEADERS });
      return ctx.play(c, {
        target: streamPath + url.search, streamPath, kind: { http: 'http', ws: 'ws' }, headers: HEADERS,
        highWaterMark: ctx.config.writebuffer, make: (out) => new Mp4PlaySink(out), onSubscribed: reportUnsupported,
      });
    });
  },
});
