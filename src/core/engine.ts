// The Engine: the registry of streams by StreamPath, the one door for publishing and subscribing (auth,
// limits, waiting), the lifecycle timers, and the registries that plugins fill (on-demand pull, actions
// on publish). It knows nothing of protocols or of the runtime.

import { EventBus } from '../events.ts';
import { Logger } from '../log.ts';
import { type AuthHook, type AuthRequest, checkKeyAuth, CREDENTIAL_ARGS, type Credentials } from './auth.ts';
import { defaultPublish, defaultSubscribe, normSubMode, type PublishConfig, type SubscribeConfig } from './config.ts';
import { AudioBridge, type TranscoderFactory } from './bridge.ts';
import { EngineError } from './errors.ts';
import { parseStreamPath } from './path.ts';
import type { Track } from './frame.ts';
import { Publisher, type PublisherInfo } from './publisher.ts';
import { Stream, type StreamHost } from './stream.ts';
import { Subscriber, type SubscriberSink } from './subscriber.ts';

export interface EngineEvents {
  'stream.create': { stream: Stream };
  publish: { stream: Stream; publisher: Publisher; republish: boolean };
  unpublish: { stream: Stream; publisher: Publisher; reason: string };
  'stream.close': { stream: Stream; reason: string };
  subscribe: { stream: Stream; subscriber: Subscriber };
  unsubscribe: { stream: Stream; subscriber: Subscriber; reason: string };
  /** A subscriber asked for a stream nobody publishes (after on-demand pull triggers ran). */
  'stream.missing': { path: string; args: Record<string, string> };
}

export interface PublishOptions {
  /** The plugin publishing (rtmp, flv, ...). */
  protocol: string;
  /** server (a client pushed to us), pull, file, transform, ... */
  type?: string;
  remote?: string;
  /** Peer address for IP rules (as the transport saw it; never a forwarded header). */
  ip?: string;
  /** Credentials from the transport (HTTP Authorization); args user/pass/jwt are read too. */
  credentials?: Credentials;
  /** Extra args (merged over the path's query string). */
  args?: Record<string, string>;
  /** The plugin's resolved publish section; defaults to the engine's global one. URL args override it. */
  config?: PublishConfig;
}

export interface SubscribeOptions {
  protocol: string;
  /** server (a player), push, record, transform, api. Only server/vod count towards the audience. */
  type?: string;
  remote?: string;
  /** Peer address for IP rules (as the transport saw it; never a forwarded header). */
  ip?: string;
  /** Credentials from the transport (HTTP Authorization); args user/pass/jwt are read too. */
  credentials?: Credentials;
  args?: Record<string, string>;
  config?: SubscribeConfig;
  sink: SubscriberSink;
  /** Also receive data-track frames. */
  data?: boolean;
  counted?: boolean;
  /**
   * The client's lifetime (HTTP request signal, WebSocket/TCP close). When it aborts while the
   * subscriber still waits for the stream, the wait ends at once: the subscriber is removed and a
   * placeholder stream nobody publishes goes with it.
   */
  signal?: AbortSignal;
}

export interface DescribeOptions {
  protocol: string;
  remote?: string;
  /** Peer address and credentials for the auth gate (as for subscribe). */
  ip?: string;
  credentials?: Credentials;
  args?: Record<string, string>;
  /** The plugin's subscribe section (auth keys, waittimeout, waittrack). */
  config?: SubscribeConfig;
  /** How long to wait for a publisher and its tracks (ms). Default: config.waittimeout. */
  timeoutMs?: number;
  /** What "tracks known" means (default config.waittrack): 'all' waits for every announced track's data. */
  waittrack?: SubscribeConfig['waittrack'];
}

export interface StreamDescription {
  path: string;
  args: Record<string, string>;
  stream: Stream;
  /** The stream's tracks at the time of the answer (codec config in track.config). */
  tracks: Track[];
  publisher: PublisherInfo | null;
}

/** Server-wide caps (`global.limits`); 0 = no limit. */
export interface EngineLimits {
  /** Streams in the registry, placeholders of waiting players included. */
  maxstreams: number;
  /** Subscribers waiting for a stream that is not ready yet, over all streams. */
  maxwaiting: number;
  /** Bytes held by all rings together (see Engine.enforceRingMemory). */
  ringmemory: number;
}

