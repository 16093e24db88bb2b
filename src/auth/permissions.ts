// The one permission model for every protocol and the API (after MediaMTX's authInternalUsers /
// authHTTPAddress / authJWT*). Runtime-agnostic: WebCrypto, fetch, and an injected file reader.
//
// CONTRACT
//   const az = new Authorizer(() => config.global.auth, { readTextFile, logger })
//   await az.authorize({ action, path, protocol, ip, user?, password?, token?, query? })
//     → { ok: true, user? }                      allowed (user: who, when checked: a users entry,
//                                                the token's `sub`, or the callback's answer)
//     → { ok: false, status: 401, reason }       no credentials, or wrong ones: ask for credentials
//     → { ok: false, status: 403, reason }       known caller (or anonymous rule) without this right,
//                                                or an address outside the allowed ranges
//   action: publish | read | playback | api | metrics
//   path:   a StreamPath ("live/cam1") for publish/read/playback; the request path without the leading
//           slash for api/metrics ("api/config/get", "api/metrics").
//   ip:     the peer address as the transport saw it (never a forwarded header); "" when unknown
//           (rules with `ips` then never match).
//   It never throws; a broken callback or JWKS fails closed (denies).
//
//   `az.active` is false when nothing is configured (no users, no jwt, no http callback): then every
//   request is allowed (today's behaviour; the API guard keeps its own loopback default).
//
// SOURCES, tried in this order; the first that allows wins:
//   1. users      [{user, pass, ips, permissions: [{action, path}]}]. `user: any` (pass empty) matches
//                 everyone, with or without credentials. pass: plain text or "sha256:<hex|base64>" of
//                 the UTF-8 password. ips: CIDR ranges or single addresses, v4 and v6 (empty = any).
//   2. jwt        a token (Bearer header, ?jwt=, or a password that is a JWT) verified with `secret`
//                 (HS256/384/512) or the `jwks` keys (RS*, PS*, ES*); exp/nbf and, when set, iss/aud
//                 checked; its `claimkey` claim (default m7s_permissions) is a list of {action, path}.
//   3. http       POST JSON {user,password,token,ip,action,path,protocol,query} to `address`; any 2xx
//                 allows (a JSON body {"user": "..."} names the caller). Answers are cached for `cache`;
//                 no answer within `timeout` denies.
//
// PATH PATTERNS in permissions:
//   ""  or "*"     any path
//   "~<regex>"     a regular expression, anchored to the whole path ("~^live/cam[0-9]+$" or "~live/.*")
//   "live/"        (ends in "/") every path under that prefix
//   "live/*"       glob: "*" matches within one segment, "**" across segments
//   "live/cam1"    exactly that path

import { type Jwk, JwtError, parseJwks, verifyJwt } from './jwt.ts';
import { inRange, type IpRange, parseIp as parseIpBytes, parseRanges } from '../net/ip.ts';

export type AuthAction = 'publish' | 'read' | 'playback' | 'api' | 'metrics';
export const AUTH_ACTIONS: readonly AuthAction[] = ['publish', 'read', 'playback', 'api', 'metrics'];

export interface AuthzRequest {
  action: AuthAction;
  path: string;
  protocol: string;
  ip: string;
  user?: string;
  password?: string;
  token?: string;
  query?: Record<string, string>;
}
export type AuthzResult = { ok: true; user?: string } | { ok: false; status: 401 | 403; reason: string };

export interface PermissionConfig { action: string; path: string }
export interface UserConfig { user: string; pass: string; ips: string[]; permissions: PermissionConfig[] }
export interface AuthConfig {
  users: UserConfig[];
  jwt: { secret: string; jwks: string; jwksrefresh: number; claimkey: string; issuer: string; audience: string };
  http: { address: string; timeout: number; cache: number; exclude: string[] };
}

export interface AuthorizerOptions {
  /** Reads a JWKS file (paths not starting with http:// or https://). */
  readTextFile?: (path: string) => Promise<string>;
  /** Resolves a relative file name against the config file's folder. */
  resolvePath?: (p: string) => string;
  logger?: { warn(msg: string, fields?: Record<string, unknown>): void };
  fetch?: typeof fetch;
}

// ----------------------------------------------------------------------------------- addresses

/** An address as a 128-bit number (IPv4 as ::ffff:a.b.c.d), or null. Parsed by src/net/ip.ts (one parser for the guard, the outbound policy and here). */
export function parseIp(s: string): bigint | null {
  const b = parseIpBytes(s);
  if (!b) return null;
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return v;
}

export type { IpRange };

/** "10.0.0.0/8", "::1", "fd00::/8", "192.168.1.7" (and the named ranges of src/net/ip.ts) → ranges; throws Error on bad input. */
export function parseCidr(s: string): IpRange[] {
  return parseRanges(s);
}

