// HTTP/1.1 on the server side (RFC 9112): an incremental, bounded parser of request heads, the body
// framing decision (Content-Length / chunked, with the request-smuggling guards), a chunked body decoder
// and the response-head serializer. Everything read here comes from the network and is hostile: any
// malformed or oversized input is a FormatError, memory is bounded by the limits, and every scan is
// linear in the bytes pushed (the end-of-head search resumes where the previous push stopped). After an
// error the parser and decoder refuse further input (the connection should be answered and closed).
//
// Strictness: the head accepts a bare LF as a line end (RFC 9112 §2.2 allows it) but never a bare CR;
// the chunked framing requires CRLF everywhere (leniency there is a known smuggling vector).

import { FormatError } from './bytes.ts';

export interface HttpRequestHead {
  /** Token, as sent (case kept). */
  method: string;
  /** Request-target as sent: origin-form ("/a?b"), absolute-form ("http://h/p"), "*" (OPTIONS) or authority-form (CONNECT). */
  target: string;
  version: '1.0' | '1.1';
  /** Header fields in order, names lower-cased, values with surrounding OWS trimmed (obs-text decoded as latin1). */
  headers: [string, string][];
}

export interface HttpParserLimits {
  /** Request line + headers + the terminating empty line [16384]. */
  maxHeadBytes?: number;
  /** Header field lines [100]. */
  maxHeaders?: number;
}

const EMPTY = new Uint8Array(0);
const LF = 0x0a, CR = 0x0d, SP = 0x20, HTAB = 0x09, COLON = 0x3a;
/** Empty lines tolerated before a request line (RFC 9112 §2.2). */
const MAX_LEADING_EMPTY_LINES = 4;

/** tchar (RFC 9110 §5.6.2). */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TCHAR[c.charCodeAt(0)] = 1;

/** ISO-8859-1 decoding (each byte one code unit; TextDecoder('latin1') is windows-1252, not this). */
function latin1(b: Uint8Array, s: number, e: number): string {
  let out = '';
  for (let i = s; i < e; i += 8192) {
    out += String.fromCharCode.apply(null, b.subarray(i, Math.min(e, i + 8192)) as unknown as number[]);
  }
  return out;
}

function isToken(s: string): boolean {
  if (!s.length) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff || !TCHAR[c]) return false;
  }
  return true;
}

/** Incremental parser of one request head at a time. */
export class HttpHeadParser {
  private readonly maxHead: number;
  private readonly maxHeaders: number;
  /** Bytes of the head so far (a growable buffer, `carryLen` used; never more than maxHead). */
  private carry: Uint8Array = EMPTY;
  private carryLen = 0;
  /** Bytes (and the first byte) of the unterminated line at the end of `carry`: the scan resumes from here. */
  private lineLen = 0;
  private lineFirst = 0;
  /** The last byte held is a CR (it must be followed by LF). */
  private lastCR = false;
  /** The request line has begun (leading empty lines are behind). */
  private started = false;
  private empties = 0;
  /** A CR ended the previous push while skipping leading empty lines. */
  private pendingCR = false;
  private failed = false;

  constructor(limits: HttpParserLimits = {}) {
    this.maxHead = Math.max(1, limits.maxHeadBytes ?? 16384);
    this.maxHeaders = Math.max(0, limits.maxHeaders ?? 100);
  }

  /** Bytes held waiting for the rest of a head. */
  get buffered(): number {
    return this.carryLen;
  }

  /**
   * Feed bytes. Null while the head is incomplete; else the head and the bytes after it (a view into
   * `chunk`). The parser is then reset for the next request (keep-alive). Throws FormatError on a
   * malformed or oversized head, and on every push after that.
   */
  push(chunk: Uint8Array): { head: HttpRequestHead; rest: Uint8Array } | null {
    if (this.failed) throw new FormatError('HTTP parser: input after an error');
    try {
      return this.take(chunk);
    } catch (e) {
      this.failed = true;
      this.carry = EMPTY;
      this.carryLen = 0;
      throw e;
    }
  }

