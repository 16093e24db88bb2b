// The ONVIF plugin: finds cameras with WS-Discovery (multicast 239.255.255.250:3702, and unicast probes
// to listed addresses), keeps a device list with credentials, reads their media profiles and RTSP stream
// URIs (GetCapabilities, GetProfiles, GetStreamUri with a WS-UsernameToken digest) and pulls a profile
// into a stream through the rtsp plugin, and moves PTZ (ContinuousMove / Stop, presets).
//
//   onvif: { discoverinterval: 30s, autopull: false, devices: [{xaddr, username, password}] }
//   API under /onvif/api/: discover, devices, pull, ptz/move, ptz/stop, preset.
// See docs/plugins/onvif.md.

import { definePlugin, t } from '../../src/plugin.ts';
import { FormatError } from '../../src/format/bytes.ts';
import { EngineError } from '../../src/core/errors.ts';
import type { OutboundOrigin } from '../../src/core/outbound.ts';
import type { UdpSocket } from '../../src/net/types.ts';
import { find, findAll, OnvifError, parseProbeMatches, probeMessage, soapCall, type ProbeMatch } from './soap.ts';

interface Profile { token: string; name: string; ptz: boolean }
interface OnvifDevice {
  id: string;
  xaddr: string;
  username: string;
  password: string;
  mediaXaddr: string;
  ptzXaddr: string;
  profiles: Profile[];
  discovered?: ProbeMatch;
  error: string;
  streams: string[];
  /** Who added it: a device from the API is untrusted input (global.outbound), one from config.yaml is not. */
  origin: OutboundOrigin;
}

