// One HTTP / WebSocket player helper for every plugin that streams a subscription to a client
// (HTTP-FLV, WS-FLV, fMP4 over HTTP/WS, …): it subscribes, opens the body through ctx.streamBody only
// once the subscription is accepted (so a missing stream or refused key still gets its own status),
// owns the abort/close wiring (client gone → subscription closed; stream ended → body ended), and lists
// the player in the session registry. A subscribe that fails before the head went out is thrown: the
// app's onError answers it (EngineError → its HTTP status), so no plugin maps errors itself. hono's
// helper/streaming (stream(c, cb, onError) with onAbort) is the model.

import type { Context } from 'hono';
import type { Subscriber } from '../core/subscriber.ts';
import { EngineError } from '../core/errors.ts';
import type { ByteSink } from '../net/body.ts';
import { wsByteSink } from '../net/body.ts';
import type { WsConn, WsHandler } from '../net/types.ts';
import type { BatchedByteSink } from '../net/batch-sink.ts';
import type { PluginSessions, SessionHandle } from '../sessions.ts';
import type { Logger } from '../log.ts';
import type { Credentials } from '../core/auth.ts';
import { requestAuth } from './peer.ts';

export interface PlayerOptions {
  /** Stream path plus the query to subscribe with (auth args, track selection). */
  target: string;
  /** The stream path as listed. */
  streamPath: string;
  /** Session kinds for the two transports (listed in GET /{plugin}/api/list). */
  kind: { http: string; ws: string };
  /** The list group (default 'players'). */
  group?: string;
  /** Response headers of the HTTP body. */
  headers: Record<string, string>;
  /** High-water mark of the body / WebSocket queue (bytes). */
  highWaterMark: number;
  /** The plugin's sink: gets the ByteSink, or for HTTP a factory opening it on first use (from begin()). */
  make(out: ByteSink | (() => ByteSink)): BatchedByteSink;
  /** Extra fields for the listing. */
  info?(sub: Subscriber): Record<string, unknown>;
  /** Called once the subscription is accepted (both transports), e.g. to warn about tracks left out. */
  onSubscribed?(sub: Subscriber): void;
}

/** The slice of the plugin context the helper uses. */
export interface PlayerHost {
  readonly logger: Logger;
  readonly sessions: PluginSessions;
  subscribe(streamPath: string, opts: { sink: BatchedByteSink; remote?: string; ip?: string; credentials?: Credentials; signal?: AbortSignal }): Promise<Subscriber>;
  streamBody(c: Context, status: number, headers: Record<string, string>, highWaterMark: number): { sink: ByteSink; response: Response };
  upgradeWebSocket(c: Context, handler: WsHandler): Response | Promise<Response | undefined> | undefined;
  remoteOf(c: Context): string | undefined;
}

/** WebSocket close code for an error before streaming: 4000 + the HTTP status (4404 not found, …). */
export const wsCloseCode = (status: number) => 4000 + Math.min(999, Math.max(0, status));

/**
 * Close a WebSocket for an error that came before streaming (a refused publish or subscribe): code
 * 4000 + the EngineError's HTTP status (4404, 4403…; 4500 for anything else), the message as reason.
 */
export function closeWsWithError(ws: WsConn, err: unknown): void {
  const status = err instanceof EngineError ? err.httpStatus : 500;
  const m = (err as Error)?.message ?? String(err);
  ws.close(wsCloseCode(status), m.slice(0, 100));
}

/** Play over WebSocket when the request is an upgrade, over a streamed HTTP body otherwise. */
export async function play(host: PlayerHost, c: Context, opts: PlayerOptions): Promise<Response> {
  if (c.req.header('upgrade')?.toLowerCase() === 'websocket') {
    const res = await host.upgradeWebSocket(c, wsPlayer(host, opts, whoOf(host, c)));
    if (res) return res;
  }
  return playHttp(host, c, opts);
}

