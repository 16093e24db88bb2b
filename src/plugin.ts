// The plugin API: the only door a plugin uses into the engine.
//
//   export default definePlugin({
//     name: 'rtmp',
//     defaults: { tcp: { listenaddr: ':1935' }, chunksize: t.num(4096, { min: 128 }) },
//     async setup(ctx) {
//       await ctx.listenTcp(ctx.config.tcp.listenaddr, (conn) => ...);
//       ctx.http.get('/api/list', (c) => ctx.ok(c, [...]));        // → GET /rtmp/api/list
//       ctx.registerPuller(async ({ streamPath, url }) => ...);    // onsub.pull + pull-on-start
//     },
//   });
//
// A plugin's section in config.yaml has its own keys plus `enable`, and inherits `publish`/`subscribe`
// from `global:` (overridable per plugin). A plugin whose setup throws is disabled and the reason is
// shown in /api/plugins; the other plugins run.

import type { OutboundPolicy } from './core/outbound.ts';
import type { Context, Hono } from 'hono';
import type { ConfigDiff } from './config/load.ts';
import { type Defaults, type Resolved, t } from './config/schema.ts';
import type { PublishConfig, SubscribeConfig } from './core/config.ts';
import type { DescribeOptions, Engine, EngineEvents, PublishActionFn, PullFn, PublishOptions, StreamDescription, SubscribeOptions } from './core/engine.ts';
import type { Publisher } from './core/publisher.ts';
import type { Subscriber } from './core/subscriber.ts';
import type { EventBus } from './events.ts';
import type { Logger } from './log.ts';
import type { ByteSink } from './net/body.ts';
import type { Capability, ChildProcess, ConnectOptions, Runtime, SpawnOptions, TcpConn, TcpServer, TlsOptions, UdpOptions, UdpSocket, WsHandler } from './net/types.ts';
import type { PortRange } from './net/udp.ts';
import type { PluginSessions } from './sessions.ts';
import type { PlayerOptions } from './http/player.ts';

/** Keys every plugin that pulls or pushes may use (added to its schema by `pull: true` / `push: true`). */
export const pullSchema = {
  /** Pull these at start: streamPath → URL. */
  pull: t.map(t.str('')),
  /** On-demand pull: a subscriber to a missing stream whose path matches the regex pulls the URL ($1…). */
  onsub: { pull: t.map(t.str('')) },
};
export const pushSchema = {
  /** When a stream whose path matches starts, push it to the URL ($1…). */
  onpub: { push: t.map(t.str('')), record: t.map(t.str('')), transform: t.map(t.str('')) },
};

export interface PluginDef<D extends Defaults = Defaults> {
  name: string;
  description?: string;
  /** Settings with their defaults and types (see src/config/schema.ts `t`). */
  defaults: D;
  /**
   * Host capabilities the plugin cannot run without (`net` sockets, `fs` files, `proc` child
   * processes). On a host that lacks one the plugin is not set up and shows as disabled with the reason
   * in /api/plugins. Plugins that only serve HTTP need nothing.
   */
  needs?: readonly Capability[];
  /** Adds `pull` and `onsub.pull` to the schema. */
  pull?: boolean;
  /** Adds `onpub.push/record/transform` to the schema. */
  push?: boolean;
  /**
   * Query keys that make GET /{name}/api/list this plugin's own route instead of the generic session
   * listing (record: `streamPath`, `start`, `end` list recorded segments). `true`: GET /api/list is always
   * the plugin's own (logrotate: its files).
   */
  listquery?: string[] | true;
  setup(ctx: PluginContext<PluginConfig<D>>): void | Promise<void>;
}

/** A plugin's resolved config: its own settings plus what every section has. */
export type PluginConfig<D extends Defaults> = Resolved<D> & {
  enable: boolean;
  publish: PublishConfig;
  subscribe: SubscribeConfig;
  pull?: Record<string, string>;
  onsub?: { pull: Record<string, string> };
  onpub?: { push: Record<string, string>; record: Record<string, string>; transform: Record<string, string> };
};

export function definePlugin<const D extends Defaults>(def: PluginDef<D>): PluginDef<D> {
  if (!/^[a-z][a-z0-9]*$/.test(def.name)) throw new Error(`plugin name "${def.name}" must be lower-case letters and digits`);
  return def;
}

