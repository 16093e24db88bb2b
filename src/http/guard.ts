// The API access decision: who may call /api/... and /{plugin}/api/... (the control and config
// endpoints: they start pulls, stop streams and rewrite config.yaml). One function, apiAccess(), decides
// for every request; the middleware in app.ts only feeds it and turns a refusal into a response.
//
// Today's rule (docs/security.md "API access"):
// - no credentials configured (global.http.username/password): only peers in global.http.apiallow
//   (default: loopback) get in, and only when the Host header is an IP literal or localhost (a DNS
//   name could be an attacker's domain rebound to 127.0.0.1);
// - credentials configured: HTTP Basic with those credentials, compared in constant time, from anywhere;
// - always: no cross-site writes, and no cross-site reads of /api/config (Sec-Fetch-Site / Origin other
//   than this host, unless the origin is in global.http.apiorigins), and a body only with a JSON or YAML
//   content type (a text/plain or form POST is what a web page can send without a preflight).
//
// Whether a request is an API request is decided on every form of its path a router could see: the
// router's own (percent-decoded) path, and a canonical one (decoded repeatedly, `\` → `/`, `//` and dot
// segments collapsed, lower-cased). A path that is an API path in any of them is guarded.

import { IpSet } from '../net/ip.ts';

export interface ApiAccessConfig {
  username: string;
  password: string;
  /** Peers (CIDR ranges or names: loopback, private, ...) allowed without credentials while none are set. */
  apiallow: readonly string[];
  /** Origins (`https://admin.example.com`) whose cross-site requests are accepted. */
  apiorigins: readonly string[];
}

export interface ApiRequest {
  /**
   * Set when the permission model (global.auth: users, JWT, HTTP callback) already granted this request
   * its `api` / `metrics` action for the credentials it carries: the cross-site and body rules still apply,
   * the peer and Basic rules are then met.
   */
  granted?: boolean;
  method: string;
  /** The path the router matches (hono's c.req.path: percent-decoded once). */
  path: string;
  /** The raw path of the request URL as received (before decoding), when it differs. */
  rawPath?: string;
  /** Peer address from the runtime (Runtime.connInfo); undefined = unknown, never trusted. */
  ip: string | undefined;
  headers: Headers;
  query: URLSearchParams;
}

export type ApiDecision =
  | { allow: true; guarded: boolean; who?: 'local' | 'basic' | 'user' }
  | {
    allow: false; status: 401 | 403 | 415; message: string; headers?: Record<string, string>;
    /** 'identity': refused for who is asking (credentials, peer), which the permission model may grant; 'request': for how (cross-site, body type, Host). */
    refused?: 'identity' | 'request';
  };

/** /api/... or /{anything}/api/... in the canonical form. */
const API_RE = /^\/(?:[^/]+\/)?api(?:\/|$)/;

/**
 * A path with nothing to decode or collapse: segments with no `%`, backslash or whitespace, none empty,
 * none starting with `.` (so no `.` or `..`). Its canonical form is itself, lower-cased, without a
 * trailing slash: what canonicalPathFull makes of it, without building the segments (every request
 * passes here twice; test/security.test.ts compares the two on random paths).
 */
const PLAIN_PATH = /^(?:\/[^/%\\\s.][^/%\\\s]*)+\/?$/;

/** Decodes percent-escapes until stable (at most 4 rounds); `\` → `/`; collapses `//`, `.`, `..`; lower-case. */
export function canonicalPath(p: string): string {
  if (PLAIN_PATH.test(p)) return (p.charCodeAt(p.length - 1) === 47 ? p.slice(0, -1) : p).toLowerCase();
  return canonicalPathFull(p);
}

/** canonicalPath without the shortcut for plain paths. */
export function canonicalPathFull(p: string): string {
  let s = p;
  for (let i = 0; i < 4; i++) {
    let d: string;
    try { d = decodeURIComponent(s); } catch { d = s.replace(/%([0-9a-f]{2})/gi, (_m, h) => String.fromCharCode(parseInt(h, 16))); }
    if (d === s) break;
    s = d;
  }
  s = s.replace(/\\/g, '/');
  const out: string[] = [];
  for (const seg of s.split('/')) {
    const t = seg.trim();
    if (t === '' || t === '.') continue;
    if (t === '..') { out.pop(); continue; }
    out.push(seg);
  }
  return ('/' + out.join('/')).toLowerCase();
}

/** /api/config/... in any form: never readable cross-site. */
function isConfigPath(...paths: (string | undefined)[]): boolean {
  return paths.some((p) => p !== undefined && /^\/api\/config(?:\/|$)/.test(canonicalPath(p)));
}

/** True when any form of the path is an API path. */
export function isGuardedPath(...paths: (string | undefined)[]): boolean {
  return paths.some((p) => p !== undefined && API_RE.test(canonicalPath(p)));
}

