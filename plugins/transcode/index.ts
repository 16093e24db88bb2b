// The transcode plugin: renditions of live streams through a supervised ffmpeg. See docs/plugins/transcode.md.
//
//   onpub.transform: { "live/.*": "480p 360p" }   a stream matching starts one job per named profile,
//                                                 each publishing {streamPath}/{profile} (live/x/480p)
//   GET  /transcode/api/list                      jobs with state, pid, restarts, cpuPercent, speed (ctx.sessions)
//   POST /transcode/api/stop/:id                  stop a job (ctx.sessions)
//   POST /transcode/api/launch {streamPath, profile}   start a job by hand (the source must be publishing)
//
// A job: the source is subscribed with the FLV player's sink and written to ffmpeg's stdin (-f flv -i
// pipe:0); ffmpeg writes FLV to stdout, which the FLV demuxer + ingest (plugins/flv/feed.ts) publish as
// the rendition. ffmpeg exiting or crashing while the source still publishes restarts the job after a
// backoff (retryinterval, doubling to retrymax); the rendition stream keeps its viewers meanwhile (they
// wait for the next publisher up to their waittimeout). Output that is not FLV (FormatError) ends the
// job with that error and no restart; nothing else is touched. The job ends with its source.

import { definePlugin, EngineError, FormatError, t, type Publisher, type Stream, type Subscriber } from '../../src/plugin.ts';
import type { ByteSink } from '../../src/net/body.ts';
import type { ChildProcess } from '../../src/net/types.ts';
import { FlvFeed } from '../flv/feed.ts';
import { FlvPlaySink } from '../flv/play.ts';
import { checkFfmpeg, cpuSeconds, parseProgress } from '../ffmpeg/ffmpeg.ts';

/** The profile keys (a section of `profiles`). */
const profileSchema = t.section({
  /** Output size; 0 for one of them keeps the aspect ratio (rounded to even), 0 for both keeps the size. */
  width: t.num(0, { min: 0, max: 8192, int: true }),
  height: t.num(0, { min: 0, max: 8192, int: true }),
  /** Video bitrate (ffmpeg syntax, "800k"); empty = the encoder's default (CRF). */
  videobitrate: t.str(''),
  /** ffmpeg video encoder: libx264, libx265, libvpx… ("copy" passes the video through). */
  videocodec: t.str('libx264'),
  /** Encoder preset (libx264/libx265); empty = none. */
  preset: t.str('veryfast'),
  /** Output frame rate; 0 = the source's. */
  fps: t.num(0, { min: 0, max: 240 }),
  /**
   * Where keyframes go: `source` = at the source's keyframes (every rendition of a stream then has its
   * keyframes at the same times, so HLS segments line up across renditions); `gop` = every `gop` frames.
   */
  keyframes: t.str('source', { enum: ['source', 'gop'] }),
  gop: t.num(50, { min: 1, int: true }),
  /** Audio: `copy` (as published), `aac` (re-encode at audiobitrate) or `none`. */
  audio: t.str('copy', { enum: ['copy', 'aac', 'none'] }),
  audiobitrate: t.str('64k'),
  /** Extra ffmpeg output options, split on spaces ("-tune zerolatency -profile:v baseline"). */
  args: t.str(''),
});

const DEFAULT_PROFILES = {
  '720p': { height: 720, videobitrate: '2000k' },
  '480p': { height: 480, videobitrate: '1000k' },
  '360p': { height: 360, videobitrate: '600k' },
};

type Profile = { width: number; height: number; videobitrate: string; videocodec: string; preset: string; fps: number; keyframes: string; gop: number; audio: string; audiobitrate: string; args: string };

