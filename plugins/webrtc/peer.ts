// The WebRTC stack behind a small interface: ICE, DTLS, SRTP and RTCP come from werift (pinned 0.24.4);
// nothing outside this file sees a werift type. Media crosses the boundary as serialized RTP packets in
// Uint8Arrays (werift's Buffers are converted here); codec choice, (de)packetizing and timing are ours.
//
// werift 0.24.4 binds a UDP socket per ICE host candidate (from `portRange` when given). With `mux`, every
// one of those is a view of the one shared ICE port instead (icemux.ts; hooked in at werift's
// UdpTransport.init, only for the connections we mark). werift gathers host candidates on every
// interface; `addresses` restricts what we advertise (and binds the sockets to the first of them), so
// tests keep every candidate on 127.0.0.1.

import { classes, Message, methods, MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters, RtpPacket, TurnProtocol, UdpTransport, type RTCRtpTransceiver } from 'werift';
import type { IceMux } from './icemux.ts';
import { SrtpSendStream } from './srtp.ts';
import { toNtp } from '../../src/format/rtcp/index.ts';
import { parseIp } from '../../src/net/ip.ts';
import { toHex } from '../../src/format/bytes.ts';

/** werift's per-sender NACK history, switched off: assignments vanish, lookups find nothing. */
const NO_HISTORY = new Proxy([] as unknown[], { set: () => true, get: (t, k) => (typeof k === 'string' && /^\d+$/.test(k) ? undefined : Reflect.get(t, k)) });

export interface PeerOptions {
  /** STUN/TURN servers for gathering (turn needs username + credential). */
  iceServers?: { urls: string; username?: string; credential?: string }[];
  /** UDP ports for ICE, [min, max] (werift needs min < max), one per session; ignored with `mux`. */
  portRange?: [number, number];
  /** The shared ICE port: every host candidate of this peer on it. */
  mux?: IceMux;
  /** Only these local addresses are advertised as host candidates (empty = all interfaces). */
  addresses?: string[];
  /** Extra host candidates (a public or NAT address that reaches this machine). */
  publicIps?: string[];
  /** Largest wait for candidate gathering before answering, ms. */
  gatherTimeoutMs?: number;
  /** Send WHEP media by our own SRTP + UDP path once DTLS is up (default); false = werift's sender. */
  fastSend?: boolean;
}

/** A media section of the negotiated session, seen from our side. */
export interface PeerMedia {
  readonly mid: string;
  readonly kind: 'audio' | 'video';
  /** Serialized RTP from the remote sender (WHIP), in arrival order. */
  onRtp?: (packet: Uint8Array) => void;
  /** An RTCP sender report from the remote sender (NTP seconds + fraction, RTP timestamp) — WHIP. */
  onSenderReport?: (ntpSec: number, ntpFrac: number, rtpTimestamp: number) => void;
  /** Ask the remote sender for a keyframe (RTCP PLI) — WHIP. */
  requestKeyframe(): void;
  /** Send one serialized RTP packet to the remote receiver (WHEP); its SSRC and payload type are set here. */
  send(packet: Uint8Array): void;
  /** The remote receiver asked for a keyframe (PLI or FIR) — WHEP. */
  onKeyframeRequest?: () => void;
  /** The remote receiver reported these sequence numbers lost (generic NACK) — WHEP. */
  onNack?: (seqs: number[]) => void;
  /** Send a packet again (a NACK answer): like send(), without counting it as new media. */
  resend(packet: Uint8Array): void;
}

export type PeerState = 'new' | 'connecting' | 'connected' | 'disconnected' | 'failed' | 'closed';

