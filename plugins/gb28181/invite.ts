// One INVITE session: live play, playback or download of one channel into one stream.
//
//   allocate the media endpoint (UDP port / TCP listener from mediaport, or nothing yet for TCP active)
//   -> INVITE with an SDP offer (y= SSRC; playback: s=Playback, u=, t=) -> 200 OK -> ACK
//   -> TCP active: connect to the device's port from its answer -> RTP/PS -> Publisher
//   stop: BYE (when the dialog exists), close sockets, remove the session.
// MANSRTSP INFO in the dialog carries playback pause/resume/seek/speed.

import type { Logger, PluginContext, Publisher, SessionHandle } from '../../src/plugin.ts';
import type { TcpConn, TcpServer, UdpSocket } from '../../src/net/types.ts';
import { parseSdp } from '../../src/format/sdp/index.ts';
import { formatNameAddr, header, parseNameAddr, randomToken, type SipMessage } from '../../src/format/sip/index.ts';
import { textDecoder } from '../../src/format/bytes.ts';
import { parsePortRange } from '../../src/net/udp.ts';
import type { Device } from './device.ts';
import type { Dialog, SipEndpoint } from './sip.ts';
import { type MediaTransport, Rfc4571Parser, RtpPsIngest } from '../../src/ingest/rtp.ts';

export interface InviteEnv {
  ctx: PluginContext<any>;
  logger: Logger;
  sip: SipEndpoint;
  serial: string;
  realm: string;
  mediaip: string;
  mediaport: string;
  inviteTimeout: number;
  reorder: number;
  /** The publish section for invited streams (delayclosetimeout from releasedelay). */
  publishConfig(): any;
  /** Called when the session has ended (remove it from the plugin's maps). */
  ended(s: InviteSession): void;
}

export interface InviteOptions {
  streamPath: string;
  transport: MediaTransport;
  kind: 'live' | 'playback' | 'download';
  /** Playback/download range, unix seconds. */
  start?: number;
  end?: number;
  downloadSpeed?: number;
}

let ssrcSeq = 0;

export class InviteSession {
  state: 'inviting' | 'playing' | 'closed' = 'inviting';
  closeReason = '';
  readonly ssrc: string;
  readonly startTime = Date.now();
  dialog: Dialog | null = null;
  publisher: Publisher | null = null;
  ingest: RtpPsIngest | null = null;
  private udp: UdpSocket | null = null;
  private tcpServer: TcpServer | null = null;
  private tcpConn: TcpConn | null = null;
  mediaPort = 0;
  handle: SessionHandle | null = null;
  private infoSeq = 1;

  constructor(readonly env: InviteEnv, readonly device: Device, readonly channelId: string, readonly opts: InviteOptions) {
    // y= SSRC (GB/T 28181 annex F): 0 live / 1 history, 5 digits of the domain, 4 of a sequence.
    ssrcSeq = (ssrcSeq + 1) % 10000;
    this.ssrc = (opts.kind === 'live' ? '0' : '1') + env.realm.slice(3, 8).padEnd(5, '0') + String(ssrcSeq).padStart(4, '0');
  }

  get streamPath(): string { return this.opts.streamPath; }

  info(): Record<string, unknown> {
    return {
      deviceId: this.device.id, channelId: this.channelId, kind: this.opts.kind, transport: this.opts.transport, ssrc: this.ssrc,
      state: this.state, mediaPort: this.mediaPort, ...(this.ingest ? { rtp: this.ingest.stats } : {}),
      ...(this.opts.start !== undefined ? { start: this.opts.start, end: this.opts.end } : {}),
    };
  }

