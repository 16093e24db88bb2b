// The server: builds the config, creates the engine, starts each enabled plugin, mounts the HTTP app
// and serves it. Hot reload (file change or API) is delivered to the engine and to plugins as a diff.

import { Hono } from 'hono';
import { applyArgs, buildConfig, type ConfigDiff, diffConfig, sectionDiffs, setInYamlText } from './config/load.ts';
import { type ConfigIssue, type Defaults, type SchemaLike } from './config/schema.ts';
import { normSubMode, type PublishConfig, type SubscribeConfig } from './core/config.ts';
import { Engine, type PublishActionFn, type PullFn } from './core/engine.ts';
import { type AuthConfig, Authorizer, httpCredentials } from './auth/permissions.ts';
import { authorizeHttp } from './http/peer.ts';
import { loadAdminSecret } from './auth/secret.ts';
import { EngineError } from './core/errors.ts';
import { wireWebhooks } from './hooks/engine-hooks.ts';
import { type HookTarget, Webhooks } from './hooks/webhook.ts';
import { mountApi } from './http/api.ts';
import { bearer, ConsoleSessions } from './http/live.ts';
import { play } from './http/player.ts';
import { applyMiddleware, fail, middlewareHeaders, ok, requestRemote } from './http/app.ts';
import { createBodySink } from './net/body.ts';
import { bindUdpPair, parsePortRange } from './net/udp.ts';
import { type LogLevel, Logger } from './log.ts';
import { CAPABILITY_TEXT, hostCapabilities, type HttpLimits, type HttpServer, type Runtime, type TcpServer, type UdpSocket } from './net/types.ts';
import { type ChildInfo, type ListenInfo, type PluginContext, type PluginDef, pullSchema, pushSchema } from './plugin.ts';
import { pluginSessions, SessionRegistry } from './sessions.ts';
import { globalSchema, PUBLISH_ARGS_ALLOW, SUBSCRIBE_ARGS_ALLOW, parseListenAddr, publishSchema, subscribeSchema } from './schema.ts';
import { normalizeKey } from './config/schema.ts';
import { checkRanges } from './net/ip.ts';
import { OutboundPolicy } from './core/outbound.ts';
import { isSecretKey, REDACTED } from './redact.ts';
import { VERSION } from './version.ts';
import { lineOfPath, redactConfigText, restoreSecrets, syntaxIssues } from './config/text.ts';

export interface ServerOptions {
  runtime: Runtime;
  plugins: PluginDef<any>[];
  /** Path of config.yaml (watched for changes). */
  configFile?: string;
  /** Config text instead of a file (tests). */
  configText?: string;
  /** Environment for overrides (default: the runtime's). */
  env?: Record<string, string | undefined>;
  /** A logger to use (default: one writing to the runtime's stdout). */
  logger?: Logger;
  /** Watch the config file and reload on change (default true when configFile is set). */
  watch?: boolean;
  /** A worker's own HTTP listener (loopback) that the other workers pull from (global.workers). */
  internalHttp?: { host: string; port: number };
}

export interface PluginState {
  name: string;
  description: string;
  enabled: boolean;
  /** Why it is not running (disabled in config, or setup failed). */
  reason?: string;
  listen: ListenInfo[];
}

interface PluginRuntime {
  def: PluginDef<any>;
  state: PluginState;
  ctx?: PluginContext<any>;
  config: Record<string, any>;
  changeFns: ((d: ConfigDiff[], c: any) => void)[];
  stopFns: (() => void | Promise<void>)[];
  closers: (() => Promise<void>)[];
  puller?: PullFn;
  pusher?: PublishActionFn;
  recorder?: PublishActionFn;
}

export class ConfigInvalidError extends Error {
  /** `warnings` (unknown keys and the like) are shown too: often the typo behind an error. */
  constructor(readonly issues: ConfigIssue[], readonly warnings: ConfigIssue[] = []) {
    super('invalid configuration:\n' + issues.map((i) => '  ' + i.message).join('\n') +
      (warnings.length ? '\nwarnings:\n' + warnings.map((w) => '  ' + w.message).join('\n') : ''));
    this.name = 'ConfigInvalidError';
  }
}

/** A listener could not bind: `plugin` ("global" for HTTP), protocol, the address asked for, and why. */
export class ListenError extends Error {
  constructor(readonly plugin: string, readonly proto: string, readonly address: string, readonly why: string) {
    super(`${plugin}: cannot listen on ${proto} ${address}: ${why}`);
    this.name = 'ListenError';
  }
  /** The same without the plugin name (a plugin's disabled reason). */
  get short(): string { return `cannot listen on ${this.proto} ${this.address}: ${this.why}`; }

  static from(err: unknown, plugin: string, proto: string, a: { host?: string; port: number }): ListenError {
    const code = (err as { code?: string })?.code;
    const why = code === 'EADDRINUSE' ? 'address in use'
      : code === 'EACCES' || code === 'EPERM' ? 'permission denied (ports below 1024 need privileges)'
      : code === 'EADDRNOTAVAIL' || code === 'EINVAL' ? 'address not available on this machine'
      : (err as Error)?.message ?? String(err);
    const host = a.host ? (a.host.includes(':') ? `[${a.host}]` : a.host) : '*';
    return new ListenError(plugin, proto, `${host}:${a.port}`, why);
  }
}

