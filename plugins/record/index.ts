// The record plugin: records streams to fMP4 (default), MP4, FLV or HLS (TS segments + playlist) files,
// keeps an index of the segments and answers time-range queries over it. See docs/plugins/record.md.
//
//   onpub.record: { "regex": "filepath template" }      record a stream when it starts
//   POST /record/api/start/{streamPath}?type=&fragment=&filepath=   start one
//   POST /record/api/stop/{streamPath}                  stop it
//   GET  /record/api/list                               running recorders (the session registry, group `recorders`)
//   POST /record/api/stop/{id}                          stop one recorder by session id
//   GET  /record/api/list?streamPath=&start=&end=       indexed segments in a time range
//   GET  /record/api/stats                              counters (segments, bytes, drops, failures)
//
// One plugin for every format rather than a recorder inside flv/mp4/hls as Monibuca has: one index, one
// retention policy and one set of endpoints cover every format, and the formats' bytes come from
// src/format (shared with the live plugins) anyway.

import type { Context } from 'hono';
import { parseDuration, t } from '../../src/config/schema.ts';
import { EngineError } from '../../src/core/errors.ts';
import { FLV_TAG_HEADER_SIZE } from '../../src/format/flv.ts';
import { readFragmented } from '../../src/format/mp4-file.ts';
import { TsDemuxer, TS_PACKET_SIZE } from '../../src/format/ts.ts';
import type { Runtime } from '../../src/net/types.ts';
import { definePlugin, type SessionHandle } from '../../src/plugin.ts';
import { requestAuth } from '../../src/http/peer.ts';
import { extensionOf, RECORD_TYPES, type RecordType } from './formats.ts';
import { type AppendPoint, expandPath, finalizeMp4, playlistText, type RecordSettings, Recorder, type RecorderHost } from './recorder.ts';
import { type IndexEntry, SegmentIndex } from './store.ts';
import { rangeResponse, stitchMp4, vodPlaylist } from './playback.ts';
import { replay } from './vod.ts';
import { S3Client } from './s3.ts';

