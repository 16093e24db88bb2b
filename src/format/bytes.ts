// Small byte-level helpers shared by the format and codec parsers.
//
// Everything here works on Uint8Array/DataView only (no Buffer, no runtime APIs) so it runs unchanged on
// Node, Bun, Deno and edge platforms. Readers never read past their end: a short read throws a
// FormatError, which parsers let propagate so that a caller handling hostile input only has to catch one
// error type.

/** Malformed, truncated or otherwise invalid input. Every parser in src/format and src/codec throws this. */
export class FormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FormatError';
  }
}

/** Well-formed input using a feature this code does not handle (a codec id, a packet type...). */
export class UnsupportedFormatError extends FormatError {
  constructor(message: string) {
    super(message);
    this.name = 'UnsupportedFormatError';
  }
}

const EMPTY = new Uint8Array(0);

/** Big-endian reader over a Uint8Array. `bytes(n)` returns views (no copy) into the source. */
export class ByteReader {
  readonly buf: Uint8Array;
  readonly view: DataView;
  /** Absolute index into `buf` of the next byte to read. */
  pos: number;
  /** Absolute index into `buf` one past the last readable byte. */
  readonly end: number;

  constructor(buf: Uint8Array, offset = 0, length = buf.length - offset) {
    if (offset < 0 || length < 0 || offset + length > buf.length) {
      throw new FormatError(`ByteReader: window ${offset}+${length} outside a ${buf.length}-byte buffer`);
    }
    this.buf = buf;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = offset;
    this.end = offset + length;
  }

  /** Bytes left to read. */
  get remaining(): number {
    return this.end - this.pos;
  }

  /** Throws a FormatError unless at least `n` bytes are left. */
  need(n: number, what?: string): void {
    if (n > this.end - this.pos || n < 0) {
      throw new FormatError(
        `unexpected end of data${what ? ` reading ${what}` : ''}: need ${n} byte(s) at offset ${this.pos}, ${this.end - this.pos} left`,
      );
    }
  }

  u8(): number {
    if (this.pos >= this.end) this.need(1);
    return this.buf[this.pos++]!;
  }

  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  u24(): number {
    this.need(3);
    const b = this.buf, p = this.pos;
    this.pos = p + 3;
    return (b[p]! << 16) | (b[p + 1]! << 8) | b[p + 2]!;
  }

  /** Signed 24-bit (two's complement), as used by FLV composition times. */
  i24(): number {
    return (this.u24() << 8) >> 8;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  i16(): number {
    this.need(2);
    const v = this.view.getInt16(this.pos);
    this.pos += 2;
    return v;
  }

  i32(): number {
    this.need(4);
    const v = this.view.getInt32(this.pos);
    this.pos += 4;
    return v;
  }

  f64(): number {
    this.need(8);
    const v = this.view.getFloat64(this.pos);
    this.pos += 8;
    return v;
  }

  /** The next `n` bytes as a view into the source (no copy). */
  bytes(n: number, what?: string): Uint8Array {
    this.need(n, what);
    const p = this.pos;
    this.pos = p + n;
    return n === 0 ? EMPTY : this.buf.subarray(p, p + n);
  }

  /** Everything left, as a view. */
  rest(): Uint8Array {
    const p = this.pos;
    this.pos = this.end;
    return this.buf.subarray(p, this.end);
  }

  skip(n: number, what?: string): void {
    this.need(n, what);
    this.pos += n;
  }

  /** Four ASCII characters (a FourCC). */
  fourcc(): string {
    this.need(4, 'FourCC');
    const b = this.buf, p = this.pos;
    this.pos = p + 4;
    return String.fromCharCode(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!);
  }
}

/**
 * Big-endian writer. Growable by default; `ByteWriter.fixed(n)` makes one that throws instead of growing
 * (for headers whose size is known up front).
 */
export class ByteWriter {
  buf: Uint8Array;
  view: DataView;
  pos = 0;
  private readonly growable: boolean;

  constructor(initialSize = 256, growable = true) {
    this.buf = new Uint8Array(Math.max(1, initialSize));
    this.view = new DataView(this.buf.buffer);
    this.growable = growable;
  }

  static fixed(size: number): ByteWriter {
    return new ByteWriter(size, false);
  }

  /** Make room for `n` more bytes. */
  ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    if (!this.growable) throw new RangeError(`ByteWriter: fixed buffer of ${this.buf.length} bytes overflowed`);
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf[this.pos++] = v;
    return this;
  }

