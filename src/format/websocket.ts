// WebSocket (RFC 6455) for the server side of a connection the project frames itself: an incremental
// frame parser for what clients send, builders for what the server sends, and the handshake checks.
//
// Everything the parser reads comes from the network and is hostile. It throws WsProtocolError (a
// FormatError) carrying the close code to answer with, never anything else; its memory is bounded by
// maxMessageBytes (a frame's length is checked against it from the header, before any of its payload is
// buffered) plus a 14-byte header scratch. No extensions are negotiated, so every RSV bit must be 0.
//
// Copies: a frame whose payload lies inside one pushed chunk is copied once (and unmasked in the copy);
// a payload spread over several chunks is copied once into a buffer of its announced length. The
// caller's chunk is never modified. The fragments of a message are copied once more, into one buffer
// that doubles as needed (so a flood of tiny fragments is bounded by maxMessageBytes too). Text is
// decoded (strict UTF-8, a BOM kept) once the message is complete.

import { FormatError, textEncoder } from './bytes.ts';
import { framingHead } from '../net/framing.ts';

export type WsEvent =
  | { type: 'message'; binary: boolean; data: Uint8Array | string }
  | { type: 'ping'; data: Uint8Array }
  | { type: 'pong'; data: Uint8Array }
  | { type: 'close'; code: number; reason: string };

/** FormatError carrying the close code the server should send (1002 protocol error, 1007 bad UTF-8, 1009 too big). */
export class WsProtocolError extends FormatError {
  readonly closeCode: number;
  constructor(message: string, closeCode: number) {
    super(message);
    this.name = 'WsProtocolError';
    this.closeCode = closeCode;
  }
}

export interface WsParserLimits {
  /** Largest whole (reassembled) data message, in bytes. Default 1 MiB. Control frames are at most 125. */
  maxMessageBytes?: number;
  /** Client frames must be masked (RFC 6455 §5.1). Default true; false to parse server->client frames. */
  requireMask?: boolean;
}

export const WS_DEFAULT_MAX_MESSAGE_BYTES = 1 << 20;

/** Close codes a peer may put in a close frame (RFC 6455 §7.4, with 1012-1014 from the IANA registry). */
export function isValidCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

const OP_CONT = 0, OP_TEXT = 1, OP_BINARY = 2, OP_CLOSE = 8, OP_PING = 9, OP_PONG = 10;

const protocolError = (message: string) => new WsProtocolError(message, 1002);

