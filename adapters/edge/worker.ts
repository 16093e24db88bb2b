// m7s edge: HTTP egress (HLS, LL-HLS, live fMP4, HTTP-FLV) for viewers, pulled from an origin m7s.
// One `export default { fetch }` module for Workers-style hosts; the same built file runs under
// workerd / Cloudflare Workers, `deno serve` (and Deno Deploy) and `bun` (see docs/deploy.md).
//
//   bundle:  npm run build:edge                  → dist/edge.mjs (web APIs only, no node:*)
//   deno:    ORIGIN_URL=http://origin:8080 deno serve --allow-net --allow-env --port 8081 dist/edge.mjs
//   bun:     ORIGIN_URL=http://origin:8080 PORT=8081 bun dist/edge.mjs
//   workerd: deploy/edge/workerd.capnp; Cloudflare: deploy/edge/wrangler.toml
//
// Config comes from the platform's environment bindings (ORIGIN_URL, EDGE_*: see hub.ts readConfig).
// On Workers one request may not use another request's I/O objects, so coalescing across viewers
// lives in a Durable Object (binding EDGE_HUB, one object per stream path); without that binding a
// Worker proxies each request on its own (no coalescing). Deno and Bun keep one hub per process.

import { EdgeHub as Hub, readConfig } from './hub.ts';

interface DurableNamespace { idFromName(name: string): unknown; get(id: unknown): { fetch(req: Request): Promise<Response> } }
type Env = Record<string, unknown> & { EDGE_HUB?: DurableNamespace };

const onWorkers = (globalThis as { navigator?: { userAgent?: string } }).navigator?.userAgent === 'Cloudflare-Workers';
const onDeno = (globalThis as { Deno?: unknown }).Deno !== undefined;

let local: Hub | undefined;

/** The stream a request belongs to (the Durable Object that serves it): /hls/live/x/12.ts → live/x. */
export function streamKey(pathname: string): string {
  const parts = pathname.split('/').filter(Boolean).slice(1);
  const last = parts[parts.length - 1] ?? '';
  if (parts.length > 2 && /^(index|init(-\d+)?|\d+(\.\d+)?)\.\w+$/.test(last)) parts.pop();
  else if (parts.length) parts[parts.length - 1] = last.replace(/\.\w+$/, '');
  return parts.join('/') || '-';
}

/** The Durable Object class (Workers): one per stream path; all its viewers share its hub. */
export class EdgeHubObject {
  private readonly hub: Hub;
  constructor(_state: unknown, env: Env) { this.hub = new Hub(readConfig(env)); }
  fetch(req: Request): Promise<Response> { return this.hub.handle(req); }
}

export default {
  fetch(req: Request, env?: Env): Promise<Response> {
    // Bun passes its server and Deno its ServeHandlerInfo as the second argument: not bindings.
    const bindings = onWorkers ? env : undefined;
    if (bindings?.EDGE_HUB && typeof bindings.EDGE_HUB.idFromName === 'function') {
      const url = new URL(req.url);
      if (url.pathname !== '/edge/health') {
        const ns = bindings.EDGE_HUB;
        return ns.get(ns.idFromName(streamKey(url.pathname))).fetch(req);
      }
    }
    const mode = bindings?.EDGE_HUB ? 'durable-objects' : onWorkers ? 'workers-pass-through' : 'local';
    local ??= new Hub(readConfig(bindings), { coalesce: !onWorkers, copyBodies: onDeno, mode });
    return local.handle(req);
  },
};
