/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/// <reference lib="deno.ns" />
// The console's view of one m7s server (this one, or another added by URL and token): JSON calls and
// Server-Sent Events over fetch (fetch, not EventSource, so the session token goes in a header).
export interface Instance { name: string; url: string; token?: string }

export const TOKEN_KEY = 'm7s.console.token';
export const INSTANCES_KEY = 'm7s.console.instances';

export function localInstance(): Instance {
  return { name: 'this server', url: '', token: localStorage.getItem(TOKEN_KEY) ?? undefined };
}

export function savedInstances(): Instance[] {
  try { return JSON.parse(localStorage.getItem(INSTANCES_KEY) ?? '[]'); } catch { return []; }
}
export function saveInstances(list: Instance[]): void { localStorage.setItem(INSTANCES_KEY, JSON.stringify(list)); }

export class ApiError extends Error { constructor(readonly status: number, message: string, readonly data?: any) { super(message); } }

let onUnauthorized: () => void = () => {};
export function setUnauthorizedHandler(fn: () => void): void { onUnauthorized = fn; }

export function headers(inst: Instance, extra: Record<string, string> = {}): Record<string, string> {
  return inst.token ? { authorization: `Bearer ${inst.token}`, ...extra } : extra;
}

export async function api<T = any>(inst: Instance, path: string, opts: { method?: string; body?: unknown; type?: string; timeoutMs?: number } = {}): Promise<T> {
  const init: RequestInit = { method: opts.method ?? (opts.body !== undefined ? 'POST' : 'GET'), headers: headers(inst) };
  if (opts.body !== undefined) {
    const type = opts.type ?? 'application/json';
    init.body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    (init.headers as Record<string, string>)['content-type'] = type;
  }
  if (opts.timeoutMs) init.signal = AbortSignal.timeout(opts.timeoutMs);
  const r = await fetch(inst.url + path, init);
  let j: any = null;
  try { j = await r.json(); } catch { /* not JSON */ }
  // The server's own refusal carries its Basic challenge; a plugin's 401 (an ONVIF camera refusing the
  // credentials it was given) does not, and must not end the console session.
  if (r.status === 401 && !inst.url && r.headers.has('www-authenticate')) onUnauthorized();
  if (!r.ok || (j && j.code !== 0)) throw new ApiError(r.status, j?.message ?? `HTTP ${r.status}`, j?.data);
  return j?.data as T;
}

/** An image from the API (a snapshot) as an object URL: fetched with the token header an <img> cannot send. */
export async function imageUrl(inst: Instance, path: string, signal?: AbortSignal): Promise<string> {
  const r = await fetch(inst.url + path, { headers: headers(inst), signal });
  if (!r.ok) throw new ApiError(r.status, `HTTP ${r.status}`);
  return URL.createObjectURL(await r.blob());
}

/** Read an SSE stream; `on(event, data)` per message. Reconnects after errors until `signal` aborts. */
export function sse(inst: Instance, path: string, on: (event: string, data: any) => void, signal: AbortSignal, onState?: (ok: boolean, why?: string) => void): void {
  const run = async () => {
    while (!signal.aborted) {
      try {
        const r = await fetch(inst.url + path, { headers: headers(inst, { accept: 'text/event-stream' }), signal });
        if (r.status === 401 && !inst.url && r.headers.has('www-authenticate')) { onUnauthorized(); return; }
        if (!r.ok || !r.body) throw new Error(`HTTP ${r.status}`);
        onState?.(true);
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          buf += value;
          let i: number;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i); buf = buf.slice(i + 2);
            let event = 'message', data = '';
            for (const line of block.split('\n')) {
              if (line.startsWith('event: ')) event = line.slice(7);
              else if (line.startsWith('data: ')) data += line.slice(6);
            }
            if (data) { try { on(event, JSON.parse(data)); } catch (e) { console.warn('bad SSE data', e); } }
          }
        }
      } catch (e) {
        if (signal.aborted) return;
        onState?.(false, (e as Error).message);
      }
      await new Promise((r) => setTimeout(r, 2000));
    }
  };
  void run();
}

export const esc = (s: unknown): string => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function fmtBps(bps: number): string {
  if (!bps) return '0';
  const u = ['bps', 'kbps', 'Mbps', 'Gbps'];
  let i = 0, v = bps;
  while (v >= 1000 && i < u.length - 1) { v /= 1000; i++; }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${u[i]}`;
}
export function fmtBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0, v = n;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${u[i]}`;
}
