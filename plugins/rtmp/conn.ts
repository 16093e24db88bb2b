// What both ends of an RTMP connection share: the handshake, the chunk reader, protocol control messages
// (chunk size, acknowledgements, user control pings), sending commands and status events, and
// decoding incoming commands. The server session (session.ts) and the pull/push client (client.ts)
// build on it.

import { amf0Decode, amf0Encode } from '../../src/format/amf.ts';
import { FormatError } from '../../src/format/bytes.ts';
import type { Logger } from '../../src/log.ts';
import type { TcpConn } from '../../src/net/types.ts';
import type { Subscriber } from '../../src/plugin.ts';
import { chunkMessageBytes, ChunkReader, MSG, type PendingBudget, readU32, type RtmpMessage, u32, UC, userControl } from './chunk.ts';
import { ClientHandshake, ServerHandshake } from './handshake.ts';

/** Chunk stream ids for control messages and commands (media csids are per play stream, see sink.ts). */
export const CSID_CONTROL = 2;
export const CSID_COMMAND = 3;

/** Window acknowledgement size we announce and peer bandwidth we set. */
export const WINDOW_ACK_SIZE = 2_500_000;

/** Limits on decoding AMF in commands: commands are small and flat. */
export const AMF_LIMITS = { maxDepth: 16, maxValues: 10_000 };

export interface RtmpConnOptions {
  role: 'server' | 'client';
  logger: Logger;
  /** Largest message accepted from the peer. */
  maxMessageSize: number;
  /**
   * Largest message accepted until raiseLimits() is called (a server session calls it when the peer
   * sends `publish`): before that a peer only sends small commands. Default: maxMessageSize.
   */
  maxCommandSize?: number;
  /** Server-wide budget for bytes in unfinished messages, shared by all connections of a listener. */
  budget?: PendingBudget;
}

/** A decoded command: name, transaction id, command object, further arguments. */
export interface RtmpCommand {
  name: string;
  txn: number;
  obj: unknown;
  args: unknown[];
  streamId: number;
}

/** Decode a command message (type 20, or 17 = a 0 byte then AMF0). Throws FormatError. */
export function decodeCommand(m: { type: number; payload: Uint8Array; streamId: number }): RtmpCommand {
  let p = m.payload;
  if (m.type === MSG.COMMAND_AMF3) {
    if (p.length === 0) throw new FormatError('empty AMF3 command');
    p = p.subarray(1); // format selector byte; the values are AMF0 (switching to AMF3 per value if needed)
  }
  const v = amf0Decode(p, AMF_LIMITS);
  if (typeof v[0] !== 'string') throw new FormatError('command name is not a string');
  const txn = typeof v[1] === 'number' && Number.isFinite(v[1]) ? v[1] : 0;
  return { name: v[0].slice(0, 256), txn, obj: v[2], args: v.slice(3), streamId: m.streamId };
}

/** Decode a data message (18, or 15 with a leading 0 byte): its AMF0 values. */
export function decodeData(m: { type: number; payload: Uint8Array }): unknown[] {
  let p = m.payload;
  if (m.type === MSG.DATA_AMF3 && p.length > 0 && p[0] === 0) p = p.subarray(1);
  return amf0Decode(p, AMF_LIMITS);
}


/** RtmpConnection.sendShared's cache: chunk size + key → the chunked messages (oldest dropped first). */
const sharedSends = new Map<string, Uint8Array[]>();
const MAX_SHARED_SENDS = 256;

export abstract class RtmpConnection {
  /** Chunk size we send with. */
  outChunkSize = 128;
  closed = false;
  closeReason = '';
  handshakeDone = false;
  /** Wall-clock ms of the last byte received (idle timeout). */
  lastRead = Date.now();
  readonly startTime = Date.now();
  readonly reader: ChunkReader;
  /** Subscribers writing into this connection: resumed when it drains. */
  readonly subscribers = new Set<Subscriber>();
  private readonly hs: ServerHandshake | ClientHandshake;
  /** The peer's window: send an Acknowledgement every this many bytes (0 = never). */
  private peerWindow = 0;
  private lastAckAt = 0;
  protected readonly log: Logger;

  constructor(readonly conn: TcpConn, readonly opts: RtmpConnOptions) {
    this.log = opts.logger;
    const first = Math.min(opts.maxCommandSize ?? opts.maxMessageSize, opts.maxMessageSize);
    this.reader = new ChunkReader((m) => this.dispatch(m), { maxMessageSize: first, budget: opts.budget });
    this.hs = opts.role === 'server' ? new ServerHandshake() : new ClientHandshake();
    conn.onData = (d) => this.onData(d);
    conn.onDrain = () => { for (const s of [...this.subscribers]) s.resume(); };
    conn.onClose = (err) => this.close(err ? `connection error: ${err.message}` : 'peer closed the connection');
  }