/** Strict UTF-8 (invalid -> TypeError) that keeps a leading BOM as part of the text. */
const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export class WsFrameParser {
  private readonly maxMessageBytes: number;
  private readonly requireMask: boolean;

  // Header being read: up to 2 + 8 (length) + 4 (mask) bytes.
  private readonly hdr = new Uint8Array(14);
  private hdrLen = 0;
  private hdrNeed = 2;

  // Frame whose payload is being read (inPayload), after its header.
  private inPayload = false;
  private fin = false;
  private opcode = 0;
  private masked = false;
  private m0 = 0; private m1 = 0; private m2 = 0; private m3 = 0;
  private payloadLen = 0;
  private payload: Uint8Array | null = null;
  private payloadGot = 0;

  // Data message being reassembled (msgOpcode 0: none open).
  private msgOpcode = 0;
  /** Bytes of the open message so far, in msg[0, msgLen); msg is a frame's payload until msgOwned. */
  private msg: Uint8Array | null = null;
  private msgOwned = false;
  private msgLen = 0;

  private failed: WsProtocolError | null = null;
  private closed = false;

  constructor(limits: WsParserLimits = {}) {
    const max = limits.maxMessageBytes ?? WS_DEFAULT_MAX_MESSAGE_BYTES;
    this.maxMessageBytes = max >= 0 ? max : 0; // NaN or negative: only empty messages
    this.requireMask = limits.requireMask ?? true;
  }

  /** Bytes held that no event has been returned for yet (partial header, frame payload, open message). */
  get buffered(): number {
    return this.hdrLen + this.payloadGot + this.msgLen;
  }

  /**
   * Feed bytes, get the events they complete (in order). Throws WsProtocolError on: RSV bits set, an
   * unknown opcode, an unmasked frame when requireMask, a control frame with a payload over 125 bytes or
   * not FIN, a continuation without a started message, a new data frame while a fragmented message is
   * open, a 64-bit length with the top bit set (all 1002); a message over maxMessageBytes (1009, judged
   * from the frame header before its payload is buffered); a close frame with a 1-byte payload or an
   * invalid code (1002); text or a close reason that is not UTF-8 (1007). The events the same chunk
   * completed before the error are not returned. After a throw, every later push throws the same error;
   * after a 'close' event, further bytes are ignored (return []).
   */
  push(chunk: Uint8Array): WsEvent[] {
    if (this.failed) throw this.failed;
    if (this.closed) return [];
    const events: WsEvent[] = [];
    try {
      this.run(chunk, events);
    } catch (e) {
      if (e instanceof WsProtocolError) {
        this.failed = e;
        this.release();
      }
      throw e;
    }
    return events;
  }

  private run(chunk: Uint8Array, events: WsEvent[]): void {
    const n = chunk.length;
    let p = 0;
    // A zero-length frame completes with its header, so the loop runs once more at the chunk's end for it.
    while (!this.closed) {
      if (!this.inPayload) {
        const hdr = this.hdr;
        while (this.hdrLen < this.hdrNeed && p < n) hdr[this.hdrLen++] = chunk[p++]!;
        if (this.hdrLen < this.hdrNeed) return;
        if (this.hdrNeed === 2) {
          this.hdrNeed = this.checkFirstBytes(hdr[0]!, hdr[1]!);
          if (this.hdrNeed > 2) continue;
        }
        this.beginPayload();
      }
      const len = this.payloadLen;
      if (this.payloadGot === 0 && n - p >= len) {
        // Whole payload in this chunk: one copy, unmasked on the way. (Not chunk.slice(): on a Node
        // Buffer that is a view, and the result would be a Buffer.)
        const data = new Uint8Array(len);
        const src = chunk.subarray(p, p + len);
        if (this.masked) this.unmaskInto(src, data, 0);
        else data.set(src);
        p += len;
        this.endFrame(data, events);
      } else {
        if (p >= n) return;
        if (!this.payload) {
          try {
            this.payload = new Uint8Array(len);
          } catch {
            throw new WsProtocolError(`cannot buffer a ${len}-byte frame`, 1009);
          }
        }
        const take = Math.min(len - this.payloadGot, n - p);
        if (this.masked) this.unmaskInto(chunk.subarray(p, p + take), this.payload, this.payloadGot);
        else this.payload.set(chunk.subarray(p, p + take), this.payloadGot);
        this.payloadGot += take;
        p += take;
        if (this.payloadGot < len) return;
        const data = this.payload;
        this.payload = null;
        this.payloadGot = 0;
        this.endFrame(data, events);
      }
    }
  }

  /** Checks of the first two header bytes; returns the header's full length. */
  private checkFirstBytes(b0: number, b1: number): number {
    if (b0 & 0x70) throw protocolError('RSV bits set without a negotiated extension');
    const opcode = b0 & 0x0f;
    const fin = (b0 & 0x80) !== 0;
    const masked = (b1 & 0x80) !== 0;
    const len7 = b1 & 0x7f;
    if (opcode >= 8) {
      if (opcode > OP_PONG) throw protocolError(`unknown opcode ${opcode}`);
      if (!fin) throw protocolError('fragmented control frame');
      if (len7 > 125) throw protocolError('control frame payload over 125 bytes');
    } else if (opcode === OP_CONT) {
      if (!this.msgOpcode) throw protocolError('continuation frame without a started message');
    } else if (opcode === OP_TEXT || opcode === OP_BINARY) {
      if (this.msgOpcode) throw protocolError('new data frame while a fragmented message is open');
    } else {
      throw protocolError(`unknown opcode ${opcode}`);
    }
    if (!masked && this.requireMask) throw protocolError('unmasked client frame');
    return 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (masked ? 4 : 0);
  }

  /** The header is complete: read the length and mask, check the size limit, start the payload. */
  private beginPayload(): void {
    const h = this.hdr;
    const b0 = h[0]!, b1 = h[1]!;
    this.fin = (b0 & 0x80) !== 0;
    this.opcode = b0 & 0x0f;
    this.masked = (b1 & 0x80) !== 0;
    let len = b1 & 0x7f;
    let o = 2;
    if (len === 126) {
      len = (h[2]! << 8) | h[3]!;
      o = 4;
    } else if (len === 127) {
      const hi = ((h[2]! << 24) | (h[3]! << 16) | (h[4]! << 8) | h[5]!) >>> 0;
      if (hi & 0x80000000) throw protocolError('64-bit payload length with the most significant bit set');
      const lo = ((h[6]! << 24) | (h[7]! << 16) | (h[8]! << 8) | h[9]!) >>> 0;
      len = hi * 4294967296 + lo; // inexact past 2^53, but then far over any limit
      o = 10;
    }
    if (this.opcode < 8 && this.msgLen + len > this.maxMessageBytes) {
      throw new WsProtocolError(`message of over ${this.maxMessageBytes} bytes`, 1009);
    }
    if (this.masked) {
      this.m0 = h[o]!; this.m1 = h[o + 1]!; this.m2 = h[o + 2]!; this.m3 = h[o + 3]!;
    }
    this.payloadLen = len;
    this.payloadGot = 0;
    this.inPayload = true;
  }

  /** dst[at + i] = src[i] ^ mask[(at + i) % 4] for every byte of src. */
  private unmaskInto(src: Uint8Array, dst: Uint8Array, at: number): void {
    const count = src.length;
    // The mask rotated so that k0 applies to src[0]; then four bytes at a time.
    let k0 = this.m0, k1 = this.m1, k2 = this.m2, k3 = this.m3;
    for (let r = at & 3; r > 0; r--) { const t = k0; k0 = k1; k1 = k2; k2 = k3; k3 = t; }
    let i = 0;
    for (; i + 4 <= count; i += 4) {
      dst[at + i] = src[i]! ^ k0;
      dst[at + i + 1] = src[i + 1]! ^ k1;
      dst[at + i + 2] = src[i + 2]! ^ k2;
      dst[at + i + 3] = src[i + 3]! ^ k3;
    }
    if (i < count) dst[at + i] = src[i]! ^ k0;
    if (i + 1 < count) dst[at + i + 1] = src[i + 1]! ^ k1;
    if (i + 2 < count) dst[at + i + 2] = src[i + 2]! ^ k2;
  }

  /** A frame's payload is complete (unmasked): emit what it finishes, reset for the next header. */
  private endFrame(data: Uint8Array, events: WsEvent[]): void {
    this.inPayload = false;
    this.hdrLen = 0;
    this.hdrNeed = 2;
    const op = this.opcode;
    if (op === OP_PING) { events.push({ type: 'ping', data }); return; }
    if (op === OP_PONG) { events.push({ type: 'pong', data }); return; }
    if (op === OP_CLOSE) { events.push(parseClose(data)); this.closed = true; this.release(); return; }
    if (op !== OP_CONT) this.msgOpcode = op;
    let whole = data;
    if (op === OP_CONT || !this.fin) {
      this.append(data);
      if (!this.fin) return;
      whole = this.msg ? this.msg.subarray(0, this.msgLen) : data;
    }
    const binary = this.msgOpcode === OP_BINARY;
    this.endMessage();
    if (binary) { events.push({ type: 'message', binary, data: whole }); return; }
    let text: string;
    try {
      text = utf8Strict.decode(whole);
    } catch {
      throw new WsProtocolError('text message is not valid UTF-8', 1007);
    }
    events.push({ type: 'message', binary, data: text });
  }

  /**
   * Add a fragment to the open message. The first one is kept as it is; later ones go into one buffer
   * that doubles as needed (up to maxMessageBytes), so many tiny fragments cost no more than their bytes.
   */
  private append(data: Uint8Array): void {
    const len = data.length;
    if (len === 0) return;
    const need = this.msgLen + len;
    if (!this.msg) {
      this.msg = data;
    } else {
      if (need > this.msg.length || !this.msgOwned) {
        let cap = this.msgOwned ? this.msg.length * 2 : need * 2;
        if (cap < need) cap = need;
        if (cap > this.maxMessageBytes) cap = Math.max(need, this.maxMessageBytes);
        let next: Uint8Array;
        try {
          next = new Uint8Array(cap);
        } catch {
          throw new WsProtocolError(`cannot buffer a ${need}-byte message`, 1009);
        }
        next.set(this.msg.subarray(0, this.msgLen));
        this.msg = next;
        this.msgOwned = true;
      }
      this.msg.set(data, this.msgLen);
    }
    this.msgLen = need;
  }

  private endMessage(): void {
    this.msgOpcode = 0;
    this.msg = null;
    this.msgOwned = false;
    this.msgLen = 0;
  }

  /** Drop everything held (after a close or an error, no more bytes are read). */
  private release(): void {
    this.endMessage();
    this.payload = null;
    this.payloadGot = 0;
    this.hdrLen = 0;
  }
}

