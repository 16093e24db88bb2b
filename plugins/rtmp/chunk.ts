// RTMP chunk streams (RTMP spec §5.3): messages are cut into chunks of at most `chunkSize` payload bytes,
// each chunk prefixed by a basic header (fmt + chunk stream id) and a message header whose size depends
// on fmt:
//   fmt 0 (11 bytes): timestamp, length, type id, message stream id (little-endian)  — a new message
//   fmt 1 (7 bytes):  timestamp delta, length, type id                               — same stream id
//   fmt 2 (3 bytes):  timestamp delta                                                 — same length/type
//   fmt 3 (0 bytes):  a continuation chunk, or a new message identical in shape to the previous one
// A 24-bit timestamp field of 0xFFFFFF means a 32-bit extended timestamp follows the header; chunks of
// fmt 3 repeat it when the header they continue had one.
//
// ChunkReader is a streaming parser: it is fed arbitrary slices of the byte stream and copies payload
// bytes straight into the message they belong to. Its memory is bounded: a header scratch of 18 bytes,
// and partially received messages whose buffers grow only as bytes arrive (a peer that announces a
// 16 MiB message and sends 1 byte costs 1 KiB, not 16 MiB), limited in size and in number.

import { FormatError } from '../../src/format/bytes.ts';

/** Message type ids. */
export const MSG = {
  SET_CHUNK_SIZE: 1, ABORT: 2, ACK: 3, USER_CONTROL: 4, WINDOW_ACK_SIZE: 5, SET_PEER_BANDWIDTH: 6,
  AUDIO: 8, VIDEO: 9, DATA_AMF3: 15, SHARED_OBJECT_AMF3: 16, COMMAND_AMF3: 17, DATA_AMF0: 18,
  SHARED_OBJECT_AMF0: 19, COMMAND_AMF0: 20, AGGREGATE: 22,
} as const;

/** User control event types (§7.1.7). */
export const UC = { STREAM_BEGIN: 0, STREAM_EOF: 1, STREAM_DRY: 2, SET_BUFFER_LENGTH: 3, STREAM_IS_RECORDED: 4, PING_REQUEST: 6, PING_RESPONSE: 7 } as const;

/** A complete message. */
export interface RtmpMessage {
  /** Chunk stream it arrived on. */
  csid: number;
  type: number;
  /** Message stream id. */
  streamId: number;
  /** Timestamp in ms (32-bit, wraps). */
  timestamp: number;
  payload: Uint8Array;
}

export class ChunkError extends FormatError {
  constructor(message: string) { super(message); this.name = 'ChunkError'; }
}

export interface ChunkReaderOptions {
  /** Largest message accepted [16 MiB]. */
  maxMessageSize?: number;
  /** Most chunk streams in use at once [64]. */
  maxChunkStreams?: number;
  /** Most bytes held in unfinished messages over all chunk streams [2 × maxMessageSize]. */
  maxPendingBytes?: number;
  /** A budget shared by several readers (server-wide): their unfinished messages together stay below `max`. */
  budget?: PendingBudget;
}

/** Bytes held in unfinished messages by every reader sharing it (rtmp.maxpendingbytes). */
export interface PendingBudget {
  used: number;
  max: number;
  /** Highest `used` seen (for the API). */
  peak?: number;
}

/** Per chunk stream: the last header seen and the message being assembled. */
interface CsState {
  timestamp: number;
  delta: number;
  length: number;
  type: number;
  streamId: number;
  /** The last header had an extended timestamp: fmt-3 chunks carry one too. */
  extended: boolean;
  /** Message in progress (null between messages). */
  buf: Uint8Array | null;
  filled: number;
}

/** Largest chunk size anyone could mean; bigger values are clamped (messages are bounded anyway). */
export const MAX_CHUNK_SIZE = 0x7fffffff;
const INITIAL_ALLOC = 64 * 1024;

