// The stream directory in Redis (any Redis ≥ 2.6 or a compatible server: SET PX, GET, DEL, SCAN,
// PUBLISH/SUBSCRIBE). Layout, under a prefix (default "m7s:"):
//
//   {prefix}node:{id}       signed {id, http, rtmp, seen}   SET … PX ttl, refreshed by heartbeats
//   {prefix}stream:{path}   signed {path, node, since}      SET … PX ttl, refreshed by the owner's heartbeats
//   {prefix}events          pub/sub channel: signed {type, path, node} on register/unregister
//
// Authentication: the connection authenticates with Redis AUTH (password in the URL) where the server
// requires it, and every entry is HMAC-signed with the cluster secret: a node with the wrong secret
// writes entries that the others ignore, and cannot read theirs as valid. A Redis restart loses only
// what the next heartbeat (ttl/3) writes again.

import { type DirectoryEvent, type NodeInfo, sign, type StreamDirectory, type StreamEntry, verify } from './directory.ts';
import { RedisClient, type RedisOptions, type RespValue } from './resp.ts';
import type { ConnectOptions, TcpConn } from '../net/types.ts';

export class RedisDirectory implements StreamDirectory {
  readonly kind = 'redis';
  refused = 0;
  private readonly cmd: RedisClient;
  private sub: RedisClient | null = null;
  private readonly watchers = new Set<(e: DirectoryEvent) => void>();

  constructor(
    private readonly connect: (o: ConnectOptions) => Promise<TcpConn>,
    private readonly opts: RedisOptions,
    private readonly secret: string,
    private readonly prefix = 'm7s:',
  ) {
    this.cmd = new RedisClient(connect, opts);
  }

  private nodeKey(id: string): string { return `${this.prefix}node:${id}`; }
  private streamKey(path: string): string { return `${this.prefix}stream:${path}`; }

  /** Check the connection and the credentials (AUTH); throws the server's error. */
  async ping(): Promise<void> { await this.cmd.command('PING'); }

  async heartbeat(node: NodeInfo, paths: string[], ttlMs: number): Promise<void> {
    const ttl = Math.max(1, Math.round(ttlMs));
    const n = { id: node.id, http: node.http, rtmp: node.rtmp, seen: Date.now() };
    const jobs: Promise<unknown>[] = [this.cmd.command('SET', this.nodeKey(node.id), await sign(this.secret, 'node', node.id, n), 'PX', ttl)];
    // All streams pipelined on the one connection: GET (keep the first registration time while the
    // entry is still ours), then SET with the new expiry.
    for (const p of paths) {
      jobs.push((async () => {
        const cur = await verify<StreamEntry>(this.secret, 'stream', p, await this.cmd.command('GET', this.streamKey(p)) as string | null);
        const e: StreamEntry = { path: p, node: node.id, since: cur && cur.node === node.id ? cur.since : Date.now() };
        await this.cmd.command('SET', this.streamKey(p), await sign(this.secret, 'stream', p, e), 'PX', ttl);
      })());
    }
    await Promise.all(jobs);
  }

  async register(node: NodeInfo, path: string, ttlMs: number): Promise<void> {
    await this.heartbeat(node, [path], ttlMs);
    await this.cmd.command('PUBLISH', `${this.prefix}events`, await sign(this.secret, 'event', '', { type: 'register', path, node: node.id }));
  }

  async unregister(nodeId: string, path: string): Promise<void> {
    const cur = await verify<StreamEntry>(this.secret, 'stream', path, await this.cmd.command('GET', this.streamKey(path)) as string | null);
    if (!cur || cur.node !== nodeId) return;
    await this.cmd.command('DEL', this.streamKey(path));
    await this.cmd.command('PUBLISH', `${this.prefix}events`, await sign(this.secret, 'event', '', { type: 'unregister', path, node: nodeId }));
  }

  private async node(id: string): Promise<NodeInfo | null> {
    const raw = await this.cmd.command('GET', this.nodeKey(id)) as string | null;
    const n = await verify<NodeInfo>(this.secret, 'node', id, raw);
    if (raw && !n) this.refused++;
    return n;
  }

  async lookup(path: string): Promise<{ entry: StreamEntry; node: NodeInfo } | null> {
    const raw = await this.cmd.command('GET', this.streamKey(path)) as string | null;
    const entry = await verify<StreamEntry>(this.secret, 'stream', path, raw);
    if (raw && !entry) { this.refused++; return null; }
    if (!entry) return null;
    const node = await this.node(entry.node);
    return node ? { entry, node } : null;
  }

  private async scan(match: string): Promise<string[]> {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const r = await this.cmd.command('SCAN', cursor, 'MATCH', match, 'COUNT', 200) as RespValue[];
      cursor = String(r[0]);
      for (const k of r[1] as string[]) keys.push(k);
    } while (cursor !== '0' && keys.length < 100_000);
    return keys;
  }

  async list(): Promise<{ nodes: NodeInfo[]; streams: StreamEntry[] }> {
    const nodes: NodeInfo[] = [], streams: StreamEntry[] = [];
    const esc = (s: string) => s.replace(/[*?[\]\\]/g, '\\$&');
    for (const k of await this.scan(`${esc(this.prefix)}node:*`)) {
      const n = await this.node(k.slice(this.prefix.length + 5));
      if (n) nodes.push(n);
    }
    for (const k of await this.scan(`${esc(this.prefix)}stream:*`)) {
      const path = k.slice(this.prefix.length + 7);
      const raw = await this.cmd.command('GET', k) as string | null;
      const e = await verify<StreamEntry>(this.secret, 'stream', path, raw);
      if (e) streams.push(e); else if (raw) this.refused++;
    }
    return { nodes, streams };
  }

  watch(fn: (e: DirectoryEvent) => void): () => void {
    this.watchers.add(fn);
    if (!this.sub) {
      this.sub = new RedisClient(this.connect, this.opts);
      this.sub.subscribe([`${this.prefix}events`], (_ch, msg) => {
        verify<DirectoryEvent>(this.secret, 'event', '', msg).then((e) => {
          if (!e) { this.refused++; return; }
          for (const w of this.watchers) { try { w(e); } catch { /* a watcher's problem */ } }
        });
      }).catch(() => { /* retried by the client */ });
    }
    return () => this.watchers.delete(fn);
  }

  close(): void {
    this.cmd.close();
    this.sub?.close();
    this.watchers.clear();
  }
}
