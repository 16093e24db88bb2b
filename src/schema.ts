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
  /** A viewer whose connection stays blocked (not draining) this long is ended; 0 = never. */
  writetimeout: t.dur('30s'),
  key: '',
  secretargname: 'secret',
  expireargname: 'expire',
  subvideoargname: 'vts',
  subaudioargname: 'ats',
};

export const authSchema = {
  /** [{user, pass, ips, permissions: [{action, path}]}]; `user: any` with no pass = everyone. */
  users: t.list(t.section({
    user: '',
    /** Plain text, or "sha256:<hex|base64>" of the password. */
    pass: '',
    /** Allowed client addresses: CIDR ranges or single addresses (v4/v6); empty = any. */
    ips: t.list(t.str('')),
    permissions: t.list(t.section({ action: t.str('read', { enum: ['publish', 'read', 'playback', 'api', 'metrics'] }), path: '' })),
  })),
  jwt: {
    /** HS256/384/512 shared secret. */
    secret: '',
    /** RS, PS and ES public keys: a JWKS file (relative to the config file) or an http(s) URL. */
    jwks: '',
    jwksrefresh: t.dur('5m'),
    /** The claim holding [{action, path}]. */
    claimkey: 'm7s_permissions',
    issuer: '',
    audience: '',
  },
  http: {
    /** POST {user,password,token,ip,action,path,protocol,query} here; 2xx allows. */
    address: '',
    timeout: t.dur('2s'),
    /** How long an answer is reused for the same request (0: never). */
    cache: t.dur('10s'),
    /** Actions never sent to the callback (e.g. [api, metrics]). */
    exclude: t.list(t.str('')),
  },
};

export const hookTargetSchema = {
  url: '',
  method: t.str('POST', { enum: ['POST', 'PUT'] }),
  headers: t.map(t.str('')),
  /** HMAC-SHA256 key for the X-M7s-Signature header; empty = unsigned. */
  secret: '',
  timeoutseconds: t.num(5, { min: 0.1, max: 300 }),
  retrytimes: t.num(3, { min: 0, max: 100, int: true }),
  retryinterval: t.dur('1s'),
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
  /**
   * Processes serving this config (Node; Bun on Linux): N > 1 forks N workers sharing the listening ports (node:cluster);
   * a stream published to one worker reaches viewers of the others through an internal cascade over
   * loopback. `m7s --workers N` overrides it. Read at start. See docs/cluster.md.
   */
  workers: t.num(1, { min: 1, max: 256, int: true }),
  http: {
    listenaddr: ':8080',
    listenaddrtls: '',
    certfile: '',
    keyfile: '',
    cors: true,
    /** Basic auth for /api/... and /{plugin}/api/... when both are set (then required from every client). */
    username: '',
    password: '',
    /** How long a web console login (POST /admin/login) lasts; the token is signed with the admin secret. */
    sessionttl: t.dur('12h'),
    /** A connection that sends no complete request head within this long is closed (Go's ReadHeaderTimeout). */
    readheadertimeout: t.dur('10s'),
    /** A keep-alive connection with no request for this long is closed. */
    idletimeout: t.dur('60s'),
    /** Bun only: serve HTTP with Bun's own server instead of the Node-compatible one — no connection cap, fixed ~10 s header timeout (docs/limits.md). */
    nativeserver: false,
    /** Without username/password, the API answers only peers in these ranges (CIDRs or loopback/private/linklocal). */
    apiallow: t.list(t.str(''), ['loopback']),
    /** Origins (https://admin.example.com) allowed to call the API from a browser page elsewhere. */
    apiorigins: t.list(t.str(''), []),
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
  /** One permission model for every protocol and the API (docs/permissions.md). Nothing set: everyone may publish and read. */
  auth: authSchema,
  /** Webhooks: event name (or `default`) → target (docs/webhooks.md). */
  hook: t.map(t.section(hookTargetSchema)),
  /** Webhook delivery: queue bound, concurrent deliveries, keep-alive interval. */
  hookqueue: t.num(1000, { min: 1, max: 1_000_000, int: true }),
  hookconcurrency: t.num(4, { min: 1, max: 64, int: true }),
  hookkeepalive: t.dur('60s'),
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

/**
 * Config keys added by the permission model and webhooks that hold secrets: to be redacted in every API
 * answer and log line (`*` = any map key, `[]` = every list item). `auth.http.address` and hook `url`s
 * may embed credentials too (`https://user:pass@host`).
 */
export const AUTH_SECRET_PATHS = ['global.auth.users[].pass', 'global.auth.jwt.secret', 'global.hook.*.secret', 'global.hook.*.headers', 'global.auth.http.address', 'global.hook.*.url'];