  private take(chunk: Uint8Array): { head: HttpRequestHead; rest: Uint8Array } | null {
    if (this.carryLen === 0 && !this.started) {
      const fast = fastHead(chunk, this.maxHead, this.maxHeaders);
      if (fast) return fast;
    }
    const n = chunk.length;
    let i = 0;
    if (!this.started) {
      while (i < n) {
        const c = chunk[i]!;
        if (this.pendingCR) {
          if (c !== LF) throw new FormatError('bare CR in HTTP request head');
          this.pendingCR = false;
          i++;
          this.emptyLine();
        } else if (c === LF) {
          i++;
          this.emptyLine();
        } else if (c === CR) {
          this.pendingCR = true;
          i++;
        } else {
          this.started = true;
          break;
        }
      }
      if (!this.started) return null;
    }
    const start = i;
    for (;;) {
      const j = chunk.indexOf(LF, i);
      if (j < 0) break;
      const len = this.lineLen + (j - i);
      const first = this.lineLen > 0 ? this.lineFirst : chunk[i];
      if (len === 0 || (len === 1 && first === CR)) {
        // The empty line: the head is complete.
        if (this.carryLen + (j + 1 - start) > this.maxHead) throw this.tooBig();
        this.checkCR(chunk, start, j + 1);
        let bytes: Uint8Array;
        if (this.carryLen) {
          this.append(chunk.subarray(start, j + 1));
          bytes = this.carry.subarray(0, this.carryLen);
        } else {
          bytes = chunk.subarray(start, j + 1);
        }
        const head = parseHead(bytes, this.maxHeaders);
        this.reset();
        return { head, rest: j + 1 === n ? EMPTY : chunk.subarray(j + 1) };
      }
      this.lineLen = 0;
      i = j + 1;
      if (this.carryLen + (i - start) > this.maxHead) throw this.tooBig();
    }
    if (this.carryLen + (n - start) > this.maxHead) throw this.tooBig();
    this.checkCR(chunk, start, n);
    if (i < n) {
      if (this.lineLen === 0) this.lineFirst = chunk[i]!;
      this.lineLen += n - i;
    }
    this.append(chunk.subarray(start));
    return null;
  }

  /** Fail fast on a CR not followed by LF in chunk[s, e) (or after the CR that ended the previous push). */
  private checkCR(chunk: Uint8Array, s: number, e: number): void {
    if (s >= e) return;
    if (this.lastCR && chunk[s] !== LF) throw new FormatError('bare CR in HTTP request head');
    const part = chunk.subarray(s, e);
    for (let c = part.indexOf(CR); c >= 0; c = part.indexOf(CR, c + 1)) {
      if (c + 1 < part.length && part[c + 1] !== LF) throw new FormatError('bare CR in HTTP request head');
    }
    this.lastCR = part[part.length - 1] === CR;
  }

  private emptyLine(): void {
    if (++this.empties > MAX_LEADING_EMPTY_LINES) throw new FormatError('too many empty lines before the HTTP request line');
  }

  private tooBig(): FormatError {
    return new FormatError(`HTTP request head exceeds ${this.maxHead} bytes`);
  }

  private append(b: Uint8Array): void {
    const need = this.carryLen + b.length;
    if (need > this.carry.length) {
      const next = new Uint8Array(Math.min(this.maxHead, Math.max(need, this.carry.length * 2, 1024)));
      next.set(this.carry.subarray(0, this.carryLen));
      this.carry = next;
    }
    this.carry.set(b, this.carryLen);
    this.carryLen = need;
  }

  private reset(): void {
    this.carryLen = 0;
    this.lineLen = 0;
    this.lastCR = false;
    this.started = false;
    this.empties = 0;
    this.pendingCR = false;
  }
}

