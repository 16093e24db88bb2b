// The pull and push policy (global.outbound): where the server may fetch from or send to on someone's
// behalf. Pulls and pushes started through the API are untrusted input: file sources only under
// `fileroots` (none by default), hosts checked against `denyhosts` (loopback, private, link-local and
// unspecified addresses by default) unless listed in `allowhosts`; host names are resolved and every
// address checked. Pulls and pushes the admin wrote in config.yaml (`pull:`, `onsub.pull`, `onpub.push`)
// may reach any host; their file sources obey `fileroots` only when it is set. A cap on concurrent jobs
// and on an API job's retries applies to all plugins. Refusals and failures shown to API callers are
// one generic text, so the API cannot be used to map the network (closed, silent or HTTP ports, files
// that exist). The full reason goes to the log only. See docs/security.md "Pull and push policy".

import { EngineError } from './errors.ts';
import { IpSet, NAMED_RANGES, parseIp } from '../net/ip.ts';

export interface OutboundConfig {
  /** Directories file pulls may read from. Empty: file pulls only from config.yaml. */
  fileroots: string[];
  /** Hosts (names, IPs or CIDR ranges) API pulls/pushes may reach even when denyhosts covers them. */
  allowhosts: string[];
  /** IP ranges (or loopback/private/linklocal/unspecified) API pulls/pushes may not reach. */
  denyhosts: string[];
  /** Pulls and pushes running at once, all plugins together (0 = no limit). */
  maxjobs: number;
  /** An API-created pull or push gives up after this many failed reconnects (0 = no retry). */
  retrycount: number;
}

/** Who asked: the API (untrusted) or config.yaml (the admin). */
export type OutboundOrigin = 'api' | 'config';

/** What API callers are told about any refused or failed source. */
export const SOURCE_UNAVAILABLE = 'source not allowed or not reachable';

export interface OutboundHost {
  /** Resolve a host name to its addresses (all of them). */
  lookup?(host: string): Promise<string[]>;
  /** Canonical absolute path (symlinks resolved); throws when missing. */
  realPath?(path: string): Promise<string>;
  resolvePath(path: string): string;
}

export class OutboundPolicy {
  private active = 0;
  private sets = new WeakMap<string[], IpSet>();

  constructor(private readonly conf: () => OutboundConfig, private readonly host: OutboundHost, private readonly log: (msg: string, f: Record<string, unknown>) => void) {}

  private ipSet(list: string[]): IpSet {
    let s = this.sets.get(list);
    if (!s) {
      try { s = new IpSet(list.filter((x) => parseIp(x.split('/')[0]) || x.toLowerCase() in NAMED_RANGES)); } catch { s = new IpSet([]); }
      this.sets.set(list, s);
    }
    return s;
  }

  private refuse(what: string, reason: string): never {
    this.log('outbound request refused', { target: what, reason });
    throw new EngineError('Forbidden', SOURCE_UNAVAILABLE);
  }

  /** Check a network URL (http, https, rtmp, rtmps, ...). Throws EngineError('Forbidden') with the generic text. */
  async checkUrl(url: string, origin: OutboundOrigin): Promise<void> {
    if (origin === 'config') return;
    let u: URL;
    try { u = new URL(url); } catch { return this.refuse(url, 'not a URL'); }
    const host = u.hostname.replace(/^\[|\]$/g, '').toLowerCase().replace(/\.$/, '');
    if (!host) return this.refuse(url, 'no host');
    const c = this.conf();
    // Names: exact, or `.example.com` / `*.example.com` for the domain and everything under it.
    for (const h of c.allowhosts.map((x) => x.toLowerCase())) {
      if (h === host) return;
      const dom = h.startsWith('*.') ? h.slice(1) : h.startsWith('.') ? h : '';
      if (dom && (host.endsWith(dom) || host === dom.slice(1))) return;
    }
    const allow = this.ipSet(c.allowhosts), deny = this.ipSet(c.denyhosts);
    let addrs: string[];
    if (parseIp(host)) addrs = [host];
    else if (host === 'localhost' || host.endsWith('.localhost')) addrs = ['127.0.0.1', '::1'];
    else {
      if (!this.host.lookup) return this.refuse(url, 'cannot resolve host names here');
      try { addrs = await this.host.lookup(host); } catch (err) { return this.refuse(url, `lookup failed: ${(err as Error)?.message}`); }
      if (!addrs.length) return this.refuse(url, 'no addresses');
    }
    // Every address must pass: a name with one public and one internal address is refused.
    for (const a of addrs) {
      if (deny.has(a) && !allow.has(a)) return this.refuse(url, `${a} is in global.outbound.denyhosts`);
      if (!parseIp(a)) return this.refuse(url, `bad address ${a}`);
    }
  }

  /**
   * Check a local file source; returns the path to open. API: only under `fileroots` (refused when
   * empty). Config: anywhere, unless `fileroots` is set. Same error whether the file is missing or
   * outside the roots.
   */
  async checkFile(path: string, origin: OutboundOrigin): Promise<string> {
    const c = this.conf();
    const resolved = this.host.resolvePath(path);
    if (origin === 'config' && c.fileroots.length === 0) return resolved;
    if (c.fileroots.length === 0) return this.refuse(path, 'file pulls from the API need global.outbound.fileroots');
    if (!this.host.realPath) return this.refuse(path, 'cannot resolve paths here');
    let real: string;
    try { real = await this.host.realPath(resolved); } catch { return this.refuse(path, 'not found'); }
    for (const root of c.fileroots) {
      let r: string;
      try { r = await this.host.realPath(this.host.resolvePath(root)); } catch { continue; }
      const base = r.endsWith('/') || r.endsWith('\\') ? r : r + (r.includes('\\') && !r.includes('/') ? '\\' : '/');
      if (real.startsWith(base)) return real;
    }
    return this.refuse(path, 'outside global.outbound.fileroots');
  }

  /** Take a job slot (throws EngineError('TooManyPulls') at the cap); call the returned function once when the job ends. */
  acquire(what: string): () => void {
    const max = this.conf().maxjobs;
    if (max > 0 && this.active >= max) {
      this.log('pull/push refused: global.outbound.maxjobs reached', { target: what, max });
      throw new EngineError('TooManyPulls', `too many pulls and pushes running (global.outbound.maxjobs = ${max})`);
    }
    this.active++;
    let done = false;
    return () => { if (!done) { done = true; this.active--; } };
  }

  get running(): number { return this.active; }

  /** Retry cap for a job: API jobs at most `retrycount`; `own` is the plugin's (negative or 0 = forever, per plugin). */
  retryCap(origin: OutboundOrigin, own: number, ownForever: (n: number) => boolean): number {
    if (origin === 'config') return own;
    const cap = this.conf().retrycount;
    return ownForever(own) ? cap : Math.min(own, cap);
  }
}
