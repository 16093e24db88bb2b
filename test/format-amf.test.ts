// AMF0/AMF3: known bytes, round trips, limits and a seeded fuzz loop.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  amf0Decode, amf0DecodeOne, amf0Encode, amf3Decode, AmfEcmaArray, AMF_CLASS_NAME, Amf0Decoder,
} from '../src/format/amf.ts';
import { ByteReader, FormatError, UnsupportedFormatError, fromHex, toHex } from '../src/format/bytes.ts';
import { prng, fuzz } from './helpers/fuzz.ts';

describe('AMF0', () => {
  it('decodes an RTMP connect command (known bytes)', () => {
    // "connect", 1, { app: "live", tcUrl: "rtmp://h/live", objectEncoding: 0 }
    const bytes = fromHex(
      '02 0007 636f6e6e656374' + '00 3ff0000000000000' +
        '03 0003 617070 02 0004 6c697665' +
        ' 0005 746355726c 02 000d 72746d703a2f2f682f6c697665' +
        ' 000e 6f626a656374456e636f64696e67 00 0000000000000000' +
        ' 000009',
    );
    const v = amf0Decode(bytes);
    assert.deepEqual(v, ['connect', 1, { app: 'live', tcUrl: 'rtmp://h/live', objectEncoding: 0 }]);
    // Encoding gives the same bytes back.
    assert.equal(toHex(amf0Encode(...v)), toHex(bytes));
  });

  it('decodes ffmpeg onMetaData (ECMA array)', () => {
    const bytes = fromHex(
      '02000a6f6e4d65746144617461' + '08 0000000a' +
        '0005776964746800 4050000000000000' + '0006686569676874 00 4050000000000000' +
        '000673746572656f 01 00' + '000009',
    );
    const v = amf0Decode(bytes);
    assert.deepEqual(v, ['onMetaData', { width: 64, height: 64, stereo: false }]);
  });

  it('round-trips all AMF0 types', () => {
    const date = new Date(1700000000123);
    const values = [
      0, -1.5, Number.MAX_VALUE, true, false, '', 'héllo 世界 🎥', null, undefined,
      { a: 1, b: { c: [1, 'x', null, { d: true }] }, e: undefined },
      [1, [2, [3]]], date, new AmfEcmaArray({ duration: 0, width: 1920, encoder: 'm7s' }),
    ];
    const decoded = amf0Decode(amf0Encode(...values));
    assert.equal(decoded.length, values.length);
    for (let i = 0; i < values.length; i++) {
      const want = values[i] instanceof AmfEcmaArray ? (values[i] as AmfEcmaArray).value : values[i];
      assert.deepEqual(decoded[i], want);
    }
    assert.ok(decoded[11] instanceof Date);
    // An ECMA array is encoded with marker 0x08.
    assert.equal(amf0Encode(new AmfEcmaArray({}))[0], 0x08);
    assert.equal(amf0Encode({})[0], 0x03);
  });

  it('strings that make the writer grow keep their length (regression)', () => {
    // Each string crosses the writer's capacity at a different point; all must round-trip.
    for (let len = 1; len < 1200; len += 37) {
      const values = ['onStatus', 0, null, { level: 'error', code: 'NetStream.Play.Failed', description: 'x'.repeat(len) }, 'y'.repeat(len)];
      assert.deepEqual(amf0Decode(amf0Encode(...values)), values.map((v) => (v && typeof v === 'object' ? { ...v } : v)), `length ${len}`);
    }
  });

  it('uses long strings above 65535 bytes', () => {
    const s = 'x'.repeat(70000);
    const enc = amf0Encode(s, 'é'.repeat(40000));
    assert.equal(enc[0], 0x0c);
    assert.deepEqual(amf0Decode(enc), [s, 'é'.repeat(40000)]);
    assert.deepEqual(amf0Decode(amf0Encode('y'.repeat(65535))), ['y'.repeat(65535)]);
    assert.equal(amf0Encode('y'.repeat(65535))[0], 0x02);
  });

  it('decodes typed objects, XML, unsupported and dates', () => {
    const bytes = fromHex('10 0003 466f6f 0001 61 00 4000000000000000 000009' + '0f 00000003 3c612f' + '0d' + '0b 0000000000000000 0000');
    const [typed, xml, unsup, date] = amf0Decode(bytes) as [Record<string | symbol, unknown>, string, undefined, Date];
    assert.equal(typed.a, 2);
    assert.equal(typed[AMF_CLASS_NAME], 'Foo');
    assert.equal(xml, '<a/');
    assert.equal(unsup, undefined);
    assert.equal(date.getTime(), 0);
  });

  it('resolves references and rejects cyclic or dangling ones', () => {
    // [ {a:1}, ref 1 ] : the strict array is ref 0, the object ref 1
    const ok = fromHex('0a 00000002 03 0001 61 00 3ff0000000000000 000009 07 0001');
    const [arr] = amf0Decode(ok) as [unknown[]];
    assert.equal(arr[0], arr[1]);
    // An object referencing itself (ref 0 while 0 is being decoded).
    assert.throws(() => amf0Decode(fromHex('03 0001 61 07 0000 000009')), /cyclic/);
    assert.throws(() => amf0Decode(fromHex('07 0005')), /out of range/);
  });

  it('keeps __proto__ keys as plain data', () => {
    const bytes = fromHex('03 0009 5f5f70726f746f5f5f 03 0005 706f6c6c64 01 01 000009 000009');
    const [obj] = amf0Decode(bytes) as [Record<string, unknown>];
    assert.equal(Object.getPrototypeOf(obj), Object.prototype);
    assert.ok(Object.prototype.hasOwnProperty.call(obj, '__proto__'));
    assert.equal(({} as Record<string, unknown>).polld, undefined);
    assert.deepEqual(Object.keys(obj), ['__proto__']);
  });

  it('accepts an ECMA array without its end marker, but not an object', () => {
    assert.deepEqual(amf0Decode(fromHex('08 00000001 0001 61 01 01')), [{ a: true }]);
    assert.throws(() => amf0Decode(fromHex('03 0001 61 01 01')), FormatError);
  });

  it('enforces depth and count limits', () => {
    const deep = new Uint8Array(200 * 4 + 10);
    let p = 0;
    for (let i = 0; i < 200; i++) {
      deep[p++] = 0x0a; // strict array of 1
      deep[p++] = 0; deep[p++] = 0; deep[p++] = 0; deep[p++] = 1;
    }
    deep[p++] = 0x05;
    assert.throws(() => amf0Decode(deep.subarray(0, p)), /nesting deeper than 64/);
    // A strict array claiming 4 billion entries in 5 bytes is refused before allocating.
    assert.throws(() => amf0Decode(fromHex('0a ffffffff 05')), /strict array/);
    assert.throws(() => amf0Decode(fromHex('05050505'), { maxValues: 3 }), /more than 3 values/);
  });

  it('refuses to encode cycles, functions and typed arrays', () => {
    const a: Record<string, unknown> = {};
    a.self = a;
    assert.throws(() => amf0Encode(a), /cyclic/);
    assert.throws(() => amf0Encode(() => 1), FormatError);
    assert.throws(() => amf0Encode(new Uint8Array(2)), FormatError);
    assert.throws(() => amf0Encode(10n), FormatError);
    // The same object twice (not a cycle) is fine.
    const shared = { x: 1 };
    assert.deepEqual(amf0Decode(amf0Encode([shared, shared])), [[{ x: 1 }, { x: 1 }]]);
  });

  it('decodes one value at a time with a reader', () => {
    const r = new ByteReader(amf0Encode('a', 2));
    assert.equal(amf0DecodeOne(r), 'a');
    assert.equal(amf0DecodeOne(r), 2);
    assert.equal(r.remaining, 0);
    const d = new Amf0Decoder(new ByteReader(amf0Encode(true)));
    assert.equal(d.decodeOne(), true);
  });

  it('reports clear errors', () => {
    assert.throws(() => amf0Decode(fromHex('02 0010 6162')), /unexpected end of data/);
    assert.throws(() => amf0Decode(fromHex('09')), /object-end marker/);
    assert.throws(() => amf0Decode(fromHex('04')), UnsupportedFormatError);
    assert.throws(() => amf0Decode(fromHex('20')), /unknown type marker 0x20/);
  });
});

