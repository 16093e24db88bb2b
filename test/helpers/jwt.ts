// Test tokens: keys generated with WebCrypto, tokens signed here (the server only verifies).
import { b64urlEncode, signHs256 } from '../../src/auth/jwt.ts';

export { signHs256 };

export interface TestKey { alg: 'ES256' | 'RS256'; kid: string; privateKey: CryptoKey; jwk: JsonWebKey }

export async function makeKey(alg: 'ES256' | 'RS256', kid: string): Promise<TestKey> {
  const params = alg === 'ES256'
    ? { name: 'ECDSA', namedCurve: 'P-256' }
    : { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' };
  const pair = await crypto.subtle.generateKey(params, true, ['sign', 'verify']) as CryptoKeyPair;
  const jwk = await crypto.subtle.exportKey('jwk', pair.publicKey);
  return { alg, kid, privateKey: pair.privateKey, jwk: { ...jwk, kid, alg, use: 'sig' } as JsonWebKey };
}

export async function signWith(k: TestKey, payload: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
  const head = b64urlEncode(JSON.stringify({ alg: k.alg, typ: 'JWT', kid: k.kid, ...header })) + '.' + b64urlEncode(JSON.stringify(payload));
  const algo = k.alg === 'ES256' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: 'RSASSA-PKCS1-v1_5' };
  const sig = new Uint8Array(await crypto.subtle.sign(algo, k.privateKey, new TextEncoder().encode(head)));
  return head + '.' + b64urlEncode(sig);
}

export const jwks = (...keys: TestKey[]) => JSON.stringify({ keys: keys.map((k) => k.jwk) });
export const nowSec = () => Math.floor(Date.now() / 1000);