export const defaultLimits: EngineLimits = { maxstreams: 10_000, maxwaiting: 2_000, ringmemory: 1024 * 1024 * 1024 };

export type PullFn = (req: { streamPath: string; url: string; args: Record<string, string> }) => void | Promise<void>;
export type PublishActionFn = (req: { streamPath: string; target: string; stream: Stream }) => void | Promise<void>;

interface PullTrigger { owner: string; regex: RegExp; template: string; pull: PullFn }
interface PublishAction { owner: string; kind: string; regex: RegExp; template: string; run: PublishActionFn }

/** Applies URL query args over a resolved publish/subscribe section (wired to src/config by the server). */
export type ArgsOverride = <T extends object>(section: 'publish' | 'subscribe', conf: T, args: Record<string, string>) => T;

export interface EngineOptions {
  publish?: PublishConfig;
  subscribe?: SubscribeConfig;
  logger?: Logger;
  argsOverride?: ArgsOverride;
  limits?: EngineLimits;
}

export class Engine implements StreamHost {
  readonly streams = new Map<string, Stream>();
  readonly events: EventBus<EngineEvents>;
  readonly logger: Logger;
  publishConfig: PublishConfig;
  subscribeConfig: SubscribeConfig;
  argsOverride: ArgsOverride;
  limits: EngineLimits;
  /** Subscribers currently waiting in subscribe() (global.limits.maxwaiting). */
  waitingCount = 0;
  /** The audio bridge (transcoded audio tracks on demand), when a plugin provides one. */
  audioBridge: AudioBridge | null = null;
  readonly startTime = Date.now();

  private readonly authHooks: { owner: string; hook: AuthHook }[] = [];
  private pullTriggers: PullTrigger[] = [];
  private publishActions: PublishAction[] = [];
  private readonly pulling = new Map<string, Promise<void>>();
  private readonly timers = new Map<Stream, { wait?: ReturnType<typeof setTimeout>; delay?: ReturnType<typeof setTimeout> }>();
  private readonly takingOver = new Set<string>();
  private tick: ReturnType<typeof setInterval> | undefined;
  private tickCount = 0;
  /** Totals since start, for the API and metrics. */
  readonly totals = { publishes: 0, subscribes: 0, authFailures: 0, limitRefusals: 0, abandonedWaits: 0, writeTimeouts: 0, ringTrims: 0 };

  constructor(opts: EngineOptions = {}) {
    this.logger = opts.logger ?? Logger.silent();
    this.events = new EventBus<EngineEvents>((err, ev) => this.logger.error('event listener failed', { event: String(ev), error: err }));
    this.publishConfig = opts.publish ?? { ...defaultPublish };
    this.subscribeConfig = opts.subscribe ?? { ...defaultSubscribe };
    this.argsOverride = opts.argsOverride ?? ((_s, c) => c);
    this.limits = opts.limits ?? { ...defaultLimits };
    // No timer here: the tick starts with the first stream and stops with the last (createStream /
    // onStreamClosed), so an idle engine keeps no timers (edge isolates, tests, embedding).
  }

  /**
   * Make `factory` the engine's audio bridge (see src/core/bridge.ts): subscribers whose sink lists the
   * audio codecs it takes get a transcoded track when the stream's audio is none of them. Returns the
   * bridge; `remove()` stops its transcoders and takes it away.
   */
  provideAudioBridge(factory: TranscoderFactory, opts: { linger: number }): { bridge: AudioBridge; remove(): void } {
    const bridge = new AudioBridge(factory, { linger: opts.linger, logger: this.logger, feedConfig: () => this.subscribeConfig });
    this.audioBridge = bridge;
    return { bridge, remove: () => { bridge.close(); if (this.audioBridge === bridge) this.audioBridge = null; } };
  }

  /** True while the periodic tick (timeouts, stats) runs: only while there are streams. */
  get ticking(): boolean { return this.tick !== undefined; }