export function ipInRanges(ip: string, ranges: (IpRange | IpRange[])[]): boolean {
  const b = parseIpBytes(ip);
  return !!b && ranges.flat().some((r) => inRange(b, r));
}

// ----------------------------------------------------------------------------------- paths

export type PathMatcher = (path: string) => boolean;

/** Compile a permission path pattern (see the header for the forms). Throws Error on a bad regex. */
export function compilePathPattern(p: string): PathMatcher {
  const pat = (p ?? '').trim();
  if (pat === '' || pat === '*' || pat === '**') return () => true;
  if (pat.startsWith('~')) {
    let re: RegExp;
    try { re = new RegExp(`^(?:${pat.slice(1).replace(/^\^/, '').replace(/\$$/, '')})$`); } catch (err) {
      throw new Error(`bad path regex ${JSON.stringify(pat)}: ${(err as Error).message}`);
    }
    return (x) => re.test(x);
  }
  const norm = pat.replace(/^\/+/, '');
  if (norm.includes('*')) {
    const src = norm.split(/(\*\*|\*)/).map((t) => t === '**' ? '.*' : t === '*' ? '[^/]*' : t.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('');
    const re = new RegExp(`^${src}$`);
    return (x) => re.test(x);
  }
  if (norm.endsWith('/')) return (x) => x.startsWith(norm);
  return (x) => x === norm;
}

// ----------------------------------------------------------------------------------- passwords

const te = new TextEncoder();

async function sha256(s: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', te.encode(s)));
}

function eqBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

/** Does `given` match the configured `pass` (plain, or "sha256:<hex|base64>")? Constant-time compare. */
export async function checkPassword(pass: string, given: string): Promise<boolean> {
  const h = await sha256(given);
  if (pass.startsWith('sha256:')) {
    const enc = pass.slice(7).trim();
    let want: Uint8Array;
    if (/^[0-9a-fA-F]{64}$/.test(enc)) want = Uint8Array.from(enc.match(/../g)!.map((x) => parseInt(x, 16)));
    else { try { want = Uint8Array.from(atob(enc), (ch) => ch.charCodeAt(0)); } catch { return false; } }
    return eqBytes(h, want);
  }
  return eqBytes(h, await sha256(pass));
}

// ----------------------------------------------------------------------------------- the authorizer

interface CompiledPerm { action: string; match: PathMatcher }
interface CompiledUser { user: string; pass: string; ranges: IpRange[]; perms: CompiledPerm[] }
interface Compiled { key: string; users: CompiledUser[]; errors: string[] }

function compilePerms(list: unknown, where: string, errors: string[]): CompiledPerm[] {
  const out: CompiledPerm[] = [];
  if (!Array.isArray(list)) return out;
  for (const p of list as PermissionConfig[]) {
    if (!p || typeof p !== 'object') continue;
    const action = String(p.action ?? '');
    if (!AUTH_ACTIONS.includes(action as AuthAction)) { errors.push(`${where}: unknown action ${JSON.stringify(action)}`); continue; }
    try { out.push({ action, match: compilePathPattern(String(p.path ?? '')) }); } catch (err) { errors.push(`${where}: ${(err as Error).message}`); }
  }
  return out;
}

const permits = (perms: CompiledPerm[], action: string, path: string) => perms.some((p) => p.action === action && p.match(path));

/** Looks like a compact JWS ("eyJ…" header, three parts). */
export const looksLikeJwt = (s: string | undefined): s is string => !!s && s.startsWith('eyJ') && s.split('.').length === 3;

export class Authorizer {
  private compiled: Compiled | null = null;
  private jwks: { source: string; keys: Jwk[]; at: number; loading?: Promise<Jwk[]> } | null = null;
  private lastJwksReload = 0;
  private readonly cache = new Map<string, { until: number; result: AuthzResult }>();
  /** Counters for metrics. */
  readonly stats = { allowed: 0, denied: 0, callbackErrors: 0 };

  constructor(private readonly conf: () => AuthConfig, private readonly opts: AuthorizerOptions = {}) {}

  /** Anything configured? When false every request is allowed. */
  get active(): boolean {
    const c = this.conf();
    return !!(c.users?.length || c.jwt?.secret || c.jwt?.jwks || c.http?.address);
  }

  /** Config problems (unknown actions, bad ranges or regexes); entries with problems are skipped. */
  problems(): string[] { return this.compile().errors; }

  private compile(): Compiled {
    const c = this.conf();
    const key = JSON.stringify(c.users ?? []);
    if (this.compiled?.key === key) return this.compiled;
    const errors: string[] = [];
    const users: CompiledUser[] = [];
    (c.users ?? []).forEach((u, i) => {
      const where = `global.auth.users[${i}]`;
      const ranges: IpRange[] = [];
      let bad = false;
      for (const r of u.ips ?? []) { try { ranges.push(...parseCidr(String(r))); } catch (err) { errors.push(`${where}.ips: ${(err as Error).message}`); bad = true; } }
      if (bad) return; // a range we cannot read must not widen access
      users.push({ user: String(u.user ?? ''), pass: String(u.pass ?? ''), ranges, perms: compilePerms(u.permissions, `${where}.permissions`, errors) });
    });
    for (const e of errors) this.opts.logger?.warn('auth config: ' + e);
    this.compiled = { key, users, errors };
    return this.compiled;
  }

  async authorize(req: AuthzRequest): Promise<AuthzResult> {
    let r: AuthzResult;
    try { r = await this.decide(req); } catch (err) {
      r = { ok: false, status: 403, reason: `authorization failed: ${(err as Error)?.message ?? String(err)}` };
    }
    if (r.ok) this.stats.allowed++; else this.stats.denied++;
    return r;
  }

  private async decide(req: AuthzRequest): Promise<AuthzResult> {
    if (!this.active) return { ok: true };
    const c = this.conf();
    const path = String(req.path ?? '').replace(/^\/+/, '');
    const ip = req.ip ?? '';
    let token = req.token || undefined;
    const hasCreds = !!(req.user || req.password || token);
    let badCreds = false;          // credentials given that match nobody
    let knownButNot = false;       // a caller we know, without this right (or from elsewhere)
    let tokenError = '';

    // 1. users
    const users = this.compile().users;
    for (const u of users) {
      const anyone = u.user === 'any' && !u.pass;
      if (!anyone) {
        if (!req.user || req.user !== u.user) continue;
        if (!(await checkPassword(u.pass, req.password ?? ''))) { badCreds = true; continue; }
      }
      const ipOk = !u.ranges.length || ipInRanges(ip, u.ranges);
      const permOk = permits(u.perms, req.action, path);
      // An anonymous rule names nobody: a claimed but unchecked user name is not an identity.
      if (ipOk && permOk) return anyone ? { ok: true } : { ok: true, user: u.user };
      if (!anyone) knownButNot = true;
      else if (permOk && !ipOk) knownButNot = true;
    }

    // 2. JWT
    if (!token && looksLikeJwt(req.password)) token = req.password;
    if (token && (c.jwt?.secret || c.jwt?.jwks)) {
      try {
        const payload = await verifyJwt(token, {
          secret: c.jwt.secret || undefined,
          keys: c.jwt.jwks ? (reload) => this.jwksKeys(reload) : undefined,
          issuer: c.jwt.issuer || undefined, audience: c.jwt.audience || undefined,
        });
        const perms = compilePerms(payload[c.jwt.claimkey || 'm7s_permissions'], 'token claim', []);
        const who = typeof payload.sub === 'string' ? payload.sub : undefined;
        if (permits(perms, req.action, path)) return { ok: true, user: who };
        knownButNot = true;
      } catch (err) {
        if (!(err instanceof JwtError)) throw err;
        badCreds = true;
        tokenError = `bad token: ${err.message}`;
      }
    }

    const local: AuthzResult = knownButNot ? { ok: false, status: 403, reason: `not allowed to ${req.action} ${path || '(root)'}` }
      : badCreds ? { ok: false, status: 401, reason: tokenError || 'bad credentials' }
      : { ok: false, status: 401, reason: hasCreds ? 'bad credentials' : `credentials required to ${req.action} ${path || '(root)'}` };

    // 3. HTTP callback: the last word, but what a local source found keeps its status and reason.
    if (c.http?.address && !(c.http.exclude ?? []).includes(req.action)) {
      const r = await this.callback(c, { ...req, path, ip, token });
      if (r.ok) return r;
      if (knownButNot || badCreds) return { ok: false, status: local.status, reason: `${local.reason}; ${r.reason}` };
      return r;
    }
    return local;
  }

  private async callback(c: AuthConfig, req: AuthzRequest): Promise<AuthzResult> {
    const body = JSON.stringify({
      user: req.user ?? '', password: req.password ?? '', token: req.token ?? '', ip: req.ip, action: req.action,
      path: req.path, protocol: req.protocol, query: req.query ?? {},
    });
    const now = Date.now();
    const hit = this.cache.get(body);
    if (hit && hit.until > now) return hit.result;
    if (hit) this.cache.delete(body);
    const ctl = new AbortController();
    const timeout = Math.max(1, c.http.timeout || 2000);
    const timer = setTimeout(() => ctl.abort(), timeout);
    let result: AuthzResult;
    try {
      const res = await (this.opts.fetch ?? fetch)(c.http.address, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: ctl.signal, redirect: 'manual',
      });
      let user: string | undefined;
      if (res.status >= 200 && res.status < 300) {
        try { const j = await res.json() as { user?: unknown }; if (typeof j?.user === 'string') user = j.user; } catch { /* body optional */ }
        result = { ok: true, user: user ?? (req.user || undefined) };
      } else {
        await res.body?.cancel().catch(() => {});
        const hasCreds = !!(req.user || req.password || req.token);
        result = { ok: false, status: res.status === 401 || (!hasCreds && res.status !== 403) ? 401 : 403, reason: `refused by the auth callback (HTTP ${res.status})` };
      }
    } catch (err) {
      clearTimeout(timer);
      this.stats.callbackErrors++;
      const why = ctl.signal.aborted ? `no answer within ${timeout} ms` : 'unreachable';
      this.opts.logger?.warn('auth callback failed; denying', { address: c.http.address, error: why });
      return { ok: false, status: 403, reason: `auth callback ${why}` };
    }
    clearTimeout(timer);
    const ttl = c.http.cache ?? 0;
    if (ttl > 0) {
      if (this.cache.size >= 10_000) { for (const [k, v] of this.cache) if (v.until <= now || this.cache.size >= 10_000) this.cache.delete(k); }
      this.cache.set(body, { until: now + ttl, result });
    }
    return result;
  }

  /** The JWKS keys (file or URL), cached for `jwksrefresh`; `reload` refetches (at most every 10 s). */
  private async jwksKeys(reload: boolean): Promise<Jwk[]> {
    const c = this.conf().jwt;
    const source = c.jwks;
    const now = Date.now();
    const fresh = this.jwks && this.jwks.source === source && now - this.jwks.at < (c.jwksrefresh || 300_000);
    if (fresh && !(reload && now - this.lastJwksReload > 10_000)) return this.jwks!.keys;
    if (this.jwks?.loading && this.jwks.source === source) return this.jwks.loading;
    if (reload) this.lastJwksReload = now;
    const prev = this.jwks?.source === source ? this.jwks.keys : [];
    const loading = (async () => {
      let text: string;
      if (/^https?:\/\//i.test(source)) {
        const ctl = new AbortController();
        const t = setTimeout(() => ctl.abort(), 5000);
        try {
          const res = await (this.opts.fetch ?? fetch)(source, { signal: ctl.signal });
          if (!res.ok) throw new JwtError(`JWKS ${source} answered HTTP ${res.status}`);
          text = await res.text();
        } finally { clearTimeout(t); }
      } else {
        if (!this.opts.readTextFile) throw new JwtError('cannot read a JWKS file here');
        text = await this.opts.readTextFile(this.opts.resolvePath ? this.opts.resolvePath(source) : source);
      }
      return parseJwks(text);
    })();
    this.jwks = { source, keys: prev, at: this.jwks?.at ?? 0, loading };
    try {
      const keys = await loading;
      this.jwks = { source, keys, at: Date.now() };
      return keys;
    } catch (err) {
      this.opts.logger?.warn('cannot load JWKS', { source, error: (err as Error)?.message ?? String(err) });
      this.jwks = { source, keys: prev, at: this.jwks?.at ?? 0 };
      if (prev.length) return prev;
      throw new JwtError('JWKS not available');
    }
  }
}

