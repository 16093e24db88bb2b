// AMF0 encoder/decoder, and an AMF3 decoder for the values that follow the AMF0 "avmplus" switch marker
// (RTMP message types 15/17 carry AMF3 data and commands this way).
//
// JS mapping (decode): number, boolean, string (also long string and XML), null, undefined, object and
// ECMA array -> plain object, strict array -> array, date -> Date, AMF3 byte array -> Uint8Array (a view
// into the input), AMF3 dictionary -> Map, AMF3 vectors -> arrays. A typed object becomes a plain object
// whose class name is kept under the AMF_CLASS_NAME symbol.
//
// Hostile input: every length is checked against the bytes present before anything is allocated,
// nesting is limited (maxDepth), the total number of decoded values is limited (maxValues), references
// must point at values that are already complete (so a decoded graph never has cycles), and keys such as
// "__proto__" become ordinary own properties rather than touching prototypes.

import { ByteReader, ByteWriter, FormatError, UnsupportedFormatError, textDecoder, textEncoder } from './bytes.ts';

/** Wrap an object to encode it as an AMF0 ECMA array (e.g. onMetaData) instead of an anonymous object. */
export class AmfEcmaArray {
  constructor(readonly value: Record<string, unknown>) {}
}

/** Decoded typed objects (AMF0 0x10, AMF3 objects with a class name) carry their class name here. */
export const AMF_CLASS_NAME: unique symbol = Symbol('amf.className');

export interface AmfDecodeOptions {
  /** Maximum nesting of objects/arrays [64]. */
  maxDepth?: number;
  /** Maximum number of values decoded in one call, nested ones included [1_000_000]. */
  maxValues?: number;
}

const DEFAULT_MAX_DEPTH = 64;
const DEFAULT_MAX_VALUES = 1_000_000;

// AMF0 type markers.
const A0_NUMBER = 0x00;
const A0_BOOLEAN = 0x01;
const A0_STRING = 0x02;
const A0_OBJECT = 0x03;
const A0_MOVIECLIP = 0x04;
const A0_NULL = 0x05;
const A0_UNDEFINED = 0x06;
const A0_REFERENCE = 0x07;
const A0_ECMA_ARRAY = 0x08;
const A0_OBJECT_END = 0x09;
const A0_STRICT_ARRAY = 0x0a;
const A0_DATE = 0x0b;
const A0_LONG_STRING = 0x0c;
const A0_UNSUPPORTED = 0x0d;
const A0_RECORDSET = 0x0e;
const A0_XML = 0x0f;
const A0_TYPED_OBJECT = 0x10;
const A0_AVMPLUS = 0x11;

// AMF3 type markers.
const A3_UNDEFINED = 0x00;
const A3_NULL = 0x01;
const A3_FALSE = 0x02;
const A3_TRUE = 0x03;
const A3_INTEGER = 0x04;
const A3_DOUBLE = 0x05;
const A3_STRING = 0x06;
const A3_XML_DOC = 0x07;
const A3_DATE = 0x08;
const A3_ARRAY = 0x09;
const A3_OBJECT = 0x0a;
const A3_XML = 0x0b;
const A3_BYTE_ARRAY = 0x0c;
const A3_VECTOR_INT = 0x0d;
const A3_VECTOR_UINT = 0x0e;
const A3_VECTOR_DOUBLE = 0x0f;
const A3_VECTOR_OBJECT = 0x10;
const A3_DICTIONARY = 0x11;

/** Placeholder in reference tables for a value whose decoding has started but not finished. */
const IN_PROGRESS: unique symbol = Symbol('amf.inProgress');

/** Set obj[key] = value without ever invoking the __proto__ setter. */
function setProp(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    obj[key] = value;
  }
}

/** UTF-8 bytes to string, with a fast path for short ASCII (most AMF keys). */
function utf8(b: Uint8Array): string {
  const n = b.length;
  if (n === 0) return '';
  if (n <= 32) {
    let s = '';
    for (let i = 0; i < n; i++) {
      const c = b[i]!;
      if (c >= 0x80) return textDecoder.decode(b);
      s += String.fromCharCode(c);
    }
    return s;
  }
  return textDecoder.decode(b);
}

/** Shared decoding budget: depth and value counts. */
class Budget {
  depth = 0;
  values = 0;
  constructor(readonly maxDepth: number, readonly maxValues: number) {}

  count(): void {
    if (++this.values > this.maxValues) throw new FormatError(`AMF: more than ${this.maxValues} values`);
  }

