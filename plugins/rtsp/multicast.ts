// UDP multicast play (RFC 2326 12.39, "Transport: RTP/AVP;multicast"): every stream track that a
// multicast viewer sets up gets a group address from `multicastiprange` (one per stream track, like
// MediaMTX), on the fixed ports `multicastrtpport`/`multicastrtcpport`. One sender per stream — an
// engine subscriber of its own with one UDP socket — sends each track's shared RTP packets (packets.ts:
// the same bytes unicast viewers get) and RTCP sender reports to the groups, once, whatever the number
// of multicast viewers. Viewers hold a reference from SETUP until their session ends; when the last one
// goes, the sender unsubscribes, its socket closes and the addresses return to the pool.
//
// Each viewer still subscribes itself (auth, on-demand pull, the audience count, the end of the stream
// closing its session), with a sink that sends nothing: the group carries the bytes.

import type { Logger, PluginContext, Subscriber, Track } from '../../src/plugin.ts';
import type { UdpSocket } from '../../src/net/types.ts';
import { RtpPlaySink, type RtpTransport, type TrackOut } from './sink.ts';

export interface MulticastConfig {
  /** IPv4 CIDR inside 224.0.0.0/4 ("224.1.0.0/16"); empty = multicast off. */
  multicastiprange: string;
  multicastrtpport: number;
  multicastrtcpport: number;
  /** TTL of the datagrams (1 = this link only). */
  multicastttl: number;
  /** Address of the interface the datagrams leave by; empty = the kernel's route for the group. */
  multicastinterface: string;
  mtu: number;
}

