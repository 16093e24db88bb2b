// RFC 6455 frames (src/format/websocket.ts): the server-side incremental parser against real client
// frames (the `ws` package's Sender, masked) and hand-built ones, every rejection with its close code,
// any split of the input giving the same events, the builders checked byte for byte and read by `ws`'s
// client Receiver, the handshake checks, and a seeded fuzz target (only FormatError may escape, the heap
// stays flat, and a split input gives the same outcome as the whole one).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  WsFrameParser, WsProtocolError, wsFrame, wsCloseFrame, isValidWsKey, checkUpgradeRequest, type WsEvent, type WsParserLimits,
} from '../src/format/websocket.ts';
import { FormatError, bytesEqual, concat, fromHex, textDecoder, textEncoder } from '../src/format/bytes.ts';
import { framingHead } from '../src/net/framing.ts';
import { fuzz, fuzzTarget } from './helpers/fuzz.ts';
import { Buffer } from 'node:buffer';

const enc = (s: string) => textEncoder.encode(s);
const KEY = [0x37, 0xfa, 0x21, 0x3d]; // the masking key of RFC 6455 §5.7's examples

/** A client frame built by hand: masked with `key` unless `masked: false`, minimal length encoding. */
function frame(opcode: number, payload: Uint8Array | string, o: { fin?: boolean; rsv?: number; masked?: boolean; key?: number[] } = {}): Uint8Array {
  const body = typeof payload === 'string' ? enc(payload) : payload;
  const masked = o.masked ?? true;
  const key = o.key ?? KEY;
  const n = body.length;
  const ext = n < 126 ? 0 : n < 0x10000 ? 2 : 8;
  const out = new Uint8Array(2 + ext + (masked ? 4 : 0) + n);
  out[0] = ((o.fin ?? true) ? 0x80 : 0) | ((o.rsv ?? 0) << 4) | opcode;
  out[1] = (masked ? 0x80 : 0) | (ext === 0 ? n : ext === 2 ? 126 : 127);
  if (ext === 2) { out[2] = n >>> 8; out[3] = n & 0xff; }
  if (ext === 8) { out[6] = n >>> 24; out[7] = n >>> 16; out[8] = n >>> 8; out[9] = n; }
  let p = 2 + ext;
  if (masked) { out.set(key, p); p += 4; }
  for (let i = 0; i < n; i++) out[p + i] = masked ? body[i]! ^ key[i & 3]! : body[i]!;
  return out;
}

/** A header alone (for the checks made before any payload arrives): 64-bit length `hi`:`lo`. */
function header64(opcode: number, hi: number, lo: number, fin = true): Uint8Array {
  const h = new Uint8Array(14);
  h[0] = (fin ? 0x80 : 0) | opcode;
  h[1] = 0x80 | 127;
  new DataView(h.buffer).setUint32(2, hi);
  new DataView(h.buffer).setUint32(6, lo);
  h.set(KEY, 10);
  return h;
}

// The `ws` package (CommonJS, untyped Sender/Receiver): real client frames and a real client-side reader.
// Bun swaps in its own `ws` module (over its WebSocket, without Sender.frame or a working Receiver), so on
// Bun the package's own files are loaded by path.
const wsLib: any = await import('ws');
const wsFile = async (f: string): Promise<any> => {
  const m: any = await import(new URL(`../node_modules/ws/lib/${f}`, import.meta.url).href);
  return m.default ?? m;
};
const Sender: any = typeof wsLib.Sender?.frame === 'function' ? wsLib.Sender : await wsFile('sender.js');
const Receiver: any = typeof wsLib.Sender?.frame === 'function' ? wsLib.Receiver : await wsFile('receiver.js');

/** A masked client frame from ws's Sender.frame (it masks its input in place, so it gets a copy), with a fixed key so fuzz seeds reproduce. */
const WS_KEY = [0x9c, 0x01, 0xe5, 0x72];
function wsClientFrame(opcode: number, payload: Uint8Array | string, fin = true): Uint8Array {
  const data = typeof payload === 'string' ? payload : Uint8Array.from(payload);
  const list: Uint8Array[] = Sender.frame(typeof data === 'string' ? data : Buffer.from(data.buffer), { fin, opcode, mask: true, readOnly: false, rsv1: false, generateMask: (m: Uint8Array) => m.set(WS_KEY) });
  return concat(list.map((b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength).slice()));
}

