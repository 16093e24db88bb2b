// SIP messages (RFC 3261 section 7): parse and serialize requests and responses, one per UDP datagram or
// framed by Content-Length on a TCP stream (RFC 3261 18.3). Every size is bounded (header bytes, header
// count, body); a bad message is a FormatError and a stream parser refuses input after one (close the
// connection). Bodies are bytes: MANSCDP XML may be GB2312/GBK, decoded by the caller.

import { FormatError, textDecoder, textEncoder } from '../bytes.ts';

export const SIP_MAX_HEADER_BYTES = 16 * 1024;
export const SIP_MAX_HEADERS = 100;
export const SIP_MAX_BODY = 64 * 1024;

/** Compact header forms (RFC 3261 7.3.3) to their full names. */
const COMPACT: Record<string, string> = {
  v: 'Via', f: 'From', t: 'To', i: 'Call-ID', m: 'Contact', l: 'Content-Length', c: 'Content-Type',
  e: 'Content-Encoding', k: 'Supported', s: 'Subject', o: 'Event', u: 'Allow-Events',
};

export interface SipMessage {
  /** Request: method and Request-URI; response: status and reason. */
  method?: string;
  uri?: string;
  status?: number;
  reason?: string;
  headers: [string, string][];
  body: Uint8Array;
}

export function isRequest(m: SipMessage): boolean {
  return m.method !== undefined;
}

/** First value of a header (case-insensitive, compact forms too). */
export function header(m: SipMessage, name: string): string | undefined {
  const n = name.toLowerCase();
  for (const [k, v] of m.headers) if (k.toLowerCase() === n) return v;
  return undefined;
}

/** Every value of a header; comma-joined values (Via) are split where they are lists. */
export function headers(m: SipMessage, name: string): string[] {
  const n = name.toLowerCase();
  const out: string[] = [];
  for (const [k, v] of m.headers) if (k.toLowerCase() === n) out.push(v);
  return out;
}

export function setHeader(m: SipMessage, name: string, value: string): void {
  const n = name.toLowerCase();
  m.headers = m.headers.filter(([k]) => k.toLowerCase() !== n);
  m.headers.push([name, value]);
}

const TOKEN = /^[A-Za-z0-9.!%*_+`'~-]{1,32}$/;

function parseHead(text: string): SipMessage {
  const lines = text.split('\r\n');
  const start = lines[0]!;
  let msg: SipMessage;
  if (start.startsWith('SIP/')) {
    const m = /^SIP\/2\.0 ([1-6]\d\d) ?(.*)$/.exec(start);
    if (!m) throw new FormatError(`bad SIP status line ${JSON.stringify(start.slice(0, 60))}`);
    msg = { status: Number(m[1]), reason: m[2]!, headers: [], body: new Uint8Array(0) };
  } else {
    const m = /^(\S+) (\S+) SIP\/2\.0$/.exec(start);
    if (!m || !TOKEN.test(m[1]!)) throw new FormatError(`bad SIP request line ${JSON.stringify(start.slice(0, 60))}`);
    if (m[2]!.length > 1024) throw new FormatError('SIP Request-URI too long');
    msg = { method: m[1]!.toUpperCase(), uri: m[2]!, headers: [], body: new Uint8Array(0) };
  }
  for (let i = 1; i < lines.length; i++) {
    let line = lines[i]!;
    if (line === '') continue;
    // Folded continuation lines (RFC 3261 7.3.1).
    while (i + 1 < lines.length && (lines[i + 1]!.startsWith(' ') || lines[i + 1]!.startsWith('\t'))) line += ' ' + lines[++i]!.trim();
    const colon = line.indexOf(':');
    if (colon <= 0) throw new FormatError(`SIP header line without a name: ${JSON.stringify(line.slice(0, 40))}`);
    let name = line.slice(0, colon).trim();
    if (!/^[A-Za-z0-9.!%*_+`'~-]{1,64}$/.test(name)) throw new FormatError(`bad SIP header name ${JSON.stringify(name.slice(0, 40))}`);
    if (name.length === 1) name = COMPACT[name.toLowerCase()] ?? name;
    if (msg.headers.length >= SIP_MAX_HEADERS) throw new FormatError(`more than ${SIP_MAX_HEADERS} SIP headers`);
    msg.headers.push([name, line.slice(colon + 1).trim()]);
  }
  for (const h of ['Call-ID', 'CSeq', 'From', 'To']) {
    if (header(msg, h) === undefined) throw new FormatError(`SIP message without ${h}`);
  }
  parseCSeq(header(msg, 'CSeq')!);
  return msg;
}

