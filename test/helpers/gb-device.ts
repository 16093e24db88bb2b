// A simulated GB28181 device (camera/NVR) for tests, written from GB/T 28181-2016 and RFC 3261 — it
// shares no code with the server (its own SIP text handling, digest, GBK encoder, PS muxer, RTP
// packetizer), so both sides must agree with the standard rather than with each other.
//
//   REGISTER with digest (401 → Authorization), Keepalive MESSAGEs, answers Catalog (names in GBK),
//   DeviceInfo and RecordInfo queries, records DeviceControl (PTZCmd, IFameCmd), answers INVITE (live,
//   Playback) over UDP, TCP passive (it connects) and TCP active (it listens), sends H.264/H.265 + G.711A
//   as MPEG-PS over RTP (RFC 4571 framing on TCP), obeys MANSRTSP INFO (PAUSE, PLAY Range/Scale) and BYE.
import dgram from 'node:dgram';
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ffmpegPath, run } from './media.ts';

const md5 = (s: string) => createHash('md5').update(s).digest('hex');
const rnd = () => randomBytes(6).toString('hex');

// ------------------------------------------------------------------ GBK encoding (TextEncoder is UTF-8 only)
let gbkTable: Map<string, number> | null = null;
export function gbkEncode(s: string): Uint8Array {
  if (!gbkTable) {
    gbkTable = new Map();
    const dec = new TextDecoder('gbk');
    for (let hi = 0x81; hi <= 0xfe; hi++) {
      for (let lo = 0x40; lo <= 0xfe; lo++) {
        if (lo === 0x7f) continue;
        const ch = dec.decode(new Uint8Array([hi, lo]));
        if (ch.length === 1 && ch !== '\ufffd' && !gbkTable.has(ch)) gbkTable.set(ch, (hi << 8) | lo);
      }
    }
  }
  const out: number[] = [];
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (c < 0x80) { out.push(c); continue; }
    const v = gbkTable.get(ch);
    if (v === undefined) throw new Error(`no GBK code for ${ch}`);
    out.push(v >> 8, v & 0xff);
  }
  return new Uint8Array(out);
}

// ------------------------------------------------------------------ SIP text
interface Msg { first: string; headers: [string, string][]; body: Buffer }
function hdr(m: Msg, name: string): string | undefined {
  const n = name.toLowerCase();
  return m.headers.find(([k]) => k.toLowerCase() === n)?.[1];
}
function parseMsg(b: Buffer): Msg {
  const end = b.indexOf('\r\n\r\n');
  const head = b.subarray(0, end).toString('utf8').split('\r\n');
  const headers = head.slice(1).map((l): [string, string] => [l.slice(0, l.indexOf(':')).trim(), l.slice(l.indexOf(':') + 1).trim()]);
  const m: Msg = { first: head[0]!, headers, body: Buffer.alloc(0) };
  const len = Number(hdr(m, 'Content-Length') ?? hdr(m, 'l') ?? 0);
  m.body = b.subarray(end + 4, end + 4 + len);
  return m;
}
function build(first: string, headers: [string, string][], body: Uint8Array = new Uint8Array(0)): Buffer {
  let s = first + '\r\n';
  for (const [k, v] of headers) s += `${k}: ${v}\r\n`;
  s += `Content-Length: ${body.length}\r\n\r\n`;
  return Buffer.concat([Buffer.from(s), body]);
}
const xmlText = (xml: string, tag: string) => new RegExp(`<${tag}>([^<]*)</${tag}>`, 'i').exec(xml)?.[1] ?? '';

// ------------------------------------------------------------------ media: its own PS muxer + RTP
export interface GbMedia { codec: 'h264' | 'h265'; video: Buffer[]; keys: boolean[]; alaw: Buffer; fps: number }

