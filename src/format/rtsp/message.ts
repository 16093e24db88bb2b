// RTSP/1.0 messages (RFC 2326; the 2.0 grammar of RFC 7826 parses the same way): a streaming parser for
// requests and responses pipelined on one TCP connection, with interleaved binary frames ("$", channel,
// 16-bit length, data; RFC 2326 10.12) mixed in, and the serializers. Every size is bounded: header
// bytes, header count, body (Content-Length) and, by their format, interleaved frames. A bad message is a
// FormatError; the parser refuses further input after one (the connection should be closed).

import { FormatError, textDecoder, textEncoder } from '../bytes.ts';

/** Ordered, case-insensitive header list (names keep their spelling for output). */
export class RtspHeaders {
  readonly list: [string, string][] = [];

  constructor(init?: Record<string, string | number | undefined> | [string, string][]) {
    if (Array.isArray(init)) for (const [k, v] of init) this.append(k, v);
    else if (init) for (const k of Object.keys(init)) if (init[k] !== undefined) this.append(k, String(init[k]));
  }

  get(name: string): string | undefined {
    const n = name.toLowerCase();
    for (const [k, v] of this.list) if (k.toLowerCase() === n) return v;
    return undefined;
  }

  getAll(name: string): string[] {
    const n = name.toLowerCase();
    return this.list.filter(([k]) => k.toLowerCase() === n).map(([, v]) => v);
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  /** Replace every header of this name with one. */
  set(name: string, value: string | number): this {
    this.delete(name);
    this.list.push([name, String(value)]);
    return this;
  }

  append(name: string, value: string | number): this {
    const v = String(value);
    if (/[\r\n]/.test(v) || /[\r\n:]/.test(name)) throw new FormatError(`RTSP header ${JSON.stringify(name)} with a line break`);
    this.list.push([name, v]);
    return this;
  }

  delete(name: string): void {
    const n = name.toLowerCase();
    for (let i = this.list.length - 1; i >= 0; i--) if (this.list[i]![0].toLowerCase() === n) this.list.splice(i, 1);
  }

  get cseq(): number | undefined {
    const v = this.get('CSeq');
    return v !== undefined && /^\s*\d{1,9}\s*$/.test(v) ? Number(v) : undefined;
  }
}

export interface RtspRequest {
  kind: 'request';
  method: string;
  uri: string;
  version: string;
  headers: RtspHeaders;
  body: Uint8Array;
}

export interface RtspResponse {
  kind: 'response';
  version: string;
  status: number;
  reason: string;
  headers: RtspHeaders;
  body: Uint8Array;
}

export interface RtspInterleavedFrame {
  kind: 'data';
  channel: number;
  data: Uint8Array;
}

export type RtspMessage = RtspRequest | RtspResponse | RtspInterleavedFrame;

export interface RtspParserOptions {
  /** Bytes of start line + headers [16 KiB]. */
  maxHeaderBytes?: number;
  /** Header lines [64]. */
  maxHeaders?: number;
  /** Content-Length [1 MiB]. */
  maxBodyBytes?: number;
}

const EMPTY = new Uint8Array(0);

/**
 * Streaming parser. `push` returns the messages completed by a chunk; message bodies and interleaved
 * data are views into the chunk when they lie inside it (do not reuse chunk buffers) and copies otherwise.
 */
export class RtspParser {
  private readonly maxHeaderBytes: number;
  private readonly maxHeaders: number;
  private readonly maxBody: number;
  /** Bytes carried over between pushes (a growable buffer, `carryLen` used). */
  private carry = new Uint8Array(0);
  private carryLen = 0;
  /** Where the search for the end of the header block resumes (avoids rescanning). */
  private scanFrom = 0;
  private failed = false;

  constructor(opts: RtspParserOptions = {}) {
    this.maxHeaderBytes = opts.maxHeaderBytes ?? 16 * 1024;
    this.maxHeaders = opts.maxHeaders ?? 64;
    this.maxBody = opts.maxBodyBytes ?? 1 << 20;
  }

  /** Bytes held waiting for the rest of a message. */
  get buffered(): number {
    return this.carryLen;
  }

