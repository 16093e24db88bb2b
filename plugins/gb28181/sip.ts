// The SIP side of the GB28181 server: UDP and TCP transports, server and client transactions, and the
// requests the server sends (MESSAGE, INVITE, ACK, BYE, INFO). Every received message goes through
// src/format/sip; a malformed datagram is counted and dropped, a malformed TCP stream closes its
// connection, and a handler's throw ends that request only (500), never the transport.

import type { Logger } from '../../src/plugin.ts';
import type { TcpConn, UdpSocket } from '../../src/net/types.ts';
import {
  ClientTransactions, formatNameAddr, header, newBranch, parseNameAddr, parseSipMessage, parseVia, randomToken, serializeSip,
  ServerTransactions, SipStreamParser, type SipMessage,
} from '../../src/format/sip/index.ts';
import { FormatError, textEncoder } from '../../src/format/bytes.ts';

/** Where a device is reached: a UDP address, or the TCP connection it registered on. */
export type SipTarget = { kind: 'udp'; address: string; port: number } | { kind: 'tcp'; conn: TcpConn };

export interface SipStats { received: number; sent: number; malformed: number; retransmissions: number }

export interface SipEnvironment {
  logger: Logger;
  /** Our SIP ID (serial) and realm (domain). */
  serial: string;
  realm: string;
  /** The address we put in Via/Contact (sipip). */
  sipip: string;
  /** Transaction timers (ms); the final-response timeout (Timer B/F). */
  t1: number;
  timeout: number;
  onRequest(req: SipMessage, from: SipTarget, reply: (status: number, extra?: [string, string][], body?: Uint8Array) => void): void | Promise<void>;
}

export class SipEndpoint {
  readonly stats: SipStats = { received: 0, sent: 0, malformed: 0, retransmissions: 0 };
  private readonly client: ClientTransactions;
  private readonly server = new ServerTransactions();
  private udp: UdpSocket | null = null;
  private tcpPort = 0;
  private readonly tcpConns = new Set<TcpConn>();
  private cseq = 1;
  private sweep: ReturnType<typeof setInterval>;

  constructor(private readonly env: SipEnvironment) {
    this.client = new ClientTransactions({ t1: env.t1, timeout: env.timeout });
    this.sweep = setInterval(() => this.server.sweep(), 5000);
  }

  get udpPort(): number { return this.udp?.port ?? 0; }

  attachUdp(sock: UdpSocket): void {
    this.udp = sock;
    sock.onMessage = (data, from) => this.receive(data, { kind: 'udp', address: unmap(from.address), port: from.port });
    sock.onError = (err) => this.env.logger.debug('SIP UDP error', { error: err });
  }

  setTcpPort(port: number): void { this.tcpPort = port; }

  /** A TCP connection (a device connected to our SIP TCP port). */
  attachTcp(conn: TcpConn): void {
    this.tcpConns.add(conn);
    const parser = new SipStreamParser();
    const target: SipTarget = { kind: 'tcp', conn };
    conn.onData = (chunk) => {
      let msgs: SipMessage[];
      try {
        msgs = parser.push(chunk);
      } catch (e) {
        this.stats.malformed++;
        this.env.logger.warn('bad SIP on TCP: closing the connection', { remote: `${conn.remoteAddress}:${conn.remotePort}`, error: (e as Error).message });
        conn.destroy();
        return;
      }
      for (const m of msgs) this.handle(m, target);
    };
    conn.onClose = () => { this.tcpConns.delete(conn); this.onTcpClose?.(conn); };
  }

  /** Called when a SIP TCP connection closes (devices registered on it become unreachable). */
  onTcpClose: ((conn: TcpConn) => void) | null = null;

  private receive(data: Uint8Array, from: SipTarget): void {
    // A lone CRLF (or CRLFCRLF) is a keep-alive ping (RFC 5626 3.5.1): answer CRLF.
    if (data.length <= 4 && data.every((b) => b === 13 || b === 10)) return;
    let m: SipMessage;
    try {
      m = parseSipMessage(data);
    } catch (e) {
      this.stats.malformed++;
      if (!(e instanceof FormatError)) throw e;
      this.env.logger.debug('bad SIP datagram dropped', { remote: describe(from), error: e.message });
      return;
    }
    this.handle(m, from);
  }

  private handle(m: SipMessage, from: SipTarget): void {
    this.stats.received++;
    if (m.status !== undefined) {
      if (m.status >= 300 && /\bINVITE\s*$/i.test(header(m, 'CSeq') ?? '')) this.ackFailure(m, from);
      if (!this.client.onResponse(m)) this.env.logger.debug('SIP response without a transaction', { status: m.status, remote: describe(from) });
      return;
    }
    let check: 'new' | Uint8Array | null;
    try { check = this.server.check(m); } catch { this.stats.malformed++; return; }
    if (check !== 'new') {
      this.stats.retransmissions++;
      if (check) this.sendBytes(check, from);
      return;
    }
    if (m.method === 'ACK') { void this.env.onRequest(m, from, () => {}); return; }
    let answered = false;
    const reply = (status: number, extra: [string, string][] = [], body?: Uint8Array) => {
      if (answered && status >= 200) return;
      if (status >= 200) answered = true;
      const res = this.response(m, status, extra, body, from);
      const bytes = serializeSip(res);
      if (status >= 200) this.server.answered(m, bytes);
      this.sendBytes(bytes, from);
    };
    Promise.resolve()
      .then(() => this.env.onRequest(m, from, reply))
      .catch((err) => {
        this.env.logger.warn('SIP request handler failed', { method: m.method, error: err });
        reply(500);
      });
  }