export class ChunkReader {
  /** Chunk size the peer uses (Set Chunk Size changes it). */
  chunkSize = 128;
  /** Total bytes fed, for acknowledgements (wraps at 2^32 in the ack, not here). */
  bytesIn = 0;
  private readonly streams = new Map<number, CsState>();
  private maxMessage: number;
  private readonly maxStreams: number;
  private maxPending: number;
  private readonly budget: PendingBudget | undefined;
  private pending = 0;
  // Header scratch: a header may be split over feeds; at most 3 + 11 + 4 bytes.
  private readonly hdr = new Uint8Array(18);
  private hdrLen = 0;
  /** Current chunk: its stream and how many payload bytes remain in it (0 = expect a header). */
  private cur: CsState | null = null;
  private curCsid = 0;
  private chunkLeft = 0;
  private failed: Error | null = null;

  constructor(private readonly onMessage: (m: RtmpMessage) => void, opts: ChunkReaderOptions = {}) {
    this.maxMessage = opts.maxMessageSize ?? 16 * 1024 * 1024;
    this.maxStreams = opts.maxChunkStreams ?? 64;
    this.maxPending = opts.maxPendingBytes ?? 2 * this.maxMessage;
    this.budget = opts.budget;
  }

  /** Change the message and unfinished-bytes limits (a session raises them once a publish is under way). */
  setLimits(maxMessageSize: number, maxPendingBytes = 2 * maxMessageSize): void {
    this.maxMessage = maxMessageSize;
    this.maxPending = maxPendingBytes;
  }

  /** The largest message accepted now. */
  get maxMessageSize(): number { return this.maxMessage; }

  /** Drop every unfinished message and give its bytes back to the shared budget (connection closed). */
  release(): void {
    for (const s of this.streams.values()) { s.buf = null; s.filled = 0; }
    this.addPending(-this.pending);
    this.cur = null;
    this.chunkLeft = 0;
  }

  /** Account `delta` bytes of unfinished messages, here and in the shared budget; throws over either limit. */
  private addPending(delta: number): void {
    if (delta > 0) {
      if (this.pending + delta > this.maxPending) throw new ChunkError(`too many bytes in unfinished messages (${this.pending + delta}, limit ${this.maxPending})`);
      const b = this.budget;
      if (b && b.max > 0 && b.used + delta > b.max) throw new ChunkError(`server-wide budget for unfinished RTMP messages exhausted (rtmp.maxpendingbytes = ${b.max})`);
    }
    this.pending += delta;
    const b = this.budget;
    if (b) {
      b.used += delta;
      if (b.peak !== undefined && b.used > b.peak) b.peak = b.used;
    }
  }

  /** Set the peer's chunk size (from its Set Chunk Size message). */
  setChunkSize(n: number): void {
    n = n & 0x7fffffff; // the top bit is reserved and must be 0; ignore it
    if (n < 1) throw new ChunkError(`invalid chunk size ${n}`);
    this.chunkSize = Math.min(n, MAX_CHUNK_SIZE);
  }

  /** Abort message: drop the partial message on `csid`. */
  abort(csid: number): void {
    const s = this.streams.get(csid);
    if (s?.buf) { this.addPending(-s.buf.length); s.buf = null; s.filled = 0; }
    if (this.cur === s && s) { this.cur = null; this.chunkLeft = 0; }
  }

  /** Bytes currently held in partial messages. */
  get pendingBytes(): number { return this.pending; }

  /** Feed bytes in any slicing. Throws ChunkError (and keeps throwing) on a protocol violation. */
  feed(data: Uint8Array): void {
    if (this.failed) throw this.failed;
    this.bytesIn += data.length;
    try { this.feedInner(data); } catch (err) { this.failed = err as Error; throw err; }
  }

