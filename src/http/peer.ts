// The peer of an HTTP request and the credentials it carries, for the auth gate. The ONE place that
// digs the peer address out of each runtime's request context; switch it to Runtime.connInfo(c) when
// that exists. A forwarded header (X-Forwarded-For) is never used as the peer address.

import type { Context } from 'hono';
import { type AuthAction, type Authorizer, type AuthzResult, httpCredentials } from '../auth/permissions.ts';
import type { Credentials } from '../core/auth.ts';

export interface Peer { ip: string; port: number }

/** The transport's peer address: Node (@hono/node-server env.incoming), Bun (server.requestIP), Deno (info.remoteAddr). */
export function peerOf(c: Context): Peer | undefined {
  const env = c.env as Record<string, any> | undefined;
  if (!env) return undefined;
  try {
    const s = env.incoming?.socket;
    if (s?.remoteAddress) return { ip: String(s.remoteAddress), port: Number(s.remotePort ?? 0) };
    if (typeof env.requestIP === 'function') {
      const a = env.requestIP(c.req.raw);
      if (a?.address) return { ip: String(a.address), port: Number(a.port ?? 0) };
    }
    const r = env.remoteAddr;
    if (r?.hostname) return { ip: String(r.hostname), port: Number(r.port ?? 0) };
  } catch { /* no peer info */ }
  return undefined;
}

/** "ip:port" for logs and session lists ("[v6]:port" for IPv6). */
export function peerText(p: Peer | undefined): string | undefined {
  if (!p) return undefined;
  return p.ip.includes(':') ? `[${p.ip}]:${p.port}` : `${p.ip}:${p.port}`;
}

/** Credentials from the Authorization header (Basic → user/password, Bearer → token). Query args are read by the engine. */
export function headerCredentials(c: Context): Credentials | undefined {
  const h = (c.req.header('authorization') ?? '').trim();
  const sp = h.indexOf(' ');
  if (sp <= 0) return undefined;
  const scheme = h.slice(0, sp).toLowerCase();
  const val = h.slice(sp + 1).trim();
  if (scheme === 'bearer' && val) return { token: val };
  if (scheme === 'basic' && val) {
    try {
      const dec = new TextDecoder().decode(Uint8Array.from(atob(val), (ch) => ch.charCodeAt(0)));
      const i = dec.indexOf(':');
      return i >= 0 ? { user: dec.slice(0, i), password: dec.slice(i + 1) } : { user: dec, password: '' };
    } catch { return undefined; }
  }
  return undefined;
}

/** What a protocol plugin passes to ctx.publish/ctx.subscribe for an HTTP request. */
export function requestAuth(c: Context): { ip: string; remote?: string; credentials?: Credentials } {
  const p = peerOf(c);
  return { ip: p?.ip ?? '', remote: peerText(p), credentials: headerCredentials(c) };
}

/**
 * The API guard's one call (actions `api` / `metrics`): credentials from Authorization (Basic/Bearer)
 * or ?user=&pass=&jwt=, the transport's peer address, and `path` as the guard normalised it (decoded,
 * no leading slash, e.g. "api/config/get"). Resolves to the authorizer's answer; never throws.
 */
export function authorizeHttp(az: Authorizer, c: Context, action: AuthAction, path: string): Promise<AuthzResult> {
  const url = new URL(c.req.url);
  const creds = httpCredentials(c.req.header('authorization'), url.searchParams);
  const query: Record<string, string> = {};
  for (const [k, v] of url.searchParams) if (k !== 'pass' && k !== 'jwt' && k.length <= 64) query[k] = v.slice(0, 1024);
  return az.authorize({ action, path, protocol: 'http', ip: peerOf(c)?.ip ?? '', ...creds, query });
}
