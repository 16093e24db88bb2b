// The cascade plugin: this node as an edge of one or more origins. A viewer asking for a stream nobody
// publishes here makes the edge pull it from the first origin that has it (failover in order), over
// HTTP-FLV or RTMP; every other viewer of that stream on this node shares the one upstream; it is
// dropped when the last viewer has left (publish.delayclosetimeout after, or at once when that is 0).
// See docs/cluster.md.
//
//   cascade:
//     origins: ["http://origin-a:8080", "rtmp://origin-b:1935"]
//     streams: "live/.*"          # which stream paths come from the origins (regex, whole path)
//
//   GET /cascade/api/list          the upstreams (ctx.sessions), with origin, state, connects, failovers
//
// Cluster: with `directory` set (redis://… or memory), every stream published to this node is registered
// in the stream directory with this node as owner (heartbeat every ttl/3, expiring after ttl), and a
// viewer's request for a stream this node lacks is looked up there: `mode: pull` pulls it from the owner
// (as from an origin), `mode: redirect` answers HTTP players with 302 to the owner (RTMP/RTSP viewers,
// which cannot follow a redirect at play time, are served by a pull).
//
//   GET /cascade/api/cluster, GET /api/cluster    this node, the directory's nodes and streams

import { t } from '../../src/config/schema.ts';
import { definePlugin, type SessionHandle, type Stream } from '../../src/plugin.ts';
import { EngineError } from '../../src/plugin.ts';
import { MemoryDirectory, type NodeInfo, type StreamDirectory } from '../../src/cluster/directory.ts';
import { RedisDirectory } from '../../src/cluster/redis-directory.ts';
import { parseRedisUrl } from '../../src/cluster/resp.ts';
import { originUrl, Upstream, type UpstreamSettings } from './upstream.ts';

export { originUrl, Upstream, type UpstreamSettings };

/** Player protocols that are plain HTTP requests (redirect mode answers them with 302). */
const HTTP_PLAYERS = new Set(['flv', 'hls', 'llhls', 'mp4']);

