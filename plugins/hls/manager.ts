// The segmenters of one server, shared by the `hls` and `llhls` plugins (both import this module; the
// registry is keyed by the Engine, so two servers in one process keep theirs apart).
//
// A segmenter starts when the first player asks for a stream's playlist: it subscribes to the stream
// like any player and keeps segmenting while players keep fetching. With no request for `idletimeout`
// it unsubscribes and its segments are dropped. Segmenters started by `onpub.transform` (pinned) stay
// for the life of the stream.

import type { PluginEngine as Engine } from '../../src/plugin.ts';
import { EngineError } from '../../src/plugin.ts';
import type { Subscriber } from '../../src/plugin.ts';
import type { SubscribeOptions } from '../../src/plugin.ts';
import type { Logger } from '../../src/log.ts';
import type { PluginSessions, SessionHandle } from '../../src/plugin.ts';
import { MP4_AUDIO, MP4_VIDEO, Segmenter, type SegmentKind, type SegmenterSettings, TS_AUDIO, TS_VIDEO } from './segmenter.ts';

export interface ManagerSettings extends SegmenterSettings {
  /** Stop a segmenter nobody fetched from for this long (ms); 0 = 3 × window × fragment. */
  idletimeout: number;
}

export const DEFAULT_SETTINGS: ManagerSettings = { fragment: 2000, window: 3, extra: 3, part: 200, idletimeout: 0 };

export type SubscribeFn = (path: string, opts: Omit<SubscribeOptions, 'protocol'> & { protocol?: string }) => Promise<Subscriber>;

export interface Session {
  key: string;
  path: string;
  kind: SegmentKind;
  seg: Segmenter;
  sub: Subscriber | null;
  /** Last request (ms). */
  lastAccess: number;
  pinned: boolean;
  /** Resolves once subscribed (rejects when the stream is not there). */
  ready: Promise<Session>;
  closed: boolean;
  /** This segmenter in the opening plugin's ctx.sessions (kind 'segmenter'). */
  handle?: SessionHandle;
  /** Requests waiting for `ready`; when the last of them leaves first, the wait is given up. */
  waiters: number;
  /** Aborts the engine subscription while it still waits for the stream. */
  ac: AbortController;
}

/**
 * One HLS viewer: a client (ip + user agent) fetching one stream's playlists and segments over HTTP,
 * listed in ctx.sessions (kind 'viewer') until it makes no request for the segmenter's idle time.
 */
export class HlsViewer {
  lastAccess = Date.now();
  requests = 0;
  bytes = 0;
  constructor(readonly seg: Session, readonly userAgent: string) {}
}

export class HlsManager {
  readonly settings: ManagerSettings = { ...DEFAULT_SETTINGS };
  /** Running segmenters by kind:path (each is also listed in its plugin's ctx.sessions). */
  readonly segmenters = new Map<string, Session>();
  /** The session registries of the plugins using the manager (hls, llhls): where viewers are listed. */
  private readonly registries = new Set<PluginSessions>();
  private users = 0;
  private timer: ReturnType<typeof setInterval> | undefined;
  /** Tracks already reported as not carried, per stream object ("ts:pcma"), so each is said once. */
  private readonly reported = new WeakMap<object, Set<string>>();

  constructor(readonly engine: Engine, readonly logger: Logger) {}

  /** A plugin starts using the manager; its viewers are listed in `sessions`. */
  acquire(sessions?: PluginSessions): void {
    this.users++;
    if (sessions) this.registries.add(sessions);
  }

  /** A plugin stopped; the last one closes every segmenter. */
  release(sessions?: PluginSessions): void {
    if (sessions) this.registries.delete(sessions);
    if (--this.users > 0) return;
    for (const s of [...this.segmenters.values()]) this.closeSession(s, 'server shutting down');
    this.stopTimer();
    registry.delete(this.engine);
  }

  idleMs(): number {
    const s = this.settings;
    return s.idletimeout > 0 ? s.idletimeout : 3 * s.window * s.fragment;
  }

  /** The running segmenter of (path, kind), if any; a request counts as activity. */
  find(path: string, kind: SegmentKind): Session | undefined {
    const s = this.segmenters.get(keyOf(path, kind));
    if (s && !s.closed) s.lastAccess = Date.now();
    return s && !s.closed ? s : undefined;
  }

