// Serving the console's built assets (plugins/console/assets.gen.ts, made by scripts/build-ui.mjs)
// from memory: an HTML shell per page, the app scripts and the player libraries, gzip-compressed once
// on first request (CompressionStream: the same on Node, Bun and Deno) with an ETag.
import type { Context } from 'hono';
import { assets } from './assets.gen.ts';

const gz = new Map<string, Promise<Uint8Array>>();
async function gzip(body: string): Promise<Uint8Array> {
  const s = new Blob([body]).stream().pipeThrough(new CompressionStream('gzip'));
  return new Uint8Array(await new Response(s).arrayBuffer());
}

/** Content-Security-Policy of the pages: scripts only from this server; the API of other instances (connect-src) is allowed. */
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; media-src 'self' blob: *; connect-src *; worker-src 'self' blob:; frame-ancestors 'none'";

export async function serveAsset(c: Context, name: string): Promise<Response> {
  const a = assets[name];
  if (!a) return c.json({ code: 404, message: `no asset ${name}` }, 404);
  const etag = `"${name.length}-${a.body.length}-${hash(a.body)}"`;
  const h: Record<string, string> = { 'content-type': a.type, etag, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' };
  if (c.req.header('if-none-match') === etag) return new Response(null, { status: 304, headers: h });
  if (/\bgzip\b/.test(c.req.header('accept-encoding') ?? '')) {
    let p = gz.get(name);
    if (!p) gz.set(name, (p = gzip(a.body)));
    return new Response(await p as BodyInit, { headers: { ...h, 'content-encoding': 'gzip', vary: 'accept-encoding' } });
  }
  return new Response(a.body, { headers: h });
}

const hashes = new Map<string, string>();
function hash(s: string): string {
  let v = hashes.get(s);
  if (!v) {
    let x = 2166136261;
    for (let i = 0; i < s.length; i += 7) x = Math.imul(x ^ s.charCodeAt(i), 16777619);
    hashes.set(s, (v = (x >>> 0).toString(36)));
  }
  return v;
}

export function page(c: Context, title: string, script: string): Response {
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="color-scheme" content="light dark"><link rel="icon" href="data:,"><title>${title}</title></head><body><div id="app"></div><script src="${script}"></script></body></html>`;
  return new Response(html, { headers: { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': CSP, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' } });
}