/** ffmpeg's arguments for a profile: FLV in on stdin, FLV out on stdout, progress on stderr. */
export function ffmpegArgs(p: Profile): string[] {
  const a = ['-hide_banner', '-loglevel', 'error', '-nostats', '-progress', 'pipe:2', '-f', 'flv', '-i', 'pipe:0', '-copyts', '-map', '0:v:0?', '-map', '0:a:0?'];
  if (p.videocodec === 'copy') {
    a.push('-c:v', 'copy');
  } else {
    a.push('-c:v', p.videocodec);
    if (p.preset) a.push('-preset', p.preset);
    const vf: string[] = [];
    if (p.width || p.height) vf.push(`scale=${p.width || -2}:${p.height || -2}`);
    if (p.fps) vf.push(`fps=${p.fps}`);
    if (vf.length) a.push('-vf', vf.join(','));
    if (p.videobitrate) a.push('-b:v', p.videobitrate, '-maxrate', p.videobitrate, '-bufsize', p.videobitrate);
    // The encoder keeps the input's millisecond time base (not 1/fps): with -copyts every frame keeps
    // its source time exactly, so a rendition's keyframes sit at the source's keyframe times.
    a.push('-pix_fmt', 'yuv420p', '-bf', '0', '-enc_time_base:v', '-1');
    if (p.keyframes === 'source') a.push('-force_key_frames', 'source', '-g', '600', '-sc_threshold', '0');
    else a.push('-g', String(p.gop), '-keyint_min', String(p.gop), '-sc_threshold', '0');
  }
  if (p.audio === 'none') a.push('-an');
  else if (p.audio === 'aac') a.push('-c:a', 'aac', '-b:a', p.audiobitrate);
  else a.push('-c:a', 'copy');
  if (p.args.trim()) a.push(...p.args.trim().split(/\s+/));
  a.push('-flvflags', 'no_duration_filesize', '-f', 'flv', 'pipe:1');
  return a;
}

/** A ByteSink on a child's stdin: what the FLV player sink writes the source into. */
class StdinSink implements ByteSink {
  onDrain: (() => void) | null = null;
  onClose: ((err?: Error) => void) | null = null;
  closed = false;
  private pending = 0;
  private waiting = false;
  constructor(private readonly child: ChildProcess) {}
  get buffered(): number { return this.pending; }
  write(chunk: Uint8Array): boolean {
    if (this.closed) return false;
    const ok = this.child.write(chunk);
    if (!ok) {
      this.pending += chunk.length;
      if (!this.waiting) {
        this.waiting = true;
        void this.child.drain().then(() => {
          this.waiting = false;
          this.pending = 0;
          if (!this.closed) this.onDrain?.();
        });
      }
    }
    return ok;
  }
  writev(chunks: Uint8Array[]): boolean {
    let ok = true;
    for (const c of chunks) ok = this.write(c) && ok;
    return ok;
  }
  end(): void { this.finish(); this.child.endInput(); }
  /** The child is gone: writes are dropped, the subscriber is told. */
  finish(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    const cb = this.onClose;
    this.onClose = null;
    this.onDrain = null;
    try { cb?.(err); } catch { /* the subscriber is closing anyway */ }
  }
}

type JobState = 'starting' | 'running' | 'backoff' | 'error' | 'stopped';

