// The engine's own config: the `global:` section. `publish` and `subscribe` are inherited by every
// plugin section (a plugin may override any key for its own publishers/subscribers), and URL query
// args may override them per request, except the keys in ARGS_DENY.

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
  /**
   * A listener that cannot bind (port in use, no permission, no such address) stops the start with one
   * line naming it (exit 1); false: the server runs without it, says so loudly, and its plugin is
   * disabled with the reason in /api/plugins.
   */
  failonlistenerror: true,
  http: {
    listenaddr: ':8080',
    listenaddrtls: '',
    certfile: '',
    keyfile: '',
    cors: true,
    /** Basic auth for /api/* when both are set. */
    username: '',
    password: '',
  },
  publish: publishSchema,
  subscribe: subscribeSchema,
};

/** Settings that clients must not change through URL query args (secrets, limits, memory bounds). */
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
