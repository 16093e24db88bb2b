// HTTP/1.1 server-side format: request-head parser (incremental, bounded), body framing decision,
// chunked decoder, response-head serializer; and a seeded fuzz of the parser and the decoder (only
// FormatError may escape, the heap stays flat). Fuzz cases per target: M7S_FUZZ_CASES [20000].
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fuzz, fuzzTarget } from './helpers/fuzz.ts';
import {
  HttpHeadParser, ChunkedDecoder, bodyFraming, headerValue, responseHead, HTTP_REASONS, type HttpRequestHead,
} from '../src/format/http1.ts';
import { FormatError, concat, textDecoder, textEncoder } from '../src/format/bytes.ts';

const enc = (s: string) => textEncoder.encode(s);
const dec = (b: Uint8Array) => textDecoder.decode(b);
const CASES = Number(process.env.M7S_FUZZ_CASES ?? 20000);

/** Parse one head from a single chunk (throws if incomplete). */
function parse(s: string | Uint8Array, limits?: ConstructorParameters<typeof HttpHeadParser>[0]) {
  const r = new HttpHeadParser(limits).push(typeof s === 'string' ? enc(s) : s);
  assert.ok(r, 'head incomplete');
  return r;
}

/** Feed pieces in order; return the first result (asserting no earlier piece completed it). */
function feed(p: HttpHeadParser, pieces: Uint8Array[]) {
  for (let i = 0; i < pieces.length; i++) {
    const r = p.push(pieces[i]!);
    if (r) return { ...r, restAll: concat([r.rest, ...pieces.slice(i + 1)]) };
  }
  return null;
}

const rejects = (s: string | Uint8Array, re: RegExp, limits?: ConstructorParameters<typeof HttpHeadParser>[0]) =>
  assert.throws(() => new HttpHeadParser(limits).push(typeof s === 'string' ? enc(s) : s), (e: unknown) => e instanceof FormatError && re.test(e.message));

/** Decode a whole chunked body pushed as the given pieces. */
function decodeChunked(pieces: Uint8Array[]) {
  const d = new ChunkedDecoder();
  const data: Uint8Array[] = [];
  let done = false;
  let rest: Uint8Array = new Uint8Array(0);
  for (let i = 0; i < pieces.length; i++) {
    const r = d.push(pieces[i]!);
    data.push(...r.data);
    if (r.done) {
      done = true;
      rest = concat([r.rest, ...pieces.slice(i + 1)]);
      break;
    }
  }
  return { body: dec(concat(data.length ? data : [new Uint8Array(0)])), done, rest: dec(rest) };
}

// ---------------------------------------------------------------------------------------------------
// Request heads

test('HTTP head: a simple GET', () => {
  const { head, rest } = parse('GET /live/a.flv?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: t/1\r\nAccept:   */*  \r\n\r\n');
  assert.deepEqual(head, {
    method: 'GET', target: '/live/a.flv?x=1', version: '1.1',
    headers: [['host', 'example.com:8080'], ['user-agent', 't/1'], ['accept', '*/*']],
  });
  assert.equal(rest.length, 0);
  assert.equal(headerValue(head, 'host'), 'example.com:8080');
  assert.equal(headerValue(head, 'Accept'), '*/*');
  assert.equal(headerValue(head, 'cookie'), undefined);
  assert.deepEqual(bodyFraming(head), { kind: 'none' });
});

