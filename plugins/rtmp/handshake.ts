// The RTMP handshake, both sides.
//
//   client → C0 (1 byte: version 3) + C1 (1536 bytes)
//   server → S0 + S1 (1536) + S2 (1536: an echo of C1)
//   client → C2 (1536: an echo of S1)
//
// The "plain" handshake (RTMP spec §5.2) puts time + zero + random bytes in C1/S1. Flash Player 9 and
// later (and OBS, librtmp, most encoders) use the "digest" variant: C1 carries an HMAC-SHA256 digest at a
// position derived from the packet itself (two layouts, "schema 0" and "schema 1"), keyed with the
// public "Genuine Adobe Flash Player 001" key. A server that recognises it answers with a digest S1 (key
// "Genuine Adobe Flash Media Server 001") and an S2 signed with a key derived from the client's digest.
// Players that sent a digest C1 may refuse a plain answer, so we detect it and answer in kind; anything
// else gets the plain answer.
//
// The parsers are synchronous and bounded: they buffer at most C0+C1+C2 (3073 bytes) and return the
// bytes that follow the handshake so the chunk reader can take them.

import { hmacSha256 } from './sha256.ts';

export const RTMP_VERSION = 3;
export const HANDSHAKE_SIZE = 1536;

const ADOBE_TAIL = [
  0xf0, 0xee, 0xc2, 0x4a, 0x80, 0x68, 0xbe, 0xe8, 0x2e, 0x00, 0xd0, 0xd1, 0x02, 0x9e, 0x7e, 0x57,
  0x6e, 0xec, 0x5d, 0x2d, 0x29, 0x80, 0x6f, 0xab, 0x93, 0xb8, 0xe6, 0x36, 0xcf, 0xeb, 0x31, 0xae,
];
const ascii = (s: string) => Array.from(s, (c) => c.charCodeAt(0));
/** The player key: its first 30 bytes sign C1, all 62 are unused here. */
const FP_KEY = new Uint8Array([...ascii('Genuine Adobe Flash Player 001'), ...ADOBE_TAIL]);
/** The server key: its first 36 bytes sign S1, all 68 derive the S2 key. */
const FMS_KEY = new Uint8Array([...ascii('Genuine Adobe Flash Media Server 001'), ...ADOBE_TAIL]);
const FP_KEY_C1 = FP_KEY.subarray(0, 30);
const FMS_KEY_S1 = FMS_KEY.subarray(0, 36);

export class HandshakeError extends Error {
  constructor(message: string) { super(message); this.name = 'HandshakeError'; }
}

/** Where the 32-byte digest sits in a 1536-byte C1/S1 for a schema (0: key block first, 1: digest first). */
export function digestOffset(p: Uint8Array, schema: 0 | 1): number {
  const block = schema === 0 ? 772 : 8; // the digest block: 4 offset bytes, then 728 bytes holding the digest
  const o = (p[block] + p[block + 1] + p[block + 2] + p[block + 3]) % 728;
  return block + 4 + o;
}

/** HMAC over the packet without its digest bytes. */
function packetDigest(p: Uint8Array, at: number, key: Uint8Array): Uint8Array {
  const msg = new Uint8Array(HANDSHAKE_SIZE - 32);
  msg.set(p.subarray(0, at), 0);
  msg.set(p.subarray(at + 32), at);
  return hmacSha256(key, msg);
}

function equal32(a: Uint8Array, ai: number, b: Uint8Array): boolean {
  let d = 0;
  for (let i = 0; i < 32; i++) d |= a[ai + i] ^ b[i];
  return d === 0;
}

/** The digest of a digest-style C1 (and its schema), or null when C1 is plain. */
export function findC1Digest(c1: Uint8Array): { schema: 0 | 1; digest: Uint8Array } | null {
  if (c1.length !== HANDSHAKE_SIZE) return null;
  // A plain C1 has a zero version field; only try the digest check when it is set.
  if (c1[4] === 0 && c1[5] === 0 && c1[6] === 0 && c1[7] === 0) return null;
  for (const schema of [1, 0] as const) {
    const at = digestOffset(c1, schema);
    const want = packetDigest(c1, at, FP_KEY_C1);
    if (equal32(c1, at, want)) return { schema, digest: c1.slice(at, at + 32) };
  }
  return null;
}

// Random bytes come from a 64 KiB pool refilled by one getRandomValues call (its limit per call):
// one call per join cost ~13 us, 2 % of the server's CPU while 1000 RTMP players joined at once.
const POOL_SIZE = 65536;
const pool = new Uint8Array(POOL_SIZE);
let poolAt = POOL_SIZE;

function randomBytes(n: number): Uint8Array {
  if (n > POOL_SIZE) throw new RangeError(`randomBytes(${n}): at most ${POOL_SIZE}`);
  if (poolAt + n > POOL_SIZE) { crypto.getRandomValues(pool); poolAt = 0; }
  const b = pool.slice(poolAt, poolAt + n); // a copy: no two packets share bytes
  poolAt += n;
  return b;
}

function putU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24; b[at + 1] = v >>> 16; b[at + 2] = v >>> 8; b[at + 3] = v;
}

const uptime = () => (Date.now() & 0x7fffffff) >>> 0;

/** A plain C1/S1: time, zero, random. */
export function plainPacket(): Uint8Array {
  const p = randomBytes(HANDSHAKE_SIZE);
  putU32(p, 0, uptime());
  putU32(p, 4, 0);
  return p;
}