export default definePlugin({
  name: 'onvif',
  description: 'ONVIF cameras: WS-Discovery, profiles and RTSP stream URIs (pulled through rtsp), PTZ',
  needs: ['net'],
  defaults: {
    /** Multicast discovery every this long; 0 = only on request. */
    discoverinterval: t.dur('0s'),
    /** How long a discovery waits for answers. */
    discovertimeout: t.dur('2s'),
    /** Unicast WS-Discovery probes also go to these "host:port" (cameras across routers, tests). */
    probetargets: [] as string[],
    /** Devices to use: device service URL (http://ip/onvif/device_service) and credentials. */
    devices: t.list({ xaddr: '', username: '', password: '' }),
    /** Pull the first profile of every configured device into onvif/{deviceId} at start. */
    autopull: false,
    /** SOAP request timeout. */
    timeout: t.dur('5s'),
  },
  async setup(ctx) {
    const cfg = ctx.config;
    const log = ctx.logger;
    const devices = new Map<string, OnvifDevice>();
    const discovered = new Map<string, ProbeMatch>();
    /** Device URLs announced on the local network (multicast, or the config's probetargets): adding one
     * of these from the API is the console's discover-then-add flow and is not held to global.outbound. */
    const lanXaddrs = new Set<string>();
    const idOf = (xaddr: string) => { try { const u = new URL(xaddr); return u.hostname.replace(/[^\w.-]/g, '_') + (u.port ? '_' + u.port : ''); } catch { return xaddr.replace(/\W/g, '_'); } };
    const cred = (d: OnvifDevice) => ({ username: d.username, password: d.password });
    /** A SOAP call to one of the device's services. Every URL is checked against global.outbound: for a
     * device added through the API, the xaddr and the service and stream URLs its answers name are all
     * someone else's input (the same policy as an API pull). */
    const soap = async (d: OnvifDevice, url: string, body: string) => {
      await ctx.outbound.checkUrl(url, d.origin);
      return soapCall(url, body, cred(d), cfg.timeout);
    };

    /** Probe: multicast (unless `unicastOnly`) and unicast targets; answers collected for discovertimeout. */
    const discover = async (targets: string[], multicast: boolean, lan: boolean): Promise<ProbeMatch[]> => {
      const sock: UdpSocket = await ctx.bindUdp({ what: 'ONVIF discovery' });
      const id = crypto.randomUUID();
      const found = new Map<string, ProbeMatch>();
      sock.onMessage = (data) => {
        try {
          for (const m of parseProbeMatches(data)) if (m.address || m.xaddrs.length) found.set(m.address || m.xaddrs[0]!, m);
        } catch (err) {
          if (!(err instanceof FormatError)) throw err;
          log.debug('onvif: bad discovery answer', { error: err.message });
        }
      };
      sock.onError = () => {};
      const msg = new TextEncoder().encode(probeMessage(id));
      if (multicast) sock.send(msg, 3702, '239.255.255.250');
      for (const t of targets) {
        const m = /^(.+):(\d{1,5})$/.exec(t);
        sock.send(msg, m ? Number(m[2]) : 3702, m ? m[1]! : t);
      }
      await new Promise((r) => setTimeout(r, cfg.discovertimeout));
      await sock.close();
      for (const [k, v] of found) { discovered.set(k, v); if (lan) for (const x of v.xaddrs) lanXaddrs.add(x); }
      return [...found.values()];
    };

    /** Read a device's services and profiles (throws OnvifError with a clear reason). */
    const connect = async (d: OnvifDevice): Promise<void> => {
      const caps = await soap(d, d.xaddr, '<tds:GetCapabilities><tds:Category>All</tds:Category></tds:GetCapabilities>');
      d.mediaXaddr = find(find(caps, 'Media'), 'XAddr')?.text || d.xaddr;
      d.ptzXaddr = find(find(caps, 'PTZ'), 'XAddr')?.text || '';
      const prof = await soap(d, d.mediaXaddr, '<trt:GetProfiles/>');
      d.profiles = findAll(prof, 'Profiles').map((p) => ({ token: p.attrs['token'] ?? '', name: find(p, 'Name')?.text ?? '', ptz: !!find(p, 'PTZConfiguration') }));
      if (!d.profiles.length) throw new OnvifError(`ONVIF device ${d.xaddr} has no media profile`);
      d.error = '';
    };

    const add = async (xaddr: string, username: string, password: string, origin: OutboundOrigin): Promise<OnvifDevice> => {
      try { new URL(xaddr); } catch { throw new OnvifError(`xaddr must be the device service URL, got ${JSON.stringify(xaddr)}`, 400); }
      if (origin === 'api' && lanXaddrs.has(xaddr)) origin = 'config';
      // Refused before it is listed: a device the policy does not allow never appears in /api/devices.
      await ctx.outbound.checkUrl(xaddr, origin);
      const d: OnvifDevice = { id: idOf(xaddr), xaddr, username, password, mediaXaddr: '', ptzXaddr: '', profiles: [], error: '', streams: [], origin };
      d.discovered = [...discovered.values()].find((m) => m.xaddrs.includes(xaddr));
      devices.set(d.id, d);
      try { await connect(d); } catch (err) { d.error = (err as Error).message; throw err; }
      return d;
    };

    const profileOf = (d: OnvifDevice, token?: string) => {
      const p = token ? d.profiles.find((x) => x.token === token) : d.profiles[0];
      if (!p) throw new OnvifError(`device ${d.id} has no profile ${token ?? ''}`, 404);
      return p;
    };

    const pull = async (d: OnvifDevice, token: string | undefined, streamPath: string): Promise<string> => {
      const p = profileOf(d, token);
      const body = await soap(d, d.mediaXaddr, '<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream><tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport></trt:StreamSetup>' +
        `<trt:ProfileToken>${p.token}</trt:ProfileToken></trt:GetStreamUri>`);
      const uri = find(body, 'Uri')?.text;
      if (!uri || !/^rtsps?:\/\//i.test(uri)) throw new OnvifError(`device ${d.id} gave no RTSP URI for profile ${p.token}`);
      const u = new URL(uri);
      if (d.username && !u.username) { u.username = encodeURIComponent(d.username); u.password = encodeURIComponent(d.password); }
      await ctx.outbound.checkUrl(uri, d.origin);
      await ctx.pullWith('rtsp', streamPath, u.toString());
      if (!d.streams.includes(streamPath)) d.streams.push(streamPath);
      return uri;
    };

    const ptz = async (d: OnvifDevice, token: string | undefined, body: (t: string) => string) => {
      const p = profileOf(d, token);
      if (!d.ptzXaddr) throw new OnvifError(`device ${d.id} has no PTZ service`, 400);
      await soap(d, d.ptzXaddr, body(p.token));
    };

    for (const c of cfg.devices) {
      if (!c.xaddr) continue;
      add(c.xaddr, c.username, c.password, 'config')
        .then((d) => cfg.autopull ? pull(d, undefined, `onvif/${d.id}`) : undefined)
        .catch((err) => log.warn('onvif: device not ready', { xaddr: c.xaddr, error: (err as Error).message }));
    }
    let timer: ReturnType<typeof setInterval> | undefined;
    if (cfg.discoverinterval > 0) {
      timer = setInterval(() => { discover(cfg.probetargets, true, true).catch((err) => log.debug('onvif: discovery failed', { error: err })); }, cfg.discoverinterval);
    }
    ctx.onStop(() => { if (timer) clearInterval(timer); });

    // ------------------------------------------------------------------ API
    const wrap = (fn: (c: any, b: Record<string, any>) => Promise<Response>) => async (c: any) => {
      let b: Record<string, any> = { ...c.req.query() };
      if (c.req.method === 'POST') {
        try { const text = await c.req.text(); if (text) b = { ...b, ...JSON.parse(text) }; } catch { return ctx.fail(c, 400, 'body must be JSON'); }
      }
      try { return await fn(c, b); } catch (err) {
        if (err instanceof EngineError) return ctx.fail(c, err.httpStatus, err.message);
        return ctx.fail(c, err instanceof OnvifError ? err.status : 500, (err as Error).message);
      }
    };
    const dev = (b: Record<string, any>) => {
      const d = devices.get(String(b.id ?? '')) ?? [...devices.values()].find((x) => x.xaddr === b.xaddr);
      if (!d) throw new OnvifError(`no ONVIF device ${b.id ?? b.xaddr}`, 404);
      return d;
    };
    const view = (d: OnvifDevice) => ({ id: d.id, xaddr: d.xaddr, username: d.username, mediaXaddr: d.mediaXaddr, ptzXaddr: d.ptzXaddr, profiles: d.profiles.map((p) => ({ profile: p.token, name: p.name, ptz: p.ptz })), error: d.error || undefined, streams: d.streams, scopes: d.discovered?.scopes });

    ctx.http.post('/api/discover', wrap(async (c, b) => {
      const targets = Array.isArray(b.targets) ? b.targets.map(String) : cfg.probetargets;
      // Unicast probes to hosts named in the request go where global.outbound lets an API pull go
      // (the multicast probe stays on the local network; config's probetargets are the admin's).
      if (Array.isArray(b.targets)) for (const t of targets) await ctx.outbound.checkUrl(`udp://${/^[^:]+:\d+$/.test(t) || t.startsWith('[') ? t : t.includes(':') ? `[${t}]` : t}`, 'api');
      const found = await discover(targets, b.multicast !== false, !Array.isArray(b.targets));
      return ctx.ok(c, found);
    }));
    ctx.http.get('/api/discovered', wrap(async (c) => ctx.ok(c, [...discovered.values()])));
    ctx.http.get('/api/devices', wrap(async (c) => ctx.ok(c, [...devices.values()].map(view))));
    ctx.http.post('/api/devices', wrap(async (c, b) => ctx.ok(c, view(await add(String(b.xaddr ?? ''), String(b.username ?? ''), String(b.password ?? ''), 'api')))));
    ctx.http.post('/api/pull', wrap(async (c, b) => {
      const d = dev(b);
      const streamPath = typeof b.streamPath === 'string' && b.streamPath ? b.streamPath : `onvif/${d.id}`;
      const uri = await pull(d, b.profile, streamPath);
      return ctx.ok(c, { streamPath, uri });
    }));
    ctx.http.post('/api/ptz/move', wrap(async (c, b) => {
      const num = (v: unknown) => { const n = Number(v ?? 0); if (!(n >= -1 && n <= 1)) throw new OnvifError('x, y and zoom must be within -1..1', 400); return n; };
      const x = num(b.x), y = num(b.y), z = num(b.zoom);
      await ptz(dev(b), b.profile, (tok) => `<tptz:ContinuousMove><tptz:ProfileToken>${tok}</tptz:ProfileToken><tptz:Velocity>` +
        `<tt:PanTilt x="${x}" y="${y}"/><tt:Zoom x="${z}"/></tptz:Velocity></tptz:ContinuousMove>`);
      return ctx.ok(c, { x, y, zoom: z });
    }));
    ctx.http.post('/api/ptz/stop', wrap(async (c, b) => {
      await ptz(dev(b), b.profile, (tok) => `<tptz:Stop><tptz:ProfileToken>${tok}</tptz:ProfileToken><tptz:PanTilt>true</tptz:PanTilt><tptz:Zoom>true</tptz:Zoom></tptz:Stop>`);
      return ctx.ok(c);
    }));
    ctx.http.post('/api/preset', wrap(async (c, b) => {
      const token = String(b.preset ?? '');
      if (!/^[\w.-]{1,64}$/.test(token)) throw new OnvifError('preset must be a preset token', 400);
      await ptz(dev(b), b.profile, (tok) => `<tptz:GotoPreset><tptz:ProfileToken>${tok}</tptz:ProfileToken><tptz:PresetToken>${token}</tptz:PresetToken></tptz:GotoPreset>`);
      return ctx.ok(c, { preset: token });
    }));
  },
});
