// Every WebRTC session on one UDP port (webrtc.port "udp:9000", as Monibuca and MediaMTX do).
//
// werift 0.24.4 binds a socket per ICE host candidate (its UdpTransport). Here each of those becomes a
// MuxTransport: the same surface (send, onData, close, address, socket), all of them sharing one bound
// socket. A datagram arriving on the shared port is routed:
//   - a STUN request (connectivity check) by the local half of its USERNAME — the ufrag of the session it
//     is meant for — and its source address is then remembered for that session;
//   - a STUN response by the transaction id of the request it answers (each transport's requests are
//     noted as they go out);
//   - anything else (DTLS, SRTP, SRTCP) by its source address, learned from the checks above.
// What matches no session is dropped and counted. pion's UDPMuxDefault and MediaMTX work the same way.
//
// A TURN client cannot share the port (a TURN server tells allocations apart by the client's address
// and port), so a transport whose first request is a TURN one moves to a socket of its own.

import type { UdpSocket } from '../../src/net/types.ts';
import { iceLocalUfrag, peekStun, StunClass, TURN_METHODS } from '../../src/format/stun.ts';

type Family = 'udp4' | 'udp6';
type Addr = { address: string; port: number };

/** Addresses one transport may be reached from (host, server-reflexive and peer-reflexive, v4 and v6). */
const MAX_ADDRS = 16;
/** Outstanding STUN transactions remembered for routing responses, in all and per transport (werift
 * retransmits a check with the same id and gives up after ~8 s; consent checks go out every few seconds). */
const MAX_TX = 8192;
const MAX_TX_PER_TRANSPORT = 64;

export interface IceMuxOptions {
  /** The shared socket(s); a family without one cannot gather host candidates. */
  udp4?: UdpSocket;
  udp6?: UdpSocket;
  /** A socket of its own for a TURN client (any free port, or one from a range). */
  dedicated(type: Family): Promise<UdpSocket>;
  /** What onData hands to the stack (werift wants Node Buffers). */
  wrap?: (b: Uint8Array) => Uint8Array;
}

export interface IceMuxStats {
  /** Datagrams handed to a session. */
  routed: number;
  /** STUN requests naming no live session (unknown ufrag, or none). */
  unknownUfrag: number;
  /** Non-STUN datagrams (or unmatched responses) from an address no session has been reached from. */
  unknownAddress: number;
  /** STUN messages that could not be read, or a session already reached from MAX_ADDRS addresses. */
  refused: number;
  /** Transports moved to a socket of their own (TURN clients). */
  dedicated: number;
}

export class IceMux {
  readonly stats: IceMuxStats = { routed: 0, unknownAddress: 0, unknownUfrag: 0, refused: 0, dedicated: 0 };
  private readonly byUfrag = new Map<string, MuxTransport[]>();
  private readonly byAddr = new Map<string, MuxTransport>();
  private readonly byTx = new Map<string, MuxTransport>();
  readonly wrap: (b: Uint8Array) => Uint8Array;

  constructor(private readonly opts: IceMuxOptions) {
    this.wrap = opts.wrap ?? ((b) => b);
    for (const s of [opts.udp4, opts.udp6]) if (s) s.onMessage = (d, from) => this.receive(d, from);
  }

  /** The shared port (the udp4 socket's, else udp6's). */
  get port(): number {
    return (this.opts.udp4 ?? this.opts.udp6)?.port ?? 0;
  }

  /** Live transports and the addresses they are reached from, for the API. */
  get counts(): { sessions: number; transports: number; addresses: number; transactions: number } {
    let transports = 0;
    for (const g of this.byUfrag.values()) transports += g.length;
    return { sessions: this.byUfrag.size, transports, addresses: this.byAddr.size, transactions: this.byTx.size };
  }

  /** A transport for one host candidate of the ICE agent whose local ufrag is `ufrag`. */
  transport(type: Family, ufrag: string): MuxTransport {
    const sock = type === 'udp6' ? this.opts.udp6 : this.opts.udp4;
    if (!sock) throw new Error(`the ICE port has no ${type === 'udp6' ? 'IPv6' : 'IPv4'} socket`);
    const t = new MuxTransport(this, type, ufrag, sock);
    const g = this.byUfrag.get(ufrag);
    if (g) g.push(t);
    else this.byUfrag.set(ufrag, [t]);
    return t;
  }

  /** @internal a TURN client's own socket. */
  dedicated(type: Family): Promise<UdpSocket> {
    this.stats.dedicated++;
    return this.opts.dedicated(type);
  }

  /** @internal a STUN request going out from `t`: its response comes back to `t`. */
  expect(txid: string, t: MuxTransport): void {
    if (t.txids.has(txid)) return; // a retransmission
    if (t.txids.size >= MAX_TX_PER_TRANSPORT) this.forget(t.txids.values().next().value!);
    if (this.byTx.size >= MAX_TX) this.forget(this.byTx.keys().next().value!);
    this.byTx.set(txid, t);
    t.txids.add(txid);
  }

  private forget(txid: string): void {
    const t = this.byTx.get(txid);
    this.byTx.delete(txid);
    t?.txids.delete(txid);
  }