type Outcome = { events: WsEvent[]; error?: number };

/** Push `chunks` in order; the events until an error, and its close code. */
function feed(chunks: Uint8Array[], limits?: WsParserLimits, p = new WsFrameParser(limits)): Outcome {
  const events: WsEvent[] = [];
  for (const c of chunks) {
    try {
      events.push(...p.push(c));
    } catch (e) {
      assert.ok(e instanceof WsProtocolError, `not a WsProtocolError: ${e}`);
      assert.ok(e instanceof FormatError);
      return { events, error: e.closeCode };
    }
  }
  return { events };
}

function bytewise(b: Uint8Array): Uint8Array[] {
  return Array.from({ length: b.length }, (_, i) => b.subarray(i, i + 1));
}

/** The close code the whole input is rejected with, checking the parser stays failed afterwards. */
function rejects(b: Uint8Array | Uint8Array[], limits?: WsParserLimits): number {
  const p = new WsFrameParser(limits);
  const chunks = Array.isArray(b) ? b : [b];
  const r = feed(chunks, limits, p);
  assert.ok(r.error !== undefined, `accepted: ${JSON.stringify(r.events)}`);
  // Every later push throws the same, even of valid bytes or nothing.
  for (const later of [new Uint8Array(0), frame(2, 'ok')]) {
    assert.throws(() => p.push(later), (e: unknown) => e instanceof WsProtocolError && e.closeCode === r.error);
  }
  return r.error;
}

const sized = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff);
/** A string of exactly n UTF-8 bytes, mostly 2-byte characters. */
const sizedText = (n: number) => 'é'.repeat(n >> 1) + (n & 1 ? 'a' : '');

test('RFC 6455 §5.7 examples: a masked "Hello" is read; the unmasked ones are what the builders write', () => {
  assert.deepEqual(new WsFrameParser().push(fromHex('818537fa213d7f9f4d5158')), [{ type: 'message', binary: false, data: 'Hello' }]);
  assert.deepEqual(wsFrame(1, 'Hello'), fromHex('810548656c6c6f'));
  assert.deepEqual(wsFrame(9, 'Hello'), fromHex('890548656c6c6f'));
  assert.deepEqual(wsFrame(10, enc('Hello')), fromHex('8a0548656c6c6f'));
  assert.deepEqual(wsFrame(2, new Uint8Array(256)).subarray(0, 4), fromHex('827e0100'));
  assert.deepEqual(wsFrame(2, new Uint8Array(65536)).subarray(0, 10), fromHex('827f0000000000010000'));
  // The RFC's fragmented "Hel" + "lo", unmasked (a parser for server frames).
  assert.deepEqual(new WsFrameParser({ requireMask: false }).push(fromHex('010348656c 80026c6f')), [{ type: 'message', binary: false, data: 'Hello' }]);
});

test('ws client frames of every length encoding (0, 125, 126, 65535, 65536 bytes), binary and text, whole and split', () => {
  for (const n of [0, 1, 125, 126, 127, 65535, 65536, 70000]) {
    const bin = sized(n);
    const txt = sizedText(n);
    const fb = wsClientFrame(2, bin);
    const ft = wsClientFrame(1, txt);
    const headLen = 2 + (n < 126 ? 0 : n < 65536 ? 2 : 8) + 4;
    assert.equal(fb.length, headLen + n, `ws frame of ${n} bytes`);
    assert.equal(ft.length, headLen + n);
    const want: WsEvent[] = [{ type: 'message', binary: true, data: bin }, { type: 'message', binary: false, data: txt }];
    const both = concat([fb, ft]);
    assert.deepEqual(feed([both]), { events: want }, `${n} bytes whole`);
    // Split at a few points, including inside the header and at the header/payload boundary.
    for (const cut of [1, 2, 3, headLen - 1, headLen, headLen + 1, fb.length - 1, fb.length, fb.length + 1, both.length - 1]) {
      if (cut <= 0 || cut >= both.length) continue;
      assert.deepEqual(feed([both.subarray(0, cut), both.subarray(cut)]), { events: want }, `${n} bytes cut at ${cut}`);
    }
    // The same through hand-built frames with another key.
    assert.deepEqual(feed([frame(2, bin, { key: [1, 2, 3, 4] })]), { events: want.slice(0, 1) });
  }
});