test('HTTP head: method case kept, absolute-form, OPTIONS *, CONNECT authority, HTTP/1.0 without Host, bare LF, leading empty lines, obs-text as latin1, empty value', () => {
  assert.equal(parse('get / HTTP/1.1\r\nHost: h\r\n\r\n').head.method, 'get');
  assert.equal(parse('GET http://h/p?q HTTP/1.1\r\nHost: h\r\n\r\n').head.target, 'http://h/p?q');
  assert.equal(parse('OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n').head.target, '*');
  assert.equal(parse('CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n').head.target, 'h:443');
  const h10 = parse('GET / HTTP/1.0\r\n\r\n').head;
  assert.equal(h10.version, '1.0');
  assert.deepEqual(h10.headers, []);
  assert.deepEqual(parse('GET /a HTTP/1.1\nHost: h\nX: 1\n\n').head.headers, [['host', 'h'], ['x', '1']]);
  const lead = parse('\r\n\nGET /b HTTP/1.1\r\nHost: h\r\n\r\nrest');
  assert.equal(lead.head.target, '/b');
  assert.equal(dec(lead.rest), 'rest');
  const latin = parse(Uint8Array.from([...enc('GET / HTTP/1.1\r\nHost: h\r\nX-N: a'), 0xe9, 0x80, ...enc('b\tc\r\nX-E:\r\n\r\n')])).head;
  assert.deepEqual(latin.headers, [['host', 'h'], ['x-n', 'a\u00e9\u0080b\tc'], ['x-e', '']]);
});

test('HTTP head: POST with Content-Length leaves the body bytes in rest', () => {
  const { head, rest } = parse('POST /api/x HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"a":"b12"}');
  assert.equal(head.method, 'POST');
  assert.deepEqual(bodyFraming(head), { kind: 'length', length: 11 });
  assert.equal(dec(rest), '{"a":"b12"}');
});

const SAMPLE = 'PUT /up/load?a=b&c=%20 HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nX-Long: ' + 'v'.repeat(40) + '\r\n\r\n3\r\nabc\r\n0\r\n\r\n';

test('HTTP head: same result when split at every position, fed one byte at a time, and after leading CRLFs split anywhere', () => {
  const all = enc(SAMPLE);
  const whole = parse(all);
  assert.equal(whole.head.target, '/up/load?a=b&c=%20');
  assert.deepEqual(bodyFraming(whole.head), { kind: 'chunked' });
  const expectRest = dec(whole.rest);
  assert.equal(expectRest, '3\r\nabc\r\n0\r\n\r\n');
  for (let cut = 0; cut <= all.length; cut++) {
    const p = new HttpHeadParser();
    const r = feed(p, [all.subarray(0, cut), all.subarray(cut)]);
    assert.ok(r, `cut ${cut}`);
    assert.deepEqual(r.head, whole.head, `cut ${cut}`);
    assert.equal(dec(r.restAll), expectRest, `cut ${cut}`);
    assert.equal(p.buffered, 0);
  }
  const p = new HttpHeadParser();
  const bytes = Array.from(all, (b) => Uint8Array.of(b));
  let held = 0;
  for (let i = 0; i < bytes.length; i++) {
    const r = p.push(bytes[i]!);
    if (r) {
      assert.deepEqual(r.head, whole.head);
      assert.equal(r.rest.length, 0);
      assert.equal(dec(concat(bytes.slice(i + 1))), expectRest);
      held = -1;
      break;
    }
    assert.equal(p.buffered, ++held);
  }
  assert.equal(held, -1, 'head never completed');
  const lead = enc('\r\n\r\n' + SAMPLE);
  for (let cut = 0; cut <= 6; cut++) {
    const r = feed(new HttpHeadParser(), [lead.subarray(0, cut), lead.subarray(cut)]);
    assert.deepEqual(r?.head, whole.head, `leading CRLF cut ${cut}`);
  }
});

