// Secrets out of API answers and log lines: config values under secret-looking keys (passwords, keys,
// secrets, tokens) and the secret parts of URLs (user:password@, ?secret=…&token=…&key=…).
// docs/security.md "Defaults" lists the rule; keep it in one place.

/** What a redacted value is replaced by. Sending it back in config/modify keeps the current value. */
export const REDACTED = '***';

/** Config keys whose values are secrets (compared normalised: lower-case, no `-`/`_`). */
export function isSecretKey(key: string): boolean {
  if (!/^[a-z0-9_-]+$/i.test(key)) return false; // user data (stream paths as map keys), not a setting
  const k = key.toLowerCase().replace(/[-_]/g, '');
  if (/(file|path|argname|name|dir|url|header)$/.test(k)) return false; // names of things, not secrets
  return /(password|passwd|secret|token|key|credential|privatekey|apikey|jwt|sign)$/.test(k) || k === 'pass' || k === 'auth';
}

/** Query args that carry secrets in stream and pull URLs. */
const SECRET_ARG = /^(secret|password|passwd|pass|pwd|token|key|streamkey|sign|signature|jwt|auth|authorization|apikey|access_token)$/i;

/** Removes `user:password@` and secret query args from every URL-looking part of a string. */
export function redactUrl(s: string): string {
  if (s.length > 8192 || (!s.includes('@') && !s.includes('='))) return s;
  return s
    .replace(/([a-z][a-z0-9+.-]*:\/\/)([^/@\s:]*):([^/@\s]*)@/gi, (_m, scheme, user) => `${scheme}${user}:${REDACTED}@`)
    .replace(/([?&;])([^=&#\s]+)=([^&#\s]*)/g, (m, sep, name, v) => (SECRET_ARG.test(name) && v !== '' ? `${sep}${name}=${REDACTED}` : m));
}

/**
 * A deep copy of `v` with secret-keyed values replaced by REDACTED (empty ones stay empty: "not set"
 * is not a secret) and URLs in strings redacted. Own enumerable keys only; cycles cut.
 */
export function redact<T>(v: T, seen = new WeakSet<object>(), diffOfSecret = false): T {
  if (diffOfSecret && v && typeof v === 'object' && !Array.isArray(v)) {
    // A config diff entry { path, old, new } of a secret setting: both values go.
    const o = v as Record<string, unknown>;
    const hide = (x: unknown) => (x === '' || x === undefined || x === null ? x : REDACTED);
    return { ...o, old: hide(o.old), new: hide(o.new) } as T;
  }
  if (typeof v === 'string') return redactUrl(v) as T;
  if (!v || typeof v !== 'object') return v;
  if (v instanceof Error) return redactUrl(v.message) as T;
  // Only plain data is walked (config, API answers, log fields); byte arrays and class instances pass as they are.
  const proto = Object.getPrototypeOf(v);
  if (!Array.isArray(v) && proto !== Object.prototype && proto !== null) return v;
  if (seen.has(v)) return '[cycle]' as T;
  seen.add(v);
  if (Array.isArray(v)) return v.map((x) => redact(x, seen)) as T;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) {
    const x = (v as Record<string, unknown>)[k];
    out[k] = isSecretKey(k) && typeof x === 'string' && x !== '' ? REDACTED : redact(x, seen);
  }
  return out as T;
}
