// The snap plugin: JPEG snapshots of live streams, decoded by ffmpeg from the keyframe the stream holds
// in memory (no subscriber, no waiting for the next GOP). See docs/plugins/snap.md.
//
//   GET /snap/{streamPath}.jpg[?w=320]        the latest keyframe as a JPEG (optionally scaled to width w)
//   GET /snap/query?streamPath=&snapTime=     a saved periodic snapshot: the newest at or before snapTime
//                                             (unix seconds), else the oldest after it
//   GET /snap/api/list                        periodic snapshot jobs, plus ffmpeg runs and cache hits
//   POST /snap/api/stop/:id                   stop a periodic job (until the stream starts again)
//
// One ffmpeg run per keyframe and width however many ask: concurrent requests share the run, and the
// JPEG is kept with the keyframe (a WeakMap on the frame), so it is dropped when the ring evicts it.
// Periodic snapshots (`onpub.transform` picks the streams, `timeinterval` the period) go to
// `savepath/{streamPath}/{unix seconds}.jpg` with a time watermark drawn by ffmpeg's drawtext, which
// needs a font: `watermark.fontpath`, or DejaVu Sans / Liberation Sans / Arial found in the usual
// places. Without a font (or without drawtext in the ffmpeg build) snapshots are saved without the
// watermark and /snap/api/list says why.

import { definePlugin, EngineError, expandTemplate, parseDuration, t, type Frame, type Stream } from '../../src/plugin.ts';
import { requestAuth } from '../../src/http/peer.ts';
import { checkFfmpeg, FFMPEG_KEY_DOC, keyframeAnnexB, runOnce, tail } from '../ffmpeg/ffmpeg.ts';

/** Fonts tried for the watermark when `watermark.fontpath` is empty. */
const FONT_CANDIDATES = [
  '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf',
  '/usr/share/fonts/dejavu/DejaVuSans.ttf',
  '/usr/share/fonts/TTF/DejaVuSans.ttf',
  '/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf',
  '/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf',
  '/usr/share/fonts/liberation/LiberationSans-Regular.ttf',
  '/Library/Fonts/Arial.ttf',
  '/System/Library/Fonts/Supplemental/Arial.ttf',
  'C:\\Windows\\Fonts\\arial.ttf',
];

const SEGMENT = /^[A-Za-z0-9._~@=+,:!$()*-]+$/;
const MAX_WIDTH = 4096;