function parseClose(data: Uint8Array): WsEvent {
  if (data.length === 0) return { type: 'close', code: 1005, reason: '' };
  if (data.length === 1) throw protocolError('close frame with a 1-byte payload');
  const code = (data[0]! << 8) | data[1]!;
  if (!isValidCloseCode(code)) throw protocolError(`invalid close code ${code}`);
  let reason: string;
  try {
    reason = utf8Strict.decode(data.subarray(2));
  } catch {
    throw new WsProtocolError('close reason is not valid UTF-8', 1007);
  }
  return { type: 'close', code, reason };
}

/** One complete unmasked server->client frame: opcode 1 text (string encoded UTF-8), 2 binary, 8 close, 9 ping, 10 pong. Control payload > 125 bytes -> FormatError. */
export function wsFrame(opcode: 1 | 2 | 8 | 9 | 10, payload: Uint8Array | string): Uint8Array {
  if (opcode !== OP_TEXT && opcode !== OP_BINARY && opcode !== OP_CLOSE && opcode !== OP_PING && opcode !== OP_PONG) {
    throw new FormatError(`wsFrame: opcode ${opcode} is not one the server sends`);
  }
  const body = typeof payload === 'string' ? textEncoder.encode(payload) : payload;
  if (opcode >= 8 && body.length > 125) throw new FormatError(`wsFrame: control frame payload of ${body.length} bytes (max 125)`);
  // framingHead('ws') is the header of a FIN binary frame with the length encoded; only the opcode differs.
  const head = framingHead('ws', body.length);
  head[0] = 0x80 | opcode;
  const out = new Uint8Array(head.length + body.length);
  out.set(head, 0);
  out.set(body, head.length);
  return out;
}