function contentLength(m: SipMessage, required: boolean): number {
  const v = header(m, 'Content-Length');
  if (v === undefined) {
    if (required) throw new FormatError('SIP message on a stream without Content-Length');
    return -1;
  }
  if (!/^\d{1,9}$/.test(v)) throw new FormatError(`bad Content-Length ${JSON.stringify(v.slice(0, 20))}`);
  const n = Number(v);
  if (n > SIP_MAX_BODY) throw new FormatError(`SIP body of ${n} bytes exceeds ${SIP_MAX_BODY}`);
  return n;
}

function findHeadEnd(b: Uint8Array, from: number, to: number): number {
  for (let i = from; i + 3 < to; i++) {
    if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i;
  }
  return -1;
}

function decodeHead(b: Uint8Array): string {
  // Headers are UTF-8 (RFC 3261 7.3.1); a NUL has no place in them.
  for (let i = 0; i < b.length; i++) if (b[i] === 0) throw new FormatError('NUL byte in SIP headers');
  return textDecoder.decode(b);
}

/** Parse one SIP message from a UDP datagram (Content-Length optional there; the datagram ends the body). */
export function parseSipMessage(b: Uint8Array): SipMessage {
  let start = 0;
  while (start < b.length && (b[start] === 13 || b[start] === 10)) start++; // keep-alive CRLFs
  if (start >= b.length) throw new FormatError('empty SIP datagram');
  const end = findHeadEnd(b, start, Math.min(b.length, start + SIP_MAX_HEADER_BYTES + 4));
  if (end < 0) throw new FormatError(b.length - start > SIP_MAX_HEADER_BYTES ? `SIP headers exceed ${SIP_MAX_HEADER_BYTES} bytes` : 'SIP message without the blank line ending its headers');
  const msg = parseHead(decodeHead(b.subarray(start, end)));
  const rest = b.subarray(end + 4);
  const len = contentLength(msg, false);
  if (len < 0) {
    if (rest.length > SIP_MAX_BODY) throw new FormatError(`SIP body exceeds ${SIP_MAX_BODY} bytes`);
    msg.body = rest.slice();
  } else {
    if (len > rest.length) throw new FormatError(`SIP body truncated: Content-Length ${len}, ${rest.length} bytes`);
    msg.body = rest.slice(0, len);
  }
  return msg;
}

/**
 * A SIP message stream (TCP): feed chunks, get whole messages (Content-Length framing). Throws a
 * FormatError on bad input; it then refuses further input.
 */
export class SipStreamParser {
  private buf = new Uint8Array(0);
  private failed = false;

  push(chunk: Uint8Array): SipMessage[] {
    if (this.failed) throw new FormatError('SIP stream parser already failed');
    try {
      return this.parse(chunk);
    } catch (e) {
      this.failed = true;
      throw e;
    }
  }

  private parse(chunk: Uint8Array): SipMessage[] {
    let b = chunk;
    if (this.buf.length) {
      b = new Uint8Array(this.buf.length + chunk.length);
      b.set(this.buf);
      b.set(chunk, this.buf.length);
    }
    const out: SipMessage[] = [];
    let p = 0;
    for (;;) {
      while (p < b.length && (b[p] === 13 || b[p] === 10)) p++; // CRLF keep-alives (RFC 5626)
      if (p >= b.length) break;
      const limit = Math.min(b.length, p + SIP_MAX_HEADER_BYTES + 4);
      const end = findHeadEnd(b, p, limit);
      if (end < 0) {
        if (b.length - p > SIP_MAX_HEADER_BYTES) throw new FormatError(`SIP headers exceed ${SIP_MAX_HEADER_BYTES} bytes`);
        break;
      }
      const msg = parseHead(decodeHead(b.subarray(p, end)));
      const len = contentLength(msg, true);
      if (end + 4 + len > b.length) break;
      msg.body = b.slice(end + 4, end + 4 + len);
      out.push(msg);
      p = end + 4 + len;
    }
    this.buf = p >= b.length ? new Uint8Array(0) : b.slice(p);
    return out;
  }
}

/** Serialize with a correct Content-Length (any given one is replaced). */
export function serializeSip(m: SipMessage): Uint8Array {
  let head = m.method !== undefined ? `${m.method} ${m.uri} SIP/2.0\r\n` : `SIP/2.0 ${m.status} ${m.reason ?? reasonOf(m.status!)}\r\n`;
  for (const [k, v] of m.headers) {
    if (k.toLowerCase() === 'content-length') continue;
    if (/[\r\n]/.test(k + v)) throw new FormatError(`SIP header ${k} with a line break`);
    head += `${k}: ${v}\r\n`;
  }
  head += `Content-Length: ${m.body.length}\r\n\r\n`;
  const h = textEncoder.encode(head);
  const out = new Uint8Array(h.length + m.body.length);
  out.set(h);
  out.set(m.body, h.length);
  return out;
}