export interface Peer {
  /** Media sections by mid, after answer(). */
  readonly media: PeerMedia[];
  readonly state: PeerState;
  onStateChange?: (s: PeerState) => void;
  /** Set the (already narrowed) remote offer; returns the answer with every local candidate in it. */
  answer(offer: string, direction: 'recvonly' | 'sendonly'): Promise<string>;
  /** A trickled remote candidate ("candidate:..." line value, without "a="). */
  addCandidate(candidate: string, mid?: string): Promise<void>;
  /** Numbers for the API. */
  stats(): { packetsSent: number; packetsReceived: number; nacks: number; plis: number; retransmitted: number };
  close(): Promise<void>;
}

// Codecs werift may negotiate (it keeps the offer's own parameters; negotiate.ts already chose one).
const VIDEO = [
  new RTCRtpCodecParameters({ mimeType: 'video/H264', clockRate: 90000, rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }, { type: 'ccm', parameter: 'fir' }] }),
  new RTCRtpCodecParameters({ mimeType: 'video/H265', clockRate: 90000, rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }, { type: 'ccm', parameter: 'fir' }] }),
  ...['VP8', 'VP9', 'AV1'].map((c) => new RTCRtpCodecParameters({ mimeType: `video/${c}`, clockRate: 90000, rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }, { type: 'ccm', parameter: 'fir' }] })),
];
const AUDIO = [
  new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2 }),
  new RTCRtpCodecParameters({ mimeType: 'audio/PCMA', clockRate: 8000, channels: 1, payloadType: 8 }),
  new RTCRtpCodecParameters({ mimeType: 'audio/PCMU', clockRate: 8000, channels: 1, payloadType: 0 }),
];

/** Marks a connection's `portRange` option as "take the transport from this mux" (see hookWerift). */
const MUX = Symbol.for('m7s.webrtc.icemux');
type MuxMarker = [number, number] & { [MUX]?: (type: 'udp4' | 'udp6') => unknown };
let hooked = false;

/**
 * werift creates each host candidate's socket with `UdpTransport.init(type, { portRange, ... })`, reading
 * portRange from its ICE connection's options. For a connection whose portRange carries our marker, the
 * transport comes from the mux instead; every other caller (other peers, werift clients in tests) gets
 * werift's own socket. Installed once, on the class werift's ICE code calls.
 */
function hookWerift(): void {
  if (hooked) return;
  hooked = true;
  const U = UdpTransport as unknown as { init(type: string, options?: { portRange?: MuxMarker }): Promise<unknown> };
  const init = U.init;
  U.init = function (this: unknown, type: string, options?: { portRange?: MuxMarker }) {
    const make = options?.portRange?.[MUX];
    if (typeof make === 'function') return Promise.resolve().then(() => make(type === 'udp6' ? 'udp6' : 'udp4'));
    return init.call(this, type, options);
  };
  hookTurnRefresh();
}

/** werift's TURN client, as far as its allocation refresh goes. */
interface TurnClient {
  refresh: (exp: number) => void;
  server: unknown;
  /** Set once the allocation exists. */
  relayedAddress?: unknown;
  requestWithRetry(request: unknown, addr: unknown): Promise<[{ getAttributeValue(name: string): unknown }, unknown]>;
  [REFRESH_TIMER]?: ReturnType<typeof setTimeout>;
  [TURN_CLOSED]?: boolean;
}
const REFRESH_TIMER = Symbol('m7s.turn.refresh');
const TURN_CLOSED = Symbol('m7s.turn.closed');
/** How long close() waits for the TURN server to confirm the allocation's deletion. */
const DEALLOCATE_WAIT_MS = 1000;

/**
 * Server-side TURN gathering (webrtc.iceservers with a turn: URL): werift's TURN client refreshes its
 * allocation from a loop that sleeps 5/6 of the lifetime with a timer its close() cannot cancel, so a
 * closed session's client (and its socket's state) stayed alive for up to 500 s with a server's default
 * 600 s lifetime, and kept the process from exiting. Here the refresh is a timer that close() clears,
 * and close() deletes the allocation on the server at once (a Refresh with LIFETIME 0, RFC 8656 §7)
 * instead of leaving it until it expires.
 */