  enter(): void {
    if (++this.depth > this.maxDepth) throw new FormatError(`AMF: nesting deeper than ${this.maxDepth}`);
  }

  leave(): void {
    this.depth--;
  }
}

function budgetOf(opts?: AmfDecodeOptions): Budget {
  return new Budget(opts?.maxDepth ?? DEFAULT_MAX_DEPTH, opts?.maxValues ?? DEFAULT_MAX_VALUES);
}

// ---------------------------------------------------------------------------------------------------
// AMF0 decoding

/**
 * Stateful AMF0 decoder over one message: references (marker 0x07) resolve against the complex values
 * decoded earlier in the same message, so decode a message's values through one instance.
 */
export class Amf0Decoder {
  private readonly refs: unknown[] = [];
  private readonly budget: Budget;

  constructor(readonly reader: ByteReader, opts?: AmfDecodeOptions) {
    this.budget = budgetOf(opts);
  }

  /** Decode the next value. */
  decodeOne(): unknown {
    const r = this.reader;
    const b = this.budget;
    b.count();
    const marker = r.u8();
    switch (marker) {
      case A0_NUMBER:
        return r.f64();
      case A0_BOOLEAN:
        return r.u8() !== 0;
      case A0_STRING:
        return utf8(r.bytes(r.u16(), 'AMF0 string'));
      case A0_LONG_STRING:
      case A0_XML:
        return utf8(r.bytes(r.u32(), 'AMF0 long string'));
      case A0_NULL:
        return null;
      case A0_UNDEFINED:
      case A0_UNSUPPORTED:
        return undefined;
      case A0_OBJECT:
        return this.objectBody(null, false);
      case A0_TYPED_OBJECT: {
        const name = utf8(r.bytes(r.u16(), 'AMF0 class name'));
        return this.objectBody(name, false);
      }
      case A0_ECMA_ARRAY:
        r.u32(); // associative count: a hint only, encoders get it wrong; the end marker terminates
        return this.objectBody(null, true);
      case A0_STRICT_ARRAY:
        return this.strictArray();
      case A0_DATE: {
        const ms = r.f64();
        r.i16(); // time zone: reserved, should be 0
        return new Date(ms);
      }
      case A0_REFERENCE: {
        const idx = r.u16();
        if (idx >= this.refs.length) throw new FormatError(`AMF0 reference ${idx} out of range (${this.refs.length} objects)`);
        const v = this.refs[idx];
        if (v === IN_PROGRESS) throw new FormatError(`AMF0 reference ${idx} is cyclic`);
        return v;
      }
      case A0_AVMPLUS:
        // Each switch to AMF3 starts fresh AMF3 reference tables.
        return new Amf3Decoder(r, this.budget).decodeOne();
      case A0_OBJECT_END:
        throw new FormatError(`AMF0 object-end marker outside an object at offset ${r.pos - 1}`);
      case A0_MOVIECLIP:
      case A0_RECORDSET:
        throw new UnsupportedFormatError(`AMF0 reserved type marker 0x${marker.toString(16)}`);
      default:
        throw new FormatError(`AMF0 unknown type marker 0x${marker.toString(16)} at offset ${r.pos - 1}`);
    }
  }

  /** Properties up to the empty-key + object-end marker. ECMA arrays may also end at end of input. */
  private objectBody(className: string | null, ecma: boolean): Record<string, unknown> {
    const r = this.reader;
    const obj: Record<string, unknown> = {};
    if (className !== null) (obj as Record<symbol, unknown>)[AMF_CLASS_NAME] = className;
    const slot = this.refs.length;
    this.refs.push(IN_PROGRESS);
    this.budget.enter();
    for (;;) {
      if (ecma && r.remaining === 0) break; // tolerate encoders that omit the end marker
      const keyLen = r.u16();
      if (keyLen === 0 && r.remaining > 0 && r.buf[r.pos] === A0_OBJECT_END) {
        r.pos++;
        break;
      }
      const key = utf8(r.bytes(keyLen, 'AMF0 property name'));
      setProp(obj, key, this.decodeOne());
    }
    this.budget.leave();
    this.refs[slot] = obj;
    return obj;
  }

  private strictArray(): unknown[] {
    const r = this.reader;
    const count = r.u32();
    // Every value takes at least one byte: a count beyond the bytes left is a lie, not an allocation.
    if (count > r.remaining) throw new FormatError(`AMF0 strict array of ${count} values in ${r.remaining} bytes`);
    const arr: unknown[] = [];
    const slot = this.refs.length;
    this.refs.push(IN_PROGRESS);
    this.budget.enter();
    for (let i = 0; i < count; i++) arr.push(this.decodeOne());
    this.budget.leave();
    this.refs[slot] = arr;
    return arr;
  }
}