  /** @internal forget `t` (closed, or moved to its own socket). */
  detach(t: MuxTransport): void {
    const g = this.byUfrag.get(t.ufrag);
    if (g) {
      const i = g.indexOf(t);
      if (i >= 0) g.splice(i, 1);
      if (!g.length) this.byUfrag.delete(t.ufrag);
    }
    for (const k of t.addrs) if (this.byAddr.get(k) === t) this.byAddr.delete(k);
    t.addrs.clear();
    for (const x of t.txids) this.byTx.delete(x);
    t.txids.clear();
  }

  /** Route `key` to `t`; false when `t` already has MAX_ADDRS addresses. */
  private learn(key: string, t: MuxTransport): boolean {
    const was = this.byAddr.get(key);
    if (was === t) return true;
    if (t.addrs.size >= MAX_ADDRS) return false;
    if (was) was.addrs.delete(key);
    this.byAddr.set(key, t);
    t.addrs.add(key);
    return true;
  }

  /** One datagram on the shared port. Never throws. */
  receive(data: Uint8Array, from: Addr): void {
    const key = from.address + '|' + from.port;
    if (data.length >= 20 && data[0]! < 4) {
      const h = peekStun(data);
      if (h) {
        if (h.cls === StunClass.Request) {
          let ufrag: string | undefined;
          try {
            ufrag = iceLocalUfrag(data);
          } catch {
            this.stats.refused++;
            return;
          }
          const group = ufrag === undefined ? undefined : this.byUfrag.get(ufrag);
          if (!group?.length) {
            this.stats.unknownUfrag++;
            return;
          }
          let t = this.byAddr.get(key);
          if (!t || t.ufrag !== ufrag) {
            const v6 = from.address.includes(':');
            t = group.find((x) => (x.socketType === 'udp6') === v6) ?? group[0]!;
            if (!this.learn(key, t)) {
              this.stats.refused++;
              return;
            }
          }
          this.stats.routed++;
          t.deliver(data, from);
          return;
        }
        if (h.cls === StunClass.Success || h.cls === StunClass.Error) {
          const t = this.byTx.get(h.txid);
          if (t) {
            this.forget(h.txid);
            // An agent that never checks us (ICE lite) is first heard from in a response.
            if (!this.byAddr.has(key)) this.learn(key, t);
            this.stats.routed++;
            t.deliver(data, from);
            return;
          }
        }
      }
    }
    const t = this.byAddr.get(key);
    if (!t) {
      this.stats.unknownAddress++;
      return;
    }
    this.stats.routed++;
    t.deliver(data, from);
  }
}

/**
 * One ICE host candidate's view of the shared port, in the shape of werift's UdpTransport (type, socketType,
 * socket, rinfo, onData, closed, send, close, address, host, port).
 */
export class MuxTransport {
  readonly type = 'udp';
  rinfo: Addr | undefined;
  onData: (data: Uint8Array, addr: [string, number]) => void = () => {};
  closed = false;
  /** The socket datagrams leave by (the shared one, or the transport's own after a TURN request). */
  socket: UdpSocket;
  /** @internal keys of the addresses routed here, and the STUN transactions awaiting an answer here. */
  readonly addrs = new Set<string>();
  readonly txids = new Set<string>();
  private own: Promise<UdpSocket> | undefined;

  constructor(private readonly mux: IceMux, readonly socketType: Family, readonly ufrag: string, shared: UdpSocket) {
    this.socket = shared;
  }

  /** @internal a datagram for this transport. */
  deliver(data: Uint8Array, from: Addr): void {
    this.rinfo = from;
    try {
      this.onData(this.mux.wrap(data), [from.address, from.port]);
    } catch {
      // the stack's handler failing must not stop the shared socket
    }
  }

  send = async (data: Uint8Array, addr?: [string, number]): Promise<void> => {
    if (this.closed) return;
    const host = addr ? addr[0] : this.rinfo?.address;
    const port = addr ? addr[1] : this.rinfo?.port;
    if (host === undefined || port === undefined) return;
    if (!this.own && data.length >= 20 && data[0]! < 4) {
      const h = peekStun(data);
      if (h?.cls === StunClass.Request) {
        if (TURN_METHODS.has(h.method)) await this.ownSocket();
        else this.mux.expect(h.txid, this);
      }
    }
    if (this.own) await this.own;
    if (!this.closed) this.socket.send(data, port, host);
  };

  /** Move to a socket of our own (a TURN client: see the file's head). */
  private ownSocket(): Promise<UdpSocket> {
    return this.own ??= (async () => {
      this.mux.detach(this);
      const s = await this.mux.dedicated(this.socketType);
      if (this.closed) {
        await s.close();
        return s;
      }
      s.onMessage = (d, from) => this.deliver(d, from);
      this.socket = s;
      return s;
    })();
  }

  close = async (): Promise<void> => {
    if (this.closed) return;
    this.closed = true;
    this.mux.detach(this);
    if (this.own) await (await this.own.catch(() => undefined))?.close();
  };

  get address(): { address: string; port: number; family: string } {
    return { address: this.socket.host, port: this.socket.port, family: this.socketType === 'udp6' ? 'IPv6' : 'IPv4' };
  }
  get host(): string {
    return this.socket.host;
  }
  get port(): number {
    return this.socket.port;
  }
}