export class Server {
  readonly engine: Engine;
  readonly logger: Logger;
  readonly app: Hono;
  readonly runtime: Runtime;
  readonly startTime = Date.now();
  readonly version = VERSION;
  config: Record<string, any>;
  warnings: ConfigIssue[];
  http: HttpServer | null = null;
  readonly listening: ListenInfo[] = [];
  /** Child processes the plugins started (ctx.spawn), while they run. */
  readonly children: ChildInfo[] = [];
  /** Every plugin's sessions and jobs, one id space (see src/sessions.ts). */
  readonly sessions = new SessionRegistry();
  private readonly plugins: PluginRuntime[] = [];
  private readonly sections: Record<string, SchemaLike>;
  private modified: Record<string, any> = {};
  private fileText: string | undefined;
  private unwatch: (() => void) | null = null;
  private stopping: Promise<void> | null = null;
  /** The permission model (global.auth); the API guard calls authorizer.authorize for api/metrics. */
  readonly authorizer: Authorizer;
  /** Webhook delivery (global.hook); counters in /api/metrics. */
  readonly webhooks: Webhooks;
  private adminSecretValue = '';
  private keepAlive: ReturnType<typeof setInterval> | undefined;

  private constructor(private readonly opts: ServerOptions, built: { config: Record<string, any>; warnings: ConfigIssue[] }, sections: Record<string, SchemaLike>, fileText: string | undefined, logger: Logger) {
    this.runtime = opts.runtime;
    this.config = built.config;
    this.warnings = built.warnings;
    this.sections = sections;
    this.fileText = fileText;
    this.logger = logger;
    const g = this.config.global;
    this.engine = new Engine({
      publish: g.publish as PublishConfig,
      subscribe: { ...(g.subscribe as SubscribeConfig), submode: normSubMode(g.subscribe.submode) },
      logger,
      limits: { ...g.limits },
      argsOverride: (section, conf, args) => {
        const r = applyArgs(section === 'publish' ? publishSchema : subscribeSchema, conf, args, { section, allow: section === 'publish' ? PUBLISH_ARGS_ALLOW : SUBSCRIBE_ARGS_ALLOW });
        for (const e of r.errors) logger.warn('ignored query arg', { error: e.message });
        return r.value;
      },
    });
    this.app = new Hono();
    this.authorizer = new Authorizer(() => this.config.global.auth as AuthConfig, {
      readTextFile: (f) => this.runtime.readTextFile(f), resolvePath: (f) => this.resolvePath(f), logger,
    });
    // Every publish and play of a client (type server) on every protocol; internal jobs (pull, push,
    // record, transform) were started by config or an authorized API call.
    this.engine.addAuthHook('permissions', async (req) => {
      if (req.type !== 'server' || !this.authorizer.active) return;
      const r = await this.authorizer.authorize({
        action: req.action, path: req.streamPath, protocol: req.protocol, ip: req.ip,
        user: req.user, password: req.password, token: req.token,
        query: withoutSecrets(req.args, [this.config.global.publish.secretargname, this.config.global.subscribe.secretargname]),
      });
      if (!r.ok) throw new EngineError(r.status === 401 ? 'Unauthorized' : 'Forbidden', r.reason);
    });
    this.webhooks = new Webhooks({
      targets: () => this.config.global.hook as Record<string, HookTarget>,
      queueSize: () => this.config.global.hookqueue, concurrency: () => this.config.global.hookconcurrency, logger,
    });
    wireWebhooks(this.engine, this.webhooks, () => this.hookServerInfo());
  }

  /** The admin-session secret (generated at first start, .m7s/secret beside the config file, mode 0600). */
  adminSecret(): string { return this.adminSecretValue; }

  /** The web console's login sessions (src/http/live.ts): tokens signed with the admin secret. */
  readonly consoleSessions = new ConsoleSessions(() => this.adminSecretValue, () => this.config.global.http.sessionttl);

  /** The config file's name (no folder), when the server has one. */
  get configFileName(): string | undefined { return this.opts.configFile?.replace(/^.*[/\\]/, ''); }

  private hookServerInfo(): Record<string, unknown> {
    return { version: VERSION, runtime: this.runtime.name, hostname: this.runtime.sysinfo().hostname, startTime: new Date(this.startTime).toISOString() };
  }

  /** Connection limits of the HTTP listeners (global.http, global.limits; docs/limits.md). */
  private httpLimits(): HttpLimits {
    const g = this.config.global;
    return { readHeaderTimeout: g.http.readheadertimeout, idleTimeout: g.http.idletimeout, maxConnections: g.limits.maxconn };
  }

  /** The config schema of every section: global plus one per plugin. */
  private static sectionsOf(plugins: PluginDef<any>[]): Record<string, SchemaLike> {
    const sections: Record<string, SchemaLike> = { global: globalSchema };
    for (const p of plugins) {
      if (sections[p.name] || p.name === 'api') throw new Error(`plugin name "${p.name}" is taken`);
      sections[p.name] = { ...(p.pull ? pullSchema : {}), ...(p.push ? pushSchema : {}), ...p.defaults } as Defaults;
    }
    return sections;
  }