test('a fragmented text message whose characters straddle fragments, with control frames between fragments', () => {
  const text = 'h€llo 😀 wörld €';
  const b = enc(text);
  // Cuts inside the 3-byte € (bytes 1..3) and the 4-byte 😀 (bytes 10..13).
  const cuts = [0, 2, 11, 12, b.length];
  const frags: Uint8Array[] = [];
  for (let i = 0; i + 1 < cuts.length; i++) {
    frags.push(frame(i === 0 ? 1 : 0, b.subarray(cuts[i], cuts[i + 1]), { fin: i === cuts.length - 2 }));
    if (i === 1) frags.push(frame(9, 'ping!'));
    if (i === 2) frags.push(frame(10, new Uint8Array(0)), frame(9, sized(125)));
  }
  frags.splice(3, 0, frame(0, new Uint8Array(0), { fin: false })); // an empty fragment too
  const want: WsEvent[] = [
    { type: 'ping', data: enc('ping!') }, { type: 'pong', data: new Uint8Array(0) }, { type: 'ping', data: sized(125) },
    { type: 'message', binary: false, data: text },
  ];
  const all = concat(frags);
  assert.deepEqual(feed([all]), { events: want });
  assert.deepEqual(feed(frags), { events: want });
  assert.deepEqual(feed(bytewise(all)), { events: want });
  // ws's own fragments (Sender.frame with fin false), binary, interleaved with a ping.
  const parts = [sized(300), sized(0), sized(70000), sized(5)];
  const wsFrags = concat([
    wsClientFrame(2, parts[0]!, false), wsClientFrame(9, 'x'), wsClientFrame(0, parts[1]!, false),
    wsClientFrame(0, parts[2]!, false), wsClientFrame(0, parts[3]!, true),
  ]);
  assert.deepEqual(feed([wsFrags]), { events: [{ type: 'ping', data: enc('x') }, { type: 'message', binary: true, data: concat(parts) }] });
  // A text message split in the middle of a character, fragment by fragment, decodes once whole.
  const euro = enc('€');
  assert.deepEqual(feed([frame(1, euro.subarray(0, 1), { fin: false }), frame(0, euro.subarray(1, 2), { fin: false }), frame(0, euro.subarray(2), { fin: true })]),
    { events: [{ type: 'message', binary: false, data: '€' }] });
});

test('feeding one byte at a time, or cut anywhere, gives the same events as the whole stream', () => {
  const stream = concat([
    frame(1, ''), frame(2, sized(3)), frame(9, ''), frame(1, 'ab', { fin: false }), frame(10, 'p'), frame(0, 'cd€'),
    wsClientFrame(2, sized(200)), wsClientFrame(1, sizedText(130)), frame(2, sized(10), { key: [0, 0, 0, 0] }),
    frame(8, concat([Uint8Array.of(0x0f, 0xa0), enc('bye ✓')])),
  ]);
  const whole = feed([stream]);
  assert.equal(whole.error, undefined);
  assert.equal(whole.events.length, 9);
  assert.deepEqual(whole.events.at(-1), { type: 'close', code: 4000, reason: 'bye ✓' });
  assert.deepEqual(feed(bytewise(stream)), whole);
  for (let cut = 1; cut < stream.length; cut++) {
    assert.deepEqual(feed([stream.subarray(0, cut), stream.subarray(cut)]), whole, `cut at ${cut}`);
  }
  // buffered counts what is held: a partial header, then a partial payload, then an open message.
  const p = new WsFrameParser();
  const f = frame(2, sized(10), { fin: false });
  assert.deepEqual(p.push(f.subarray(0, 3)), []);
  assert.equal(p.buffered, 3);
  assert.deepEqual(p.push(f.subarray(3, 10)), []);
  assert.equal(p.buffered, 10); // the 6-byte header and 4 payload bytes
  assert.deepEqual(p.push(f.subarray(10)), []);
  assert.equal(p.buffered, 10);
  assert.deepEqual(p.push(frame(0, sized(2))), [{ type: 'message', binary: true, data: concat([sized(10), sized(2)]) }]);
  assert.equal(p.buffered, 0);
});

