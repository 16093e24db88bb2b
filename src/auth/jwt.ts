// JSON Web Token verification on WebCrypto (`crypto.subtle`), the same on Node, Bun, Deno and edge
// runtimes. Our own (~150 lines) rather than `jose`: we need only compact JWS verification for a short
// list of algorithms, a JWKS cache and the registered-claim checks; no encryption, no signing API.
//
//   HS256/HS384/HS512   a shared secret (config `jwt.secret`)
//   RS256/RS384/RS512   RSA PKCS#1 v1.5 public keys from a JWKS (file or URL)
//   PS256/PS384/PS512   RSA-PSS public keys from a JWKS
//   ES256/ES384/ES512   ECDSA P-256/P-384/P-521 public keys from a JWKS (JWS signatures are r||s,
//                       the format WebCrypto verifies directly)
//
// `alg: none` and HMAC tokens checked against a JWKS key are refused (no algorithm confusion: HS*
// only ever uses the configured secret, RS/PS/ES only JWKS keys of the matching type).

const te = new TextEncoder();
const td = new TextDecoder();

export class JwtError extends Error {
  constructor(message: string) { super(message); this.name = 'JwtError'; }
}

export function b64urlDecode(s: string): Uint8Array<ArrayBuffer> {
  if (!/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) throw new JwtError('token is not base64url');
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4);
  let bin: string;
  try { bin = atob(b64); } catch { throw new JwtError('token is not base64url'); }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function b64urlEncode(b: Uint8Array | string): string {
  const bytes = typeof b === 'string' ? te.encode(b) : b;
  let bin = '';
  for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export interface Jwk { kty?: string; kid?: string; alg?: string; use?: string; crv?: string; n?: string; e?: string; x?: string; y?: string; k?: string }

type Alg = { kind: 'hmac' | 'rsa' | 'pss' | 'ec'; hash: string; crv?: string; saltLength?: number };
const ALGS: Record<string, Alg> = {
  HS256: { kind: 'hmac', hash: 'SHA-256' }, HS384: { kind: 'hmac', hash: 'SHA-384' }, HS512: { kind: 'hmac', hash: 'SHA-512' },
  RS256: { kind: 'rsa', hash: 'SHA-256' }, RS384: { kind: 'rsa', hash: 'SHA-384' }, RS512: { kind: 'rsa', hash: 'SHA-512' },
  PS256: { kind: 'pss', hash: 'SHA-256', saltLength: 32 }, PS384: { kind: 'pss', hash: 'SHA-384', saltLength: 48 }, PS512: { kind: 'pss', hash: 'SHA-512', saltLength: 64 },
  ES256: { kind: 'ec', hash: 'SHA-256', crv: 'P-256' }, ES384: { kind: 'ec', hash: 'SHA-384', crv: 'P-384' }, ES512: { kind: 'ec', hash: 'SHA-512', crv: 'P-521' },
};

export interface JwtVerifyOptions {
  /** HMAC secret (HS*). Empty: HS* tokens are refused. */
  secret?: string;
  /** Public keys (RS*, PS*, ES*). Called with `reload` true once when no key matches the token's kid. */
  keys?: (reload: boolean) => Promise<Jwk[]>;
  issuer?: string;
  audience?: string;
  /** Clock skew allowed for exp/nbf, in seconds (default 5). */
  leeway?: number;
  now?: number;
}

/** Verify a compact JWS and its exp/nbf/iss/aud; returns the payload. Throws JwtError with the reason. */
export async function verifyJwt(token: string, opts: JwtVerifyOptions): Promise<Record<string, unknown>> {
  if (token.length > 16384) throw new JwtError('token too long');
  const parts = token.split('.');
  if (parts.length !== 3) throw new JwtError('token is not a compact JWS');
  let header: Record<string, unknown>, payload: Record<string, unknown>;
  try {
    header = JSON.parse(td.decode(b64urlDecode(parts[0])));
    payload = JSON.parse(td.decode(b64urlDecode(parts[1])));
  } catch (err) {
    throw err instanceof JwtError ? err : new JwtError('token header or payload is not JSON');
  }
  if (!header || typeof header !== 'object' || !payload || typeof payload !== 'object' || Array.isArray(payload)) throw new JwtError('token header or payload is not an object');
  const algName = String(header.alg ?? '');
  const alg = Object.prototype.hasOwnProperty.call(ALGS, algName) ? ALGS[algName] : undefined;
  if (!alg) throw new JwtError(`algorithm ${JSON.stringify(algName.slice(0, 16))} is not accepted`);
  if (header.crit !== undefined) throw new JwtError('critical header extensions are not supported');
  const data = te.encode(parts[0] + '.' + parts[1]);
  const sig = b64urlDecode(parts[2]);
  let ok = false;
  if (alg.kind === 'hmac') {
    if (!opts.secret) throw new JwtError(`${algName} tokens are not accepted (no jwt.secret configured)`);
    const key = await crypto.subtle.importKey('raw', te.encode(opts.secret), { name: 'HMAC', hash: alg.hash }, false, ['verify']);
    ok = await crypto.subtle.verify('HMAC', key, sig, data);
  } else {
    if (!opts.keys) throw new JwtError(`${algName} tokens are not accepted (no jwt.jwks configured)`);
    const kid = typeof header.kid === 'string' ? header.kid : undefined;
    let cands = pickKeys(await opts.keys(false), alg, algName, kid);
    if (!cands.length && kid) cands = pickKeys(await opts.keys(true), alg, algName, kid);
    if (!cands.length) throw new JwtError(`no JWKS key for ${algName}${kid ? ` kid ${JSON.stringify(kid.slice(0, 40))}` : ''}`);
    for (const jwk of cands) {
      if (await verifyWithJwk(jwk, alg, sig, data)) { ok = true; break; }
    }
  }
  if (!ok) throw new JwtError('bad token signature');
  const now = opts.now ?? Date.now() / 1000;
  const leeway = opts.leeway ?? 5;
  if (payload.exp !== undefined && !(typeof payload.exp === 'number' && now <= payload.exp + leeway)) throw new JwtError('token expired');
  if (payload.nbf !== undefined && !(typeof payload.nbf === 'number' && now >= payload.nbf - leeway)) throw new JwtError('token not yet valid');
  if (opts.issuer && payload.iss !== opts.issuer) throw new JwtError('token issuer does not match');
  if (opts.audience) {
    const aud = payload.aud;
    if (!(aud === opts.audience || (Array.isArray(aud) && aud.includes(opts.audience)))) throw new JwtError('token audience does not match');
  }
  return payload;
}

function pickKeys(keys: Jwk[], alg: Alg, algName: string, kid: string | undefined): Jwk[] {
  return keys.filter((k) => {
    if (!k || typeof k !== 'object') return false;
    if (kid !== undefined && k.kid !== undefined && k.kid !== kid) return false;
    if (k.alg && k.alg !== algName) return false;
    if (k.use && k.use !== 'sig') return false;
    if (alg.kind === 'ec') return k.kty === 'EC' && k.crv === alg.crv;
    return k.kty === 'RSA';
  });
}

const keyCache = new Map<string, CryptoKey>();

async function verifyWithJwk(jwk: Jwk, alg: Alg, sig: Uint8Array<ArrayBuffer>, data: Uint8Array<ArrayBuffer>): Promise<boolean> {
  // Only the public members: importKey refuses a JWK whose alg/key_ops disagree with our use.
  const pub = alg.kind === 'ec' ? { kty: 'EC', crv: jwk.crv, x: jwk.x, y: jwk.y } : { kty: 'RSA', n: jwk.n, e: jwk.e };
  const params = alg.kind === 'ec' ? { name: 'ECDSA', namedCurve: alg.crv! }
    : { name: alg.kind === 'pss' ? 'RSA-PSS' : 'RSASSA-PKCS1-v1_5', hash: alg.hash };
  const cacheKey = JSON.stringify([params, pub]);
  let key = keyCache.get(cacheKey);
  try {
    if (!key) {
      key = await crypto.subtle.importKey('jwk', pub as JsonWebKey, params, false, ['verify']);
      if (keyCache.size > 256) keyCache.clear();
      keyCache.set(cacheKey, key);
    }
    const vp = alg.kind === 'ec' ? { name: 'ECDSA', hash: alg.hash } : alg.kind === 'pss' ? { name: 'RSA-PSS', saltLength: alg.saltLength! } : { name: 'RSASSA-PKCS1-v1_5' };
    return await crypto.subtle.verify(vp, key, sig, data);
  } catch {
    return false;
  }
}

/** Sign an HS256 token (tests, and the console's admin sessions with the admin secret). */
export async function signHs256(payload: Record<string, unknown>, secret: string): Promise<string> {
  const head = b64urlEncode(JSON.stringify({ alg: 'HS256', typ: 'JWT' })) + '.' + b64urlEncode(JSON.stringify(payload));
  const key = await crypto.subtle.importKey('raw', te.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return head + '.' + b64urlEncode(new Uint8Array(await crypto.subtle.sign('HMAC', key, te.encode(head))));
}

/** A JWKS document ({keys: [...]}) from text; throws JwtError. */
export function parseJwks(text: string): Jwk[] {
  let doc: unknown;
  try { doc = JSON.parse(text); } catch { throw new JwtError('JWKS is not JSON'); }
  const keys = (doc as { keys?: unknown })?.keys;
  if (!Array.isArray(keys)) throw new JwtError('JWKS has no "keys" list');
  return keys as Jwk[];
}