  /** Read and resolve the config without starting anything. Throws ConfigInvalidError on bad config. */
  static async loadConfig(opts: ServerOptions): Promise<{ sections: Record<string, SchemaLike>; fileText?: string; config: Record<string, any>; warnings: ConfigIssue[] }> {
    const rt = opts.runtime;
    const sections = Server.sectionsOf(opts.plugins);
    let fileText = opts.configText;
    if (fileText === undefined && opts.configFile) {
      if (!(await rt.stat(opts.configFile))?.isFile) throw new ConfigInvalidError([{ path: '', message: `config file ${opts.configFile} not found` }]);
      fileText = await rt.readTextFile(opts.configFile);
    }
    const env = opts.env ?? rt.env();
    const built = buildConfig({ sections, inherit: ['publish', 'subscribe'], fileText, filename: opts.configFile ?? 'config.yaml', env });
    const bad = unsafeKey(built.raw);
    if (bad) built.errors.push({ path: bad, message: `${bad}: key not allowed` });
    if (!built.errors.length) built.errors.push(...validateConfig(built.config));
    if (built.errors.length) throw new ConfigInvalidError(built.errors, built.warnings);
    return { sections, fileText, config: built.config, warnings: built.warnings };
  }

  /** Build the config, start the plugins and the HTTP server. Throws ConfigInvalidError on bad config. */
  static async start(opts: ServerOptions): Promise<Server> {
    const rt = opts.runtime;
    const { sections, fileText, ...built } = await Server.loadConfig(opts);
    const g = built.config.global;
    const pretty = g.logformat === 'pretty' || (g.logformat === 'auto' && rt.isTTY());
    const logger = opts.logger ?? Logger.create({ pretty, write: (line, s) => rt.writeLog(line, s) }, g.loglevel as LogLevel);
    if (opts.logger) logger.setLevel(g.loglevel);
    for (const w of built.warnings) logger.warn('config: ' + w.message);
    const server = new Server(opts, built, sections, fileText, logger);
    try {
      await server.boot();
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  private async boot(): Promise<void> {
    const g = this.config.global;
    try {
      this.adminSecretValue = (await loadAdminSecret(this.runtime, this.opts.configFile)).secret;
    } catch (err) {
      this.logger.warn('cannot store the admin secret beside the config file; using one for this process only', { error: err });
      this.adminSecretValue = (await loadAdminSecret(this.runtime)).secret;
    }
    for (const p of this.authorizer.problems()) this.logger.warn('auth: ' + p);
    applyMiddleware(this.app, () => this.config.global.http, this.logger, (c) => this.runtime.connInfo(c)?.address, async (c, action, path) => {
      // A console session token (POST /admin/login) grants the API like Basic credentials do.
      const token = bearer(c);
      if (token && await this.consoleSessions.verify(token)) return { ok: true };
      if (!this.authorizer.active) return undefined;
      const url = new URL(c.req.url);
      const creds = httpCredentials(c.req.header('authorization'), url.searchParams);
      if (creds.user === undefined && creds.token === undefined) return undefined; // anonymous: the guard's own rules
      return authorizeHttp(this.authorizer, c, action, path);
    });
    mountApi(this.app, this);
    for (const def of this.opts.plugins) await this.startPlugin(def);
    this.app.all('*', (c) => fail(c, 404, `no route for ${c.req.method} ${new URL(c.req.url).pathname}`));
    const addr = parseListenAddr(g.http.listenaddr, 'global.http.listenaddr');
    if (addr) {
      this.http = await this.bindOrReport('global', 'http', addr, () => this.runtime.serveHttp({ port: addr.port, host: addr.host, limits: this.httpLimits(), native: this.config.global.http.nativeserver }, this.app.fetch));
      if (this.http) this.listening.unshift({ plugin: 'global', proto: 'http', host: this.http.host, port: this.http.port, what: 'HTTP API, HTTP players' });
    }
    if (this.opts.internalHttp) {
      const ia = this.opts.internalHttp;
      const ih = await this.bindOrReport('global', 'http', ia, () => this.runtime.serveHttp({ port: ia.port, host: ia.host, limits: this.httpLimits(), native: this.config.global.http.nativeserver }, this.app.fetch));
      if (ih) {
        this.extraClosers.push(ih.close.bind(ih));
        this.listening.push({ plugin: 'global', proto: 'http', host: ih.host, port: ih.port, what: 'worker-internal (cascade between workers)' });
      }
    }
    if (g.http.listenaddrtls) {
      const tlsAddr = parseListenAddr(g.http.listenaddrtls, 'global.http.listenaddrtls')!;
      const tls = { cert: await this.runtime.readTextFile(this.resolvePath(g.http.certfile)), key: await this.runtime.readTextFile(this.resolvePath(g.http.keyfile)) };
      const https = await this.bindOrReport('global', 'https', tlsAddr, () => this.runtime.serveHttp({ port: tlsAddr.port, host: tlsAddr.host, tls, limits: this.httpLimits(), native: this.config.global.http.nativeserver }, this.app.fetch));
      if (https) {
        const close = https.close.bind(https);
        this.extraClosers.push(close);
        this.listening.push({ plugin: 'global', proto: 'https', host: https.host, port: https.port, what: 'HTTPS' });
      }
    }
    if (this.opts.configFile && this.opts.watch !== false) {
      this.unwatch = this.runtime.watchFile(this.opts.configFile, () => { void this.reloadFromFile(); });
    }
    this.webhooks.emit('server_start', { server: this.hookServerInfo(), listen: this.listening });
    const ka = () => {
      clearInterval(this.keepAlive);
      const every = this.config.global.hookkeepalive;
      if (every > 0 && this.webhooks.targetOf('server_keep_alive')) {
        this.keepAlive = setInterval(() => this.webhooks.emit('server_keep_alive', { server: this.hookServerInfo(), ...this.engine.summary() }), every);
      }
    };
    ka();
    this.keepAliveReset = ka;
    if (this.http && !(g.http.username && g.http.password)) {
      this.logger.info('the HTTP API answers only these peers until global.http.username and password are set (docs/security.md)', { apiallow: g.http.apiallow.join(', ') });
    }
    this.logger.info('m7s started', { version: VERSION, runtime: this.runtime.name, plugins: this.plugins.filter((p) => p.state.enabled).map((p) => p.def.name).join(',') });
  }

  private readonly extraClosers: (() => Promise<void>)[] = [];
  /** Listeners that could not bind while `global.failonlistenerror` is false (the server runs without them). */
  readonly missingListeners: ListenError[] = [];

  /**
   * Bind the HTTP server(s): a failure is a ListenError, which stops the start, or with
   * `global.failonlistenerror: false` is logged and recorded in missingListeners (returns null).
   */
  private async bindOrReport<T>(plugin: string, proto: string, a: { host?: string; port: number }, bind: () => Promise<T>): Promise<T | null> {
    try {
      return await bind();
    } catch (err) {
      const e = ListenError.from(err, plugin, proto, a);
      if (this.config.global.failonlistenerror) throw e;
      this.missingListeners.push(e);
      this.logger.error(`NOT LISTENING: ${e.message}; running without it (global.failonlistenerror: false)`);
      return null;
    }
  }
  private keepAliveReset: (() => void) | null = null;
  /** The pull and push policy every plugin shares (global.outbound). */
  private outboundPolicy: OutboundPolicy | undefined;
  get outbound(): OutboundPolicy {
    return this.outboundPolicy ??= new OutboundPolicy(() => this.config.global.outbound, {
      lookup: this.runtime.lookup?.bind(this.runtime), realPath: this.runtime.realPath?.bind(this.runtime),
      resolvePath: (p) => this.resolvePath(p),
    }, (msg, f) => this.logger.warn(msg, f));
  }

  private async startPlugin(def: PluginDef<any>): Promise<void> {
    const config = this.config[def.name];
    const state: PluginState = { name: def.name, description: def.description ?? '', enabled: false, listen: [] };
    const pr: PluginRuntime = { def, state, config, changeFns: [], stopFns: [], closers: [] };
    this.plugins.push(pr);
    if (!config.enable) {
      state.reason = this.config.global.disableall ? 'disabled by global.disableall' : 'disabled in config (enable: false)';
      return;
    }
    const log = this.logger.child({ plugin: def.name });
    const caps = hostCapabilities(this.runtime);
    const missing = (def.needs ?? []).filter((n) => !caps.includes(n));
    if (missing.length) {
      state.reason = `needs ${missing.map((n) => `${n} (${CAPABILITY_TEXT[n]})`).join(', ')}, which this host (${this.runtime.name}) does not have`;
      log.warn('plugin disabled: ' + state.reason);
      return;
    }
    const noNet = () => {
      if (!caps.includes('net')) throw new Error(`this host (${this.runtime.name}) has no net capability (TCP/UDP sockets); declare needs: ['net']`);
    };
    const sub = new Hono();
    const self = this;
    const track = <T extends TcpServer | UdpSocket>(s: T, proto: ListenInfo['proto'], what?: string): T => {
      const info: ListenInfo = { plugin: def.name, proto, host: s.host, port: s.port, what };
      state.listen.push(info);
      this.listening.push(info);
      pr.closers.push(() => s.close());
      return s;
    };
    // A UDP socket is listed while open and closed with the plugin; closing it earlier unlists it.
    const trackUdp = (s: UdpSocket, what?: string): UdpSocket => {
      const info: ListenInfo = { plugin: def.name, proto: 'udp', host: s.host, port: s.port, what };
      state.listen.push(info);
      this.listening.push(info);
      const close = s.close.bind(s);
      const closer = () => close();
      pr.closers.push(closer);
      Object.defineProperty(s, 'close', {
        configurable: true,
        value: () => {
          const drop = <T>(arr: T[], x: T) => { const i = arr.indexOf(x); if (i >= 0) arr.splice(i, 1); };
          drop(state.listen, info);
          drop(this.listening, info);
          drop(pr.closers, closer);
          return close();
        },
      });
      return s;
    };
    // The generic session API, mounted before setup() so that no plugin answers these itself.
    const groups: string[] = [];
    let listExtra: (() => Record<string, unknown>) | undefined;
    // A plugin whose own GET /api/list answers other questions (record: segments by time range) names
    // the query keys that select its route (def.listquery; `true`: always its own, for a plugin without
    // sessions such as logrotate); without them it is the session listing.
    sub.get('/api/list', (c, next) => def.listquery === true || (Array.isArray(def.listquery) && def.listquery.some((k) => c.req.query(k) !== undefined)) ? next() : ok(c, this.sessions.listing(def.name, groups, listExtra)));
    sub.post('/api/stop/:id', (c) => {
      const id = Number(c.req.param('id'));
      const h = Number.isInteger(id) ? this.sessions.stop(id, 'stopped by API', def.name) : undefined;
      if (!h) return fail(c, 404, `no ${def.name} session or job with id ${c.req.param('id')}`);
      return ok(c, { id: h.id, plugin: h.plugin, kind: h.kind, streamPath: h.streamPath });
    });
    const ctx: PluginContext<any> = {
      name: def.name, config, logger: log, engine: this.engine, runtime: this.runtime, events: this.engine.events, http: sub,
      upgradeWebSocket: (c, h) => this.runtime.upgradeWebSocket(c, h),
      streamBody: (c, status, headers, hwm) => {
        const direct = this.runtime.streamResponse?.(c, status, { ...middlewareHeaders(c), ...headers }, hwm);
        if (direct) return direct;
        const { body, sink } = createBodySink({ highWaterMark: hwm, copyShared: this.runtime.copySharedBody });
        return { sink, response: new Response(body, { status, headers }) };
      },
      ok, fail, remoteOf: requestRemote,
      play: (c, o) => play(ctx, c, o),
      sessions: pluginSessions(this.sessions, def.name, groups, (fn) => { listExtra = fn; }),
      async listenTcp(addr, onConn, o = {}) {
        const a = parseListenAddr(addr, `${def.name} listen address`);
        if (!a) return null;
        noNet();
        const s = await self.runtime.listenTcp({ port: a.port, host: a.host, tls: o.tls, highWaterMark: o.highWaterMark, maxConnections: self.config.global.limits.maxconn }, (conn) => {
          try { onConn(conn); } catch (err) { log.error('connection handler failed', { error: err }); conn.destroy(); }
        }).catch((err) => { throw ListenError.from(err, def.name, o.tls ? 'tls' : 'tcp', a); });
        return track(s, o.tls ? 'tls' : 'tcp', o.what);
      },
      async listenUdp(addr, o = {}) {
        const a = parseListenAddr(addr, `${def.name} listen address`);
        if (!a) return null;
        noNet();
        const { what, ...udp } = o;
        const s = await self.runtime.bindUdp({ ...udp, port: a.port, host: a.host }).catch((err) => { throw ListenError.from(err, def.name, 'udp', a); });
        return trackUdp(s, what);
      },
      async bindUdp(o = {}) {
        noNet();
        const { what, ...udp } = o;
        return trackUdp(await self.runtime.bindUdp({ ...udp, port: udp.port ?? 0 }), what);
      },
      async bindUdpPair(range, o = {}) {
        noNet();
        const { what, ...udp } = o;
        const pair = await bindUdpPair((x) => self.runtime.bindUdp(x), parsePortRange(range), udp);
        return { rtp: trackUdp(pair.rtp, what ? what + ' (RTP)' : 'RTP'), rtcp: trackUdp(pair.rtcp, what ? what + ' (RTCP)' : 'RTCP') };
      },
      connectTcp: async (o) => { noNet(); return await this.runtime.connectTcp(o); },
      async spawn(cmd, args, o = {}) {
        const { what, ...opts } = o;
        if (!caps.includes('proc') || !self.runtime.spawn) {
          throw new Error(`this host (${self.runtime.name}) has no proc capability (child processes); declare needs: ['proc']`);
        }
        const child = await self.runtime.spawn(cmd, args, opts);
        const info: ChildInfo = { plugin: def.name, pid: child.pid, cmd, what, startTime: new Date().toISOString() };
        self.children.push(info);
        const closer = async () => { child.kill('SIGTERM'); const t = setTimeout(() => child.kill('SIGKILL'), 2000); await child.exited; clearTimeout(t); };
        pr.closers.push(closer);
        void child.exited.then(() => {
          const drop = <T>(arr: T[], x: T) => { const i = arr.indexOf(x); if (i >= 0) arr.splice(i, 1); };
          drop(self.children, info);
          drop(pr.closers, closer);
        });
        return child;
      },
      publish: (path, o = {}) => this.engine.publish(path, { ...o, protocol: o.protocol ?? def.name, config: o.config ?? config.publish }),
      subscribe: (path, o) => this.engine.subscribe(path, { ...o, protocol: o.protocol ?? def.name, config: o.config ?? config.subscribe }),
      describe: (path, o = {}) => this.engine.describe(path, { ...o, protocol: o.protocol ?? def.name, config: o.config ?? config.subscribe }),
      registerPuller: (fn) => { pr.puller = fn; this.applyRegistries(pr); },
      pullWith: async (plugin, streamPath, url) => {
        const other = this.plugins.find((p) => p.def.name === plugin && p.state.enabled);
        if (!other?.puller) throw new Error(`plugin ${plugin} is not running or cannot pull`);
        await other.puller({ streamPath, url, args: {} });
      },
      registerPusher: (fn) => { pr.pusher = fn; this.applyRegistries(pr); },
      registerRecorder: (fn) => { pr.recorder = fn; this.applyRegistries(pr); },
      onConfigChange: (fn) => { pr.changeFns.push(fn); },
      onStop: (fn) => { pr.stopFns.push(fn); },
      resolvePath: (p) => this.resolvePath(p),
      outbound: this.outbound,
    };
    pr.ctx = ctx;
    try {
      await def.setup(ctx);
      state.enabled = true;
      this.app.route(`/${def.name}`, sub);
      if (pr.puller && config.pull) this.pullOnStart(pr);
    } catch (err) {
      state.enabled = false;
      await this.closePlugin(pr);
      if (err instanceof ListenError) {
        // A listener that cannot bind: stop the start (default), or run on without this plugin, loudly.
        if (this.config.global.failonlistenerror) throw err;
        state.reason = err.short;
        this.missingListeners.push(err);
        log.error(`NOT LISTENING: ${err.message}; plugin ${def.name} disabled (global.failonlistenerror: false)`);
        return;
      }
      state.reason = `setup failed: ${(err as Error)?.message ?? String(err)}`;
      log.error('plugin disabled: setup failed', { error: err });
    }
  }

  /** (Re)register a plugin's onsub/onpub patterns with the engine from its current config. */
  private applyRegistries(pr: PluginRuntime): void {
    const c = pr.config, name = pr.def.name;
    try {
      if (pr.puller) this.engine.setPullTriggers(name, c.onsub?.pull ?? {}, pr.puller);
      if (pr.pusher) this.engine.setPublishActions(name, 'push', c.onpub?.push ?? {}, pr.pusher);
      if (pr.recorder) this.engine.setPublishActions(name, 'record', c.onpub?.record ?? {}, pr.recorder);
    } catch (err) {
      pr.ctx?.logger.error('bad pattern in config', { error: err });
    }
  }

  private pullOnStart(pr: PluginRuntime): void {
    for (const [streamPath, url] of Object.entries(pr.config.pull as Record<string, string>)) {
      Promise.resolve().then(() => pr.puller!({ streamPath, url, args: {} }))
        .catch((err) => pr.ctx?.logger.error('pull failed', { stream: streamPath, url, error: err }));
    }
  }

  private async closePlugin(pr: PluginRuntime): Promise<void> {
    for (const c of pr.closers.splice(0)) await c().catch(() => {});
    this.sessions.stopAll(pr.def.name, 'server shutting down');
    for (const f of pr.stopFns.splice(0)) {
      try { await f(); } catch (err) { this.logger.warn('plugin stop hook failed', { plugin: pr.def.name, error: err }); }
    }
  }

  resolvePath(p: string): string {
    if (!p || p.startsWith('/') || /^[A-Za-z]:[\\/]/.test(p) || !this.opts.configFile) return p;
    const dir = this.opts.configFile.replace(/[^/\\]*$/, '');
    return dir ? dir + p : p;
  }

  pluginStates(): PluginState[] { return this.plugins.map((p) => p.state); }

  // ---------------------------------------------------------------- hot reload

  private async reloadFromFile(): Promise<void> {
    if (!this.opts.configFile) return;
    let text: string;
    try { text = await this.runtime.readTextFile(this.opts.configFile); } catch (err) {
      this.logger.warn('config reload: cannot read file', { file: this.opts.configFile, error: err });
      return;
    }
    if (text === this.fileText) return;
    const r = this.reload(text);
    if (r.errors.length) {
      this.logger.error('config reload rejected; keeping the running config', {
        errors: r.errors.map((e) => e.message), ...(r.warnings?.length ? { warnings: r.warnings.map((w) => w.message) } : {}),
      });
    }
  }

  /** Rebuild the config from `fileText` (default: current) and the API modifications; apply the diff. */
  reload(fileText = this.fileText): { diff: ConfigDiff[]; errors: ConfigIssue[]; warnings?: ConfigIssue[] } {
    const built = this.build(fileText, this.modified);
    if (built.errors.length) return { diff: [], errors: built.errors, warnings: built.warnings };
    this.fileText = fileText;
    const diff = diffConfig(this.config, built.config);
    if (diff.length) this.apply(built.config, diff);
    this.warnings = built.warnings;
    return { diff, errors: [] };
  }

  /**
   * API modification: `{ section: { key: value } }`, highest priority; saved into config.yaml when there
   * is one. Validated first (unknown sections and keys are errors, not warnings), then written (a
   * temporary file beside config.yaml, fsync, rename), and only then applied: on any failure nothing
   * changes, neither the running config nor the file, and the error is returned.
   */
  modify(changes: Record<string, any>, save = true): Promise<{ diff: ConfigDiff[]; errors: ConfigIssue[]; warnings?: ConfigIssue[]; saved: boolean; saveError?: string }> {
    // One at a time: each builds on the file text and modifications the previous one left.
    const run = this.modifyQueue.then(() => this.modifyNow(changes, save));
    this.modifyQueue = run.then(() => {}, () => {});
    return run;
  }
  private modifyQueue: Promise<void> = Promise.resolve();

  /** The config file's text for an editor, secret values as `***` (src/config/text.ts). */
  configText(): string { return redactConfigText(this.fileText ?? ''); }

  /**
   * Replace the whole config file (the console's editor): `***` under secret keys keeps the current
   * value; validated (errors carry the 1-based line in `text`); with `dry`, nothing else happens;
   * otherwise written (when there is a config file) and applied as a hot reload. Queued with modify().
   */
  replaceConfigText(text: string, dry: boolean): Promise<{ errors: ConfigIssue[]; warnings: ConfigIssue[]; diff: ConfigDiff[]; saved: boolean }> {
    const run = this.modifyQueue.then(async () => {
      const none = { diff: [] as ConfigDiff[], saved: false, warnings: [] as ConfigIssue[] };
      const syntax = syntaxIssues(text);
      if (syntax.length) return { ...none, errors: syntax };
      const full = restoreSecrets(text, this.fileText);
      let built: ReturnType<Server['build']>;
      try { built = this.build(full, this.modified); } catch (err) {
        const issues: ConfigIssue[] = (err as { issues?: ConfigIssue[] }).issues ?? [{ path: '', message: (err as Error).message }];
        return { ...none, errors: issues };
      }
      const withLine = (i: ConfigIssue): ConfigIssue => (i.line !== undefined || !i.path ? i : { ...i, line: lineOfPath(text, i.path) });
      const errors = built.errors.map(withLine);
      const warnings = built.warnings.map(withLine);
      if (errors.length || dry) return { ...none, errors, warnings, diff: errors.length ? [] : diffConfig(this.config, built.config) };
      let saved = false;
      if (this.opts.configFile) {
        try { await this.runtime.replaceFile(this.opts.configFile, full); saved = true; } catch (err) {
          return { ...none, errors: [{ path: '', message: `config not saved, nothing changed: ${(err as Error)?.message ?? String(err)}` }] };
        }
      }
      this.fileText = full;
      const diff = diffConfig(this.config, built.config);
      if (diff.length) this.apply(built.config, diff);
      this.warnings = built.warnings;
      return { errors: [], warnings, diff, saved };
    });
    this.modifyQueue = run.then(() => {}, () => {});
    return run;
  }

  private async modifyNow(changes: Record<string, any>, save: boolean): Promise<{ diff: ConfigDiff[]; errors: ConfigIssue[]; warnings?: ConfigIssue[]; saved: boolean; saveError?: string }> {
    const none = { diff: [], saved: false };
    const unsafe = unsafeKey(changes);
    if (unsafe) return { ...none, errors: [{ path: unsafe, message: `${unsafe}: key not allowed` }] };
    changes = dropRedacted(changes, this.config);
    const errors: ConfigIssue[] = [];
    for (const k of Object.keys(changes)) {
      if (!(normalizeKey(k) in this.sections)) errors.push({ path: k, message: `${k}: unknown config section (known: ${Object.keys(this.sections).join(', ')})` });
      else if (!changes[k] || typeof changes[k] !== 'object' || Array.isArray(changes[k])) errors.push({ path: k, message: `${k}: must be a mapping of settings` });
    }
    if (errors.length) return { ...none, errors };
    // An empty section changes nothing (and must not be written as `section: {}` over the file's).
    for (const k of Object.keys(changes)) if (!Object.keys(changes[k]).length) delete changes[k];
    const merged = mergeDeep(structuredClone(this.modified), changes);
    const built = this.build(this.fileText, merged);
    // Unknown keys in the modification are refused (the file may keep its own, with a warning).
    errors.push(...built.errors, ...built.warnings.filter((w) => w.source === 'API modification'));
    if (errors.length) return { ...none, errors };
    let saved = false;
    let text = this.fileText;
    if (save && this.opts.configFile) {
      try {
        text = this.fileText ?? '';
        for (const [path, value] of leaves(changes)) text = setInYamlText(text, path, value, this.opts.configFile);
        await this.runtime.replaceFile(this.opts.configFile, text);
      } catch (err) {
        const msg = `config not saved, nothing changed: ${(err as Error)?.message ?? String(err)}`;
        this.logger.error('config modification not saved; nothing changed', { file: this.opts.configFile, error: err });
        return { ...none, errors: [{ path: '', message: msg }], saveError: msg };
      }
      saved = true;
    }
    // Saved (or not asked to): now apply. Our own write: the watcher sees no change.
    this.fileText = text;
    this.modified = merged;
    const diff = diffConfig(this.config, built.config);
    if (diff.length) this.apply(built.config, diff);
    this.warnings = built.warnings;
    return { diff, errors: [], saved };
  }

  private build(fileText: string | undefined, modified: Record<string, any>): { config: Record<string, any>; errors: ConfigIssue[]; warnings: ConfigIssue[] } {
    const built = buildConfig({
      sections: this.sections, inherit: ['publish', 'subscribe'], fileText, filename: this.opts.configFile ?? 'config.yaml',
      env: this.opts.env ?? this.runtime.env(), modified,
    });
    const bad = unsafeKey(built.raw);
    if (bad) built.errors.push({ path: bad, message: `${bad} (${this.opts.configFile ?? 'config.yaml'}): key not allowed` });
    return { config: built.config, errors: [...built.errors, ...(built.errors.length ? [] : validateConfig(built.config))], warnings: built.warnings };
  }

  private apply(next: Record<string, any>, diff: ConfigDiff[]): void {
    const bySection = sectionDiffs(diff);
    for (const [section, d] of bySection) {
      const target = this.config[section];
      if (target && next[section]) replaceInPlace(target, next[section]);
      else this.config[section] = next[section];
      this.logger.info('config changed', { section, keys: d.map((x) => x.path).join(', ') });
      if (section === 'global') {
        const g = this.config.global;
        this.logger.setLevel(g.loglevel);
        this.engine.publishConfig = g.publish;
        if (d.some((x) => x.parts[1] === 'hook' || x.parts[1] === 'hookkeepalive')) this.keepAliveReset?.();
        if (d.some((x) => x.parts[1] === 'auth')) for (const p of this.authorizer.problems()) this.logger.warn('auth: ' + p);
        this.engine.subscribeConfig = { ...g.subscribe, submode: normSubMode(g.subscribe.submode) };
        this.engine.limits = { ...g.limits };
        if (d.some((x) => x.parts[1] === 'http' && /listenaddr/.test(x.parts[2] ?? ''))) this.logger.warn('global.http listen address changes take effect after a restart');
        continue;
      }
      const pr = this.plugins.find((p) => p.def.name === section);
      if (!pr) continue;
      if (d.some((x) => x.parts[1] === 'enable')) this.logger.warn(`${section}.enable changes take effect after a restart`);
      if (!pr.state.enabled) continue;
      this.applyRegistries(pr);
      for (const fn of pr.changeFns) {
        try { fn(d, pr.config); } catch (err) { this.logger.error('plugin config change handler failed', { plugin: section, error: err }); }
      }
    }
  }

  // ---------------------------------------------------------------- stop

  /** Graceful stop: close listeners, end streams, run plugins' stop hooks, close HTTP. */
  stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = (async () => {
        this.unwatch?.();
        clearInterval(this.keepAlive);
        this.logger.info('m7s stopping');
        for (const pr of this.plugins) await this.closePlugin(pr);
        this.engine.shutdown();
        for (const c of this.extraClosers) await c().catch(() => {});
        await this.http?.close().catch(() => {});
        this.webhooks.stop();
      })();
    }
    return this.stopping;
  }

