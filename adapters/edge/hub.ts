// The edge hub: answers viewers' HTTP requests from an origin m7s, with one origin fetch per distinct
// URL at a time (coalescing) and a short in-memory cache (plus the platform's Cache API for segments):
//   playlists  /hls/…m3u8, /llhls/…/index.m3u8   coalesced; a plain playlist is held `playlistTtlMs`
//              (one origin fetch per playlist version per TTL); an LL-HLS blocking reload
//              (?_HLS_msn=&_HLS_part=) is passed through as it is, and every viewer asking for the
//              same part shares its one origin request and answer
//   objects    segments, parts and init segments under /hls/ and /llhls/: immutable, coalesced, cached
//   live       /flv/….flv and /mp4/….mp4: one upstream body teed to every viewer (live.ts)
// Query strings (auth args: key/secret/token) go to the origin as they are and are part of every cache
// key, so the origin still decides who may play; viewers with the same args share one fetch.
// Web APIs only (fetch, ReadableStream, caches): runs under workerd, Deno and Bun unchanged.

import { LiveFeed } from './live.ts';

export interface EdgeConfig {
  /** Origin m7s base URL, e.g. http://origin.example:8080 */
  origin: string;
  /** Path prefixes served (others: 404). */
  prefixes: string[];
  playlistTtlMs: number;
  blockingTtlMs: number;
  segmentTtlMs: number;
  memoryBytes: number;
  viewerBuffer: number;
  gopBytes: number;
  timeoutMs: number;
  /** Headers forwarded to the origin (lower-case names). */
  forwardHeaders: string[];
  /** 'auto': the Workers cache (caches.default) only; 'on': also caches.open() elsewhere (Deno); 'off'. */
  useCacheApi: 'auto' | 'on' | 'off';
}

type Env = Record<string, unknown> | undefined;

const num = (v: unknown, d: number) => {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : typeof v === 'number' ? v : NaN;
  return Number.isFinite(n) && n >= 0 ? n : d;
};

/**
 * Config from environment bindings (Workers `env`), else Deno.env / process.env. Keys: ORIGIN_URL
 * (required), EDGE_PATHS, EDGE_PLAYLIST_TTL_MS, EDGE_SEGMENT_TTL_S, EDGE_MEMORY_MB,
 * EDGE_VIEWER_BUFFER_KB, EDGE_GOP_KB, EDGE_ORIGIN_TIMEOUT_MS, EDGE_FORWARD_HEADERS, EDGE_CACHE_API.
 */
export function readConfig(env: Env): EdgeConfig {
  const g = globalThis as { Deno?: { env: { get(k: string): string | undefined } }; process?: { env: Record<string, string | undefined> } };
  const get = (k: string): string | undefined => {
    const v = env && typeof env === 'object' ? env[k] : undefined;
    if (typeof v === 'string') return v;
    try { return g.Deno?.env.get(k) ?? g.process?.env?.[k]; } catch { return undefined; }
  };
  const origin = (get('ORIGIN_URL') ?? '').replace(/\/+$/, '');
  return {
    origin,
    prefixes: (get('EDGE_PATHS') ?? '/hls/,/llhls/,/flv/,/mp4/').split(',').map((s) => s.trim()).filter(Boolean),
    playlistTtlMs: num(get('EDGE_PLAYLIST_TTL_MS'), 500),
    blockingTtlMs: 3000,
    segmentTtlMs: num(get('EDGE_SEGMENT_TTL_S'), 60) * 1000,
    memoryBytes: num(get('EDGE_MEMORY_MB'), 64) * 1048576,
    viewerBuffer: num(get('EDGE_VIEWER_BUFFER_KB'), 4096) * 1024,
    gopBytes: num(get('EDGE_GOP_KB'), 2048) * 1024,
    timeoutMs: num(get('EDGE_ORIGIN_TIMEOUT_MS'), 15_000),
    forwardHeaders: (get('EDGE_FORWARD_HEADERS') ?? 'authorization,cookie,user-agent').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean),
    useCacheApi: ((v) => (v === 'on' || v === 'off' ? v : 'auto'))(get('EDGE_CACHE_API')),
  };
}

interface Entry { status: number; headers: [string, string][]; body: Uint8Array; expires: number }

const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'content-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer']);

export type Kind = 'playlist' | 'object' | 'live-flv' | 'live-mp4' | 'pass';

export function classify(pathname: string): Kind {
  if (pathname.endsWith('.m3u8')) return 'playlist';
  if (/^\/(hls|llhls)\/.+\.(ts|m4s|mp4|m4a|aac|vtt)$/.test(pathname)) return 'object';
  if (/^\/flv\/.+\.flv$/.test(pathname)) return 'live-flv';
  if (/^\/mp4\/.+\.mp4$/.test(pathname)) return 'live-mp4';
  return 'pass';
}

