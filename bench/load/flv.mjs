// Incremental FLV readers for the HTTP-FLV and WS-FLV players, over raw TCP sockets.
//
// FlvReader walks the FLV byte stream (9-byte file header, then [PreviousTagSize][tag]...) one buffer
// at a time: tag headers go to an 11-byte scratch, the first PREFIX bytes of each video tag body to a
// fixed per-reader buffer, the rest is only counted. HttpBody undoes chunked transfer coding; WsFrames
// undoes WebSocket framing. None of them allocate per frame.

import { PREFIX } from './rtmp.mjs';

export class FlvReader {
  /** onTag(type, timestamp, prefix, prefixLen, size) for every tag (8 audio, 9 video, 18 script). */
  constructor(onTag) {
    this.onTag = onTag;
    this.skip = 13; // file header (9) + PreviousTagSize0 (4)
    this.hdr = new Uint8Array(11); this.hdrLen = 0;
    this.prefix = new Uint8Array(PREFIX);
    this.inBody = false; this.type = 0; this.size = 0; this.ts = 0; this.pos = 0;
  }

  push(buf, start, end) {
    let i = start;
    while (i < end) {
      if (this.skip > 0) { const k = Math.min(this.skip, end - i); this.skip -= k; i += k; continue; }
      if (!this.inBody) {
        this.hdr[this.hdrLen++] = buf[i++];
        if (this.hdrLen < 11) continue;
        const h = this.hdr;
        this.hdrLen = 0;
        this.type = h[0] & 0x1f;
        this.size = (h[1] << 16) | (h[2] << 8) | h[3];
        this.ts = (((h[7] << 24) >>> 0) | (h[4] << 16) | (h[5] << 8) | h[6]) >>> 0;
        this.pos = 0; this.inBody = true;
        if (this.size > 64 * 1024 * 1024) throw new Error(`flv: tag of ${this.size} bytes`);
        if (this.size === 0) this.endTag();
        continue;
      }
      const take = Math.min(this.size - this.pos, end - i);
      if (this.pos < PREFIX) this.prefix.set(buf.subarray(i, i + Math.min(take, PREFIX - this.pos)), this.pos);
      this.pos += take; i += take;
      if (this.pos >= this.size) this.endTag();
    }
  }

  endTag() {
    this.inBody = false;
    this.skip = 4; // PreviousTagSize
    this.onTag(this.type, this.ts, this.prefix, Math.min(this.size, PREFIX), this.size);
  }
}

/** Response head parsing shared by HTTP-FLV and WS-FLV: returns [headText, bodyStart] or null. */
export function splitHead(buf) {
  const k = buf.indexOf('\r\n\r\n');
  if (k < 0) return null;
  return [buf.toString('latin1', 0, k), k + 4];
}

/** Feeds an HTTP body (identity or chunked) into `sink(buf, start, end)`. */
export class HttpBody {
  constructor(chunked, sink) {
    this.chunked = chunked; this.sink = sink;
    this.state = 0; // 0 size line, 1 data, 2 CRLF after data
    this.size = 0; this.left = 0; this.ended = false;
  }
  push(buf, start, end) {
    if (!this.chunked) { this.sink(buf, start, end); return; }
    let i = start;
    while (i < end && !this.ended) {
      if (this.state === 0) {
        const c = buf[i++];
        if (c === 0x0a) { // end of size line
          if (this.size === 0) { this.ended = true; return; }
          this.left = this.size; this.size = 0; this.state = 1;
        } else if (this.size >= 0) {
          const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 87 : c >= 0x41 && c <= 0x46 ? c - 55 : -1;
          if (d >= 0) this.size = this.size * 16 + d;
          else if (c !== 0x0d) this.size = -this.size - 1; // extensions: keep the value, stop reading digits
        } else if (c === 0x0d) { /* inside an extension */ }
        if (this.state === 0 && this.size < 0 && c === 0x0a) { /* handled above */ }
      } else if (this.state === 1) {
        const k = Math.min(this.left, end - i);
        this.sink(buf, i, i + k);
        i += k; this.left -= k;
        if (this.left === 0) { this.state = 2; this.crlf = 2; }
      } else {
        i++; if (--this.crlf === 0) this.state = 0;
      }
    }
  }
}

/**
 * WebSocket frames from a server (unmasked). Data frames (binary/text/continuation) go to `sink`;
 * pings are answered with a masked pong through `reply(buf)`.
 */
export class WsFrames {
  constructor(sink, reply) {
    this.sink = sink; this.reply = reply;
    this.hdr = new Uint8Array(14); this.hdrLen = 0; this.need = 2;
    this.left = 0; this.opcode = 0; this.inPayload = false;
    this.ctl = null; this.ctlPos = 0;
  }
  push(buf, start, end) {
    let i = start;
    while (i < end) {
      if (!this.inPayload) {
        this.hdr[this.hdrLen++] = buf[i++];
        if (this.hdrLen === 2) {
          const l = this.hdr[1] & 0x7f;
          this.need = 2 + (l === 126 ? 2 : l === 127 ? 8 : 0) + (this.hdr[1] & 0x80 ? 4 : 0);
        }
        if (this.hdrLen < this.need) continue;
        const h = this.hdr;
        let len = h[1] & 0x7f;
        if (len === 126) len = (h[2] << 8) | h[3];
        else if (len === 127) len = (h[6] * 2 ** 24 + ((h[7] << 16) | (h[8] << 8) | h[9])) + h[5] * 2 ** 32;
        this.opcode = h[0] & 0x0f;
        this.left = len; this.hdrLen = 0; this.need = 2;
        if (this.opcode >= 8) { this.ctl = Buffer.alloc(len); this.ctlPos = 0; }
        this.inPayload = len > 0;
        if (len === 0) this.endFrame();
        continue;
      }
      const k = Math.min(this.left, end - i);
      if (this.opcode >= 8) { buf.copy(this.ctl, this.ctlPos, i, i + k); this.ctlPos += k; }
      else this.sink(buf, i, i + k);
      i += k; this.left -= k;
      if (this.left === 0) { this.inPayload = false; this.endFrame(); }
    }
  }
  endFrame() {
    if (this.opcode === 9) this.reply(wsFrame(10, this.ctl ?? Buffer.alloc(0)));
    else if (this.opcode === 8) this.reply(wsFrame(8, Buffer.alloc(0)));
    this.ctl = null;
  }
}

/** A masked client frame (RFC 6455 requires clients to mask). Control frames only here. */
export function wsFrame(opcode, payload) {
  const out = Buffer.alloc(6 + payload.length);
  out[0] = 0x80 | opcode; out[1] = 0x80 | payload.length;
  const mask = [0x12, 0x34, 0x56, 0x78];
  out.set(mask, 2);
  for (let i = 0; i < payload.length; i++) out[6 + i] = payload[i] ^ mask[i & 3];
  return out;
}
