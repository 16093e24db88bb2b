// Glue between our WsHandler / WsConn (src/net/types.ts) and hono's per-runtime WebSocket helpers
// (@hono/node-server, hono/bun, hono/deno), which all speak hono's WSEvents / WSContext. Shared by the
// three runtime adapters; nothing runtime-specific lives here except through `bufferedOf`.

import type { Context } from 'hono';
import type { WSContext, WSEvents } from 'hono/ws';
import type { WsConn, WsHandler } from '../src/net/types.ts';

let nextWsId = 1;

/** Close code for "the server hit an unexpected condition" (RFC 6455 §7.4.1). */
const INTERNAL_ERROR = 1011;

class HonoWsConn implements WsConn {
  readonly id = nextWsId++;
  closed = false;
  readonly #ctx: WSContext;
  readonly #bufferedOf: (raw: unknown) => number;

  constructor(ctx: WSContext, bufferedOf: (raw: unknown) => number) {
    this.#ctx = ctx;
    this.#bufferedOf = bufferedOf;
  }

  get buffered(): number {
    try {
      return this.#bufferedOf(this.#ctx.raw);
    } catch {
      return 0;
    }
  }

  send(data: Uint8Array | string): void {
    if (this.closed) return;
    try {
      this.#ctx.send(data as string | Uint8Array<ArrayBuffer>);
    } catch {
      // Sending on a socket that is closing throws on some runtimes; the close event follows.
    }
  }

  close(code?: number, reason?: string): void {
    try {
      this.#ctx.close(code, reason);
    } catch {
      // Already closed, or an invalid code: either way there is nothing left to do.
    }
  }
}

/** Incoming message data as the core wants it: text stays a string, binary becomes a Uint8Array. */
function toMessage(data: unknown): Uint8Array | string | Promise<Uint8Array> | undefined {
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  // A Blob only appears if a runtime ignores binaryType 'arraybuffer'; none of ours does today.
  if (typeof Blob !== 'undefined' && data instanceof Blob) return data.arrayBuffer().then((b) => new Uint8Array(b));
  return undefined;
}

/**
 * hono WSEvents that drive a WsHandler. One call per connection (the returned object keeps that
 * connection's WsConn). `bufferedOf` reads the queued byte count from the runtime's raw socket.
 * A handler that throws closes its socket with 1011 instead of crashing the server.
 */
export function toHonoEvents(handler: WsHandler, bufferedOf: (raw: unknown) => number): WSEvents {
  let conn: HonoWsConn | undefined;
  // hono/bun builds a fresh WSContext per event (same raw socket); keep the first.
  const connOf = (ctx: WSContext) => (conn ??= new HonoWsConn(ctx, bufferedOf));
  const guard = (c: HonoWsConn, fn: () => void) => {
    try {
      fn();
    } catch {
      // The error text stays on the server: a hostile client learns nothing from the close frame.
      c.close(INTERNAL_ERROR, 'internal error');
    }
  };
  // Messages decoded asynchronously (Blob) must still reach the handler in order.
  let pending: Promise<void> | null = null;

  return {
    onOpen(_evt, ctx) {
      const c = connOf(ctx);
      guard(c, () => handler.onOpen?.(c));
    },
    onMessage(evt, ctx) {
      const c = connOf(ctx);
      if (c.closed) return;
      const data = toMessage(evt.data);
      if (data === undefined) return;
      if (pending || data instanceof Promise) {
        const prev = pending ?? Promise.resolve();
        pending = prev
          .then(() => data)
          .then((d) => {
            if (!c.closed) guard(c, () => handler.onMessage?.(c, d));
          })
          .catch(() => c.close(INTERNAL_ERROR, 'internal error'));
        return;
      }
      guard(c, () => handler.onMessage?.(c, data));
    },
    onClose(evt, ctx) {
      const c = connOf(ctx);
      if (c.closed) return;
      c.closed = true;
      try {
        handler.onClose?.(c, evt.code ?? 1005, evt.reason ?? '');
      } catch {
        // Connection already gone.
      }
    },
    onError() {
      // A close event follows every error; onClose reports the end of the connection.
    },
  };
}

/** True when the request asks for a WebSocket upgrade (header values are case-insensitive). */
export function isUpgrade(req: Request): boolean {
  return req.headers.get('upgrade')?.toLowerCase() === 'websocket';
}

/**
 * Run a hono upgrade helper in its (context, events) form. The helpers throw when the runtime refuses
 * the upgrade (bad handshake headers); that becomes a 400 answer rather than a 500.
 */
export async function upgradeOr400(
  upgrade: (c: Context, events: WSEvents<any>) => Promise<Response>,
  ctx: Context,
  events: WSEvents,
): Promise<Response> {
  try {
    return await upgrade(ctx, events);
  } catch {
    return new Response('WebSocket upgrade failed', { status: 400 });
  }
}