test('the caller\'s chunk is neither modified nor aliased by the events', () => {
  const f = concat([frame(2, sized(50)), frame(1, 'text'), frame(9, 'pi')]);
  const copy = f.slice();
  const events = new WsFrameParser().push(f);
  assert.deepEqual(f, copy);
  f.fill(0);
  assert.deepEqual(events, [{ type: 'message', binary: true, data: sized(50) }, { type: 'message', binary: false, data: 'text' }, { type: 'ping', data: enc('pi') }]);
  // Spread over chunks too.
  const g = frame(2, sized(50));
  const p = new WsFrameParser();
  const a = g.slice(0, 20), b = g.slice(20);
  p.push(a);
  const [m] = p.push(b);
  a.fill(0); b.fill(0);
  assert.deepEqual(m, { type: 'message', binary: true, data: sized(50) });
  // A Node Buffer (what some runtimes' sockets hand over): left as it was, and the events hold plain Uint8Arrays.
  const buf = Buffer.from(concat([frame(2, sized(50)), frame(9, 'x'), frame(2, sized(5), { fin: false })]));
  const before = Uint8Array.from(buf);
  const ev = new WsFrameParser().push(buf);
  assert.deepEqual(Uint8Array.from(buf), before);
  assert.deepEqual(ev, [{ type: 'message', binary: true, data: sized(50) }, { type: 'ping', data: enc('x') }]);
  for (const e of ev) assert.equal(Object.getPrototypeOf((e as { data: Uint8Array }).data), Uint8Array.prototype);
});

test('text keeps a leading BOM; binary data that is not UTF-8 is fine', () => {
  assert.deepEqual(feed([frame(1, Uint8Array.of(0xef, 0xbb, 0xbf, 0x61))]).events, [{ type: 'message', binary: false, data: '\ufeffa' }]);
  assert.deepEqual(feed([frame(2, Uint8Array.of(0xff, 0xfe))]).events, [{ type: 'message', binary: true, data: Uint8Array.of(0xff, 0xfe) }]);
});

test('close frames: without a code (1005), with a code, with a reason; bytes after a close are ignored', () => {
  assert.deepEqual(feed([frame(8, '')]).events, [{ type: 'close', code: 1005, reason: '' }]);
  assert.deepEqual(feed([frame(8, Uint8Array.of(0x03, 0xe8))]).events, [{ type: 'close', code: 1000, reason: '' }]);
  assert.deepEqual(feed([wsClientFrame(8, concat([Uint8Array.of(0x03, 0xe9), enc('going away ✓')]))]).events, [{ type: 'close', code: 1001, reason: 'going away ✓' }]);
  for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]) {
    assert.deepEqual(feed([frame(8, Uint8Array.of(code >> 8, code & 0xff))]).events, [{ type: 'close', code, reason: '' }], `code ${code}`);
  }
  // Garbage after the close, in the same chunk and later: no events, no error.
  const p = new WsFrameParser();
  assert.deepEqual(p.push(concat([frame(8, ''), Uint8Array.of(0xff, 0xff, 0xff)])), [{ type: 'close', code: 1005, reason: '' }]);
  assert.deepEqual(p.push(Uint8Array.of(0x70, 0x00)), []);
  assert.deepEqual(p.push(frame(1, 'after')), []);
  assert.equal(p.buffered, 0);
  // A close in the middle of a fragmented message is still read (control frames may interleave).
  assert.deepEqual(feed([frame(1, 'a', { fin: false }), frame(8, Uint8Array.of(0x03, 0xe8)), frame(0, 'b')]).events, [{ type: 'close', code: 1000, reason: '' }]);
});