  /** ACK a non-2xx final response to an INVITE (RFC 3261 17.1.1.3), so the device stops repeating it. */
  private ackFailure(res: SipMessage, to: SipTarget): void {
    const h = (n: string) => header(res, n) ?? '';
    const uri = parseNameAddr(h('To')).uri;
    const headers: [string, string][] = [
      ['Via', h('Via').split(',')[0]!.trim()], ['From', h('From')], ['To', h('To')], ['Call-ID', h('Call-ID')],
      ['CSeq', `${h('CSeq').trim().split(/\s+/)[0]} ACK`], ['Max-Forwards', '70'],
    ];
    this.sendBytes(serializeSip({ method: 'ACK', uri, headers, body: new Uint8Array(0) }), to);
  }

  /** A response to `req` (Via, From, To, Call-ID, CSeq copied; To tag added for final responses). */
  response(req: SipMessage, status: number, extra: [string, string][] = [], body?: Uint8Array, from?: SipTarget): SipMessage {
    const headers: [string, string][] = [];
    let first = true;
    for (const [k, v] of req.headers) {
      const n = k.toLowerCase();
      if (n === 'via') {
        // rport (RFC 3581): tell a device behind NAT which address and port we saw on its top Via.
        if (first && from?.kind === 'udp' && /;\s*rport\s*(?=;|$|,)/i.test(v.split(',')[0]!)) {
          headers.push([k, v.replace(/;\s*rport\s*(?=;|$|,)/i, `;rport=${from.port};received=${from.address}`)]);
        } else headers.push([k, v]);
        first = false;
      } else if (n === 'from' || n === 'call-id' || n === 'cseq') headers.push([k, v]);
      else if (n === 'to') headers.push([k, status > 100 && !/;\s*tag=/i.test(v) ? `${v};tag=${this.toTag(req)}` : v]);
    }
    headers.push(['User-Agent', 'm7s'], ...extra);
    return { status, reason: undefined, headers, body: body ?? new Uint8Array(0) };
  }

  private readonly tags = new Map<string, string>();
  private toTag(req: SipMessage): string {
    const id = header(req, 'Call-ID') ?? '';
    let t = this.tags.get(id);
    if (!t) {
      t = randomToken('', 10);
      if (this.tags.size > 10000) this.tags.clear();
      this.tags.set(id, t);
    }
    return t;
  }

  sendBytes(bytes: Uint8Array, to: SipTarget): void {
    this.stats.sent++;
    if (to.kind === 'udp') this.udp?.send(bytes, to.port, to.address);
    else if (!to.conn.closed) to.conn.write(bytes);
  }

  /** Via for a request of ours over `to`. */
  private via(to: SipTarget, branch: string): string {
    const t = to.kind === 'udp' ? 'UDP' : 'TCP';
    const port = to.kind === 'udp' ? this.udpPort : this.tcpPort;
    return `SIP/2.0/${t} ${this.env.sipip}:${port};rport;branch=${branch}`;
  }

  contact(to: SipTarget): string {
    const port = to.kind === 'udp' ? this.udpPort : this.tcpPort;
    return `<sip:${this.env.serial}@${this.env.sipip}:${port}>`;
  }

  /** Build a request outside a dialog (MESSAGE) or starting one (INVITE). */
  newRequest(method: string, requestUri: string, toUser: string, to: SipTarget, extra: [string, string][] = [], body?: Uint8Array | string, dialog?: Dialog): SipMessage {
    const headers: [string, string][] = [
      ['Via', this.via(to, newBranch())],
      ['From', dialog ? dialog.from : formatNameAddr({ uri: `sip:${this.env.serial}@${this.env.realm}`, params: { tag: randomToken('', 10) } })],
      ['To', dialog ? dialog.to : formatNameAddr({ uri: `sip:${toUser}@${this.env.realm}`, params: {} })],
      ['Call-ID', dialog ? dialog.callId : randomToken('', 20)],
      ['CSeq', `${dialog ? ++dialog.cseq : this.cseq++} ${method}`],
      ['Max-Forwards', '70'],
      ['User-Agent', 'm7s'],
      ...extra,
    ];
    return { method, uri: requestUri, headers, body: typeof body === 'string' ? textEncoder.encode(body) : body ?? new Uint8Array(0) };
  }

  /** Send a request and wait for its final response (retransmitted over UDP; SipTimeoutError after Timer B/F). */
  request(req: SipMessage, to: SipTarget, opts: { onProvisional?: (m: SipMessage) => void; timeout?: number } = {}): Promise<SipMessage> {
    const bytes = serializeSip(req);
    return this.client.request(req, () => this.sendBytes(bytes, to), to.kind === 'tcp', opts.onProvisional, opts.timeout);
  }

  /** Send without a transaction (ACK). */
  send(req: SipMessage, to: SipTarget): void {
    this.sendBytes(serializeSip(req), to);
  }

  close(): void {
    clearInterval(this.sweep);
    this.client.close('SIP endpoint closed');
  }
}

/** The state of an INVITE dialog (RFC 3261 12): what in-dialog requests (ACK, BYE, INFO) reuse. */
export interface Dialog {
  callId: string;
  from: string;
  to: string;
  cseq: number;
  /** The remote target (Contact of the 200 OK, else the INVITE's Request-URI). */
  target: string;
  inviteCseq: number;
}

function unmap(a: string): string {
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

export function describe(t: SipTarget): string {
  return t.kind === 'udp' ? `udp:${t.address}:${t.port}` : `tcp:${t.conn.remoteAddress}:${t.conn.remotePort}`;
}

export { parseVia };