describe('AMF3', () => {
  const dec = (hex: string) => amf3Decode(new ByteReader(fromHex(hex)));

  it('decodes scalars and U29 integers', () => {
    assert.equal(dec('00'), undefined);
    assert.equal(dec('01'), null);
    assert.equal(dec('02'), false);
    assert.equal(dec('03'), true);
    assert.equal(dec('04 7f'), 127);
    assert.equal(dec('04 8100'), 128);
    assert.equal(dec('04 ffffff ff'), -1);
    assert.equal(dec('04 bfffffff'), 0x0fffffff);
    assert.equal(dec('04 c0808000'), -0x10000000);
    assert.equal(dec('05 400921fb54442d18'), Math.PI);
    assert.equal(dec('06 0b 68656c6c6f'), 'hello');
  });

  it('decodes objects with traits and string references', () => {
    // [ {a:1,b:"x"} sealed class "P", {a:2,b:"x"} via traits ref, dynamic object {a:"x"} ]
    const hex =
      '09 07 01' + // array, 3 dense, no assoc
      '0a 23 03 50 03 61 03 62 04 01 06 03 78' + // traits inline: 2 sealed, class "P", names a, b
      '0a 01 04 02 06 06' + // traits ref 0; a=2; b = string ref 3 ("x")
      '0a 0b 01 02 06 06 01'; // dynamic anonymous: key = string ref 1 ("a"), value = string ref 3 ("x"), end
    const v = dec(hex) as Record<string | symbol, unknown>[];
    assert.equal(v.length, 3);
    assert.equal(v[0]!.a, 1);
    assert.equal(v[0]!.b, 'x');
    assert.equal(v[0]![AMF_CLASS_NAME], 'P');
    assert.equal(v[1]!.a, 2);
    assert.equal(v[1]!.b, 'x');
    assert.deepEqual({ ...v[2] }, { a: 'x' });
  });

  it('decodes mixed arrays, byte arrays, dates, vectors and dictionaries', () => {
    assert.deepEqual(dec('09 05 03 6b 04 07 01 04 01 04 02'), { k: 7, 0: 1, 1: 2 });
    assert.deepEqual([...(dec('0c 07 010203') as Uint8Array)], [1, 2, 3]);
    assert.equal((dec('08 01 0000000000000000') as Date).getTime(), 0);
    assert.deepEqual(dec('0d 05 00 ffffffff 00000002'), [-1, 2]);
    assert.deepEqual(dec('0e 03 00 ffffffff'), [0xffffffff]);
    assert.deepEqual(dec('0f 03 00 3ff0000000000000'), [1]);
    assert.deepEqual(dec('10 05 00 01 04 01 06 03 61'), [1, 'a']);
    const m = dec('11 03 00 06 03 6b 04 05') as Map<unknown, unknown>;
    assert.equal(m.get('k'), 5);
    // Object reference to the first (complete) byte array.
    assert.deepEqual(dec('09 05 01 0c 03 09 0c 02'), [Uint8Array.of(9), Uint8Array.of(9)]);
  });

  it('is reached through the AMF0 avmplus switch', () => {
    assert.deepEqual(amf0Decode(fromHex('02 0001 61 11 06 05 6869 11 04 05')), ['a', 'hi', 5]);
  });

  it('rejects externalizable objects, cycles and dangling references', () => {
    assert.throws(() => dec('0a 07 03 58'), UnsupportedFormatError);
    assert.throws(() => dec('09 03 01 09 00'), /cyclic/);
    assert.throws(() => dec('06 04'), /string reference/);
    assert.throws(() => dec('0a 05'), /traits reference/);
    assert.throws(() => dec('0d 7f 00'), /vector/);
    assert.throws(() => dec('12'), /unknown type marker/);
  });
});

describe('AMF fuzz', () => {
  const seeds = [
    amf0Encode('connect', 1, { app: 'live', flashVer: 'FMLE/3.0', tcUrl: 'rtmp://x/live', fpad: false, capabilities: 239, audioCodecs: 3575 }),
    amf0Encode('onMetaData', new AmfEcmaArray({ width: 1280, height: 720, framerate: 30, list: [1, 2, { a: null }] }), new Date(5)),
    fromHex('0a 00000002 03 0001 61 00 3ff0000000000000 000009 07 0001'),
    fromHex('11 09 07 01 0a 23 03 50 03 61 03 62 04 01 06 03 78 0a 01 04 02 06 06 0a 0b 01 02 06 06 01'),
    fromHex('11 09 05 03 6b 04 07 01 04 01 04 02 11 0d 05 00 ffffffff 00000002 11 11 03 00 06 03 6b 04 05 11 0c 07 010203'),
  ];

  it('throws only FormatError on hostile AMF0/AMF3', () => {
    fuzz('amf0Decode', seeds, (b) => amf0Decode(b), 4000, 7);
    fuzz('amf3Decode', seeds.map((s) => s.subarray(1)), (b) => amf3Decode(new ByteReader(b)), 4000, 8);
  });
});