/** "2026-11-30 22:04:27" in local time. */
function stamp(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** A drawtext option value: quoted for the filter graph (quotes dropped), ':' and '\\' escaped for the option parser. */
function drawtextValue(s: string): string {
  return "'" + s.replace(/'/g, '').replace(/[\\:]/g, (c) => '\\' + c) + "'";
}

export default definePlugin({
  name: 'snap',
  description: 'JPEG snapshots from the cached keyframe (ffmpeg), periodic snapshots to disk with a time watermark',
  needs: ['proc'],
  push: true,
  defaults: {
    /** ffmpeg program: a name looked up on PATH or a path. */
    ffmpeg: t.str('ffmpeg'),
    /** Period of saved snapshots for the streams `onpub.transform` matches (a value there overrides it per pattern). */
    timeinterval: t.dur('1m'),
    /** Folder of saved snapshots (relative to the config file): {savepath}/{streamPath}/{unix seconds}.jpg */
    savepath: t.str('snap'),
    /** Saved snapshots older than this are deleted when the next one of the stream is saved; 0 = keep all. */
    keep: t.dur('0s'),
    /** JPEG quality for ffmpeg's mjpeg encoder (-q:v): 2 best … 31 worst. */
    quality: t.num(4, { min: 2, max: 31, int: true }),
    /** Longest an ffmpeg run may take. */
    timeout: t.dur('10s'),
    watermark: {
      /** Text drawn on saved snapshots; "$time" is the keyframe's arrival time (local). Empty: no watermark. */
      text: t.str('$time'),
      /** A TrueType font; empty = look in the usual places (DejaVu Sans, Liberation Sans, Arial). */
      fontpath: t.str(''),
      fontsize: t.num(24, { min: 6, max: 400, int: true }),
      fontcolor: t.str('white'),
      offsetx: t.num(10, { min: 0, int: true }),
      offsety: t.num(10, { min: 0, int: true }),
    },
  },
  async setup(ctx) {
    const log = ctx.logger;
    const rt = ctx.runtime;
    const version = await checkFfmpeg(ctx, ctx.config.ffmpeg);
    log.info('ffmpeg found', { ffmpeg: ctx.config.ffmpeg, version });
    void FFMPEG_KEY_DOC;

    let runs = 0;
    /** Runs for saved (watermarked) snapshots, part of `runs`. */
    let periodicRuns = 0;
    let running = 0;
    let failures = 0;
    /** JPEGs per keyframe, keyed by width and watermark text: a pending run is shared by every asker. */
    const cache = new WeakMap<Frame, Map<string, Promise<Uint8Array>>>();
    /** Requests answered by a run already made or under way for the same keyframe and width. */
    let cacheHits = 0;

    // ---------------------------------------------------------------------------- watermark font
    let font: string | undefined;
    let watermarkOff = '';
    const findFont = async () => {
      font = undefined;
      watermarkOff = '';
      if (!ctx.config.watermark.text) { watermarkOff = 'off: watermark.text is empty'; return; }
      const cands = ctx.config.watermark.fontpath ? [ctx.resolvePath(ctx.config.watermark.fontpath)] : FONT_CANDIDATES;
      for (const f of cands) {
        const st = await rt.stat(f).catch(() => null);
        if (st && !st.isDirectory) { font = f; break; }
      }
      if (!font) {
        watermarkOff = ctx.config.watermark.fontpath
          ? `off: font ${ctx.config.watermark.fontpath} not found`
          : 'off: no font found (install fonts-dejavu-core or set snap.watermark.fontpath)';
        log.warn('snapshots are saved without the time watermark', { reason: watermarkOff });
        return;
      }
      const filters = await runOnce(ctx, ctx.config.ffmpeg, ['-hide_banner', '-filters'], undefined, 10_000, 'ffmpeg -filters').catch(() => null);
      if (!filters || !/\bdrawtext\b/.test(new TextDecoder().decode(filters.stdout))) {
        font = undefined;
        watermarkOff = 'off: this ffmpeg has no drawtext filter (built without libfreetype)';
        log.warn('snapshots are saved without the time watermark', { reason: watermarkOff });
      }
    };

    // ---------------------------------------------------------------------------- one snapshot

    /** The newest keyframe of the stream's main video track. */
    const latestKey = (stream: Stream): Frame | undefined => {
      const ring = stream.ring;
      for (let i = ring.syncCount - 1; i >= 0; i--) {
        const f = ring.get(ring.syncAt(i)!);
        if (f && f.key && f.track.kind === 'video' && f.track.index === 0) return f;
      }
      return undefined;
    };

    const encode = async (f: Frame, width: number, text: string): Promise<Uint8Array> => {
      const es = keyframeAnnexB(f);
      if (!es) throw new EngineError('BadArgument', `cannot snapshot ${f.track.codec} video (H.264 and H.265 only)`);
      const vf: string[] = [];
      if (width) vf.push(`scale=${width}:-2`);
      if (text && font) {
        const w = ctx.config.watermark;
        vf.push(`drawtext=fontfile=${drawtextValue(font)}:expansion=none:text=${drawtextValue(text)}:fontsize=${w.fontsize}:fontcolor=${drawtextValue(w.fontcolor)}:x=${w.offsetx}:y=${w.offsety}:box=1:boxcolor=black@0.4:boxborderw=4`);
      }
      const args = ['-hide_banner', '-loglevel', 'error', '-threads', '1', '-f', es.format, '-i', 'pipe:0', '-frames:v', '1',
        ...(vf.length ? ['-vf', vf.join(',')] : []), '-q:v', String(ctx.config.quality), '-f', 'image2', '-c:v', 'mjpeg', 'pipe:1'];
      runs++;
      if (text) periodicRuns++;
      running++;
      try {
        const r = await runOnce(ctx, ctx.config.ffmpeg, args, es.bytes, ctx.config.timeout, `snapshot ${f.track.codec}`);
        const ok = r.code === 0 && r.stdout.length > 4 && r.stdout[0] === 0xff && r.stdout[1] === 0xd8;
        if (!ok) {
          failures++;
          throw new Error(`ffmpeg failed (exit ${r.code ?? r.signal}): ${tail(r.stderr) || 'no JPEG on stdout'}`);
        }
        return r.stdout;
      } finally {
        running--;
      }
    };

    /** The JPEG of keyframe `f` at `width` (0 = its size): one ffmpeg run per keyframe, width and text. */
    const jpegOf = (f: Frame, width: number, text = ''): Promise<Uint8Array> => {
      let m = cache.get(f);
      if (!m) { m = new Map(); cache.set(f, m); }
      const key = width + '|' + text;
      let p = m.get(key);
      if (!p) {
        p = encode(f, width, text);
        m.set(key, p);
        const mm = m;
        p.catch(() => { mm.delete(key); });
      } else {
        cacheHits++;
      }
      return p;
    };

    ctx.sessions.declareGroups('periodic');
    ctx.sessions.listExtra(() => ({ ffmpeg: version, runs, periodicRuns, running, failures, cacheHits, watermark: watermarkOff || `on (${font})` }));

    // ---------------------------------------------------------------------------- periodic snapshots

    const savePath = () => ctx.resolvePath(ctx.config.savepath);
    const dirOf = (streamPath: string) => savePath() + '/' + streamPath;

    const timers = new Map<string, { stop(reason: string): void }>();
    const startPeriodic = (stream: Stream, intervalMs: number) => {
      if (timers.has(stream.path)) return;
      let lastKey: Frame | undefined;
      let saved = 0;
      let lastError = '';
      let lastFile = '';
      let busy = false;
      const tick = async () => {
        if (busy) return;
        const f = latestKey(stream);
        if (!f || f === lastKey) return;
        busy = true;
        try {
          const now = Date.now();
          const text = font ? ctx.config.watermark.text.replace(/\$time/g, stamp(f.arrival)) : '';
          const jpeg = await jpegOf(f, 0, text);
          const dir = dirOf(stream.path);
          await rt.mkdir(dir);
          const file = `${dir}/${Math.floor(now / 1000)}.jpg`;
          await rt.writeFile(file, jpeg);
          lastKey = f;
          saved++;
          lastFile = file;
          lastError = '';
          if (ctx.config.keep > 0) await prune(dir, now - ctx.config.keep);
        } catch (err) {
          lastError = (err as Error)?.message ?? String(err);
          log.warn('periodic snapshot failed', { stream: stream.path, error: lastError });
        } finally {
          busy = false;
        }
      };
      const timer = setInterval(() => void tick(), intervalMs);
      const first = setTimeout(() => void tick(), Math.min(intervalMs, 1000));
      const handle = ctx.sessions.add({
        kind: 'periodic', group: 'periodic', streamPath: stream.path,
        stop: (r) => entry.stop(r),
        info: () => ({ intervalMs, saved, lastFile, lastError, watermark: watermarkOff || 'on' }),
      });
      const entry = {
        stop(reason: string) {
          clearInterval(timer);
          clearTimeout(first);
          timers.delete(stream.path);
          handle.remove(reason);
        },
      };
      timers.set(stream.path, entry);
    };

    const prune = async (dir: string, olderThanMs: number) => {
      for (const name of await rt.readDir(dir).catch(() => [] as string[])) {
        const m = /^(\d+)\.jpg$/.exec(name);
        if (m && Number(m[1]) * 1000 < olderThanMs) await rt.remove(`${dir}/${name}`).catch(() => {});
      }
    };

    /** The period for a stream path from onpub.transform (its value may be a duration), or undefined. */
    const periodFor = (path: string): number | undefined => {
      for (const [re, value] of Object.entries(ctx.config.onpub?.transform ?? {})) {
        let m: RegExpExecArray | null;
        try { m = new RegExp(`^(?:${re})$`).exec(path); } catch { continue; }
        if (!m) continue;
        const v = expandTemplate(String(value ?? ''), m).trim();
        if (v) {
          try { const ms = parseDuration(v); if (ms !== undefined && ms > 0) return Math.max(ms, 1000); } catch { /* not a duration: the default */ }
        }
        return Math.max(ctx.config.timeinterval, 1000);
      }
      return undefined;
    };

    const periodicConfigured = Object.keys(ctx.config.onpub?.transform ?? {}).length > 0;
    if (periodicConfigured) await findFont();
    else watermarkOff = 'off: no periodic snapshots (onpub.transform is empty)';

    const offPub = ctx.events.on('publish', ({ stream }) => {
      const ms = periodFor(stream.path);
      if (ms !== undefined) startPeriodic(stream, ms);
    });
    const offUnpub = ctx.events.on('unpublish', ({ stream }) => timers.get(stream.path)?.stop('stream ended'));
    // Streams already publishing when the plugin starts (a hot reload).
    for (const s of ctx.engine.streams.values()) {
      const ms = s.publisher ? periodFor(s.path) : undefined;
      if (ms !== undefined) startPeriodic(s, ms);
    }
    ctx.onStop(() => {
      offPub();
      offUnpub();
      for (const e of [...timers.values()]) e.stop('server stopping');
    });

    // ---------------------------------------------------------------------------- HTTP

    const jpegResponse = (b: Uint8Array, extra: Record<string, string> = {}) =>
      new Response(b as BodyInit, { status: 200, headers: { 'content-type': 'image/jpeg', 'content-length': String(b.length), 'cache-control': 'no-cache', ...extra } });

    ctx.http.get('/query', async (c) => {
      const url = new URL(c.req.url);
      const streamPath = (url.searchParams.get('streamPath') ?? '').replace(/^\/+|\/+$/g, '');
      const segs = streamPath.split('/');
      if (segs.length < 2 || streamPath.length > 256 || !segs.every((s) => s !== '.' && s !== '..' && SEGMENT.test(s))) {
        return ctx.fail(c, 400, 'streamPath must be a stream path like live/cam1');
      }
      const raw = url.searchParams.get('snapTime');
      const want = raw === null || raw === '' ? Date.now() / 1000 : Number(raw);
      if (!Number.isFinite(want)) return ctx.fail(c, 400, 'snapTime must be unix seconds');
      await ctx.engine.checkAccess('subscribe', streamPath, { protocol: ctx.name, ...requestAuth(c), config: ctx.config.subscribe, action: 'playback' });
      const dir = dirOf(streamPath);
      const times = (await rt.readDir(dir).catch(() => [] as string[]))
        .map((n) => /^(\d+)\.jpg$/.exec(n)).filter((m): m is RegExpExecArray => !!m).map((m) => Number(m[1])).sort((a, b) => a - b);
      if (!times.length) return ctx.fail(c, 404, `no saved snapshots of ${streamPath}`);
      let pick = times[0]!;
      for (const x of times) if (x <= want) pick = x;
      const bytes = await rt.readFile(`${dir}/${pick}.jpg`).catch(() => null);
      if (!bytes) return ctx.fail(c, 404, `snapshot ${pick} of ${streamPath} is gone`);
      return jpegResponse(bytes, { 'x-snap-time': String(pick) });
    });

    ctx.http.get('/*', async (c, next) => {
      const url = new URL(c.req.url);
      let p: string;
      try { p = decodeURIComponent(url.pathname); } catch { return ctx.fail(c, 400, 'bad URL encoding'); }
      const m = /^\/snap\/(.+?)(?:\.jpe?g)?$/i.exec(p);
      if (!m || m[1]!.startsWith('api/')) return next();
      const streamPath = m[1]!;
      const wRaw = url.searchParams.get('w');
      let width = 0;
      if (wRaw !== null && wRaw !== '') {
        width = Number(wRaw);
        if (!Number.isInteger(width) || width < 16 || width > MAX_WIDTH) return ctx.fail(c, 400, `w must be an integer 16..${MAX_WIDTH}`);
        width += width & 1; // mjpeg wants even sizes with yuv420
      }
      // The same gate as a player of the stream (stream args such as secret/expire pass through).
      const q = new URLSearchParams(url.search);
      q.delete('w');
      const qs = q.toString();
      await ctx.engine.checkAccess('subscribe', streamPath + (qs ? '?' + qs : ''), { protocol: ctx.name, ...requestAuth(c), config: ctx.config.subscribe });
      const stream = ctx.engine.getStream(streamPath);
      if (!stream || !stream.publisher) return ctx.fail(c, 404, `stream ${streamPath} is not publishing`);
      const f = latestKey(stream);
      if (!f) return ctx.fail(c, 404, `stream ${streamPath} has no video keyframe yet`);
      if (width && f.config.width && width >= f.config.width) width = 0;
      try {
        const jpeg = await jpegOf(f, width);
        return jpegResponse(jpeg, { 'x-snap-time': String(Math.floor(f.arrival / 1000)), 'x-snap-keyframe': String(f.seq) });
      } catch (err) {
        if (err instanceof EngineError) throw err;
        log.warn('snapshot failed', { stream: streamPath, error: err });
        return ctx.fail(c, 502, `snapshot failed: ${(err as Error)?.message ?? String(err)}`);
      }
    });
  },
});
