// A server-side WebSocket connection (RFC 6455) over a byte transport the adapter owns: our framing
// (src/format/websocket.ts, fuzzed, throws FormatError only) on top of whatever socket the runtime
// gives. Used where m7s does the upgrade itself: Bun's socket server (adapters/bun/socket-server.ts)
// and node:http's upgrade event on Node and Deno (adapters/node/ws-upgrade.ts). The adapter writes the
// handshake, then feeds the socket's bytes to onData() and tells onSocketClose() when it is gone.

import { WsFrameParser, WsProtocolError, wsCloseFrame, wsFrame } from '../format/websocket.ts';
import { framingHead } from './framing.ts';
import type { WsConn, WsHandler } from './types.ts';

/** The socket under a WsSession, as the adapter gives it. */
export interface WsTransport {
  /** Bytes accepted and not yet taken by the kernel. */
  readonly buffered: number;
  /** writev() reaches the kernel without a copy (WsConn.gathers). */
  readonly gathers: boolean;
  write(b: Uint8Array): void;
  /** One message in parts, in order. */
  writev(parts: readonly Uint8Array[]): void;
  /** Close once what is queued is written (after a close frame). */
  endAfterFlush(): void;
  /** Close now. */
  destroy(): void;
}

/** Largest message a client may send (a WS-FLV publisher's tags, a console command). */
export const WS_MAX_MESSAGE = 16 << 20;
/** After our close frame, how long the peer has to answer with its own before the socket is closed. */
export const WS_CLOSE_WAIT_MS = 2000;
/** RFC 6455 §1.3: appended to Sec-WebSocket-Key before the SHA-1 of Sec-WebSocket-Accept. */
export const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

let nextWsId = 1;

export class WsSession implements WsConn {
  readonly id = nextWsId++;
  closed = false;
  #parser = new WsFrameParser({ maxMessageBytes: WS_MAX_MESSAGE });
  #closeSent = false;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  constructor(private readonly out: WsTransport, private readonly handler: WsHandler) {}

  get buffered(): number { return this.closed ? 0 : this.out.buffered; }
  get gathers(): boolean { return this.out.gathers; }

  /** Run the handler's onOpen, then the bytes the client sent right behind its handshake. */
  open(early?: readonly Uint8Array[]): void {
    if (this.closed) return;
    try { this.handler.onOpen?.(this); } catch { this.close(1011, 'internal error'); }
    if (early) for (const p of early) { if (this.closed) break; this.onData(p); }
  }

  send(data: Uint8Array | string): void {
    if (this.closed || this.#closeSent) return;
    if (typeof data === 'string') { this.out.write(wsFrame(1, data)); return; }
    this.out.writev([framingHead('ws', data.byteLength), data]);
  }

  sendFramed(frame: Uint8Array | readonly Uint8Array[]): boolean {
    if (this.closed || this.#closeSent) return false;
    if (frame instanceof Uint8Array) this.out.write(frame);
    else this.out.writev(frame);
    return true;
  }

  close(code = 1000, reason = ''): void {
    if (this.closed || this.#closeSent) return;
    this.#closeSent = true;
    try { this.out.write(wsCloseFrame(code, reason)); } catch { this.out.write(wsCloseFrame(1000)); }
    this.#closeTimer = setTimeout(() => this.out.destroy(), WS_CLOSE_WAIT_MS);
    (this.#closeTimer as unknown as { unref?: () => void }).unref?.();
    this.#ended(code, reason);
  }

  /** Bytes from the socket. A protocol error closes with its code (1002, 1007, 1009) and ends the socket. */
  onData(chunk: Uint8Array): void {
    let events;
    try {
      events = this.#parser.push(chunk);
    } catch (e) {
      const code = e instanceof WsProtocolError ? e.closeCode : 1002;
      this.close(code, e instanceof Error ? e.message.slice(0, 100) : 'protocol error');
      this.out.endAfterFlush();
      return;
    }
    for (const ev of events) {
      if (ev.type === 'message') {
        if (this.closed) continue;
        try { this.handler.onMessage?.(this, ev.data); } catch { this.close(1011, 'internal error'); }
      } else if (ev.type === 'ping') {
        if (!this.#closeSent) this.out.write(wsFrame(10, ev.data));
      } else if (ev.type === 'close') {
        if (!this.#closeSent) {
          this.#closeSent = true;
          this.out.write(wsCloseFrame(ev.code === 1005 ? 1000 : ev.code));
          this.#ended(ev.code, ev.reason);
        }
        clearTimeout(this.#closeTimer);
        this.out.endAfterFlush();
        return;
      }
    }
  }

  /** The socket closed (either side). */
  onSocketClose(): void {
    clearTimeout(this.#closeTimer);
    this.#ended(1006, '');
  }

  #ended(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    try { this.handler.onClose?.(this, code, reason); } catch { /* the handler's problem */ }
  }
}