function hookTurnRefresh(): void {
  const P = TurnProtocol.prototype as unknown as { connectionMade(this: TurnClient): Promise<void>; close(this: TurnClient): Promise<void> };
  const made = P.connectionMade, close = P.close;
  if (typeof made !== 'function' || typeof close !== 'function') return;
  P.connectionMade = function (this: TurnClient) {
    this.refresh = (exp) => scheduleTurnRefresh(this, exp);
    return made.call(this);
  };
  P.close = async function (this: TurnClient) {
    if (!this[TURN_CLOSED]) {
      this[TURN_CLOSED] = true;
      clearTimeout(this[REFRESH_TIMER]);
      if (this.relayedAddress !== undefined) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        try {
          await Promise.race([
            this.requestWithRetry(new Message(methods.REFRESH, classes.REQUEST).setAttribute('LIFETIME', 0), this.server),
            new Promise((r) => { timer = setTimeout(r, DEALLOCATE_WAIT_MS); }),
          ]);
        } catch { /* the server lets it expire instead */ } finally { clearTimeout(timer); }
      }
    }
    return close.call(this);
  };
}

function scheduleTurnRefresh(t: TurnClient, exp: number): void {
  if (t[TURN_CLOSED]) return;
  const lifetime = Number(exp) > 0 ? Number(exp) : 600;
  t[REFRESH_TIMER] = setTimeout(async () => {
    if (t[TURN_CLOSED]) return;
    let next = lifetime;
    try {
      const [m] = await t.requestWithRetry(new Message(methods.REFRESH, classes.REQUEST).setAttribute('LIFETIME', lifetime), t.server);
      next = Number(m.getAttributeValue('LIFETIME')) || lifetime;
    } catch { /* tried again at the next turn, as werift does */ }
    scheduleTurnRefresh(t, next);
  }, (5 / 6) * lifetime * 1000);
}

/** An ICE ufrag the mux can route by: werift's own is 4 hex digits (65536 values: sessions would collide). */
const uniqueUfrag = (): string => toHex(crypto.getRandomValues(new Uint8Array(12)));

const isLoopback = (a: string): boolean => /^127\./.test(a) || a === '::1';

const u8 = (b: Uint8Array): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

/** Unix milliseconds as a 64-bit NTP timestamp (RFC 3550 §4: seconds, then a 32-bit binary fraction),
 * the form werift's Sender Reports take; the conversion is the RTSP plugin's (src/format/rtcp). */
export function ntpFromUnixMs(ms: number): bigint {
  const { ntpSec, ntpFrac } = toNtp(ms);
  return (BigInt(ntpSec) << 32n) | BigInt(ntpFrac);
}
const nowMs = (): number => performance.timeOrigin + performance.now();

/** An IP literal (werift sends to other remote addresses through its DNS-resolving path). */
const isIpLiteral = (h: string): boolean => parseIp(h) !== undefined;

/**
 * The WHEP send path of one sendonly transceiver once its DTLS transport is up: the shared packet is
 * copied once, given this viewer's SSRC and payload type, SRTP-protected with the transport's session
 * keys (srtp.ts) and sent on the nominated ICE pair's UDP socket, all synchronously. werift's own
 * sender would deserialize the packet, rebuild its header extensions, re-serialize, encrypt through
 * several Buffer.concat and send through a promise chain for every viewer and packet (~8x an RTMP
 * viewer). What werift still does here: ICE (and consent), DTLS, SRTCP, the RTCP loop (its Sender
 * Reports read the counters we keep on its sender object) and everything received.
 */
class FastSend {
  private stream: SrtpSendStream | undefined;
  private srtp: unknown;
  private dtls: any;
  private pair: any;
  private direct = false;
  private lastSendMs = 0;
  private weriftNtp: bigint | undefined;

