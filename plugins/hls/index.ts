// The hls plugin: live HLS out of memory (MPEG-TS or fMP4 segments), and HLS pulls in. LL-HLS lives in
// ./llhls.ts (its own plugin, for the /llhls route prefix) and shares the segmenters through
// ./manager.ts. See docs/plugins/hls.md.
//
//   GET  /hls/{streamPath}.m3u8            live playlist (TS; fMP4 with ?fmp4 or segmenttype: fmp4)
//        ?timeout=10s                      wait that long for a stream that has not started
//   GET  /hls/{streamPath}/{msn}.ts        a segment (.m4s for fMP4, plus init-{v}.mp4 / init.mp4)
//   POST /hls/api/pull {streamPath, url}   pull an external HLS playlist into a local stream → { id }
//   GET  /hls/api/list                     segmenters, viewers and pulls (ctx.sessions)
//   POST /hls/api/stop/:id                 stop a pull or a segmenter, forget a viewer (ctx.sessions)

import { EngineError } from '../../src/plugin.ts';
import type { OutboundOrigin } from '../../src/core/outbound.ts';
import { t } from '../../src/config/schema.ts';
import { expandTemplate } from '../../src/plugin.ts';
import { definePlugin } from '../../src/plugin.ts';
import { managerFor } from './manager.ts';
import { HlsPullJob, type PullSettings } from './pull.ts';
import { checkAccess, masterFor, playlistResponse, serveInit, serveSegment, sessionFor, withArgs } from './serve.ts';
import { isAbrMember } from './abr.ts';
import type { SegmentKind } from './segmenter.ts';

