// The GB28181 plugin: a SIP server (GB/T 28181-2016) that cameras and NVRs register with, and the
// media side that invites them to send MPEG-PS over RTP into streams `gb28181/{deviceId}/{channelId}`.
//
//   gb28181:
//     serial: "34020000002000000001"      # our SIP ID       realm: "3402000000"    password: "" (no auth)
//     sip: { listenaddr: ["udp::5060", "tcp::5060"] }
//     mediaport: "10001-20000"            # UDP ports / TCP listeners for media
//     sipip / mediaip: the address devices reach us at (put in Via/Contact and in the SDP c= line)
//   play: http://host:8080/flv/gb28181/{deviceId}/{channelId}.flv invites the channel (onsub.pull) and the
//   call ends releasedelay after the last viewer left.
//   API under /gb28181/api/: devices, devices/{id}[/channels|/sync], invite|bye/{d}/{c}, ptz|preset/{d}/{c},
//   records/{d}/{c}, playback/{d}/{c}, playback/{pause|resume|seek|speed}, keyframe/{d}/{c}.
// See docs/plugins/gb28181.md.

import { definePlugin, t, type PluginContext, type SessionHandle } from '../../src/plugin.ts';
import type { TcpConn } from '../../src/net/types.ts';
import {
  buildManscdp, catalogItems, checkAuthorization, digestChallenge, header, parseAuthorization, parseManscdp, parseNameAddr,
  ptzMove, ptzPreset, randomToken, recordItems, userOf, type ManscdpMessage, type PtzDirection, type RecordItem, type SipMessage,
} from '../../src/format/sip/index.ts';
import { FormatError, textEncoder } from '../../src/format/bytes.ts';
import { Device, emptyChannel } from './device.ts';
import { describe, SipEndpoint, type SipTarget } from './sip.ts';
import { InviteSession, type InviteOptions } from './invite.ts';
import type { MediaTransport } from '../../src/ingest/rtp.ts';

const TRANSPORTS: MediaTransport[] = ['udp', 'tcp-passive', 'tcp-active'];