  constructor(private readonly sender: any) {
    // werift's Sender Reports take the NTP time of the last packet sent from this field (which its own
    // sendRtp sets per packet, through a slow and wrong decimal-fraction ntpTime()): here it is the
    // correct NTP form of the time our last packet was sent, computed only when an SR is built.
    Object.defineProperty(sender, 'ntpTimestamp', {
      configurable: true,
      get: () => (this.weriftNtp ?? (this.lastSendMs ? ntpFromUnixMs(this.lastSendMs) : 0n)),
      set: (v: bigint) => { this.weriftNtp = v; },
    });
  }

  /** The SRTP stream, once DTLS is connected and the codec known (else the caller falls back to werift). */
  private ready(): SrtpSendStream | undefined {
    const dtls = this.sender.dtlsTransport;
    if (!dtls || dtls.state !== 'connected' || !dtls.srtp || !this.sender.codec) return undefined;
    if (this.stream && dtls === this.dtls && dtls.srtp === this.srtp) return this.stream;
    // Header extensions (none are configured, so werift negotiates none) or RED are written per packet
    // by werift's own sender: those sessions stay on its path.
    if (this.sender.redRedundantPayloadType || (this.sender.headerExtensions?.length ?? 0) > 0) return undefined;
    const lc = dtls.srtp.localContext;
    try {
      this.stream = new SrtpSendStream({ profile: lc.profile, key: lc.srtpSessionKey, salt: lc.srtpSessionSalt, authKey: lc.srtpSessionAuthTag }, this.sender.ssrc);
    } catch {
      return undefined; // a profile we do not handle: werift's path
    }
    this.dtls = dtls;
    this.srtp = dtls.srtp;
    this.pair = undefined;
    // werift starts its RTCP (Sender Report) loop from its first sendRtp; ours replaces that call.
    try { void Promise.resolve(this.sender.runRtcp()).catch(() => {}); } catch { /* already stopped */ }
    return this.stream;
  }

  /** Send a new packet (counted for Sender Reports) or a resend; false = not ready, use werift's path. */
  send(pkt: Uint8Array, resend: boolean): boolean {
    const st = this.ready();
    if (!st) return false;
    const s = this.sender;
    const out = st.protect(pkt, s.codec.payloadType, s.seqOffset ?? 0, s.timestampOffset ?? 0);
    if (!out) return true;
    if (!resend) {
      // The bookkeeping werift's sendRtp keeps and its RTCP SR/stats read (RFC 3550 §6.4.1).
      s.sequenceNumber = st.lastSeq;
      s.timestamp = st.lastTimestamp;
      s.rtpTimestamp = st.lastTimestamp;
      s.packetCount = (s.packetCount + 1) >>> 0;
      s.octetCount += st.lastPayloadBytes;
      this.lastSendMs = nowMs();
      this.weriftNtp = undefined;
    }
    const conn = this.dtls.iceTransport?.connection;
    if (!conn || !conn.canSendApplicationData()) return true; // no nominated pair or no consent: dropped, as werift does
    const pair = conn.nominated;
    if (pair !== this.pair) {
      this.pair = pair;
      const proto = pair.protocol;
      this.direct = proto?.type === 'stun' && !!proto.transport?.socket && isIpLiteral(String(pair.remoteAddr?.[0] ?? ''));
    }
    this.dtls.bytesSent += out.length;
    this.dtls.packetsSent++;
    if (this.direct) {
      const t = pair.protocol.transport;
      if (t.closed) return true;
      try { t.socket.send(out, pair.remoteAddr[1], pair.remoteAddr[0]); } catch { return true; }
      pair.packetsSent++;
      pair.bytesSent += out.length;
    } else {
      // TURN relay or an unresolved address: werift's (promise) path for the datagram only.
      conn.send(out).catch(() => {});
    }
    return true;
  }
}

class WeriftPeer implements Peer {
  readonly media: PeerMedia[] = [];
  state: PeerState = 'new';
  onStateChange?: (s: PeerState) => void;
  private readonly pc: RTCPeerConnection;
  private closed = false;
  private counters = { packetsSent: 0, packetsReceived: 0, nacks: 0, plis: 0, retransmitted: 0 };

