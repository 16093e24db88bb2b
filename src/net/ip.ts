// IP addresses and CIDR ranges, runtime-agnostic: parse IPv4/IPv6 text into 16 bytes (IPv4 as an
// IPv4-mapped IPv6 address, so `127.0.0.1` and `::ffff:127.0.0.1` compare equal), match ranges, and the
// named ranges the config accepts (`loopback`, `private`, ...). Used by the API guard and the outbound
// (pull/push) policy.

/** 16 bytes, or undefined when `text` is not an IP literal. Accepts `[v6]`, a `%zone` suffix is dropped. */
export function parseIp(text: string): Uint8Array | undefined {
  let s = text.trim();
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  const pct = s.indexOf('%');
  if (pct >= 0) s = s.slice(0, pct);
  const v4 = parseV4(s);
  if (v4) return mapped(v4);
  if (!s.includes(':')) return undefined;
  return parseV6(s);
}

function parseV4(s: string): number[] | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  const out: number[] = [];
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return undefined;
    const n = +p;
    if (n > 255) return undefined;
    out.push(n);
  }
  return out;
}

function mapped(v4: number[]): Uint8Array {
  const b = new Uint8Array(16);
  b[10] = 0xff; b[11] = 0xff;
  b.set(v4, 12);
  return b;
}

function parseV6(s: string): Uint8Array | undefined {
  const dbl = s.indexOf('::');
  if (dbl >= 0 && s.indexOf('::', dbl + 1) >= 0) return undefined;
  const head = dbl >= 0 ? s.slice(0, dbl) : s;
  const tail = dbl >= 0 ? s.slice(dbl + 2) : '';
  const groups = (part: string): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    const items = part.split(':');
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      if (i === items.length - 1 && it.includes('.')) {
        const v4 = parseV4(it);
        if (!v4) return undefined;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(it)) return undefined;
        out.push(parseInt(it, 16));
      }
    }
    return out;
  };
  const h = groups(head), t = groups(tail);
  if (!h || !t) return undefined;
  if (dbl < 0 ? h.length !== 8 : h.length + t.length > 7) return undefined;
  const all = [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
  const b = new Uint8Array(16);
  all.forEach((g, i) => { b[2 * i] = g >> 8; b[2 * i + 1] = g & 0xff; });
  return b;
}

/** A range: base address and prefix length in bits over the 16-byte form. */
export interface IpRange { base: Uint8Array; bits: number }

/** Named ranges accepted wherever a CIDR list is configured. */
export const NAMED_RANGES: Record<string, readonly string[]> = {
  loopback: ['127.0.0.0/8', '::1/128'],
  /** RFC 1918, RFC 6598 (carrier-grade NAT), IPv6 unique-local. */
  private: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', 'fc00::/7'],
  /** Link-local (cloud metadata services live at 169.254.169.254). */
  linklocal: ['169.254.0.0/16', 'fe80::/10'],
  /** "This network", broadcast, multicast and the unspecified addresses. */
  unspecified: ['0.0.0.0/8', '::/128', '255.255.255.255/32', '224.0.0.0/4', 'ff00::/8'],
};

/** `10.0.0.0/8`, `::1`, `192.168.1.7` (a single address) or a name from NAMED_RANGES. Throws on bad text. */
export function parseRanges(spec: string): IpRange[] {
  const s = spec.trim().toLowerCase();
  const named = NAMED_RANGES[s];
  if (named) return named.flatMap(parseRanges);
  const slash = s.indexOf('/');
  const addr = parseIp(slash >= 0 ? s.slice(0, slash) : s);
  if (!addr) throw new Error(`"${spec}" is not an IP address, a CIDR range or one of ${Object.keys(NAMED_RANGES).join(', ')}`);
  const isV4 = slash >= 0 ? parseV4(s.slice(0, slash)) !== undefined : parseV4(s) !== undefined;
  let bits = 128;
  if (slash >= 0) {
    const n = s.slice(slash + 1);
    if (!/^\d{1,3}$/.test(n) || +n > (isV4 ? 32 : 128)) throw new Error(`"${spec}": bad prefix length`);
    bits = isV4 ? 96 + +n : +n;
  }
  return [{ base: addr, bits }];
}

export function inRange(ip: Uint8Array, r: IpRange): boolean {
  const full = r.bits >> 3, rest = r.bits & 7;
  for (let i = 0; i < full; i++) if (ip[i] !== r.base[i]) return false;
  if (rest) {
    const mask = (0xff << (8 - rest)) & 0xff;
    if ((ip[full] & mask) !== (r.base[full] & mask)) return false;
  }
  return true;
}

/** Compiles a list of range specs once; `has(ip text)` is false for anything that is not an IP literal. */
export class IpSet {
  private readonly ranges: IpRange[];
  constructor(specs: readonly string[]) {
    this.ranges = specs.flatMap(parseRanges);
  }
  get size(): number { return this.ranges.length; }
  has(ip: string | Uint8Array | undefined): boolean {
    const b = typeof ip === 'string' ? parseIp(ip) : ip;
    return !!b && this.ranges.some((r) => inRange(b, r));
  }
}

/** Checks a list of range specs; returns the first problem or undefined. */
export function checkRanges(specs: readonly string[]): string | undefined {
  for (const s of specs) {
    try { parseRanges(s); } catch (err) { return (err as Error).message; }
  }
  return undefined;
}