  push(chunk: Uint8Array): RtspMessage[] {
    if (this.failed) throw new FormatError('RTSP parser: input after an error');
    let buf: Uint8Array;
    let fromCarry: boolean;
    if (this.carryLen) {
      this.append(chunk);
      buf = this.carry.subarray(0, this.carryLen);
      fromCarry = true;
    } else {
      buf = chunk;
      fromCarry = false;
    }
    const out: RtspMessage[] = [];
    let p = 0;
    try {
      p = this.parse(buf, fromCarry, out);
    } catch (e) {
      this.failed = true;
      throw e;
    }
    const rest = buf.length - p;
    if (rest === 0) this.scanFrom = 0;
    if (fromCarry) {
      if (rest === 0) {
        this.carryLen = 0;
        if (this.carry.length > 64 * 1024) this.carry = new Uint8Array(0);
      } else if (p > 0) {
        this.carry.copyWithin(0, p, buf.length);
        this.carryLen = rest;
        this.scanFrom = Math.max(0, this.scanFrom - p);
      }
    } else if (rest > 0) {
      this.carryLen = 0;
      this.scanFrom = Math.max(0, this.scanFrom - p);
      this.append(buf.subarray(p));
    }
    return out;
  }

  private append(b: Uint8Array): void {
    const need = this.carryLen + b.length;
    if (need > this.carry.length) {
      const next = new Uint8Array(Math.max(need, this.carry.length * 2, 4096));
      next.set(this.carry.subarray(0, this.carryLen));
      this.carry = next;
    }
    this.carry.set(b, this.carryLen);
    this.carryLen = need;
  }

  /** Parse complete messages from `buf`; returns the bytes consumed. */
  private parse(buf: Uint8Array, copy: boolean, out: RtspMessage[]): number {
    const n = buf.length;
    let p = 0;
    const take = (s: number, e: number) => (e === s ? EMPTY : copy ? buf.slice(s, e) : buf.subarray(s, e));
    while (p < n) {
      const c = buf[p]!;
      if (c === 0x24) {
        if (n - p < 4) break;
        const len = (buf[p + 2]! << 8) | buf[p + 3]!;
        if (n - p < 4 + len) break;
        out.push({ kind: 'data', channel: buf[p + 1]!, data: take(p + 4, p + 4 + len) });
        p += 4 + len;
        this.scanFrom = p;
        continue;
      }
      if (c === 0x0d || c === 0x0a) { p++; this.scanFrom = Math.max(this.scanFrom, p); continue; } // stray line ends (keep-alives)
      // Find the blank line ending the header block.
      let end = -1, bodyStart = -1;
      let i = Math.max(p, this.scanFrom);
      const limit = Math.min(n, p + this.maxHeaderBytes + 4);
      for (; i < limit; i++) {
        if (buf[i] !== 0x0a) continue;
        if (buf[i - 1] === 0x0a && i - 1 >= p) { end = i - 1; bodyStart = i + 1; break; }
        if (buf[i - 1] === 0x0d && buf[i - 2] === 0x0a && i - 2 >= p) { end = i - 2; bodyStart = i + 1; break; }
      }
      if (end < 0) {
        if (n - p > this.maxHeaderBytes) throw new FormatError(`RTSP header block exceeds ${this.maxHeaderBytes} bytes`);
        this.scanFrom = Math.max(p, i - 3);
        break;
      }
      if (end - p > this.maxHeaderBytes) throw new FormatError(`RTSP header block exceeds ${this.maxHeaderBytes} bytes`);
      const head = this.head(buf.subarray(p, end));
      const cl = head.headers.get('Content-Length');
      let bodyLen = 0;
      if (cl !== undefined) {
        if (!/^\s*\d{1,10}\s*$/.test(cl)) throw new FormatError(`invalid Content-Length ${JSON.stringify(cl.slice(0, 20))}`);
        bodyLen = Number(cl);
        if (bodyLen > this.maxBody) throw new FormatError(`RTSP body of ${bodyLen} bytes exceeds ${this.maxBody}`);
      }
      if (n - bodyStart < bodyLen) {
        this.scanFrom = p; // rescan the (bounded) header block when the body is complete
        break;
      }
      const body = take(bodyStart, bodyStart + bodyLen);
      out.push({ ...head, body } as RtspMessage);
      p = bodyStart + bodyLen;
      this.scanFrom = p;
    }
    return p;
  }