/** Decode every AMF0 value in `bytes` (e.g. the body of an RTMP command or data message). */
export function amf0Decode(bytes: Uint8Array, opts?: AmfDecodeOptions): unknown[] {
  const dec = new Amf0Decoder(new ByteReader(bytes), opts);
  const out: unknown[] = [];
  while (dec.reader.remaining > 0) out.push(dec.decodeOne());
  return out;
}

/** Decode one AMF0 value at the reader's position (with its own reference table). */
export function amf0DecodeOne(reader: ByteReader, opts?: AmfDecodeOptions): unknown {
  return new Amf0Decoder(reader, opts).decodeOne();
}

// ---------------------------------------------------------------------------------------------------
// AMF3 decoding

interface Amf3Traits {
  className: string;
  dynamic: boolean;
  sealed: string[];
}

/**
 * AMF3 decoder with its own string/object/traits reference tables. Externalizable objects (whose
 * encoding only their class knows) are rejected as unsupported.
 */
export class Amf3Decoder {
  private readonly strings: string[] = [];
  private readonly objects: unknown[] = [];
  private readonly traits: Amf3Traits[] = [];
  private readonly budget: Budget;

  constructor(readonly reader: ByteReader, budget?: Budget | AmfDecodeOptions) {
    this.budget = budget instanceof Budget ? budget : budgetOf(budget);
  }

  /** Variable-length unsigned 29-bit integer. */
  private u29(): number {
    const r = this.reader;
    let v = 0;
    for (let i = 0; i < 3; i++) {
      const b = r.u8();
      v = (v << 7) | (b & 0x7f);
      if ((b & 0x80) === 0) return v;
    }
    return ((v << 8) | r.u8()) >>> 0;
  }

  private objectRef(idx: number): unknown {
    if (idx >= this.objects.length) throw new FormatError(`AMF3 object reference ${idx} out of range (${this.objects.length})`);
    const v = this.objects[idx];
    if (v === IN_PROGRESS) throw new FormatError(`AMF3 object reference ${idx} is cyclic`);
    return v;
  }

  /** A string value (U29S): inline or a reference into the string table. Empty strings are never stored. */
  private string(): string {
    const h = this.u29();
    if ((h & 1) === 0) {
      const idx = h >>> 1;
      if (idx >= this.strings.length) throw new FormatError(`AMF3 string reference ${idx} out of range (${this.strings.length})`);
      return this.strings[idx]!;
    }
    const len = h >>> 1;
    if (len === 0) return '';
    const s = utf8(this.reader.bytes(len, 'AMF3 string'));
    this.strings.push(s);
    return s;
  }

  decodeOne(): unknown {
    const r = this.reader;
    this.budget.count();
    const marker = r.u8();
    switch (marker) {
      case A3_UNDEFINED:
        return undefined;
      case A3_NULL:
        return null;
      case A3_FALSE:
        return false;
      case A3_TRUE:
        return true;
      case A3_INTEGER:
        return (this.u29() << 3) >> 3; // sign-extend 29 bits
      case A3_DOUBLE:
        return r.f64();
      case A3_STRING:
        return this.string();
      case A3_XML_DOC:
      case A3_XML: {
        const h = this.u29();
        if ((h & 1) === 0) return this.objectRef(h >>> 1);
        const s = utf8(r.bytes(h >>> 1, 'AMF3 XML'));
        this.objects.push(s);
        return s;
      }
      case A3_DATE: {
        const h = this.u29();
        if ((h & 1) === 0) return this.objectRef(h >>> 1);
        const d = new Date(r.f64());
        this.objects.push(d);
        return d;
      }
      case A3_ARRAY:
        return this.array();
      case A3_OBJECT:
        return this.object();
      case A3_BYTE_ARRAY: {
        const h = this.u29();
        if ((h & 1) === 0) return this.objectRef(h >>> 1);
        const bytes = r.bytes(h >>> 1, 'AMF3 byte array');
        this.objects.push(bytes);
        return bytes;
      }
      case A3_VECTOR_INT:
      case A3_VECTOR_UINT:
      case A3_VECTOR_DOUBLE:
      case A3_VECTOR_OBJECT:
        return this.vector(marker);
      case A3_DICTIONARY:
        return this.dictionary();
      default:
        throw new FormatError(`AMF3 unknown type marker 0x${marker.toString(16)} at offset ${r.pos - 1}`);
    }
  }