  /** One line per listener: what a person needs to connect. */
  describeListeners(): string[] {
    return this.listening.map((l) => {
      const host = !l.host || l.host === '0.0.0.0' || l.host === '::' ? 'localhost' : l.host;
      return `${l.plugin.padEnd(10)} ${l.proto.padEnd(5)} ${host}:${l.port}${l.what ? '  ' + l.what : ''}`;
    });
  }
}

/** Query args for the auth callback, without the Monibuca key secret (credentials travel in their own fields). */
function withoutSecrets(args: Record<string, string>, secretArgs: string[]): Record<string, string> {
  const drop = new Set(['pass', 'jwt', 'secret', ...secretArgs]);
  const out: Record<string, string> = {};
  for (const k in args) if (!drop.has(k)) out[k] = args[k];
  return out;
}

function replaceInPlace(target: Record<string, any>, src: Record<string, any>): void {
  for (const k of Object.keys(target)) if (!(k in src)) delete target[k];
  for (const [k, v] of Object.entries(src)) {
    if (v && typeof v === 'object' && !Array.isArray(v) && target[k] && typeof target[k] === 'object' && !Array.isArray(target[k])) replaceInPlace(target[k], v);
    else target[k] = v;
  }
}

/** Keys that would reach an object's prototype when assigned. */
const UNSAFE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** The dotted path of the first key that could pollute a prototype, or undefined. */
export function unsafeKey(o: unknown, prefix = ''): string | undefined {
  if (!o || typeof o !== 'object') return undefined;
  for (const k of Object.keys(o)) {
    const p = prefix ? `${prefix}.${k}` : k;
    if (UNSAFE_KEYS.has(k)) return p;
    const r = unsafeKey((o as Record<string, unknown>)[k], p);
    if (r) return r;
  }
  return undefined;
}