test('every rejection, with its close code', () => {
  // RSV bits (no extension negotiated).
  for (const rsv of [1, 2, 4, 7]) assert.equal(rejects(frame(1, 'x', { rsv })), 1002, `rsv ${rsv}`);
  // Reserved opcodes.
  for (const op of [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]) assert.equal(rejects(frame(op, '')), 1002, `opcode ${op}`);
  // Unmasked client frame (accepted when masks are not required).
  assert.equal(rejects(frame(2, 'x', { masked: false })), 1002);
  assert.equal(rejects(frame(9, '', { masked: false })), 1002);
  assert.deepEqual(feed([frame(2, 'x', { masked: false })], { requireMask: false }).events, [{ type: 'message', binary: true, data: enc('x') }]);
  // Control frames: payload over 125 (rejected from the header alone), not FIN.
  assert.equal(rejects(frame(9, sized(126)).subarray(0, 2)), 1002);
  assert.equal(rejects(frame(10, sized(126))), 1002);
  assert.equal(rejects(frame(8, sized(200))), 1002);
  assert.equal(rejects(frame(9, 'x', { fin: false })), 1002);
  assert.equal(rejects(frame(8, '', { fin: false })), 1002);
  // Continuation without a message; a new data frame while one is open.
  assert.equal(rejects(frame(0, 'x')), 1002);
  assert.equal(rejects(frame(0, 'x', { fin: false })), 1002);
  assert.equal(rejects(concat([frame(1, 'a'), frame(0, 'b')])), 1002);
  assert.equal(rejects(concat([frame(1, 'a', { fin: false }), frame(1, 'b')])), 1002);
  assert.equal(rejects(concat([frame(2, 'a', { fin: false }), frame(9, ''), frame(2, 'b')])), 1002);
  // 64-bit length with the top bit set (header only).
  assert.equal(rejects(header64(2, 0x80000000, 0)), 1002);
  assert.equal(rejects(header64(2, 0xffffffff, 0xffffffff)), 1002);
  // Too big: judged from the header, before any payload is buffered.
  assert.equal(rejects(header64(2, 0, 1048577)), 1009);
  assert.equal(rejects(header64(2, 0x7fffffff, 0xffffffff)), 1009);
  // With no limit, a length no buffer can hold fails (1009) when its payload starts to arrive.
  assert.equal(rejects(concat([header64(2, 0x7fffffff, 0xffffffff), Uint8Array.of(1)]), { maxMessageBytes: Infinity }), 1009);
  assert.equal(rejects(frame(2, sized(101)).subarray(0, 6), { maxMessageBytes: 100 }), 1009);
  assert.equal(rejects(frame(1, sizedText(101)).subarray(0, 6), { maxMessageBytes: 100 }), 1009);
  assert.deepEqual(feed([frame(2, sized(100))], { maxMessageBytes: 100 }).events.length, 1);
  // The limit is on the whole message: fragments under it that add up over it.
  assert.equal(rejects([frame(2, sized(60), { fin: false }), frame(0, sized(41), { fin: false }).subarray(0, 6)], { maxMessageBytes: 100 }), 1009);
  assert.equal(feed([frame(2, sized(60), { fin: false }), frame(9, sized(125)), frame(0, sized(40))], { maxMessageBytes: 100 }).events.length, 2);
  // Close frames: 1-byte payload, invalid codes, reason not UTF-8.
  assert.equal(rejects(frame(8, Uint8Array.of(3))), 1002);
  for (const code of [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]) {
    assert.equal(rejects(frame(8, Uint8Array.of(code >> 8, code & 0xff))), 1002, `close code ${code}`);
  }
  assert.equal(rejects(frame(8, Uint8Array.of(0x03, 0xe8, 0x61, 0xff))), 1007);
  assert.equal(rejects(frame(8, Uint8Array.of(0x03, 0xe8, 0xe2, 0x82))), 1007); // truncated character
  // Text not UTF-8: a bad byte, an overlong form, a surrogate, a character cut at the message's end.
  for (const bad of ['ff', 'c0af', 'eda080', 'f4908080', 'e282', '61f0']) {
    assert.equal(rejects(frame(1, fromHex(bad))), 1007, bad);
    assert.equal(rejects([frame(1, 'ok', { fin: false }), frame(0, fromHex(bad))]), 1007, `${bad} in a fragment`);
  }
  // A throw is a WsProtocolError, which is a FormatError.
  assert.throws(() => new WsFrameParser().push(frame(3, '')), (e: unknown) => e instanceof FormatError && e instanceof WsProtocolError && e.name === 'WsProtocolError');
});