export default definePlugin({
  name: 'cascade',
  description: 'Edge of origin servers: on-demand pull with failover, one upstream per stream',
  needs: ['net'],
  defaults: {
    /** Origin base URLs, tried in order: http(s)://host:port[/prefix] (HTTP-FLV) or rtmp(s)://host:port. Empty: the plugin does nothing. */
    origins: t.list(t.str('')),
    /** Stream paths pulled from the origins (a regex matched against the whole path). */
    streams: t.str('.+'),
    /** Wait before another round over the origins after every one failed. */
    retryinterval: t.dur('1s'),
    /** Connect / answer timeout, and how long an upstream may deliver nothing before it is dropped. */
    timeout: t.dur('5s'),
    /** Query string added to every origin URL (e.g. the origin's subscribe secret: "secret=…&expire=…"). */
    query: t.str(''),
    /** Stream directory of a cluster: "" (none), "memory" (this process only) or redis://[:password@]host:port[/db] (rediss:// for TLS). */
    directory: t.str(''),
    /** Shared secret of the cluster: every directory entry is HMAC-signed with it; entries signed otherwise are ignored. */
    secret: t.str(''),
    /** This node's id in the directory (default: hostname-pid). */
    nodeid: t.str(''),
    /** Base URL other nodes pull from and viewers are redirected to: http://host:port (required with a directory). */
    advertise: t.str(''),
    /** rtmp://host:port of this node, listed in the directory (informational). */
    advertisertmp: t.str(''),
    /** Directory entries expire this long after the last heartbeat (heartbeats every ttl/3). */
    ttl: t.dur('10s'),
    /** A stream on another node: "pull" it from there (edge behaviour) or "redirect" HTTP players (302). */
    mode: t.str('pull', { enum: ['pull', 'redirect'] }),
    /** Key prefix in Redis. */
    prefix: t.str('m7s:'),
  },
  async setup(ctx) {
    ctx.sessions.declareGroups('upstreams');
    const ups = new Map<string, { up: Upstream; handle: SessionHandle<Upstream> }>();
    // global.workers: the other workers of this machine (their loopback listeners) come first. Their
    // requests carry m7sworker=1 so that a worker lacking the stream answers "not found" (after a short
    // wait) instead of pulling in turn, and never starts a loop between workers.
    const peers = (ctx.runtime.env().M7S_WORKER_PEERS ?? '').split(',').filter(Boolean)
      .map((u) => `${u.replace(/\/+$/, '')}?m7sworker=1&waittimeout=1s`);
    const settings = (): UpstreamSettings => ({
      origins: [...peers, ...ctx.config.origins as string[]], retryinterval: ctx.config.retryinterval, timeout: ctx.config.timeout, query: ctx.config.query,
    });
    for (const o of settings().origins) originUrl(o, 'a/b'); // a bad origin fails setup with its reason

    // Between workers only first-hand copies travel: a worker does not serve another worker a stream it
    // itself pulled from a worker (no chains, no cycles when the publisher's worker loses it).
    if (peers.length) {
      ctx.engine.addAuthHook('cascade-workers', (req) => {
        if (req.kind !== 'subscribe' || !req.args.m7sworker) return;
        const pub = ctx.engine.getStream(req.streamPath)?.publisher;
        if (pub && pub.protocol === 'cascade' && (pub.remote ?? '').includes('m7sworker=1')) {
          throw new EngineError('NotFound', `${req.streamPath} is a copy from another worker here`);
        }
      });
    }
    const watched = (path: string) => (ctx.engine.getStream(path)?.subscribers.size ?? 0) > 0;
    ctx.sessions.listExtra(() => ({ workerPeers: peers.length }));

    /** Start the upstream of `streamPath`, or return the running one. Resolves when it has ended. */
    const start = (streamPath: string, sources: () => UpstreamSettings | Promise<UpstreamSettings> = settings): Promise<void> => {
      const have = ups.get(streamPath);
      if (have && !have.up.stopped) return have.up.done;
      // global.outbound.maxjobs counts upstreams like any other pull.
      let release: () => void;
      try { release = ctx.outbound.acquire(`cascade ${streamPath}`); } catch (err) {
        ctx.logger.warn('cascade upstream refused', { stream: streamPath, error: err });
        return Promise.resolve();
      }
      let up!: Upstream;
      const handle = ctx.sessions.add<Upstream>({
        kind: 'upstream', group: 'upstreams', streamPath, linger: 30_000,
        stop: (r) => up.stop(r), info: () => up.info(),
      });
      up = new Upstream(streamPath, ctx, sources, ctx.logger, () => watched(streamPath));
      ups.set(streamPath, { up, handle });
      ctx.logger.info('cascade upstream started', { stream: streamPath });
      return up.done.finally(() => {
        release();
        if (ups.get(streamPath)?.up === up) ups.delete(streamPath);
        handle.remove(up.stopReason);
        ctx.logger.info('cascade upstream ended', { stream: streamPath, reason: up.stopReason });
      });
    };

    // ---------------------------------------------------------------------------- cluster directory
    const cfg = ctx.config;
    let dir: StreamDirectory | null = null;
    let self: NodeInfo | null = null;
    const status = { ok: false, error: '', heartbeats: 0, lastHeartbeat: 0 };
    if (cfg.directory) {
      if (!/^https?:\/\//.test(cfg.advertise)) throw new Error('cascade.directory needs cascade.advertise (http://host:port of this node)');
      if (!cfg.secret && cfg.directory !== 'memory') throw new Error('cascade.directory needs cascade.secret (the cluster\'s shared secret)');
      const si = ctx.runtime.sysinfo();
      self = { id: cfg.nodeid || `${si.hostname}-${si.pid}`, http: cfg.advertise.replace(/\/+$/, ''), rtmp: cfg.advertisertmp || undefined };
      dir = cfg.directory === 'memory' ? new MemoryDirectory() : new RedisDirectory((o) => ctx.connectTcp(o), { ...parseRedisUrl(cfg.directory), timeout: 3000 }, cfg.secret, cfg.prefix);
    }
    /** Streams this node owns: published here by anything but our own upstreams. */
    const owned = () => [...ctx.engine.streams.values()].filter((s) => s.publisher && s.publisher.protocol !== 'cascade').map((s) => s.path);
    const beat = async () => {
      if (!dir || !self) return;
      try {
        await dir.heartbeat(self, owned(), cfg.ttl);
        status.ok = true; status.error = ''; status.heartbeats++; status.lastHeartbeat = Date.now();
      } catch (err) {
        if (status.ok || status.error !== (err as Error).message) ctx.logger.warn('cluster directory heartbeat failed', { error: err });
        status.ok = false; status.error = (err as Error)?.message ?? String(err);
      }
    };
    let hb: ReturnType<typeof setInterval> | undefined;
    if (dir) {
      hb = setInterval(beat, Math.max(300, Math.floor(cfg.ttl / 3)));
      await beat();
      ctx.events.on('publish', ({ stream, publisher }) => {
        if (publisher.protocol === 'cascade' || !dir || !self) return;
        dir.register(self, stream.path, cfg.ttl).catch((err) => ctx.logger.warn('cluster register failed', { stream: stream.path, error: err }));
      });
      const drop = (path: string) => {
        const s = ctx.engine.getStream(path);
        if (s?.publisher && s.publisher.protocol !== 'cascade') return;
        dir!.unregister(self!.id, path).catch(() => {});
      };
      ctx.events.on('unpublish', ({ stream }) => drop(stream.path));
      // A stream registered elsewhere while viewers here wait for it: try at once, not after retryinterval.
      const unwatch = dir.watch((e) => { if (e.type === 'register' && e.node !== self!.id) ups.get(e.path)?.up.poke(); });
      ctx.onStop(unwatch);
      ctx.events.on('stream.close', ({ stream }) => drop(stream.path));
      // Redirect mode: HTTP players asking for a stream another node owns get a 302 there.
      if (cfg.mode === 'redirect') {
        ctx.engine.addAuthHook('cascade', async (req) => {
          if (req.kind !== 'subscribe' || !HTTP_PLAYERS.has(req.protocol)) return;
          if (ctx.engine.getStream(req.streamPath)?.publisher) return;
          const found = await dir!.lookup(req.streamPath).catch(() => null);
          if (found && found.node.id !== self!.id) throw new EngineError('Redirect', `${req.streamPath} is on node ${found.node.id}`, found.node.http);
        });
      }
    }

    /** Where a missing stream comes from: the configured origins, then the directory's owner. */
    const sourcesOf = async (streamPath: string): Promise<UpstreamSettings> => {
      const s = settings();
      if (!dir || !self) return s;
      const found = await dir.lookup(streamPath);
      const owner = found && found.node.id !== self.id ? [found.node.http] : [];
      return { ...s, origins: [...s.origins, ...owner] };
    };

    const apply = () => {
      const origins = ctx.config.origins as string[];
      ctx.engine.setPullTriggers('cascade', origins.length || dir || peers.length ? { [ctx.config.streams]: '$0' } : {}, ({ streamPath, args }) => {
        if (args.m7sworker) return; // another worker asking: answer from what is here only
        return start(streamPath, dir ? () => sourcesOf(streamPath) : settings);
      });
    };
    apply();
    ctx.onConfigChange(apply);

    const clusterView = async () => {
      if (!dir || !self) return { enabled: false };
      let nodes: NodeInfo[] = [], streams: unknown[] = [];
      let error = status.error;
      try { ({ nodes, streams } = await dir.list()); } catch (err) { error = (err as Error)?.message ?? String(err); }
      return {
        enabled: true, self, mode: cfg.mode, directory: dir.kind, ttl: cfg.ttl, connected: status.ok && !error, error: error || undefined,
        heartbeats: status.heartbeats, lastHeartbeat: status.lastHeartbeat ? new Date(status.lastHeartbeat).toISOString() : undefined,
        refused: dir.refused, nodes, streams,
      };
    };
    ctx.http.get('/api/cluster', async (c) => ctx.ok(c, await clusterView()));
    ctx.onStop(() => {
      clearInterval(hb);
      if (dir && self) {
        const d = dir, id = self.id;
        // Best effort: take our streams out now rather than after the TTL.
        return Promise.race([Promise.all(owned().map((p) => d.unregister(id, p))).catch(() => {}), new Promise((r) => setTimeout(r, 1000))])
          .then(() => d.close());
      }
    });

    // The last viewer left: with publish.delayclosetimeout > 0 the engine stops the stream after it
    // (our publisher's onStop ends the upstream); with 0 the upstream ends now.
    ctx.events.on('unsubscribe', ({ stream }: { stream: Stream }) => {
      const u = ups.get(stream.path);
      if (!u || u.up.stopped) return;
      if (stream.countedSubscribers() > 0) return;
      if ((stream.pubConfig.delayclosetimeout ?? 0) > 0 && stream.publisher) return;
      u.up.stop('nobody is watching');
    });
    ctx.onStop(() => { for (const { up } of ups.values()) up.stop('server shutting down'); });
  },
});
