// One registry of sessions and jobs for the whole server, with one id space: every connection, player,
// publisher, pull, push and segmenter a plugin runs is added here (ctx.sessions.add) and removed when it
// ends. The server mounts GET /{plugin}/api/list and POST /{plugin}/api/stop/{id} on it for every
// plugin, /api/sessions lists all, and /api/metrics counts them per plugin and kind (MediaMTX's
// APIConnsList/Kick read by its metrics are the model). No plugin keeps its own list.

export interface SessionSpec<R = unknown> {
  /** What it is, plugin-defined and short: 'session', 'pull', 'push', 'http-flv', 'ws-publish', 'viewer'… */
  kind: string;
  /**
   * The array of GET /{plugin}/api/list this session is also listed in (e.g. 'players', 'pulls'), so a
   * plugin's list keeps the shape its users know. Default: only the uniform `list`.
   */
  group?: string;
  streamPath?: string;
  /** Peer address ("ip:port", or an ip) when there is one. */
  remote?: string;
  /** End it (API stop, plugin/server stop). The owner then calls handle.remove() from its close path. */
  stop(reason: string): void;
  /** Extra fields for the listing, read on each list (byte counts, state). */
  info?(): Record<string, unknown>;
  /** A unique key within the plugin for lookups (an HLS viewer: ip + user agent). */
  key?: string;
  /** Stay listed this long (ms) after remove(), marked ended, so the API can show why it ended. */
  linger?: number;
  /** The plugin's own object, for lookups through the registry. */
  ref?: R;
}

export interface SessionHandle<R = unknown> {
  readonly id: number;
  readonly plugin: string;
  readonly kind: string;
  readonly startTime: number;
  readonly spec: SessionSpec<R>;
  /** Set by remove(); a lingering session is still listed until endedAt + linger. */
  readonly endedAt: number;
  readonly ref: R | undefined;
  streamPath?: string;
  remote?: string;
  /** Forget it (idempotent). Call from the session's own close path. */
  remove(reason?: string): void;
}

export interface SessionInfo {
  id: number;
  plugin: string;
  kind: string;
  streamPath?: string;
  remote?: string;
  startTime: string;
  ended?: string;
  endReason?: string;
  [k: string]: unknown;
}

let ids = 0;

class Handle<R> implements SessionHandle<R> {
  readonly id = ++ids;
  readonly startTime = Date.now();
  endedAt = 0;
  endReason = '';
  streamPath?: string;
  remote?: string;
  constructor(readonly plugin: string, readonly spec: SessionSpec<R>, private readonly reg: SessionRegistry) {
    this.streamPath = spec.streamPath;
    this.remote = spec.remote;
  }
  get kind(): string { return this.spec.kind; }
  get ref(): R | undefined { return this.spec.ref; }
  remove(reason = ''): void {
    if (this.endedAt) return;
    this.endedAt = Date.now();
    this.endReason = reason;
    this.reg.ended(this);
  }
}

export class SessionRegistry {
  private readonly all = new Map<number, Handle<any>>();
  /** Live sessions with a spec.key, by plugin + key (an HLS segment request looks its viewer up here). */
  private readonly keyed = new Map<string, Handle<any>>();

  /** Add a session of `plugin`. A spec.key already used by a live session of that plugin is an error. */
  add<R>(plugin: string, spec: SessionSpec<R>): SessionHandle<R> {
    if (spec.key !== undefined && this.byKey(plugin, spec.key)) throw new Error(`${plugin}: session key ${spec.key} is already registered`);
    const h = new Handle<R>(plugin, spec, this);
    this.all.set(h.id, h);
    if (spec.key !== undefined) this.keyed.set(plugin + '\0' + spec.key, h);
    return h;
  }

  /** @internal */
  ended(h: Handle<any>): void {
    this.unkey(h);
    if (!(h.spec.linger! > 0)) this.all.delete(h.id);
  }

  private unkey(h: Handle<any>): void {
    if (h.spec.key === undefined) return;
    const k = h.plugin + '\0' + h.spec.key;
    if (this.keyed.get(k) === h) this.keyed.delete(k);
  }

  private prune(): void {
    const now = Date.now();
    for (const [id, h] of this.all) if (h.endedAt && now - h.endedAt >= (h.spec.linger ?? 0)) this.all.delete(id);
  }

  get(id: number): SessionHandle | undefined {
    this.prune();
    return this.all.get(id);
  }

  /** Live (not ended) session of `plugin` with this key. */
  byKey<R = unknown>(plugin: string, key: string): SessionHandle<R> | undefined {
    const h = this.keyed.get(plugin + '\0' + key);
    return h && !h.endedAt ? h : undefined;
  }