test('builders: wsFrame and wsCloseFrame bytes, read back by the parser (unmasked)', () => {
  const server = (b: Uint8Array) => feed([b], { requireMask: false, maxMessageBytes: 1 << 20 });
  for (const n of [0, 125, 126, 65535, 65536]) {
    const bin = sized(n);
    const f = wsFrame(2, bin);
    // Binary frames are framingHead('ws') + payload.
    const head = framingHead('ws', n);
    assert.deepEqual(f.subarray(0, head.length), head);
    assert.deepEqual(f.subarray(head.length), bin);
    assert.equal(head.length, n < 126 ? 2 : n < 65536 ? 4 : 10);
    const t = wsFrame(1, sizedText(n));
    assert.equal(t[0], 0x81);
    assert.deepEqual(t.subarray(1, head.length), head.subarray(1));
    assert.deepEqual(server(concat([f, t])).events, [{ type: 'message', binary: true, data: bin }, { type: 'message', binary: false, data: sizedText(n) }]);
  }
  assert.deepEqual(server(concat([wsFrame(9, sized(125)), wsFrame(10, 'pong'), wsFrame(8, '')])).events,
    [{ type: 'ping', data: sized(125) }, { type: 'pong', data: enc('pong') }, { type: 'close', code: 1005, reason: '' }]);
  for (const op of [8, 9, 10] as const) {
    assert.throws(() => wsFrame(op, sized(126)), FormatError);
    assert.throws(() => wsFrame(op, 'é'.repeat(63)), FormatError); // 126 bytes of UTF-8 from 63 characters
  }
  assert.throws(() => wsFrame(3 as 1, ''), FormatError);

  assert.deepEqual(wsCloseFrame(), fromHex('880203e8'));
  assert.deepEqual(wsCloseFrame(1005), fromHex('8800'));
  assert.deepEqual(wsCloseFrame(1005, 'ignored'), fromHex('8800'));
  assert.deepEqual(wsCloseFrame(1001, 'bye'), fromHex('880503e9627965'));
  assert.deepEqual(server(wsCloseFrame(4000, 'ok ✓')).events, [{ type: 'close', code: 4000, reason: 'ok ✓' }]);
  // Long reasons are cut to 123 bytes without splitting a character.
  for (const [reason, want] of [
    ['x'.repeat(200), 'x'.repeat(123)],
    ['a' + '€'.repeat(50), 'a' + '€'.repeat(40)], // 1 + 40 * 3 = 121 (one more would be 124)
    ['ab' + '😀'.repeat(40), 'ab' + '😀'.repeat(30)], // 122
    ['é'.repeat(62), 'é'.repeat(61)], // 122
    ['x'.repeat(123), 'x'.repeat(123)],
  ] as const) {
    const f = wsCloseFrame(1000, reason);
    assert.ok(f.length <= 127);
    assert.deepEqual(server(f).events, [{ type: 'close', code: 1000, reason: want }]);
  }
  for (const code of [0, 999, 1004, 1006, 1015, 2999, 5000]) assert.throws(() => wsCloseFrame(code), FormatError, `code ${code}`);
});

test('ws\'s client Receiver accepts what the builders write', async () => {
  const rx = new Receiver({ isServer: false, maxPayload: 0 });
  const got: unknown[] = [];
  rx.on('message', (data: Uint8Array, isBinary: boolean) => got.push(['message', isBinary, isBinary ? new Uint8Array(data) : textDecoder.decode(data)]));
  rx.on('ping', (data: Uint8Array) => got.push(['ping', textDecoder.decode(data)]));
  rx.on('pong', (data: Uint8Array) => got.push(['pong', textDecoder.decode(data)]));
  rx.on('conclude', (code: number, reason: Uint8Array) => got.push(['close', code, textDecoder.decode(reason)]));
  const frames = [
    wsFrame(1, 'héllo'), wsFrame(2, sized(0)), wsFrame(2, sized(125)), wsFrame(2, sized(126)), wsFrame(2, sized(65535)), wsFrame(2, sized(65536)),
    wsFrame(1, sizedText(70000)), wsFrame(9, 'are you there'), wsFrame(10, ''), wsCloseFrame(1001, '€'.repeat(60)),
  ];
  const err = await new Promise<unknown>((resolve) => {
    rx.on('error', resolve);
    rx.write(Buffer.from(concat(frames)), (e: unknown) => resolve(e ?? null));
  });
  assert.equal(err, null);
  assert.deepEqual(got, [
    ['message', false, 'héllo'], ['message', true, sized(0)], ['message', true, sized(125)], ['message', true, sized(126)],
    ['message', true, sized(65535)], ['message', true, sized(65536)], ['message', false, sizedText(70000)],
    ['ping', 'are you there'], ['pong', ''], ['close', 1001, '€'.repeat(41)],
  ]);
  // And it rejects what it should (the check can fail): a masked frame sent to a client.
  const rx2 = new Receiver({ isServer: false });
  const err2 = await new Promise<unknown>((resolve) => {
    rx2.on('error', resolve);
    rx2.write(Buffer.from(frame(1, 'x')), (e: unknown) => resolve(e ?? null));
  });
  assert.ok(err2 instanceof Error);
});

