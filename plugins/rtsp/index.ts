// The RTSP plugin: an RTSP/RTSPS server (publish with ANNOUNCE/RECORD, play with DESCRIBE/SETUP/PLAY)
// over TCP interleaved or UDP, and pull/push clients.
//
//   ffmpeg -re -i in.mp4 -c copy -f rtsp -rtsp_transport tcp rtsp://host:8554/live/x    publish live/x
//   ffplay -rtsp_transport udp rtsp://host:8554/live/x                                    play it
//   pull:  rtsp: { pull: { live/cam: rtsp://user:pass@camera/stream1 } }
//   push:  rtsp: { onpub: { push: { "live/(.+)": rtsp://other:8554/live/$1 } } }
//   API:   POST /rtsp/api/pull {streamPath,url,transport?}, POST /rtsp/api/push {streamPath,url,transport?},
//          GET /rtsp/api/list, POST /rtsp/api/stop/:id, GET /rtsp/api/multicast
// See docs/plugins/rtsp.md.

import { t } from '../../src/config/schema.ts';
import { definePlugin } from '../../src/plugin.ts';
import type { TcpConn } from '../../src/net/types.ts';
import { UdpDemux } from '../../src/net/udp.ts';
import { RtspServerConn, type ServerEnv } from './conn.ts';
import type { RtspSession } from './session.ts';
import { type ClientEnv, parseClientUrl, RtspJob } from './client.ts';
import { MulticastSenders } from './multicast.ts';

