// A bounded history of sent RTP packets by sequence number, for answering NACKs (RFC 4585 6.2.1): one
// ring per stream track, shared by every viewer whose packets carry the same sequence numbers. Bytes in,
// bytes out; the packets are the shared serialized ones (no copies).

export class RtpHistory {
  private readonly ring: (Uint8Array | undefined)[];
  /** Packets asked for that were still here / already gone. */
  hits = 0;
  misses = 0;

  constructor(readonly size: number) {
    this.ring = new Array(Math.max(0, size | 0));
  }

  /** Remember a serialized RTP packet (at least a 12-byte header). */
  add(pkt: Uint8Array): void {
    if (!this.ring.length || pkt.length < 12) return;
    this.ring[((pkt[2]! << 8) | pkt[3]!) % this.ring.length] = pkt;
  }

  /** The packet with sequence number `seq`, if it is still in the history. */
  get(seq: number): Uint8Array | undefined {
    if (!this.ring.length) { this.misses++; return undefined; }
    const p = this.ring[(seq & 0xffff) % this.ring.length];
    if (p && ((p[2]! << 8) | p[3]!) === (seq & 0xffff)) { this.hits++; return p; }
    this.misses++;
    return undefined;
  }
}