test('isValidWsKey', () => {
  assert.ok(isValidWsKey('dGhlIHNhbXBsZSBub25jZQ==')); // RFC 6455 §1.3
  assert.ok(isValidWsKey('AAAAAAAAAAAAAAAAAAAAAA=='));
  assert.ok(isValidWsKey('+/+/+/+/+/+/+/+/+/+/+w=='));
  for (const bad of ['', 'dGhlIHNhbXBsZSBub25jZQ=', 'dGhlIHNhbXBsZSBub25jZQ', 'dGhlIHNhbXBsZSBub25jZQ===', 'dGhlIHNhbXBsZSBub25jZ===',
    'dGhlIHNhbXBsZSBub25jZXg=', 'dGhlIHNhbXBsZSBub25jZXh5', 'dGhlIHNhbXBsZSBub25jZQ==AA', ' dGhlIHNhbXBsZSBub25jZQ==',
    'dGhlIHNhbXBsZSBub25jZ-==', 'dGhlIHNhbXBsZSBub25jZ_==', 'dGhlIHNhbXBsZSBub25j€Q==', 'dGhlIHNhbXBsZSBub25jZQ==\n']) {
    assert.equal(isValidWsKey(bad), false, JSON.stringify(bad));
  }
});

test('checkUpgradeRequest (RFC 6455 §4.2.1)', () => {
  const good: [string, string][] = [
    ['host', 'server.example.com'], ['upgrade', 'websocket'], ['connection', 'Upgrade'],
    ['sec-websocket-key', 'dGhlIHNhbXBsZSBub25jZQ=='], ['origin', 'http://example.com'], ['sec-websocket-version', '13'],
  ];
  assert.equal(checkUpgradeRequest('GET', good), null);
  const withH = (name: string, value: string | null) => {
    const h = good.filter(([n]) => n !== name);
    if (value !== null) h.push([name, value]);
    return h;
  };
  for (const [name, value] of [
    ['upgrade', 'WebSocket'], ['upgrade', 'h2c, websocket'], ['connection', 'keep-alive, Upgrade'], ['connection', 'UPGRADE'],
    ['connection', 'keep-alive,upgrade'], ['sec-websocket-version', ' 13 '],
  ] as const) {
    assert.equal(checkUpgradeRequest('GET', withH(name, value)), null, `${name}: ${value}`);
  }
  // Tokens may also come in repeated headers.
  assert.equal(checkUpgradeRequest('GET', [...withH('connection', 'keep-alive'), ['connection', 'upgrade']]), null);
  const bad: [string, string, [string, string][]][] = [
    ['POST', 'method', good], ['get', 'method', good], ['HEAD', 'method', good],
    ['GET', 'no upgrade', withH('upgrade', null)], ['GET', 'upgrade h2c', withH('upgrade', 'h2c')], ['GET', 'upgrade websocketx', withH('upgrade', 'websocketx')],
    ['GET', 'no connection', withH('connection', null)], ['GET', 'connection keep-alive', withH('connection', 'keep-alive')],
    ['GET', 'connection upgraded', withH('connection', 'upgraded')],
    ['GET', 'no version', withH('sec-websocket-version', null)], ['GET', 'version 8', withH('sec-websocket-version', '8')],
    ['GET', 'version 13, 8', withH('sec-websocket-version', '13, 8')], ['GET', 'two versions', [...good, ['sec-websocket-version', '13']]],
    ['GET', 'no key', withH('sec-websocket-key', null)], ['GET', 'short key', withH('sec-websocket-key', 'dGhlIHNhbXBsZQ==')],
    ['GET', 'two keys', [...good, ['sec-websocket-key', 'AAAAAAAAAAAAAAAAAAAAAA==']]],
  ];
  for (const [method, what, headers] of bad) {
    const r = checkUpgradeRequest(method, headers);
    assert.equal(typeof r, 'string', what);
    assert.ok(r!.length > 0 && r!.length < 80, what);
  }
});

