// One auth gate that every publish and every subscribe passes through before a stream is touched.
// Built in: Monibuca's key + expire scheme. Plugins add hooks (JWT, HTTP callback, ...) with
// engine.addAuthHook(); the first hook that denies wins.

import { EngineError } from './errors.ts';
import { md5Hex } from './md5.ts';

export interface AuthRequest {
  kind: 'publish' | 'subscribe';
  /** The permission asked for: publish, read (live play) or playback (recordings). */
  action: 'publish' | 'read' | 'playback';
  streamPath: string;
  args: Record<string, string>;
  /** The plugin asking (rtmp, flv, ...). */
  protocol: string;
  /** server (a client of ours), or an internal job: pull, push, record, transform, ... */
  type: string;
  remote?: string;
  /** The peer address as the transport saw it ("" when unknown). */
  ip: string;
  /** Credentials: from the transport (HTTP Authorization) or the args `user`/`pass`/`jwt`. */
  user?: string;
  password?: string;
  token?: string;
}

/** Credentials a protocol plugin read from its transport (HTTP Authorization header). */
export interface Credentials { user?: string; password?: string; token?: string }

/** Args that carry credentials: read by the auth gate, then removed from the stream's args. */
export const CREDENTIAL_ARGS = ['user', 'pass', 'jwt'];

/** Return false or throw to deny (EngineError 'Unauthorized' → 401, 'Forbidden' → 403); return true/undefined to allow (the next hook still runs). */
export type AuthHook = (req: AuthRequest) => boolean | void | Promise<boolean | void>;

export interface KeyAuthConfig { key: string; secretargname: string; expireargname: string }

/**
 * Monibuca's scheme: `?secret=md5(key + streamPath + expire)&expire=<unix seconds in hex>`.
 * `now` is in ms. Throws EngineError('Unauthorized') with the reason.
 */
export function checkKeyAuth(conf: KeyAuthConfig, streamPath: string, args: Record<string, string>, now = Date.now()): void {
  if (!conf.key) return;
  const secret = args[conf.secretargname];
  const expire = args[conf.expireargname];
  if (!secret || !expire) throw new EngineError('Unauthorized', `missing ${conf.secretargname}/${conf.expireargname}`);
  if (!/^[0-9a-fA-F]{1,12}$/.test(expire)) throw new EngineError('Unauthorized', `${conf.expireargname} must be a hex unix time`);
  const exp = parseInt(expire, 16);
  if (exp * 1000 < now) throw new EngineError('Unauthorized', 'secret expired');
  const want = md5Hex(conf.key + streamPath + expire);
  if (secret.toLowerCase() !== want) throw new EngineError('Unauthorized', 'bad secret');
}

/** Make the query args for a stream (for tests, the API and users' own tooling). */
export function makeKeyAuthArgs(conf: KeyAuthConfig, streamPath: string, expireUnixSeconds: number): Record<string, string> {
  const expire = Math.floor(expireUnixSeconds).toString(16);
  return { [conf.secretargname]: md5Hex(conf.key + streamPath + expire), [conf.expireargname]: expire };
}