function playerInfo(sub: Subscriber, opts: PlayerOptions, kind: string): Record<string, unknown> {
  const i = sub.info();
  return {
    type: kind, subscriberId: i.id, state: i.state, bytesSent: i.bytesSent, framesSent: i.framesSent,
    framesDropped: i.framesDropped, skips: i.skips, buffered: i.buffered, lagMs: i.lagMs, degraded: i.degraded,
    ...opts.info?.(sub),
  };
}

/** The peer (for the listing and the auth gate) and the request's credentials (Authorization header). */
function whoOf(host: PlayerHost, c: Context): { remote?: string; ip: string; credentials?: Credentials } {
  const w = requestAuth(c);
  return { ...w, remote: w.remote ?? host.remoteOf(c) };
}

export async function playHttp(host: PlayerHost, c: Context, opts: PlayerOptions): Promise<Response> {
  const who = whoOf(host, c);
  const remote = who.remote;
  let streamed: { sink: ByteSink; response: Response } | undefined;
  const player = opts.make(() => (streamed = host.streamBody(c, 200, opts.headers, opts.highWaterMark)).sink);
  const abort = c.req.raw.signal;
  let sub: Subscriber;
  try {
    sub = await host.subscribe(opts.target, { sink: player, ...who, signal: abort });
  } catch (err) {
    if (streamed) { streamed.sink.end(); return streamed.response; } // the head went out: just end
    throw err; // → app.onError: EngineError's status, or 500
  }
  if (!streamed) {
    sub.close('no response body');
    throw new EngineError('Closed', sub.error || 'stream could not start');
  }
  const { sink, response } = streamed;
  opts.onSubscribed?.(sub);
  const handle: SessionHandle = host.sessions.add({
    kind: opts.kind.http, group: opts.group ?? 'players', streamPath: opts.streamPath, remote, ref: sub,
    stop: (r) => { sub.close(r); sink.end(); },
    info: () => playerInfo(sub, opts, opts.kind.http),
  });
  const forget = () => handle.remove();
  player.onEnd = forget;
  const prevClose = sink.onClose;
  sink.onClose = (err) => { forget(); prevClose?.(err); };
  if (sink.closed || abort?.aborted) { forget(); sub.close('client disconnected'); }
  else abort?.addEventListener('abort', () => { forget(); sub.close('client disconnected'); sink.end(); }, { once: true });
  return response;
}

function wsPlayer(host: PlayerHost, opts: PlayerOptions, who: { remote?: string; ip: string; credentials?: Credentials }): WsHandler {
  const remote = who.remote;
  // Aborted when the socket closes: a subscriber still waiting for the stream goes at once.
  const ac = new AbortController();
  let sub: Subscriber | null = null;
  let out: ByteSink | null = null;
  let handle: SessionHandle | null = null;
  let gone = false;
  return {
    onOpen(ws: WsConn) {
      out = wsByteSink(ws, opts.highWaterMark);
      const o = out;
      const player = opts.make(o);
      host.subscribe(opts.target, { sink: player, ...who, signal: ac.signal }).then((s) => {
        sub = s;
        opts.onSubscribed?.(s);
        if (gone) { s.close('client disconnected'); return; }
        handle = host.sessions.add({
          kind: opts.kind.ws, group: opts.group ?? 'players', streamPath: opts.streamPath, remote, ref: s,
          stop: (r) => { s.close(r); o.end(); },
          info: () => playerInfo(s, opts, opts.kind.ws),
        });
        player.onEnd = () => handle?.remove();
      }, (err) => {
        if (!(err instanceof EngineError)) host.logger.error('WebSocket player failed', { stream: opts.streamPath, error: err });
        closeWsWithError(ws, err);
      });
    },
    onMessage() { /* players send nothing we need */ },
    onClose() {
      gone = true;
      ac.abort();
      out?.end();
      sub?.close('client disconnected');
      handle?.remove();
    },
  };
}
