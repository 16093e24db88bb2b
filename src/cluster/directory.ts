// The stream directory of a cluster: which node publishes which stream. Nodes register themselves and
// the streams published to them with a TTL and refresh both with heartbeats; an entry whose node stops
// heartbeating (crash, kill -9, network split) expires. A node asked for a stream it does not have looks
// it up and pulls from the owner or redirects the viewer there (plugins/cascade).
//
// Two implementations: MemoryDirectory (one process: tests, and the interface's reference behaviour)
// and RedisDirectory (src/cluster/redis-directory.ts). Entries are signed with HMAC-SHA256 under the
// cluster's shared secret; an entry with a bad signature is ignored (a node with the wrong secret is
// refused by every other node), and counted in `refused`.

export interface NodeInfo {
  id: string;
  /** Base URL other nodes and redirected viewers use: http://host:port. */
  http: string;
  /** rtmp://host:port, when the node serves RTMP. */
  rtmp?: string;
  /** Last heartbeat (ms since epoch). */
  seen?: number;
}

export interface StreamEntry {
  path: string;
  node: string;
  /** When the node registered it (ms since epoch). */
  since: number;
}

export interface DirectoryEvent { type: 'register' | 'unregister'; path: string; node: string }

export interface StreamDirectory {
  readonly kind: string;
  /** Announce `node` and (re)register `paths` as its streams, all with `ttlMs`. Call every ttl/3. */
  heartbeat(node: NodeInfo, paths: string[], ttlMs: number): Promise<void>;
  /** Register one stream now (a publish) with `ttlMs`; watchers hear of it. */
  register(node: NodeInfo, path: string, ttlMs: number): Promise<void>;
  /** Remove a stream this node owned (its publisher left). Entries of other nodes are left alone. */
  unregister(nodeId: string, path: string): Promise<void>;
  /** The owner of `path` and its node, or null (unknown, expired, or signed with another secret). */
  lookup(path: string): Promise<{ entry: StreamEntry; node: NodeInfo } | null>;
  /** Every live node and stream. */
  list(): Promise<{ nodes: NodeInfo[]; streams: StreamEntry[] }>;
  /** Hear of registrations and removals (best effort; lookups are the truth). Returns the unsubscribe. */
  watch(fn: (e: DirectoryEvent) => void): () => void;
  /** Entries ignored for a bad signature so far. */
  readonly refused: number;
  close(): void;
}

/** One process's directory: a map with expiry times. */
export class MemoryDirectory implements StreamDirectory {
  readonly kind = 'memory';
  refused = 0;
  private nodes = new Map<string, { info: NodeInfo; exp: number }>();
  private streams = new Map<string, { entry: StreamEntry; exp: number }>();
  private watchers = new Set<(e: DirectoryEvent) => void>();

  constructor(private readonly now: () => number = Date.now) {}

  private emit(e: DirectoryEvent): void { for (const w of this.watchers) { try { w(e); } catch { /* a watcher's problem */ } } }

  heartbeat(node: NodeInfo, paths: string[], ttlMs: number): Promise<void> {
    const exp = this.now() + ttlMs;
    this.nodes.set(node.id, { info: { ...node, seen: this.now() }, exp });
    for (const p of paths) {
      const cur = this.streams.get(p);
      if (cur && cur.entry.node === node.id) cur.exp = exp;
      else this.streams.set(p, { entry: { path: p, node: node.id, since: this.now() }, exp });
    }
    return Promise.resolve();
  }

  async register(node: NodeInfo, path: string, ttlMs: number): Promise<void> {
    await this.heartbeat(node, [], ttlMs);
    this.streams.set(path, { entry: { path, node: node.id, since: this.now() }, exp: this.now() + ttlMs });
    this.emit({ type: 'register', path, node: node.id });
  }

  unregister(nodeId: string, path: string): Promise<void> {
    const cur = this.streams.get(path);
    if (cur && cur.entry.node === nodeId) {
      this.streams.delete(path);
      this.emit({ type: 'unregister', path, node: nodeId });
    }
    return Promise.resolve();
  }

  private sweep(): void {
    const now = this.now();
    for (const [k, v] of this.nodes) if (v.exp <= now) this.nodes.delete(k);
    for (const [k, v] of this.streams) if (v.exp <= now) this.streams.delete(k);
  }

  lookup(path: string): Promise<{ entry: StreamEntry; node: NodeInfo } | null> {
    this.sweep();
    const s = this.streams.get(path);
    const n = s && this.nodes.get(s.entry.node);
    return Promise.resolve(s && n ? { entry: { ...s.entry }, node: { ...n.info } } : null);
  }

  list(): Promise<{ nodes: NodeInfo[]; streams: StreamEntry[] }> {
    this.sweep();
    return Promise.resolve({ nodes: [...this.nodes.values()].map((n) => ({ ...n.info })), streams: [...this.streams.values()].map((s) => ({ ...s.entry })) });
  }

  watch(fn: (e: DirectoryEvent) => void): () => void {
    this.watchers.add(fn);
    return () => this.watchers.delete(fn);
  }

  close(): void { this.watchers.clear(); }
}

// ---------------------------------------------------------------------------------------- signing

const enc = new TextEncoder();

/** HMAC-SHA256 of `text` under `secret`, hex. WebCrypto: the same on Node, Bun, Deno. */
export async function hmacHex(secret: string, text: string): Promise<string> {
  const key = await crypto.subtle.importKey('raw', enc.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const sig = new Uint8Array(await crypto.subtle.sign('HMAC', key, enc.encode(text)));
  let s = '';
  for (const b of sig) s += b.toString(16).padStart(2, '0');
  return s;
}

/** `{"v":…,"sig":…}` where sig = HMAC(secret, kind + "\n" + key + "\n" + JSON(v)): bound to its key, so an entry cannot be moved. */
export async function sign(secret: string, kind: string, key: string, v: unknown): Promise<string> {
  const body = JSON.stringify(v);
  return JSON.stringify({ v, sig: await hmacHex(secret, `${kind}\n${key}\n${body}`) });
}

/** The signed value, or null when the text is not ours or the signature does not match. */
export async function verify<T>(secret: string, kind: string, key: string, text: string | null): Promise<T | null> {
  if (!text) return null;
  let o: { v?: unknown; sig?: unknown };
  try { o = JSON.parse(text); } catch { return null; }
  if (!o || typeof o !== 'object' || typeof o.sig !== 'string' || o.v === undefined) return null;
  const want = await hmacHex(secret, `${kind}\n${key}\n${JSON.stringify(o.v)}`);
  // Compare in constant time over the hex strings.
  if (want.length !== o.sig.length) return null;
  let diff = 0;
  for (let i = 0; i < want.length; i++) diff |= want.charCodeAt(i) ^ o.sig.charCodeAt(i);
  return diff === 0 ? o.v as T : null;
}