/** Leaves set to the redaction placeholder (a config read back from the API) keep their current value. */
function dropRedacted(changes: Record<string, any>, current: Record<string, any>): Record<string, any> {
  const out: Record<string, any> = {};
  for (const k of Object.keys(changes)) {
    const v = changes[k];
    const cur = current?.[normalizeKey(k)] ?? current?.[k];
    if (v === REDACTED && isSecretKey(k)) continue;
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const inner = dropRedacted(v, cur && typeof cur === 'object' ? cur : {});
      // A mapping emptied by dropping placeholders sets nothing (an empty one as sent still does).
      if (Object.keys(inner).length || !Object.keys(v).length) out[k] = inner;
    } else out[k] = v;
  }
  return out;
}

/** Checks the config schema cannot express (IP ranges). */
export function validateConfig(config: Record<string, any>): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const http = config.global?.http;
  for (const key of ['apiallow'] as const) {
    const bad = checkRanges(http?.[key] ?? []);
    if (bad) out.push({ path: `global.http.${key}`, message: `global.http.${key}: ${bad}` });
  }
  const ob = config.global?.outbound;
  const bad = checkRanges(ob?.denyhosts ?? []);
  if (bad) out.push({ path: 'global.outbound.denyhosts', message: `global.outbound.denyhosts: ${bad}` });
  for (const h of ob?.allowhosts ?? []) {
    if (!/^(\*\.|\.)?[a-z0-9.-]+$/i.test(h) && checkRanges([h])) out.push({ path: 'global.outbound.allowhosts', message: `global.outbound.allowhosts: "${h}" is not a host name, IP address or CIDR range` });
  }
  return out;
}

function mergeDeep(a: Record<string, any>, b: Record<string, any>): Record<string, any> {
  for (const [k, v] of Object.entries(b)) {
    if (UNSAFE_KEYS.has(k)) continue;
    if (v && typeof v === 'object' && !Array.isArray(v) && a[k] && typeof a[k] === 'object') mergeDeep(a[k], v);
    else a[k] = v;
  }
  return a;
}

function leaves(o: Record<string, any>, prefix: string[] = []): [string[], unknown][] {
  const out: [string[], unknown][] = [];
  for (const [k, v] of Object.entries(o)) {
    if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length) out.push(...leaves(v, [...prefix, k]));
    else out.push([[...prefix, k], v]);
  }
  return out;
}
