// RTSP authentication: Basic (RFC 7617) and Digest with MD5 (RFC 2617 / RFC 7616; qop=auth or none),
// for both sides: a client answering a 401 challenge, and a server issuing challenges and checking
// Authorization headers. SHA-256 Digest is not implemented (cameras and players use MD5).

import { base64Decode, base64Encode, FormatError, textDecoder, textEncoder } from '../bytes.ts';
import { md5Hex } from '../md5.ts';

export interface AuthChallenge {
  scheme: 'basic' | 'digest';
  realm: string;
  nonce?: string;
  opaque?: string;
  algorithm?: string;
  qop?: string[];
  stale?: boolean;
  params: Record<string, string>;
}

/** Split "k=v, k2="quoted, value"" auth parameters. */
function authParams(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  const n = s.length;
  while (i < n) {
    while (i < n && (s[i] === ' ' || s[i] === ',' || s[i] === '\t')) i++;
    if (i >= n) break;
    const eq = s.indexOf('=', i);
    if (eq < 0) throw new FormatError('auth parameter without "="');
    const key = s.slice(i, eq).trim().toLowerCase();
    if (!/^[a-z0-9_-]{1,64}$/.test(key)) throw new FormatError(`invalid auth parameter name ${JSON.stringify(key.slice(0, 20))}`);
    i = eq + 1;
    while (i < n && s[i] === ' ') i++;
    let val = '';
    if (s[i] === '"') {
      i++;
      for (;;) {
        if (i >= n) throw new FormatError('unterminated quoted auth parameter');
        const c = s[i]!;
        if (c === '\\' && i + 1 < n) { val += s[i + 1]; i += 2; continue; }
        if (c === '"') { i++; break; }
        val += c;
        i++;
      }
    } else {
      const end = s.indexOf(',', i);
      val = s.slice(i, end < 0 ? n : end).trim();
      i = end < 0 ? n : end;
    }
    out[key] = val;
  }
  return out;
}

/** Parse WWW-Authenticate header values (one challenge each; unknown schemes are skipped). */
export function parseChallenges(values: readonly string[]): AuthChallenge[] {
  const out: AuthChallenge[] = [];
  for (const v of values) {
    if (v.length > 4096) throw new FormatError('WWW-Authenticate header too long');
    const m = /^\s*(\w+)\s*(.*)$/s.exec(v);
    if (!m) continue;
    const scheme = m[1]!.toLowerCase();
    if (scheme !== 'basic' && scheme !== 'digest') continue;
    const params = authParams(m[2]!);
    const c: AuthChallenge = { scheme, realm: params['realm'] ?? '', params };
    if (params['nonce'] !== undefined) c.nonce = params['nonce'];
    if (params['opaque'] !== undefined) c.opaque = params['opaque'];
    if (params['algorithm'] !== undefined) c.algorithm = params['algorithm'];
    if (params['qop'] !== undefined) c.qop = params['qop'].split(',').map((x) => x.trim().toLowerCase()).filter(Boolean);
    if (params['stale'] !== undefined) c.stale = params['stale'].toLowerCase() === 'true';
    if (scheme === 'digest' && !c.nonce) throw new FormatError('Digest challenge without a nonce');
    out.push(c);
  }
  return out;
}

const quote = (s: string) => `"${s.replace(/["\\]/g, '\\$&')}"`;

export function basicChallenge(realm: string): string {
  return `Basic realm=${quote(realm)}`;
}

export function digestChallenge(realm: string, nonce: string, opts: { opaque?: string; stale?: boolean; qop?: boolean } = {}): string {
  let s = `Digest realm=${quote(realm)}, nonce=${quote(nonce)}, algorithm=MD5`;
  if (opts.qop) s += ', qop="auth"';
  if (opts.opaque) s += `, opaque=${quote(opts.opaque)}`;
  if (opts.stale) s += ', stale=TRUE';
  return s;
}

function digestResponse(o: { username: string; password: string; realm: string; nonce: string; method: string; uri: string; qop?: string; nc?: string; cnonce?: string; sess?: boolean }): string {
  let ha1 = md5Hex(`${o.username}:${o.realm}:${o.password}`);
  if (o.sess) ha1 = md5Hex(`${ha1}:${o.nonce}:${o.cnonce ?? ''}`);
  const ha2 = md5Hex(`${o.method}:${o.uri}`);
  return o.qop ? md5Hex(`${ha1}:${o.nonce}:${o.nc}:${o.cnonce}:${o.qop}:${ha2}`) : md5Hex(`${ha1}:${o.nonce}:${ha2}`);
}

export interface Credentials { username: string; password: string }