/** A parsed IPv4 multicast range: the first and last address as 32-bit numbers. */
export function parseMulticastRange(spec: string): { first: number; last: number } {
  const m = /^\s*(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\s*(?:\/\s*(\d{1,2}))?\s*$/.exec(spec);
  if (!m) throw new Error(`multicastiprange "${spec}" is not an IPv4 CIDR range (224.1.0.0/16)`);
  const o = m.slice(1, 5).map(Number);
  if (o.some((x) => x > 255)) throw new Error(`multicastiprange "${spec}": bad address`);
  const bits = m[5] === undefined ? 32 : Number(m[5]);
  if (bits < 4 || bits > 32) throw new Error(`multicastiprange "${spec}": prefix must be 4..32`);
  const mask = bits === 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
  const base = ((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) >>> 0;
  const first = (base & mask) >>> 0;
  const last = (first | (~mask >>> 0)) >>> 0;
  if (first >>> 28 !== 0xe || last >>> 28 !== 0xe) throw new Error(`multicastiprange "${spec}" is not inside 224.0.0.0/4`);
  return { first, last };
}

const ipText = (n: number) => `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;

export interface MulticastGroup {
  address: string;
  rtpPort: number;
  rtcpPort: number;
  ttl: number;
}

/** Everything multicast of one stream: the group of each track, the viewers, the sender. */
class StreamMulticast implements RtpTransport {
  readonly groups = new Map<Track, MulticastGroup & { n: number }>();
  readonly viewers = new Set<object>();
  readonly outs = new Map<Track, TrackOut>();
  sock: UdpSocket | null = null;
  sub: Subscriber | null = null;
  sink: RtpPlaySink | null = null;
  starting: Promise<void> | null = null;
  closed = false;
  /** Datagrams sent to the groups (tests, info). */
  sent = 0;

  constructor(readonly path: string) {}

  // RtpTransport: the sender has no TCP side; UDP goes to the groups from its own socket.
  readonly buffered = 0;
  tcpQueue(): void {}
  tcpFlush(): boolean { return !this.closed; }
  sendUdpRtp(data: Uint8Array, out: TrackOut & { kind: 'udp' }): void { this.sent++; this.sock?.send(data, out.rtpPort, out.address); }
  sendUdpRtcp(data: Uint8Array, out: TrackOut & { kind: 'udp' }): void { this.sock?.send(data, out.rtcpPort, out.address); }
}

export class MulticastSenders {
  private readonly range: { first: number; last: number };
  /** Addresses in use (as numbers), and where the next search starts. */
  private readonly used = new Set<number>();
  private next: number;
  readonly streams = new Map<string, StreamMulticast>();

  constructor(private readonly ctx: PluginContext<any>, private readonly cfg: MulticastConfig, private readonly log: Logger) {
    this.range = parseMulticastRange(cfg.multicastiprange);
    // Skip the range's first address when the range has more than one (x.y.0.0 looks like a network).
    this.next = this.range.last > this.range.first ? this.range.first + 1 : this.range.first;
  }

  private allocate(): number | undefined {
    const size = this.range.last - this.range.first + 1;
    for (let i = 0; i < size; i++) {
      const n = this.range.first + ((this.next - this.range.first + i) % size);
      if (!this.used.has(n)) {
        this.used.add(n);
        this.next = n + 1 > this.range.last ? this.range.first : n + 1;
        return n;
      }
    }
    return undefined;
  }

  /**
   * SETUP of `track` of `path` by `viewer`: the track's group (allocated on first use). Returns null when
   * the range is exhausted. The viewer holds the stream's groups until release(viewer).
   */
  join(path: string, track: Track, viewer: object): MulticastGroup | null {
    let st = this.streams.get(path);
    if (!st) { st = new StreamMulticast(path); this.streams.set(path, st); }
    let g = st.groups.get(track);
    if (!g) {
      const n = this.allocate();
      if (n === undefined) { if (!st.groups.size && !st.viewers.size) this.streams.delete(path); return null; }
      g = { address: ipText(n), n, rtpPort: this.cfg.multicastrtpport, rtcpPort: this.cfg.multicastrtcpport, ttl: this.cfg.multicastttl };
      st.groups.set(track, g);
      st.outs.set(track, { kind: 'udp', address: g.address, rtpPort: g.rtpPort, rtcpPort: g.rtcpPort });
    }
    st.viewers.add(viewer);
    return { address: g.address, rtpPort: g.rtpPort, rtcpPort: g.rtcpPort, ttl: g.ttl };
  }

  /** PLAY of a multicast viewer: the stream's sender runs (started by the first viewer). */
  async start(path: string, args: Record<string, string>): Promise<void> {
    const st = this.streams.get(path);
    if (!st) throw new Error(`no multicast setup for ${path}`);
    if (!st.sub && !st.starting) {
      st.starting = (async () => {
        const sock = await this.ctx.bindUdp({ port: 0, host: this.cfg.multicastinterface || undefined, what: `RTSP multicast ${path}` });
        st.sock = sock;
        sock.onError = (err) => this.log.debug('RTSP multicast send error', { stream: path, error: err });
        try {
          sock.setMulticastTTL(this.cfg.multicastttl);
          if (this.cfg.multicastinterface) sock.setMulticastInterface(this.cfg.multicastinterface);
          sock.setMulticastLoopback(true);
          const sink = new RtpPlaySink(st, st.outs, this.cfg.mtu, {
            end: (reason) => { if (st.sink === sink) this.shutdown(st, `stream ended: ${reason}`); },
          });
          st.sink = sink;
          const sub = await this.ctx.subscribe(path, { remote: `multicast:${path}`, args, sink, counted: false });
          if (st.closed) { sub.close('no multicast viewer left'); return; }
          st.sub = sub;
          this.log.info('RTSP multicast sender started', { stream: path, groups: [...st.groups.values()].map((g) => g.address) });
        } catch (err) {
          this.shutdown(st, (err as Error).message);
          throw err;
        }
      })().finally(() => { st.starting = null; });
    }
    await st.starting;
    if (st.closed) throw new Error(`multicast sender of ${path} stopped`);
    // A viewer that joins a running group gets sender reports now, not up to 5 s later (A/V sync).
    st.sink?.sendSenderReports();
  }

  /** A viewer's session ended: the last one stops the sender and frees the groups. */
  release(path: string, viewer: object): void {
    const st = this.streams.get(path);
    if (!st || !st.viewers.delete(viewer)) return;
    if (st.viewers.size === 0) this.shutdown(st, 'no multicast viewer left');
  }

  private shutdown(st: StreamMulticast, reason: string): void {
    if (st.closed) return;
    st.closed = true;
    if (this.streams.get(st.path) === st) this.streams.delete(st.path);
    for (const g of st.groups.values()) this.used.delete(g.n);
    const sub = st.sub, sink = st.sink;
    st.sub = null;
    st.sink = null;
    sink?.dispose();
    sub?.close(reason);
    const sock = st.sock;
    st.sock = null;
    void sock?.close();
    this.log.info('RTSP multicast sender stopped', { stream: st.path, reason, datagrams: st.sent });
  }

  /** For /rtsp/api and tests: groups and viewers per stream. */
  info(): Record<string, unknown>[] {
    return [...this.streams.values()].map((st) => ({
      stream: st.path, viewers: st.viewers.size, sending: !!st.sub, datagrams: st.sent,
      groups: [...st.groups.entries()].map(([t, g]) => ({ track: t.index, kind: t.kind, codec: t.codec, address: g.address, rtpPort: g.rtpPort, rtcpPort: g.rtcpPort })),
    }));
  }

  close(): void {
    for (const st of [...this.streams.values()]) this.shutdown(st, 'server stopping');
  }
}