export default definePlugin({
  name: 'record',
  description: 'records streams to fMP4/MP4/FLV/HLS segment files with a time index',
  push: true,
  pull: true,
  needs: ['fs'],
  listquery: ['streamPath', 'start', 'end'],
  defaults: {
    /** fmp4 (crash-safe fragments, default), mp4 (front moov when a segment closes), flv, hls (TS + playlist). */
    type: t.str('fmp4', { enum: ['fmp4', 'mp4', 'flv', 'hls'] }),
    /** Segment path without extension: {streamPath}, {time} (UTC YYYYMMDDhhmmss), {unix} (ms). Relative to the config file. */
    filepath: t.str('record/{streamPath}/{time}'),
    /** Segment length: a new segment starts at the first keyframe after it. 0 = one file per recording. */
    fragment: t.dur('1h'),
    /** auto: onpub.record records the whole stream; event: it only keeps `beforeduration` in the ring and records around each event (POST /record/api/event/start). */
    mode: t.str('auto', { enum: ['auto', 'event'] }),
    /** Event recording: how much before the event to record (held in the stream's ring). */
    beforeduration: t.dur('30s'),
    /** Event recording: how long after the (last) event to keep recording. */
    afterduration: t.dur('30s'),
    /** Segment size limit in bytes (cut at the next keyframe); 0 = none. */
    maxsize: t.num(0, { min: 0, int: true }),
    /** Continue an existing fmp4/flv file of the same name instead of starting a new one (segments are then not cut). */
    append: false,
    /** Bytes waiting for the disk above which the recorder holds frames in the ring (no-skip). */
    writebuffer: t.num(8 << 20, { min: 64 * 1024, int: true }),
    /** Delete segments that ended more than this many days ago (fractions allowed); 0 = keep. */
    recordfileexpiredays: t.num(0, { min: 0 }),
    /** Delete the oldest segments while the disk holding them is fuller than this (percent); 0 = off. */
    diskmaxpercent: t.num(0, { min: 0, max: 100 }),
    /** How often retention runs (it also runs after each closed segment, at most once a second). */
    retentioninterval: t.dur('60s'),
    /**
     * Upload each closed segment to an S3-compatible store (path-style URLs, SigV4). Empty endpoint = off.
     * removelocal: delete the local file once uploaded (playback then reads from the store).
     */
    s3: {
      endpoint: t.str(''), region: t.str('us-east-1'), bucket: t.str(''), accesskey: t.str(''), secretkey: t.str(''),
      prefix: t.str(''), partsize: t.num(16 << 20, { min: 64 * 1024, int: true }), removelocal: false,
    },
    /** The segment index journal (JSON lines). Relative to the config file. */
    indexfile: t.str('record/index.jsonl'),
  },
  async setup(ctx) {
    const rt = ctx.runtime;
    const recorders = new Map<string, Recorder>();
    const handles = new Map<Recorder, SessionHandle<Recorder>>();
    ctx.sessions.declareGroups('recorders');
    const stats = { segments: 0, bytes: 0, behind: 0, framesDropped: 0, failures: 0, recovered: 0, deleted: 0, uploaded: 0, uploadFailures: 0 };
    const index = new SegmentIndex(rt, ctx.resolvePath(ctx.config.indexfile));
    const left = await index.load();
    for (const e of left) {
      try {
        const fixed = await recoverSegment(rt, e);
        if (fixed) { index.closed(fixed); stats.recovered++; ctx.logger.info(`recovered ${e.type} segment ${e.path} (${fixed.duration} ms) left open by a crash`, { stream: e.streamPath }); }
        else { index.removed(e.path); ctx.logger.warn(`segment ${e.path} left open by a crash holds nothing playable: forgotten`, { stream: e.streamPath }); }
      } catch (err) {
        ctx.logger.error(`could not recover segment ${e.path}`, { stream: e.streamPath, error: err });
      }
    }

    // ------------------------------------------------------------------ object storage (S3)

    const s3c = ctx.config.s3;
    const s3 = s3c.endpoint && s3c.bucket ? new S3Client(s3c) : null;
    let uploads: Promise<void> = Promise.resolve();
    /** Upload a closed segment (one at a time, in order); with removelocal the local copy goes after. */
    function upload(seg: IndexEntry): void {
      if (seg.type === 'hls' && !seg.path.endsWith('.ts')) return;
      const key = `${s3c.prefix}${seg.streamPath}/${seg.path.slice(seg.path.lastIndexOf('/') + 1)}`;
      uploads = uploads.then(async () => {
        try {
          const data = await rt.readFile(seg.path);
          const { parts } = await s3!.put(key, data, seg.type === 'hls' ? 'video/mp2t' : seg.type === 'flv' ? 'video/x-flv' : 'video/mp4');
          const e = index.get(seg.path);
          if (e) index.closed({ ...e, s3object: key });
          stats.uploaded++;
          ctx.logger.info(`uploaded ${seg.path} to s3://${s3c.bucket}/${key}${parts > 1 ? ` in ${parts} parts` : ''}`, { stream: seg.streamPath });
          if (s3c.removelocal) await rt.remove(seg.path);
        } catch (err) {
          stats.uploadFailures++;
          ctx.logger.error(`upload of ${seg.path} failed (the local copy stays)`, { stream: seg.streamPath, error: err });
        }
      });
    }
    /** A segment's bytes: the local file, else its copy in the object store. */
    const readSegment = async (path: string): Promise<Uint8Array> => {
      try { return await rt.readFile(path); } catch (err) {
        const e = index.get(path);
        if (s3 && e?.s3object) return s3.get(e.s3object);
        throw err;
      }
    };

    const host: RecorderHost = {
      runtime: rt,
      logger: ctx.logger,
      resolvePath: (p) => ctx.resolvePath(p),
      segmentOpened: (seg) => index.opened(seg),
      segmentClosed: (seg) => {
        stats.segments++;
        stats.bytes += seg.size;
        index.closed(seg);
        retentionSoon();
        if (s3) upload(seg);
      },
      behind: (rec, frames) => {
        stats.behind++;
        stats.framesDropped += frames;
        ctx.logger.warn(`recorder of ${rec.streamPath} fell behind (the disk does not keep up): ${frames} frames lost`, { stream: rec.streamPath, frames });
      },
      ended: (rec, reason, error) => {
        if (recorders.get(keyOf(rec.streamPath, rec.settings.type)) === rec) recorders.delete(keyOf(rec.streamPath, rec.settings.type));
        handles.get(rec)?.remove(reason);
        handles.delete(rec);
        if (error) stats.failures++;
        ctx.logger.info(`recording of ${rec.streamPath} ended: ${reason}`, { stream: rec.streamPath, segments: rec.segments, bytes: rec.bytes });
      },
    };

    const settingsFor = (over: Partial<Record<'type' | 'filepath' | 'fragment' | 'maxsize' | 'append', string>>): RecordSettings => {
      const c = ctx.config;
      const type = (over.type || c.type) as RecordType;
      if (!RECORD_TYPES.includes(type)) throw new EngineError('BadArgument', `type must be one of ${RECORD_TYPES.join(', ')}`);
      const fragment = over.fragment ? parseDuration(over.fragment) : c.fragment;
      if (fragment === undefined || fragment < 0) throw new EngineError('BadArgument', `fragment: not a duration: ${over.fragment}`);
      const maxsize = over.maxsize ? Number(over.maxsize) : c.maxsize;
      const append = over.append !== undefined ? over.append === 'true' || over.append === '1' : c.append;
      return { type, filepath: over.filepath || c.filepath, fragment, maxsize, writebuffer: c.writebuffer, append };
    };

    /**
     * A `filepath` given to the API must stay under the folder of the configured `filepath` (its part
     * before the first placeholder): the API must not make the server write, replace or delete files
     * elsewhere. `..` segments are refused.
     */
    function checkApiPath(template: string): void {
      const norm = (x: string) => x.replace(/\\/g, '/');
      if (norm(template).split('/').includes('..')) throw new EngineError('Forbidden', 'filepath must not contain ".."');
      const conf = norm(ctx.config.filepath);
      const cut = conf.search(/[{$]/);
      const prefix = cut < 0 ? conf : conf.slice(0, cut);
      const rootDir = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/') + 1) : '';
      const root = norm(ctx.resolvePath(rootDir || '.')).replace(/\/?$/, '/');
      const want = norm(ctx.resolvePath(template));
      if (!want.startsWith(root)) throw new EngineError('Forbidden', `filepath from the API must be under ${root} (the folder of record.filepath)`);
    }

    /** The end of an existing file a recording with `append` continues (a torn tail is cut first). */
    async function appendPoint(streamPath: string, s: RecordSettings): Promise<AppendPoint | undefined> {
      if (s.type !== 'fmp4' && s.type !== 'flv') {
        ctx.logger.warn(`append is not supported for ${s.type} recordings: new files are written`, { stream: streamPath });
        return undefined;
      }
      const path = ctx.resolvePath(expandPath(s.filepath, streamPath, Date.now()) + extensionOf(s.type));
      if (!(await rt.stat(path))?.isFile) return undefined;
      const b = await rt.readFile(path);
      let p: AppendPoint;
      if (s.type === 'fmp4') {
        const f = readFragmented(b);
        if (!f.samples.length || !f.initEnd) return undefined;
        p = { path, endMs: durationOf(f), size: f.validEnd, init: b.slice(0, f.initEnd), seq: (f.fragments ?? 0) + 1 };
      } else {
        const r = scanFlv(b);
        if (r.end === 0) return undefined;
        p = { path, endMs: r.lastMs, size: r.end };
      }
      if (p.size < b.length) await rt.writeFile(path, b.subarray(0, p.size)); // cut a torn tail first
      return p;
    }

    async function startRecorder(streamPath: string, settings: RecordSettings): Promise<Recorder> {
      const key = keyOf(streamPath, settings.type);
      const old = recorders.get(key);
      if (old && old.state === 'recording') throw new EngineError('BadArgument', `${streamPath} is already being recorded as ${settings.type} (recorder ${old.id})`);
      const rec = new Recorder(streamPath, settings, host);
      if (settings.append) rec.appendPoint = await appendPoint(streamPath, settings);
      recorders.set(key, rec);
      handles.set(rec, ctx.sessions.add({
        kind: 'recorder', group: 'recorders', streamPath, ref: rec, stop: (reason) => { void rec.stop(reason); }, info: () => rec.info(),
      }));
      try {
        await ctx.subscribe(streamPath, { sink: rec, type: 'record', config: { ...ctx.config.subscribe, submode: 'noskip' } });
      } catch (err) {
        recorders.delete(key);
        handles.get(rec)?.remove('could not subscribe');
        handles.delete(rec);
        throw err;
      }
      ctx.logger.info(`recording ${streamPath} as ${settings.type}`, { stream: streamPath, filepath: settings.filepath, fragment: settings.fragment });
      return rec;
    }

    // Time-shift: onsub.pull `"vod/(.+)": "$1"` replays $1's fMP4 recordings from ?start= to ?end=.
    ctx.registerPuller(async ({ streamPath, url, args }) => {
      const start = args.start ? parseTime(args.start) : -Infinity;
      const end = args.end ? parseTime(args.end) : Infinity;
      if (Number.isNaN(start) || Number.isNaN(end)) throw new EngineError('BadArgument', 'vod: start/end must be times');
      const entries = index.query(url, start, end).filter((e) => e.type === 'fmp4');
      if (!entries.length) throw new EngineError('NotFound', `no fMP4 recording of ${url} in that range`);
      const speed = ctx.config.publish.speed > 0 ? ctx.config.publish.speed : 1;
      const pub = await ctx.publish(streamPath, { type: 'vod', config: { ...ctx.config.publish, speed } });
      const h = ctx.sessions.add({ kind: 'vod', group: 'vods', streamPath, stop: (r) => pub.stop(r), info: () => ({ source: url, start, end, speed }) });
      ctx.sessions.declareGroups('vods');
      void replay(readSegment, pub, entries, start, end).then(
        async (n) => {
          ctx.logger.info(`vod ${streamPath} ended: ${n} frames replayed`, { stream: streamPath });
          // The recording is over: end the stream (players must not wait for a publisher that will not
          // return), once the viewers had a moment to take the last frames.
          await new Promise((r) => setTimeout(r, 300));
          pub.close('end of the recording');
          if (!ctx.engine.getStream(streamPath)?.publisher) ctx.engine.stopStream(streamPath, 'end of the recording');
        },
        (err) => { ctx.logger.error(`vod ${streamPath} failed`, { stream: streamPath, error: err }); pub.close('vod failed'); },
      ).finally(() => h.remove('ended'));
    });

    const eventPaths = new Map<string, string>(); // streamPath -> filepath template (mode: event)
    ctx.registerRecorder(async ({ streamPath, target }) => {
      if (ctx.config.mode === 'event') {
        // Keep `beforeduration` of the stream in its ring for the events to come: a buffer-mode
        // subscriber that takes nothing pins the ring's history (Stream keeps what buffer subscribers need).
        eventPaths.set(streamPath, target);
        await ctx.subscribe(streamPath, {
          type: 'api', counted: false, sink: { frame: () => 0, flush: () => true, close: () => { eventPaths.delete(streamPath); } },
          config: { ...ctx.config.subscribe, submode: 'buffer', buffertime: ctx.config.beforeduration },
        });
        ctx.logger.info(`event recording armed for ${streamPath} (${ctx.config.beforeduration} ms kept before an event)`, { stream: streamPath });
        return;
      }
      // From the stream's first keyframe (as far back as the ring holds).
      await startRecorder(streamPath, { ...settingsFor({ filepath: target }), history: Infinity });
    });

    ctx.http.post('/api/event/start/*', async (c) => {
      const streamPath = decodeURIComponent(new URL(c.req.url).pathname.replace(/^\/record\/api\/event\/start\//, ''));
      const q = c.req.query();
      const stream = ctx.engine.getStream(streamPath);
      if (!stream?.publisher) return ctx.fail(c, 404, `${streamPath} is not being published`);
      const before = q.beforeduration ? parseDuration(q.beforeduration) : ctx.config.beforeduration;
      const after = q.afterduration ? parseDuration(q.afterduration) : ctx.config.afterduration;
      if (before === undefined || after === undefined) return ctx.fail(c, 400, 'beforeduration/afterduration: durations');
      let nowSec = 0;
      for (const t of stream.tracks) if (Number.isFinite(t.lastDts)) nowSec = Math.max(nowSec, t.lastDts / t.clockRate);
      const stopAtSec = nowSec + after / 1000;
      try {
        if (q.filepath) checkApiPath(q.filepath);
        const settings = settingsFor({ ...q, filepath: q.filepath || eventPaths.get(streamPath) || undefined });
        const running = recorders.get(keyOf(streamPath, settings.type));
        if (running?.state === 'recording' && running.settings.stopAtSec !== undefined) {
          running.settings.stopAtSec = Math.max(running.settings.stopAtSec, stopAtSec); // a new event extends it
          return ctx.ok(c, { ...running.info(), extended: true });
        }
        const rec = await startRecorder(streamPath, { ...settings, fragment: 0, history: before, stopAtSec, event: q.eventname || 'event' });
        return ctx.ok(c, rec.info());
      } catch (err) { return fail(c, err); }
    });

    // ------------------------------------------------------------------ retention (oldest first)

    let retaining: Promise<void> | null = null;
    let retentionTimer: ReturnType<typeof setTimeout> | undefined;
    const retentionSoon = () => { retentionTimer ??= setTimeout(() => { retentionTimer = undefined; void runRetention(); }, 1000); };
    const runRetention = (): Promise<void> => (retaining ??= retention().finally(() => { retaining = null; }));
    async function retention(): Promise<void> {
      const c = ctx.config;
      if (!(c.recordfileexpiredays > 0) && !(c.diskmaxpercent > 0)) return;
      const drop = async (e: IndexEntry, why: string) => {
        try { await rt.remove(e.path); } catch { /* already gone */ }
        index.removed(e.path);
        stats.deleted++;
        ctx.logger.info(`retention deleted ${e.path} (${why})`, { stream: e.streamPath });
      };
      const list = index.oldestFirst();
      let i = 0;
      if (c.recordfileexpiredays > 0) {
        const cutoff = Date.now() - c.recordfileexpiredays * 86_400_000;
        for (; i < list.length && list[i]!.end < cutoff; i++) await drop(list[i]!, `older than ${c.recordfileexpiredays} days`);
      }
      if (c.diskmaxpercent > 0 && rt.diskUsage) {
        for (; i < list.length; i++) {
          const u = await rt.diskUsage(dirname(list[i]!.path));
          if (!u || !(u.total > 0)) break;
          const used = ((u.total - u.free) * 100) / u.total;
          if (used <= c.diskmaxpercent) break;
          await drop(list[i]!, `disk ${used.toFixed(1)}% full > diskmaxpercent ${c.diskmaxpercent}`);
        }
      }
    }
    const retentionTick = setInterval(() => void runRetention(), Math.max(1000, ctx.config.retentioninterval));
    void runRetention();

    ctx.http.post('/api/retention', async (c) => {
      const before = stats.deleted;
      await runRetention();
      await runRetention();
      await index.flushed();
      return ctx.ok(c, { deleted: stats.deleted - before });
    });

    ctx.onStop(async () => {
      await uploads;
      clearInterval(retentionTick);
      clearTimeout(retentionTimer);
      await retaining;
      await Promise.all([...recorders.values()].map((r) => r.stop('server shutting down')));
      await index.flushed();
    });

    const fail = (c: Context, err: unknown) => {
      if (err instanceof EngineError) return ctx.fail(c, err.httpStatus, err.message);
      return ctx.fail(c, 500, (err as Error)?.message ?? String(err));
    };

    ctx.http.post('/api/start/*', async (c) => {
      const streamPath = decodeURIComponent(new URL(c.req.url).pathname.replace(/^\/record\/api\/start\//, ''));
      const q = c.req.query();
      try {
        if (q.filepath) checkApiPath(q.filepath);
        const rec = await startRecorder(streamPath, settingsFor(q));
        return ctx.ok(c, rec.info());
      } catch (err) { return fail(c, err); }
    });

    ctx.http.post('/api/stop/*', async (c) => {
      const streamPath = decodeURIComponent(new URL(c.req.url).pathname.replace(/^\/record\/api\/stop\//, ''));
      const type = c.req.query('type');
      const recs = [...recorders.values()].filter((r) => r.streamPath === streamPath && (!type || r.settings.type === type));
      if (!recs.length) return ctx.fail(c, 404, `${streamPath} is not being recorded${type ? ' as ' + type : ''}`);
      await Promise.all(recs.map((r) => r.stop('stopped by the API')));
      await index.flushed();
      return ctx.ok(c, recs.map((r) => r.info()));
    });


    ctx.http.get('/api/stats', (c) => ctx.ok(c, { ...stats, recording: recorders.size }));

    // Prometheus text (until plugins can add to /api/metrics).
    ctx.http.get('/api/metrics', (c) => {
      const m = (name: string, type: string, help: string, v: number) => `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${name} ${v}\n`;
      return c.text(
        m('m7s_record_recorders', 'gauge', 'Recorders running.', recorders.size) +
        m('m7s_record_segments_total', 'counter', 'Segments closed since start.', stats.segments) +
        m('m7s_record_bytes_total', 'counter', 'Bytes in closed segments since start.', stats.bytes) +
        m('m7s_record_behind_total', 'counter', 'Times a recorder fell behind its stream (the disk did not keep up) and lost frames.', stats.behind) +
        m('m7s_record_frames_dropped_total', 'counter', 'Frames recorders lost falling behind.', stats.framesDropped) +
        m('m7s_record_failures_total', 'counter', 'Recordings stopped by a write error (disk full, I/O error).', stats.failures) +
        m('m7s_record_recovered_total', 'counter', 'Segments left open by a crash and repaired at start.', stats.recovered) +
        m('m7s_record_deleted_total', 'counter', 'Segments deleted by retention.', stats.deleted) +
        m('m7s_record_uploaded_total', 'counter', 'Segments uploaded to the S3 store.', stats.uploaded) +
        m('m7s_record_upload_failures_total', 'counter', 'Segment uploads that failed (the local copy stays).', stats.uploadFailures),
        200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
    });

    // ------------------------------------------------------------------ playback

    // Recordings are played with the `playback` permission (docs/permissions.md) on the stream's path.
    const allowPlayback = (c: Context, streamPath: string) => ctx.engine.checkAccess('subscribe', streamPath + new URL(c.req.url).search,
      { protocol: ctx.name, type: 'server', ...requestAuth(c), action: 'playback', config: ctx.config.subscribe });

    const range = (c: Context) => {
      const q = c.req.query();
      const start = q.start ? parseTime(q.start) : -Infinity;
      const end = q.end ? parseTime(q.end) : Infinity;
      return Number.isNaN(start) || Number.isNaN(end) ? null : { start, end };
    };

    ctx.http.on(['GET', 'HEAD'], '/download/*', async (c) => {
      const m = /^\/record\/download\/(.+)\.mp4$/.exec(decodeURIComponent(new URL(c.req.url).pathname));
      if (!m) return ctx.fail(c, 404, 'use /record/download/{streamPath}.mp4?start=&end=');
      const r = range(c);
      if (!r) return ctx.fail(c, 400, 'start/end: ms since epoch, seconds since epoch or an ISO date');
      await allowPlayback(c, m[1]!);
      const v = await stitchMp4(readSegment, index.query(m[1]!, r.start, r.end), r.start, r.end);
      if (!v) return ctx.fail(c, 404, `no fMP4 recording of ${m[1]} in that range`);
      const name = m[1]!.replace(/\//g, '_');
      return rangeResponse(readSegment, v, c.req.header('range'), 'video/mp4', c.req.method === 'HEAD',
        { 'content-disposition': `attachment; filename="${name}.mp4"`, 'x-duration-ms': String(Math.round(v.durationMs)) });
    });

    const segUrl = (e: IndexEntry) => `/record/file/${e.streamPath}/${e.type}/${e.start}${e.type === 'hls' ? '.ts' : e.type === 'flv' ? '.flv' : '.mp4'}`;

    ctx.http.get('/vod/*', async (c) => {
      const m = /^\/record\/vod\/(.+)\.m3u8$/.exec(decodeURIComponent(new URL(c.req.url).pathname));
      if (!m) return ctx.fail(c, 404, 'use /record/vod/{streamPath}.m3u8?start=&end=');
      const r = range(c);
      if (!r) return ctx.fail(c, 400, 'start/end: ms since epoch, seconds since epoch or an ISO date');
      await allowPlayback(c, m[1]!);
      const type = c.req.query('type');
      const list = index.query(m[1]!, r.start, r.end).filter((e) => !e.open && (!type || e.type === type));
      if (!list.some((e) => e.type === 'hls' || (e.type === 'fmp4' && e.init))) return ctx.fail(c, 404, `no HLS or fMP4 recording of ${m[1]} in that range`);
      // The request's own args (credentials, stream key) go on every segment URL, so segments pass the gate too.
      const q = new URL(c.req.url).searchParams;
      for (const k of ['start', 'end', 'type']) q.delete(k);
      const qs = q.toString();
      return c.body(vodPlaylist(list, (e) => segUrl(e) + (qs ? '?' + qs : '')), 200, { 'content-type': 'application/vnd.apple.mpegurl', 'cache-control': 'no-cache' });
    });

    ctx.http.on(['GET', 'HEAD'], '/file/*', async (c) => {
      const m = /^\/record\/file\/(.+)\/(fmp4|mp4|flv|hls)\/(\d+)\.(ts|mp4|flv)$/.exec(decodeURIComponent(new URL(c.req.url).pathname));
      const e = m ? index.query(m[1]!, Number(m[3]), Number(m[3])).find((x) => x.start === Number(m[3]) && x.type === m[2]) : undefined;
      if (m) await allowPlayback(c, m[1]!);
      if (!e) return ctx.fail(c, 404, 'no such recorded segment');
      const st = await rt.stat(e.path);
      const size = st?.size ?? (e.s3object && s3 ? e.size : -1);
      if (size < 0) return ctx.fail(c, 404, `segment file ${e.path} is gone`);
      const type = e.type === 'hls' ? 'video/mp2t' : e.type === 'flv' ? 'video/x-flv' : 'video/mp4';
      return rangeResponse(readSegment, { head: new Uint8Array(0), pieces: [{ path: e.path, offset: 0, size }], size, durationMs: e.duration },
        c.req.header('range'), type, c.req.method === 'HEAD');
    });

    ctx.http.get('/api/list', (c) => {
      const q = c.req.query();
      const start = q.start ? parseTime(q.start) : -Infinity;
      const end = q.end ? parseTime(q.end) : Infinity;
      if (Number.isNaN(start) || Number.isNaN(end)) return ctx.fail(c, 400, 'start/end: ms since epoch, seconds since epoch or an ISO date');
      const paths = q.streamPath ? [q.streamPath] : index.streams();
      const out = paths.flatMap((p) => index.query(p, start, end));
      return ctx.ok(c, out);
    });

  },
});

const keyOf = (streamPath: string, type: string) => `${streamPath}\0${type}`;

/** ms since epoch from ms, seconds (10 digits or fewer) or an ISO date. */
export function parseTime(s: string): number {
  if (/^\d+(\.\d+)?$/.test(s)) {
    const n = Number(s);
    return n < 1e11 ? n * 1000 : n;
  }
  const d = Date.parse(s);
  return Number.isFinite(d) ? d : NaN;
}

function dirname(p: string): string {
  const i = p.lastIndexOf('/');
  return i > 0 ? p.slice(0, i) : '.';
}

/**
 * A segment a crash left open: make it playable up to its last whole fragment / tag / packet and measure
 * it. MP4: the `.part` fragments become the MP4 (front moov). Returns null when nothing playable is left.
 */
export async function recoverSegment(rt: Runtime, e: IndexEntry): Promise<IndexEntry | null> {
  const out: IndexEntry = { ...e };
  delete out.open;
  if (e.type === 'mp4') {
    if (await rt.stat(e.path + '.part')) {
      const part = await rt.readFile(e.path + '.part');
      const f = readFragmented(part);
      if (!f.samples.length) { await rt.remove(e.path + '.part'); return null; }
      out.duration = durationOf(f);
      out.size = await finalizeMp4(rt, e.path);
    } else {
      const st = await rt.stat(e.path);
      if (!st) return null;
      out.size = st.size;
      out.duration = e.duration; // finalized, but the crash came before its close was journaled
    }
  } else {
    const st = await rt.stat(e.path);
    if (!st) return null;
    const b = await rt.readFile(e.path);
    let valid = b.length;
    if (e.type === 'fmp4') {
      const f = readFragmented(b);
      if (!f.samples.length) return null;
      valid = f.validEnd;
      out.duration = durationOf(f);
    } else if (e.type === 'flv') {
      const r = scanFlv(b);
      valid = r.end;
      out.duration = r.lastMs;
    } else {
      valid = b.length - (b.length % TS_PACKET_SIZE);
      let first = Infinity, last = -Infinity;
      const d = new TsDemuxer((u) => { if (u.dts < first) first = u.dts; if (u.dts > last) last = u.dts; });
      d.push(b.subarray(0, valid));
      d.end();
      out.duration = last > first ? Math.round((last - first) / 90) : 0;
      if (e.playlist) {
        let text = '';
        try { text = await rt.readTextFile(e.playlist); } catch { /* none yet */ }
        const entries = [...text.matchAll(/#EXTINF:([\d.]+),\s*\n(\S+)/g)].map((m) => ({ dur: Number(m[1]), name: m[2]! }));
        const name = e.path.slice(e.path.lastIndexOf('/') + 1);
        if (!entries.some((x) => x.name === name)) entries.push({ name, dur: out.duration / 1000 });
        await rt.writeFile(e.playlist, playlistText(entries, true));
      }
    }
    if (valid < b.length) await rt.writeFile(e.path, b.subarray(0, valid)); // drop the torn tail
    out.size = valid;
  }
  out.end = out.start + out.duration;
  return out;
}

function durationOf(f: ReturnType<typeof readFragmented>): number {
  let ms = 0;
  for (const t of f.tracks) {
    const s = f.samples.filter((x) => x.trackId === t.id);
    if (!s.length) continue;
    const last = s[s.length - 1]!;
    ms = Math.max(ms, ((last.dts + last.duration - s[0]!.dts) * 1000) / t.timescale);
  }
  return Math.round(ms);
}

/** Whole tags of an FLV file: where they end and the last timestamp. */
export function scanFlv(b: Uint8Array): { end: number; lastMs: number } {
  if (b.length < 13 || b[0] !== 0x46 || b[1] !== 0x4c || b[2] !== 0x56) return { end: 0, lastMs: 0 };
  let p = 13, end = 13, lastMs = 0;
  while (p + FLV_TAG_HEADER_SIZE + 4 <= b.length) {
    const size = (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!;
    const ts = ((b[p + 7]! << 24) | (b[p + 4]! << 16) | (b[p + 5]! << 8) | b[p + 6]!) >>> 0;
    const next = p + FLV_TAG_HEADER_SIZE + size + 4;
    if (next > b.length) break;
    if (b[p] === 8 || b[p] === 9) lastMs = Math.max(lastMs, ts);
    p = end = next;
  }
  return { end, lastMs };
}