  /** Stop timers and close every stream (server shutdown). */
  shutdown(reason = 'server shutting down'): void {
    clearInterval(this.tick);
    this.tick = undefined;
    for (const s of [...this.streams.values()]) s.close(reason);
  }

  // ------------------------------------------------------------------ registries

  /** Add an auth hook; returns a function that removes it. */
  addAuthHook(owner: string, hook: AuthHook): () => void {
    const e = { owner, hook };
    this.authHooks.push(e);
    return () => { const i = this.authHooks.indexOf(e); if (i >= 0) this.authHooks.splice(i, 1); };
  }

  /** Set a plugin's on-demand pull patterns (`onsub.pull`: regex → URL template with $1...). Replaces earlier ones. */
  setPullTriggers(owner: string, patterns: Record<string, string>, pull: PullFn): void {
    this.pullTriggers = this.pullTriggers.filter((t) => t.owner !== owner);
    for (const [re, template] of Object.entries(patterns)) {
      this.pullTriggers.push({ owner, regex: compilePattern(re, owner + '.onsub.pull'), template, pull });
    }
  }

  /** Set a plugin's actions when a stream starts (`onpub.push` / `onpub.record` / `onpub.transform`). */
  setPublishActions(owner: string, kind: string, patterns: Record<string, string>, run: PublishActionFn): void {
    this.publishActions = this.publishActions.filter((a) => !(a.owner === owner && a.kind === kind));
    for (const [re, template] of Object.entries(patterns)) {
      this.publishActions.push({ owner, kind, regex: compilePattern(re, `${owner}.onpub.${kind}`), template, run });
    }
  }

  // ------------------------------------------------------------------ publish

  async publish(streamPath: string, opts: PublishOptions): Promise<Publisher> {
    const p = parseStreamPath(streamPath, opts.args);
    const conf = this.argsOverride('publish', opts.config ?? this.publishConfig, p.args);
    await this.authorize(authRequest('publish', p.path, p.args, opts), conf);
    stripCredentials(p.args);
    let stream = this.streams.get(p.path);
    if (stream?.publisher) {
      if (!conf.kickexist) throw new EngineError('DuplicatePublish', `stream ${p.path} is already being published (by ${stream.publisher.protocol} ${stream.publisher.remote ?? ''})`.trim());
      this.takingOver.add(p.path);
      try { stream.publisher.stop('kicked by a new publisher'); } finally { this.takingOver.delete(p.path); }
      this.logger.info('publisher kicked', { stream: p.path });
    }
    if (conf.maxcount > 0 && !stream?.publisher) {
      let n = 0;
      for (const s of this.streams.values()) if (s.publisher) n++;
      if (n >= conf.maxcount) throw new EngineError('TooManyPublishers', `publisher limit (${conf.maxcount}) reached`);
    }
    if (!stream?.publisher) this.checkRingMemory(p.path);
    if (!stream || stream.state === 'closed') {
      this.checkStreamLimit(p.path);
      stream = this.createStream(p.path, p.app, p.name, conf);
    }
    const pub = new Publisher(stream, conf, opts.protocol, opts.type ?? 'server', p.args, opts.remote);
    const republish = stream.publishCount > 0;
    stream.attachPublisher(pub);
    this.clearTimer(stream, 'wait');
    this.totals.publishes++;
    this.logger.info(republish ? 'publisher returned' : 'stream published', { stream: p.path, protocol: opts.protocol, remote: opts.remote, publisher: pub.id });
    this.events.emit('publish', { stream, publisher: pub, republish });
    if (!republish) this.runPublishActions(stream);
    return pub;
  }

  private runPublishActions(stream: Stream): void {
    for (const a of this.publishActions) {
      const m = a.regex.exec(stream.path);
      if (!m) continue;
      const target = expandTemplate(a.template, m);
      Promise.resolve().then(() => a.run({ streamPath: stream.path, target, stream })).catch((err) =>
        this.logger.error(`onpub.${a.kind} failed`, { plugin: a.owner, stream: stream.path, target, error: err }));
    }
  }

  // ------------------------------------------------------------------ subscribe

