// The engine's own config: the `global:` section. `publish` and `subscribe` are inherited by every
// plugin section (a plugin may override any key for its own publishers/subscribers), and URL query
// args may override only the harmless keys in PUBLISH_ARGS_ALLOW / SUBSCRIBE_ARGS_ALLOW.

import { t } from './config/schema.ts';
import { LOG_LEVELS, type LogLevel } from './log.ts';

export const publishSchema = {
  maxcount: t.num(0, { min: 0, int: true }),
  pubaudio: true,
  pubvideo: true,
  kickexist: false,
  publishtimeout: t.dur('10s'),
  delayclosetimeout: t.dur(0),
  idletimeout: t.dur(0),
  pausetimeout: t.dur('30s'),
  buffertime: t.dur(0),
  speed: t.num(0, { min: 0, max: 100 }),
  key: '',
  secretargname: 'secret',
  expireargname: 'expire',
  ringsize: t.num(4096, { min: 64, max: 65536, int: true }),
  ringbytes: t.num(64 * 1024 * 1024, { min: 1024 * 1024, int: true }),
};

export const subscribeSchema = {
  maxcount: t.num(0, { min: 0, int: true }),
  subaudio: true,
  subvideo: true,
  submode: t.str('real', { enum: ['real', 'noskip', 'buffer', '0', '1', '2'] }),
  buffertime: t.dur(0),
  iframeonly: false,
  waittimeout: t.dur('10s'),
  waittrack: t.str('video', { enum: ['video', 'audio', 'all', 'any'] }),
  maxlag: t.dur('3s'),
  mergewrite: t.dur(0),
  catchup: t.dur('100ms'),
  key: '',
  secretargname: 'secret',
  expireargname: 'expire',
  subvideoargname: 'vts',
  subaudioargname: 'ats',
};

export const globalSchema = {
  loglevel: t.str<LogLevel>('info', { enum: LOG_LEVELS }),
  /** auto: pretty on a terminal, JSON lines otherwise. */
  logformat: t.str('auto', { enum: ['auto', 'json', 'pretty'] }),
  http: {
    listenaddr: ':8080',
    listenaddrtls: '',
    certfile: '',
    keyfile: '',
    cors: true,
    /** Basic auth for /api/... and /{plugin}/api/... when both are set (then required from every client). */
    username: '',
    password: '',
    /** Without username/password, the API answers only peers in these ranges (CIDRs or loopback/private/linklocal). */
    apiallow: t.list(t.str(''), ['loopback']),
    /** Origins (https://admin.example.com) allowed to call the API from a browser page elsewhere. */
    apiorigins: t.list(t.str(''), []),
  },
  publish: publishSchema,
  subscribe: subscribeSchema,
  /** Pull and push policy (docs/security.md): what API-created pulls and pushes may reach. */
  outbound: {
    /** Directories file pulls may read from; empty = file pulls only from config.yaml, never from the API. */
    fileroots: t.list(t.str(''), []),
    /** Hosts (names, `.example.com`, IPs, CIDRs) API pulls/pushes may reach even when denyhosts covers them. */
    allowhosts: t.list(t.str(''), []),
    /** Address ranges API pulls/pushes may not reach (names: loopback, private, linklocal, unspecified). */
    denyhosts: t.list(t.str(''), ['loopback', 'private', 'linklocal', 'unspecified']),
    /** Pulls and pushes running at once, all plugins together; 0 = no limit. */
    maxjobs: t.num(64, { min: 0, int: true }),
    /** An API-created pull or push gives up after this many failed reconnects. */
    retrycount: t.num(10, { min: 0, int: true }),
  },
};

/**
 * The settings a client may change for its own request through URL query args (`?subaudio=false`). An
 * allow-list: every other key (secrets, limits, memory bounds, and timeouts that protect the server,
 * like publishtimeout, idletimeout or delayclosetimeout) is the operator's. A publisher only chooses
 * which of its tracks to send; a player only how it wants to watch.
 */
export const PUBLISH_ARGS_ALLOW = ['pubaudio', 'pubvideo'];
/** waittimeout is allowed here; it is bounded by the configured value where waits are capped. */
export const SUBSCRIBE_ARGS_ALLOW = ['subaudio', 'subvideo', 'submode', 'buffertime', 'iframeonly', 'waittimeout', 'waittrack', 'maxlag', 'mergewrite', 'catchup'];
/** @deprecated kept for callers of the old deny-list; query args now go through the allow-lists above. */
export const ARGS_DENY = ['key', 'secretargname', 'expireargname', 'maxcount', 'ringsize', 'ringbytes', 'subvideoargname', 'subaudioargname'];

/** ":8080" / "0.0.0.0:8080" / "[::1]:8080" / "8080" → host + port. Empty string → null (off). */
export function parseListenAddr(addr: string, what: string): { host?: string; port: number } | null {
  const a = addr.trim();
  if (!a) return null;
  const m = /^(?:\[([^\]]+)\]|([^:]*))?:?(\d{1,5})$/.exec(a.includes(':') ? a : ':' + a);
  const port = m ? +m[3] : NaN;
  if (!m || !(port >= 0 && port <= 65535)) throw new Error(`${what}: "${addr}" is not a listen address (use ":port" or "host:port")`);
  const host = m[1] ?? (m[2] || undefined);
  return { host, port };
}