  /** Sessions (lingering ended ones included unless `live`), optionally of one plugin. */
  list(plugin?: string, opts: { live?: boolean } = {}): SessionHandle[] {
    this.prune();
    const out: SessionHandle[] = [];
    for (const h of this.all.values()) if ((plugin === undefined || h.plugin === plugin) && !(opts.live && h.endedAt)) out.push(h);
    return out;
  }

  /** Stop a live session. Returns it, or undefined when there is none with that id (of that plugin). */
  stop(id: number, reason: string, plugin?: string): SessionHandle | undefined {
    const h = this.get(id);
    if (!h || (plugin !== undefined && h.plugin !== plugin)) return undefined;
    if (!h.endedAt) {
      try { h.spec.stop(reason); } catch { /* the owner's problem; it is still asked to go */ }
    }
    return h;
  }

  /** Stop every live session of a plugin (plugin stop), then forget them all. */
  stopAll(plugin: string, reason: string): void {
    for (const h of this.list(plugin, { live: true })) {
      try { h.spec.stop(reason); } catch { /* keep going */ }
    }
    for (const h of this.list(plugin)) { this.unkey(h as Handle<any>); this.all.delete(h.id); }
  }

  /**
   * The listing of one session: the registry's fields (id, plugin, kind, streamPath, remote, startTime,
   * ended) and the session's info(). In the uniform form the registry's fields win; in the plugin's
   * own form (`compat`, the group arrays of GET /{plugin}/api/list) info() wins, so a plugin keeps the
   * field meanings it documented (an HLS segmenter's `kind` is ts|fmp4 there).
   */
  info(h: SessionHandle, compat = false): SessionInfo {
    const x = h as Handle<any>;
    let extra: Record<string, unknown> = {};
    try { extra = h.spec.info?.() ?? {}; } catch (err) { extra = { infoError: (err as Error)?.message ?? String(err) }; }
    const core: SessionInfo = {
      id: h.id, plugin: h.plugin, kind: h.kind, streamPath: h.streamPath, remote: h.remote,
      startTime: new Date(h.startTime).toISOString(),
      ...(x.endedAt ? { ended: new Date(x.endedAt).toISOString(), endReason: x.endReason } : {}),
    };
    return compat ? { ...core, ...extra, id: h.id } : { ...extra, ...core };
  }

  /**
   * GET /{plugin}/api/list: `{ total, list: [...] }` plus one array per group used by the plugin
   * (`sessions`, `pulls`, `players`…), so the shapes documented per plugin stay.
   */
  listing(plugin: string, groups: string[] = [], extra?: () => Record<string, unknown>): Record<string, unknown> {
    const hs = this.list(plugin);
    const out: Record<string, unknown> = { total: hs.length, list: hs.map((h) => this.info(h)) };
    if (extra) Object.assign(out, extra());
    for (const g of groups) out[g] = [];
    for (const h of hs) {
      const g = h.spec.group;
      if (g && g !== 'list' && g !== 'total') ((out[g] ??= []) as unknown[]).push(this.info(h, true));
    }
    return out;
  }

  /** Live sessions per plugin and kind (metrics, summary). */
  counts(): { plugin: string; kind: string; count: number }[] {
    const m = new Map<string, { plugin: string; kind: string; count: number }>();
    for (const h of this.list(undefined, { live: true })) {
      const k = h.plugin + '\0' + h.kind;
      const e = m.get(k);
      if (e) e.count++; else m.set(k, { plugin: h.plugin, kind: h.kind, count: 1 });
    }
    return [...m.values()];
  }
}

/** A plugin's view of the registry (ctx.sessions): its own sessions only. */
export interface PluginSessions {
  add<R = unknown>(spec: SessionSpec<R>): SessionHandle<R>;
  get(id: number): SessionHandle | undefined;
  byKey<R = unknown>(key: string): SessionHandle<R> | undefined;
  /** This plugin's sessions; `live` leaves out ended ones still lingering. */
  list(opts?: { live?: boolean }): SessionHandle[];
  /** Groups always present in GET /{plugin}/api/list, even when empty (e.g. ['pulls', 'pushes']). */
  declareGroups(...groups: string[]): void;
  /** Plugin-wide fields added to GET /{plugin}/api/list (e.g. rtmp's pendingBytes budget). */
  listExtra(fn: () => Record<string, unknown>): void;
}

export function pluginSessions(reg: SessionRegistry, plugin: string, groups: string[], setExtra?: (fn: () => Record<string, unknown>) => void): PluginSessions {
  return {
    listExtra: (fn) => setExtra?.(fn),
    add: (spec) => reg.add(plugin, spec),
    get: (id) => { const h = reg.get(id); return h?.plugin === plugin ? h : undefined; },
    byKey: (key) => reg.byKey(plugin, key),
    list: (opts) => reg.list(plugin, opts),
    declareGroups: (...g) => { for (const x of g) if (!groups.includes(x)) groups.push(x); },
  };
}