  private readonly loopbackOnly: boolean;

  constructor(private readonly opts: PeerOptions) {
    const addr = opts.addresses?.filter(Boolean) ?? [];
    this.loopbackOnly = addr.length > 0 && addr.every(isLoopback);
    this.pc = new RTCPeerConnection({
      codecs: { video: VIDEO, audio: AUDIO },
      iceServers: opts.iceServers ?? [],
      iceUseIpv6: addr.length ? addr.some((a) => a.includes(':')) : false,
      icePortRange: opts.mux ? undefined : opts.portRange,
      iceInterfaceAddresses: addr.length ? { udp4: addr.find((a) => !a.includes(':')), udp6: addr.find((a) => a.includes(':')) } : undefined,
      iceAdditionalHostAddresses: [...addr, ...(opts.publicIps ?? [])].length ? [...addr, ...(opts.publicIps ?? [])] : undefined,
      bundlePolicy: 'max-bundle',
      // Sockets bound to loopback only talk to loopback: never pair with, or answer STUN from, anything else.
      iceFilterCandidatePair: this.loopbackOnly ? (pair) => isLoopback(pair.remoteCandidate.host) : undefined,
      iceFilterStunResponse: this.loopbackOnly ? (_m, addr) => isLoopback(addr[0]) : undefined,
    });
    this.pc.connectionStateChange.subscribe((s) => {
      this.state = s as PeerState;
      try { this.onStateChange?.(this.state); } catch { /* the owner's handler must not break werift's loop */ }
    });
  }

  async answer(offer: string, direction: 'recvonly' | 'sendonly'): Promise<string> {
    // Remote candidates a loopback-only server cannot use are dropped before werift sees them (it would
    // otherwise try them, and resolve mDNS ".local" names by multicast).
    if (this.loopbackOnly) offer = offer.split(/\r?\n/).filter((l) => !l.startsWith('a=candidate:') || isLoopback(l.split(' ')[4] ?? '')).join('\r\n');
    await this.pc.setRemoteDescription({ type: 'offer', sdp: offer });
    // werift's ICE agent falls back to stun.l.google.com:19302 when no STUN server is given: it would
    // send a DNS query and STUN requests to the internet for every session (and wait up to 5 s for
    // them). Without configured STUN servers, gather host candidates only.
    if (!(this.opts.iceServers ?? []).some((s) => /^stuns?:/i.test(s.urls))) {
      for (const t of this.pc.iceTransports) (t.connection as { stunServer?: unknown }).stunServer = undefined;
    }
    if (this.opts.mux) this.useMux(this.opts.mux);
    for (const tr of this.pc.getTransceivers()) this.wire(tr, direction);
    this.keepEarlyDtls();
    let ans = await this.pc.createAnswer();
    // DTLS role: werift answers "active" (DTLS client), and as the client waits 100 ms before its
    // ClientHello (RTCDtlsTransport.start in 0.24.4). Answering "passive" when the offer leaves the
    // choice to us (actpass, as browsers, OBS and libdatachannel offer) lets the remote send its
    // ClientHello as soon as its ICE is up: media flows ~100 ms sooner.
    if (/\na=setup:actpass/.test(offer)) ans = { type: 'answer', sdp: ans.sdp.replace(/\na=setup:active/g, '\na=setup:passive') } as typeof ans;
    // werift's setLocalDescription gathers every host candidate (and STUN/TURN ones, each bounded by
    // its own timeout) before it resolves; its gathering *state* sometimes stays "gathering" after that,
    // so wait for the event only briefly.
    await this.pc.setLocalDescription(ans);
    if (this.pc.iceGatheringState !== 'complete') await this.gathered(Math.min(this.opts.gatherTimeoutMs ?? 5000, 50));
    const sdp = this.filterCandidates(this.pc.localDescription?.sdp ?? '');
    if (!/\r\na=candidate:/.test(sdp)) throw new Error('no ICE candidate could be gathered on the configured addresses');
    return sdp;
  }

