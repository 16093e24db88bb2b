// The webrtc plugin: WHIP ingest and WHEP playback (see docs/plugins/webrtc.md).
//
//   POST   /webrtc/push/{streamPath}     WHIP: SDP offer in (application/sdp) → 201 + answer + Location
//   POST   /webrtc/play/{streamPath}     WHEP: the same for a viewer
//   PATCH  /webrtc/session/{id}          trickle ICE (application/trickle-ice-sdpfrag) → 204; ICE restart → 405
//   DELETE /webrtc/session/{id}          end the session → 200
//   OPTIONS on the POST URLs              the ICE servers as Link headers (also sent with every 201)
//   GET    /webrtc/test/publish|play     test pages (camera/screen publish, play with stats)
//   GET    /webrtc/api/list              sessions (the server's registry: publishers and players)
//   POST   /webrtc/api/stop/{id}         end one
//   GET    /webrtc/api/ice               the ICE port: shared or per session, and what the mux routed/dropped
//
// The WebRTC stack (werift) is loaded when the plugin starts: a runtime that cannot host it gets the
// plugin disabled with the reason in /api/plugins, and every other plugin runs.

import type { Context } from 'hono';
import { requestAuth } from '../../src/http/peer.ts';
import { definePlugin, EngineError, t, type Frame, type Publisher, type SessionHandle, type Subscriber, type SubscriberSink } from '../../src/plugin.ts';
import { negotiatePlay, negotiatePublish, OfferError, type MediaChoice, type SourceTracks } from './negotiate.ts';
import type { Peer, PeerOptions } from './peer.ts';
import { testPage } from './page.ts';
import { WhepSink } from './whep.ts';
import { WhipIngest } from './whip.ts';
import { IceMux } from './icemux.ts';
import { toHex } from '../../src/format/bytes.ts';

/** Largest SDP offer accepted (bytes). */
const MAX_OFFER = 64 * 1024;
/** Kernel receive buffer asked for the shared ICE port (every publisher's media arrives on it). */
const ICE_RCVBUF = 4 * 1024 * 1024;
/** Audio codecs a WHEP viewer can take; other audio (AAC) asks the audio bridge for Opus. */
const WHEP_AUDIO = ['opus', 'pcma', 'pcmu'];

interface Session {
  /** The unguessable id in the session URL (the registry's numeric id is listed too). */
  id: string;
  handle?: SessionHandle;
  kind: 'whip' | 'whep';
  streamPath: string;
  remote?: string;
  peer: Peer;
  media: MediaChoice[];
  pub?: Publisher;
  ingest?: WhipIngest;
  sub?: Subscriber;
  sink?: WhepSink;
  startTime: number;
  closed: boolean;
  stop(reason: string): void;
}

/** How ICE uses UDP ports: one shared port for every session, one port per session from a range, or any. */
export type IcePorts = { mux: number } | { range: [number, number] } | { any: true };

/**
 * webrtc.port: "udp:9000" (every session on that one port; "udp:0" = one port the system picks),
 * "udp:9000-9999" (a port of its own per session from the range), "" (a port of its own, any).
 */
export function parseIcePort(s: string): IcePorts {
  const v = s.trim();
  if (!v) return { any: true };
  if (/^tcp:/i.test(v)) throw new Error(`webrtc.port "${s}": ICE over TCP is not supported; use udp:PORT (one port for all sessions) or udp:MIN-MAX`);
  const m = /^(?:udp:)?(\d{1,5})(?:-(\d{1,5}))?$/i.exec(v);
  if (!m) throw new Error(`webrtc.port "${s}": expected udp:PORT (one port for all sessions) or udp:MIN-MAX (one per session)`);
  const a = Number(m[1]);
  if (m[2] === undefined) {
    if (a > 65535) throw new Error(`webrtc.port "${s}": port out of range`);
    return { mux: a };
  }
  const b = Number(m[2]);
  if (a < 1 || b > 65535 || b <= a) throw new Error(`webrtc.port "${s}": a range needs 1 <= MIN < MAX <= 65535`);
  return { range: [a, b] };
}