  u16(v: number): this {
    this.ensure(2);
    this.view.setUint16(this.pos, v);
    this.pos += 2;
    return this;
  }

  u24(v: number): this {
    this.ensure(3);
    const b = this.buf, p = this.pos;
    b[p] = v >>> 16;
    b[p + 1] = v >>> 8;
    b[p + 2] = v;
    this.pos = p + 3;
    return this;
  }

  u32(v: number): this {
    this.ensure(4);
    this.view.setUint32(this.pos, v >>> 0);
    this.pos += 4;
    return this;
  }

  i16(v: number): this {
    this.ensure(2);
    this.view.setInt16(this.pos, v);
    this.pos += 2;
    return this;
  }

  i32(v: number): this {
    this.ensure(4);
    this.view.setInt32(this.pos, v | 0);
    this.pos += 4;
    return this;
  }

  f64(v: number): this {
    this.ensure(8);
    this.view.setFloat64(this.pos, v);
    this.pos += 8;
    return this;
  }

  bytes(src: Uint8Array): this {
    this.ensure(src.length);
    this.buf.set(src, this.pos);
    this.pos += src.length;
    return this;
  }

  /** Four ASCII characters. */
  fourcc(s: string): this {
    this.ensure(4);
    for (let i = 0; i < 4; i++) this.buf[this.pos++] = s.charCodeAt(i) & 0xff;
    return this;
  }

  /**
   * UTF-8 encode `s` at the current position and return the number of bytes written, leaving `pos`
   * after them. Reserves the worst case (3 bytes per UTF-16 unit) so encodeInto never truncates.
   */
  utf8(s: string): number {
    this.ensure(s.length * 3);
    const { written } = textEncoder.encodeInto(s, this.buf.subarray(this.pos));
    this.pos += written;
    return written;
  }

  /** The bytes written so far as an exactly-sized view (no copy when the buffer is full-size). */
  finish(): Uint8Array {
    return this.pos === this.buf.length ? this.buf : this.buf.subarray(0, this.pos);
  }
}

export const textEncoder = new TextEncoder();
/** Strict UTF-8 decoding would reject some real-world encoders; invalid sequences become U+FFFD. */
export const textDecoder = new TextDecoder('utf-8');

/** Concatenate chunks into one new array (or return the only chunk as is). */
export function concat(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  let n = 0;
  for (const c of chunks) n += c.length;
  const out = new Uint8Array(n);
  let p = 0;
  for (const c of chunks) {
    out.set(c, p);
    p += c.length;
  }
  return out;
}

/** Lower-case hex of bytes (for codec strings, logs and tests). */
export function toHex(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += HEX[b[i]!];
  return s;
}
const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Parse hex (whitespace ignored). Throws FormatError on odd length or a non-hex digit. */
export function fromHex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, '');
  if (clean.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(clean)) throw new FormatError('fromHex: not a hex string');
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.substr(i * 2, 2), 16);
  return out;
}

/** Byte-wise equality. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * MSB-first bit reader for codec headers (SPS, AudioSpecificConfig...). Reading past the end throws a
 * FormatError. Exp-Golomb codes longer than 32 bits are rejected (no valid syntax element needs them).
 */
export class BitReader {
  private readonly buf: Uint8Array;
  /** Absolute bit position. */
  private bit: number;
  private readonly endBit: number;

  constructor(buf: Uint8Array, byteOffset = 0, byteLength = buf.length - byteOffset) {
    if (byteOffset < 0 || byteLength < 0 || byteOffset + byteLength > buf.length) {
      throw new FormatError(`BitReader: window ${byteOffset}+${byteLength} outside a ${buf.length}-byte buffer`);
    }
    this.buf = buf;
    this.bit = byteOffset * 8;
    this.endBit = (byteOffset + byteLength) * 8;
  }

  get bitsLeft(): number {
    return this.endBit - this.bit;
  }

  get bitPos(): number {
    return this.bit;
  }