  /**
   * The segmenter of (path, kind), started if needed. `target` is the path plus the query to subscribe
   * with (auth args); `waitMs` how long to wait for a stream that has not started (0: fail at once with
   * NotFound when nobody publishes it).
   */
  open(path: string, target: string, kind: SegmentKind, waitMs: number, subscribe: SubscribeFn,
    opts: { pinned?: boolean; align?: boolean; remote?: string; subscribeConfig?: SubscribeOptions['config']; sessions?: PluginSessions; ip?: string; credentials?: SubscribeOptions['credentials']; signal?: AbortSignal } = {}): Promise<Session> {
    const existing = this.find(path, kind);
    if (existing && opts.align && !existing.seg.align && existing.sub) {
      // The stream got renditions (ABR) after its segmenter started: start it again on the aligned grid.
      opts = { ...opts, pinned: opts.pinned || existing.pinned };
      this.closeSession(existing, 'restarted on the aligned grid (adaptive bitrate)');
    } else if (existing) {
      if (opts.pinned) existing.pinned = true;
      return this.waitFor(existing, opts.signal);
    }
    if (waitMs <= 0 && !this.engine.getStream(path)?.publisher) {
      return Promise.reject(new EngineError('NotFound', `stream ${path} not found`));
    }
    const seg = new Segmenter(kind, this.settings);
    seg.align = !!opts.align;
    const s: Session = {
      key: keyOf(path, kind), path, kind, seg, sub: null, lastAccess: Date.now(), pinned: !!opts.pinned,
      ready: undefined as never, closed: false, waiters: 0, ac: new AbortController(),
    };
    const base = opts.subscribeConfig;
    // `?timeout=` may shorten the configured subscribe.waittimeout, never lengthen it.
    const cap = (base ?? this.engine.subscribeConfig).waittimeout;
    const config = base && waitMs > 0 ? { ...base, waittimeout: Math.min(waitMs, cap) } : base;
    s.ready = subscribe(target, {
      sink: seg, remote: opts.remote, ip: opts.ip, credentials: opts.credentials, config, signal: opts.pinned ? undefined : s.ac.signal,
      // A pinned segmenter (onpub.transform) must not keep the stream alive; one fed by players counts.
      type: s.pinned ? 'transform' : 'server', counted: !s.pinned,
    }).then((sub) => {
      s.sub = sub;
      if (s.closed) sub.close('hls segmenter stopped');
      else this.reportUnsupported(s);
      return s;
    }, (err) => {
      this.forget(s);
      throw err;
    });
    s.handle = opts.sessions?.add({
      kind: 'segmenter', group: 'segmenters', streamPath: path, ref: s,
      stop: (r) => this.closeSession(s, r), info: () => this.segmenterInfo(s),
    });
    // The stream ended (engine side): forget the session so the next request starts afresh.
    seg.onEnd = () => this.forget(s);
    this.segmenters.set(s.key, s);
    this.startTimer();
    return this.waitFor(s, opts.signal);
  }

