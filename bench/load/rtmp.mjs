// A small RTMP client for the bench: plain (unsigned) handshake, chunk writer, incremental chunk
// reader, and the connect/createStream/publish/play command dance. Independent of m7s code, so every
// server is driven by the same client.
//
// The reader never concatenates socket buffers: it walks each buffer once, copying only chunk headers
// (into a fixed 18-byte scratch) and, for media messages, the first PREFIX bytes of the body (enough to
// find the SEI). Control and command messages are collected whole (they are small and rare).

import { decodeAmf0, encodeAmf0 } from './amf0.mjs';
import { connect } from './conn.mjs';

/** How much of each video message body a player keeps (the SEI sits at the front). */
export const PREFIX = 512;
const MAX_CONTROL = 1 << 20;

/** Parses rtmp://host[:port]/app/name into its parts. */
export function parseRtmpUrl(url) {
  const u = new URL(url);
  const parts = u.pathname.slice(1).split('/');
  const app = parts.shift();
  return { host: u.hostname, port: Number(u.port || 1935), app, name: parts.join('/'), tcUrl: `rtmp://${u.host}/${app}` };
}

/** Writes RTMP messages as chunks (fmt 0 first chunk, fmt 3 continuations). */
export class ChunkWriter {
  constructor(socket) { this.socket = socket; this.chunkSize = 128; }
  /** Queues one message; returns socket.write's backpressure flag. */
  send(csid, type, streamId, timestamp, body) {
    const n = body.length;
    const ext = timestamp >= 0xffffff;
    const chunks = Math.max(1, Math.ceil(n / this.chunkSize));
    const hdr = 12 + (ext ? 4 : 0);
    const cont = 1 + (ext ? 4 : 0);
    const out = Buffer.allocUnsafe(hdr + (chunks - 1) * cont + n);
    let p = 0;
    out[p++] = csid; // fmt 0, csid < 64
    out.writeUIntBE(ext ? 0xffffff : timestamp, p, 3); p += 3;
    out.writeUIntBE(n, p, 3); p += 3;
    out[p++] = type;
    out.writeUInt32LE(streamId, p); p += 4;
    if (ext) { out.writeUInt32BE(timestamp >>> 0, p); p += 4; }
    for (let off = 0; off < n; off += this.chunkSize) {
      if (off > 0) {
        out[p++] = 0xc0 | csid;
        if (ext) { out.writeUInt32BE(timestamp >>> 0, p); p += 4; }
      }
      const len = Math.min(this.chunkSize, n - off);
      out.set(body.subarray(off, off + len), p); p += len;
    }
    return this.socket.write(out);
  }
  setChunkSize(size) {
    const b = Buffer.alloc(4); b.writeUInt32BE(size);
    this.send(2, 1, 0, 0, b);
    this.chunkSize = size;
  }
  command(csid, streamId, ...values) { return this.send(csid, 20, streamId, 0, encodeAmf0(...values)); }
}

/**
 * Incremental chunk-stream reader. Callbacks:
 *   onMedia(type, timestamp, prefix, prefixLen, totalLen)  audio (8), video (9), data (18) messages
 *   onControl(type, body)                                 everything else, body collected whole
 */
export class ChunkReader {
  constructor(onMedia, onControl) {
    this.onMedia = onMedia; this.onControl = onControl;
    this.chunkSize = 128;
    this.streams = new Map(); // csid -> per-chunk-stream state (allocated once per csid)
    this.hdr = new Uint8Array(18); this.hdrLen = 0; this.hdrNeed = 1;
    this.cur = null; // chunk stream whose chunk body is being read
    this.chunkLeft = 0; // body bytes left in the current chunk
  }

  stream(csid) {
    let s = this.streams.get(csid);
    if (!s) {
      s = { ts: 0, delta: 0, len: 0, type: 0, sid: 0, extended: false, pos: 0, prefix: new Uint8Array(PREFIX), ctl: null };
      this.streams.set(csid, s);
    }
    return s;
  }