test('HTTP head: a plain head in one chunk (the string fast path) parses as it does byte by byte', () => {
  const heads = [
    'GET /flv/live/a.flv HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    'POST /api/x?y=%20 HTTP/1.1\r\nHost: h\r\nX-Pad: \t  spaced  value \t\r\nEmpty:\r\nContent-Length: 3\r\n\r\nabc',
    'GET / HTTP/1.0\r\n\r\n',
    'OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n',
    'GET http://h/p HTTP/1.1\r\nHOST: h\r\nA: b:c:d\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n',
  ];
  for (const h of heads) {
    const all = enc(h);
    const fast = new HttpHeadParser().push(all);
    assert.ok(fast, h);
    // Split after the first byte: the byte parser takes it.
    const slowP = new HttpHeadParser();
    assert.equal(slowP.push(all.subarray(0, 1)), null);
    const slow = slowP.push(all.subarray(1));
    assert.ok(slow, h);
    assert.deepEqual(fast.head, slow.head, h);
    assert.equal(dec(fast.rest), dec(slow.rest), h);
  }
  // Limits hold on the fast path too: header count, and a Host missing or doubled.
  const many = 'GET / HTTP/1.1\r\nHost: h\r\n' + 'A: 1\r\n'.repeat(4) + '\r\n';
  assert.equal(new HttpHeadParser({ maxHeaders: 5 }).push(enc(many))?.head.headers.length, 5);
  assert.throws(() => new HttpHeadParser({ maxHeaders: 4 }).push(enc(many)), FormatError);
  assert.throws(() => new HttpHeadParser().push(enc('GET / HTTP/1.1\r\nA: 1\r\n\r\n')), FormatError);
  assert.throws(() => new HttpHeadParser().push(enc('GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n')), FormatError);
  assert.throws(() => new HttpHeadParser({ maxHeadBytes: 20 }).push(enc('GET / HTTP/1.1\r\nHost: hh\r\n\r\n')), FormatError);
});