  private array(): unknown {
    const r = this.reader;
    const h = this.u29();
    if ((h & 1) === 0) return this.objectRef(h >>> 1);
    const denseCount = h >>> 1;
    if (denseCount > r.remaining) throw new FormatError(`AMF3 array of ${denseCount} values in ${r.remaining} bytes`);
    const slot = this.objects.length;
    this.objects.push(IN_PROGRESS);
    this.budget.enter();
    // Associative part first (name/value pairs up to an empty name), then the dense part.
    let assoc: Record<string, unknown> | null = null;
    for (;;) {
      const key = this.string();
      if (key === '') break;
      assoc ??= {};
      setProp(assoc, key, this.decodeOne());
    }
    const dense: unknown[] = [];
    for (let i = 0; i < denseCount; i++) dense.push(this.decodeOne());
    this.budget.leave();
    let result: unknown = dense;
    if (assoc) {
      // Mixed array: one plain object holding both the named and the indexed entries.
      for (let i = 0; i < dense.length; i++) assoc[String(i)] = dense[i];
      result = assoc;
    }
    this.objects[slot] = result;
    return result;
  }

  private object(): unknown {
    const r = this.reader;
    const h = this.u29();
    if ((h & 1) === 0) return this.objectRef(h >>> 1);
    let traits: Amf3Traits;
    if ((h & 2) === 0) {
      const idx = h >>> 2;
      if (idx >= this.traits.length) throw new FormatError(`AMF3 traits reference ${idx} out of range (${this.traits.length})`);
      traits = this.traits[idx]!;
    } else if ((h & 4) !== 0) {
      const className = this.string();
      throw new UnsupportedFormatError(`AMF3 externalizable object of class "${className}"`);
    } else {
      const dynamic = (h & 8) !== 0;
      const sealedCount = h >>> 4;
      const className = this.string();
      if (sealedCount > r.remaining) throw new FormatError(`AMF3 traits with ${sealedCount} members in ${r.remaining} bytes`);
      const sealed: string[] = [];
      for (let i = 0; i < sealedCount; i++) sealed.push(this.string());
      traits = { className, dynamic, sealed };
      this.traits.push(traits);
    }
    const obj: Record<string, unknown> = {};
    if (traits.className) (obj as Record<symbol, unknown>)[AMF_CLASS_NAME] = traits.className;
    const slot = this.objects.length;
    this.objects.push(IN_PROGRESS);
    this.budget.enter();
    for (const name of traits.sealed) setProp(obj, name, this.decodeOne());
    if (traits.dynamic) {
      for (;;) {
        const key = this.string();
        if (key === '') break;
        setProp(obj, key, this.decodeOne());
      }
    }
    this.budget.leave();
    this.objects[slot] = obj;
    return obj;
  }

  private vector(marker: number): unknown {
    const r = this.reader;
    const h = this.u29();
    if ((h & 1) === 0) return this.objectRef(h >>> 1);
    const count = h >>> 1;
    r.u8(); // fixed-length flag: irrelevant for decoding
    const elemSize = marker === A3_VECTOR_DOUBLE ? 8 : marker === A3_VECTOR_OBJECT ? 1 : 4;
    if (count * elemSize > r.remaining) throw new FormatError(`AMF3 vector of ${count} values in ${r.remaining} bytes`);
    const out: unknown[] = [];
    if (marker === A3_VECTOR_OBJECT) {
      this.string(); // element class name
      const slot = this.objects.length;
      this.objects.push(IN_PROGRESS);
      this.budget.enter();
      for (let i = 0; i < count; i++) out.push(this.decodeOne());
      this.budget.leave();
      this.objects[slot] = out;
      return out;
    }
    for (let i = 0; i < count; i++) {
      out.push(marker === A3_VECTOR_INT ? r.i32() : marker === A3_VECTOR_UINT ? r.u32() : r.f64());
    }
    this.objects.push(out);
    return out;
  }

  private dictionary(): unknown {
    const r = this.reader;
    const h = this.u29();
    if ((h & 1) === 0) return this.objectRef(h >>> 1);
    const count = h >>> 1;
    r.u8(); // weak-keys flag
    if (count * 2 > r.remaining) throw new FormatError(`AMF3 dictionary of ${count} entries in ${r.remaining} bytes`);
    const map = new Map<unknown, unknown>();
    const slot = this.objects.length;
    this.objects.push(IN_PROGRESS);
    this.budget.enter();
    for (let i = 0; i < count; i++) {
      const k = this.decodeOne();
      map.set(k, this.decodeOne());
    }
    this.budget.leave();
    this.objects[slot] = map;
    return map;
  }
}