export const SIP_REASONS: Record<number, string> = {
  100: 'Trying', 180: 'Ringing', 200: 'OK', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden',
  404: 'Not Found', 405: 'Method Not Allowed', 408: 'Request Timeout', 481: 'Call/Transaction Does Not Exist',
  486: 'Busy Here', 487: 'Request Terminated', 488: 'Not Acceptable Here', 500: 'Server Internal Error',
  501: 'Not Implemented', 503: 'Service Unavailable',
};
export function reasonOf(status: number): string {
  return SIP_REASONS[status] ?? 'Unknown';
}

// ---------------------------------------------------------------------------------------------------
// Header values

export function parseCSeq(v: string): { seq: number; method: string } {
  const m = /^\s*(\d{1,10})\s+([A-Za-z]{1,32})\s*$/.exec(v);
  if (!m || Number(m[1]) > 0xffffffff) throw new FormatError(`bad CSeq ${JSON.stringify(v.slice(0, 40))}`);
  return { seq: Number(m[1]), method: m[2]!.toUpperCase() };
}

export interface Via { transport: string; host: string; port?: number; params: Record<string, string> }

/** The first Via of a header value (`SIP/2.0/UDP host:port;branch=...;rport`). */
export function parseVia(v: string): Via {
  const first = v.split(',')[0]!.trim();
  const m = /^SIP\s*\/\s*2\.0\s*\/\s*([A-Za-z]{2,10})\s+([^;\s]+)(.*)$/.exec(first);
  if (!m) throw new FormatError(`bad Via ${JSON.stringify(first.slice(0, 60))}`);
  const hp = m[2]!;
  let host = hp, port: number | undefined;
  const hm = /^(\[[^\]]+\]|[^:]+)(?::(\d{1,5}))?$/.exec(hp);
  if (!hm) throw new FormatError(`bad Via sent-by ${JSON.stringify(hp.slice(0, 40))}`);
  host = hm[1]!;
  if (hm[2]) port = Number(hm[2]);
  return { transport: m[1]!.toUpperCase(), host, port, params: parseParams(m[3]!) };
}

export function formatVia(v: Via): string {
  let s = `SIP/2.0/${v.transport} ${v.host}${v.port ? ':' + v.port : ''}`;
  for (const [k, val] of Object.entries(v.params)) s += val === '' ? `;${k}` : `;${k}=${val}`;
  return s;
}

function parseParams(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of s.split(';')) {
    const t = part.trim();
    if (!t) continue;
    const eq = t.indexOf('=');
    if (eq < 0) out[t.toLowerCase()] = '';
    else out[t.slice(0, eq).trim().toLowerCase()] = t.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
  }
  return out;
}

export interface NameAddr { display?: string; uri: string; params: Record<string, string> }

/** From/To/Contact: `"name" <sip:user@host>;tag=x` or `sip:user@host;tag=x`. */
export function parseNameAddr(v: string): NameAddr {
  const s = v.trim();
  const lt = s.indexOf('<');
  if (lt >= 0) {
    const gt = s.indexOf('>', lt);
    if (gt < 0) throw new FormatError(`unterminated <uri> in ${JSON.stringify(s.slice(0, 60))}`);
    const display = s.slice(0, lt).trim().replace(/^"(.*)"$/, '$1');
    return { display: display || undefined, uri: s.slice(lt + 1, gt), params: parseParams(s.slice(gt + 1)) };
  }
  const semi = s.indexOf(';');
  return { uri: semi < 0 ? s : s.slice(0, semi), params: semi < 0 ? {} : parseParams(s.slice(semi)) };
}

export function formatNameAddr(a: NameAddr): string {
  let s = `${a.display ? `"${a.display}" ` : ''}<${a.uri}>`;
  for (const [k, v] of Object.entries(a.params)) s += v === '' ? `;${k}` : `;${k}=${v}`;
  return s;
}

export interface SipUri { scheme: string; user: string; host: string; port?: number; params: Record<string, string> }

/** `sip:user@host:port;params` */
export function parseSipUri(v: string): SipUri {
  const m = /^(sips?):(?:([^@;]*)@)?(\[[^\]]+\]|[^:;?]+)(?::(\d{1,5}))?([^?]*)/i.exec(v.trim());
  if (!m) throw new FormatError(`bad SIP URI ${JSON.stringify(v.slice(0, 60))}`);
  return { scheme: m[1]!.toLowerCase(), user: m[2] ?? '', host: m[3]!, port: m[4] ? Number(m[4]) : undefined, params: parseParams(m[5]!) };
}

/** The user part of a From/To header value (the GB28181 device or channel ID). */
export function userOf(nameAddr: string): string {
  return parseSipUri(parseNameAddr(nameAddr).uri).user;
}

/** A new branch (RFC 3261 magic cookie), tag or Call-ID. */
export function randomToken(prefix = '', n = 16): string {
  let s = prefix;
  for (let i = 0; i < n; i++) s += '0123456789abcdefghijklmnopqrstuvwxyz'[Math.floor(Math.random() * 36)];
  return s;
}
export const newBranch = () => randomToken('z9hG4bK', 16);