  /** Before gathering: a routable ufrag, and host candidates on the shared port (hookWerift). */
  private useMux(mux: IceMux): void {
    hookWerift();
    for (const t of this.pc.iceTransports) {
      const conn = t.connection as unknown as { localUsername: string; localPassword: string; userHistory: Record<string, string>; options: { portRange?: MuxMarker } };
      delete conn.userHistory[conn.localUsername];
      const ufrag = uniqueUfrag();
      conn.localUsername = ufrag;
      conn.userHistory[ufrag] = conn.localPassword;
      conn.options.portRange = Object.assign([0, 0] as [number, number], { [MUX]: (type: 'udp4' | 'udp6') => mux.transport(type, ufrag) });
    }
  }

  private wire(tr: RTCRtpTransceiver, direction: 'recvonly' | 'sendonly'): void {
    const kind = tr.kind as 'audio' | 'video';
    const mid = tr.mid ?? String(this.media.length);
    const counters = this.counters;
    let mediaSsrc = 0;
    const m: PeerMedia = {
      mid, kind,
      requestKeyframe: () => {
        if (this.closed || !mediaSsrc) return;
        counters.plis++;
        tr.receiver.sendRtcpPLI(mediaSsrc).catch(() => {});
      },
      send: () => {},
      resend: () => {},
    };
    tr.setDirection(direction);
    if (direction === 'recvonly') {
      // werift announces remote tracks during setRemoteDescription (before we get here): take those
      // already on the receiver, and any announced later.
      const seen = new Set<MediaStreamTrack>();
      const listen = (track: MediaStreamTrack) => {
        if (seen.has(track)) return;
        seen.add(track);
        track.onReceiveRtp.subscribe((rtp) => {
          counters.packetsReceived++;
          mediaSsrc = rtp.header.ssrc;
          try { m.onRtp?.(u8(rtp.serialize())); } catch { /* isolated: the owner counts its own errors */ }
        });
      };
      for (const track of tr.receiver.tracks) listen(track);
      tr.onTrack.subscribe((track) => listen(track));
      tr.receiver.onRtcp.subscribe((r: any) => {
        if (r?.type !== 200 || !r.senderInfo) return;
        const ntp = BigInt(r.senderInfo.ntpTimestamp);
        try { m.onSenderReport?.(Number(ntp >> 32n), Number(ntp & 0xffffffffn), r.senderInfo.rtpTimestamp >>> 0); } catch { /* isolated */ }
      });
    } else {
      const track = new MediaStreamTrack({ kind });
      void tr.sender.replaceTrack(track);
      const sender = tr.sender as any;
      // werift keeps a 128-packet history per sender and answers NACKs from it: every viewer would hold
      // its own copy of the same packets. The stream-wide history (whep.ts) answers instead, so werift's
      // is switched off (writes ignored, reads find nothing).
      Object.defineProperty(sender, 'rtpCache', { get: () => NO_HISTORY, set: () => {}, configurable: true });
      const fast = this.opts.fastSend === false ? undefined : new FastSend(sender);
      m.send = (pkt) => {
        if (this.closed) return;
        counters.packetsSent++;
        if (fast?.send(pkt, false)) return;
        track.writeRtp(Buffer.from(pkt.buffer, pkt.byteOffset, pkt.byteLength));
      };
      m.resend = (pkt) => {
        if (this.closed) return;
        if (fast?.send(pkt, true)) { counters.retransmitted++; return; }
        if (sender.dtlsTransport?.state !== 'connected' || !sender.codec) return;
        // The shared packet with this viewer's SSRC and payload type (as werift's sendRtp sets them);
        // sequence number and timestamp as first sent (werift's offsets stay 0: the track is never replaced).
        const rtp = RtpPacket.deSerialize(Buffer.from(pkt.buffer, pkt.byteOffset, pkt.byteLength));
        rtp.header.ssrc = sender.ssrc;
        rtp.header.payloadType = sender.codec.payloadType;
        rtp.header.sequenceNumber = (rtp.header.sequenceNumber + (sender.seqOffset ?? 0)) & 0xffff;
        rtp.header.timestamp = (rtp.header.timestamp + (sender.timestampOffset ?? 0)) >>> 0;
        counters.retransmitted++;
        sender.dtlsTransport.sendRtp(rtp.payload, rtp.header).catch(() => {});
      };
      tr.sender.onRtcp.subscribe((r: any) => {
        // PSFB (206): fmt 1 = PLI, fmt 4 = FIR; RTPFB (205) fmt 1 = generic NACK.
        const fmt = r?.feedback?.count ?? r?.feedback?.fmt;
        if (r?.type === 206 && (fmt === 1 || fmt === 4)) {
          try { m.onKeyframeRequest?.(); } catch { /* isolated */ }
        } else if (r?.type === 205 && fmt === 1) {
          counters.nacks++;
          const lost: number[] = (r.feedback.lost ?? []).map((x: number) => (x - (sender.seqOffset ?? 0)) & 0xffff);
          try { m.onNack?.(lost); } catch { /* isolated */ }
        }
      });
    }
    this.media.push(m);
  }