/** A digest C1 (player key) or S1 (server key) in `schema`. */
export function digestPacket(role: 'client' | 'server', schema: 0 | 1): Uint8Array {
  const p = randomBytes(HANDSHAKE_SIZE);
  putU32(p, 0, uptime());
  putU32(p, 4, role === 'server' ? 0x04050001 : 0x0a000c02); // "server version" / "player version"
  const at = digestOffset(p, schema);
  p.set(packetDigest(p, at, role === 'server' ? FMS_KEY_S1 : FP_KEY_C1), at);
  return p;
}

/** S2 answering a digest C1: random bytes signed with a key derived from the client's digest. */
export function digestS2(c1Digest: Uint8Array): Uint8Array {
  const s2 = randomBytes(HANDSHAKE_SIZE);
  const key = hmacSha256(FMS_KEY, c1Digest);
  s2.set(hmacSha256(key, s2.subarray(0, HANDSHAKE_SIZE - 32)), HANDSHAKE_SIZE - 32);
  return s2;
}

/** Whether an S2 is correctly signed for the C1 digest we sent (client side check, optional). */
export function checkDigestS2(s2: Uint8Array, c1Digest: Uint8Array): boolean {
  const key = hmacSha256(FMS_KEY, c1Digest);
  return equal32(s2, HANDSHAKE_SIZE - 32, hmacSha256(key, s2.subarray(0, HANDSHAKE_SIZE - 32)));
}

/** Result of feeding bytes to a handshake. */
export interface HandshakeStep {
  /** Bytes to send now (may be empty). */
  out: Uint8Array[];
  /** True once the handshake is complete. */
  done: boolean;
  /** Bytes received after the handshake (the first chunks), when done. */
  rest?: Uint8Array;
}

/** Accumulates exactly `n` bytes from arbitrary pieces (never more). */
class Fill {
  readonly buf: Uint8Array;
  len = 0;
  constructor(n: number) { this.buf = new Uint8Array(n); }
  get full(): boolean { return this.len === this.buf.length; }
  /** Take what fits; returns the bytes of `chunk` consumed. */
  take(chunk: Uint8Array, from: number): number {
    const n = Math.min(this.buf.length - this.len, chunk.length - from);
    this.buf.set(chunk.subarray(from, from + n), this.len);
    this.len += n;
    return n;
  }
}

/** The server side: feed received bytes, send what it returns. */
export class ServerHandshake {
  /** 'digest' or 'plain' once C1 is seen. */
  mode: 'plain' | 'digest' | '' = '';
  private readonly c0c1 = new Fill(1 + HANDSHAKE_SIZE);
  private readonly c2 = new Fill(HANDSHAKE_SIZE);
  private finished = false;

  feed(chunk: Uint8Array): HandshakeStep {
    if (this.finished) throw new HandshakeError('handshake already complete');
    const out: Uint8Array[] = [];
    let i = 0;
    if (!this.c0c1.full) {
      i += this.c0c1.take(chunk, i);
      if (!this.c0c1.full) return { out, done: false };
      const b = this.c0c1.buf;
      // Version 3 is RTMP; 6 would be RTMPE (encrypted), which we do not speak. Some clients send other
      // values in C0 and still speak plain RTMP; accept 3..31 like other servers, refuse the rest.
      if (b[0] < 3 || b[0] > 31) throw new HandshakeError(`unsupported RTMP version ${b[0]} in C0 (want 3)`);
      if (b[0] === 6 || b[0] === 8 || b[0] === 9) throw new HandshakeError(`RTMPE (encrypted RTMP, version ${b[0]}) is not supported`);
      const c1 = b.subarray(1);
      const d = findC1Digest(c1);
      const s0 = new Uint8Array([RTMP_VERSION]);
      if (d) {
        this.mode = 'digest';
        out.push(s0, digestPacket('server', d.schema), digestS2(d.digest));
      } else {
        this.mode = 'plain';
        const s2 = c1.slice();
        putU32(s2, 4, uptime()); // time2: when we read C1
        out.push(s0, plainPacket(), s2);
      }
    }
    i += this.c2.take(chunk, i);
    if (!this.c2.full) return { out, done: false };
    // C2 is an echo of S1 (plain) or signed with S1's digest (digest). Clients are inconsistent here,
    // and the check proves nothing about the peer, so like most servers we do not verify it.
    this.finished = true;
    return { out, done: true, rest: chunk.subarray(i) };
  }
}

/** The client side: `start()` gives C0+C1, then feed S0/S1/S2. Plain handshake (servers all accept it). */
export class ClientHandshake {
  private readonly s0s1s2 = new Fill(1 + 2 * HANDSHAKE_SIZE);
  private finished = false;

  start(): Uint8Array[] {
    return [new Uint8Array([RTMP_VERSION]), plainPacket()];
  }

  feed(chunk: Uint8Array): HandshakeStep {
    if (this.finished) throw new HandshakeError('handshake already complete');
    const i = this.s0s1s2.take(chunk, 0);
    if (!this.s0s1s2.full) return { out: [], done: false };
    const b = this.s0s1s2.buf;
    if (b[0] !== RTMP_VERSION) throw new HandshakeError(`server answered RTMP version ${b[0]} (want 3)`);
    this.finished = true;
    // C2 echoes S1.
    const c2 = b.slice(1, 1 + HANDSHAKE_SIZE);
    return { out: [c2], done: true, rest: chunk.subarray(i) };
  }
}