  private feedInner(data: Uint8Array): void {
    let i = 0;
    const n = data.length;
    while (i < n) {
      if (this.chunkLeft > 0) {
        // Payload bytes of the current chunk.
        const s = this.cur!;
        const take = Math.min(this.chunkLeft, n - i);
        this.append(s, data, i, take);
        i += take;
        this.chunkLeft -= take;
        if (this.chunkLeft === 0) this.endChunk(s);
        continue;
      }
      // Header bytes: copy into the scratch until a whole header is there.
      const need = this.headerNeed();
      if (need < 0) {
        // Not enough to know the size yet: take one more byte.
        this.hdr[this.hdrLen++] = data[i++];
        continue;
      }
      const take = Math.min(need - this.hdrLen, n - i);
      this.hdr.set(data.subarray(i, i + take), this.hdrLen);
      this.hdrLen += take;
      i += take;
      if (this.hdrLen === need) {
        this.parseHeader();
        this.hdrLen = 0;
      }
    }
  }

  /** The full header length once enough bytes are in the scratch to tell, else -1. */
  private headerNeed(): number {
    const h = this.hdr;
    if (this.hdrLen < 1) return -1;
    const fmt = h[0] >> 6;
    const low = h[0] & 0x3f;
    const basic = low === 0 ? 2 : low === 1 ? 3 : 1;
    const msgHdr = fmt === 0 ? 11 : fmt === 1 ? 7 : fmt === 2 ? 3 : 0;
    const base = basic + msgHdr;
    if (this.hdrLen < basic) return -1;
    const csid = basic === 1 ? low : basic === 2 ? 64 + h[1] : 64 + h[1] + h[2] * 256;
    let ext: boolean;
    if (fmt === 3) {
      ext = this.streams.get(csid)?.extended ?? false;
    } else {
      if (this.hdrLen < basic + 3) return -1;
      ext = h[basic] === 0xff && h[basic + 1] === 0xff && h[basic + 2] === 0xff;
    }
    return base + (ext ? 4 : 0);
  }

  private parseHeader(): void {
    const h = this.hdr;
    const fmt = h[0] >> 6;
    const low = h[0] & 0x3f;
    let p = 1;
    let csid: number;
    if (low === 0) { csid = 64 + h[1]; p = 2; } else if (low === 1) { csid = 64 + h[1] + h[2] * 256; p = 3; } else csid = low;
    if (csid === 0 || csid === 1) throw new ChunkError('invalid chunk stream id');
    let s = this.streams.get(csid);
    if (!s) {
      if (fmt !== 0) throw new ChunkError(`chunk stream ${csid} starts with a type-${fmt} header (needs type 0)`);
      if (this.streams.size >= this.maxStreams) throw new ChunkError(`too many chunk streams (more than ${this.maxStreams})`);
      s = { timestamp: 0, delta: 0, length: 0, type: 0, streamId: 0, extended: false, buf: null, filled: 0 };
      this.streams.set(csid, s);
    }
    if (fmt < 3 && s.buf) {
      // A new message header while one is unfinished: the peer gave up on it (like an Abort).
      this.addPending(-s.buf.length);
      s.buf = null;
      s.filled = 0;
    }
    const u24 = (o: number) => (h[o] << 16) | (h[o + 1] << 8) | h[o + 2];
    let ts = 0;
    if (fmt <= 2) ts = u24(p);
    if (fmt <= 1) {
      s.length = u24(p + 3);
      s.type = h[p + 6];
      if (fmt === 0) s.streamId = (h[p + 7] | (h[p + 8] << 8) | (h[p + 9] << 16) | (h[p + 10] << 24)) >>> 0;
    }
    const msgHdr = fmt === 0 ? 11 : fmt === 1 ? 7 : fmt === 2 ? 3 : 0;
    p += msgHdr;
    let ext = false;
    if (fmt <= 2) {
      if (ts === 0xffffff) {
        ext = true;
        ts = ((h[p] << 24) | (h[p + 1] << 16) | (h[p + 2] << 8) | h[p + 3]) >>> 0;
      }
      s.extended = ext;
    }
    if (fmt === 0) { s.timestamp = ts; s.delta = 0; }
    else if (fmt === 1 || fmt === 2) { s.delta = ts; s.timestamp = (s.timestamp + ts) >>> 0; }
    else if (!s.buf) {
      // fmt 3 starting a new message: same shape, timestamp advanced by the last delta.
      s.timestamp = (s.timestamp + s.delta) >>> 0;
    }
    // (fmt 3 with an extended timestamp on a continuation chunk: the value repeats the message's; ignored.)
    if (!s.buf) {
      if (s.length > this.maxMessage) throw new ChunkError(`message of ${s.length} bytes exceeds maxmessagesize (${this.maxMessage})`);
      const alloc = Math.min(s.length, INITIAL_ALLOC);
      this.addPending(alloc);
      s.buf = new Uint8Array(alloc);
      s.filled = 0;
    }
    this.cur = s;
    this.curCsid = csid;
    this.chunkLeft = Math.min(this.chunkSize, s.length - s.filled);
    if (this.chunkLeft === 0) this.endChunk(s); // empty message
  }

