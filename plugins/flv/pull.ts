// FLV pulls: an HTTP(S) FLV URL (a live HTTP-FLV stream or a file served over HTTP) or a local FLV file,
// republished as a stream (publisher type 'pull').
//
// HTTP: a streaming fetch, read chunk by chunk. When the connection fails or ends, the pull reconnects
// after `retryinterval`, doubling up to `retrymax` (reset once data flowed again), until the job is
// stopped: API stop, the stream stopped by the engine (pub.onStop), an on-demand pull nobody watches
// any more, or server shutdown. No data for `readtimeout` counts as a failure.
// File: read with the runtime's streaming reader when it has one (else the whole file at once), paced
// at `filepull.speed` × real time, optionally looping with continuous timestamps. Files are not retried:
// a missing or malformed file ends the job with its error.

import { EngineError } from '../../src/plugin.ts';
import type { PublishConfig } from '../../src/plugin.ts';
import type { Publisher } from '../../src/plugin.ts';
import type { Logger } from '../../src/log.ts';
import type { PluginContext } from '../../src/plugin.ts';
import { FlvFeed } from './feed.ts';
import { type OutboundOrigin, SOURCE_UNAVAILABLE } from '../../src/core/outbound.ts';

export type PullState = 'connecting' | 'pulling' | 'retrying' | 'stopped';

export interface PullOptions {
  loop?: boolean;
  /** Started by a subscriber (onsub.pull): stop retrying once nobody is watching. */
  onDemand?: boolean;
  /** Pace factor for files (overrides filepull.speed). */
  speed?: number;
  /** Who asked (global.outbound): API jobs are checked on every connect, capped in retries, and see generic errors. */
  origin?: OutboundOrigin;
  /** The checked local path of a file source (from ctx.outbound.checkFile). */
  filePath?: string;
}

export interface PullSettings {
  maxtagsize: number;
  retryinterval: number;
  retrymax: number;
  retrycount: number;
  readtimeout: number;
  filepull: { speed: number; loop: boolean };
  publish: PublishConfig;
}