/** The part of the Engine a plugin sees (ctx.engine). */
export type PluginEngine = Pick<Engine, 'getStream' | 'streams' | 'describe' | 'checkAccess' | 'stopStream' | 'addAuthHook' | 'subscribeConfig' | 'summary' | 'events' | 'setPullTriggers' | 'provideAudioBridge' | 'audioBridge'>;

/** A child process started by a plugin (ctx.spawn), listed in /api/sysinfo as `children` while it runs. */
export interface ChildInfo { plugin: string; pid: number; cmd: string; what?: string; startTime: string }
export interface ListenInfo { plugin: string; proto: 'tcp' | 'tls' | 'udp' | 'http' | 'https'; host: string; port: number; what?: string }

/** What setup() gets. Everything a plugin opens through it is closed when the server stops. */
export interface PluginContext<C = Record<string, any>> {
  readonly name: string;
  /** The plugin's resolved section. Updated in place on hot reload (see onConfigChange). */
  readonly config: C;
  readonly logger: Logger;
  /** The engine, narrowly: what a plugin may read or ask (publish/subscribe go through ctx). */
  readonly engine: PluginEngine;
  readonly runtime: Runtime;
  readonly events: EventBus<EngineEvents>;
  /** Routes mounted under `/{name}/` on the shared HTTP server (a hono app). */
  readonly http: Hono;
  /** Upgrade a request to a WebSocket (inside an http route). Undefined when it is not an upgrade. */
  upgradeWebSocket(c: Context, handler: WsHandler): Response | Promise<Response | undefined> | undefined;
  /**
   * A live response body (HTTP-FLV and the like) as a ByteSink with a bounded queue of `highWaterMark`
   * bytes. Return `response` from the route handler. Where the runtime has a direct path
   * (Runtime.streamResponse) the head goes out at once, middleware headers (CORS) included; elsewhere it
   * is a ReadableStream body.
   */
  streamBody(c: Context, status: number, headers: Record<string, string>, highWaterMark: number): { sink: ByteSink; response: Response };
  /**
   * Answer a player request (inside an http route): WebSocket when it is an upgrade, a streamed HTTP
   * body otherwise. Subscribes, opens the body through streamBody once the subscription is accepted,
   * wires abort/close, and lists the player in ctx.sessions. Errors before streaming are thrown
   * (EngineError → its HTTP status through the app's onError). See src/http/player.ts.
   */
  play(c: Context, opts: PlayerOptions): Promise<Response>;
  /** The peer address of an HTTP request ("ip:port") on Node, Bun and Deno; undefined where the host does not say. */
  remoteOf(c: Context): string | undefined;
  /** `{ code: 0, message: 'ok', data }` */
  ok(c: Context, data?: unknown): Response;
  /** `{ code, message }` with an HTTP status. */
  fail(c: Context, status: number, message: string): Response;

  /**
   * This plugin's sessions and jobs in the server's one registry: add each connection, player,
   * publisher, pull or push with `add({ kind, streamPath, remote, stop, info })` and call
   * `handle.remove()` when it ends. GET /{name}/api/list and POST /{name}/api/stop/{id} are served from
   * it (a plugin must not define them), /api/metrics counts it, and the server stops what is left.
   */
  readonly sessions: PluginSessions;

  /** Listen on `addr` (":1935", "127.0.0.1:1935"); with `tls`, serve TLS. Empty addr = don't listen (returns null). */
  listenTcp(addr: string, onConn: (conn: TcpConn) => void, opts?: { tls?: TlsOptions; what?: string; highWaterMark?: number }): Promise<TcpServer | null>;
  /** A UDP server socket on `addr` (listed in /api/sysinfo while open; closed with the plugin). */
  listenUdp(addr: string, opts?: Omit<UdpOptions, 'port' | 'host'> & { what?: string }): Promise<UdpSocket | null>;
  /**
   * An ephemeral UDP socket (port 0 = any): a client's RTP port, a SIP transaction. Listed while open,
   * unlisted when the plugin closes it, closed with the plugin at the latest.
   */
  bindUdp(opts?: Partial<UdpOptions> & { what?: string }): Promise<UdpSocket>;
  /**
   * RTP on an even port and RTCP on the next odd one, from `range` ("10000-20000" or {min, max}); same
   * lifetime as bindUdp. Throws PortRangeExhaustedError when every pair in the range is taken.
   */
  bindUdpPair(range: string | PortRange, opts?: Omit<UdpOptions, 'port'> & { what?: string }): Promise<{ rtp: UdpSocket; rtcp: UdpSocket }>;
  connectTcp(opts: ConnectOptions): Promise<TcpConn>;
  /**
   * Starts a child process (needs the `proc` capability: declare `needs: ['proc']`). Killed with the
   * plugin at the latest; listed in /api/sysinfo (`children`) while it runs. Rejects with a clear error
   * when the program cannot be started.
   */
  spawn(cmd: string, args: readonly string[], opts?: SpawnOptions & { what?: string }): Promise<ChildProcess>;