/** Decode one AMF3 value at the reader's position, with fresh reference tables. */
export function amf3Decode(reader: ByteReader, opts?: AmfDecodeOptions): unknown {
  return new Amf3Decoder(reader, opts).decodeOne();
}

// ---------------------------------------------------------------------------------------------------
// AMF0 encoding

/**
 * Encode values as consecutive AMF0 values. Objects become AMF0 objects (wrap in AmfEcmaArray for an
 * ECMA array), arrays become strict arrays, strings over 65535 UTF-8 bytes become long strings.
 * Functions, symbols, bigints and cyclic structures throw a FormatError.
 */
export function amf0Encode(...values: unknown[]): Uint8Array {
  const w = new ByteWriter(256);
  const stack = new Set<object>();
  for (const v of values) encode0(w, v, stack);
  return w.finish();
}

/** Same as amf0Encode, into an existing writer. */
export function amf0EncodeInto(w: ByteWriter, ...values: unknown[]): void {
  const stack = new Set<object>();
  for (const v of values) encode0(w, v, stack);
}

function writeKey(w: ByteWriter, key: string): void {
  const at = w.pos;
  w.u16(0);
  const n = w.utf8(key);
  if (n > 0xffff) throw new FormatError(`AMF0: property name of ${n} bytes is too long`);
  w.view.setUint16(at, n);
}

function writeString(w: ByteWriter, s: string): void {
  if (s.length * 3 <= 0xffff) {
    // Certainly short: write in place and patch the length.
    w.u8(A0_STRING);
    const at = w.pos;
    w.u16(0);
    // utf8() may grow the buffer (a new view): take the length first, then patch through the new view.
    const n = w.utf8(s);
    w.view.setUint16(at, n);
    return;
  }
  const bytes = textEncoder.encode(s);
  if (bytes.length <= 0xffff) w.u8(A0_STRING).u16(bytes.length);
  else w.u8(A0_LONG_STRING).u32(bytes.length);
  w.bytes(bytes);
}

function writeProps(w: ByteWriter, obj: Record<string, unknown>, stack: Set<object>): void {
  for (const key of Object.keys(obj)) {
    const v = obj[key];
    if (typeof v === 'function' || typeof v === 'symbol') continue; // like JSON: not data
    writeKey(w, key);
    encode0(w, v, stack);
  }
  w.u16(0).u8(A0_OBJECT_END);
}

function encode0(w: ByteWriter, v: unknown, stack: Set<object>): void {
  switch (typeof v) {
    case 'number':
      w.u8(A0_NUMBER).f64(v);
      return;
    case 'boolean':
      w.u8(A0_BOOLEAN).u8(v ? 1 : 0);
      return;
    case 'string':
      writeString(w, v);
      return;
    case 'undefined':
      w.u8(A0_UNDEFINED);
      return;
    case 'object':
      break;
    default:
      throw new FormatError(`AMF0: cannot encode a ${typeof v}`);
  }
  if (v === null) {
    w.u8(A0_NULL);
    return;
  }
  if (v instanceof Date) {
    w.u8(A0_DATE).f64(v.getTime()).i16(0);
    return;
  }
  if (stack.has(v)) throw new FormatError('AMF0: cannot encode a cyclic structure');
  if (stack.size >= DEFAULT_MAX_DEPTH) throw new FormatError(`AMF0: nesting deeper than ${DEFAULT_MAX_DEPTH}`);
  stack.add(v);
  if (Array.isArray(v)) {
    w.u8(A0_STRICT_ARRAY).u32(v.length);
    for (let i = 0; i < v.length; i++) encode0(w, v[i], stack);
  } else if (v instanceof AmfEcmaArray) {
    const obj = v.value;
    w.u8(A0_ECMA_ARRAY).u32(Object.keys(obj).length);
    writeProps(w, obj, stack);
  } else if (ArrayBuffer.isView(v) || v instanceof Map || v instanceof Set) {
    throw new FormatError(`AMF0: cannot encode a ${v.constructor.name}`);
  } else {
    w.u8(A0_OBJECT);
    writeProps(w, v as Record<string, unknown>, stack);
  }
  stack.delete(v);
}
