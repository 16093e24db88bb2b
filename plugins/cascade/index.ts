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

import { t } from '../../src/config/schema.ts';
import { definePlugin, type SessionHandle, type Stream } from '../../src/plugin.ts';
import { originUrl, Upstream, type UpstreamSettings } from './upstream.ts';

export { originUrl, Upstream, type UpstreamSettings };

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
  },
  setup(ctx) {
    ctx.sessions.declareGroups('upstreams');
    const ups = new Map<string, { up: Upstream; handle: SessionHandle<Upstream> }>();
    const settings = (): UpstreamSettings => ({
      origins: ctx.config.origins as string[], retryinterval: ctx.config.retryinterval, timeout: ctx.config.timeout, query: ctx.config.query,
    });
    for (const o of settings().origins) originUrl(o, 'a/b'); // a bad origin fails setup with its reason

    const watched = (path: string) => (ctx.engine.getStream(path)?.subscribers.size ?? 0) > 0;

    /** Start the upstream of `streamPath`, or return the running one. Resolves when it has ended. */
    const start = (streamPath: string): Promise<void> => {
      const have = ups.get(streamPath);
      if (have && !have.up.stopped) return have.up.done;
      let up!: Upstream;
      const handle = ctx.sessions.add<Upstream>({
        kind: 'upstream', group: 'upstreams', streamPath, linger: 30_000,
        stop: (r) => up.stop(r), info: () => up.info(),
      });
      up = new Upstream(streamPath, ctx, settings, ctx.logger, () => watched(streamPath));
      ups.set(streamPath, { up, handle });
      ctx.logger.info('cascade upstream started', { stream: streamPath });
      return up.done.finally(() => {
        if (ups.get(streamPath)?.up === up) ups.delete(streamPath);
        handle.remove(up.stopReason);
        ctx.logger.info('cascade upstream ended', { stream: streamPath, reason: up.stopReason });
      });
    };

    const apply = () => {
      const origins = ctx.config.origins as string[];
      ctx.engine.setPullTriggers('cascade', origins.length ? { [ctx.config.streams]: '$0' } : {}, ({ streamPath }) => start(streamPath));
    };
    apply();
    ctx.onConfigChange(apply);

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