export default definePlugin({
  name: 'rtsp',
  description: 'RTSP/RTSPS server (publish, play; TCP and UDP) and pull/push client',
  pull: true,
  push: true,
  defaults: {
    tcp: { listenaddr: ':8554', listenaddrtls: ':8322' },
    /** PEM certificate and key: RTSPS on tcp.listenaddrtls is served only when both are set. */
    certfile: '',
    keyfile: '',
    /** The shared UDP listeners for RTP and RTCP (UDP transport); empty = UDP off (TCP interleaved only). */
    udpaddr: ':8000',
    rtcpaddr: ':8001',
    /**
     * Multicast play (Transport: RTP/AVP;multicast), MediaMTX's names lower-cased: each stream track a
     * viewer sets up gets a group from this IPv4 range (inside 224.0.0.0/4; empty = multicast off), sent
     * to on these ports (RTCP = RTP + 1 for ffmpeg), with this TTL, out of the interface with this
     * address (empty = the kernel's route for the group).
     */
    multicastiprange: '224.1.0.0/16',
    multicastrtpport: t.num(8002, { min: 1, max: 65535, int: true }),
    multicastrtcpport: t.num(8003, { min: 1, max: 65535, int: true }),
    multicastttl: t.num(1, { min: 0, max: 255, int: true }),
    multicastinterface: '',
    /** Kernel receive buffer asked for the UDP listeners (bytes; 0 = the system's default). */
    udpreadbuffer: t.num(4 * 1024 * 1024, { min: 0, int: true }),
    /** When set, every client must authenticate with these (Digest or Basic) before DESCRIBE/ANNOUNCE/SETUP. */
    username: '',
    password: '',
    realm: 'm7s',
    /** A session (UDP) or a connection without a session that sends nothing for this long is closed. */
    sessiontimeout: t.dur('60s'),
    /** Packets the UDP reorder buffer holds per track (Monibuca's name; MediaMTX uses 64). */
    rtpreorderbufferlen: t.num(64, { min: 1, max: 4096, int: true }),
    /** Largest RTP packet we send, header included. */
    mtu: t.num(1400, { min: 256, max: 65000, int: true }),
    /** Largest RTSP request body (ANNOUNCE SDP). */
    maxbodysize: t.num(64 * 1024, { min: 1024, max: 1024 * 1024, int: true }),
    /** Pull transport: tcp, udp, or auto (UDP first, TCP when no packet arrives within udptimeout). */
    pullprotocol: t.str('auto', { enum: ['auto', 'tcp', 'udp'] }),
    /** Push transport: tcp or udp. */
    pushprotocol: t.str('tcp', { enum: ['tcp', 'udp'] }),
    /** Pull over UDP: fall back to TCP (auto) or fail (udp) when no packet came within this time. */
    udptimeout: t.dur('3s'),
    /** Client RTP/RTCP port pairs for UDP pulls/pushes (even/odd). */
    udpport: '20000-30000',
    /** Pull/push: retries after a failure (-1 = forever) and the first retry delay (doubles, capped at 30 s). */
    retrycount: t.num(-1, { min: -1, int: true }),
    retryinterval: t.dur('2s'),
    /** Pull/push: how long to wait for the remote server's answers. */
    clienttimeout: t.dur('10s'),
    /** Verify certificates of rtsps:// servers we pull from or push to. */
    tlsverify: true,
    /** Bytes queued per TCP connection before a viewer counts as slow. */
    writebuffer: t.num(256 * 1024, { min: 16 * 1024, int: true }),
  },
  async setup(ctx) {
    const cfg = ctx.config;
    ctx.sessions.declareGroups('players', 'publishers', 'pulls', 'pushes');
    const sessions = new Map<string, RtspSession>();
    let rtp: UdpDemux | null = null, rtcp: UdpDemux | null = null;
    if (cfg.udpaddr && cfg.rtcpaddr) {
      const opts = { what: 'RTSP RTP', recvBufferSize: cfg.udpreadbuffer || undefined };
      const a = await ctx.listenUdp(cfg.udpaddr, opts);
      const b = await ctx.listenUdp(cfg.rtcpaddr, { ...opts, what: 'RTSP RTCP' });
      if (a && b) {
        rtp = new UdpDemux(a);
        rtcp = new UdpDemux(b);
        a.onError = b.onError = (err) => ctx.logger.debug('RTSP UDP error', { error: err });
      }
    }
    const multicast = cfg.multicastiprange ? new MulticastSenders(ctx, cfg, ctx.logger) : null;
    const env = (): ServerEnv => ({ ctx, logger: ctx.logger, cfg, rtp, rtcp, multicast, sessions });
    const conns = new Set<RtspServerConn>();
    let stopping = false;

    const onConn = (conn: TcpConn) => {
      if (stopping) { conn.destroy(); return; }
      conn.setNoDelay(true);
      const c = new RtspServerConn(conn, env());
      conns.add(c);
      c.onClosed = () => conns.delete(c);
    };
    await ctx.listenTcp(cfg.tcp.listenaddr, onConn, { what: 'RTSP', highWaterMark: cfg.writebuffer });
    if (cfg.certfile && cfg.keyfile && cfg.tcp.listenaddrtls) {
      const tls = {
        cert: await ctx.runtime.readTextFile(ctx.resolvePath(cfg.certfile)),
        key: await ctx.runtime.readTextFile(ctx.resolvePath(cfg.keyfile)),
      };
      await ctx.listenTcp(cfg.tcp.listenaddrtls, onConn, { tls, what: 'RTSPS', highWaterMark: cfg.writebuffer });
    }

    // Session and idle timeouts: one sweep a second.
    const sweep = setInterval(() => {
      const now = Date.now();
      const limit = cfg.sessiontimeout;
      for (const s of [...sessions.values()]) {
        if ((s.transport === 'udp' || s.transport === 'multicast') && now - s.lastSeen > limit) s.close(`session timeout (${limit} ms without RTCP or requests)`);
      }
      for (const c of [...conns]) {
        if (c.sessions.size === 0 && now - c.lastRead > limit) c.close(`idle for ${limit} ms`);
      }
    }, 1000);

    const clientEnv = (): ClientEnv => ({
      ctx, logger: ctx.logger, mtu: cfg.mtu, reorder: cfg.rtpreorderbufferlen, udpTimeout: cfg.udptimeout, udpRange: cfg.udpport,
      retryCount: cfg.retrycount, retryInterval: cfg.retryinterval, timeout: cfg.clienttimeout, tlsVerify: cfg.tlsverify,
    });
    const startJob = (kind: 'pull' | 'push', streamPath: string, url: string, transport?: string): RtspJob => {
      parseClientUrl(url); // throws on a bad URL before anything starts
      const tr = (transport ?? (kind === 'pull' ? cfg.pullprotocol : cfg.pushprotocol)) as 'tcp' | 'udp' | 'auto';
      if (!['tcp', 'udp', 'auto'].includes(tr)) throw new Error(`transport must be tcp, udp or auto`);
      const job = new RtspJob(kind, streamPath, url, tr, clientEnv());
      void job.run();
      return job;
    };
    ctx.registerPuller(({ streamPath, url }) => { startJob('pull', streamPath, url); });
    ctx.registerPusher(({ streamPath, target }) => { startJob('push', streamPath, target); });

    ctx.onStop(() => {
      stopping = true;
      clearInterval(sweep);
      for (const c of [...conns]) c.close('server stopping');
      multicast?.close();
    });

    const startFromApi = async (c: any, kind: 'pull' | 'push') => {
      let body: any;
      try { body = await c.req.json(); } catch { return ctx.fail(c, 400, 'body must be JSON {streamPath, url}'); }
      const streamPath = typeof body?.streamPath === 'string' ? body.streamPath.replace(/^\/+/, '') : '';
      const url = typeof body?.url === 'string' ? body.url : '';
      const transport = typeof body?.transport === 'string' ? body.transport : undefined;
      if (!/^[^/?]+\/[^?]+$/.test(streamPath)) return ctx.fail(c, 400, 'streamPath must be app/name');
      try {
        const job = startJob(kind, streamPath, url, transport);
        return ctx.ok(c, { id: job.id });
      } catch (err) {
        return ctx.fail(c, 400, (err as Error).message);
      }
    };
    ctx.http.post('/api/pull', (c) => startFromApi(c, 'pull'));
    ctx.http.post('/api/push', (c) => startFromApi(c, 'push'));
    /** Multicast senders: stream, groups (address, ports per track), viewers, datagrams sent. */
    ctx.http.get('/api/multicast', (c) => ctx.ok(c, multicast?.info() ?? []));
  },
});