/** ffmpeg → H.264/H.265 Annex B access units (AUD-split) + 8 kHz A-law, `seconds` long. */
export async function makeGbMedia(dir: string, codec: 'h264' | 'h265' = 'h264', seconds = 4): Promise<GbMedia> {
  const v = `${dir}/gbdev.${codec}`, a = `${dir}/gbdev.alaw`;
  const r = await run(ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', `testsrc2=size=320x240:rate=25:duration=${seconds}`,
    '-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=8000:duration=${seconds}`,
    '-map', '0:v', '-c:v', codec === 'h265' ? 'libx265' : 'libx264', '-preset', 'ultrafast', '-bf', '0', '-pix_fmt', 'yuv420p',
    ...(codec === 'h265' ? ['-x265-params', 'aud=1:keyint=25:min-keyint=25:scenecut=0:log-level=error'] : ['-g', '25', '-x264-params', 'aud=1']),
    '-f', codec === 'h265' ? 'hevc' : 'h264', v, '-map', '1:a', '-c:a', 'pcm_alaw', '-f', 'alaw', a]);
  if (r.code !== 0) throw new Error(`ffmpeg: ${r.stderr}`);
  const es = readFileSync(v);
  const video: Buffer[] = [], keys: boolean[] = [];
  let start = -1, key = false;
  for (let i = 0; i + 3 < es.length; i++) {
    if (es[i] === 0 && es[i + 1] === 0 && es[i + 2] === 1) {
      const h = es[i + 3]!;
      const type = codec === 'h265' ? (h >> 1) & 0x3f : h & 0x1f;
      const sc = i > 0 && es[i - 1] === 0 ? i - 1 : i;
      if (codec === 'h265' ? type === 35 : type === 9) {
        if (start >= 0) { video.push(es.subarray(start, sc)); keys.push(key); }
        start = sc; key = false;
      }
      if (codec === 'h265' ? type >= 16 && type <= 21 : type === 5) key = true;
      i += 2;
    }
  }
  if (start >= 0) { video.push(es.subarray(start)); keys.push(key); }
  return { codec, video, keys, alaw: readFileSync(a), fps: 25 };
}