  private append(s: CsState, data: Uint8Array, from: number, n: number): void {
    let buf = s.buf!;
    if (s.filled + n > buf.length) {
      // Grow towards the announced length as bytes actually arrive.
      const cap = Math.min(s.length, Math.max(buf.length * 2, s.filled + n));
      this.addPending(cap - buf.length);
      const nb = new Uint8Array(cap);
      nb.set(buf.subarray(0, s.filled));
      s.buf = buf = nb;
    }
    buf.set(data.subarray(from, from + n), s.filled);
    s.filled += n;
  }

  private endChunk(s: CsState): void {
    this.cur = null;
    if (s.filled < s.length) return; // more chunks to come
    const payload = s.buf!;
    this.addPending(-payload.length);
    s.buf = null;
    s.filled = 0;
    this.onMessage({ csid: this.curCsid, type: s.type, streamId: s.streamId, timestamp: s.timestamp, payload });
  }
}

// ------------------------------------------------------------------------------------------- writing

/** The basic header (fmt + csid) in its 1, 2 or 3 byte form. */
export function basicHeader(fmt: number, csid: number): Uint8Array {
  const h = new Uint8Array(basicLen(csid));
  putBasic(h, fmt, csid);
  return h;
}

const fmt3Cache = new Map<number, Uint8Array>();
/** The fmt-3 basic header for a csid (shared: it never changes). */
function fmt3(csid: number): Uint8Array {
  let b = fmt3Cache.get(csid);
  if (!b) fmt3Cache.set(csid, (b = basicHeader(3, csid)));
  return b;
}

/** Length of the basic header for a csid (1, 2 or 3 bytes). */
function basicLen(csid: number): number { return csid < 64 ? 1 : csid < 320 ? 2 : 3; }

/** Write the basic header for (fmt, csid) at h[0..]; returns its length. type0Header/type1Header write it
 * in place (they are built per frame for some players: catch-up, first frames), not as an array of its own. */
function putBasic(h: Uint8Array, fmt: number, csid: number): number {
  if (csid < 2 || csid > 65599) throw new RangeError(`chunk stream id ${csid} out of range`);
  if (csid < 64) { h[0] = (fmt << 6) | csid; return 1; }
  if (csid < 320) { h[0] = fmt << 6; h[1] = csid - 64; return 2; }
  const v = csid - 64;
  h[0] = (fmt << 6) | 1; h[1] = v & 0xff; h[2] = v >> 8;
  return 3;
}

