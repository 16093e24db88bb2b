// HTTP answers shared by the hls and llhls plugins: playlists (with the first-segment wait, `?timeout=`
// and LL-HLS blocking reloads), segments, parts and init segments from a segmenter's memory, with the
// content types and cache headers a CDN can use.

import type { Context } from 'hono';
import { requestAuth } from '../../src/http/peer.ts';
import { parseDuration } from '../../src/config/schema.ts';
import type { PluginContext } from '../../src/plugin.ts';
import type { HlsManager, Session } from './manager.ts';
import type { SegmentKind } from './segmenter.ts';
import { isAbrMember, masterPlaylist, renditionsOf } from './abr.ts';

export const M3U8_TYPE = 'application/vnd.apple.mpegurl';
/** Playlists change all the time: a CDN revalidates each (blocking reloads carry their own URL). */
const PLAYLIST_CACHE = 'no-cache';
/** Query args this plugin consumes (not passed to the engine as stream args). */
const OWN_ARGS = ['timeout', 'fmp4', 'media', '_HLS_msn', '_HLS_part', '_HLS_skip'];

export function mediaHeaders(type: string, maxAgeSec: number): Record<string, string> {
  return { 'content-type': type, 'cache-control': `public, max-age=${Math.max(1, Math.round(maxAgeSec))}, immutable` };
}