// ---- fuzz ----

const CASES = Number(process.env.M7S_FUZZ_CASES ?? 20000);


test('fuzz: WsFrameParser.push (whole, split in two, byte by byte: the same outcome; only FormatError escapes)', () => {
  const seeds = [
    frame(1, 'hello'), frame(2, sized(130)), frame(9, 'p'), frame(10, ''), frame(8, concat([Uint8Array.of(0x03, 0xe8), enc('bye')])), frame(8, ''),
    concat([frame(1, enc('h€').subarray(0, 2), { fin: false }), frame(9, 'x'), frame(0, enc('h€').subarray(2))]),
    concat([wsClientFrame(2, sized(40), false), wsClientFrame(10, 'y'), wsClientFrame(0, sized(3)), wsClientFrame(1, 'é'), wsClientFrame(8, Uint8Array.of(0x0f, 0xa0))]),
    header64(2, 0, 20), frame(2, sized(300)), frame(2, sized(40), { masked: false }),
  ];
  let events = 0, errors = 0;
  fuzzTarget('websocket-parser', seeds, (b) => {
    // A small limit so that size checks are reached; masks required or not, from the input.
    const limits: WsParserLimits = { maxMessageBytes: 256, requireMask: !(b.length & 1) };
    const whole = feed([b], limits);
    const cut = b.length ? b[b.length - 1]! % (b.length + 1) : 0;
    const split = feed([b.subarray(0, cut), b.subarray(cut)], limits);
    const bytes = b.length <= 64 ? feed(bytewise(b), limits) : split;
    if (whole.error !== undefined) {
      errors++;
      // Events before the error are lost when it comes in the same push: compare the close codes only.
      assert.equal(split.error, whole.error, 'split: other error');
      assert.equal(bytes.error, whole.error, 'byte by byte: other error');
    } else {
      events += whole.events.length;
      assert.deepEqual(split, whole, 'split: other events');
      assert.deepEqual(bytes, whole, 'byte by byte: other events');
    }
    // And the raw parser: only FormatError may escape (fuzz() checks).
    new WsFrameParser().push(b);
  });
  console.log(`fuzz websocket-parser: ${events} events, ${errors} rejected inputs`);
  assert.ok(events > CASES / 10 && errors > CASES / 10, `events ${events}, errors ${errors}`);
});

test('fuzz: the parser stays bounded under a long hostile stream (many tiny fragments, headers announcing big payloads)', () => {
  // One parser, fed mutated frames in a row: its state carries across cases; it is replaced after an error or close.
  let p = new WsFrameParser({ maxMessageBytes: 4096 });
  let maxBuffered = 0;
  const tiny = concat([frame(2, 'a', { fin: false }), ...Array.from({ length: 20 }, () => frame(0, 'b', { fin: false })), frame(0, '')]);
  fuzzTarget('websocket-stream', [tiny, frame(0, 'c', { fin: false }), frame(0, sized(2000), { fin: false }), header64(0, 0, 4000, false), frame(9, 'x')], (b) => {
    try {
      if (p.push(b).some((e) => e.type === 'close')) p = new WsFrameParser({ maxMessageBytes: 4096 });
    } catch (e) {
      p = new WsFrameParser({ maxMessageBytes: 4096 });
      throw e;
    }
    maxBuffered = Math.max(maxBuffered, p.buffered);
  });
  assert.ok(maxBuffered <= 4096 + 14, `buffered ${maxBuffered}`);
  assert.ok(bytesEqual(wsFrame(2, sized(3)), concat([framingHead('ws', 3), sized(3)])));
});