  async subscribe(streamPath: string, opts: SubscribeOptions): Promise<Subscriber> {
    const p = parseStreamPath(streamPath, opts.args);
    const base = opts.config ?? this.subscribeConfig;
    const raw = this.argsOverride('subscribe', base, p.args);
    const conf: SubscribeConfig = { ...raw, submode: normSubMode(raw.submode) };
    // A request may shorten the configured wait, never lengthen it (`?waittimeout=1h` held a stream
    // and a subscriber for the hour after the client left).
    if (!(conf.waittimeout <= base.waittimeout)) conf.waittimeout = base.waittimeout;
    await this.authorize(authRequest('subscribe', p.path, p.args, opts), conf);
    stripCredentials(p.args);
    const signal = opts.signal;
    if (signal?.aborted) throw new EngineError('Closed', `client left before subscribing to ${p.path}`);
    let stream = this.streams.get(p.path);
    if (stream && conf.maxcount > 0 && stream.subscribers.size >= conf.maxcount) {
      throw new EngineError('TooManySubscribers', `subscriber limit (${conf.maxcount}) reached for ${p.path}`);
    }
    const missing = !stream || !stream.publisher;
    const mustWait = !stream || !stream.isReady(conf.waittrack);
    if (mustWait && this.limits.maxwaiting > 0 && this.waitingCount >= this.limits.maxwaiting) {
      this.totals.limitRefusals++;
      throw new EngineError('TooManySubscribers', `too many players waiting for streams (global.limits.maxwaiting = ${this.limits.maxwaiting})`);
    }
    if (!stream) {
      this.checkStreamLimit(p.path);
      stream = this.createStream(p.path, p.app, p.name, this.publishConfig);
    }
    const sub = new Subscriber(stream, conf, opts.sink, opts.protocol, opts.type ?? 'server', p.args, opts.remote,
      { data: opts.data, counted: opts.counted, bridge: this.audioBridge });
    stream.addSubscriber(sub);
    this.clearTimer(stream, 'delay');
    if (missing && stream.publishCount === 0) this.triggerPull(p.path, p.args);
    if (mustWait) this.waitingCount++;
    try {
      await stream.waitReady(conf.waittrack, conf.waittimeout, signal);
    } catch (err) {
      if (signal?.aborted) this.totals.abandonedWaits++;
      sub.state = 'closed';
      stream.removeSubscriber(sub, (err as Error).message);
      throw err;
    } finally {
      if (mustWait) this.waitingCount--;
    }
    if (sub.state === 'closed') throw new EngineError('Closed', `subscription to ${p.path} ended while waiting`);
    this.totals.subscribes++;
    this.logger.debug('subscribed', { stream: p.path, protocol: opts.protocol, remote: opts.remote, subscriber: sub.id });
    this.events.emit('subscribe', { stream, subscriber: sub });
    sub.start();
    return sub;
  }

  // ------------------------------------------------------------------ describe

  /**
   * The tracks of a stream, for RTSP DESCRIBE / SDP offers, without becoming a subscriber: the same
   * auth as a subscribe, on-demand pull when nobody publishes, and a bounded wait (`timeoutMs`, default
   * the subscribe section's waittimeout) until the tracks are known as `waittrack` defines it.
   * Throws EngineError: Unauthorized, NotFound (no publisher within the wait), Timeout (publisher but
   * no usable tracks), Closed.
   */
  async describe(streamPath: string, opts: DescribeOptions): Promise<StreamDescription> {
    const p = parseStreamPath(streamPath, opts.args);
    const raw = this.argsOverride('subscribe', opts.config ?? this.subscribeConfig, p.args);
    const conf: SubscribeConfig = { ...raw, submode: normSubMode(raw.submode) };
    await this.authorize(authRequest('subscribe', p.path, p.args, opts), conf);
    const timeout = Math.max(0, opts.timeoutMs ?? conf.waittimeout);
    const want = opts.waittrack ?? conf.waittrack;
    const deadline = Date.now() + timeout;
    let stream = this.streams.get(p.path);
    if (!stream?.publisher) {
      if (!stream || stream.publishCount === 0) this.triggerPull(p.path, p.args);
      // Wait for a publisher without creating the stream (a describe that times out leaves nothing behind).
      stream = await new Promise<Stream>((resolve, reject) => {
        const s = this.streams.get(p.path);
        if (s?.publisher) { resolve(s); return; }
        const timer = setTimeout(() => { off(); reject(new EngineError('NotFound', `stream ${p.path} not found (waited ${timeout} ms)`)); }, timeout);
        const off = this.events.on('publish', (e) => {
          if (e.stream.path !== p.path) return;
          clearTimeout(timer); off(); resolve(e.stream);
        });
      });
    }
    await stream.waitReady(want, Math.max(0, deadline - Date.now()));
    return {
      path: p.path, args: p.args, stream,
      tracks: stream.tracks.filter((t) => (t.kind === 'video' && conf.subvideo !== false) || (t.kind === 'audio' && conf.subaudio !== false) || t.kind === 'data'),
      publisher: stream.publisher?.info() ?? null,
    };
  }