/** Credentials of an HTTP request: Authorization (Basic / Bearer), then ?user= ?pass= ?jwt=. */
export function httpCredentials(authorization: string | undefined | null, query: Record<string, string> | URLSearchParams, jwtInQuery = true): { user?: string; password?: string; token?: string } {
  const get = (k: string) => query instanceof URLSearchParams ? query.get(k) ?? undefined : query[k];
  const out: { user?: string; password?: string; token?: string } = {};
  const h = (authorization ?? '').trim();
  const sp = h.indexOf(' ');
  const scheme = sp > 0 ? h.slice(0, sp).toLowerCase() : '';
  const val = sp > 0 ? h.slice(sp + 1).trim() : '';
  if (scheme === 'bearer' && val) out.token = val;
  else if (scheme === 'basic' && val) {
    try {
      const dec = new TextDecoder().decode(Uint8Array.from(atob(val), (ch) => ch.charCodeAt(0)));
      const i = dec.indexOf(':');
      out.user = i >= 0 ? dec.slice(0, i) : dec;
      out.password = i >= 0 ? dec.slice(i + 1) : '';
    } catch { /* not base64: no credentials */ }
  }
  if (out.user === undefined && get('user') !== undefined) { out.user = get('user'); out.password = get('pass') ?? ''; }
  if (!out.token && jwtInQuery && get('jwt')) out.token = get('jwt');
  return out;
}