  /** Accept messages up to maxMessageSize from now on (the peer is about to send media). */
  protected raiseLimits(): void {
    if (this.reader.maxMessageSize < this.opts.maxMessageSize) this.reader.setLimits(this.opts.maxMessageSize);
  }

  /** Server: which handshake the peer used ('plain' / 'digest'). */
  get handshakeMode(): string { return this.hs instanceof ServerHandshake ? this.hs.mode : 'plain'; }

  /** Client: send C0+C1. */
  startHandshake(): void {
    if (this.hs instanceof ClientHandshake) this.writev(this.hs.start());
  }

  /** The handshake completed (server: C2 received; client: S2 received). */
  protected onHandshake(): void {}
  /** A command message arrived. */
  protected abstract onCommand(cmd: RtmpCommand, m: RtmpMessage): void;
  /** An audio, video, data or aggregate message arrived. */
  protected abstract onMedia(m: RtmpMessage): void;
  /** The connection is closing: release streams. Called once. */
  protected abstract onClosed(reason: string): void;

  private onData(d: Uint8Array): void {
    if (this.closed) return;
    this.lastRead = Date.now();
    try {
      if (!this.handshakeDone) {
        const step = this.hs.feed(d);
        if (step.out.length) this.writev(step.out);
        if (!step.done) return;
        this.handshakeDone = true;
        this.onHandshake();
        d = step.rest ?? new Uint8Array(0);
        if (d.length === 0 || this.closed) return;
      }
      this.reader.feed(d);
      this.maybeAck();
    } catch (err) {
      this.fail(err);
    }
  }

  /** A protocol error from the peer: log the reason and close this connection only. */
  fail(err: unknown): void {
    const msg = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    if (!this.closed) this.log.warn('closing RTMP connection: ' + msg, { remote: this.conn.remoteAddress });
    this.close(msg);
  }

  private maybeAck(): void {
    if (this.peerWindow <= 0) return;
    const n = this.reader.bytesIn;
    if (n - this.lastAckAt >= this.peerWindow) {
      this.lastAckAt = n;
      this.sendControl(MSG.ACK, u32(n % 2 ** 32));
    }
  }

  private dispatch(m: RtmpMessage): void {
    if (this.closed) return;
    switch (m.type) {
      case MSG.SET_CHUNK_SIZE:
        this.reader.setChunkSize(readU32(m.payload));
        return;
      case MSG.ABORT:
        this.reader.abort(readU32(m.payload));
        return;
      case MSG.ACK:
        return;
      case MSG.WINDOW_ACK_SIZE: {
        const w = readU32(m.payload);
        this.peerWindow = w > 0 && w < 0x80000000 ? w : 0;
        return;
      }
      case MSG.SET_PEER_BANDWIDTH:
        if (this.opts.role === 'client') this.sendControl(MSG.WINDOW_ACK_SIZE, u32(WINDOW_ACK_SIZE));
        return;
      case MSG.USER_CONTROL:
        this.onUserControl(m.payload);
        return;
      case MSG.COMMAND_AMF0:
      case MSG.COMMAND_AMF3:
        this.onCommand(decodeCommand(m), m);
        return;
      case MSG.AUDIO:
      case MSG.VIDEO:
      case MSG.DATA_AMF0:
      case MSG.DATA_AMF3:
      case MSG.AGGREGATE:
        this.onMedia(m);
        return;
      default:
        return; // shared objects and unknown types: ignored
    }
  }

  private onUserControl(p: Uint8Array): void {
    if (p.length < 2) throw new FormatError('user control message too short');
    const ev = (p[0] << 8) | p[1];
    if (ev === UC.PING_REQUEST) {
      this.sendControl(MSG.USER_CONTROL, userControl(UC.PING_RESPONSE, readU32(p, 2)));
    } else if (ev === UC.STREAM_EOF || ev === UC.STREAM_DRY) {
      this.onStreamEnded(p.length >= 6 ? readU32(p, 2) : 0);
    }
  }

  /** User control Stream EOF/Dry from the peer (client: the played stream ended). */
  protected onStreamEnded(_streamId: number): void {}

  // --------------------------------------------------------------------------------------- sending

  /** A protocol control message (csid 2, stream 0). */
  sendControl(type: number, payload: Uint8Array): void {
    this.write(chunkMessageBytes(CSID_CONTROL, type, 0, 0, payload, this.outChunkSize));
  }

