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
  /** A viewer whose connection stays blocked (not draining) this long is ended; 0 = never. */
  writetimeout: t.dur('30s'),
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
    /** Basic auth for /api/* when both are set. */
    username: '',
    password: '',
    /** A connection that sends no complete request head within this long is closed (Go's ReadHeaderTimeout). */
    readheadertimeout: t.dur('10s'),
    /** A keep-alive connection with no request for this long is closed. */
    idletimeout: t.dur('60s'),
    /** Bun only: serve HTTP with Bun.serve instead of node:http — no connection cap, fixed ~10 s header timeout (docs/limits.md). */
    nativeserver: false,
  },
  /** Server-wide caps (docs/limits.md). 0 = no limit. */
  limits: {
    /** Streams in the registry, placeholders of players waiting for a stream included. */
    maxstreams: t.num(10_000, { min: 0, int: true }),
    /** Players waiting for a stream that is not ready yet, over all streams. */
    maxwaiting: t.num(2_000, { min: 0, int: true }),
    /** Bytes held by all stream rings together; over it the largest rings are trimmed to their last GOP. */
    ringmemory: t.num(1024 * 1024 * 1024, { min: 0, int: true }),
    /**
     * Connections open at once per listener (HTTP and every plugin's TCP listener). When full, the
     * oldest connection that has not sent a request (a byte, for raw TCP) is closed to make room, else
     * the new one is refused. 0 = only the process-wide cap (90 % of the descriptor limit minus 96).
     */
    maxconn: t.num(0, { min: 0, int: true }),
  },
  publish: publishSchema,
  subscribe: subscribeSchema,
};

/** Settings that clients must not change through URL query args (secrets, limits, memory bounds). */
export const ARGS_DENY = ['key', 'secretargname', 'expireargname', 'maxcount', 'ringsize', 'ringbytes', 'subvideoargname', 'subaudioargname', 'writetimeout'];

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