/**
 * The Authorization header answering a challenge (prefers the given challenge; pick the Digest one when
 * a server offers both). `nc` counts uses of the same nonce; `cnonce` defaults to a random value.
 */
export function authorizationFor(c: AuthChallenge, cred: Credentials, method: string, uri: string, opts: { nc?: number; cnonce?: string } = {}): string {
  if (c.scheme === 'basic') return 'Basic ' + base64Encode(textEncoder.encode(`${cred.username}:${cred.password}`));
  const alg = (c.algorithm ?? 'MD5').toUpperCase();
  if (alg !== 'MD5' && alg !== 'MD5-SESS') throw new FormatError(`Digest algorithm ${alg} is not supported`);
  const qop = c.qop?.includes('auth') ? 'auth' : undefined;
  const nc = (opts.nc ?? 1).toString(16).padStart(8, '0');
  const cnonce = opts.cnonce ?? Math.random().toString(16).slice(2, 18);
  const response = digestResponse({ ...cred, realm: c.realm, nonce: c.nonce!, method, uri, qop, nc, cnonce, sess: alg === 'MD5-SESS' });
  let s = `Digest username=${quote(cred.username)}, realm=${quote(c.realm)}, nonce=${quote(c.nonce!)}, uri=${quote(uri)}, response=${quote(response)}`;
  if (c.algorithm) s += `, algorithm=${c.algorithm}`;
  if (c.opaque !== undefined) s += `, opaque=${quote(c.opaque)}`;
  if (qop) s += `, qop=${qop}, nc=${nc}, cnonce=${quote(cnonce)}`;
  return s;
}

export interface ParsedAuthorization {
  scheme: 'basic' | 'digest';
  username: string;
  /** Basic only. */
  password?: string;
  /** Digest parameters (lower-case keys). */
  params: Record<string, string>;
}

/** Parse an Authorization header (Basic or Digest). Other schemes and malformed values are a FormatError. */
export function parseAuthorization(v: string): ParsedAuthorization {
  if (v.length > 4096) throw new FormatError('Authorization header too long');
  const m = /^\s*(\w+)\s+(.*)$/s.exec(v);
  if (!m) throw new FormatError('invalid Authorization header');
  const scheme = m[1]!.toLowerCase();
  if (scheme === 'basic') {
    const text = textDecoder.decode(base64Decode(m[2]!.trim()));
    const colon = text.indexOf(':');
    if (colon < 0) throw new FormatError('Basic credentials without ":"');
    return { scheme, username: text.slice(0, colon), password: text.slice(colon + 1), params: {} };
  }
  if (scheme === 'digest') {
    const params = authParams(m[2]!);
    if (params['username'] === undefined || !params['nonce'] || !params['response'] || params['uri'] === undefined) {
      throw new FormatError('Digest Authorization lacks username, nonce, uri or response');
    }
    return { scheme, username: params['username'], params };
  }
  throw new FormatError(`unsupported authorization scheme ${scheme}`);
}

function safeEqual(a: string, b: string): boolean {
  let d = a.length ^ b.length;
  for (let i = 0; i < Math.max(a.length, b.length); i++) d |= (a.charCodeAt(i) || 0) ^ (b.charCodeAt(i) || 0);
  return d === 0;
}

/**
 * Server side: does this Authorization answer our challenge with the right password? `nonceOk` decides
 * whether the Digest nonce is one we issued (and still valid). The request URI in the header is used as
 * the client computed it (clients differ on absolute vs relative forms).
 */
export function checkAuthorization(
  a: ParsedAuthorization,
  expect: { method: string; realm: string; password: string; nonceOk?: (nonce: string) => boolean; allowBasic?: boolean },
): boolean {
  if (a.scheme === 'basic') return (expect.allowBasic ?? true) && safeEqual(a.password ?? '', expect.password);
  const p = a.params;
  if ((p['realm'] ?? '') !== expect.realm) return false;
  if (expect.nonceOk && !expect.nonceOk(p['nonce']!)) return false;
  const alg = (p['algorithm'] ?? 'MD5').toUpperCase();
  if (alg !== 'MD5' && alg !== 'MD5-SESS') return false;
  const qop = p['qop']?.toLowerCase();
  if (qop && qop !== 'auth') return false;
  if (qop && (!p['nc'] || !p['cnonce'])) return false;
  const want = digestResponse({
    username: a.username, password: expect.password, realm: expect.realm, nonce: p['nonce']!, method: expect.method,
    uri: p['uri']!, qop, nc: p['nc'], cnonce: p['cnonce'], sess: alg === 'MD5-SESS',
  });
  return safeEqual(want, p['response']!.toLowerCase());
}