/** A fmt-0 header (basic + message header + extended timestamp when needed). */
export function type0Header(csid: number, timestamp: number, length: number, type: number, streamId: number): Uint8Array {
  const ext = timestamp >= 0xffffff;
  const h = new Uint8Array(basicLen(csid) + 11 + (ext ? 4 : 0));
  let p = putBasic(h, 0, csid);
  const t = ext ? 0xffffff : timestamp;
  h[p++] = t >>> 16; h[p++] = t >>> 8; h[p++] = t;
  h[p++] = length >>> 16; h[p++] = length >>> 8; h[p++] = length;
  h[p++] = type;
  h[p++] = streamId; h[p++] = streamId >>> 8; h[p++] = streamId >>> 16; h[p++] = streamId >>> 24;
  if (ext) { h[p++] = timestamp >>> 24; h[p++] = timestamp >>> 16; h[p++] = timestamp >>> 8; h[p++] = timestamp; }
  return h;
}

/** A fmt-1 header with a timestamp delta below 0xFFFFFF. */
export function type1Header(csid: number, delta: number, length: number, type: number): Uint8Array {
  const h = new Uint8Array(basicLen(csid) + 7);
  let p = putBasic(h, 1, csid);
  h[p++] = delta >>> 16; h[p++] = delta >>> 8; h[p++] = delta;
  h[p++] = length >>> 16; h[p++] = length >>> 8; h[p++] = length;
  h[p++] = type;
  return h;
}

/**
 * The payload of a message cut into chunks, without the first chunk's header:
 *   [payload 1][fmt-3 header][payload 2][fmt-3 header]...
 * Payload slices are views of `parts` (never copied). `extTs` (when the first header carries an extended
 * timestamp) is repeated after every fmt-3 header, as the spec asks.
 */
export function chunkBody(csid: number, parts: readonly Uint8Array[], chunkSize: number, extTs?: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let cont: Uint8Array = fmt3(csid);
  if (extTs !== undefined) {
    const b = cont;
    cont = new Uint8Array(b.length + 4);
    cont.set(b);
    const p = b.length;
    cont[p] = extTs >>> 24; cont[p + 1] = extTs >>> 16; cont[p + 2] = extTs >>> 8; cont[p + 3] = extTs;
  }
  let room = chunkSize;
  for (const part of parts) {
    let off = 0;
    while (off < part.length) {
      if (room === 0) { out.push(cont); room = chunkSize; }
      const n = Math.min(room, part.length - off);
      out.push(off === 0 && n === part.length ? part : part.subarray(off, off + n));
      off += n;
      room -= n;
    }
  }
  return out;
}

/** A whole message as chunks with a fmt-0 first header (control messages, commands, per-subscriber data). */
export function chunkMessage(csid: number, type: number, streamId: number, timestamp: number, parts: readonly Uint8Array[], chunkSize: number): Uint8Array[] {
  let len = 0;
  for (const p of parts) len += p.length;
  const ext = timestamp >= 0xffffff ? timestamp : undefined;
  return [type0Header(csid, timestamp >>> 0, len, type, streamId), ...chunkBody(csid, parts, chunkSize, ext)];
}

/** One contiguous buffer of a message's chunks (for small control/command messages). */
export function chunkMessageBytes(csid: number, type: number, streamId: number, timestamp: number, payload: Uint8Array, chunkSize: number): Uint8Array {
  const parts = chunkMessage(csid, type, streamId, timestamp, [payload], chunkSize);
  if (parts.length === 2) {
    const out = new Uint8Array(parts[0].length + parts[1].length);
    out.set(parts[0]); out.set(parts[1], parts[0].length);
    return out;
  }
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

// Protocol control and user control payloads.

export function u32(v: number): Uint8Array {
  return new Uint8Array([v >>> 24, v >>> 16, v >>> 8, v]);
}

export function readU32(b: Uint8Array, at = 0): number {
  if (b.length < at + 4) throw new ChunkError(`control message too short (${b.length} bytes)`);
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}

export function userControl(event: number, ...values: number[]): Uint8Array {
  const b = new Uint8Array(2 + values.length * 4);
  b[0] = event >> 8; b[1] = event;
  values.forEach((v, i) => b.set(u32(v), 2 + i * 4));
  return b;
}
