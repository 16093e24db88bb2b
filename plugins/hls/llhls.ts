// The llhls plugin: Low-Latency HLS (draft-pantos-hls-rfc8216bis) at /llhls/{streamPath}/index.m3u8.
// It shares the fMP4 segmenters of the hls plugin (./manager.ts): the same segments, plus their parts.
//
//   GET /llhls/{streamPath}/index.m3u8[?_HLS_msn=N[&_HLS_part=M]]   playlist; blocking reload with the args
//   GET /llhls/{streamPath}/{msn}.{part}.m4s                         a part (held while it is the next one)
//   GET /llhls/{streamPath}/{msn}.m4s, init-{v}.mp4, init.mp4        segments, init segments
//
// Blocking reload: the request is held until part M of segment N exists (or segment N is complete when
// no part is given), at most `blocktimeout`, then 503. An _HLS_msn more than two segments beyond the
// last complete one is 400, as the spec asks. _HLS_skip (delta playlists) is not supported.

import { t } from '../../src/config/schema.ts';
import { definePlugin } from '../../src/plugin.ts';
import { managerFor } from './manager.ts';
import { concat } from './segmenter.ts';
import { checkAccess, masterFor, mediaHeaders, playlistResponse, segmentMaxAge, serveInit, serveSegment, sessionFor, withArgs } from './serve.ts';

export default definePlugin({
  name: 'llhls',
  description: 'Low-Latency HLS (fMP4 parts, blocking playlist reload), sharing the hls segmenters',
  defaults: {
    /** Target duration of a partial segment. */
    part: t.dur('200ms'),
    /** Longest hold of a blocking playlist reload or part request; 0 = 3 × the target duration. */
    blocktimeout: t.dur('0s'),
  },
  setup(ctx) {
    const mgr = managerFor(ctx.engine, ctx.logger);
    mgr.acquire(ctx.sessions);
    ctx.sessions.declareGroups('segmenters', 'viewers');
    const apply = () => { mgr.settings.part = ctx.config.part; };
    apply();
    ctx.onConfigChange(apply);
    ctx.onStop(() => mgr.release(ctx.sessions));

    const holdMs = (td: number) => ctx.config.blocktimeout > 0 ? ctx.config.blocktimeout : 3 * td * 1000;

    ctx.http.on(['GET', 'HEAD'], '/*', async (c, next) => {
      const url = new URL(c.req.url);
      let p: string;
      try { p = decodeURIComponent(url.pathname); } catch { return ctx.fail(c, 400, 'bad URL encoding'); }
      let m = /^\/llhls\/(.+)\/master\.m3u8$/i.exec(p);
      if (m) {
        // A stream with renditions (transcode): the master playlist of the source and its renditions.
        const path = m[1]!;
        const master = await masterFor(ctx, mgr, c, path, 'fmp4', url, (v, isSource) => isSource ? 'index.m3u8' : `${encodeURIComponent(v.slice(path.length + 1))}/index.m3u8`);
        if (master) return master;
        return ctx.fail(c, 404, `stream ${path} has no renditions: play /llhls/${path}/index.m3u8`);
      }
      m = /^\/llhls\/(.+)\/index\.m3u8$/i.exec(p);
      if (m) {
        const path = m[1]!;
        const q = url.searchParams;
        const rawMsn = q.get('_HLS_msn'), rawPart = q.get('_HLS_part');
        const isInt = (v: string) => /^\d{1,15}$/.test(v);
        if (rawMsn !== null && !isInt(rawMsn)) return ctx.fail(c, 400, '_HLS_msn must be a non-negative integer');
        if (rawPart !== null && (rawMsn === null || !isInt(rawPart))) return ctx.fail(c, 400, '_HLS_part needs _HLS_msn and must be a non-negative integer');
        const s = await sessionFor(ctx, mgr, c, path, 'fmp4', url);
        if (s instanceof Response) return s;
        const seg = s.seg;
        if (rawMsn !== null) {
          const msn = Number(rawMsn);
          const part = rawPart === null ? -1 : Number(rawPart);
          const done = seg.complete();
          const last = done.length ? done[done.length - 1]!.msn : -1;
          if (msn > last + 2) return ctx.fail(c, 400, `_HLS_msn=${msn} is more than two segments after the last one (${last})`);
          // Without _HLS_part: wait for the whole segment N; with it: for that part.
          const ready = part < 0 ? () => !!seg.segment(msn)?.complete || seg.hasPart(msn + 1, 0) : () => seg.hasPart(msn, part);
          const ok = await seg.waitFor(ready, holdMs(seg.targetDuration()));
          if (!ok) return ctx.fail(c, seg.ended ? 404 : 503, seg.ended ? `stream ${path} ended` : `segment ${msn} part ${part} did not appear in time`);
        }
        return playlistResponse(withArgs(seg.playlist('', true), url));
      }
      m = /^\/llhls\/(.+)\/(?:\d{1,15}\.\d{1,6}\.m4s|\d{1,15}\.m4s|init(?:-\d{1,9})?\.mp4)$/i.exec(p);
      if (m) {
        const denied = await checkAccess(ctx, c, m[1]!, url);
        if (denied) return denied;
      }
      m = /^\/llhls\/(.+)\/(\d{1,15})\.(\d{1,6})\.m4s$/i.exec(p);
      if (m) {
        const s = mgr.find(m[1]!, 'fmp4');
        if (!s) return ctx.fail(c, 404, 'no LL-HLS session for this stream (fetch the playlist first)');
        const seg = s.seg, msn = Number(m[2]), idx = Number(m[3]);
        const cur = seg.current;
        // The next part (a preload hint) is held until it exists; anything else must exist already.
        const upcoming = cur && ((msn === cur.msn && idx <= cur.parts.length + 1) || (msn === cur.msn + 1 && idx === 0));
        if (upcoming && !seg.hasPart(msn, idx)) await seg.waitFor(() => seg.hasPart(msn, idx), holdMs(seg.targetDuration()));
        const x = seg.segment(msn)?.parts[idx];
        if (!x) return ctx.fail(c, 404, `part ${msn}.${idx} is not available`);
        return new Response(concat(x.chunks, x.bytes) as Uint8Array<ArrayBuffer>, { status: 200, headers: mediaHeaders('video/mp4', segmentMaxAge(mgr)) });
      }
      m = /^\/llhls\/(.+)\/(\d{1,15})\.m4s$/i.exec(p);
      if (m) return serveSegment(ctx, mgr, c, mgr.find(m[1]!, 'fmp4'), Number(m[2]), `segment ${m[2]}`);
      m = /^\/llhls\/(.+)\/init(?:-(\d{1,9}))?\.mp4$/i.exec(p);
      if (m) return serveInit(ctx, mgr, c, mgr.find(m[1]!, 'fmp4'), m[2] === undefined ? undefined : Number(m[2]));
      return next();
    });
  },
});