  /**
   * werift creates its DTLS endpoint only once its own ICE agent reports connected, and drops DTLS
   * records that arrive before: the remote (DTLS client, see answer()) sends its ClientHello as soon as
   * *its* ICE is up, often first, and then waits for its retransmission timer (~50 ms in Chromium).
   * Keep those early records (at most 8) and hand them over once werift's endpoint exists.
   */
  private keepEarlyDtls(): void {
    for (const dt of (this.pc as any).dtlsTransports ?? []) {
      const conn = dt?.iceTransport?.connection;
      if (!conn?.onData?.subscribe || !dt.onStateChange?.subscribe) continue;
      const early: Uint8Array[] = [];
      const data = conn.onData.subscribe((b: Uint8Array) => {
        if (!dt.dtls && early.length < 8 && b.length >= 13 && b[0]! >= 20 && b[0]! <= 63) early.push(b);
      });
      const state = dt.onStateChange.subscribe((st: string) => {
        if (st === 'new') return;
        data.unSubscribe();
        state.unSubscribe();
        // "connecting" is set just before the endpoint is made (synchronously): replay right after.
        if (st === 'connecting' && early.length) queueMicrotask(() => { if (dt.dtls && !this.closed) for (const b of early.splice(0)) conn.onData.execute(b); });
      });
    }
  }

  private gathered(timeoutMs: number): Promise<void> {
    if (this.pc.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => { sub.unSubscribe(); resolve(); }, timeoutMs);
      const sub = this.pc.iceGatheringStateChange.subscribe((s) => {
        if (s === 'complete') { clearTimeout(t); sub.unSubscribe(); resolve(); }
      });
    });
  }

  /** Drop host candidates on addresses outside `addresses` (werift gathers every interface). */
  private filterCandidates(sdp: string): string {
    const allow = this.opts.addresses?.filter(Boolean) ?? [];
    if (!allow.length) return sdp;
    const ok = new Set([...allow, ...(this.opts.publicIps ?? [])]);
    return sdp.split('\r\n').filter((l) => {
      if (!l.startsWith('a=candidate:')) return true;
      const f = l.split(' ');
      return ok.has(f[4] ?? '');
    }).join('\r\n');
  }

  async addCandidate(candidate: string, mid?: string): Promise<void> {
    if (this.loopbackOnly && !isLoopback(candidate.split(' ')[4] ?? '')) return;
    await this.pc.addIceCandidate({ candidate, sdpMid: mid });
  }

  stats() { return { ...this.counters }; }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pc.close().catch(() => {});
  }
}

export function createPeer(opts: PeerOptions = {}): Peer {
  return new WeriftPeer(opts);
}
