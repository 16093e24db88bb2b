// The engine's HTTP API under /api: JSON envelope `{code, message, data}`; any GET here streams
// updates as Server-Sent Events when asked with `Accept: text/event-stream` (see jsonOrSse).

import type { Hono } from 'hono';
import { parse as parseYaml } from 'yaml';
import { toYaml } from '../config/load.ts';
import type { Server } from '../server.ts';
import { fail, jsonOrSse, ok } from './app.ts';
import { isSecretKey, redact, redactUrl } from '../redact.ts';
import { mountLive } from './live.ts';

export function mountApi(app: Hono, server: Server): void {
  const engine = server.engine;
  let cpuPrev = { t: Date.now(), ...server.runtime.sysinfo().cpuUsage };
  let cpuPct = 0;
  const cpu = () => {
    const now = Date.now();
    if (now - cpuPrev.t >= 500) {
      const u = server.runtime.sysinfo().cpuUsage;
      cpuPct = Math.round(((u.user + u.system - cpuPrev.user - cpuPrev.system) / 1000 / (now - cpuPrev.t)) * 1000) / 10;
      cpuPrev = { t: now, ...u };
    }
    return cpuPct;
  };

  app.get('/api/sysinfo', (c) => jsonOrSse(c, () => {
    const si = server.runtime.sysinfo();
    return {
      version: server.version, startTime: new Date(server.startTime).toISOString(), uptimeSec: Math.round((Date.now() - server.startTime) / 1000),
      runtime: si.runtime, runtimeVersion: si.runtimeVersion, os: si.os, arch: si.arch, cpus: si.cpus, hostname: si.hostname, pid: si.pid,
      listen: server.listening,
      children: server.children,
      plugins: server.pluginStates().map((p) => ({ name: p.name, enabled: p.enabled, reason: p.reason })),
    };
  }));

  const summary = () => {
    const si = server.runtime.sysinfo();
    return {
      ...engine.summary(),
      cpuUsage: cpu(),
      memory: si.memory,
      loadavg: si.loadavg,
      streams: [...engine.streams.values()].map((s) => ({
        path: s.path, state: s.state, subscribers: s.subscribers.size,
        publisher: s.publisher ? s.publisher.protocol : null,
        tracks: s.tracks.map((t) => `${t.kind}:${t.codec}`), bps: s.tracks.reduce((a, t) => a + t.bps, 0),
      })),
    };
  };
  app.get('/api/summary', (c) => jsonOrSse(c, summary));

  // The console's live feeds (/api/events, /api/logs/tail), config text and admin sessions: src/http/live.ts.
  mountLive(app, server, () => {
    const si = server.runtime.sysinfo();
    let bytesOut = 0;
    for (const s of engine.streams.values()) for (const x of s.subscribers) bytesOut += x.bytesSent;
    return { ...engine.summary(), cpuUsage: cpu(), memory: si.memory, loadavg: si.loadavg, bytesOut };
  });

  // Sessions and jobs of every plugin (one id space; stop one with POST /{plugin}/api/stop/{id}).
  app.get('/api/sessions', (c) => jsonOrSse(c, () => {
    const plugin = c.req.query('plugin') || undefined;
    const list = server.sessions.list(plugin).map((h) => server.sessions.info(h));
    return { total: list.length, list };
  }));

  // The cluster view (nodes and streams of the stream directory) is the cascade plugin's: 404 without it.
  app.get('/api/cluster', (c) => app.fetch(new Request(new URL('/cascade/api/cluster', c.req.url), c.req.raw), c.env));

  app.get('/api/plugins', (c) => jsonOrSse(c, () => server.pluginStates()));

  app.get('/api/stream/list', (c) => jsonOrSse(c, () => {
    const all = [...engine.streams.values()];
    const pageSize = clampInt(c.req.query('pageSize'), 1, 1000, 100);
    const pageNum = clampInt(c.req.query('pageNum'), 1, 1e9, 1);
    const list = all.slice((pageNum - 1) * pageSize, pageNum * pageSize).map((s) => s.info());
    return { total: all.length, pageNum, pageSize, list };
  }));

  app.get('/api/stream/info/:path{.+}', (c) => {
    const s = engine.getStream(c.req.param('path'));
    if (!s) return fail(c, 404, `stream ${c.req.param('path')} not found`);
    return jsonOrSse(c, () => s.info());
  });

  app.get('/api/subscribers/:path{.+}', (c) => {
    const s = engine.getStream(c.req.param('path'));
    if (!s) return fail(c, 404, `stream ${c.req.param('path')} not found`);
    return jsonOrSse(c, () => [...s.subscribers].map((x) => x.info()));
  });

  app.post('/api/stream/stop/:path{.+}', (c) => {
    const path = c.req.param('path');
    if (!engine.stopStream(path, 'stopped by API')) return fail(c, 404, `stream ${path} not found`);
    return ok(c, { path });
  });

  app.post('/api/subscribe/stop/:id', (c) => {
    const id = Number(c.req.param('id'));
    for (const s of engine.streams.values()) {
      for (const sub of s.subscribers) {
        if (sub.id === id) { sub.close('stopped by API'); sub.end('stopped by API'); return ok(c, { id }); }
      }
    }
    return fail(c, 404, `subscriber ${id} not found`);
  });

  // Config: the resolved config (all sections or one), as JSON or ?format=yaml.
  // Secrets (passwords, keys, tokens) are never shown: see src/redact.ts.
  const showConfig = (name?: string) => redact(name ? server.config[name.toLowerCase()] : server.config);
  app.get('/api/config/get/:name?', (c) => {
    const name = c.req.param('name');
    const v = showConfig(name);
    if (v === undefined) return fail(c, 404, `no config section ${name}`);
    if (c.req.query('format') === 'yaml') return c.text(toYaml(name ? { [name]: v } : v), 200, { 'content-type': 'text/yaml; charset=utf-8' });
    return jsonOrSse(c, () => ({ config: showConfig(name), warnings: name ? undefined : server.warnings.map((w) => redactUrl(w.message)) }));
  });

  // Modify: body `{ section: { key: value } }` as JSON or YAML (the guard requires one of those content
  // types); validated, saved to config.yaml (unless ?save=false), then applied. Answers the diff.
  app.post('/api/config/modify', async (c) => {
    const text = await c.req.text();
    if (text.length > 1_000_000) return fail(c, 413, 'config body too large');
    let body: unknown;
    try { body = parseYaml(text, { uniqueKeys: true, maxAliasCount: 100 }); } catch (err) { return fail(c, 400, `body is not JSON/YAML: ${(err as Error).message}`); }
    if (!body || typeof body !== 'object' || Array.isArray(body)) return fail(c, 400, 'body must be an object: { section: { key: value } }');
    const r = await server.modify(body as Record<string, unknown>, c.req.query('save') !== 'false');
    if (r.saveError) return c.json({ code: 500, message: r.saveError }, 500);
    if (r.errors.length) return c.json({ code: 400, message: 'invalid config', data: { errors: r.errors.map((e) => e.message), warnings: (r.warnings ?? []).map((w) => w.message) } }, 400);
    return ok(c, {
      saved: r.saved,
      changed: r.diff.map((d) => redact({ path: d.path, old: d.old, new: d.new }, undefined, isSecretKey(d.parts[d.parts.length - 1] ?? ''))),
    });
  });

  app.get('/api/metrics', (c) => c.text(metrics(server), 200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }));

  app.all('/api/*', (c) => fail(c, 404, `no API ${c.req.method} ${new URL(c.req.url).pathname}`));
}