  /** global.limits.ringmemory: still over it after trimming every ring to one GOP? Then no new publisher. */
  private checkRingMemory(path: string): void {
    const max = this.limits.ringmemory;
    if (!(max > 0) || this.ringMemory() <= max) return;
    this.enforceRingMemory();
    if (this.ringMemory() <= max) return;
    this.totals.limitRefusals++;
    this.logger.warn('publish refused: global.limits.ringmemory reached', { stream: path, max });
    throw new EngineError('TooManyStreams', `ring memory limit (global.limits.ringmemory = ${max} bytes) reached`);
  }

  /** global.limits.maxstreams: refuse a new stream (published or waited for) over the cap. */
  private checkStreamLimit(path: string): void {
    const max = this.limits.maxstreams;
    if (max > 0 && this.streams.size >= max) {
      this.totals.limitRefusals++;
      this.logger.warn('stream refused: global.limits.maxstreams reached', { stream: path, max });
      throw new EngineError('TooManyStreams', `stream limit (global.limits.maxstreams = ${max}) reached`);
    }
  }

  private triggerPull(path: string, args: Record<string, string>): void {
    if (this.pulling.has(path)) return;
    for (const t of this.pullTriggers) {
      const m = t.regex.exec(path);
      if (!m) continue;
      const url = expandTemplate(t.template, m);
      this.logger.info('on-demand pull', { plugin: t.owner, stream: path, url });
      const job = Promise.resolve()
        .then(() => t.pull({ streamPath: path, url, args }))
        .catch((err) => this.logger.warn('on-demand pull failed', { plugin: t.owner, stream: path, url, error: err }))
        .finally(() => this.pulling.delete(path));
      this.pulling.set(path, job);
      return;
    }
    this.events.emit('stream.missing', { path, args });
  }

  // ------------------------------------------------------------------ auth

  /**
   * Run the auth gate without publishing or subscribing: for protocols that serve one shared session
   * to many requests (HLS playlists) and must check each request. Throws EngineError like publish().
   */
  async checkAccess(kind: 'publish' | 'subscribe', streamPath: string, opts: Omit<SubscribeOptions, 'sink'> & { action?: 'read' | 'playback' }): Promise<void> {
    const p = parseStreamPath(streamPath, opts.args);
    const section = kind === 'publish' ? 'publish' : 'subscribe';
    const base = (opts.config ?? (kind === 'publish' ? this.publishConfig : this.subscribeConfig)) as PublishConfig | SubscribeConfig;
    const conf = this.argsOverride(section, base, p.args);
    const req = authRequest(kind, p.path, p.args, opts);
    // `playback`: recordings of the stream (the record plugin's downloads and VOD playlists).
    if (kind === 'subscribe' && opts.action) req.action = opts.action;
    await this.authorize(req, conf);
  }

  private async authorize(req: AuthRequest, conf: { key: string; secretargname: string; expireargname: string }): Promise<void> {
    try {
      checkKeyAuth(conf, req.streamPath, req.args);
      for (const { owner, hook } of this.authHooks) {
        let ok: boolean | void;
        try { ok = await hook(req); } catch (err) {
          throw err instanceof EngineError ? err : new EngineError('Unauthorized', `${owner}: ${(err as Error)?.message ?? String(err)}`);
        }
        if (ok === false) throw new EngineError('Forbidden', `${req.kind} denied by ${owner}`);
      }
    } catch (err) {
      this.totals.authFailures++;
      this.logger.warn(`${req.kind} refused`, { stream: req.streamPath, protocol: req.protocol, remote: req.remote, error: err });
      throw err;
    }
  }