export class EdgeHub {
  readonly stats = { requests: 0, originFetches: 0, coalesced: 0, memoryHits: 0, cacheApiHits: 0, liveViewers: 0, liveDrops: 0, liveFeeds: 0, originErrors: 0 };
  private readonly inflight = new Map<string, Promise<Entry>>();
  private readonly mem = new Map<string, Entry>();
  private memBytes = 0;
  private readonly feeds = new Map<string, LiveFeed>();
  private cache: Promise<Cache | undefined> | undefined;

  constructor(readonly conf: EdgeConfig, private readonly opts: { coalesce?: boolean; copyBodies?: boolean; mode?: string } = {}) {}

  async handle(req: Request): Promise<Response> {
    this.stats.requests++;
    const url = new URL(req.url);
    if (url.pathname === '/edge/health') {
      return Response.json({ ok: !!this.conf.origin, mode: this.opts.mode ?? 'local', origin: this.conf.origin, stats: this.stats, feeds: this.feeds.size, cached: this.mem.size, cachedBytes: this.memBytes });
    }
    if (!this.conf.origin) return text(500, 'edge: ORIGIN_URL is not set\n');
    if (req.method === 'OPTIONS') return this.pass(req, url);
    if (req.method !== 'GET' && req.method !== 'HEAD') return text(405, 'edge: only GET and HEAD\n', { allow: 'GET, HEAD, OPTIONS' });
    if (!this.conf.prefixes.some((p) => url.pathname.startsWith(p))) return text(404, `edge: ${url.pathname} is not served here\n`);
    // Plugin APIs (/flv/api/list: sessions and peer addresses) stay on the origin.
    if (/^\/[^/]+\/api(\/|$)/.test(url.pathname)) return text(404, 'edge: plugin APIs are not served at the edge\n');
    const kind = req.method === 'HEAD' ? 'pass' : classify(url.pathname);
    const key = url.pathname + url.search + this.varyKey(req);
    const originUrl = this.conf.origin + url.pathname + url.search;
    if (this.opts.coalesce === false) return this.pass(req, url);
    switch (kind) {
      case 'playlist': {
        const blocking = url.searchParams.has('_HLS_msn');
        return this.respond(await this.object(req, key, originUrl, blocking ? this.conf.blockingTtlMs : this.conf.playlistTtlMs, false));
      }
      case 'object': return this.respond(await this.object(req, key, originUrl, this.conf.segmentTtlMs, true));
      case 'live-flv': case 'live-mp4': return this.live(req, key, originUrl, kind === 'live-flv' ? 'flv' : 'mp4');
      default: return this.pass(req, url);
    }
  }

  /** Forwarded headers that change the answer are part of the key (a viewer's own credentials). */
  private varyKey(req: Request): string {
    const a = req.headers.get('authorization'), c = req.headers.get('cookie');
    return a || c ? `#${a ?? ''}#${c ?? ''}` : '';
  }

  private forward(req: Request): Headers {
    const h = new Headers();
    for (const n of this.conf.forwardHeaders) { const v = req.headers.get(n); if (v !== null) h.set(n, v); }
    return h;
  }

  /** Plain proxy: no coalescing (HEAD, OPTIONS, API paths under a prefix). */
  private async pass(req: Request, url: URL): Promise<Response> {
    this.stats.originFetches++;
    try {
      const r = await fetch(this.conf.origin + url.pathname + url.search, { method: req.method, headers: this.forward(req) });
      return new Response(req.method === 'HEAD' ? null : r.body, { status: r.status, headers: clean(r.headers) });
    } catch (err) {
      this.stats.originErrors++;
      return text(502, `edge: origin unreachable (${(err as Error)?.message ?? err})\n`);
    }
  }

  private respond(e: Entry): Response {
    return new Response(e.body.slice(), { status: e.status, headers: e.headers });
  }