export default definePlugin({
  name: 'gb28181',
  description: 'GB28181 SIP server: device registration, catalog, live/playback INVITE (PS over RTP), PTZ',
  needs: ['net'],
  pull: true,
  defaults: {
    /** Our SIP ID (20 digits) and domain; devices are configured with these as "SIP server ID/domain". */
    serial: '34020000002000000001',
    realm: '3402000000',
    /** Digest password devices register with; empty = no authentication. */
    password: '',
    sip: {
      /** SIP listeners: "udp::5060", "tcp::5060", "udp:10.0.0.1:5060". */
      listenaddr: ['udp::5060', 'tcp::5060'],
      /** SIP T1 (retransmission base over UDP). */
      t1: t.dur('500ms'),
      /** Final-response timeout of our non-INVITE requests (Timer F). */
      timeout: t.dur('10s'),
    },
    /** Media ports (UDP sockets and TCP listeners) for invites, "min-max"; empty = any free port. */
    mediaport: '10001-20000',
    /** The addresses devices reach us at for SIP (Via/Contact) and for media (SDP c=); default 127.0.0.1 when unset. */
    sipip: '',
    mediaip: '',
    /** Media transport when the request does not say (API ?transport= or a viewer's ?transport=). */
    mediatransport: t.str('udp', { enum: ['udp', 'tcp-passive', 'tcp-active'] }),
    /** A device that sends no Keepalive for 3 × this is offline (its configured heartbeat interval). */
    keepaliveinterval: t.dur('60s'),
    /** Registration lifetime granted when a REGISTER gives none (s). */
    registerexpires: t.num(3600, { min: 30, int: true }),
    /** INVITE without a final answer for this long fails (the viewer gets an error). */
    invitetimeout: t.dur('10s'),
    /** An invited stream ends this long after its last viewer left (publish.delayclosetimeout wins when set). */
    releasedelay: t.dur('5s'),
    /** Devices and their channels are kept in this JSON file (relative to the config file) across restarts; empty = not kept. */
    datafile: 'gb28181-devices.json',
    /** Packets the UDP reorder buffer holds per invite. */
    rtpreorderbufferlen: t.num(64, { min: 1, max: 4096, int: true }),
    /** Most devices at once (a REGISTER beyond it gets 503). */
    maxdevices: t.num(10000, { min: 1, int: true }),
    /** On-demand invite: a viewer of gb28181/{deviceId}/{channelId} invites that channel. */
    onsub: { pull: t.map(t.str(''), { '^gb28181/([^/]+/[^/]+)$': '$1' }) },
  },
  async setup(ctx) {
    const cfg = ctx.config;
    const log = ctx.logger;
    ctx.sessions.declareGroups('devices', 'invites');
    const sipip = cfg.sipip || '127.0.0.1';
    const mediaip = cfg.mediaip || sipip;
    if (!cfg.sipip) log.warn('gb28181: sipip is not set; devices are told 127.0.0.1 (set sipip and mediaip to an address they reach)');

    const devices = new Map<string, Device>();
    const invites = new Map<string, InviteSession>();
    const nonces = new Map<string, number>();
    const pending = new Map<string, { resolve(m: ManscdpMessage): void; items: RecordItem[]; sumNum: number }>();
    let sn = 1;
    let stopping = false;

    // ------------------------------------------------------------------ persistence
    const dataPath = cfg.datafile ? ctx.resolvePath(cfg.datafile) : '';
    if (dataPath) {
      try {
        const text = await ctx.runtime.readTextFile(dataPath);
        const data = JSON.parse(text);
        for (const o of Array.isArray(data?.devices) ? data.devices : []) {
          const d = Device.restore(o);
          if (d) devices.set(d.id, d);
        }
        log.info('gb28181: devices loaded', { file: dataPath, devices: devices.size });
      } catch (err) {
        if ((err as { code?: string })?.code !== 'ENOENT' && !/not found|No such file/i.test(String((err as Error)?.message))) {
          log.warn('gb28181: could not read the device file', { file: dataPath, error: err });
        }
      }
    }
    let saveTimer: ReturnType<typeof setTimeout> | null = null;
    let saving: Promise<void> = Promise.resolve();
    let dirty = false;
    const saveNow = () => {
      if (!dataPath || !dirty) return saving;
      dirty = false;
      const text = JSON.stringify({ devices: [...devices.values()].map((d) => d.persisted()) }, null, 1);
      saving = saving.then(() => ctx.runtime.replaceFile(dataPath, text)).catch((err) => log.warn('gb28181: could not save devices', { file: dataPath, error: err }));
      return saving;
    };
    const save = () => {
      dirty = true;
      if (!dataPath || saveTimer) return;
      saveTimer = setTimeout(() => { saveTimer = null; void saveNow(); }, 200);
    };

    // ------------------------------------------------------------------ SIP
    const sip = new SipEndpoint({
      logger: log, serial: cfg.serial, realm: cfg.realm, sipip, t1: cfg.sip.t1, timeout: cfg.sip.timeout,
      onRequest: (req, from, reply) => onRequest(req, from, reply),
    });
    for (const spec of cfg.sip.listenaddr) {
      const m = /^(udp|tcp):(.*)$/i.exec(spec.trim());
      if (!m) throw new Error(`gb28181.sip.listenaddr entry ${JSON.stringify(spec)}: use "udp::5060" or "tcp::5060"`);
      if (m[1]!.toLowerCase() === 'udp') {
        const sock = await ctx.listenUdp(m[2]!, { what: 'GB28181 SIP' });
        if (sock) sip.attachUdp(sock);
      } else {
        const server = await ctx.listenTcp(m[2]!, (conn) => {
          if (stopping) { conn.destroy(); return; }
          conn.setNoDelay(true);
          sip.attachTcp(conn);
        }, { what: 'GB28181 SIP' });
        if (server) sip.setTcpPort(server.port);
      }
    }
    sip.onTcpClose = (conn: TcpConn) => {
      for (const d of devices.values()) if (d.target?.kind === 'tcp' && d.target.conn === conn) setOffline(d, 'SIP TCP connection closed');
    };

    const setOnline = (d: Device, from: SipTarget) => {
      d.target = from;
      d.lastSeen = Date.now();
      if (d.online) return false;
      d.online = true;
      d.offlineReason = '';
      d.handle = ctx.sessions.add({
        kind: 'device', group: 'devices', remote: d.remote(), key: `device:${d.id}`,
        stop: (reason) => setOffline(d, reason),
        info: () => d.toJSON(),
      });
      log.info('gb28181: device online', { device: d.id, remote: describe(from) });
      return true;
    };
    const setOffline = (d: Device, reason: string) => {
      if (!d.online) return;
      d.online = false;
      d.offlineReason = reason;
      d.handle?.remove(reason);
      d.handle = null;
      log.info('gb28181: device offline', { device: d.id, reason });
      for (const s of [...invites.values()]) if (s.device === d) s.stop(`device offline: ${reason}`);
    };

    const onRequest = async (req: SipMessage, from: SipTarget, reply: (status: number, extra?: [string, string][], body?: Uint8Array) => void) => {
      switch (req.method) {
        case 'REGISTER': return onRegister(req, from, reply);
        case 'MESSAGE': return onMessage(req, from, reply);
        case 'BYE': {
          const callId = header(req, 'Call-ID');
          const s = [...invites.values()].find((x) => x.dialog?.callId === callId);
          reply(s ? 200 : 481);
          s?.remoteBye();
          return;
        }
        case 'ACK': return;
        case 'OPTIONS': return reply(200, [['Allow', 'REGISTER, MESSAGE, INVITE, ACK, BYE, INFO, OPTIONS']]);
        case 'NOTIFY': case 'INFO': return reply(200);
        default: return reply(405, [['Allow', 'REGISTER, MESSAGE, INVITE, ACK, BYE, INFO, OPTIONS']]);
      }
    };

    const gbDate = () => {
      const d = new Date();
      const p = (n: number, w = 2) => String(n).padStart(w, '0');
      return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
    };

    const onRegister = (req: SipMessage, from: SipTarget, reply: (status: number, extra?: [string, string][]) => void) => {
      const id = userOf(header(req, 'From')!);
      if (!id || !/^[\w.-]{1,64}$/.test(id)) return reply(400);
      if (cfg.password) {
        const auth = header(req, 'Authorization');
        const challenge = () => {
          const nonce = randomToken('', 24);
          if (nonces.size > 10000) nonces.clear();
          nonces.set(nonce, Date.now());
          reply(401, [['WWW-Authenticate', digestChallenge(cfg.realm, nonce)]]);
        };
        if (!auth) return challenge();
        let ok = false;
        try {
          const a = parseAuthorization(auth);
          const nonceOk = (n: string) => { const at = nonces.get(n); return at !== undefined && Date.now() - at < 5 * 60_000; };
          if (a.scheme === 'digest' && !nonceOk(a.params['nonce']!)) return challenge(); // stale or not ours
          ok = checkAuthorization(a, { method: 'REGISTER', realm: cfg.realm, password: cfg.password, allowBasic: false, nonceOk });
          if (ok && a.username !== id) log.debug('gb28181: digest username differs from the From user', { device: id, username: a.username });
        } catch (err) {
          if (!(err instanceof FormatError)) throw err;
        }
        if (!ok) {
          log.warn('gb28181: REGISTER with a wrong password (or realm)', { device: id, remote: describe(from), realm: cfg.realm });
          return reply(403);
        }
      }
      const contact = header(req, 'Contact');
      const expHeader = header(req, 'Expires');
      let expires = expHeader !== undefined && /^\d{1,10}$/.test(expHeader.trim()) ? Number(expHeader) : NaN;
      if (!(expires >= 0) && contact) { const e = parseNameAddr(contact).params['expires']; if (e && /^\d+$/.test(e)) expires = Number(e); }
      if (!(expires >= 0)) expires = cfg.registerexpires;
      let d = devices.get(id);
      if (expires === 0) {
        reply(200, [['Date', gbDate()], ['Expires', '0']]);
        if (d) { setOffline(d, 'unregistered'); d.target = null; }
        return;
      }
      if (!d) {
        if (devices.size >= cfg.maxdevices) return reply(503);
        d = new Device(id);
        devices.set(id, d);
        save();
      }
      d.contact = contact ? parseNameAddr(contact).uri : `sip:${id}@${from.kind === 'udp' ? `${from.address}:${from.port}` : ''}`;
      d.registeredAt = Date.now();
      d.expires = expires;
      d.lastKeepalive = Date.now();
      reply(200, [['Date', gbDate()], ['Expires', String(expires)], ['Contact', header(req, 'Contact') ?? sip.contact(from)]]);
      const fresh = setOnline(d, from);
      if (fresh) {
        const dev = d;
        // Ask what it is and what it has (errors are logged; the device stays registered).
        setTimeout(() => {
          query(dev, 'DeviceInfo').catch((err) => log.debug('gb28181: DeviceInfo failed', { device: dev.id, error: err }));
          query(dev, 'Catalog').catch((err) => log.warn('gb28181: Catalog query failed', { device: dev.id, error: err }));
        }, 10);
      }
    };

    const onMessage = (req: SipMessage, from: SipTarget, reply: (status: number) => void) => {
      let m: ManscdpMessage;
      try {
        m = parseManscdp(req.body);
      } catch (err) {
        if (!(err instanceof FormatError)) throw err;
        log.debug('gb28181: bad MANSCDP body', { remote: describe(from), error: err.message });
        return reply(400);
      }
      const id = userOf(header(req, 'From')!);
      const d = devices.get(id) ?? devices.get(m.deviceId);
      if (!d || !d.target) return reply(403); // not registered: the device should register again
      d.lastSeen = Date.now();
      if (d.target.kind === 'udp' && from.kind === 'udp') d.target = from;
      reply(200);
      const cmd = m.cmdType.toLowerCase();
      if (cmd === 'keepalive') {
        d.lastKeepalive = Date.now();
        d.keepalives++;
        if (!d.online) setOnline(d, from);
        return;
      }
      if (m.root.toLowerCase() !== 'response') return; // Notify Alarm/MediaStatus...: accepted, not acted on
      if (cmd === 'catalog') {
        const { sumNum, items } = catalogItems(m);
        let part = d.catalogParts.get(m.sn);
        if (!part) { part = { sumNum, items: [] }; d.catalogParts.set(m.sn, part); }
        for (const it of items) part.items.push({ ...emptyChannel(it.deviceId), ...it });
        if (part.items.length >= part.sumNum) {
          d.catalogParts.delete(m.sn);
          for (const c of part.items) if (c.deviceId && c.deviceId !== d.id) d.channels.set(c.deviceId, c);
          log.info('gb28181: catalog', { device: d.id, channels: d.channels.size });
          save();
          pending.get(`${d.id}:catalog:${m.sn}`)?.resolve(m);
        }
        return;
      }
      if (cmd === 'deviceinfo') {
        d.name = textOf(m, 'DeviceName') || d.name;
        d.manufacturer = textOf(m, 'Manufacturer') || d.manufacturer;
        d.model = textOf(m, 'Model') || d.model;
        d.firmware = textOf(m, 'Firmware') || d.firmware;
        save();
        pending.get(`${d.id}:deviceinfo:${m.sn}`)?.resolve(m);
        return;
      }
      if (cmd === 'recordinfo') {
        const p = [...pending.entries()].find(([k]) => k.endsWith(`:recordinfo:${m.sn}`));
        if (!p) return;
        const r = recordItems(m);
        p[1].items.push(...r.items);
        p[1].sumNum = r.sumNum;
        if (p[1].items.length >= r.sumNum) p[1].resolve(m);
        return;
      }
      pending.get(`${d.id}:${cmd}:${m.sn}`)?.resolve(m);
    };

    const textOf = (m: ManscdpMessage, name: string) => m.xml.children.find((c) => c.name.toLowerCase() === name.toLowerCase())?.text ?? '';

    /** Send a MANSCDP MESSAGE to a device. */
    const message = async (d: Device, root: 'Query' | 'Control', fields: Record<string, any>): Promise<number> => {
      if (!d.online || !d.target) throw new Error(`device ${d.id} is not online`);
      const n = sn++;
      const body = buildManscdp(root, { CmdType: fields.CmdType, SN: n, ...fields });
      const uri = d.contact || `sip:${d.id}@${cfg.realm}`;
      const req = sip.newRequest('MESSAGE', uri, d.id, d.target, [['Content-Type', 'Application/MANSCDP+xml']], textEncoder.encode(body));
      const res = await sip.request(req, d.target);
      if (res.status !== 200) throw new Error(`device answered MESSAGE ${fields.CmdType} with ${res.status}`);
      return n;
    };

    /** Query and wait for the device's Response MESSAGE (Catalog collects every part). */
    const query = (d: Device, cmd: 'Catalog' | 'DeviceInfo' | 'RecordInfo', extra: Record<string, any> = {}, timeout = 10_000): Promise<{ m: ManscdpMessage; items: RecordItem[] }> => {
      return new Promise((resolve, reject) => {
        let key = '';
        const entry = { resolve: (m: ManscdpMessage) => { clearTimeout(timer); pending.delete(key); resolve({ m, items: entry.items }); }, items: [] as RecordItem[], sumNum: 0 };
        const timer = setTimeout(() => { pending.delete(key); reject(new Error(`${cmd} response from ${d.id} timed out`)); }, timeout);
        const n = sn;
        key = `${d.id}:${cmd.toLowerCase()}:${n}`;
        pending.set(key, entry);
        message(d, 'Query', { CmdType: cmd, DeviceID: extra.DeviceID ?? d.id, ...extra }).catch((err) => { clearTimeout(timer); pending.delete(key); reject(err); });
      });
    };

    // ------------------------------------------------------------------ keepalive / expiry sweep
    const sweep = setInterval(() => {
      const now = Date.now();
      for (const d of devices.values()) {
        if (!d.online) continue;
        if (now - Math.max(d.lastKeepalive, d.registeredAt) > 3 * cfg.keepaliveinterval) setOffline(d, `no keepalive for ${3 * cfg.keepaliveinterval} ms`);
        else if (now > d.registeredAt + d.expires * 1000) setOffline(d, 'registration expired');
      }
      for (const [n, at] of nonces) if (now - at > 5 * 60_000) nonces.delete(n);
    }, Math.min(1000, Math.max(100, cfg.keepaliveinterval / 4)));

    // ------------------------------------------------------------------ invites
    const publishConfig = () => {
      const p = cfg.publish;
      return { ...p, delayclosetimeout: p.delayclosetimeout > 0 ? p.delayclosetimeout : cfg.releasedelay };
    };
    const inviteEnv = {
      ctx: ctx as PluginContext<any>, logger: log, sip, serial: cfg.serial, realm: cfg.realm, mediaip, mediaport: cfg.mediaport,
      inviteTimeout: cfg.invitetimeout, reorder: cfg.rtpreorderbufferlen, publishConfig,
      ended: (s: InviteSession) => { if (invites.get(s.streamPath) === s) invites.delete(s.streamPath); },
    };
    const getChannel = (deviceId: string, channelId: string): Device => {
      const d = devices.get(deviceId);
      if (!d) throw new HttpError(404, `no device ${deviceId}`);
      if (!d.online) throw new HttpError(503, `device ${deviceId} is offline${d.offlineReason ? ` (${d.offlineReason})` : ''}`);
      if (d.channels.size && !d.channels.has(channelId) && channelId !== deviceId) throw new HttpError(404, `device ${deviceId} has no channel ${channelId}`);
      return d;
    };
    const invite = async (deviceId: string, channelId: string, o: InviteOptions): Promise<InviteSession> => {
      const d = getChannel(deviceId, channelId);
      if (!TRANSPORTS.includes(o.transport)) throw new HttpError(400, `transport must be one of ${TRANSPORTS.join(', ')}`);
      const existing = invites.get(o.streamPath);
      if (existing) return existing;
      const s = new InviteSession(inviteEnv, d, channelId, o);
      invites.set(o.streamPath, s);
      s.keyframeRequest = () => { void message(d, 'Control', { CmdType: 'DeviceControl', DeviceID: channelId, IFameCmd: 'Send' }).catch(() => {}); };
      s.handle = ctx.sessions.add({ kind: o.kind, group: 'invites', streamPath: o.streamPath, remote: d.remote(), stop: (r) => s.stop(r), info: () => s.info(), ref: s });
      await s.start();
      return s;
    };

    ctx.registerPuller(async ({ streamPath, url, args }) => {
      const [deviceId, channelId] = url.split('/');
      if (!deviceId || !channelId) throw new Error(`gb28181 pull URL must be deviceId/channelId, got ${JSON.stringify(url)}`);
      const transport = (args.transport ?? cfg.mediatransport) as MediaTransport;
      try {
        await invite(deviceId, channelId, { streamPath, transport, kind: 'live' });
      } catch (err) {
        // Tell waiting viewers now rather than after their wait timeout.
        ctx.engine.stopStream(streamPath, `gb28181 invite failed: ${(err as Error).message}`);
        throw err;
      }
    });

    ctx.onStop(async () => {
      stopping = true;
      clearInterval(sweep);
      for (const s of [...invites.values()]) s.stop('server stopping');
      if (saveTimer) { clearTimeout(saveTimer); saveTimer = null; }
      await saveNow();
      // Let the BYEs go out before the sockets close.
      await new Promise((r) => setTimeout(r, 20));
      sip.close();
    });

    // ------------------------------------------------------------------ HTTP API
    const api = ctx.http;
    const wrap = (fn: (c: any) => Promise<Response> | Response) => async (c: any) => {
      try {
        return await fn(c);
      } catch (err) {
        if (err instanceof HttpError) return ctx.fail(c, err.status, err.message);
        return ctx.fail(c, 502, (err as Error)?.message ?? String(err));
      }
    };
    const body = async (c: any): Promise<Record<string, any>> => {
      const q = c.req.query() as Record<string, string>;
      if (c.req.method !== 'POST') return q;
      try {
        const text = await c.req.text();
        return { ...q, ...(text ? JSON.parse(text) : {}) };
      } catch {
        throw new HttpError(400, 'body must be JSON');
      }
    };
    const time = (v: unknown, what: string): number => {
      if (typeof v === 'number' || (typeof v === 'string' && /^\d{9,11}$/.test(v))) return Number(v);
      if (typeof v === 'string' && v) { const ms = Date.parse(v); if (Number.isFinite(ms)) return Math.floor(ms / 1000); }
      throw new HttpError(400, `${what} must be unix seconds or an ISO time`);
    };
    const gbTime = (sec: number) => {
      const d = new Date(sec * 1000);
      const p = (n: number) => String(n).padStart(2, '0');
      return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
    };

    api.get('/api/devices', wrap((c) => ctx.ok(c, [...devices.values()].map((d) => d.toJSON()))));
    api.get('/api/devices/:id', wrap((c) => {
      const d = devices.get(c.req.param('id'));
      return d ? ctx.ok(c, d.toJSON(true)) : ctx.fail(c, 404, `no device ${c.req.param('id')}`);
    }));
    api.get('/api/devices/:id/channels', wrap((c) => {
      const d = devices.get(c.req.param('id'));
      return d ? ctx.ok(c, [...d.channels.values()]) : ctx.fail(c, 404, `no device ${c.req.param('id')}`);
    }));
    api.post('/api/devices/:id/sync', wrap(async (c) => {
      const d = devices.get(c.req.param('id'));
      if (!d) throw new HttpError(404, `no device ${c.req.param('id')}`);
      await query(d, 'Catalog');
      return ctx.ok(c, [...d.channels.values()]);
    }));
    api.post('/api/invite/:d/:c', wrap(async (c) => {
      const b = await body(c);
      const d = c.req.param('d'), ch = c.req.param('c');
      const streamPath = typeof b.streamPath === 'string' && b.streamPath ? b.streamPath : `gb28181/${d}/${ch}`;
      const s = await invite(d, ch, { streamPath, transport: (b.transport ?? cfg.mediatransport) as MediaTransport, kind: 'live' });
      return ctx.ok(c, { streamPath: s.streamPath, ssrc: s.ssrc, id: s.handle?.id });
    }));
    api.post('/api/bye/:d/:c', wrap(async (c) => {
      const b = await body(c);
      const streamPath = typeof b.streamPath === 'string' && b.streamPath ? b.streamPath : `gb28181/${c.req.param('d')}/${c.req.param('c')}`;
      const s = invites.get(streamPath);
      if (!s) throw new HttpError(404, `no invite for ${streamPath}`);
      s.stop('API bye');
      return ctx.ok(c, { streamPath });
    }));
    api.post('/api/ptz/:d/:c', wrap(async (c) => {
      const b = await body(c);
      const d = getChannel(c.req.param('d'), c.req.param('c'));
      let cmd: string;
      if (typeof b.cmd === 'string') {
        if (!/^[0-9A-Fa-f]{16}$/.test(b.cmd)) throw new HttpError(400, 'cmd must be 16 hex digits (a PTZCmd)');
        cmd = b.cmd.toUpperCase();
      } else {
        const speed = b.speed === undefined ? 0x80 : Number(b.speed);
        if (!(speed >= 0 && speed <= 255)) throw new HttpError(400, 'speed must be 0..255');
        try { cmd = ptzMove(String(b.direction ?? 'stop') as PtzDirection, speed, Math.min(15, speed >> 4)); } catch (err) { throw new HttpError(400, (err as Error).message); }
      }
      await message(d, 'Control', { CmdType: 'DeviceControl', DeviceID: c.req.param('c'), PTZCmd: cmd, Info: { ControlPriority: 5 } });
      return ctx.ok(c, { cmd });
    }));
    api.post('/api/preset/:d/:c', wrap(async (c) => {
      const b = await body(c);
      const d = getChannel(c.req.param('d'), c.req.param('c'));
      let cmd: string;
      try { cmd = ptzPreset(String(b.op ?? 'call') as 'set' | 'call' | 'delete', Number(b.preset)); } catch (err) { throw new HttpError(400, (err as Error).message); }
      await message(d, 'Control', { CmdType: 'DeviceControl', DeviceID: c.req.param('c'), PTZCmd: cmd, Info: { ControlPriority: 5 } });
      return ctx.ok(c, { cmd });
    }));
    api.post('/api/keyframe/:d/:c', wrap(async (c) => {
      const d = getChannel(c.req.param('d'), c.req.param('c'));
      await message(d, 'Control', { CmdType: 'DeviceControl', DeviceID: c.req.param('c'), IFameCmd: 'Send' });
      return ctx.ok(c);
    }));
    api.get('/api/records/:d/:c', wrap(async (c) => {
      const b = await body(c);
      const d = getChannel(c.req.param('d'), c.req.param('c'));
      const start = time(b.start, 'start'), end = time(b.end, 'end');
      const r = await query(d, 'RecordInfo', { DeviceID: c.req.param('c'), StartTime: gbTime(start), EndTime: gbTime(end), Secrecy: 0, Type: 'all' });
      return ctx.ok(c, r.items);
    }));
    api.post('/api/playback/:op{pause|resume|seek|speed}', wrap(async (c) => {
      const b = await body(c);
      const s = invites.get(String(b.streamPath ?? ''));
      if (!s || s.opts.kind === 'live') throw new HttpError(404, `no playback session ${b.streamPath}`);
      const op = c.req.param('op') as 'pause' | 'resume' | 'seek' | 'speed';
      const value = op === 'seek' ? Number(b.seconds ?? b.range) : op === 'speed' ? Number(b.speed) : undefined;
      if ((op === 'seek' && !(value! >= 0)) || (op === 'speed' && ![0.25, 0.5, 1, 2, 4, 8].includes(value!))) throw new HttpError(400, op === 'seek' ? 'seconds must be >= 0' : 'speed must be 0.25, 0.5, 1, 2, 4 or 8');
      await s.control(op, value);
      return ctx.ok(c, { streamPath: s.streamPath, op, value });
    }));
    api.post('/api/playback/:d/:c', wrap(async (c) => {
      const b = await body(c);
      const d = c.req.param('d'), ch = c.req.param('c');
      const start = time(b.start, 'start'), end = time(b.end, 'end');
      if (end <= start) throw new HttpError(400, 'end must be after start');
      const kind = b.download ? 'download' : 'playback';
      const streamPath = typeof b.streamPath === 'string' && b.streamPath ? b.streamPath : `gb28181/${d}/${ch}/${kind}-${start}-${end}`;
      const s = await invite(d, ch, { streamPath, transport: (b.transport ?? cfg.mediatransport) as MediaTransport, kind, start, end, downloadSpeed: b.speed ? Number(b.speed) : undefined });
      return ctx.ok(c, { streamPath: s.streamPath, ssrc: s.ssrc, id: s.handle?.id });
    }));
    ctx.sessions.listExtra(() => ({ sip: sip.stats, devicesKnown: devices.size, devicesOnline: [...devices.values()].filter((d) => d.online).length }));
  },
});

class HttpError extends Error {
  constructor(readonly status: number, message: string) { super(message); }
}

export type { SessionHandle };