export default definePlugin({
  name: 'transcode',
  description: 'Renditions of live streams through a supervised ffmpeg (FLV in on stdin, FLV out on stdout)',
  needs: ['proc'],
  push: true,
  defaults: {
    /** ffmpeg program: a name looked up on PATH or a path. */
    ffmpeg: t.str('ffmpeg'),
    /** Most transcodes running at once; a job over the cap is refused (logged, counted in the listing). */
    maxjobs: t.num(4, { min: 1, max: 1000, int: true }),
    /** First restart delay after ffmpeg exits while the source publishes; doubles per quick failure up to retrymax. */
    retryinterval: t.dur('1s'),
    retrymax: t.dur('30s'),
    /** On demand: start a job only when a viewer asks for a rendition (live/x/480p), stop it after idletimeout without viewers. */
    ondemand: false,
    idletimeout: t.dur('30s'),
    /** Largest FLV tag accepted from ffmpeg. */
    maxtagsize: t.num(8 * 1024 * 1024, { min: 1024, max: 0xffffff, int: true }),
    /** Output profiles by name; onpub.transform values name them. */
    profiles: t.map(profileSchema, DEFAULT_PROFILES),
  },
  async setup(ctx) {
    const log = ctx.logger;
    const version = await checkFfmpeg(ctx, ctx.config.ffmpeg);
    log.info('ffmpeg found', { ffmpeg: ctx.config.ffmpeg, version });
    ctx.sessions.declareGroups('jobs');
    let refused = 0;
    let shuttingDown = false;

    class Job {
      state: JobState = 'starting';
      restarts = 0;
      lastError = '';
      pid = 0;
      cpuPercent = 0;
      cpuTotal = 0;
      speed: number | undefined;
      fps: number | undefined;
      runStart = 0;
      private failures = 0;
      private child: ChildProcess | null = null;
      private sub: Subscriber | null = null;
      private pub: Publisher | null = null;
      private timer: ReturnType<typeof setTimeout> | undefined;
      private stopped = false;
      private lastCpu: { at: number; sec: number } | undefined;
      lastViewer = Date.now();
      readonly done: Promise<void>;
      private resolveDone!: () => void;

      constructor(readonly source: string, readonly profileName: string, readonly target: string, readonly profile: Profile) {
        this.done = new Promise((r) => { this.resolveDone = r; });
      }

      info(): Record<string, unknown> {
        return {
          source: this.source, profile: this.profileName, target: this.target, state: this.state, pid: this.pid || undefined,
          restarts: this.restarts, cpuPercent: Math.round(this.cpuPercent * 10) / 10, cpuSeconds: Math.round(this.cpuTotal * 100) / 100,
          speed: this.speed, fps: this.fps, lastError: this.lastError || undefined,
        };
      }

      start(): void { void this.attempt(); }

      private async attempt(): Promise<void> {
        if (this.stopped) return;
        this.state = 'starting';
        this.speed = this.fps = undefined;
        this.cpuPercent = 0;
        this.lastCpu = undefined;
        let garbage = '';
        let child: ChildProcess;
        try {
          child = await ctx.spawn(ctx.config.ffmpeg, ffmpegArgs(this.profile), { what: `transcode ${this.source} → ${this.target}` });
        } catch (err) {
          this.fail(`cannot start ffmpeg: ${(err as Error).message}`);
          return;
        }
        if (this.stopped) { child.kill('SIGKILL'); return; }
        this.child = child;
        this.pid = child.pid;
        this.runStart = Date.now();
        let errText = '';
        child.onStderr((c) => {
          errText = (errText + new TextDecoder().decode(c)).slice(-4096);
          const p = parseProgress(errText);
          if (p.speed !== undefined) this.speed = p.speed;
          if (p.fps !== undefined) this.fps = p.fps;
        });
        const stdin = new StdinSink(child);
        let feed: FlvFeed | null = null;
        try {
          this.pub = await ctx.publish(this.target, { type: 'transform' });
          const pub = this.pub;
          // ffmpeg keeps the source's timestamps (-copyts): the rendition shares the source's timeline.
          pub.keepSourceTime = true;
          pub.onStop = (reason) => { this.stop(`rendition stopped: ${reason}`); };
          feed = new FlvFeed(pub, { maxTagSize: ctx.config.maxtagsize, warn: (m) => log.warn(m, { stream: this.target }) });
          const f = feed;
          child.onStdout((c) => {
            if (garbage) return;
            try {
              f.push(c);
            } catch (err) {
              garbage = (err as Error)?.message ?? String(err);
              child.kill('SIGKILL');
            }
          });
          const sink = new FlvPlaySink(stdin);
          this.sub = await ctx.subscribe(this.source, { type: 'transform', sink, counted: false });
        } catch (err) {
          child.kill('SIGKILL');
          await child.exited;
          this.cleanup(`setup failed: ${(err as Error)?.message ?? String(err)}`);
          if (err instanceof EngineError && (err.code === 'DuplicatePublish' || err.code === 'Forbidden' || err.code === 'Unauthorized' || err.code === 'BadPath')) {
            this.fail(`${(err as Error).message}`, false);
          } else {
            this.fail(`${(err as Error).message}`);
          }
          return;
        }
        this.state = 'running';
        const ex = await child.exited;
        stdin.finish();
        this.child = null;
        const ran = Date.now() - this.runStart;
        const how = ex.signal ? `killed by ${ex.signal}` : `exit ${ex.code}`;
        const lastLine = errText.split(/[\r\n]+/).filter((l) => l && !/^[a-z_]+=/.test(l)).slice(-1)[0] ?? '';
        if (garbage) {
          this.cleanup(`bad FLV from ffmpeg: ${garbage}`);
          this.fail(`bad FLV from ffmpeg: ${garbage}`, false);
          return;
        }
        this.cleanup(`ffmpeg ${how}`);
        if (this.stopped) return;
        if (ran >= 10_000) this.failures = 0;
        this.fail(`ffmpeg ${how}${lastLine ? ': ' + lastLine.slice(0, 200) : ''}`);
      }

      /** Closes this attempt's subscriber and publisher (the rendition's viewers wait for the next one). */
      private cleanup(reason: string): void {
        this.sub?.close(reason);
        this.sub = null;
        const pub = this.pub;
        this.pub = null;
        if (pub) { pub.onStop = null; pub.close(reason); }
        this.pid = 0;
      }

      /** An attempt ended: restart after the backoff while the source publishes, or end with the error. */
      private fail(msg: string, retry = true): void {
        this.lastError = msg;
        if (this.stopped) return;
        const src = ctx.engine.getStream(this.source);
        if (!retry || shuttingDown) {
          log.warn('transcode ended with an error', { stream: this.source, target: this.target, error: msg });
          this.finish('error', msg);
          return;
        }
        if (!src?.publisher) { this.finish('stopped', 'source ended'); return; }
        this.failures++;
        const delay = Math.min(ctx.config.retryinterval * 2 ** (this.failures - 1), ctx.config.retrymax);
        log.warn('transcode restarting', { stream: this.source, target: this.target, error: msg, inMs: delay, restarts: this.restarts + 1 });
        this.state = 'backoff';
        this.timer = setTimeout(() => { this.restarts++; void this.attempt(); }, delay);
      }

      private finish(state: JobState, reason: string): void {
        if (this.state === 'error' || this.state === 'stopped') return;
        this.state = state;
        this.stopped = true;
        clearTimeout(this.timer);
        this.resolveDone();
        handles.get(this)?.remove(reason);
        jobs.delete(this.target);
      }

      stop(reason: string): void {
        if (this.stopped) return;
        this.stopped = true;
        clearTimeout(this.timer);
        const child = this.child;
        this.cleanup(reason);
        if (child) child.kill('SIGTERM');
        this.finish('stopped', reason);
      }

      /** CPU since the last sample (called every 2 s while running). */
      async sample(): Promise<void> {
        const pid = this.pid;
        if (!pid) return;
        const sec = await cpuSeconds(ctx, pid);
        if (sec === undefined || pid !== this.pid) return;
        const now = performance.now();
        if (this.lastCpu) this.cpuPercent = ((sec - this.lastCpu.sec) / ((now - this.lastCpu.at) / 1000)) * 100;
        this.lastCpu = { at: now, sec };
        this.cpuTotal = sec;
      }
    }

    /** Jobs by rendition path. */
    const jobs = new Map<string, Job>();
    const handles = new Map<Job, ReturnType<typeof ctx.sessions.add>>();

    const launch = (source: string, profileName: string): Job => {
      const profile = (ctx.config.profiles as Record<string, Profile>)[profileName];
      if (!profile) throw new EngineError('BadArgument', `no transcode profile "${profileName}" (transcode.profiles has ${Object.keys(ctx.config.profiles).join(', ') || 'none'})`);
      const target = `${source}/${profileName}`;
      const have = jobs.get(target);
      if (have) return have;
      if (jobs.size >= ctx.config.maxjobs) {
        refused++;
        log.warn('transcode refused: transcode.maxjobs reached', { stream: source, profile: profileName, maxjobs: ctx.config.maxjobs });
        throw new EngineError('TooManyPulls', `transcode.maxjobs (${ctx.config.maxjobs}) reached`);
      }
      const job = new Job(source, profileName, target, profile);
      jobs.set(target, job);
      const h = ctx.sessions.add<Job>({
        kind: 'transcode', group: 'jobs', streamPath: target, linger: 60_000, ref: job,
        stop: (r) => job.stop(r), info: () => job.info(),
      });
      handles.set(job, h);
      log.info('transcode started', { stream: source, target, profile: profileName });
      job.start();
      return job;
    };

    /** The profile names onpub.transform gives a stream path, or undefined when no pattern matches. */
    const profilesFor = (path: string): string[] | undefined => {
      for (const [re, value] of Object.entries(ctx.config.onpub?.transform ?? {})) {
        let m: RegExpExecArray | null;
        try { m = new RegExp(`^(?:${re})$`).exec(path); } catch { continue; }
        if (!m) continue;
        const names = String(value ?? '').split(/[\s,]+/).filter(Boolean);
        return names.length ? names : Object.keys(ctx.config.profiles);
      }
      return undefined;
    };
    const startAll = (path: string) => {
      for (const name of profilesFor(path) ?? []) {
        try { launch(path, name); } catch (err) { log.warn('transcode not started', { stream: path, profile: name, error: (err as Error).message }); }
      }
    };

    ctx.sessions.listExtra(() => ({ ffmpeg: version, maxjobs: ctx.config.maxjobs, running: jobs.size, refused }));

    const offs = [
      ctx.events.on('publish', ({ stream }) => {
        // Renditions are not transcoded again (live/x/480p would match live/.*).
        if (isRendition(stream)) return;
        if (!ctx.config.ondemand) startAll(stream.path);
      }),
      ctx.events.on('unpublish', ({ stream }) => {
        for (const j of [...jobs.values()]) if (j.source === stream.path) j.stop('source ended');
      }),
      ctx.events.on('stream.missing', ({ path }) => {
        if (!ctx.config.ondemand) return;
        const i = path.lastIndexOf('/');
        const source = path.slice(0, i), name = path.slice(i + 1);
        if (!ctx.engine.getStream(source)?.publisher || !profilesFor(source)?.includes(name)) return;
        try { launch(source, name); } catch (err) { log.warn('transcode not started', { stream: source, profile: name, error: (err as Error).message }); }
      }),
    ];
    const isRendition = (s: Stream) => jobs.has(s.path);

    // CPU samples, and on-demand jobs without viewers stopped.
    const tick = setInterval(() => {
      const now = Date.now();
      for (const j of jobs.values()) {
        void j.sample();
        if (ctx.config.ondemand) {
          const s = ctx.engine.getStream(j.target);
          if (s && s.subscribers.size > 0) j.lastViewer = now;
          else if (now - j.lastViewer > ctx.config.idletimeout) j.stop('no viewers (ondemand)');
        }
      }
    }, 2000);

    for (const s of ctx.engine.streams.values()) if (s.publisher && !ctx.config.ondemand) startAll(s.path);

    ctx.onStop(() => {
      shuttingDown = true;
      clearInterval(tick);
      for (const off of offs) off();
      for (const j of [...jobs.values()]) j.stop('server stopping');
    });

    ctx.http.post('/api/launch', async (c) => {
      let body: any;
      try { body = await c.req.json(); } catch { return ctx.fail(c, 400, 'body must be JSON: { "streamPath": "live/x", "profile": "480p" }'); }
      const source = typeof body?.streamPath === 'string' ? body.streamPath.replace(/^\/+|\/+$/g, '') : '';
      const profile = typeof body?.profile === 'string' ? body.profile : '';
      if (!source || !profile) return ctx.fail(c, 400, 'streamPath and profile are required');
      if (!ctx.engine.getStream(source)?.publisher) return ctx.fail(c, 404, `stream ${source} is not publishing`);
      const job = launch(source, profile);
      return ctx.ok(c, { id: handles.get(job)?.id, target: job.target });
    });
  },
});