const ASCII = new TextDecoder('latin1'); // windows-1252, the same as ISO-8859-1 for the ASCII-only heads taken here
const TCHARS = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]+";
/** A whole head in the plainest form: CRLF lines, printable ASCII, no folding, no whitespace before a colon. */
const PLAIN_HEAD = new RegExp(`^(${TCHARS}) ([\\x21-\\x7e]+) HTTP/1\\.([01])\\r\\n((?:${TCHARS}:[\\t\\x20-\\x7e]*\\r\\n)*)\\r\\n$`);
const PLAIN_FIELD = new RegExp(`(${TCHARS}):[\\t ]*([\\t\\x20-\\x7e]*?)[\\t ]*\\r\\n`, 'y');

/**
 * The common case in one pass of the runtime's own string and regular-expression code: a whole head
 * at the start of `chunk`, in the plainest form. Null for anything else (a head split over pushes,
 * bare LF, leading empty lines, bytes above 0x7F, a limit reached), which the byte parser then takes
 * and accepts or refuses as before. A plain head gives the byte parser's result (the tests compare
 * both). Why: in a join storm on a fresh Bun process the byte loops ran uncompiled and kept the JIT
 * busy: 1000 WebSocket joins cost ~100 µs each more than with a string parse (bench/ws-join-cost.mjs).
 */
function fastHead(chunk: Uint8Array, maxHead: number, maxHeaders: number): { head: HttpRequestHead; rest: Uint8Array } | null {
  const first = chunk[0];
  if (first === undefined || !TCHAR[first]) return null;
  const text = ASCII.decode(chunk.length > maxHead ? chunk.subarray(0, maxHead) : chunk);
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const m = PLAIN_HEAD.exec(end + 4 === text.length ? text : text.slice(0, end + 4));
  if (!m) return null;
  const method = m[1]!, target = m[2]!;
  const version = m[3] === '1' ? '1.1' : '1.0';
  const fields = m[4]!;
  const headers: [string, string][] = [];
  let hosts = 0;
  PLAIN_FIELD.lastIndex = 0;
  while (PLAIN_FIELD.lastIndex < fields.length) {
    const f = PLAIN_FIELD.exec(fields);
    if (!f || headers.length >= maxHeaders) return null;
    const name = f[1]!.toLowerCase();
    if (name === 'host') hosts++;
    headers.push([name, f[2]!]);
  }
  if (hosts > 1 || (version === '1.1' && hosts === 0)) return null;
  try { checkTarget(method, target); } catch { return null; }
  return { head: { method, target, version, headers }, rest: end + 4 === chunk.length ? EMPTY : chunk.subarray(end + 4) };
}

