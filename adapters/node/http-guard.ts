// Limits of a node:http(s) server (Node; Deno uses it through the same node:http module): a header
// timeout that also covers connections that never send a byte (node:http's own headersTimeout only
// starts with the first byte), the keep-alive idle timeout, and the connection cap of conn-guard.ts.

import type { Server, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { HttpLimits } from '../../src/net/types.ts';
import { ConnGuard, type GuardEntry } from './conn-guard.ts';

/** Defaults when the caller passes no limits (global.http defaults). */
export const DEFAULT_HTTP_LIMITS: HttpLimits = { readHeaderTimeout: 10_000, idleTimeout: 60_000, maxConnections: 0 };

/** Apply `limits` to a listening node:http or node:https server. Returns its guard (tests, metrics). */
export function guardNodeHttpServer(server: Server, limits: HttpLimits = DEFAULT_HTTP_LIMITS, what = 'http'): ConnGuard {
  const guard = new ConnGuard(what, limits.maxConnections);
  const entries = new WeakMap<Socket, { e: GuardEntry; timer?: ReturnType<typeof setTimeout> }>();
  // node:http's own timers: a started but incomplete head, and idle keep-alive connections.
  if (limits.readHeaderTimeout > 0) server.headersTimeout = limits.readHeaderTimeout;
  server.keepAliveTimeout = limits.idleTimeout > 0 ? limits.idleTimeout : 0;

  const arm = (sock: Socket, rec: { e: GuardEntry; timer?: ReturnType<typeof setTimeout> }) => {
    if (limits.readHeaderTimeout <= 0) return;
    clearTimeout(rec.timer);
    rec.timer = setTimeout(() => { if (!rec.e.active) sock.destroy(); }, limits.readHeaderTimeout);
    (rec.timer as unknown as { unref?: () => void }).unref?.();
  };

  const onConnection = (sock: Socket) => {
    const rec: { e: GuardEntry; timer?: ReturnType<typeof setTimeout> } = { e: null as unknown as GuardEntry };
    const e = guard.admit(() => sock.destroy());
    if (!e) { sock.on('error', () => {}); sock.destroy(); return; }
    rec.e = e;
    entries.set(sock, rec);
    arm(sock, rec);
    sock.once('close', () => { clearTimeout(rec.timer); guard.remove(e); });
  };
  // TLS: 'connection' carries the raw socket, requests the TLS one; map the TLS socket to the raw one's record.
  server.on('connection', onConnection);
  server.on('secureConnection', (tlsSock: Socket & { _parent?: Socket }) => {
    const rec = tlsSock._parent ? entries.get(tlsSock._parent) : undefined;
    if (rec) entries.set(tlsSock, rec);
  });

  const socketOf = (req: IncomingMessage) => req.socket as Socket;
  // A complete head: the connection is a real client until its response is done.
  server.prependListener('request', (req: IncomingMessage, res: { once(ev: string, fn: () => void): void }) => {
    const sock = socketOf(req);
    const rec = entries.get(sock);
    if (!rec) return;
    rec.e.active = true;
    clearTimeout(rec.timer);
    // Between keep-alive requests the connection is idle again: evictable; keepAliveTimeout closes it.
    res.once('finish', () => { rec.e.active = false; });
  });
  server.prependListener('upgrade', (req: IncomingMessage) => {
    const rec = entries.get(socketOf(req));
    if (rec) { rec.e.active = true; clearTimeout(rec.timer); }
  });
  return guard;
}