  /** A whole body from the origin: memory cache, Cache API, or one shared origin fetch. */
  private async object(req: Request, key: string, originUrl: string, ttlMs: number, useCacheApi: boolean): Promise<Entry> {
    const now = Date.now();
    const m = this.mem.get(key);
    if (m && m.expires > now) { this.stats.memoryHits++; return m; }
    if (m) this.drop(key);
    const p = this.inflight.get(key);
    if (p) { this.stats.coalesced++; return p; }
    const job = (async (): Promise<Entry> => {
      const cache = useCacheApi ? await this.cacheApi() : undefined;
      const cacheReq = cache ? new Request('https://m7s-edge.invalid' + key.replace(/#.*$/, '')) : undefined;
      if (cache && cacheReq && !this.varyKey(req)) {
        try {
          const hit = await cache.match(cacheReq);
          if (hit) { this.stats.cacheApiHits++; return this.store(key, await entryOf(hit, ttlMs), ttlMs); }
        } catch { /* a cache miss */ }
      }
      this.stats.originFetches++;
      let r: Response;
      try {
        r = await fetch(originUrl, { headers: this.forward(req), signal: AbortSignal.timeout(this.conf.timeoutMs + (ttlMs === this.conf.blockingTtlMs ? 30_000 : 0)) });
      } catch (err) {
        this.stats.originErrors++;
        return { status: 502, headers: [['content-type', 'text/plain']], body: new TextEncoder().encode(`edge: origin unreachable (${(err as Error)?.message ?? err})\n`), expires: 0 };
      }
      const e = await entryOf(r, ttlMs);
      if (r.status === 200) {
        this.store(key, e, ttlMs);
        if (cache && cacheReq && !this.varyKey(req) && /max-age=\d/.test(r.headers.get('cache-control') ?? '')) {
          cache.put(cacheReq, new Response(e.body.slice(), { status: 200, headers: e.headers })).catch(() => {});
        }
      }
      return e;
    })().finally(() => this.inflight.delete(key));
    this.inflight.set(key, job);
    return job;
  }

  private store(key: string, e: Entry, ttlMs: number): Entry {
    if (ttlMs <= 0 || e.body.length > this.conf.memoryBytes / 4) return e;
    e.expires = Date.now() + ttlMs;
    this.drop(key);
    this.mem.set(key, e);
    this.memBytes += e.body.length;
    // Oldest first: Map keeps insertion order.
    const now = Date.now();
    for (const [k, v] of this.mem) {
      if (this.memBytes <= this.conf.memoryBytes && v.expires > now) break;
      this.drop(k);
    }
    return e;
  }

  private drop(key: string): void {
    const e = this.mem.get(key);
    if (e) { this.memBytes -= e.body.length; this.mem.delete(key); }
  }

  private cacheApi(): Promise<Cache | undefined> {
    return (this.cache ??= (async () => {
      if (this.conf.useCacheApi === 'off') return undefined;
      const c = (globalThis as { caches?: CacheStorage & { default?: Cache } }).caches;
      if (!c) return undefined;
      // Workers' cache honours max-age; Deno's caches.open() stores on disk, outside EDGE_MEMORY_MB,
      // so it is used only when asked for (EDGE_CACHE_API=on).
      if (c.default) return c.default;
      if (this.conf.useCacheApi !== 'on') return undefined;
      try { return await c.open('m7s-edge'); } catch { return undefined; }
    })());
  }

  private async live(req: Request, key: string, originUrl: string, kind: 'flv' | 'mp4'): Promise<Response> {
    let feed = this.feeds.get(key);
    if (feed) this.stats.coalesced++;
    else {
      this.stats.liveFeeds++;
      feed = new LiveFeed({
        key, url: originUrl, kind, headers: this.forward(req), viewerBuffer: this.conf.viewerBuffer, gopBytes: this.conf.gopBytes,
        timeoutMs: this.conf.timeoutMs, copy: !!this.opts.copyBodies, stats: this.stats,
        onEnd: (f) => { if (this.feeds.get(key) === f) this.feeds.delete(key); this.stats.liveFeeds--; },
      });
      this.feeds.set(key, feed);
    }
    const body = feed.attach();
    const head = await feed.head;
    if (head.status !== 200) {
      body.cancel().catch(() => {});
      if (head.status >= 500) this.stats.originErrors++;
      return new Response(head.text ?? '', { status: head.status, headers: clean(head.headers) });
    }
    const h = clean(head.headers);
    h.set('cache-control', 'no-cache, no-store');
    return new Response(body, { status: 200, headers: h });
  }
}

function clean(src: Headers): Headers {
  const h = new Headers();
  src.forEach((v, k) => { if (!HOP.has(k.toLowerCase())) h.set(k, v); });
  return h;
}

async function entryOf(r: Response, ttlMs: number): Promise<Entry> {
  const body = new Uint8Array(await r.arrayBuffer());
  const headers: [string, string][] = [];
  r.headers.forEach((v, k) => { if (!HOP.has(k.toLowerCase())) headers.push([k, v]); });
  return { status: r.status, headers, body, expires: Date.now() + ttlMs };
}

function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body, { status, headers: { 'content-type': 'text/plain; charset=utf-8', ...headers } });
}