  /** Read `n` (0..32) bits as an unsigned number. */
  bits(n: number): number {
    if (n > this.endBit - this.bit) {
      throw new FormatError(`unexpected end of bitstream: need ${n} bit(s), ${this.endBit - this.bit} left`);
    }
    let v = 0;
    let bit = this.bit;
    const buf = this.buf;
    // Take as many bits as the current byte holds per step (up to 8 at a time).
    while (n > 0) {
      const byteIdx = bit >>> 3;
      const off = bit & 7;
      const avail = 8 - off;
      const take = n < avail ? n : avail;
      const chunk = (buf[byteIdx]! >>> (avail - take)) & ((1 << take) - 1);
      v = v * (1 << take) + chunk; // multiplication keeps 32-bit values unsigned
      n -= take;
      bit += take;
    }
    this.bit = bit;
    return v;
  }

  bool(): boolean {
    if (this.bit >= this.endBit) throw new FormatError('unexpected end of bitstream: need 1 bit, 0 left');
    const v = (this.buf[this.bit >>> 3]! >>> (7 - (this.bit & 7))) & 1;
    this.bit++;
    return v === 1;
  }

  skip(n: number): void {
    if (n > this.endBit - this.bit || n < 0) {
      throw new FormatError(`unexpected end of bitstream: cannot skip ${n} bit(s), ${this.endBit - this.bit} left`);
    }
    this.bit += n;
  }

  /** Unsigned Exp-Golomb ue(v). */
  ue(): number {
    let zeros = 0;
    while (!this.bool()) {
      if (++zeros > 31) throw new FormatError('Exp-Golomb code longer than 32 bits');
    }
    if (zeros === 0) return 0;
    return (2 ** zeros - 1) + this.bits(zeros);
  }

  /** Signed Exp-Golomb se(v). */
  se(): number {
    const k = this.ue();
    return k & 1 ? (k + 1) / 2 : -(k / 2);
  }

  /** ue(v) with an upper bound; larger values are a FormatError naming the field. */
  ueMax(max: number, what: string): number {
    const v = this.ue();
    if (v > max) throw new FormatError(`${what} = ${v} out of range (max ${max})`);
    return v;
  }
}

/** MSB-first bit writer (for AudioSpecificConfig and similar small headers). */
export class BitWriter {
  private bytes: number[] = [];
  private cur = 0;
  private nbits = 0;

  /** Write the low `n` (0..32) bits of `v`. */
  bits(n: number, v: number): this {
    for (let i = n - 1; i >= 0; i--) {
      const bit = Math.floor(v / 2 ** i) & 1;
      this.cur = (this.cur << 1) | bit;
      if (++this.nbits === 8) {
        this.bytes.push(this.cur);
        this.cur = 0;
        this.nbits = 0;
      }
    }
    return this;
  }

  /** Pad with zero bits to a byte boundary and return the bytes. */
  finish(): Uint8Array {
    const out = this.bytes.slice();
    if (this.nbits > 0) out.push(this.cur << (8 - this.nbits));
    return Uint8Array.from(out);
  }
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_INDEX = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) B64_INDEX[B64.charCodeAt(i)] = i;
B64_INDEX['-'.charCodeAt(0)] = 62; // base64url alphabet accepted too
B64_INDEX['_'.charCodeAt(0)] = 63;

/** Standard base64 (with padding) of bytes. */
export function base64Encode(b: Uint8Array): string {
  let s = '';
  let i = 0;
  for (; i + 2 < b.length; i += 3) {
    const v = (b[i]! << 16) | (b[i + 1]! << 8) | b[i + 2]!;
    s += B64[v >> 18]! + B64[(v >> 12) & 63]! + B64[(v >> 6) & 63]! + B64[v & 63]!;
  }
  if (i < b.length) {
    const v = (b[i]! << 16) | ((b[i + 1] ?? 0) << 8);
    s += B64[v >> 18]! + B64[(v >> 12) & 63]! + (i + 1 < b.length ? B64[(v >> 6) & 63]! : '=') + '=';
  }
  return s;
}

/** Decode base64 or base64url (padding optional, whitespace ignored). Anything else is a FormatError. */
export function base64Decode(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, '').replace(/=+$/, '');
  if (clean.length % 4 === 1) throw new FormatError('base64 string of impossible length');
  const out = new Uint8Array((clean.length * 3) >> 2);
  let acc = 0, bits = 0, o = 0;
  for (let i = 0; i < clean.length; i++) {
    const c = clean.charCodeAt(i);
    const v = c < 128 ? B64_INDEX[c]! : -1;
    if (v < 0) throw new FormatError(`invalid base64 character at ${i}`);
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out.subarray(0, o);
}
