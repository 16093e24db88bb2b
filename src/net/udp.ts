// UDP helpers above the adapter's UdpSocket, runtime-agnostic: RTP/RTCP port pairs from a range
// (gortsplib createUDPListenerPair) and one shared listener demultiplexed by peer address (gortsplib
// server_udp_listener.go). Plugins reach them through ctx.bindUdpPair / new UdpDemux(socket).

import type { UdpOptions, UdpSocket } from './types.ts';

export interface PortRange { min: number; max: number }

/** "10000-20000" or "5004" (a single port) or { min, max } → a checked range. Throws on nonsense. */
export function parsePortRange(r: string | PortRange): PortRange {
  let min: number, max: number;
  if (typeof r === 'string') {
    const m = /^\s*(\d{1,5})\s*(?:-\s*(\d{1,5}))?\s*$/.exec(r);
    if (!m) throw new Error(`invalid UDP port range ${JSON.stringify(r)}: use "min-max", e.g. "10000-20000"`);
    min = +m[1];
    max = m[2] === undefined ? min : +m[2];
  } else {
    ({ min, max } = r);
  }
  if (!Number.isInteger(min) || !Number.isInteger(max) || min < 1 || max > 65535 || min > max) {
    throw new Error(`invalid UDP port range ${min}-${max}: need 1 ≤ min ≤ max ≤ 65535`);
  }
  return { min, max };
}

/** The even ports p in the range with p+1 also in it (RTP on p, RTCP on p+1, RFC 3550 §11). */
export function evenPairsIn(range: PortRange): number {
  const first = range.min + (range.min & 1);
  return first + 1 > range.max ? 0 : Math.floor((range.max - first - 1) / 2) + 1;
}

export class PortRangeExhaustedError extends Error {
  constructor(readonly range: PortRange) {
    super(`no free even/odd UDP port pair in ${range.min}-${range.max} (all ${evenPairsIn(range)} pairs in use)`);
    this.name = 'PortRangeExhaustedError';
  }
}

/**
 * Bind an RTP socket on an even port and its RTCP socket on the next (odd) port, both from `range`.
 * Starts at a random pair and walks the range once, so concurrent allocators rarely collide and a full
 * range fails fast with PortRangeExhaustedError.
 */
export async function bindUdpPair(
  bind: (opts: UdpOptions) => Promise<UdpSocket>,
  range: PortRange,
  opts: Omit<UdpOptions, 'port'> = {},
): Promise<{ rtp: UdpSocket; rtcp: UdpSocket }> {
  const first = range.min + (range.min & 1);
  const n = evenPairsIn(range);
  const start = Math.floor(Math.random() * n);
  for (let i = 0; i < n; i++) {
    const port = first + ((start + i) % n) * 2;
    let rtp: UdpSocket;
    try {
      rtp = await bind({ ...opts, port });
    } catch {
      continue; // in use (or not allowed): next pair
    }
    try {
      const rtcp = await bind({ ...opts, port: port + 1 });
      return { rtp, rtcp };
    } catch {
      await rtp.close();
    }
  }
  throw new PortRangeExhaustedError(range);
}

export type UdpPeerHandler = (data: Uint8Array, from: { address: string; port: number }) => void;

/**
 * One server UDP socket shared by many sessions (the RTSP server's :8000/:8001): each datagram goes to
 * the handler registered for its source address:port; datagrams from unknown peers go to onUnknown
 * (counted either way). The demux owns the socket's onMessage; closing the socket is the owner's job.
 */
export class UdpDemux {
  private readonly peers = new Map<string, UdpPeerHandler>();
  /** Datagrams from peers nobody registered (a late packet after TEARDOWN, or a stranger). */
  onUnknown: UdpPeerHandler | null = null;
  unknownCount = 0;

  constructor(readonly socket: UdpSocket) {
    socket.onMessage = (data, from) => {
      const h = this.peers.get(peerKey(from.address, from.port));
      if (h) h(data, from);
      else {
        this.unknownCount++;
        this.onUnknown?.(data, from);
      }
    };
  }

  /** Route datagrams from address:port to `handler`. Returns the function that removes the route. Throws when taken. */
  register(address: string, port: number, handler: UdpPeerHandler): () => void {
    const key = peerKey(address, port);
    if (this.peers.has(key)) throw new Error(`UDP peer ${key} is already registered on port ${this.socket.port}`);
    this.peers.set(key, handler);
    return () => {
      if (this.peers.get(key) === handler) this.peers.delete(key);
    };
  }

  get size(): number {
    return this.peers.size;
  }

  send(data: Uint8Array, port: number, address: string): void {
    this.socket.send(data, port, address);
  }
}

function peerKey(address: string, port: number): string {
  // IPv4-mapped IPv6 and plain IPv4 are the same peer.
  const a = address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
  return a.includes(':') ? `[${a}]:${port}` : `${a}:${port}`;
}