  // ------------------------------------------------------------------ stream lifecycle (StreamHost)

  private createStream(path: string, app: string, name: string, conf: PublishConfig): Stream {
    const s = new Stream(path, app, name, this, conf);
    this.streams.set(path, s);
    this.tick ??= setInterval(() => this.onTick(), 250);
    this.events.emit('stream.create', { stream: s });
    return s;
  }

  onPublisherLost(stream: Stream, pub: Publisher, reason: string): void {
    this.logger.info('publisher left', { stream: stream.path, publisher: pub.id, reason });
    this.events.emit('unpublish', { stream, publisher: pub, reason });
    if (this.takingOver.has(stream.path)) return;
    if (stream.subscribers.size === 0) { stream.close(reason); return; }
    let wait = 0;
    for (const s of stream.subscribers) wait = Math.max(wait, s.config.waittimeout);
    this.setTimer(stream, 'wait', wait, () => {
      if (!stream.publisher) stream.close(`publisher did not return within ${wait} ms (${reason})`);
    });
  }

  onSubscriberRemoved(stream: Stream, sub: Subscriber, reason: string): void {
    this.logger.debug('unsubscribed', { stream: stream.path, subscriber: sub.id, reason });
    this.events.emit('unsubscribe', { stream, subscriber: sub, reason });
    if (stream.state === 'closed') return;
    if (!stream.publisher) {
      if (stream.subscribers.size === 0) stream.close('no publisher and no subscribers');
      return;
    }
    const delay = stream.pubConfig.delayclosetimeout;
    if (delay > 0 && sub.counted && stream.countedSubscribers() === 0) {
      this.setTimer(stream, 'delay', delay, () => {
        if (stream.countedSubscribers() === 0) this.stopStream(stream.path, `no subscribers for ${delay} ms (delayclosetimeout)`);
      });
    }
  }

  onStreamClosed(stream: Stream, reason: string): void {
    this.clearTimer(stream, 'wait');
    this.clearTimer(stream, 'delay');
    this.timers.delete(stream);
    if (this.streams.get(stream.path) === stream) this.streams.delete(stream.path);
    if (this.streams.size === 0 && this.tick !== undefined) { clearInterval(this.tick); this.tick = undefined; }
    this.logger.info('stream closed', { stream: stream.path, reason });
    this.events.emit('stream.close', { stream, reason });
  }

  /** Stop a stream now: its publisher is told to close, its subscribers are ended. */
  stopStream(path: string, reason = 'stopped'): boolean {
    const s = this.streams.get(path.replace(/^\/+/, ''));
    if (!s) return false;
    s.close(reason);
    return true;
  }

  private setTimer(stream: Stream, kind: 'wait' | 'delay', ms: number, fn: () => void): void {
    this.clearTimer(stream, kind);
    let t = this.timers.get(stream);
    if (!t) this.timers.set(stream, (t = {}));
    t[kind] = setTimeout(() => { if (t![kind]) { t![kind] = undefined; fn(); } }, ms);
  }

  private clearTimer(stream: Stream, kind: 'wait' | 'delay'): void {
    const t = this.timers.get(stream);
    if (t?.[kind]) { clearTimeout(t[kind]); t[kind] = undefined; }
  }

  /** Every 250 ms: publish/pause/idle timeouts, ring memory; every second: track rates, write timeouts. */
  private onTick(): void {
    const now = Date.now();
    const roll = (++this.tickCount & 3) === 0;
    this.enforceRingMemory();
    for (const s of [...this.streams.values()]) {
      const pub = s.publisher;
      if (roll) { for (const t of s.tracks) t.rollStats(now); s.adapt(now); this.endBlocked(s, now); }
      if (!pub) continue;
      const c = pub.config;
      const limit = pub.paused ? c.pausetimeout : c.publishtimeout;
      if (limit > 0 && now - pub.lastWrite > limit) {
        pub.stop(pub.paused ? `paused longer than pausetimeout (${limit} ms)` : `no data for ${limit} ms (publishtimeout)`);
        continue;
      }
      if (c.idletimeout > 0 && !s.hadSubscriber && now - pub.startTime > c.idletimeout) {
        this.stopStream(s.path, `nobody subscribed within ${c.idletimeout} ms (idletimeout)`);
      }
    }
  }