/** A close frame: code (default 1000) and reason (truncated to fit 123 bytes of UTF-8 without splitting a character). code 1005 -> empty payload. Other codes a peer would reject (RFC 6455 §7.4) -> FormatError. */
export function wsCloseFrame(code = 1000, reason = ''): Uint8Array {
  if (code === 1005) return wsFrame(OP_CLOSE, new Uint8Array(0));
  if (!isValidCloseCode(code)) throw new FormatError(`wsCloseFrame: ${code} is not a close code to send`);
  let r = textEncoder.encode(reason);
  if (r.length > 123) {
    let cut = 123;
    while (cut > 0 && (r[cut]! & 0xc0) === 0x80) cut--; // r[cut] is the first byte left out: back to a character start
    r = r.subarray(0, cut);
  }
  const body = new Uint8Array(2 + r.length);
  body[0] = code >>> 8;
  body[1] = code & 0xff;
  body.set(r, 2);
  return wsFrame(OP_CLOSE, body);
}

const KEY_RE = /^[A-Za-z0-9+/]{22}==$/;

/** True if `key` is a valid Sec-WebSocket-Key: base64 of exactly 16 bytes (24 chars, ending "=="). */
export function isValidWsKey(key: string): boolean {
  return KEY_RE.test(key);
}

/** Whether a comma-separated header list holds `token` (case-insensitive, whitespace around items ignored). */
function hasToken(values: readonly string[], token: string): boolean {
  for (const v of values) {
    for (const item of v.split(',')) if (item.trim().toLowerCase() === token) return true;
  }
  return false;
}

/** The handshake check of RFC 6455 §4.2.1 for a GET request's headers (names lower-case): returns null when it is a valid upgrade request, else a short reason string (for a 400). */
export function checkUpgradeRequest(method: string, headers: readonly (readonly [string, string])[]): string | null {
  if (method !== 'GET') return `method ${method} is not GET`;
  const upgrade: string[] = [], connection: string[] = [], version: string[] = [], key: string[] = [];
  for (const [name, value] of headers) {
    switch (name.toLowerCase()) {
      case 'upgrade': upgrade.push(value); break;
      case 'connection': connection.push(value); break;
      case 'sec-websocket-version': version.push(value.trim()); break;
      case 'sec-websocket-key': key.push(value.trim()); break;
    }
  }
  if (!hasToken(upgrade, 'websocket')) return 'Upgrade header does not name websocket';
  if (!hasToken(connection, 'upgrade')) return 'Connection header does not name upgrade';
  if (version.length !== 1 || version[0] !== '13') return 'Sec-WebSocket-Version is not 13';
  if (key.length !== 1 || !isValidWsKey(key[0]!)) return 'invalid Sec-WebSocket-Key';
  return null;
}