function pesTs(prefix: number, v: number): number[] {
  v = v % 2 ** 33;
  const top = Math.floor(v / 2 ** 30) & 7, mid = Math.floor(v / 2 ** 15) & 0x7fff, low = v & 0x7fff;
  return [(prefix << 4) | (top << 1) | 1, mid >> 7, ((mid & 0x7f) << 1) | 1, low >> 7, ((low & 0x7f) << 1) | 1];
}
function pes(id: number, data: Uint8Array, pts?: number): Buffer {
  const h = pts === undefined ? [0x80, 0x00, 0x00] : [0x80, 0x80, 0x05, ...pesTs(2, pts)];
  const len = h.length + data.length;
  return Buffer.concat([Buffer.from([0, 0, 1, id, len >> 8, len & 0xff, ...h]), data]);
}
function packHeader(scr: number): Buffer {
  const v = scr % 2 ** 33;
  const hi = Math.floor(v / 2 ** 30) & 7, mid = Math.floor(v / 2 ** 15) & 0x7fff, lo = v & 0x7fff;
  return Buffer.from([0, 0, 1, 0xba, 0x40 | (hi << 3) | 4 | (mid >> 13), (mid >> 5) & 0xff, ((mid & 0x1f) << 3) | 4 | (lo >> 13), (lo >> 5) & 0xff, ((lo & 0x1f) << 3) | 4, 1, 0x01, 0x89, 0xc3, 0xf8]);
}
function crc32mpeg(b: number[]): number {
  let c = 0xffffffff;
  for (const x of b) { c ^= x << 24; for (let k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1; }
  return c >>> 0;
}
function psm(videoType: number): Buffer {
  const es = [videoType, 0xe0, 0, 0, 0x90, 0xc0, 0, 0];
  const len = 6 + es.length + 4;
  const b = [0, 0, 1, 0xbc, len >> 8, len & 0xff, 0xe0, 0xff, 0, 0, 0, es.length, ...es];
  const c = crc32mpeg(b);
  return Buffer.from([...b, c >>> 24, (c >>> 16) & 0xff, (c >>> 8) & 0xff, c & 0xff]);
}
const SYSTEM_HEADER = Buffer.from([0, 0, 1, 0xbb, 0, 12, 0x80, 0x1e, 0xff, 0xfe, 0xe1, 0x7f, 0xe0, 0xe0, 0xe8, 0xc0, 0xc0, 0x20]);

function psVideo(au: Buffer, pts: number, key: boolean, codec: 'h264' | 'h265'): Buffer {
  const parts = [packHeader(pts)];
  if (key) parts.push(SYSTEM_HEADER, psm(codec === 'h265' ? 0x24 : 0x1b));
  for (let o = 0; o < au.length; o += 60000) parts.push(pes(0xe0, au.subarray(o, o + 60000), o === 0 ? pts : undefined));
  return Buffer.concat(parts);
}
const psAudio = (a: Buffer, pts: number) => Buffer.concat([packHeader(pts), pes(0xc0, a, pts)]);

function rtpPackets(ps: Buffer, seq: { n: number }, ts: number, ssrc: number): Buffer[] {
  const out: Buffer[] = [];
  for (let o = 0; o < ps.length; o += 1400) {
    const last = o + 1400 >= ps.length;
    const h = Buffer.alloc(12);
    h[0] = 0x80; h[1] = (last ? 0x80 : 0) | 96;
    h.writeUInt16BE(seq.n++ & 0xffff, 2); h.writeUInt32BE(ts >>> 0, 4); h.writeUInt32BE(ssrc >>> 0, 8);
    out.push(Buffer.concat([h, ps.subarray(o, o + 1400)]));
  }
  return out;
}

// ------------------------------------------------------------------ the device
export interface GbDeviceOptions {
  id: string;
  serverId: string;
  realm: string;
  password?: string;
  transport: 'udp' | 'tcp';
  server: { host: string; port: number };
  channels: { id: string; name: string; ptz?: boolean }[];
  media?: GbMedia;
  keepaliveMs?: number;
  /** Answer INVITE at all (false: never answer, for timeout tests). */
  answerInvite?: boolean;
  records?: { start: string; end: string }[];
}

export interface InviteSeen { channel: string; sdp: string; s: string; y: string; t: string; transport: 'udp' | 'tcp-passive' | 'tcp-active' }

export class GbDevice {
  readonly ptz: { channel: string; cmd: string }[] = [];
  readonly controls: string[] = [];
  readonly infos: string[] = [];
  readonly invites: InviteSeen[] = [];
  byes = 0;
  framesSent = 0;
  /** Frames sent per answered INVITE, in order. */
  readonly callFrames: number[] = [];
  lastStatus = 0;
  /** Top Via of the last response (rport/received as the server filled them). */
  lastVia = '';
  statuses: number[] = [];
  private udp: dgram.Socket | null = null;
  private tcp: net.Socket | null = null;
  private tcpBuf = Buffer.alloc(0);
  private localPort = 0;
  private cseq = 1;
  private waiters = new Map<string, (m: Msg) => void>();
  private keepalive: ReturnType<typeof setInterval> | null = null;
  private calls = new Map<string, { stop(): void; speed: number; paused: boolean; seek?: number }>();
  private sn = 1;

  constructor(readonly o: GbDeviceOptions) {}

  async open(): Promise<void> {
    if (this.o.transport === 'udp') {
      const s = dgram.createSocket('udp4');
      await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
      s.on('message', (b) => this.receive(b));
      this.udp = s;
      this.localPort = s.address().port;
    } else {
      const c = net.connect(this.o.server.port, this.o.server.host);
      await new Promise<void>((r, j) => { c.once('connect', () => r()); c.once('error', j); });
      c.on('data', (d) => {
        this.tcpBuf = Buffer.concat([this.tcpBuf, d]);
        for (;;) {
          const end = this.tcpBuf.indexOf('\r\n\r\n');
          if (end < 0) break;
          const m = /content-length:\s*(\d+)/i.exec(this.tcpBuf.subarray(0, end).toString());
          const total = end + 4 + Number(m?.[1] ?? 0);
          if (this.tcpBuf.length < total) break;
          const one = this.tcpBuf.subarray(0, total);
          this.tcpBuf = this.tcpBuf.subarray(total);
          this.receive(Buffer.from(one));
        }
      });
      c.on('error', () => {});
      this.tcp = c;
      this.localPort = c.localPort!;
    }
  }

  private send(b: Buffer): void {
    if (this.udp) this.udp.send(b, this.o.server.port, this.o.server.host);
    else this.tcp?.write(b);
  }

  private get proto(): string { return this.o.transport.toUpperCase(); }
  private via(): string { return `SIP/2.0/${this.proto} 127.0.0.1:${this.localPort};rport;branch=z9hG4bK${rnd()}`; }

  private request(method: string, extra: [string, string][], body?: Uint8Array, toUser = this.o.serverId): Promise<Msg> {
    const callId = extra.find(([k]) => k === 'Call-ID')?.[1] ?? rnd();
    const cseq = this.cseq++;
    const headers: [string, string][] = [
      ['Via', this.via()], ['From', `<sip:${this.o.id}@${this.o.realm}>;tag=${rnd()}`], ['To', `<sip:${toUser}@${this.o.realm}>`],
      ['Call-ID', callId], ['CSeq', `${cseq} ${method}`], ['Max-Forwards', '70'], ['User-Agent', 'GB Sim'],
      ...extra.filter(([k]) => k !== 'Call-ID'),
    ];
    const b = build(`${method} sip:${this.o.serverId}@${this.o.realm} SIP/2.0`, headers, body);
    return new Promise((resolve, reject) => {
      const key = `${callId}|${cseq}`;
      const t = setTimeout(() => { this.waiters.delete(key); reject(new Error(`${method}: no response`)); }, 5000);
      this.waiters.set(key, (m) => { clearTimeout(t); resolve(m); });
      this.send(b);
    });
  }

  /** REGISTER (answering a digest challenge); resolves with the final status. `expires` 0 = unregister. */
  async register(expires = 3600, password = this.o.password): Promise<number> {
    const callId = rnd();
    const contact: [string, string] = ['Contact', `<sip:${this.o.id}@127.0.0.1:${this.localPort}>`];
    let res = await this.request('REGISTER', [['Call-ID', callId], contact, ['Expires', String(expires)]]);
    this.statuses.push(statusOf(res));
    if (statusOf(res) === 401) {
      const ch = hdr(res, 'WWW-Authenticate') ?? '';
      const realm = /realm="([^"]*)"/.exec(ch)?.[1] ?? '', nonce = /nonce="([^"]*)"/.exec(ch)?.[1] ?? '';
      const uri = `sip:${this.o.serverId}@${this.o.realm}`;
      const response = md5(`${md5(`${this.o.id}:${realm}:${password ?? ''}`)}:${nonce}:${md5(`REGISTER:${uri}`)}`);
      const auth = `Digest username="${this.o.id}", realm="${realm}", nonce="${nonce}", uri="${uri}", response="${response}", algorithm=MD5`;
      res = await this.request('REGISTER', [['Call-ID', callId], contact, ['Expires', String(expires)], ['Authorization', auth]]);
      this.statuses.push(statusOf(res));
    }
    this.lastStatus = statusOf(res);
    return this.lastStatus;
  }

  startKeepalive(ms = this.o.keepaliveMs ?? 1000): void {
    this.stopKeepalive();
    const send = () => {
      const xml = `<?xml version="1.0" encoding="GB2312"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n<SN>${this.sn++}</SN>\r\n<DeviceID>${this.o.id}</DeviceID>\r\n<Status>OK</Status>\r\n</Notify>\r\n`;
      this.request('MESSAGE', [['Content-Type', 'Application/MANSCDP+xml']], Buffer.from(xml)).catch(() => {});
    };
    send();
    this.keepalive = setInterval(send, ms);
  }
  stopKeepalive(): void { if (this.keepalive) clearInterval(this.keepalive); this.keepalive = null; }

  private receive(b: Buffer): void {
    let m: Msg;
    try { m = parseMsg(b); } catch { return; }
    if (m.first.startsWith('SIP/2.0')) {
      const cseq = (hdr(m, 'CSeq') ?? '').split(' ')[0];
      const key = `${hdr(m, 'Call-ID')}|${cseq}`;
      const w = this.waiters.get(key);
      if (w && statusOf(m) >= 200) { this.lastVia = hdr(m, 'Via') ?? ''; this.waiters.delete(key); w(m); }
      return;
    }
    const method = m.first.split(' ')[0]!;
    if (method === 'ACK') { this.onAck(m); return; }
    if (method === 'MESSAGE') { this.reply(m, 200); this.onMessage(m); return; }
    if (method === 'INVITE') { void this.onInvite(m); return; }
    if (method === 'BYE') {
      this.byes++;
      this.calls.get(hdr(m, 'Call-ID')!)?.stop();
      this.calls.delete(hdr(m, 'Call-ID')!);
      this.reply(m, 200);
      return;
    }
    if (method === 'INFO') {
      const body = m.body.toString();
      this.infos.push(body);
      const call = this.calls.get(hdr(m, 'Call-ID')!);
      if (call) {
        if (body.startsWith('PAUSE')) call.paused = true;
        else {
          call.paused = false;
          const scale = /Scale:\s*([\d.]+)/.exec(body);
          if (scale) call.speed = Number(scale[1]);
          const range = /Range:\s*npt=([\d.]+)-/.exec(body);
          if (range) call.seek = Number(range[1]);
        }
      }
      this.reply(m, 200);
      return;
    }
    this.reply(m, 200);
  }

  private reply(req: Msg, status: number, extra: [string, string][] = [], body?: Uint8Array, toTag = rnd()): void {
    const keep = req.headers.filter(([k]) => ['via', 'from', 'call-id', 'cseq'].includes(k.toLowerCase()));
    const to = hdr(req, 'To')!;
    const headers: [string, string][] = [...keep, ['To', /tag=/.test(to) ? to : `${to};tag=${toTag}`], ['User-Agent', 'GB Sim'], ...extra];
    this.send(build(`SIP/2.0 ${status} ${status === 200 ? 'OK' : 'Error'}`, headers, body));
  }

  private onMessage(m: Msg): void {
    const xml = m.body.toString('latin1');
    const cmd = xmlText(xml, 'CmdType'), sn = xmlText(xml, 'SN'), target = xmlText(xml, 'DeviceID');
    const respond = (inner: Uint8Array) => {
      this.request('MESSAGE', [['Content-Type', 'Application/MANSCDP+xml']], inner).catch(() => {});
    };
    if (cmd === 'Catalog') {
      const head = `<?xml version="1.0" encoding="GB2312"?>\r\n<Response>\r\n<CmdType>Catalog</CmdType>\r\n<SN>${sn}</SN>\r\n<DeviceID>${this.o.id}</DeviceID>\r\n<SumNum>${this.o.channels.length}</SumNum>\r\n<DeviceList Num="${this.o.channels.length}">\r\n`;
      const items = this.o.channels.map((c) => Buffer.concat([
        Buffer.from(`<Item>\r\n<DeviceID>${c.id}</DeviceID>\r\n<Name>`), Buffer.from(gbkEncode(c.name)),
        Buffer.from(`</Name>\r\n<Manufacturer>Sim</Manufacturer>\r\n<Model>GB-1</Model>\r\n<ParentID>${this.o.id}</ParentID>\r\n<Status>ON</Status>\r\n<Info><PTZType>${c.ptz ? 1 : 3}</PTZType></Info>\r\n</Item>\r\n`),
      ]));
      respond(Buffer.concat([Buffer.from(head), ...items, Buffer.from('</DeviceList>\r\n</Response>\r\n')]));
    } else if (cmd === 'DeviceInfo') {
      respond(Buffer.concat([Buffer.from(`<?xml version="1.0" encoding="GB2312"?>\r\n<Response>\r\n<CmdType>DeviceInfo</CmdType>\r\n<SN>${sn}</SN>\r\n<DeviceID>${this.o.id}</DeviceID>\r\n<DeviceName>`), Buffer.from(gbkEncode('模拟设备')), Buffer.from('</DeviceName>\r\n<Manufacturer>Sim</Manufacturer>\r\n<Model>GB-1</Model>\r\n<Firmware>1.0</Firmware>\r\n<Result>OK</Result>\r\n</Response>\r\n')]));
    } else if (cmd === 'RecordInfo') {
      const recs = this.o.records ?? [];
      const list = recs.map((r, i) => `<Item><DeviceID>${target}</DeviceID><Name>rec${i}</Name><StartTime>${r.start}</StartTime><EndTime>${r.end}</EndTime><Secrecy>0</Secrecy><Type>time</Type></Item>`).join('');
      respond(Buffer.from(`<?xml version="1.0" encoding="GB2312"?>\r\n<Response><CmdType>RecordInfo</CmdType><SN>${sn}</SN><DeviceID>${target}</DeviceID><Name>x</Name><SumNum>${recs.length}</SumNum><RecordList Num="${recs.length}">${list}</RecordList></Response>\r\n`));
    } else if (cmd === 'DeviceControl') {
      this.controls.push(xml);
      const ptz = xmlText(xml, 'PTZCmd');
      if (ptz) this.ptz.push({ channel: target, cmd: ptz });
    }
  }

  private pendingAck = new Map<string, () => void>();
  private onAck(m: Msg): void {
    const f = this.pendingAck.get(hdr(m, 'Call-ID')!);
    this.pendingAck.delete(hdr(m, 'Call-ID')!);
    f?.();
  }

  private async onInvite(m: Msg): Promise<void> {
    const sdp = m.body.toString();
    const line = (k: string) => new RegExp(`^${k}=(.*)$`, 'm').exec(sdp)?.[1]?.trim() ?? '';
    const channel = /sip:([^@]+)@/.exec(m.first)![1]!;
    const mline = line('m').split(/\s+/);
    const tcp = mline[2]!.startsWith('TCP');
    const setup = /a=setup:(\w+)/.exec(sdp)?.[1];
    const transport: InviteSeen['transport'] = !tcp ? 'udp' : setup === 'passive' ? 'tcp-passive' : 'tcp-active';
    const seen: InviteSeen = { channel, sdp, s: line('s'), y: line('y'), t: line('t'), transport };
    this.invites.push(seen);
    if (this.o.answerInvite === false) { this.reply(m, 100); return; }
    const host = line('c').split(/\s+/)[2]!, port = Number(mline[1]);
    const ssrc = Number(seen.y || '0');
    const callId = hdr(m, 'Call-ID')!;
    let listen: net.Server | null = null;
    let myPort = 0;
    if (transport === 'tcp-active') {
      listen = net.createServer();
      await new Promise<void>((r) => listen!.listen(0, '127.0.0.1', () => r()));
      myPort = (listen.address() as net.AddressInfo).port;
    }
    const answer = ['v=0', `o=${channel} 0 0 IN IP4 127.0.0.1`, `s=${seen.s}`, 'c=IN IP4 127.0.0.1', `t=${seen.t || '0 0'}`,
      `m=video ${myPort || 15060} ${tcp ? 'TCP/RTP/AVP' : 'RTP/AVP'} 96`, 'a=sendonly', 'a=rtpmap:96 PS/90000',
      ...(tcp ? [`a=setup:${transport === 'tcp-active' ? 'passive' : 'active'}`, 'a=connection:new'] : []), `y=${seen.y}`, 'f='].join('\r\n') + '\r\n';
    const acked = new Promise<void>((r) => this.pendingAck.set(callId, r));
    this.reply(m, 200, [['Contact', `<sip:${channel}@127.0.0.1:${this.localPort}>`], ['Content-Type', 'APPLICATION/SDP']], Buffer.from(answer));
    await acked;
    // Open the media path.
    let sendPkt: (p: Buffer) => void;
    let closeMedia: () => void;
    if (transport === 'udp') {
      const s = dgram.createSocket('udp4');
      s.on('error', () => {});
      sendPkt = (p) => s.send(p, port, host);
      closeMedia = () => { try { s.close(); } catch { /* closed */ } };
    } else {
      let sock: net.Socket;
      if (transport === 'tcp-passive') {
        sock = net.connect(port, host);
        await new Promise<void>((r, j) => { sock.once('connect', () => r()); sock.once('error', j); });
      } else {
        sock = await new Promise<net.Socket>((r) => listen!.once('connection', r));
      }
      sock.on('error', () => {});
      sendPkt = (p) => { const h = Buffer.alloc(2); h.writeUInt16BE(p.length); sock.write(Buffer.concat([h, p])); };
      closeMedia = () => { sock.destroy(); listen?.close(); };
    }
    this.stream(callId, ssrc, sendPkt, closeMedia);
  }

  /** Send the media in a loop, paced at fps × speed, until BYE. */
  private stream(callId: string, ssrc: number, sendPkt: (p: Buffer) => void, closeMedia: () => void): void {
    const media = this.o.media;
    if (!media) return;
    const seq = { n: 1 };
    const idx = this.callFrames.push(0) - 1;
    let i = 0, stopped = false, pts = 90000;
    const call = { speed: 1, paused: false, seek: undefined as number | undefined, stop: () => { stopped = true; closeMedia(); } };
    this.calls.set(callId, call);
    const tick = () => {
      if (stopped) return;
      if (!call.paused) {
        if (call.seek !== undefined) {
          // Seek: continue from the keyframe at or before the asked second (of the looped media).
          i = Math.floor((call.seek * media.fps) % media.video.length);
          while (i > 0 && !media.keys[i]) i--;
          call.seek = undefined;
        }
        const k = i % media.video.length;
        const au = media.video[k]!;
        for (const p of rtpPackets(psVideo(au, pts, media.keys[k]!, media.codec), seq, pts, ssrc)) sendPkt(p);
        const a = media.alaw.subarray((k * 320) % media.alaw.length, (k * 320) % media.alaw.length + 320);
        if (a.length === 320) for (const p of rtpPackets(psAudio(a, pts), seq, pts, ssrc)) sendPkt(p);
        this.framesSent++;
        this.callFrames[idx]!++;
        i++;
        pts += 3600;
      }
      setTimeout(tick, 1000 / media.fps / call.speed);
    };
    tick();
  }

  async close(): Promise<void> {
    this.stopKeepalive();
    for (const c of this.calls.values()) c.stop();
    this.calls.clear();
    this.udp?.close();
    this.tcp?.destroy();
  }
}

function statusOf(m: Msg): number { return Number(m.first.split(' ')[1]); }

/** Send `media` as PS over RTP to a port (UDP datagrams or RFC 4571 over TCP), paced at fps, for `seconds`. */
export async function sendPsRtp(media: GbMedia, port: number, seconds: number, transport: 'udp' | 'tcp' = 'udp', ssrc = 1234): Promise<void> {
  let send: (p: Buffer) => void, close: () => void;
  if (transport === 'udp') {
    const s = dgram.createSocket('udp4');
    s.on('error', () => {});
    send = (p) => s.send(p, port, '127.0.0.1');
    close = () => s.close();
  } else {
    const c = net.connect(port, '127.0.0.1');
    await new Promise<void>((r, j) => { c.once('connect', () => r()); c.once('error', j); });
    c.on('error', () => {});
    send = (p) => { const h = Buffer.alloc(2); h.writeUInt16BE(p.length); c.write(Buffer.concat([h, p])); };
    close = () => c.end();
  }
  const seq = { n: 100 };
  const n = Math.round(seconds * media.fps);
  for (let i = 0; i < n; i++) {
    const k = i % media.video.length, pts = 90000 + i * 3600;
    for (const p of rtpPackets(psVideo(media.video[k]!, pts, media.keys[k]!, media.codec), seq, pts, ssrc)) send(p);
    const a = media.alaw.subarray((k * 320) % media.alaw.length, (k * 320) % media.alaw.length + 320);
    if (a.length === 320) for (const p of rtpPackets(psAudio(a, pts), seq, pts, ssrc)) send(p);
    await new Promise((r) => setTimeout(r, 1000 / media.fps));
  }
  close();
}