/** Parse a complete head (request line through the empty line, which ends `b`). */
function parseHead(b: Uint8Array, maxHeaders: number): HttpRequestHead {
  const n = b.length;
  let p = 0;
  /** The line starting at p: [end of content (CR of CRLF excluded), start of the next line]. */
  const line = (): [number, number] => {
    let j = b.indexOf(LF, p);
    if (j < 0) j = n; // not reached: the head ends with LF
    const e = j > p && b[j - 1] === CR ? j - 1 : j;
    const cr = b.subarray(p, e).indexOf(CR);
    if (cr >= 0) throw new FormatError('bare CR in HTTP request head');
    return [e, j + 1];
  };

  // Request line: method SP request-target SP HTTP-version.
  const [e0, next0] = line();
  let k = p;
  while (k < e0 && TCHAR[b[k]!]) k++;
  if (k === p || k >= e0 || b[k] !== SP) throw new FormatError('malformed HTTP request line (method)');
  const method = latin1(b, p, k);
  const t0 = k + 1;
  k = t0;
  while (k < e0 && b[k]! > SP && b[k]! < 0x7f) k++;
  if (k === t0 || k >= e0 || b[k] !== SP) throw new FormatError('malformed HTTP request line (request-target)');
  const target = latin1(b, t0, k);
  const v = latin1(b, k + 1, e0);
  let version: '1.0' | '1.1';
  if (v === 'HTTP/1.1') version = '1.1';
  else if (v === 'HTTP/1.0') version = '1.0';
  else if (/^HTTP\/\d/.test(v)) throw new FormatError(`unsupported HTTP version ${JSON.stringify(v.slice(0, 16))}`);
  else throw new FormatError('malformed HTTP request line (version)');
  checkTarget(method, target);
  p = next0;

  const headers: [string, string][] = [];
  let hosts = 0;
  while (p < n) {
    const [e, next] = line();
    if (e === p) break; // the empty line
    const c0 = b[p]!;
    if (c0 === SP || c0 === HTAB) throw new FormatError('obsolete line folding in HTTP header');
    k = p;
    while (k < e && TCHAR[b[k]!]) k++;
    if (k < e && (b[k] === SP || b[k] === HTAB) && k > p) throw new FormatError('whitespace between HTTP header name and colon');
    if (k === p || k >= e || b[k] !== COLON) throw new FormatError('invalid HTTP header name');
    if (headers.length >= maxHeaders) throw new FormatError(`more than ${maxHeaders} HTTP header fields`);
    let vs = k + 1, ve = e;
    while (vs < ve && (b[vs] === SP || b[vs] === HTAB)) vs++;
    while (ve > vs && (b[ve - 1] === SP || b[ve - 1] === HTAB)) ve--;
    for (let i = vs; i < ve; i++) {
      const c = b[i]!;
      if ((c < SP && c !== HTAB) || c === 0x7f) throw new FormatError('invalid character in HTTP header value');
    }
    const name = latin1(b, p, k).toLowerCase();
    if (name === 'host') hosts++;
    headers.push([name, latin1(b, vs, ve)]);
    p = next;
  }
  if (hosts > 1) throw new FormatError('more than one Host header');
  if (version === '1.1' && hosts === 0) throw new FormatError('HTTP/1.1 request without a Host header');
  return { method, target, version, headers };
}