/** `?timeout=`: a Go duration ("10s", "500ms") or a bare number of seconds. */
export function timeoutArg(v: string | null): number | undefined {
  if (v === null || v === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const ms = parseDuration(v);
  return ms !== undefined && ms >= 0 ? ms : undefined;
}

/** The stream args of a request: its query without our own keys. */
export function streamTarget(path: string, url: URL): string {
  const q = new URLSearchParams(url.search);
  for (const k of OWN_ARGS) q.delete(k);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/** List (or refresh) the client of this request as a viewer of segmenter `s` (ip + user agent). */
export function touchViewer(ctx: PluginContext<any>, mgr: HlsManager, c: Context, s: Session, bytes: number): void {
  const remote = ctx.remoteOf(c); // the peer, never X-Forwarded-For (a client could claim any ip)
  // Players open new connections for segments: the viewer is the ip, not ip:port.
  const ip = remote?.replace(/^\[(.*)\](?::\d+)?$/, '$1').replace(/^([^:]+):\d+$/, '$1');
  mgr.touchViewer(ctx.sessions, s, ip, c.req.header('user-agent') ?? '', bytes);
}

/**
 * Every HLS request (playlist, segment, part, init) passes the auth gate: a segmenter is shared by all
 * players of a path, so its subscribe alone would let later players in unchecked.
 */
export async function checkAccess(ctx: PluginContext<any>, c: Context, path: string, url: URL): Promise<Response | undefined> {
  // A refusal is an EngineError: the app's onError answers it with its status.
  await ctx.engine.checkAccess('subscribe', streamTarget(path, url), { protocol: ctx.name, ...requestAuth(c), config: ctx.config.subscribe });
  return undefined;
}

/** The playlist with the request's stream args (credentials, key secret) on every URI, so segments pass the gate too. */
export function withArgs(text: string, url: URL): string {
  const q = new URLSearchParams(url.search);
  for (const k of OWN_ARGS) q.delete(k);
  const qs = q.toString();
  if (!qs) return text;
  const add = (u: string) => u + (u.includes('?') ? '&' : '?') + qs;
  return text.split('\n').map((l) => !l || l.startsWith('#') ? l.replace(/URI="([^"]*)"/g, (_, u: string) => `URI="${add(u)}"`) : add(l)).join('\n');
}

/**
 * Start (or find) the segmenter for a playlist request and wait until it has `minSegments` complete
 * segments (at most `window`): 1 for LL-HLS, whose parts give a player its headroom; `hls.startsegments`
 * for plain HLS, where a first playlist of one segment puts the player at the live edge with nothing
 * to spare, and it stalls at the next boundary whenever a reload or fetch is slow.
 */
export async function sessionFor(ctx: PluginContext<any>, mgr: HlsManager, c: Context, path: string, kind: SegmentKind, url: URL, minSegments = 1): Promise<Session | Response> {
  const raw = url.searchParams.get('timeout');
  const wait = timeoutArg(raw);
  if (raw !== null && wait === undefined) return ctx.fail(c, 400, `bad timeout ${JSON.stringify(raw.slice(0, 40))}: use e.g. 10s`);
  const denied = await checkAccess(ctx, c, path, url);
  if (denied) return denied;
  let s: Session;
  // An EngineError (not found, refused) is answered by the app's onError with its status.
  // A source with renditions, or a rendition: cut on the shared grid (aligned ABR segments, ./abr.ts).
  const align = isAbrMember(ctx.engine, path);
  s = await mgr.open(path, streamTarget(path, url), kind, wait ?? 0, ctx.subscribe, { align, subscribeConfig: ctx.config.subscribe, sessions: ctx.sessions, ...requestAuth(c), signal: c.req.raw.signal });
  // A fresh segmenter has no complete segment yet: hold the first playlist until it has `want`.
  const seg = s.seg;
  const want = Math.max(1, Math.min(minSegments, mgr.settings.window));
  const firstWait = (want + 1) * mgr.settings.fragment + 5000;
  await seg.waitFor(() => seg.complete().length >= want, firstWait);
  if (!seg.complete().length) {
    return ctx.fail(c, seg.ended ? 404 : 503, seg.ended ? `stream ${path} ended: ${seg.endReason}` : `no segment of ${path} yet`);
  }
  touchViewer(ctx, mgr, c, s, 0);
  return s;
}

export function playlistResponse(text: string): Response {
  return new Response(text, { status: 200, headers: { 'content-type': M3U8_TYPE, 'cache-control': PLAYLIST_CACHE } });
}

/** How long a segment stays valid for a cache: the time it is held (window + extra segments). */
export function segmentMaxAge(mgr: HlsManager): number {
  const s = mgr.settings;
  return ((s.window + s.extra) * s.fragment) / 1000;
}

/** A segment of a running segmenter: 404 when unknown or out of the window; waits for the one being written. */
export async function serveSegment(ctx: PluginContext<any>, mgr: HlsManager, c: Context, s: Session | undefined, msn: number, what: string): Promise<Response> {
  if (!s) return ctx.fail(c, 404, `${what}: no HLS session for this stream (fetch the playlist first)`);
  const seg = s.seg;
  const x = seg.segment(msn);
  if (x && !x.complete) {
    await seg.waitFor(() => x.complete, 2 * seg.targetDuration() * 1000);
    if (!x.complete) return ctx.fail(c, 503, `${what} is not complete yet`);
  }
  if (!x) return ctx.fail(c, 404, `${what} is not available (outside the window)`);
  const type = s.kind === 'ts' ? 'video/mp2t' : 'video/mp4';
  const body = seg.body(x);
  touchViewer(ctx, mgr, c, s, body.byteLength);
  return new Response(body as Uint8Array<ArrayBuffer>, { status: 200, headers: mediaHeaders(type, segmentMaxAge(mgr)) });
}

export function serveInit(ctx: PluginContext<any>, mgr: HlsManager, c: Context, s: Session | undefined, version: number | undefined): Response {
  if (!s || s.kind !== 'fmp4') return ctx.fail(c, 404, 'no fMP4 HLS session for this stream');
  const v = version ?? s.seg.initVersion;
  const init = s.seg.inits.get(v);
  if (!init) return ctx.fail(c, 404, `init segment ${v} is not available`);
  return new Response(init as Uint8Array<ArrayBuffer>, { status: 200, headers: mediaHeaders('video/mp4', version === undefined ? 1 : segmentMaxAge(mgr) * 10) });
}

/**
 * The master playlist of a stream with renditions (./abr.ts), or undefined when it has none. The
 * renditions' segmenters are started at once (aligned), so a player switching level finds its playlist
 * ready. `uri` names each variant's media playlist relative to the master.
 */
export async function masterFor(ctx: PluginContext<any>, mgr: HlsManager, c: Context, path: string, kind: SegmentKind, url: URL, uri: (variantPath: string, isSource: boolean) => string): Promise<Response | undefined> {
  const source = ctx.engine.getStream(path);
  if (!source?.publisher) return undefined;
  const rs = renditionsOf(ctx.engine, path);
  if (!rs.length) return undefined;
  await checkAccess(ctx, c, path, url);
  for (const v of [source, ...rs]) {
    if (mgr.find(v.path, kind)?.seg.align) continue;
    mgr.open(v.path, streamTarget(v.path, url), kind, 0, ctx.subscribe, { align: true, subscribeConfig: ctx.config.subscribe, sessions: ctx.sessions, ...requestAuth(c) })
      .catch((err) => ctx.logger.debug('abr variant segmenter not started', { stream: v.path, error: err }));
  }
  return playlistResponse(withArgs(masterPlaylist(source, rs, kind, (s, isSource) => uri(s.path, isSource)), url));
}
