// Webhooks: engine events → signed HTTP POSTs, delivered off the media path. An event listener only
// builds a small JSON object and appends it to a bounded queue (O(1)); a few delivery loops send it with
// a timeout and bounded retries (exponential backoff from `retryinterval`). A full queue drops the
// new event; an event that fails every attempt is dropped; both are counted (metrics).
//
// Event names follow Monibuca v5 `global.hook` (pkg/config/types.go): server_start (v5 system_start),
// server_keep_alive, publish_start/_end, subscribe_start/_end, pull_start/_end, push_start/_end,
// record_start/_end, transform_start/_end, plus stream_not_found (ZLMediaKit on_stream_not_found).
//
// Signature (when the target has a `secret`):
//   X-M7s-Timestamp: <unix seconds>
//   X-M7s-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>
// plus X-M7s-Event and X-M7s-Delivery (a unique id per event; retries keep it).

export const HOOK_EVENTS = [
  'server_start', 'server_keep_alive',
  'publish_start', 'publish_end', 'subscribe_start', 'subscribe_end',
  'pull_start', 'pull_end', 'push_start', 'push_end', 'record_start', 'record_end',
  'transform_start', 'transform_end', 'stream_not_found',
] as const;
export type HookEvent = typeof HOOK_EVENTS[number];

export interface HookTarget {
  url: string;
  method: string;
  headers: Record<string, string>;
  secret: string;
  timeoutseconds: number;
  retrytimes: number;
  /** ms */
  retryinterval: number;
}

export interface WebhookOptions {
  /** `global.hook`: event name (or "default") → target. Read on every event (hot reload). */
  targets: () => Record<string, HookTarget>;
  queueSize: () => number;
  concurrency: () => number;
  logger?: { warn(msg: string, fields?: Record<string, unknown>): void };
  fetch?: typeof fetch;
}

interface Job { id: string; event: string; body: string; target: HookTarget; attempt: number; due: number }

const te = new TextEncoder();

export async function hmacSha256Hex(secret: string, text: string): Promise<string> {
  const key = await crypto.subtle.importKey('raw', te.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const sig = new Uint8Array(await crypto.subtle.sign('HMAC', key, te.encode(text)));
  return Array.from(sig, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Check a delivery as a receiver would (tests, and an example for receivers). */
export async function verifyHookSignature(secret: string, timestamp: string, body: string, header: string): Promise<boolean> {
  const want = 'sha256=' + await hmacSha256Hex(secret, timestamp + '.' + body);
  if (want.length !== header.length) return false;
  let d = 0;
  for (let i = 0; i < want.length; i++) d |= want.charCodeAt(i) ^ header.charCodeAt(i);
  return d === 0;
}

export class Webhooks {
  private readonly queue: Job[] = [];
  private active = 0;
  private seq = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  private readonly inflight = new Set<AbortController>();
  readonly stats = { queued: 0, sent: 0, failures: 0, droppedQueueFull: 0, droppedRetries: 0 };
  private readonly prefix = Math.random().toString(36).slice(2, 8);

  constructor(private readonly opts: WebhookOptions) {}

  /** The target of an event: its own entry, else `default`; none (or no url) = not sent. */
  targetOf(event: string): HookTarget | undefined {
    const t = this.opts.targets();
    const x = Object.prototype.hasOwnProperty.call(t, event) ? t[event] : t.default;
    return x?.url ? x : undefined;
  }

  /**
   * Queue an event (never blocks, never throws). Returns false when it is not sent (no target, full,
   * stopped). `data` may be a function: it is only called when the event has a target, so an event
   * nobody listens to (a viewer joining, without hooks) costs no payload.
   */
  emit(event: HookEvent, data: Record<string, unknown> | (() => Record<string, unknown>)): boolean {
    if (this.stopped) return false;
    const target = this.targetOf(event);
    if (!target) return false;
    if (this.queue.length + this.active >= this.opts.queueSize()) {
      this.stats.droppedQueueFull++;
      return false;
    }
    const id = `${this.prefix}-${++this.seq}`;
    const body = JSON.stringify({ event, id, time: new Date().toISOString(), ...(typeof data === 'function' ? data() : data) });
    this.queue.push({ id, event, body, target, attempt: 0, due: 0 });
    this.stats.queued++;
    this.pump();
    return true;
  }

  get pending(): number { return this.queue.length + this.active; }

  /** Drop what is queued and abort deliveries in flight (server stop). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.queue.length = 0;
    for (const c of this.inflight) c.abort();
  }

  private pump(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    const now = Date.now();
    while (this.active < this.opts.concurrency()) {
      const i = this.queue.findIndex((j) => j.due <= now);
      if (i < 0) break;
      const job = this.queue.splice(i, 1)[0];
      this.active++;
      // Off the caller's stack: emit() returns before any byte is sent.
      setTimeout(() => { void this.deliver(job).finally(() => { this.active--; this.pump(); }); }, 0);
    }
    if (this.queue.length) {
      const next = Math.min(...this.queue.map((j) => j.due));
      this.timer = setTimeout(() => this.pump(), Math.max(5, next - now));
    }
  }

  private async deliver(job: Job): Promise<void> {
    const t = job.target;
    const ts = String(Math.floor(Date.now() / 1000));
    const headers: Record<string, string> = {
      ...t.headers, 'content-type': 'application/json', 'user-agent': 'm7s-webhook',
      'x-m7s-event': job.event, 'x-m7s-delivery': job.id, 'x-m7s-timestamp': ts,
    };
    if (t.secret) headers['x-m7s-signature'] = 'sha256=' + await hmacSha256Hex(t.secret, ts + '.' + job.body);
    const ctl = new AbortController();
    this.inflight.add(ctl);
    const timer = setTimeout(() => ctl.abort(), Math.max(100, t.timeoutseconds * 1000));
    let retry = false;
    let why = '';
    try {
      const res = await (this.opts.fetch ?? fetch)(t.url, { method: t.method || 'POST', headers, body: job.body, signal: ctl.signal, redirect: 'manual' });
      await res.body?.cancel().catch(() => {});
      if (res.status >= 200 && res.status < 300) { this.stats.sent++; return; }
      why = `HTTP ${res.status}`;
      retry = res.status >= 500 || res.status === 429 || res.status === 408;
    } catch (err) {
      why = ctl.signal.aborted ? `no answer within ${t.timeoutseconds} s` : `unreachable (${(err as Error)?.message ?? String(err)})`;
      retry = true;
    } finally {
      clearTimeout(timer);
      this.inflight.delete(ctl);
    }
    if (this.stopped) return;
    this.stats.failures++;
    if (retry && job.attempt < t.retrytimes) {
      job.attempt++;
      job.due = Date.now() + t.retryinterval * 2 ** (job.attempt - 1);
      this.queue.push(job);
      return;
    }
    this.stats.droppedRetries++;
    this.opts.logger?.warn('webhook dropped', { event: job.event, url: t.url, attempts: job.attempt + 1, error: why });
  }
}