  /** Header length once its first byte (and, for 2/3-byte basic headers, more) is known. */
  headerNeed() {
    const h = this.hdr;
    const fmt = h[0] >> 6, low = h[0] & 0x3f;
    const basic = low === 0 ? 2 : low === 1 ? 3 : 1;
    const msg = fmt === 0 ? 11 : fmt === 1 ? 7 : fmt === 2 ? 3 : 0;
    let need = basic + msg;
    if (this.hdrLen < need) return need;
    // extended timestamp?
    const csid = low === 0 ? 64 + h[1] : low === 1 ? 64 + h[1] + h[2] * 256 : low;
    if (fmt < 3) {
      const t = (h[basic] << 16) | (h[basic + 1] << 8) | h[basic + 2];
      if (t === 0xffffff) need += 4;
    } else if (this.stream(csid).extended) need += 4;
    return need;
  }

  /** Called with a complete header in this.hdr. */
  takeHeader() {
    const h = this.hdr;
    const fmt = h[0] >> 6, low = h[0] & 0x3f;
    const basic = low === 0 ? 2 : low === 1 ? 3 : 1;
    const csid = low === 0 ? 64 + h[1] : low === 1 ? 64 + h[1] + h[2] * 256 : low;
    const s = this.stream(csid);
    let p = basic;
    if (fmt < 3) {
      let t = (h[p] << 16) | (h[p + 1] << 8) | h[p + 2]; p += 3;
      if (fmt <= 1) { s.len = (h[p] << 16) | (h[p + 1] << 8) | h[p + 2]; s.type = h[p + 3]; p += 4; }
      if (fmt === 0) { s.sid = h[p] | (h[p + 1] << 8) | (h[p + 2] << 16) | (h[p + 3] << 24); p += 4; }
      s.extended = t === 0xffffff;
      if (s.extended) { t = ((h[p] << 24) >>> 0) + (h[p + 1] << 16) + (h[p + 2] << 8) + h[p + 3]; }
      if (fmt === 0) { s.ts = t; s.delta = 0; } else { s.delta = t; if (s.pos === 0) s.ts += t; }
    } else if (s.pos === 0) {
      s.ts += s.delta; // fmt 3 starting a new message repeats the previous delta
    }
    if (s.pos === 0 && s.type !== 8 && s.type !== 9 && s.type !== 18) {
      if (s.len > MAX_CONTROL) throw new Error(`rtmp: control message of ${s.len} bytes`);
      s.ctl = Buffer.allocUnsafe(s.len);
    }
    this.cur = s;
    this.chunkLeft = Math.min(this.chunkSize, s.len - s.pos);
    if (s.len === 0) this.finish(s);
  }

  finish(s) {
    const len = s.len;
    s.pos = 0;
    this.cur = null;
    if (s.type === 8 || s.type === 9 || s.type === 18) this.onMedia(s.type, s.ts, s.prefix, Math.min(len, PREFIX), len);
    else {
      const body = s.ctl; s.ctl = null;
      if (s.type === 1) this.chunkSize = Math.max(1, body.readUInt32BE(0) & 0x7fffffff);
      this.onControl(s.type, body);
    }
  }

  push(buf) {
    let i = 0;
    const n = buf.length;
    while (i < n) {
      if (this.cur === null) {
        // header bytes, one at a time until the header is complete (~12 bytes per chunk)
        this.hdr[this.hdrLen++] = buf[i++];
        this.hdrNeed = this.headerNeed();
        if (this.hdrLen >= this.hdrNeed) { this.hdrLen = 0; this.takeHeader(); }
        continue;
      }
      const s = this.cur;
      const take = Math.min(this.chunkLeft, n - i);
      if (s.ctl) buf.copy(s.ctl, s.pos, i, i + take);
      else if (s.pos < PREFIX) s.prefix.set(buf.subarray(i, i + Math.min(take, PREFIX - s.pos)), s.pos);
      s.pos += take; i += take; this.chunkLeft -= take;
      if (s.pos >= s.len) this.finish(s);
      else if (this.chunkLeft === 0) this.cur = null;
    }
  }
}

/** Plain handshake: C0+C1, wait for S0+S1+S2, send C2 (echo of S1). Resolves with leftover bytes.
 * `socket` comes from conn.mjs's connect() (reads arrive through socket.ondata). */