const ipSets = new WeakMap<readonly string[], IpSet>();
function ipSetOf(specs: readonly string[]): IpSet {
  let s = ipSets.get(specs);
  if (!s) {
    try { s = new IpSet(specs); } catch { s = new IpSet([]); } // invalid entries are refused at config load
    ipSets.set(specs, s);
  }
  return s;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const BODY_TYPES = /^(application\/(json|yaml|x-yaml|[a-z0-9.+-]+\+json)|text\/(yaml|x-yaml))$/;

/** The one decision for API access. Not an API path: allowed (`guarded: false`). */
export function apiAccess(req: ApiRequest, conf: ApiAccessConfig): ApiDecision {
  if (!isGuardedPath(req.path, req.rawPath)) return { allow: true, guarded: false };
  const h = req.headers;
  const method = req.method.toUpperCase();

  // Cross-site: a browser says where the request comes from; a page elsewhere may not drive the API
  // nor read the config. It may read stream information (a web player asks /api/stream/info for codecs).
  const origin = h.get('origin');
  const site = h.get('sec-fetch-site');
  const originOk = origin !== null && conf.apiorigins.includes(origin);
  const crossSiteOk = SAFE_METHODS.has(method) && !isConfigPath(req.path, req.rawPath);
  if (!originOk && !crossSiteOk) {
    if (site && site !== 'same-origin' && site !== 'none') return deny(403, 'cross-site API requests are refused');
    if (origin !== null && !sameHost(origin, h.get('host'))) return deny(403, 'cross-site API requests are refused');
  }

  // A body only as JSON or YAML: text/plain and forms are what a page can POST without a preflight.
  if (!SAFE_METHODS.has(method) && hasBody(h)) {
    const ct = (h.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
    if (!BODY_TYPES.test(ct)) return deny(415, 'API request bodies must be JSON (content-type: application/json) or YAML (application/yaml)');
  }

  if (req.granted) return { allow: true, guarded: true, who: 'user' };
  if (conf.username && conf.password) {
    if (checkBasic(h.get('authorization'), conf.username, conf.password)) return { allow: true, guarded: true, who: 'basic' };
    return deny(401, 'authentication required', { 'www-authenticate': 'Basic realm="m7s", charset="UTF-8"' }, 'identity');
  }
  if (req.ip === undefined || !ipSetOf(conf.apiallow).has(req.ip)) {
    return deny(403, 'the API answers only local clients until global.http.username and password are set (see docs/security.md)', undefined, 'identity');
  }
  if (!literalHost(h.get('host'))) return deny(403, 'anonymous API access needs an IP address or localhost in the Host header');
  return { allow: true, guarded: true, who: 'local' };
}

function deny(status: 401 | 403 | 415, message: string, headers?: Record<string, string>, refused: 'identity' | 'request' = 'request'): ApiDecision {
  return { allow: false, status, message, refused, ...(headers ? { headers } : {}) };
}

function hasBody(h: Headers): boolean {
  const len = h.get('content-length');
  if (len !== null && len.trim() !== '' && len.trim() !== '0') return true;
  return h.has('transfer-encoding');
}

function hostOf(hostHeader: string): string {
  const s = hostHeader.trim().toLowerCase();
  if (s.startsWith('[')) return s.slice(0, s.indexOf(']') + 1);
  const c = s.lastIndexOf(':');
  return c >= 0 ? s.slice(0, c) : s;
}

/** `Origin: http://h:p` against `Host: h:p` (scheme-independent: both name this server). */
function sameHost(origin: string, host: string | null): boolean {
  if (!host) return false;
  let o: URL;
  try { o = new URL(origin); } catch { return false; }
  return o.host.toLowerCase() === host.trim().toLowerCase();
}

function literalHost(host: string | null): boolean {
  if (!host) return true; // HTTP/1.0 without Host: no name to rebind
  const name = hostOf(host);
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  if (name.startsWith('[')) return true;
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(name);
}

/** Constant-time string comparison (time depends only on the lengths, not on where they differ). */
export function safeEqual(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a), y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  const n = Math.max(x.length, y.length);
  for (let i = 0; i < n; i++) diff |= (x[i % (x.length || 1)] ?? 0) ^ (y[i % (y.length || 1)] ?? 0);
  return diff === 0;
}

function checkBasic(header: string | null, user: string, pass: string): boolean {
  const m = /^basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (!m) return false;
  let text: string;
  try { text = new TextDecoder().decode(Uint8Array.from(atob(m[1]), (ch) => ch.charCodeAt(0))); } catch { return false; }
  const i = text.indexOf(':');
  if (i < 0) return false;
  // Both compared, always (no early exit on a wrong user name).
  const u = safeEqual(text.slice(0, i), user);
  const p = safeEqual(text.slice(i + 1), pass);
  return u && p;
}
