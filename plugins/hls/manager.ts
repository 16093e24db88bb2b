// The segmenters of one server, shared by the `hls` and `llhls` plugins (both import this module; the
// registry is keyed by the Engine, so two servers in one process keep theirs apart).
//
// A segmenter starts when the first player asks for a stream's playlist: it subscribes to the stream
// like any player and keeps segmenting while players keep fetching. With no request for `idletimeout`
// it unsubscribes and its segments are dropped. Segmenters started by `onpub.transform` (pinned) stay
// for the life of the stream.

import type { Engine } from '../../src/core/engine.ts';
import { EngineError } from '../../src/core/errors.ts';
import type { Subscriber } from '../../src/core/subscriber.ts';
import type { SubscribeOptions } from '../../src/core/engine.ts';
import type { Logger } from '../../src/log.ts';
import { Segmenter, type SegmentKind, type SegmenterSettings } from './segmenter.ts';

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
  /** Requests waiting for `ready`; when the last of them leaves first, the wait is given up. */
  waiters: number;
  /** Aborts the engine subscription while it still waits for the stream. */
  ac: AbortController;
}

export class HlsManager {
  readonly settings: ManagerSettings = { ...DEFAULT_SETTINGS };
  readonly sessions = new Map<string, Session>();
  private users = 0;
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(readonly engine: Engine, readonly logger: Logger) {}

  /** A plugin starts using the manager. */
  acquire(): void { this.users++; }

  /** A plugin stopped; the last one closes every segmenter. */
  release(): void {
    if (--this.users > 0) return;
    for (const s of [...this.sessions.values()]) this.closeSession(s, 'server shutting down');
    this.stopTimer();
    registry.delete(this.engine);
  }

  idleMs(): number {
    const s = this.settings;
    return s.idletimeout > 0 ? s.idletimeout : 3 * s.window * s.fragment;
  }

  /** The running segmenter of (path, kind), if any; a request counts as activity. */
  find(path: string, kind: SegmentKind): Session | undefined {
    const s = this.sessions.get(keyOf(path, kind));
    if (s && !s.closed) s.lastAccess = Date.now();
    return s && !s.closed ? s : undefined;
  }

  /**
   * The segmenter of (path, kind), started if needed. `target` is the path plus the query to subscribe
   * with (auth args); `waitMs` how long to wait for a stream that has not started (0: fail at once with
   * NotFound when nobody publishes it).
   */
  open(path: string, target: string, kind: SegmentKind, waitMs: number, subscribe: SubscribeFn,
    opts: { pinned?: boolean; remote?: string; subscribeConfig?: SubscribeOptions['config']; signal?: AbortSignal } = {}): Promise<Session> {
    const existing = this.find(path, kind);
    if (existing) {
      if (opts.pinned) existing.pinned = true;
      return this.waitFor(existing, opts.signal);
    }
    if (waitMs <= 0 && !this.engine.getStream(path)?.publisher) {
      return Promise.reject(new EngineError('NotFound', `stream ${path} not found`));
    }
    const seg = new Segmenter(kind, this.settings);
    const s: Session = {
      key: keyOf(path, kind), path, kind, seg, sub: null, lastAccess: Date.now(), pinned: !!opts.pinned,
      ready: undefined as never, closed: false, waiters: 0, ac: new AbortController(),
    };
    const base = opts.subscribeConfig;
    // `?timeout=` may shorten the configured subscribe.waittimeout, never lengthen it.
    const cap = (base ?? this.engine.subscribeConfig).waittimeout;
    const config = base && waitMs > 0 ? { ...base, waittimeout: Math.min(waitMs, cap) } : base;
    s.ready = subscribe(target, {
      sink: seg, remote: opts.remote, config, signal: opts.pinned ? undefined : s.ac.signal,
      // A pinned segmenter (onpub.transform) must not keep the stream alive; one fed by players counts.
      type: s.pinned ? 'transform' : 'server', counted: !s.pinned,
    }).then((sub) => {
      s.sub = sub;
      if (s.closed) sub.close('hls segmenter stopped');
      return s;
    }, (err) => {
      this.forget(s);
      throw err;
    });
    // The stream ended (engine side): forget the session so the next request starts afresh.
    seg.onEnd = () => this.forget(s);
    this.sessions.set(s.key, s);
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

  private forget(s: Session): void {
    s.closed = true;
    if (this.sessions.get(s.key) === s) this.sessions.delete(s.key);
    if (this.sessions.size === 0) this.stopTimer();
  }

  /** Stop idle segmenters. */
  private sweep(): void {
    const now = Date.now(), idle = this.idleMs();
    for (const s of [...this.sessions.values()]) {
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

  info(): unknown[] {
    return [...this.sessions.values()].map((s) => ({
      streamPath: s.path, kind: s.kind, pinned: s.pinned, segments: s.seg.complete().length,
      bytes: s.seg.bytes, lastAccess: new Date(s.lastAccess).toISOString(), subscriberId: s.sub?.id ?? null,
    }));
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
