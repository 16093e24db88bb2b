// A Request whose url, method, headers and signal are plain fields; the runtime's own Request is built
// only when something else is asked of it (its body, json(), clone(), ...). For m7s's HTTP server on
// Node (adapters/node/socket-server.ts).
//
// Why: Node's Request (undici) validates and copies its init, makes its own AbortSignal that follows
// the caller's, and converts every argument through WebIDL: in a 1000-player join storm that was
// ~100 µs of the core per join (CPU profile, issue 19), more than parsing the head and routing it
// together. A player's GET reads the url, the method and a few headers and never the rest. Bun's and
// Deno's Request are native and cost 1–2 µs: they keep it.
//
// The object passes `instanceof Request` (its prototype chain goes through Request.prototype) and
// answers every member of Request.prototype: the four above from its own fields, every other one from
// the real Request, made once, with the same headers object, body stream and signal.
//
// One thing it cannot be: the *input* of undici's `new Request(input)` or `fetch(input)`, which reads
// undici's private state of a Request it recognises (on Node 20 that throws). As an init it works
// (`new Request(url, c.req.raw)`, as hono's mount and src/http/api.ts pass it); code that forwards a
// request passes it so.

interface LightInit {
  headers: [string, string][];
  body: ReadableStream<Uint8Array> | null;
  signal: AbortSignal;
}

const REAL = Symbol('m7s.realRequest');

class LightRequest {
  readonly url: string;
  readonly method: string;
  readonly signal: AbortSignal;
  #init: LightInit;
  #headers: Headers | null = null;
  #real: Request | null = null;

  constructor(url: string, method: string, init: LightInit) {
    this.url = url;
    this.method = method;
    this.signal = init.signal;
    this.#init = init;
  }

  get headers(): Headers {
    return (this.#headers ??= new Headers(this.#init.headers));
  }

  [REAL](): Request {
    if (this.#real) return this.#real;
    const body = this.#init.body;
    return (this.#real = new Request(this.url, {
      method: this.method,
      headers: this.headers,
      body,
      signal: this.signal,
      ...(body ? { duplex: 'half' } : {}),
    } as RequestInit));
  }
}

// Every other member of Request.prototype (and of its Body mixin, which undici defines there): from the
// real Request. Own fields above shadow their prototype namesakes.
const OWN = new Set(['constructor', 'url', 'method', 'headers', 'signal']);
for (const key of Object.getOwnPropertyNames(Request.prototype)) {
  if (OWN.has(key)) continue;
  const d = Object.getOwnPropertyDescriptor(Request.prototype, key)!;
  if (typeof d.value === 'function') {
    const fn = d.value as (...a: unknown[]) => unknown;
    Object.defineProperty(LightRequest.prototype, key, {
      configurable: true, writable: true,
      value: function (this: LightRequest, ...args: unknown[]) { return fn.apply(this[REAL](), args); },
    });
  } else if (d.get) {
    const get = d.get;
    Object.defineProperty(LightRequest.prototype, key, { configurable: true, get(this: LightRequest) { return get.call(this[REAL]()); } });
  }
}
// The getters of Request.prototype for url, method, headers and signal would throw on this object
// (their brand check): own getters/fields shadow them, `headers` by the class's own getter.
Object.setPrototypeOf(LightRequest.prototype, Request.prototype);

/** Methods the Fetch standard forbids in a Request (its constructor throws): refused as it would be. */
const FORBIDDEN = /^(connect|trace|track)$/i;

/** A Request for m7s's HTTP server, built lazily (see above). Throws TypeError where `new Request` would
 * for a head src/format/http1.ts accepted (a forbidden method). */
export function lightRequest(url: string, method: string, headers: [string, string][], body: ReadableStream<Uint8Array> | null, signal: AbortSignal): Request {
  if (FORBIDDEN.test(method)) throw new TypeError(`'${method}' HTTP method is unsupported`);
  return new LightRequest(url, method, { headers, body, signal }) as unknown as Request;
}