/** Origin-form, absolute-form, "*" (OPTIONS) or authority-form (CONNECT); characters already checked. */
function checkTarget(method: string, t: string): void {
  if (t.charCodeAt(0) === 0x2f) return; // "/..."
  if (t === '*' && method === 'OPTIONS') return;
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(t)) return;
  if (method === 'CONNECT' && /^[^/?#@]+:\d{1,5}$/.test(t)) return;
  throw new FormatError('invalid HTTP request-target');
}

/** First value of header `name` or undefined. */
export function headerValue(head: HttpRequestHead, name: string): string | undefined {
  const n = name.toLowerCase();
  for (const [k, v] of head.headers) if (k === n) return v;
  return undefined;
}

export type BodyFraming = { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' };

/**
 * How the request body is delimited (RFC 9112 §6.1-6.3): Transfer-Encoding (only "chunked" is
 * supported), else Content-Length, else none. Ambiguous framing (both, conflicting lengths, TE on
 * HTTP/1.0) is a FormatError: those are request-smuggling vectors.
 */
export function bodyFraming(head: HttpRequestHead): BodyFraming {
  const te: string[] = [];
  const cl: string[] = [];
  for (const [k, v] of head.headers) {
    if (k === 'transfer-encoding') te.push(v);
    else if (k === 'content-length') cl.push(v);
  }
  if (te.length) {
    if (head.version === '1.0') throw new FormatError('Transfer-Encoding in an HTTP/1.0 request');
    if (cl.length) throw new FormatError('both Transfer-Encoding and Content-Length');
    const codings = te.join(',').split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== '');
    if (codings.length === 0) throw new FormatError('empty Transfer-Encoding');
    if (codings[codings.length - 1] !== 'chunked') throw new FormatError('Transfer-Encoding does not end with chunked');
    if (codings.length > 1) throw new FormatError('unsupported transfer coding');
    return { kind: 'chunked' };
  }
  if (cl.length) {
    let length = -1;
    for (const v of cl) {
      for (const part of v.split(',')) {
        const s = part.trim();
        if (!/^\d{1,16}$/.test(s)) throw new FormatError('invalid Content-Length');
        const x = Number(s);
        if (x > Number.MAX_SAFE_INTEGER) throw new FormatError('Content-Length too large');
        if (length >= 0 && x !== length) throw new FormatError('conflicting Content-Length values');
        length = x;
      }
    }
    return { kind: 'length', length };
  }
  return { kind: 'none' };
}

const enum Ck { Size, Ext, SizeLF, Data, DataCR, DataLF, Trailer, TrailerLine, TrailerLF, EndLF, Done }

const HEXVAL = new Int8Array(256).fill(-1);
for (let i = 0; i < 16; i++) {
  HEXVAL['0123456789abcdef'.charCodeAt(i)] = i;
  HEXVAL['0123456789ABCDEF'.charCodeAt(i)] = i;
}

/** Incremental decoder of a chunked body (RFC 9112 §7.1). Chunk extensions are skipped; trailers are read and discarded. */
export class ChunkedDecoder {
  private readonly maxLine: number;
  private readonly maxTrailer: number;
  private state = Ck.Size;
  private size = 0;
  private digits = 0;
  private lineBytes = 0;
  private trailerBytes = 0;
  private failed = false;

  constructor(limits: { maxLineBytes?: number; maxTrailerBytes?: number } = {}) {
    this.maxLine = limits.maxLineBytes ?? 4096;
    this.maxTrailer = limits.maxTrailerBytes ?? 16384;
  }

  /** The whole body (with its trailers) has been read. */
  get done(): boolean {
    return this.state === Ck.Done;
  }

  /**
   * Feed bytes; returns the payload pieces (views into `chunk`), whether the body is complete, and the
   * bytes after it (meaningful once done; after done, all of `chunk`). Throws FormatError on malformed
   * input, and on every push after that.
   */
  push(chunk: Uint8Array): { data: Uint8Array[]; done: boolean; rest: Uint8Array } {
    if (this.failed) throw new FormatError('chunked decoder: input after an error');
    try {
      return this.take(chunk);
    } catch (e) {
      this.failed = true;
      throw e;
    }
  }

  private take(chunk: Uint8Array): { data: Uint8Array[]; done: boolean; rest: Uint8Array } {
    const data: Uint8Array[] = [];
    const n = chunk.length;
    let i = 0;
    while (i < n && this.state !== Ck.Done) {
      const c = chunk[i]!;
      switch (this.state) {
        case Ck.Size: {
          const h = HEXVAL[c]!;
          if (h >= 0) {
            if (this.size > (Number.MAX_SAFE_INTEGER - h) / 16) throw new FormatError('chunk size too large');
            this.size = this.size * 16 + h;
            this.digits++;
            this.line();
            i++;
            break;
          }
          if (this.digits === 0) throw new FormatError('invalid chunk size');
          if (c === CR) this.state = Ck.SizeLF;
          else if (c === LF) throw new FormatError('chunk size line not ended by CRLF');
          else if (c === 0x3b || c === SP || c === HTAB) this.state = Ck.Ext;
          else throw new FormatError('invalid chunk size');
          this.line();
          i++;
          break;
        }
        case Ck.Ext:
          if (c === CR) this.state = Ck.SizeLF;
          else if ((c < SP && c !== HTAB) || c === 0x7f) throw new FormatError('invalid character in chunk extension');
          this.line();
          i++;
          break;
        case Ck.SizeLF:
          if (c !== LF) throw new FormatError('chunk size line not ended by CRLF');
          i++;
          this.lineBytes = 0;
          this.state = this.size === 0 ? Ck.Trailer : Ck.Data;
          break;
        case Ck.Data: {
          const take = Math.min(this.size, n - i);
          data.push(chunk.subarray(i, i + take));
          i += take;
          this.size -= take;
          if (this.size === 0) this.state = Ck.DataCR;
          break;
        }
        case Ck.DataCR:
          if (c !== CR) throw new FormatError('chunk data not followed by CRLF');
          this.state = Ck.DataLF;
          i++;
          break;
        case Ck.DataLF:
          if (c !== LF) throw new FormatError('chunk data not followed by CRLF');
          this.state = Ck.Size;
          this.digits = 0;
          this.lineBytes = 0;
          i++;
          break;
        case Ck.Trailer:
          this.trailer();
          if (c === CR) this.state = Ck.EndLF;
          else if (c === SP || c === HTAB || c === COLON || !TCHAR[c]) throw new FormatError('invalid chunked trailer field');
          else this.state = Ck.TrailerLine;
          i++;
          break;
        case Ck.TrailerLine:
          this.trailer();
          if (c === CR) this.state = Ck.TrailerLF;
          else if ((c < SP && c !== HTAB) || c === 0x7f) throw new FormatError('invalid character in chunked trailer');
          i++;
          break;
        case Ck.TrailerLF:
          this.trailer();
          if (c !== LF) throw new FormatError('chunked trailer line not ended by CRLF');
          this.state = Ck.Trailer;
          i++;
          break;
        case Ck.EndLF:
          if (c !== LF) throw new FormatError('chunked body not ended by CRLF');
          this.state = Ck.Done;
          i++;
          break;
      }
    }
    const done = this.state === Ck.Done;
    return { data, done, rest: done && i < n ? chunk.subarray(i) : EMPTY };
  }

  private line(): void {
    if (++this.lineBytes > this.maxLine) throw new FormatError(`chunk size line exceeds ${this.maxLine} bytes`);
  }

  private trailer(): void {
    if (++this.trailerBytes > this.maxTrailer) throw new FormatError(`chunked trailers exceed ${this.maxTrailer} bytes`);
  }
}

/** Standard reason phrases (RFC 9110 §15). */
export const HTTP_REASONS: Readonly<Record<number, string>> = {
  100: 'Continue', 101: 'Switching Protocols', 200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content',
  206: 'Partial Content', 301: 'Moved Permanently', 302: 'Found', 303: 'See Other', 304: 'Not Modified',
  307: 'Temporary Redirect', 308: 'Permanent Redirect', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden',
  404: 'Not Found', 405: 'Method Not Allowed', 406: 'Not Acceptable', 408: 'Request Timeout', 409: 'Conflict',
  410: 'Gone', 411: 'Length Required', 412: 'Precondition Failed', 413: 'Content Too Large', 414: 'URI Too Long',
  415: 'Unsupported Media Type', 416: 'Range Not Satisfiable', 417: 'Expectation Failed', 426: 'Upgrade Required',
  429: 'Too Many Requests', 431: 'Request Header Fields Too Large', 500: 'Internal Server Error',
  501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
};

/** Field value / reason phrase characters: HTAB, SP, VCHAR, obs-text (no CR, LF, NUL or other controls). */
function checkText(s: string, what: string): void {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c < SP && c !== HTAB) || c === 0x7f) throw new FormatError(`invalid character in ${what}`);
    if (c > 0xff) throw new FormatError(`${what} is not a latin1 string`);
  }
}

/**
 * The bytes of a response head: status line, "name: value" lines, empty line (latin1-encoded). Throws
 * FormatError on a name that is not a token, a value or reason with CR, LF, NUL (header injection) or
 * another control character or a character above U+00FF, or a status outside 100..999.
 */
export function responseHead(status: number, headers: Iterable<readonly [string, string]>, reason?: string): Uint8Array {
  if (!Number.isInteger(status) || status < 100 || status > 999) throw new FormatError(`invalid HTTP status ${status}`);
  const r = reason ?? HTTP_REASONS[status] ?? '';
  checkText(r, 'reason phrase');
  let s = `HTTP/1.1 ${status} ${r}\r\n`;
  for (const [k, v] of headers) {
    if (!isToken(k)) throw new FormatError(`invalid HTTP header name ${JSON.stringify(String(k).slice(0, 40))}`);
    checkText(v, `HTTP header ${k}`);
    s += `${k}: ${v}\r\n`;
  }
  s += '\r\n';
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