function clampInt(s: string | undefined, min: number, max: number, def: number): number {
  const n = s === undefined ? def : parseInt(s, 10);
  return Number.isFinite(n) ? Math.min(max, Math.max(min, n)) : def;
}

/** Prometheus text exposition of the engine's counters. */
export function metrics(server: Server): string {
  const e = server.engine;
  const si = server.runtime.sysinfo();
  const lines: string[] = [];
  const esc = (s: string) => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
  const metric = (name: string, type: string, help: string, samples: [Record<string, string> | null, number][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of samples) {
      const l = labels ? '{' + Object.entries(labels).map(([k, x]) => `${k}="${esc(x)}"`).join(',') + '}' : '';
      lines.push(`${name}${l} ${v}`);
    }
  };
  const streams = [...e.streams.values()];
  metric('m7s_streams', 'gauge', 'Streams in the engine.', [[null, streams.length]]);
  metric('m7s_publishers', 'gauge', 'Streams with a publisher.', [[null, streams.filter((s) => s.publisher).length]]);
  metric('m7s_subscribers', 'gauge', 'Subscribers per stream.', streams.map((s) => [{ stream: s.path }, s.subscribers.size]));
  metric('m7s_track_bytes_total', 'counter', 'Payload bytes received per track.', streams.flatMap((s) => s.tracks.map((t) => [{ stream: s.path, kind: t.kind, codec: t.codec }, t.bytes] as [Record<string, string>, number])));
  metric('m7s_track_frames_total', 'counter', 'Frames received per track.', streams.flatMap((s) => s.tracks.map((t) => [{ stream: s.path, kind: t.kind, codec: t.codec }, t.frames] as [Record<string, string>, number])));
  const subs = streams.flatMap((s) => [...s.subscribers].map((x) => ({ s, x })));
  metric('m7s_subscriber_bytes_sent_total', 'counter', 'Bytes sent per stream and protocol (live subscribers).', aggregate(subs, (o) => o.x.bytesSent));
  metric('m7s_subscriber_frames_dropped_total', 'counter', 'Frames skipped for slow subscribers, per stream and protocol (live subscribers).', aggregate(subs, (o) => o.x.framesDropped));
  const rtpTracks = streams.flatMap((s) => {
    const r = s.publisher?.info().rtp;
    return Array.isArray(r) ? r.map((t: Record<string, unknown>) => ({ s, t })) : [];
  });
  for (const [k, help] of [['lost', 'RTP packets lost'], ['late', 'RTP packets that came too late for the reorder buffer'], ['reordered', 'RTP packets put back in order'], ['duplicate', 'Duplicate RTP packets']] as const) {
    metric(`m7s_rtp_packets_${k}_total`, 'counter', `${help}, per stream and track of RTP sources (RTSP).`,
      rtpTracks.map(({ s, t }) => [{ stream: s.path, codec: String(t.codec), control: String(t.control ?? '') }, Number(t[k]) || 0]));
  }
  metric('m7s_sessions', 'gauge', 'Live sessions and jobs per plugin and kind (connections, players, pulls, pushes, HLS viewers…).',
    server.sessions.counts().map((x) => [{ plugin: x.plugin, kind: x.kind }, x.count]));
  // Jobs that run a child process (a transcode's ffmpeg) report cpuPercent / speed in their listing info.
  const jobs = server.sessions.list(undefined, { live: true }).map((h) => ({ h, i: h.spec.info?.() ?? {} }));
  const jobLabels = (h: (typeof jobs)[number]['h']) => ({ plugin: h.plugin, kind: h.kind, stream: h.streamPath ?? '', id: String(h.id) });
  metric('m7s_job_cpu_percent', 'gauge', 'CPU of a job\'s child process, % of one core (transcode ffmpeg), from the job listing.',
    jobs.filter((j) => typeof j.i.cpuPercent === 'number').map((j) => [jobLabels(j.h), j.i.cpuPercent as number]));
  metric('m7s_job_speed', 'gauge', 'Processing speed of a job relative to real time (ffmpeg speed=), from the job listing.',
    jobs.filter((j) => typeof j.i.speed === 'number').map((j) => [jobLabels(j.h), j.i.speed as number]));
  metric('m7s_publish_total', 'counter', 'Publishes since start.', [[null, e.totals.publishes]]);
  metric('m7s_subscribe_total', 'counter', 'Subscribes since start.', [[null, e.totals.subscribes]]);
  metric('m7s_auth_failures_total', 'counter', 'Refused publishes and subscribes.', [[null, e.totals.authFailures]]);
  const wh = server.webhooks.stats;
  metric('m7s_webhook_sent_total', 'counter', 'Webhook events delivered (2xx).', [[null, wh.sent]]);
  metric('m7s_webhook_failures_total', 'counter', 'Failed webhook delivery attempts (timeouts, errors, non-2xx).', [[null, wh.failures]]);
  metric('m7s_webhook_dropped_total', 'counter', 'Webhook events dropped, by reason.', [[{ reason: 'queue_full' }, wh.droppedQueueFull], [{ reason: 'retries' }, wh.droppedRetries]]);
  metric('m7s_webhook_queue', 'gauge', 'Webhook events waiting or being delivered.', [[null, server.webhooks.pending]]);
  const az = server.authorizer.stats;
  metric('m7s_auth_decisions_total', 'counter', 'Permission checks by result (global.auth).', [[{ result: 'allow' }, az.allowed], [{ result: 'deny' }, az.denied]]);
  metric('m7s_auth_callback_errors_total', 'counter', 'Auth callback timeouts and errors (each denied).', [[null, az.callbackErrors]]);
  metric('m7s_process_resident_memory_bytes', 'gauge', 'Resident set size.', [[null, si.memory.rss]]);
  metric('m7s_process_cpu_seconds_total', 'counter', 'CPU time (user + system).', [[null, (si.cpuUsage.user + si.cpuUsage.system) / 1e6]]);
  return lines.join('\n') + '\n';
}

function aggregate<T extends { s: { path: string }; x: { protocol: string } }>(items: T[], v: (o: T) => number): [Record<string, string>, number][] {
  const m = new Map<string, [Record<string, string>, number]>();
  for (const o of items) {
    const k = o.s.path + '\0' + o.x.protocol;
    const e = m.get(k);
    if (e) e[1] += v(o); else m.set(k, [{ stream: o.s.path, protocol: o.x.protocol }, v(o)]);
  }
  return [...m.values()];
}
