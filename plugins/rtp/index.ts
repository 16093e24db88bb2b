// The RTP plugin: receive MPEG-PS or MPEG-TS over RTP on a port into a stream, for platforms that push
// media without SIP (ZLMediaKit's openRtpServer use case; a GB28181 platform that does its own SIP).
//
//   POST /rtp/api/receive {streamPath, port?, type?: "ps"|"ts", transport?: "udp"|"tcp"}  → {id, port}
//     opens the port (from `port`, else from `portrange`), publishes what arrives as streamPath, and
//     closes after `timeout` without packets; GET /rtp/api/list lists receivers, POST /rtp/api/stop/{id} ends one.
//   TCP: the sender connects and sends RFC 4571 frames (2-byte length, then the RTP packet).
// See docs/plugins/rtp.md.

import { definePlugin, t, type Publisher, type SessionHandle } from '../../src/plugin.ts';
import type { TcpConn, TcpServer, UdpSocket } from '../../src/net/types.ts';
import { parsePortRange } from '../../src/net/udp.ts';
import { Rfc4571Parser, RtpPsIngest } from '../../src/ingest/rtp.ts';

export default definePlugin({
  name: 'rtp',
  description: 'Receive MPEG-PS/MPEG-TS over RTP (UDP or RFC 4571 TCP) into a stream',
  needs: ['net'],
  defaults: {
    /** Ports for receivers that do not name one ("min-max"; empty = any free port). */
    portrange: '30000-35000',
    /** A receiver that gets no packet for this long (first packet included) is closed. */
    timeout: t.dur('30s'),
    /** Packets the UDP reorder buffer holds. */
    rtpreorderbufferlen: t.num(64, { min: 1, max: 4096, int: true }),
    /** Most receivers at once. */
    maxreceivers: t.num(100, { min: 1, int: true }),
  },
  async setup(ctx) {
    const cfg = ctx.config;
    ctx.sessions.declareGroups('receivers');
    let count = 0;

    const open = async (streamPath: string, type: 'ps' | 'ts', transport: 'udp' | 'tcp', port: number) => {
      const pub: Publisher = await ctx.publish(streamPath, { type: 'rtp' });
      let udp: UdpSocket | null = null, server: TcpServer | null = null, conn: TcpConn | null = null;
      const ingest = new RtpPsIngest(pub, { reorder: transport === 'udp' ? cfg.rtpreorderbufferlen : 0, container: type });
      let closed = false;
      let last = Date.now();
      let handle: SessionHandle | null = null;
      let watch: ReturnType<typeof setInterval> | undefined;
      const close = (reason: string) => {
        if (closed) return;
        closed = true;
        count--;
        clearInterval(watch);
        if (conn && !conn.closed) conn.destroy();
        void udp?.close();
        void server?.close();
        pub.onStop = null;
        if (!pub.closed) ctx.engine.stopStream(streamPath, reason);
        handle?.remove(reason);
        ctx.logger.info('rtp receiver closed', { stream: streamPath, reason });
      };
      const packet = (b: Uint8Array) => { last = Date.now(); ingest.packet(b); };
      const ports = port ? [port] : candidates(cfg.portrange);
      let lastErr: unknown;
      for (const p of ports) {
        try {
          if (transport === 'udp') {
            udp = await ctx.bindUdp({ port: p, what: `RTP receive ${streamPath}`, recvBufferSize: 4 * 1024 * 1024 });
            udp.onMessage = (d) => packet(d);
            udp.onError = () => {};
          } else {
            server = await ctx.runtime.listenTcp({ port: p }, (c) => {
              if (conn || closed) { c.destroy(); return; }
              conn = c;
              const parser = new Rfc4571Parser();
              c.onData = (chunk) => {
                try { parser.push(chunk, packet); } catch (err) { close(`bad RFC 4571 stream: ${(err as Error).message}`); }
              };
              c.onClose = () => close('sender closed the TCP connection');
            });
          }
          break;
        } catch (err) { lastErr = err; }
      }
      if (!udp && !server) {
        pub.stop('no port');
        throw new Error(`cannot open ${transport} port ${port || cfg.portrange}: ${(lastErr as Error)?.message ?? lastErr}`);
      }
      count++;
      const localPort = udp?.port ?? server!.port;
      pub.onStop = (reason) => close(`stream stopped: ${reason}`);
      pub.extraInfo = () => ({ rtp: ingest.stats });
      watch = setInterval(() => { if (Date.now() - last > cfg.timeout) close(`no RTP for ${cfg.timeout} ms`); }, 1000);
      handle = ctx.sessions.add({
        kind: 'receiver', group: 'receivers', streamPath, stop: (r) => close(r),
        info: () => ({ type, transport, port: localPort, ...ingest.stats }),
      });
      ctx.logger.info('rtp receiver open', { stream: streamPath, type, transport, port: localPort });
      return { id: handle.id, port: localPort };
    };

    ctx.http.post('/api/receive', async (c) => {
      let b: any = {};
      try { const text = await c.req.text(); b = { ...c.req.query(), ...(text ? JSON.parse(text) : {}) }; } catch { return ctx.fail(c, 400, 'body must be JSON'); }
      const streamPath = typeof b.streamPath === 'string' ? b.streamPath.replace(/^\/+/, '') : '';
      if (!/^[^/?]+\/[^?]+$/.test(streamPath)) return ctx.fail(c, 400, 'streamPath must be app/name');
      const type = b.type ?? 'ps', transport = b.transport ?? 'udp', port = Number(b.port ?? 0);
      if (type !== 'ps' && type !== 'ts') return ctx.fail(c, 400, 'type must be ps or ts');
      if (transport !== 'udp' && transport !== 'tcp') return ctx.fail(c, 400, 'transport must be udp or tcp');
      if (!Number.isInteger(port) || port < 0 || port > 65535) return ctx.fail(c, 400, 'port must be 0..65535');
      if (count >= cfg.maxreceivers) return ctx.fail(c, 503, `maxreceivers (${cfg.maxreceivers}) reached`);
      try {
        return ctx.ok(c, await open(streamPath, type, transport, port));
      } catch (err) {
        const e = err as { httpStatus?: number; message?: string };
        return ctx.fail(c, e.httpStatus ?? 500, e.message ?? String(err));
      }
    });
  },
});

function candidates(range: string): number[] {
  if (!range) return [0];
  const r = parsePortRange(range);
  const n = r.max - r.min + 1, start = Math.floor(Math.random() * n);
  return Array.from({ length: Math.min(n, 50) }, (_, i) => r.min + ((start + i) % n));
}