  private head(b: Uint8Array): Omit<RtspRequest, 'body'> | Omit<RtspResponse, 'body'> {
    const text = textDecoder.decode(b);
    const lines = text.split(/\r?\n/);
    const first = lines[0]!;
    const headers = new RtspHeaders();
    let count = 0;
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      if (line === '') continue;
      if ((line[0] === ' ' || line[0] === '\t') && headers.list.length) {
        const last = headers.list[headers.list.length - 1]!;
        last[1] += ' ' + line.trim(); // obsolete line folding
        continue;
      }
      const colon = line.indexOf(':');
      if (colon <= 0) throw new FormatError(`RTSP header line without a name: ${JSON.stringify(line.slice(0, 40))}`);
      if (++count > this.maxHeaders) throw new FormatError(`more than ${this.maxHeaders} RTSP headers`);
      const name = line.slice(0, colon).trim();
      if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) throw new FormatError(`invalid RTSP header name ${JSON.stringify(name.slice(0, 40))}`);
      headers.list.push([name, line.slice(colon + 1).trim()]);
    }
    const resp = /^(RTSP\/\d\.\d) (\d{3})(?: (.*))?$/.exec(first);
    if (resp) return { kind: 'response', version: resp[1]!, status: Number(resp[2]), reason: resp[3] ?? '', headers };
    const req = /^([A-Z_][A-Z0-9_-]{0,31}) (\S{1,4096}) (RTSP\/\d\.\d)$/.exec(first);
    if (req) return { kind: 'request', method: req[1]!, uri: req[2]!, version: req[3]!, headers };
    throw new FormatError(`not an RTSP start line: ${JSON.stringify(first.slice(0, 60))}`);
  }
}

export const RTSP_REASONS: Record<number, string> = {
  200: 'OK', 201: 'Created', 250: 'Low on Storage Space', 300: 'Multiple Choices', 301: 'Moved Permanently',
  302: 'Moved Temporarily', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found',
  405: 'Method Not Allowed', 406: 'Not Acceptable', 408: 'Request Timeout', 413: 'Request Entity Too Large',
  414: 'Request-URI Too Large', 415: 'Unsupported Media Type', 451: 'Parameter Not Understood',
  453: 'Not Enough Bandwidth', 454: 'Session Not Found', 455: 'Method Not Valid in This State',
  457: 'Invalid Range', 459: 'Aggregate Operation Not Allowed', 460: 'Only Aggregate Operation Allowed',
  461: 'Unsupported Transport', 500: 'Internal Server Error', 501: 'Not Implemented', 503: 'Service Unavailable',
  505: 'RTSP Version Not Supported', 551: 'Option not supported',
};

function serialize(start: string, headers: RtspHeaders, body: Uint8Array | string | undefined): Uint8Array {
  const b = typeof body === 'string' ? textEncoder.encode(body) : body ?? EMPTY;
  let head = start + '\r\n';
  let hasLength = false;
  for (const [k, v] of headers.list) {
    if (k.toLowerCase() === 'content-length') { hasLength = true; head += `${k}: ${b.length}\r\n`; continue; }
    head += `${k}: ${v}\r\n`;
  }
  if (b.length && !hasLength) head += `Content-Length: ${b.length}\r\n`;
  head += '\r\n';
  const h = textEncoder.encode(head);
  if (!b.length) return h;
  const out = new Uint8Array(h.length + b.length);
  out.set(h);
  out.set(b, h.length);
  return out;
}

export function serializeRequest(r: { method: string; uri: string; headers: RtspHeaders; body?: Uint8Array | string; version?: string }): Uint8Array {
  if (!/^[A-Z_][A-Z0-9_-]*$/.test(r.method) || /[\s]/.test(r.uri)) throw new FormatError('invalid RTSP method or URI');
  return serialize(`${r.method} ${r.uri} ${r.version ?? 'RTSP/1.0'}`, r.headers, r.body);
}

export function serializeResponse(r: { status: number; reason?: string; headers: RtspHeaders; body?: Uint8Array | string; version?: string }): Uint8Array {
  const reason = (r.reason ?? RTSP_REASONS[r.status] ?? 'Unknown').replace(/[\r\n]/g, ' ');
  return serialize(`${r.version ?? 'RTSP/1.0'} ${r.status} ${reason}`, r.headers, r.body);
}

/** The 4-byte "$" header of an interleaved frame (send it and the data as one vectored write). */
export function interleavedHeader(channel: number, length: number): Uint8Array {
  if (length > 0xffff) throw new FormatError(`interleaved frame of ${length} bytes exceeds 65535`);
  return Uint8Array.of(0x24, channel & 0xff, length >> 8, length & 0xff);
}