  /** Run the INVITE; resolves once the device answered 200 and media may flow. Throws (after cleanup) on failure. */
  async start(): Promise<void> {
    const { env, device } = this;
    const target = device.target;
    if (!target || !device.online) throw new Error(`device ${device.id} is not online`);
    try {
      await this.openMedia();
      const sdp = this.offer();
      const uri = `sip:${this.channelId}@${hostOfContact(device.contact) ?? env.realm}`;
      const req = env.sip.newRequest('INVITE', uri, this.channelId, target, [
        ['Contact', env.sip.contact(target)],
        ['Subject', `${this.channelId}:${this.ssrc},${env.serial}:0`],
        ['Content-Type', 'APPLICATION/SDP'],
      ], sdp);
      req.headers = req.headers.map(([k, v]): [string, string] => k === 'To' ? [k, formatNameAddr({ uri: `sip:${this.channelId}@${env.realm}`, params: {} })] : [k, v]);
      const cseq = Number(header(req, 'CSeq')!.split(' ')[0]);
      this.dialog = { callId: header(req, 'Call-ID')!, from: header(req, 'From')!, to: header(req, 'To')!, cseq, target: uri, inviteCseq: cseq };
      let provisional = false;
      const res = await env.sip.request(req, target, { timeout: env.inviteTimeout, onProvisional: () => { provisional = true; } }).catch((err) => {
        // A device that said Trying/Ringing but never answered: CANCEL the INVITE (RFC 3261 9.1) so it
        // does not start sending later; one that said nothing gets nothing more.
        if (provisional) this.cancel(req);
        throw err;
      });
      if (this.state === 'closed') { if (res.status === 200) this.ack(res); throw new Error(this.closeReason || 'stopped'); }
      if (res.status !== 200) {
        this.dialog = null;
        throw new Error(`device answered INVITE with ${res.status} ${res.reason ?? ''}`.trim());
      }
      this.dialog.to = header(res, 'To')!;
      const contact = header(res, 'Contact');
      if (contact) this.dialog.target = parseNameAddr(contact).uri;
      this.ack(res);
      const answer = parseSdp(textDecoder.decode(res.body));
      if (this.opts.transport === 'tcp-active') await this.connectActive(answer, res);
      this.publisher = await env.ctx.publish(this.streamPath, { type: 'pull', remote: device.remote(), config: env.publishConfig() });
      this.publisher.onStop = (reason) => this.stop(`stream stopped: ${reason}`);
      this.publisher.onKeyframeRequest = () => this.keyframeRequest?.();
      this.ingest = new RtpPsIngest(this.publisher, { reorder: this.opts.transport === 'udp' ? env.reorder : 0 });
      this.publisher.extraInfo = () => ({ gb28181: this.info() });
      this.state = 'playing';
      env.logger.info('gb28181: invite answered', { stream: this.streamPath, device: device.id, channel: this.channelId, transport: this.opts.transport, ssrc: this.ssrc });
    } catch (err) {
      this.stop(`invite failed: ${(err as Error)?.message ?? String(err)}`);
      throw err;
    }
  }

  private cancel(invite: SipMessage): void {
    const target = this.device.target;
    if (!target) return;
    const keep = new Set(['via', 'from', 'to', 'call-id', 'max-forwards']);
    const headers = invite.headers.filter(([k]) => keep.has(k.toLowerCase()));
    headers.push(['CSeq', `${header(invite, 'CSeq')!.split(' ')[0]} CANCEL`]);
    this.env.sip.request({ method: 'CANCEL', uri: invite.uri, headers, body: new Uint8Array(0) }, target).catch(() => {});
  }

  /** Set by the plugin: send an IDR request (IFameCmd) to the device. */
  keyframeRequest: (() => void) | null = null;

  private ack(res: SipMessage): void {
    const d = this.dialog!;
    const target = this.device.target;
    if (!target) return;
    const ack = this.env.sip.newRequest('ACK', d.target, this.channelId, target, [['Contact', this.env.sip.contact(target)]], undefined, { ...d, to: header(res, 'To')!, cseq: d.inviteCseq - 1 });
    this.env.sip.send(ack, target);
  }

  private offer(): string {
    const { opts, env } = this;
    const tcp = opts.transport !== 'udp';
    const s = opts.kind === 'live' ? 'Play' : opts.kind === 'playback' ? 'Playback' : 'Download';
    const lines = [
      'v=0', `o=${this.channelId} 0 0 IN IP4 ${env.mediaip}`, `s=${s}`,
      ...(opts.kind === 'live' ? [] : [`u=${this.channelId}:0`]),
      `c=IN IP4 ${env.mediaip}`,
      opts.kind === 'live' ? 't=0 0' : `t=${opts.start ?? 0} ${opts.end ?? 0}`,
      `m=video ${this.mediaPort || 9} ${tcp ? 'TCP/RTP/AVP' : 'RTP/AVP'} 96 97 98`,
      'a=recvonly', 'a=rtpmap:96 PS/90000', 'a=rtpmap:97 MPEG4/90000', 'a=rtpmap:98 H264/90000',
      ...(tcp ? [`a=setup:${opts.transport === 'tcp-passive' ? 'passive' : 'active'}`, 'a=connection:new'] : []),
      ...(opts.kind === 'download' ? [`a=downloadspeed:${opts.downloadSpeed ?? 4}`] : []),
      `y=${this.ssrc}`,
    ];
    return lines.join('\r\n') + '\r\n';
  }

  private async openMedia(): Promise<void> {
    const { env, opts } = this;
    if (opts.transport === 'tcp-active') return;
    const ports = portCandidates(env.mediaport);
    let lastErr: unknown;
    for (const port of ports) {
      try {
        if (opts.transport === 'udp') {
          const sock = await env.ctx.bindUdp({ port, what: `GB28181 media ${this.streamPath}`, recvBufferSize: 4 * 1024 * 1024 });
          this.udp = sock;
          this.mediaPort = sock.port;
          sock.onMessage = (data) => this.ingest?.packet(data);
          sock.onError = () => {};
        } else {
          const server = await env.ctx.runtime.listenTcp({ port }, (conn) => this.acceptTcp(conn));
          this.tcpServer = server;
          this.mediaPort = server.port;
        }
        if (this.state === 'closed') { await this.closeMedia(); throw new Error(this.closeReason); }
        return;
      } catch (err) {
        lastErr = err;
      }
    }
    throw new Error(`no free media port in ${env.mediaport || 'the ephemeral range'}: ${(lastErr as Error)?.message ?? lastErr}`);
  }