  /** subscribe.writetimeout: end viewers whose connection has not drained for that long. */
  private endBlocked(s: Stream, now: number): void {
    for (const sub of s.subscribers) {
      const since = sub.blockedSince, wt = sub.config.writetimeout;
      if (since > 0 && wt > 0 && now - since > wt) {
        const reason = `connection blocked for ${now - since} ms (subscribe.writetimeout ${wt} ms)`;
        this.totals.writeTimeouts++;
        this.logger.info('slow viewer ended', { stream: s.path, subscriber: sub.id, remote: sub.remote, reason });
        sub.close(reason);
        sub.end(reason);
      }
    }
  }

  /** Bytes held by all rings. */
  ringMemory(): number {
    let n = 0;
    for (const s of this.streams.values()) n += s.ring.bytes;
    return n;
  }

  /**
   * global.limits.ringmemory: when all rings together hold more, the largest are trimmed to their
   * latest GOP (their viewers skip forward, as after any eviction) until the total is below the limit.
   * If it is still above once every ring holds one GOP, new publishers are refused (checkRingMemory).
   */
  enforceRingMemory(): void {
    const max = this.limits.ringmemory;
    if (!(max > 0)) return;
    let total = this.ringMemory();
    if (total <= max) return;
    const bySize = [...this.streams.values()].sort((a, b) => b.ring.bytes - a.ring.bytes);
    for (const s of bySize) {
      if (total <= max) break;
      const before = s.ring.bytes;
      s.trimToLatestGop();
      if (s.ring.bytes < before) {
        total -= before - s.ring.bytes;
        this.totals.ringTrims++;
        this.logger.warn('ring trimmed to its latest GOP: global.limits.ringmemory reached', { stream: s.path, freed: before - s.ring.bytes, max });
      }
    }
  }

  // ------------------------------------------------------------------ queries

  getStream(path: string): Stream | undefined { return this.streams.get(path.replace(/^\/+/, '')); }

  summary(): Record<string, unknown> {
    let publishing = 0, subscribers = 0, bytesIn = 0, bps = 0;
    for (const s of this.streams.values()) {
      if (s.publisher) publishing++;
      subscribers += s.subscribers.size;
      for (const t of s.tracks) { bytesIn += t.bytes; bps += t.bps; }
    }
    return { streamCount: this.streams.size, publishingCount: publishing, subscribeCount: subscribers, bytesIn, bpsIn: bps, totals: this.totals };
  }
}

function authRequest(kind: 'publish' | 'subscribe', path: string, args: Record<string, string>,
  o: { protocol: string; type?: string; remote?: string; ip?: string; credentials?: Credentials }): AuthRequest {
  const c = o.credentials ?? {};
  const user = c.user ?? args.user;
  return {
    kind, action: kind === 'publish' ? 'publish' : 'read', streamPath: path, args, protocol: o.protocol, type: o.type ?? 'server',
    remote: o.remote, ip: o.ip ?? '',
    user, password: c.user !== undefined ? c.password : (c.password ?? args.pass), token: c.token ?? args.jwt,
  };
}

/** Credentials are not kept with the publisher/subscriber (they would show in the API). */
function stripCredentials(args: Record<string, string>): void {
  for (const k of CREDENTIAL_ARGS) if (k !== 'user') delete args[k];
}

/** A config pattern is a regex anchored to the whole stream path. */
function compilePattern(re: string, where: string): RegExp {
  try { return new RegExp(`^(?:${re})$`); } catch (err) {
    throw new EngineError('BadArgument', `${where}: invalid regular expression ${JSON.stringify(re)}: ${(err as Error).message}`);
  }
}

/** "$0", "$1"… in a template take the regex groups. */
export function expandTemplate(template: string, m: RegExpExecArray): string {
  return template.replace(/\$(\d)/g, (_, d: string) => m[+d] ?? '');
}
