// SIP transactions (RFC 3261 section 17), transport-neutral: the owner gives a send function and whether
// the transport is reliable (TCP) or not (UDP).
//
//  - Client: retransmits the request over UDP at T1, 2·T1, 4·T1... (non-INVITE capped at T2), stops on
//    the first response (INVITE) or final response (non-INVITE), and gives up after 64·T1 (Timer B / F)
//    with a timeout. Over TCP nothing is retransmitted; the timeout still applies.
//  - Server: remembers the last response per (branch, method) for 64·T1 (Timer J / H-like), so a
//    retransmitted request gets the same response again instead of being handled twice.

import { header, parseCSeq, parseVia, type SipMessage } from './message.ts';

export const SIP_T1 = 500;
export const SIP_T2 = 4000;

export class SipTimeoutError extends Error {
  constructor(method: string, ms: number) {
    super(`SIP ${method} got no final response within ${ms} ms`);
    this.name = 'SipTimeoutError';
  }
}

export interface TransactionTimers { t1?: number; t2?: number; timeout?: number }

function keyOf(m: SipMessage): string {
  const via = header(m, 'Via');
  const branch = via ? (parseVia(via).params['branch'] ?? '') : '';
  let method = parseCSeq(header(m, 'CSeq')!).method;
  if (method === 'ACK') method = 'INVITE';
  return `${branch}|${method}`;
}

interface Pending {
  method: string;
  resolve(m: SipMessage): void;
  reject(e: Error): void;
  onProvisional?: (m: SipMessage) => void;
  retransmit: ReturnType<typeof setTimeout> | null;
  timeout: ReturnType<typeof setTimeout>;
}

/** Client transactions of one transport endpoint, matched by the top Via branch and CSeq method. */
export class ClientTransactions {
  private readonly pending = new Map<string, Pending>();
  constructor(private readonly timers: TransactionTimers = {}) {}

  get size(): number { return this.pending.size; }

  /**
   * Send `req` (its Via must carry a unique branch) and wait for its final response. Provisional
   * responses go to `onProvisional`. Rejects with SipTimeoutError after Timer B/F.
   */
  request(req: SipMessage, send: () => void, reliable: boolean, onProvisional?: (m: SipMessage) => void, timeout?: number): Promise<SipMessage> {
    const t1 = this.timers.t1 ?? SIP_T1, t2 = this.timers.t2 ?? SIP_T2;
    const limit = timeout ?? this.timers.timeout ?? 64 * t1;
    const key = keyOf(req);
    const method = req.method!;
    return new Promise<SipMessage>((resolve, reject) => {
      const p: Pending = {
        method, resolve, reject, onProvisional, retransmit: null,
        timeout: setTimeout(() => { this.finish(key); reject(new SipTimeoutError(method, limit)); }, limit),
      };
      this.pending.set(key, p);
      send();
      if (!reliable) {
        let interval = t1;
        const again = () => {
          if (!this.pending.has(key)) return;
          send();
          interval = method === 'INVITE' ? interval * 2 : Math.min(interval * 2, t2);
          p.retransmit = setTimeout(again, interval);
        };
        p.retransmit = setTimeout(again, interval);
      }
    });
  }

  /** A response arrived: true when it belonged to a transaction of ours. */
  onResponse(res: SipMessage): boolean {
    let key: string;
    try { key = keyOf(res); } catch { return false; }
    const p = this.pending.get(key);
    if (!p) return false;
    if (res.status! < 200) {
      // A provisional response stops INVITE retransmissions (RFC 3261 17.1.1.2).
      if (p.method === 'INVITE' && p.retransmit) { clearTimeout(p.retransmit); p.retransmit = null; }
      try { p.onProvisional?.(res); } catch { /* the owner's callback must not break the transport */ }
      return true;
    }
    this.finish(key);
    p.resolve(res);
    return true;
  }

  private finish(key: string): void {
    const p = this.pending.get(key);
    if (!p) return;
    this.pending.delete(key);
    if (p.retransmit) clearTimeout(p.retransmit);
    clearTimeout(p.timeout);
  }

  /** Fail every pending transaction (transport closed). */
  close(reason: string): void {
    for (const [key, p] of [...this.pending]) {
      this.finish(key);
      p.reject(new Error(reason));
    }
  }
}

/** Server side: absorbs retransmitted requests by answering them with the response already sent. */
export class ServerTransactions {
  private readonly done = new Map<string, { at: number; response: Uint8Array | null }>();
  constructor(private readonly ttl = 64 * SIP_T1, private readonly max = 10000) {}

  /**
   * Called for each request: returns 'new' (handle it), or the cached response bytes to send again
   * (null while the first copy is still being handled).
   */
  check(req: SipMessage): 'new' | Uint8Array | null {
    const now = Date.now();
    if (this.done.size >= this.max) this.sweep(now);
    const key = keyOf(req);
    const e = this.done.get(key);
    if (e && now - e.at < this.ttl) return e.response;
    if (req.method === 'ACK') return 'new';
    this.done.set(key, { at: now, response: null });
    return 'new';
  }

  /** Remember the final response sent for `req`. */
  answered(req: SipMessage, bytes: Uint8Array): void {
    this.done.set(keyOf(req), { at: Date.now(), response: bytes });
  }

  sweep(now = Date.now()): void {
    for (const [k, e] of this.done) if (now - e.at >= this.ttl) this.done.delete(k);
    // Still full (a flood): drop the oldest half.
    if (this.done.size >= this.max) {
      let n = this.done.size / 2;
      for (const k of this.done.keys()) { if (n-- <= 0) break; this.done.delete(k); }
    }
  }
}