  /**
   * `s.ready` for one request. A request that leaves (its signal aborts) before the session is ready
   * stops waiting; when no request is left waiting, the session's subscription is given up at once, so
   * an abandoned wait keeps no stream.
   */
  private waitFor(s: Session, signal: AbortSignal | undefined): Promise<Session> {
    if (!signal || s.sub || s.pinned) return s.ready;
    if (signal.aborted) return Promise.reject(new EngineError('Closed', `client left while waiting for ${s.path}`));
    s.waiters++;
    return new Promise<Session>((resolve, reject) => {
      let left = false;
      const onAbort = () => {
        left = true;
        if (--s.waiters === 0 && !s.sub && !s.pinned) { this.forget(s); s.ac.abort(); }
        reject(new EngineError('Closed', `client left while waiting for ${s.path}`));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      const settle = () => { signal.removeEventListener('abort', onAbort); if (!left) s.waiters--; };
      s.ready.then((v) => { settle(); resolve(v); }, (e) => { settle(); reject(e); });
    });
  }

  closeSession(s: Session, reason: string): void {
    this.forget(s);
    s.sub?.close(reason);
    s.seg.close(reason);
  }

  /** Count a request of a viewer (ip + user agent) of segmenter `s`, listing the viewer on first sight. */
  touchViewer(sessions: PluginSessions, s: Session, ip: string | undefined, userAgent: string, bytes: number): void {
    if (s.closed) return;
    const ua = userAgent.slice(0, 200);
    const key = `${s.key}|${ip ?? '?'}|${ua}`;
    let h = sessions.byKey<HlsViewer>(key);
    if (!h) {
      const v = new HlsViewer(s, ua);
      const handle: SessionHandle<HlsViewer> = sessions.add({
        kind: 'viewer', group: 'viewers', streamPath: s.path, remote: ip, key, ref: v,
        // HTTP has no connection to close: stopping a viewer forgets it (its next request lists it again).
        stop: (r) => handle.remove(r),
        info: () => ({ format: s.kind, userAgent: v.userAgent, requests: v.requests, bytes: v.bytes, lastAccess: new Date(v.lastAccess).toISOString() }),
      });
      h = handle;
    }
    const v = h.ref!;
    v.lastAccess = Date.now();
    v.requests++;
    v.bytes += bytes;
  }

  /** Forget viewers of closed segmenters and viewers idle longer than `idle` ms. */
  private expireViewers(idle: number): void {
    const now = Date.now();
    for (const reg of this.registries) {
      for (const h of reg.list({ live: true })) {
        const v = h.ref;
        if (v instanceof HlsViewer && (v.seg.closed || now - v.lastAccess > idle)) h.remove(v.seg.closed ? 'segmenter stopped' : 'idle');
      }
    }
  }

  private forget(s: Session): void {
    s.handle?.remove();
    s.closed = true;
    if (this.segmenters.get(s.key) === s) this.segmenters.delete(s.key);
    if (this.segmenters.size === 0) this.stopTimer();
    this.expireViewers(this.idleMs());
  }

  /**
   * A track the segments cannot carry (G.711 audio in HLS, VP9 video, ...) is left out of them: say so
   * once per stream and segment type, at warn level, rather than drop it in silence.
   */
  reportUnsupported(s: Session): void {
    const stream = s.sub?.stream;
    if (!stream) return;
    const [vset, aset] = s.kind === 'ts' ? [TS_VIDEO, TS_AUDIO] : [MP4_VIDEO, MP4_AUDIO];
    for (const t of stream.tracks) {
      if (t.kind === 'data' || (t.kind === 'video' ? vset : aset).has(t.codec)) continue;
      let seen = this.reported.get(stream);
      if (!seen) this.reported.set(stream, (seen = new Set()));
      const key = `${s.kind}:${t.kind}:${t.codec}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const container = s.kind === 'ts' ? 'MPEG-TS' : 'fMP4';
      this.logger.warn(`HLS ${container} segments of ${s.path} leave out its ${t.codec} ${t.kind} track: HLS carries ` +
        `${[...vset].join('/')} video and ${[...aset].join('/')} audio`, { stream: s.path, kind: s.kind, codec: t.codec });
    }
  }

  /** Stop idle segmenters. */
  private sweep(): void {
    const now = Date.now(), idle = this.idleMs();
    this.expireViewers(idle);
    for (const s of [...this.segmenters.values()]) {
      this.reportUnsupported(s); // a track that came after the segmenter started
      if (!s.pinned && s.sub && now - s.lastAccess > idle) {
        this.logger.debug('hls segmenter idle', { stream: s.path, kind: s.kind });
        this.closeSession(s, `no HLS request for ${idle} ms`);
      }
    }
  }

  private startTimer(): void {
    if (this.timer === undefined) this.timer = setInterval(() => this.sweep(), 1000);
  }

  private stopTimer(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  segmenterInfo(s: Session): Record<string, unknown> {
    let viewers = 0;
    for (const reg of this.registries) for (const h of reg.list({ live: true })) if (h.ref instanceof HlsViewer && h.ref.seg === s) viewers++;
    return {
      streamPath: s.path, kind: s.kind, pinned: s.pinned, segments: s.seg.complete().length,
      bytes: s.seg.bytes, lastAccess: new Date(s.lastAccess).toISOString(), subscriberId: s.sub?.id ?? null, viewers,
    };
  }

  info(): unknown[] {
    return [...this.segmenters.values()].map((s) => this.segmenterInfo(s));
  }
}

function keyOf(path: string, kind: SegmentKind): string { return `${kind}:${path}`; }

const registry = new WeakMap<Engine, HlsManager>();

/** The manager of `engine`'s server (created on first use). */
export function managerFor(engine: Engine, logger: Logger): HlsManager {
  let m = registry.get(engine);
  if (!m) registry.set(engine, (m = new HlsManager(engine, logger)));
  return m;
}