  /** engine.publish with this plugin's name and publish config. */
  publish(streamPath: string, opts?: Omit<PublishOptions, 'protocol'> & { protocol?: string }): Promise<Publisher>;
  /** engine.subscribe with this plugin's name and subscribe config. */
  subscribe(streamPath: string, opts: Omit<SubscribeOptions, 'protocol'> & { protocol?: string }): Promise<Subscriber>;

  /** engine.describe with this plugin's name and subscribe config: the tracks of a stream (auth, on-demand pull, bounded wait), no cursor. */
  describe(streamPath: string, opts?: Omit<DescribeOptions, 'protocol'> & { protocol?: string }): Promise<StreamDescription>;

  /** This plugin can pull `url` into `streamPath`: used for `onsub.pull` (on demand) and `pull` (at start). */
  registerPuller(fn: PullFn): void;
  /**
   * Start a pull through another plugin's puller (ONVIF → rtsp): the same call that plugin's `pull:` map
   * makes. Throws when that plugin is not running or does not pull.
   */
  pullWith(plugin: string, streamPath: string, url: string): Promise<void>;
  /** This plugin can push a stream to a URL: used for `onpub.push`. */
  registerPusher(fn: PublishActionFn): void;
  /** This plugin records streams: used for `onpub.record`. */
  registerRecorder(fn: PublishActionFn): void;
  /** Called after a hot reload changed this plugin's section (ctx.config already holds the new values). */
  onConfigChange(fn: (diff: ConfigDiff[], config: C) => void): void;
  /** Called when the server stops (after listeners close). */
  onStop(fn: () => void | Promise<void>): void;
  /** Resolve a file path relative to the config file's folder. */
  resolvePath(p: string): string;
  /**
   * The pull and push policy (global.outbound), shared by all plugins: check a URL or a file source
   * by who asked ('api' or 'config'), take a job slot, cap an API job's retries. See src/core/outbound.ts.
   */
  readonly outbound: OutboundPolicy;
}

// ---------------------------------------------------------------------------------------------------
// The public plugin surface: what plugins use from the engine, re-exported so that no plugin imports
// src/core/* (its internals may move). Bytes-level code (src/format, src/codec) and the net helpers
// (src/net) are libraries plugins import directly.

export type { PluginSessions, SessionHandle, SessionInfo, SessionSpec } from './sessions.ts';
export type { PlayerOptions } from './http/player.ts';
export { closeWsWithError, wsCloseCode } from './http/player.ts';
export { EngineError, type EngineErrorCode } from './core/errors.ts';
export { FormatError, UnsupportedFormatError } from './format/bytes.ts';
export { Frame, sameBytes, Track, type CodecConfig, type TrackKind } from './core/frame.ts';
export type { Publisher, PublisherInfo } from './core/publisher.ts';
export type { SharedStartBytes, Subscriber, SubscriberInfo, SubscriberSink } from './core/subscriber.ts';
export type { Stream, StreamInfo } from './core/stream.ts';
export type { AudioBridge, AudioTranscoder, BridgeInfo, TranscodeOutput, TranscoderFactory } from './core/bridge.ts';
export type { DescribeOptions, Engine, EngineEvents, PublishActionFn, PublishOptions, PullFn, StreamDescription, SubscribeOptions } from './core/engine.ts';
export { expandTemplate } from './core/engine.ts';
export type { PublishConfig, SubscribeConfig } from './core/config.ts';
export { t, parseDuration } from './config/schema.ts';
export type { Logger } from './log.ts';