  /** Announce and start using a new outgoing chunk size. */
  setOutChunkSize(n: number): void {
    this.sendControl(MSG.SET_CHUNK_SIZE, u32(n));
    this.outChunkSize = n;
  }

  sendWindowAck(): void { this.sendControl(MSG.WINDOW_ACK_SIZE, u32(WINDOW_ACK_SIZE)); }

  sendPeerBandwidth(): void {
    const b = new Uint8Array(5);
    b.set(u32(WINDOW_ACK_SIZE));
    b[4] = 2; // dynamic
    this.sendControl(MSG.SET_PEER_BANDWIDTH, b);
  }

  sendUserControl(event: number, ...values: number[]): void {
    this.sendControl(MSG.USER_CONTROL, userControl(event, ...values));
  }

  /** A command (AMF0) on the command chunk stream. */
  sendCommand(streamId: number, name: string, txn: number, ...values: unknown[]): void {
    this.write(chunkMessageBytes(CSID_COMMAND, MSG.COMMAND_AMF0, streamId, 0, amf0Encode(name, txn, ...values), this.outChunkSize));
  }

  /** onStatus on a stream. */
  sendStatus(streamId: number, level: 'status' | 'error' | 'warning', code: string, description: string, extra: Record<string, unknown> = {}): void {
    this.sendCommand(streamId, 'onStatus', 0, null, { level, code, description, ...extra });
  }

  /** A data message (AMF0) on `csid`. */
  sendData(csid: number, streamId: number, ...values: unknown[]): void {
    this.write(chunkMessageBytes(csid, MSG.DATA_AMF0, streamId, 0, amf0Encode(...values), this.outChunkSize));
  }

  // Writes are coalesced per turn: what one turn sends (the handshake's reply, connect's three control
  // messages and _result, play's user control, status events and catch-up GOP) leaves in one vectored
  // write at the end of the turn (a microtask), not one syscall and one TCP segment each. A join of
  // 1000 RTMP players made ~15 writes per player; the live fan-out (one flush per frame, nothing
  // queued) still writes at once.
  private out: Uint8Array[] = [];
  private outQueued = false;
  private readonly flushOut = (): void => {
    this.outQueued = false;
    const o = this.out;
    if (o.length === 0) return;
    if (!this.conn.closed) this.conn.writev(o);
    o.length = 0;
  };

  /**
   * Messages whose bytes are the same on every connection (for one chunk size and `key`): chunked once
   * by `build`, which sends them with the methods above, then written from a small process-wide cache.
   * Play's stream-begin, two onStatus and |RtmpSampleAccess took ~11 % of the JavaScript of a join of
   * 1000 RTMP players on Bun, encoded anew for each.
   */
  sendShared(key: string, build: () => void): void {
    if (this.closed || this.conn.closed) return;
    const k = this.outChunkSize + '\0' + key;
    const hit = sharedSends.get(k);
    if (hit) { for (const b of hit) this.write(b); return; }
    const from = this.out.length;
    build();
    const made = this.out.slice(from);
    if (made.length === 0) return;
    if (sharedSends.size >= MAX_SHARED_SENDS) sharedSends.delete(sharedSends.keys().next().value!);
    sharedSends.set(k, made);
  }

  /** Queue bytes for the end of this turn (see above). */
  write(b: Uint8Array): void {
    if (this.closed || this.conn.closed) return;
    this.out.push(b);
    if (!this.outQueued) { this.outQueued = true; queueMicrotask(this.flushOut); }
  }

  /**
   * Write `parts` after whatever this turn queued: at once when nothing is queued (the array is the
   * caller's again on return), else appended to the turn's write. Returns false when the connection is
   * closed or backpressured (TcpConn.writev); bytes appended to the turn's write count as accepted (a
   * full connection then shows at the next write, and its drain resumes the subscribers).
   */
  writev(parts: Uint8Array[]): boolean {
    if (this.conn.closed) return false;
    if (!this.outQueued) return this.conn.writev(parts);
    for (const p of parts) this.out.push(p);
    return true;
  }

  /** Close the connection (queued bytes still go out) and release everything. Idempotent. */
  close(reason = 'closed'): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    try { this.onClosed(reason); } catch (err) { this.log.error('RTMP close handler failed', { error: err }); }
    for (const s of [...this.subscribers]) s.close(reason);
    this.subscribers.clear();
    this.reader.release();
    this.conn.onData = null;
    this.conn.onDrain = null;
    if (!this.conn.closed) {
      this.flushOut();
      this.conn.end();
      // A peer that stops reading must not keep the socket (and its queued bytes) forever.
      const t = setTimeout(() => { if (!this.conn.closed) this.conn.destroy(); }, 3000);
      this.conn.onClose = () => clearTimeout(t);
    }
  }
}