export default definePlugin({
  name: 'hls',
  description: 'HLS (MPEG-TS and fMP4 segments) from memory, and HLS pull',
  pull: true,
  push: true,
  defaults: {
    /** Target segment duration: segments are cut at the first keyframe after it. */
    fragment: t.dur('2s'),
    /** Segments listed in a playlist. */
    window: t.num(3, { min: 1, max: 100, int: true }),
    /** Segments still served after they leave the playlist (for players that lag). */
    extra: t.num(3, { min: 0, max: 100, int: true }),
    /** Segment container when the playlist URL does not say (?fmp4). */
    segmenttype: t.str('ts', { enum: ['ts', 'fmp4'] }),
    /** Stop segmenting a stream nobody fetched from for this long; 0 = 3 × window × fragment. */
    idletimeout: t.dur('0s'),
    /**
     * A new segmenter answers its first /hls/ playlist once it has this many segments (at most
     * `window`), so the first viewer starts with headroom instead of stalling at the next segment.
     */
    startsegments: t.num(2, { min: 1, max: 100, int: true }),
    /** HLS pull: size limits, per-request timeout, longest retry delay. */
    maxplaylistsize: t.num(1 << 20, { min: 1024, int: true }),
    maxsegmentsize: t.num(64 << 20, { min: 1024, int: true }),
    timeout: t.dur('10s'),
    retrymax: t.dur('10s'),
  },
  setup(ctx) {
    const log = ctx.logger;
    const mgr = managerFor(ctx.engine, log);
    mgr.acquire(ctx.sessions);
    ctx.sessions.declareGroups('segmenters', 'viewers', 'pulls');
    const apply = () => {
      const c = ctx.config;
      Object.assign(mgr.settings, { fragment: c.fragment, window: c.window, extra: c.extra, idletimeout: c.idletimeout });
    };
    apply();
    ctx.onConfigChange(apply);

    // ---------------------------------------------------------------------------- pulls

    const settings = (): PullSettings => ({
      maxplaylistsize: ctx.config.maxplaylistsize, maxsegmentsize: ctx.config.maxsegmentsize,
      timeout: ctx.config.timeout, retrymax: ctx.config.retrymax,
    });
    /** Start a pull, or return the one already feeding `streamPath`; ended pulls stay listed a minute. */
    const startPull = (streamPath: string, url: string, origin: OutboundOrigin): HlsPullJob => {
      for (const h of ctx.sessions.list({ live: true })) {
        const j = h.ref;
        if (j instanceof HlsPullJob && j.streamPath === streamPath && !j.stopped) return j;
      }
      const release = ctx.outbound.acquire(url);
      let job: HlsPullJob | undefined;
      const handle = ctx.sessions.add<HlsPullJob>({
        kind: 'pull', group: 'pulls', streamPath, linger: 60_000,
        stop: (r) => job?.stop(r), info: () => job?.info() ?? {},
      });
      try {
        job = new HlsPullJob(handle.id, streamPath, url, ctx, settings, log, origin);
      } catch (err) {
        handle.remove();
        release();
        throw err;
      }
      handle.spec.ref = job;
      log.info('hls pull started', { stream: streamPath, url, id: job.id, origin });
      const j = job;
      void j.done.then(() => {
        release();
        log.info('hls pull ended', { stream: streamPath, id: j.id, reason: j.stopReason });
        handle.remove(j.stopReason);
      });
      return job;
    };
    const isHttp = (u: string) => /^https?:\/\//i.test(u);
    ctx.registerPuller(({ streamPath, url }) => {
      if (!isHttp(url)) throw new EngineError('BadArgument', `hls cannot pull ${url}`);
      startPull(streamPath, url, 'config');
    });

    // ---------------------------------------------------------------------------- onpub.transform
    // `onpub: { transform: { "live/.*": "" } }`: segment matching streams from the moment they start
    // (TS, or fMP4 when the value is "fmp4"), so the first player gets a full playlist at once.
    const onPublish = ({ stream, republish }: { stream: { path: string }; republish: boolean }) => {
      if (republish) return;
      for (const [re, value] of Object.entries(ctx.config.onpub?.transform ?? {})) {
        let m: RegExpExecArray | null;
        try { m = new RegExp(`^(?:${re})$`).exec(stream.path); } catch { continue; }
        if (!m) continue;
        const kind: SegmentKind = expandTemplate(String(value), m).includes('fmp4') ? 'fmp4' : 'ts';
        mgr.open(stream.path, stream.path, kind, 1000, ctx.subscribe, { pinned: true, align: isAbrMember(ctx.engine, stream.path), subscribeConfig: ctx.config.subscribe, sessions: ctx.sessions })
          .catch((err) => log.warn('hls transform failed', { stream: stream.path, error: err }));
        return;
      }
    };
    const offPublish = ctx.events.on('publish', onPublish);

    // Pulls, segmenters and viewers are stopped by the server (they are in ctx.sessions).
    ctx.onStop(() => {
      offPublish();
      mgr.release(ctx.sessions);
    });

    // ---------------------------------------------------------------------------- API

    ctx.http.post('/api/pull', async (c) => {
      let body: any;
      try { body = await c.req.json(); } catch { return ctx.fail(c, 400, 'body must be JSON: { "streamPath": "live/x", "url": "http://…/index.m3u8" }'); }
      const streamPath = typeof body?.streamPath === 'string' ? body.streamPath.replace(/^\/+/, '') : '';
      const url = typeof body?.url === 'string' ? body.url : '';
      if (!streamPath || !url) return ctx.fail(c, 400, 'streamPath and url are required');
      if (!isHttp(url)) return ctx.fail(c, 400, `cannot pull ${url.slice(0, 100)}: use an http(s) URL of an .m3u8`);
      await ctx.outbound.checkUrl(url, 'api'); // global.outbound; one answer for refused and unreachable
      return ctx.ok(c, { id: startPull(streamPath, url, 'api').id });
    });

    // GET /hls/api/list and POST /hls/api/stop/:id are served from ctx.sessions by the server.

    // ---------------------------------------------------------------------------- playlists, segments

    // Monibuca's VOD playlist of recordings (/hls/vod/{path}.m3u8?start=&end=) is served by the record
    // plugin: a redirect keeps the URL. Without start/end, vod/... stays a stream path (time-shift).
    ctx.http.get('/vod/*', (c, next) => {
      const url = new URL(c.req.url);
      if (!url.searchParams.has('start') && !url.searchParams.has('end')) return next();
      return c.redirect(url.pathname.replace(/^\/hls\/vod\//, '/record/vod/') + url.search, 302);
    });

    ctx.http.on(['GET', 'HEAD'], '/*', async (c, next) => {
      const url = new URL(c.req.url);
      let p: string;
      try { p = decodeURIComponent(url.pathname); } catch { return ctx.fail(c, 400, 'bad URL encoding'); }
      let m = /^\/hls\/(.+)\.m3u8$/i.exec(p);
      if (m) {
        const path = m[1]!;
        const kind: SegmentKind = url.searchParams.has('fmp4') || ctx.config.segmenttype === 'fmp4' ? 'fmp4' : 'ts';
        const name = path.slice(path.lastIndexOf('/') + 1);
        if (!url.searchParams.has('media')) {
          // A stream with renditions (transcode): the master playlist of the source and its renditions.
          const fm = url.searchParams.has('fmp4') ? '&fmp4' : '';
          const master = await masterFor(ctx, mgr, c, path, kind, url, (v, isSource) =>
            isSource ? `${encodeURIComponent(name)}.m3u8?media${fm}` : `${encodeURIComponent(name)}/${encodeURIComponent(v.slice(path.length + 1))}.m3u8${fm ? '?fmp4' : ''}`);
          if (master) return master;
        }
        const s = await sessionFor(ctx, mgr, c, path, kind, url, ctx.config.startsegments);
        if (s instanceof Response) return s;
        return playlistResponse(withArgs(s.seg.playlist(`${encodeURIComponent(name)}/`, false), url));
      }
      m = /^\/hls\/(.+)\/(\d{1,15})\.(ts|m4s)$/i.exec(p);
      if (m) {
        const kind: SegmentKind = m[3]!.toLowerCase() === 'ts' ? 'ts' : 'fmp4';
        const denied = await checkAccess(ctx, c, m[1]!, url);
        if (denied) return denied;
        return serveSegment(ctx, mgr, c, mgr.find(m[1]!, kind), Number(m[2]), `segment ${m[2]}`);
      }
      m = /^\/hls\/(.+)\/init(?:-(\d{1,9}))?\.mp4$/i.exec(p);
      if (m) return (await checkAccess(ctx, c, m[1]!, url)) ?? serveInit(ctx, mgr, c, mgr.find(m[1]!, 'fmp4'), m[2] === undefined ? undefined : Number(m[2]));
      return next();
    });
  },
});