test('HTTP head: pipelined requests in one chunk, parser reused for keep-alive', () => {
  const p = new HttpHeadParser();
  const both = enc('GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
  const a = p.push(both);
  assert.ok(a);
  assert.equal(a.head.target, '/1');
  const b = p.push(a.rest);
  assert.ok(b);
  assert.equal(b.head.target, '/2');
  assert.equal(headerValue(b.head, 'connection'), 'close');
  assert.equal(b.rest.length, 0);
  assert.equal(p.push(enc('GET /3 HTTP/1.1\r\nHo')), null);
  assert.equal(p.buffered, 19);
  const c = p.push(enc('st: h\r\n\r\n'));
  assert.equal(c?.head.target, '/3');
  assert.equal(p.buffered, 0);
});

test('HTTP head: rejections (bare CR, obs-fold, space before colon, versions, target, header syntax, Host)', () => {
  rejects('GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n', /bare CR/);
  rejects('GET /\r HTTP/1.1\r\nHost: h\r\n\r\n', /CR/);
  rejects('GET / HTTP/1.1\r\nHost: h\r\n\r\r\n', /bare CR/);
  rejects('\rGET / HTTP/1.1\r\nHost: h\r\n\r\n', /bare CR/);
  // Refused as soon as the bare CR arrives, without waiting for the end of the head; and across pushes.
  rejects('GET / HTTP/1.1\r\nHost: h\r\nX: a\rb', /bare CR/);
  const cr = new HttpHeadParser();
  assert.equal(cr.push(enc('GET / HTTP/1.1\r')), null);
  assert.throws(() => cr.push(enc('X')), /bare CR/);
  rejects('GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n  continued\r\n\r\n', /obsolete line folding/);
  rejects('GET / HTTP/1.1\r\nHost: h\r\nX-A : 1\r\n\r\n', /whitespace between/);
  rejects('GET / HTTP/1.1\r\nHost: h\r\nX-A\t: 1\r\n\r\n', /whitespace between/);
  rejects('GET / HTTP/2.0\r\n\r\n', /unsupported HTTP version/);
  rejects('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', /unsupported HTTP version/);
  rejects('GET / HTTP/1.2\r\nHost: h\r\n\r\n', /unsupported HTTP version/);
  rejects('GET / http/1.1\r\nHost: h\r\n\r\n', /malformed/);
  rejects('GET /\r\n\r\n', /malformed/);
  rejects('GET  / HTTP/1.1\r\nHost: h\r\n\r\n', /malformed/);
  rejects('GET / HTTP/1.1 \r\nHost: h\r\n\r\n', /version/);
  rejects('G(T / HTTP/1.1\r\nHost: h\r\n\r\n', /method/);
  rejects(Uint8Array.from([...enc('GET /'), 0xe9, ...enc(' HTTP/1.1\r\nHost: h\r\n\r\n')]), /request-target/);
  rejects('GET * HTTP/1.1\r\nHost: h\r\n\r\n', /request-target/);
  rejects('GET a/b HTTP/1.1\r\nHost: h\r\n\r\n', /request-target/);
  rejects('GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n', /header name/);
  rejects('GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n', /header name/);
  rejects('GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n', /header value/);
  rejects('GET / HTTP/1.1\r\nHost: h\r\nX: a\x7fb\r\n\r\n', /header value/);
  rejects('GET / HTTP/1.1\r\nUser-Agent: t\r\n\r\n', /without a Host/);
  rejects('GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', /more than one Host/);
  rejects('GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n', /more than one Host/);
  rejects('\r\n'.repeat(5) + 'GET / HTTP/1.1\r\nHost: h\r\n\r\n', /empty lines/);
  // A failed parser refuses further input.
  const p = new HttpHeadParser();
  assert.throws(() => p.push(enc('GET / HTTP/3\r\n\r\n')), FormatError);
  assert.throws(() => p.push(enc('GET / HTTP/1.1\r\nHost: h\r\n\r\n')), /after an error/);
});

test('HTTP head: size limit exactly, limit+1, hugely over (one chunk and trickled), and header count', () => {
  const base = 'GET / HTTP/1.1\r\nHost: h\r\nX: ';
  const exact = (limit: number) => base + 'a'.repeat(limit - base.length - 4) + '\r\n\r\n';
  const s = exact(100);
  assert.equal(s.length, 100);
  assert.equal(parse(s, { maxHeadBytes: 100 }).head.headers[1]![1].length, 100 - base.length - 4);
  rejects(exact(101), /exceeds 100 bytes/, { maxHeadBytes: 100 });
  // limit+1 pushed byte by byte: accepted up to the limit, then refused.
  const p = new HttpHeadParser({ maxHeadBytes: 100 });
  const b = enc(exact(101));
  for (let i = 0; i < 100; i++) assert.equal(p.push(b.subarray(i, i + 1)), null);
  assert.equal(p.buffered, 100);
  assert.throws(() => p.push(b.subarray(100)), /exceeds 100 bytes/);
  // Default limit, without any line end, in one chunk and in 1 KiB pieces (nothing kept past the limit).
  rejects(enc('GET /' + 'a'.repeat(1 << 20)), /exceeds 16384 bytes/);
  const q = new HttpHeadParser();
  const piece = enc('X'.repeat(1024));
  let thrown: unknown;
  for (let i = 0; i < 1000 && !thrown; i++) {
    try { q.push(piece); } catch (e) { thrown = e; }
    assert.ok(q.buffered <= 16384);
  }
  assert.ok(thrown instanceof FormatError && /exceeds 16384/.test(thrown.message));
  // Many short lines in one chunk: refused at the limit too.
  rejects('GET / HTTP/1.1\r\n' + 'A: b\r\n'.repeat(10000), /exceeds 16384 bytes/);
  const hdrs = (n: number) => 'GET / HTTP/1.1\r\nHost: h\r\n' + Array.from({ length: n - 1 }, (_, i) => `X-${i}: ${i}\r\n`).join('') + '\r\n';
  assert.equal(parse(hdrs(100)).head.headers.length, 100);
  rejects(hdrs(101), /more than 100 HTTP header fields/);
  assert.equal(parse(hdrs(5), { maxHeaders: 5 }).head.headers.length, 5);
  rejects(hdrs(6), /more than 5/, { maxHeaders: 5 });
});

// ---------------------------------------------------------------------------------------------------
// Body framing

test('HTTP body framing: Content-Length, chunked, and the smuggling guards', () => {
  const head = (version: '1.0' | '1.1', ...headers: [string, string][]): HttpRequestHead => ({ method: 'POST', target: '/', version, headers: [['host', 'h'], ...headers] });
  assert.deepEqual(bodyFraming(head('1.1', ['content-length', '0'])), { kind: 'length', length: 0 });
  assert.deepEqual(bodyFraming(head('1.1', ['content-length', '42, 42'], ['content-length', '42'])), { kind: 'length', length: 42 });
  assert.deepEqual(bodyFraming(head('1.1', ['content-length', '9007199254740991'])), { kind: 'length', length: Number.MAX_SAFE_INTEGER });
  assert.deepEqual(bodyFraming(head('1.1', ['transfer-encoding', 'Chunked'])), { kind: 'chunked' });
  assert.deepEqual(bodyFraming(head('1.1', ['transfer-encoding', ' , chunked'])), { kind: 'chunked' });
  const bad = (h: HttpRequestHead, re: RegExp) => assert.throws(() => bodyFraming(h), (e: unknown) => e instanceof FormatError && re.test(e.message));
  bad(head('1.1', ['content-length', '5'], ['transfer-encoding', 'chunked']), /both/);
  bad(head('1.1', ['transfer-encoding', 'chunked'], ['content-length', '5']), /both/);
  bad(head('1.1', ['transfer-encoding', 'gzip']), /chunked/);
  bad(head('1.1', ['transfer-encoding', 'gzip, chunked']), /unsupported/);
  bad(head('1.1', ['transfer-encoding', 'chunked'], ['transfer-encoding', 'chunked']), /unsupported/);
  bad(head('1.1', ['transfer-encoding', 'chunked, gzip']), /chunked/);
  bad(head('1.1', ['transfer-encoding', 'chunked;q=1']), /chunked/);
  bad(head('1.1', ['transfer-encoding', '']), /empty/);
  bad(head('1.0', ['transfer-encoding', 'chunked']), /HTTP\/1.0/);
  bad(head('1.1', ['content-length', '5'], ['content-length', '6']), /conflicting/);
  bad(head('1.1', ['content-length', '5, 6']), /conflicting/);
  for (const v of ['-1', '+5', '5a', '0x10', '1.5', '', '5,', ' ', '1e3', '99999999999999999']) bad(head('1.1', ['content-length', v]), /Content-Length/);
  bad(head('1.1', ['content-length', '9007199254740992']), /too large/);
  // Through the parser: a CL+TE request parses, then bodyFraming refuses it.
  const r = parse('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
  bad(r.head, /both/);
});

// ---------------------------------------------------------------------------------------------------
// Chunked bodies

const CHUNKED = '4\r\nWiki\r\n6;name=val;flag\r\npedia \r\nE ; ext="q;x"\r\nin \r\n\r\nchunks.\r\n0\r\nExpires: never\r\nX-T: 1\r\n\r\nGET /next';

test('chunked: normal body, extensions, trailers, bytes after the body in rest; data pieces are views', () => {
  const all = enc(CHUNKED);
  const d = new ChunkedDecoder();
  const r = d.push(all);
  assert.equal(r.done, true);
  assert.equal(d.done, true);
  assert.equal(dec(concat(r.data)), 'Wikipedia in \r\n\r\nchunks.');
  assert.deepEqual(r.data.map((x) => x.length), [4, 6, 14]);
  for (const x of r.data) assert.equal(x.buffer, all.buffer);
  assert.equal(dec(r.rest), 'GET /next');
  const simple = decodeChunked([enc('3\r\nabc\r\n0\r\n\r\n')]);
  assert.deepEqual(simple, { body: 'abc', done: true, rest: '' });
  const upper = decodeChunked([enc('A\r\n0123456789\r\n00\r\n\r\n')]);
  assert.deepEqual(upper, { body: '0123456789', done: true, rest: '' });
});

test('chunked: zero-length terminator only; incomplete stays not done', () => {
  assert.deepEqual(decodeChunked([enc('0\r\n\r\n')]), { body: '', done: true, rest: '' });
  assert.deepEqual(decodeChunked([enc('0\r\n\r\nX')]), { body: '', done: true, rest: 'X' });
  const d = new ChunkedDecoder();
  const r = d.push(enc('5\r\nab'));
  assert.equal(r.done, false);
  assert.equal(dec(concat(r.data)), 'ab');
  assert.equal(d.push(enc('cde\r\n0\r\n')).done, false);
  assert.equal(d.push(enc('\r\n')).done, true);
});

test('chunked: same result when split at every position and fed one byte at a time', () => {
  const all = enc(CHUNKED);
  const expect = { body: 'Wikipedia in \r\n\r\nchunks.', done: true, rest: 'GET /next' };
  for (let cut = 0; cut <= all.length; cut++) {
    assert.deepEqual(decodeChunked([all.subarray(0, cut), all.subarray(cut)]), expect, `cut ${cut}`);
  }
  assert.deepEqual(decodeChunked(Array.from(all, (b) => Uint8Array.of(b))), expect);
});

test('chunked: rejections (bad hex, huge size, missing CRLF, bare LF, oversize line and trailers)', () => {
  const bad = (s: string, re: RegExp, limits?: ConstructorParameters<typeof ChunkedDecoder>[0]) =>
    assert.throws(() => new ChunkedDecoder(limits).push(enc(s)), (e: unknown) => e instanceof FormatError && re.test(e.message), JSON.stringify(s.slice(0, 30)));
  bad('g\r\nx\r\n0\r\n\r\n', /invalid chunk size/);
  bad('\r\n', /invalid chunk size/);
  bad('-1\r\n', /invalid chunk size/);
  bad('0x5\r\n', /invalid chunk size/);
  bad('20000000000000\r\n', /too large/); // 2^53
  bad('1fffffffffffff0\r\n', /too large/);
  bad('ffffffffffffffffffffffff\r\n', /too large/);
  bad('3\r\nabcd\r\n', /not followed by CRLF/);
  bad('3\r\nabcX\n0\r\n\r\n', /not followed by CRLF/);
  bad('3\r\nabc\rX', /not followed by CRLF/);
  bad('3\r\nabc\n0\r\n\r\n', /not followed by CRLF/);
  bad('3\nabc\r\n', /size line not ended by CRLF/);
  bad('3;a\nabc\r\n', /chunk extension/);
  bad('0\r\n\rX', /not ended by CRLF/);
  bad('0\r\nX: 1\n\r\n', /invalid character in chunked trailer/);
  bad('0\r\n Folded: 1\r\n\r\n', /trailer/);
  bad('0\r\nX: a\0\r\n\r\n', /trailer/);
  bad('1;' + 'e'.repeat(5000) + '\r\n', /exceeds 4096/);
  bad('0'.repeat(100) + '1\r\n', /exceeds 64/, { maxLineBytes: 64 });
  bad('0\r\n' + 'X: 1\r\n'.repeat(3000) + '\r\n', /trailers exceed 16384/);
  assert.ok(new ChunkedDecoder().push(enc('0'.repeat(4000) + '1\r\nz\r\n0\r\n\r\n')).done); // leading zeros within the line limit
  const d = new ChunkedDecoder();
  assert.throws(() => d.push(enc('x')), FormatError);
  assert.throws(() => d.push(enc('0\r\n\r\n')), /after an error/);
});

// ---------------------------------------------------------------------------------------------------
// Response heads

test('responseHead: status line, reasons, headers; parses back with the request-head rules', () => {
  const b = responseHead(200, [['Content-Type', 'video/x-flv'], ['Transfer-Encoding', 'chunked'], ['X-Latin', 'caf\u00e9']]);
  assert.equal(dec(b.subarray(b.length - 4)), '\r\n\r\n');
  assert.equal(b.length, 'HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nTransfer-Encoding: chunked\r\nX-Latin: caf\u00e9\r\n\r\n'.length);
  assert.equal(b.indexOf(0xe9) > 0, true); // latin1, one byte
  // Same line rules as a request: swap the status line for a request line and parse it.
  const text = String.fromCharCode(...b);
  assert.equal(text.split('\r\n')[0], 'HTTP/1.1 200 OK');
  const back = new HttpHeadParser().push(Uint8Array.from([...enc('GET / HTTP/1.1\r\nHost: h\r\n'), ...b.subarray(b.indexOf(0x0a) + 1)]));
  assert.ok(back);
  assert.deepEqual(back.head.headers, [['host', 'h'], ['content-type', 'video/x-flv'], ['transfer-encoding', 'chunked'], ['x-latin', 'caf\u00e9']]);
  assert.equal(dec(responseHead(101, [['Upgrade', 'websocket'], ['Connection', 'Upgrade']])), 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
  assert.equal(dec(responseHead(204, [])), 'HTTP/1.1 204 No Content\r\n\r\n');
  assert.equal(dec(responseHead(431, new Map([['Connection', 'close']]))), 'HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n');
  assert.equal(dec(responseHead(599, [])), 'HTTP/1.1 599 \r\n\r\n');
  assert.equal(dec(responseHead(200, [], 'Fine')), 'HTTP/1.1 200 Fine\r\n\r\n');
  for (const s of [200, 101, 204, 206, 301, 302, 304, 400, 401, 403, 404, 405, 408, 413, 429, 431, 500, 501, 502, 503, 505]) assert.ok(HTTP_REASONS[s], String(s));
});

test('responseHead: header injection and bad input throw FormatError', () => {
  const bad = (f: () => unknown) => assert.throws(f, FormatError);
  bad(() => responseHead(200, [['X', 'a\r\nSet-Cookie: x=1']]));
  bad(() => responseHead(200, [['X', 'a\nb']]));
  bad(() => responseHead(200, [['X', 'a\rb']]));
  bad(() => responseHead(200, [['X', 'a\0b']]));
  bad(() => responseHead(200, [['X\r\nY', 'a']]));
  bad(() => responseHead(200, [['X Y', 'a']]));
  bad(() => responseHead(200, [['X:', 'a']]));
  bad(() => responseHead(200, [['', 'a']]));
  bad(() => responseHead(200, [['X', 'snow \u2603']]));
  bad(() => responseHead(200, [], 'OK\r\nX: y'));
  for (const s of [99, 1000, 200.5, NaN, -200]) bad(() => responseHead(s, []));
});

// ---------------------------------------------------------------------------------------------------
// Fuzz


test('fuzz: HTTP head parser (whole and split, pipelined) with body framing, and the chunked decoder', () => {
  const seeds = [
    'GET /live/a.flv?x=1 HTTP/1.1\r\nHost: h:8080\r\nUser-Agent: VLC/3.0\r\nAccept: */*\r\nRange: bytes=0-\r\n\r\n',
    'POST /api/stream HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}GET / HTTP/1.1\r\nHost: h\r\n\r\n',
    SAMPLE,
    '\r\nGET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    'OPTIONS * HTTP/1.0\nContent-Length: 0, 0\n\n',
    'GET http://h/p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n',
  ].map(enc);
  let heads = 0;
  fuzzTarget('http1-head', seeds, (b) => {
    // Whole (with every pipelined request after it), then split in two at a point taken from the input.
    const p = new HttpHeadParser({ maxHeadBytes: 512, maxHeaders: 8 });
    let buf: Uint8Array = b;
    for (let i = 0; i < 4; i++) {
      const r = p.push(buf);
      if (!r) break;
      heads++;
      assert.ok(r.head.method.length > 0 && r.head.target.length > 0);
      try { bodyFraming(r.head); } catch (e) { if (!(e instanceof FormatError)) throw e; }
      buf = r.rest;
    }
    assert.ok(p.buffered <= 512);
    const q = new HttpHeadParser();
    const cut = b.length ? b[b.length >> 1]! % (b.length + 1) : 0;
    const r = q.push(b.subarray(0, cut)) ?? q.push(b.subarray(cut));
    if (r) bodyFraming(r.head);
  });
  assert.ok(heads > CASES / 20, `only ${heads} heads parsed`);

  const chunkSeeds = [
    CHUNKED, '0\r\n\r\n', '5\r\nhello\r\n5;x=y\r\nworld\r\n0\r\nTrailer: a\r\n\r\n', 'ff\r\n' + 'z'.repeat(255) + '\r\n0\r\n\r\n',
  ].map(enc);
  let done = 0;
  fuzzTarget('http1-chunked', chunkSeeds, (b) => {
    const d = new ChunkedDecoder({ maxLineBytes: 64, maxTrailerBytes: 256 });
    const cut = b.length ? b[0]! % (b.length + 1) : 0;
    let total = 0;
    for (const piece of [b.subarray(0, cut), b.subarray(cut)]) {
      const r = d.push(piece);
      for (const x of r.data) total += x.length;
      if (r.done) { done++; break; }
    }
    assert.ok(total <= b.length);
  });
  assert.ok(done > CASES / 20, `only ${done} bodies completed`);
});