/** What a pull source is: an http(s) URL or a local file (a path or file:// URL). */
export function pullKind(url: string): 'http' | 'file' | null {
  if (/^https?:\/\//i.test(url)) return 'http';
  if (/^file:\/\//i.test(url)) return 'file';
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return null; // some other scheme (rtmp://…): not ours
  return url.length > 0 ? 'file' : null;
}

/** The local path of a file source, and the options its query carries (`?loop=1&speed=2`). */
export function filePathOf(url: string): { path: string; loop?: boolean; speed?: number } {
  let path = url;
  let query = '';
  const q = url.indexOf('?');
  if (q >= 0) { query = url.slice(q + 1); path = url.slice(0, q); }
  if (/^file:\/\//i.test(path)) {
    path = path.slice(7);
    // file:///C:/x → C:/x on Windows-style paths; file://host/path is not supported (host ignored).
    if (/^\/[A-Za-z]:\//.test(path)) path = path.slice(1);
    else if (!path.startsWith('/')) path = path.slice(path.indexOf('/'));
    try { path = decodeURIComponent(path); } catch { /* keep as written */ }
  }
  const p = new URLSearchParams(query);
  const out: { path: string; loop?: boolean; speed?: number } = { path };
  if (p.has('loop')) out.loop = !['0', 'false', 'no'].includes(p.get('loop')!.toLowerCase());
  const sp = Number(p.get('speed'));
  if (p.has('speed') && Number.isFinite(sp) && sp >= 0) out.speed = sp;
  return out;
}

const sleep = (ms: number, stop: { stopped: boolean; wake?: () => void }) =>
  new Promise<void>((r) => {
    const t = setTimeout(done, ms);
    function done() { clearTimeout(t); stop.wake = undefined; r(); }
    stop.wake = done;
  });

export class PullJob {
  state: PullState = 'connecting';
  readonly startTime = Date.now();
  /** Totals over every connection. */
  bytes = 0;
  tags = 0;
  connects = 0;
  retries = 0;
  error = '';
  stopped = false;
  stopReason = '';
  readonly kind: 'http' | 'file';
  readonly loop: boolean;
  private pub: Publisher | null = null;
  /** The current connection's feed (its counts are added to the totals when it ends). */
  private feed: FlvFeed | null = null;
  private abort: AbortController | null = null;
  private reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  private readonly sleeper: { stopped: boolean; wake?: () => void } = { stopped: false };
  /** Resolves when the job has ended. */
  readonly done: Promise<void>;

  constructor(
    readonly id: number,
    readonly streamPath: string,
    readonly url: string,
    private readonly ctx: PluginContext<any>,
    private readonly settings: () => PullSettings,
    private readonly log: Logger,
    readonly opts: PullOptions = {},
  ) {
    const k = pullKind(url);
    if (!k) throw new EngineError('BadArgument', `flv cannot pull ${JSON.stringify(url.slice(0, 100))}: use http(s)://, file:// or a file path`);
    this.kind = k;
    const f = k === 'file' ? filePathOf(url) : null;
    this.loop = opts.loop ?? f?.loop ?? (k === 'file' ? settings().filepull.loop : false);
    this.done = this.run();
  }

  stop(reason = 'stopped'): void {
    if (this.stopped) return;
    this.stopped = true;
    this.stopReason = reason;
    this.abort?.abort(new Error(reason));
    this.reader?.cancel(reason).catch(() => {});
    this.sleeper.wake?.();
    this.pub?.close(reason);
  }

  info(): Record<string, unknown> {
    const s = this.ctx.engine.getStream(this.streamPath);
    return {
      id: this.id, type: 'pull', streamPath: this.streamPath, url: this.url, kind: this.kind, loop: this.loop,
      state: this.state, startTime: new Date(this.startTime).toISOString(),
      bytes: this.bytes + (this.feed?.bytes ?? 0), tags: this.tags + (this.feed?.tags ?? 0),
      connects: this.connects, retries: this.retries, error: this.error ? this.shown(this.error) : undefined,
      stopReason: this.stopReason ? this.shown(this.stopReason) : undefined, subscribers: s?.subscribers.size ?? 0,
    };
  }

  /** API jobs: the remote's answer and the kind of failure stay in the log (docs/security.md). */
  private shown(text: string): string {
    if (this.opts.origin !== 'api' || /^(stopped by API|server shutting down|nobody is watching|end of file|stream stopped)/.test(text)) return text;
    return /^gave up/.test(text) ? `gave up after ${this.retries} retries: ${SOURCE_UNAVAILABLE}` : SOURCE_UNAVAILABLE;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      this.state = 'connecting';
      let gotData = false;
      try {
        const conf = this.settings();
        const pubConf = this.kind === 'file'
          ? { ...conf.publish, speed: this.opts.speed ?? filePathOf(this.url).speed ?? conf.filepull.speed }
          : conf.publish;
        const pub = await this.ctx.publish(this.streamPath, { type: 'pull', remote: this.url, config: pubConf });
        if (this.stopped) { pub.close(this.stopReason); break; }
        this.pub = pub;
        this.connects++;
        pub.onStop = (reason) => this.stop(`stream stopped: ${reason}`);
        const feed = new FlvFeed(pub, { maxTagSize: conf.maxtagsize, warn: (m) => this.log.warn(m, { stream: this.streamPath, url: this.url }) });
        this.feed = feed;
        try {
          if (this.kind === 'file') await this.readFile(feed);
          else await this.readHttp(feed, conf);
        } finally {
          gotData = feed.tags > 0;
          this.feed = null;
          this.bytes += feed.bytes;
          this.tags += feed.tags;
        }
        if (this.kind === 'file') { this.stop('end of file'); break; }
        this.error = 'source ended the stream';
      } catch (err) {
        if (this.stopped) break;
        this.error = (err as Error)?.message ?? String(err);
        this.log.warn('pull failed', { stream: this.streamPath, url: this.url, error: this.error });
        // Refusals that a retry cannot fix, and every file error, end the job.
        if (this.kind === 'file' || (err instanceof EngineError && (err.code === 'Unauthorized' || err.code === 'Forbidden' || err.code === 'BadPath'))) {
          this.stop(`failed: ${this.error}`);
          break;
        }
      } finally {
        this.pub?.close(this.stopReason || 'pull source lost');
        this.pub = null;
      }
      if (this.stopped) break;
      if (this.opts.onDemand && (this.ctx.engine.getStream(this.streamPath)?.subscribers.size ?? 0) === 0) {
        this.stop('nobody is watching');
        break;
      }
      const conf = this.settings();
      failures = gotData ? 0 : failures + 1;
      const cap = this.opts.origin === 'api' ? this.ctx.outbound.retryCap('api', conf.retrycount, (n) => n <= 0) : conf.retrycount;
      if ((cap > 0 || this.opts.origin === 'api') && this.retries >= cap) { this.stop(`gave up after ${this.retries} retries`); break; }
      const delay = Math.min(conf.retrymax, conf.retryinterval * 2 ** Math.min(failures, 16));
      this.state = 'retrying';
      this.retries++;
      await sleep(delay, this.sleeper);
    }
    this.state = 'stopped';
  }

  private async readHttp(feed: FlvFeed, conf: PullSettings): Promise<void> {
    const ac = new AbortController();
    this.abort = ac;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(timer);
      if (conf.readtimeout > 0) timer = setTimeout(() => ac.abort(new Error(`no data for ${conf.readtimeout} ms`)), conf.readtimeout);
    };
    try {
      // API jobs: the host is checked on every connect (its name may resolve elsewhere by now), and
      // redirects are not followed (one could lead to an address the policy refuses).
      const api = this.opts.origin === 'api';
      if (api) await this.ctx.outbound.checkUrl(this.url, 'api');
      arm();
      const res = await fetch(this.url, { signal: ac.signal, headers: { 'user-agent': 'm7s-flv-pull' }, redirect: api ? 'error' : 'follow' });
      if (!res.ok || !res.body) {
        await res.body?.cancel().catch(() => {});
        throw new Error(`HTTP ${res.status} ${res.statusText}`.trim());
      }
      this.state = 'pulling';
      const reader = res.body.getReader();
      this.reader = reader;
      const paced = feed.pub.config.speed > 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        arm();
        if (paced) await feed.pushPaced(value, () => this.stopped);
        else feed.push(value);
        if (this.stopped) return;
      }
      feed.end();
    } catch (err) {
      // An abort surfaces as the reason we gave it (timeout) or a generic AbortError.
      if (ac.signal.aborted && ac.signal.reason instanceof Error && !this.stopped) throw ac.signal.reason;
      throw err;
    } finally {
      clearTimeout(timer);
      this.abort = null;
      this.reader?.cancel().catch(() => {});
      this.reader = null;
    }
  }

  private async readFile(feed: FlvFeed): Promise<void> {
    const rt = this.ctx.runtime;
    const path = this.opts.filePath ?? this.ctx.resolvePath(filePathOf(this.url).path);
    const st = await rt.stat(path);
    if (!st || !st.isFile) throw new Error(`file not found: ${path}`);
    this.state = 'pulling';
    for (let pass = 0; !this.stopped; pass++) {
      if (pass > 0) feed.restart();
      if (rt.readFileStream) {
        const reader = rt.readFileStream(path).getReader();
        this.reader = reader;
        try {
          for (;;) {
            const { done, value } = await reader.read();
            if (done || this.stopped) break;
            await feed.pushPaced(value, () => this.stopped);
          }
        } finally {
          this.reader = null;
          reader.cancel().catch(() => {});
        }
      } else {
        await feed.pushPaced(await rt.readFile(path), () => this.stopped);
      }
      if (this.stopped) return;
      feed.end();
      if (!this.loop) return;
      if (feed.mediaTagsThisPass === 0) throw new Error(`${path} has no audio or video tags to loop over`);
    }
  }
}