const randomId = (): string => toHex(crypto.getRandomValues(new Uint8Array(12)));

export default definePlugin({
  name: 'webrtc',
  description: 'WHIP ingest and WHEP playback (werift)',
  // werift opens UDP sockets itself (ICE); a host without them (the edge) shows the plugin disabled.
  needs: ['net'],
  defaults: {
    /** ICE UDP port(s): "udp:9000" = every session on that one port; "udp:MIN-MAX" = one port per session from the range; "" = one per session, any free port. */
    port: t.str('udp:9000'),
    /** Only these local addresses are bound and advertised as ICE host candidates ([] = every interface). */
    iceaddresses: t.list(t.str('')),
    /** Extra host candidates: the public/NAT address(es) clients reach this server at (Docker, 1:1 NAT). */
    publicip: t.list(t.str('')),
    /** STUN/TURN servers, used for gathering and announced to clients in Link headers. */
    iceservers: t.list(t.section({ urls: t.list(t.str('')), username: t.str(''), credential: t.str('') })),
    /** Ask WHIP sources for a keyframe this often (bounds the GOP cache); 0 = never. */
    pli: t.dur('2s'),
    /** Longest wait for ICE candidate gathering before answering. */
    gathertimeout: t.dur('5s'),
    /** A session whose ICE/DTLS does not connect within this time is closed. */
    connecttimeout: t.dur('15s'),
    /** RTP packets per stream track kept to answer viewers' NACKs (one history shared by all viewers); 0 = no NACK answers. */
    nackhistory: t.num(1024, { min: 0, max: 65536, int: true }),
    /** WHEP: send media to viewers by our own SRTP + UDP path once DTLS is up (false = through werift's sender, slower). */
    fastsend: true,
    /** Serve the test pages at /webrtc/test/publish and /webrtc/test/play. */
    testpage: true,
  },
  async setup(ctx) {
    const log = ctx.logger;
    // Loaded here, not at import: werift needs UDP sockets and Node's crypto, and a host without them
    // must only lose this plugin.
    const { createPeer } = await import('./peer.ts');
    const ports = parseIcePort(ctx.config.port);
    const addrs = ctx.config.iceaddresses.filter(Boolean);
    let mux: IceMux | undefined;
    if ('mux' in ports) {
      // One socket per address family (IPv6 only where an IPv6 address is configured, as werift gathers).
      const v4 = addrs.find((a) => !a.includes(':'));
      const v6 = addrs.find((a) => a.includes(':'));
      const what = 'WebRTC ICE (all sessions)';
      const udp4 = !addrs.length || v4 ? (await ctx.listenUdp(`${v4 ?? ''}:${ports.mux}`, { what, recvBufferSize: ICE_RCVBUF })) ?? undefined : undefined;
      const udp6 = v6 ? (await ctx.listenUdp(`[${v6}]:${udp4?.port ?? ports.mux}`, { what, type: 'udp6', recvBufferSize: ICE_RCVBUF })) ?? undefined : undefined;
      mux = new IceMux({
        udp4, udp6,
        dedicated: (type) => ctx.bindUdp({ type, host: type === 'udp6' ? v6 : v4, what: 'WebRTC TURN client' }),
        wrap: (b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength),
      });
      log.info(`ICE: every WebRTC session on UDP port ${mux.port}`);
    }
    const portRange = 'range' in ports ? ports.range : undefined;
    ctx.sessions.declareGroups('publishers', 'players');
    const byUrlId = (id: string): Session | undefined => ctx.sessions.byKey<Session>(id)?.ref;

    const iceServers = () => ctx.config.iceservers
      .flatMap((s) => s.urls.filter(Boolean).map((u) => ({ urls: u, username: s.username || undefined, credential: s.credential || undefined })));
    const peerOptions = (): PeerOptions => ({
      iceServers: iceServers(), portRange, mux, addresses: addrs,
      publicIps: ctx.config.publicip.filter(Boolean), gatherTimeoutMs: ctx.config.gathertimeout, fastSend: ctx.config.fastsend,
    });
    /** RFC 9725 / draft-ietf-wish-whep: ICE servers as Link headers. */
    const linkHeader = (): string | undefined => {
      const parts = iceServers().map((s) => {
        let v = `<${s.urls}>; rel="ice-server"`;
        if (s.username) v += `; username="${s.username}"; credential="${s.credential ?? ''}"; credential-type="password"`;
        return v;
      });
      return parts.length ? parts.join(', ') : undefined;
    };

    /** Peer address and credentials for the auth gate: `Authorization: Bearer x` (or Basic), or `?bearer=x`. */
    const who = (c: Context, url: URL) => {
      const w = requestAuth(c);
      const bearer = url.searchParams.get('bearer');
      if (!w.credentials && bearer) w.credentials = { token: bearer };
      return { ...w, remote: w.remote ?? ctx.remoteOf(c) };
    };

    const fail = (c: Context, status: number, message: string) =>
      new Response(message + '\n', { status, headers: { 'content-type': 'text/plain; charset=utf-8' } });

    const errorResponse = (c: Context, err: unknown, what: string, streamPath: string): Response => {
      if (err instanceof OfferError) return fail(c, err.status, err.message);
      if (err instanceof EngineError) return fail(c, err.httpStatus, err.message);
      log.warn(`${what} failed`, { stream: streamPath, error: err });
      return fail(c, 500, (err as Error)?.message ?? String(err));
    };

    const readOffer = async (c: Context): Promise<string> => {
      const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
      if (type !== 'application/sdp') throw new OfferError(400, `Content-Type must be application/sdp (got "${type || 'none'}")`);
      const len = Number(c.req.header('content-length') ?? 0);
      if (len > MAX_OFFER) throw new OfferError(400, `SDP offer of ${len} bytes exceeds ${MAX_OFFER}`);
      const text = await c.req.text();
      if (text.length > MAX_OFFER) throw new OfferError(400, `SDP offer exceeds ${MAX_OFFER} bytes`);
      return text;
    };

    const created = (c: Context, s: Session, answer: string): Response => {
      const headers: Record<string, string> = {
        'content-type': 'application/sdp',
        location: `/webrtc/session/${s.id}`,
        'access-control-expose-headers': 'Location, Link',
      };
      const link = linkHeader();
      if (link) headers.link = link;
      return new Response(answer, { status: 201, headers });
    };

    const newSession = (kind: 'whip' | 'whep', streamPath: string, remote: string | undefined, peer: Peer, media: MediaChoice[]): Session => {
      const s: Session = {
        id: randomId(), kind, streamPath, remote, peer, media, startTime: Date.now(), closed: false,
        stop(reason: string) {
          if (s.closed) return;
          s.closed = true;
          s.handle?.remove();
          clearTimeout(connectTimer);
          s.ingest?.close();
          s.pub?.close(reason);
          s.sub?.close(reason);
          void peer.close();
          log.info(`${kind} session ended`, { stream: streamPath, id: s.id, remote, reason });
        },
      };
      const connectTimer = setTimeout(() => { if (peer.state !== 'connected') s.stop('ICE/DTLS did not connect in time'); }, ctx.config.connecttimeout);
      peer.onStateChange = (st) => {
        if (st === 'connected') { clearTimeout(connectTimer); s.sink?.connected(); }
        if (st === 'failed' || st === 'closed') s.stop(`peer connection ${st}`);
      };
      s.handle = ctx.sessions.add<Session>({
        kind, group: kind === 'whip' ? 'publishers' : 'players', streamPath, remote, key: s.id, ref: s,
        stop: (r) => s.stop(r),
        info: () => ({
          url: `/webrtc/session/${s.id}`, state: peer.state,
          media: media.map((m) => ({ mid: m.mid, kind: m.kind, codec: m.codec ?? null, reason: m.reason })),
          ingest: s.ingest?.stats, framesSent: s.sink?.frames, packetsSent: s.sink?.packets, bytesSent: s.sink?.bytes,
          retransmitted: s.sink?.retransmitted, nackMisses: s.sink?.nackMisses, peer: peer.stats(),
        }),
      });
      return s;
    };

    /** An offer our SDP code took but the WebRTC stack refuses (bad ICE/DTLS attributes) is a 400. */
    const answerOrReject = async (peer: Peer, offer: string, dir: 'recvonly' | 'sendonly'): Promise<string> => {
      try {
        return await peer.answer(offer, dir);
      } catch (err) {
        throw new OfferError(400, `the offer was refused by the WebRTC stack: ${(err as Error)?.message ?? String(err)}`);
      }
    };

    const streamPathOf = (url: URL, prefix: string) => url.pathname.slice(prefix.length).replace(/^\/+/, '');

    ctx.http.options('/push/*', () => new Response(null, { status: 204, headers: { allow: 'POST, OPTIONS', ...(linkHeader() ? { link: linkHeader()! } : {}) } }));
    ctx.http.options('/play/*', () => new Response(null, { status: 204, headers: { allow: 'POST, OPTIONS', ...(linkHeader() ? { link: linkHeader()! } : {}) } }));

    // ------------------------------------------------------------------------------ WHIP
    ctx.http.post('/push/*', async (c) => {
      const url = new URL(c.req.url);
      const streamPath = streamPathOf(url, '/webrtc/push/');
      const w = who(c, url);
      const remote = w.remote;
      let peer: Peer | undefined;
      let pub: Publisher | undefined;
      try {
        const offer = await readOffer(c);
        const neg = negotiatePublish(offer);
        pub = await ctx.publish(streamPath + url.search, { remote, ip: w.ip, credentials: w.credentials });
        peer = createPeer(peerOptions());
        const t0 = Date.now();
        const answer = await answerOrReject(peer, neg.offer, 'recvonly');
        const answerMs = Date.now() - t0;
        if (pub.closed) throw new EngineError('Closed', 'the publisher was stopped while connecting');
        const s = newSession('whip', pub.stream.path, remote, peer, neg.media);
        s.pub = pub;
        s.ingest = new WhipIngest(pub, peer, neg.media, ctx.config.pli);
        pub.onStop = (reason) => s.stop(reason);
        log.info('whip session', { stream: s.streamPath, id: s.id, remote, media: neg.media.map((m) => `${m.kind}:${m.codec ?? '-'}`).join(' '), answerMs });
        return created(c, s, answer);
      } catch (err) {
        pub?.close('WHIP setup failed');
        await peer?.close();
        return errorResponse(c, err, 'WHIP', streamPath);
      }
    });

    // ------------------------------------------------------------------------------ WHEP
    ctx.http.post('/play/*', async (c) => {
      const url = new URL(c.req.url);
      const streamPath = streamPathOf(url, '/webrtc/play/');
      const w = who(c, url);
      const remote = w.remote;
      let peer: Peer | undefined;
      let sub: Subscriber | undefined;
      try {
        const offer = await readOffer(c);
        // Subscribe first: the auth gate, on-demand pull and the wait for tracks all happen there. The
        // sink holds packets until the connection is up.
        let sink: WhepSink | undefined;
        let neg: ReturnType<typeof negotiatePlay> | undefined;
        // Frames from the cached keyframe on arrive at once; they wait here until the peer exists.
        const early: { f: Frame; dts: number; cts?: number }[] = [];
        const holder: { sink?: WhepSink } = {};
        const proxy: SubscriberSink = {
          frame: (f, dts, x, cts) => {
            if (holder.sink) return holder.sink.frame(f, dts, x, cts);
            if (early.length < 5000) early.push({ f, dts, cts });
            return 0;
          },
          flush: () => true,
          close: (reason) => holder.sink?.close(reason),
          // AAC sources get Opus from the audio bridge (plugins/audiobridge) when it runs.
          audioCodecs: WHEP_AUDIO,
        };
        const t0 = Date.now();
        sub = await ctx.subscribe(streamPath + url.search, { remote, ip: w.ip, credentials: w.credentials, sink: proxy, signal: c.req.raw.signal });
        const t1 = Date.now();
        const tracks = sub.stream.tracks;
        const v = tracks.find((t) => t.kind === 'video' && t.index === 0);
        const a = sub.audioTrack();
        const source: SourceTracks = {};
        if (v) source.video = { codec: v.codec, data: v.config.data };
        if (a) source.audio = { codec: a.codec, channels: a.config.channels };
        neg = negotiatePlay(offer, source);
        peer = createPeer(peerOptions());
        const answer = await answerOrReject(peer, neg.offer, 'sendonly');
        const t2 = Date.now();
        sink = new WhepSink(neg.media, peer.media, ctx.config.nackhistory);
        const s = newSession('whep', sub.stream.path, remote, peer, neg.media);
        s.sub = sub;
        s.sink = sink;
        sink.onClose = (reason) => s.stop(reason);
        const viewer = sub;
        for (const m of peer.media) m.onKeyframeRequest = () => { viewer.requestKeyframe(); };
        holder.sink = sink;
        for (const e of early.splice(0)) sink.frame(e.f, e.dts, sub, e.cts);
        if (peer.state === 'connected') sink.connected();
        log.info('whep session', { stream: s.streamPath, id: s.id, remote, media: neg.media.map((m) => `${m.kind}:${m.codec ?? '-'}`).join(' '), subscribeMs: t1 - t0, answerMs: t2 - t1 });
        return created(c, s, answer);
      } catch (err) {
        sub?.close('WHEP setup failed');
        await peer?.close();
        return errorResponse(c, err, 'WHEP', streamPath);
      }
    });

    // ------------------------------------------------------------------------------ session resource
    ctx.http.delete('/session/:id', (c) => {
      const s = byUrlId(c.req.param('id'));
      if (!s) return fail(c, 404, 'no such session');
      s.stop('DELETE by the client');
      return new Response(null, { status: 200 });
    });

    ctx.http.patch('/session/:id', async (c) => {
      const s = byUrlId(c.req.param('id'));
      if (!s) return fail(c, 404, 'no such session');
      const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
      if (type !== 'application/trickle-ice-sdpfrag') return fail(c, 415, 'PATCH takes application/trickle-ice-sdpfrag');
      const frag = await c.req.text();
      if (frag.length > MAX_OFFER) return fail(c, 400, 'fragment too large');
      const lines = frag.split(/\r?\n/);
      const ufrag = lines.find((l) => l.startsWith('a=ice-ufrag:'));
      if (ufrag && !frag.includes('a=candidate:')) return fail(c, 405, 'ICE restart is not supported: start a new session');
      let mid: string | undefined;
      let added = 0;
      try {
        for (const l of lines) {
          if (l.startsWith('a=mid:')) mid = l.slice(6).trim();
          else if (l.startsWith('a=candidate:')) { await s.peer.addCandidate(l.slice(2).trim(), mid); added++; }
        }
      } catch (err) {
        return fail(c, 400, `bad candidate: ${(err as Error)?.message ?? String(err)}`);
      }
      void added;
      return new Response(null, { status: 204 });
    });

    // The ICE port: how it is used and what the mux routed or dropped (docs/plugins/webrtc.md).
    ctx.http.get('/api/ice', (c) => ctx.ok(c, mux
      ? { mode: 'shared', port: mux.port, ...mux.counts, ...mux.stats }
      : { mode: 'per-session', range: portRange ?? null }));

    if (ctx.config.testpage) {
      ctx.http.get('/test/publish', (c) => c.html(testPage('publish')));
      ctx.http.get('/test/play', (c) => c.html(testPage('play')));
    }

  },
});