  private acceptTcp(conn: TcpConn): void {
    if (this.tcpConn || this.state === 'closed') { conn.destroy(); return; }
    this.tcpConn = conn;
    this.readTcp(conn);
  }

  private readTcp(conn: TcpConn): void {
    const parser = new Rfc4571Parser();
    conn.onData = (chunk) => {
      try {
        parser.push(chunk, (p) => this.ingest?.packet(p));
      } catch (err) {
        this.env.logger.warn('gb28181: bad RFC 4571 media stream', { stream: this.streamPath, error: (err as Error).message });
        conn.destroy();
      }
    };
    conn.onClose = () => { if (this.state !== 'closed') this.stop('media TCP connection closed'); };
  }

  private async connectActive(answer: ReturnType<typeof parseSdp>, res: SipMessage): Promise<void> {
    const m = answer.media[0];
    const c = (m?.connection ?? answer.connection ?? '').split(/\s+/)[2];
    if (!m || !c || !m.port) throw new Error(`device's SDP answer has no media address (${res.status})`);
    const conn = await this.env.ctx.connectTcp({ host: c, port: m.port, timeout: 5000 });
    this.tcpConn = conn;
    this.readTcp(conn);
  }

  /** Playback control over MANSRTSP (INFO in the dialog). */
  async control(op: 'pause' | 'resume' | 'seek' | 'speed', value?: number): Promise<void> {
    const d = this.dialog, target = this.device.target;
    if (!d || !target || this.state !== 'playing') throw new Error('no playing dialog');
    const n = this.infoSeq++;
    let body: string;
    if (op === 'pause') body = `PAUSE RTSP/1.0\r\nCSeq: ${n}\r\nPauseTime: now\r\n\r\n`;
    else if (op === 'resume') body = `PLAY RTSP/1.0\r\nCSeq: ${n}\r\nRange: npt=now-\r\n\r\n`;
    else if (op === 'seek') body = `PLAY RTSP/1.0\r\nCSeq: ${n}\r\nRange: npt=${value ?? 0}-\r\n\r\n`;
    else body = `PLAY RTSP/1.0\r\nCSeq: ${n}\r\nScale: ${(value ?? 1).toFixed(1)}\r\n\r\n`;
    const req = this.env.sip.newRequest('INFO', d.target, this.channelId, target, [['Content-Type', 'Application/MANSRTSP']], body, d);
    const res = await this.env.sip.request(req, target);
    if (res.status !== 200) throw new Error(`device answered INFO with ${res.status}`);
  }

  /** End the session: BYE if a dialog exists, close media, stop the publisher. Idempotent. */
  stop(reason: string): void {
    if (this.state === 'closed') return;
    const wasPlaying = this.state === 'playing';
    this.state = 'closed';
    this.closeReason = reason;
    const d = this.dialog, target = this.device.target;
    if (d && target && wasPlaying) {
      const bye = this.env.sip.newRequest('BYE', d.target, this.channelId, target, [], undefined, d);
      this.env.sip.request(bye, target).catch(() => {});
    }
    void this.closeMedia();
    this.ingest?.close();
    if (this.publisher && !this.publisher.closed) {
      this.publisher.onStop = null;
      this.env.ctx.engine.stopStream(this.streamPath, reason);
    }
    this.env.logger.info('gb28181: session ended', { stream: this.streamPath, device: this.device.id, channel: this.channelId, reason });
    this.handle?.remove(reason);
    this.env.ended(this);
  }

  /** The device ended the call (BYE). */
  remoteBye(): void {
    this.dialog = null;
    this.stop('device sent BYE');
  }

  private async closeMedia(): Promise<void> {
    const u = this.udp, s = this.tcpServer, c = this.tcpConn;
    this.udp = null; this.tcpServer = null; this.tcpConn = null;
    if (c && !c.closed) c.destroy();
    await Promise.allSettled([u?.close(), s?.close()]);
  }
}

function hostOfContact(contact: string): string | undefined {
  const m = /@([^;>]+)/.exec(contact);
  return m?.[1];
}

/** Ports to try: random order within mediaport (a few dozen), or 0 (ephemeral) when it is empty. */
function portCandidates(range: string): number[] {
  if (!range) return [0];
  const r = parsePortRange(range);
  const n = r.max - r.min + 1;
  const out: number[] = [];
  const start = Math.floor(Math.random() * n);
  for (let i = 0; i < Math.min(n, 50); i++) out.push(r.min + ((start + i) % n));
  return out;
}

export { randomToken };