export function handshake(socket) {
  return new Promise((resolve, reject) => {
    const c1 = Buffer.alloc(1537);
    c1[0] = 3;
    for (let i = 9; i < 1537; i++) c1[i] = (i * 7919) & 0xff; // arbitrary "random" bytes
    socket.write(c1);
    let got = Buffer.alloc(0);
    socket.ondata = (d) => {
      got = Buffer.concat([got, d]);
      if (got.length < 3073) return;
      socket.ondata = null; socket.off('error', reject);
      socket.write(got.subarray(1, 1537)); // C2 = S1
      resolve(got.subarray(3073));
    };
    socket.once('error', reject);
  });
}

/**
 * Connects, handshakes and runs the command sequence for `mode` 'publish' or 'play'.
 * Returns { socket, writer, reader, streamId }. Media flows through `onMedia` for players.
 * `t0` (performance.now()) is when the caller started connecting.
 */
export function rtmpSession(url, mode, { onMedia = () => {}, onError = () => {}, timeoutMs = 10000 } = {}) {
  const { host, port, app, name, tcUrl } = parseRtmpUrl(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    socket.setNoDelay(true);
    const writer = new ChunkWriter(socket);
    let done = false;
    const fail = (e) => { if (!done) { done = true; clearTimeout(timer); socket.destroy(); reject(e); } else onError(e); };
    const timer = setTimeout(() => fail(new Error(`rtmp ${mode}: timeout`)), timeoutMs);
    socket.once('error', fail);
    socket.once('close', () => fail(new Error(`rtmp ${mode}: closed`)));
    let streamId = 0, received = 0, acked = 0, ackWindow = 0;
    const reader = new ChunkReader(onMedia, (type, body) => {
      if (type === 5) ackWindow = body.readUInt32BE(0);
      else if (type === 4 && body.readUInt16BE(0) === 6) { // ping request -> ping response
        const r = Buffer.alloc(6); r.writeUInt16BE(7); body.copy(r, 2, 2, 6); writer.send(2, 4, 0, 0, r);
      } else if (type === 20) {
        const [cmd, tid, , info] = decodeAmf0(body);
        if (cmd === '_result' && tid === 1) {
          if (mode === 'publish') {
            writer.command(3, 0, 'releaseStream', 2, null, name);
            writer.command(3, 0, 'FCPublish', 3, null, name);
          }
          writer.command(3, 0, 'createStream', 4, null);
        } else if (cmd === '_result' && tid === 4) {
          streamId = info;
          if (mode === 'publish') writer.command(4, streamId, 'publish', 5, null, name, 'live');
          else {
            const b = Buffer.alloc(10); b.writeUInt16BE(3); b.writeUInt32BE(streamId, 2); b.writeUInt32BE(1000, 6);
            writer.command(4, streamId, 'play', 5, null, name, -2000);
            writer.send(2, 4, 0, 0, b); // set buffer length
          }
        } else if (cmd === 'onStatus') {
          const code = info?.code ?? '';
          if (/Publish\.Start|Play\.Start/.test(code) && !done) {
            done = true; clearTimeout(timer);
            resolve({ socket, writer, reader, streamId });
          } else if (/Failed|BadName|StreamNotFound|Rejected/.test(code)) fail(new Error(`rtmp ${mode}: ${code}`));
        } else if (cmd === '_error') fail(new Error(`rtmp ${mode}: _error ${JSON.stringify(info)}`));
      }
    });
    const feed = (d) => {
      received += d.length;
      if (ackWindow && received - acked >= ackWindow / 2) { // acknowledgement, as servers expect
        acked = received;
        const b = Buffer.alloc(4); b.writeUInt32BE(received >>> 0); writer.send(2, 3, 0, 0, b);
      }
      try { reader.push(d); } catch (e) { fail(e); }
    };
    socket.once('connect', async () => {
      let rest;
      try { rest = await handshake(socket); } catch (e) { fail(e); return; }
      socket.ondata = feed;
      writer.setChunkSize(mode === 'publish' ? 60000 : 4096);
      writer.command(3, 0, 'connect', 1, {
        app, flashVer: 'FMLE/3.0 (compatible; m7s-bench)', tcUrl, type: 'nonprivate',
        fpad: false, capabilities: 15, audioCodecs: 0x0fff, videoCodecs: 0xff, videoFunction: 1,
      });
      if (rest.length) feed(rest);
    });
  });
}
