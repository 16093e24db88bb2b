// A small S3 client for finished segments: AWS Signature Version 4 (header auth, signed payload hash),
// PutObject, multipart upload for large files (CreateMultipartUpload / UploadPart /
// CompleteMultipartUpload), GetObject with a Range. Path-style URLs (endpoint/bucket/key), so any
// S3-compatible store (MinIO, Ceph, R2, s3rver) works. WebCrypto only: the same code on every runtime.

const enc = new TextEncoder();
const hex = (b: ArrayBuffer) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, '0')).join('');

export async function sha256Hex(data: Uint8Array | string): Promise<string> {
  return hex(await crypto.subtle.digest('SHA-256', (typeof data === 'string' ? enc.encode(data) : data) as BufferSource));
}

async function hmac(key: Uint8Array | ArrayBuffer, data: string): Promise<ArrayBuffer> {
  const k = await crypto.subtle.importKey('raw', key as BufferSource, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return crypto.subtle.sign('HMAC', k, enc.encode(data));
}

/** RFC 3986 encoding as SigV4 wants it (keep / in paths). */
function uriEncode(s: string, keepSlash: boolean): string {
  return [...enc.encode(s)].map((b) => {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-._~]/.test(c) || (keepSlash && c === '/')) return c;
    return '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }).join('');
}

export interface SignInput {
  method: string;
  url: URL;
  /** Headers to sign (host is added); lower-case names. */
  headers: Record<string, string>;
  payloadHash: string;
  accessKey: string;
  secretKey: string;
  region: string;
  service?: string;
  /** YYYYMMDDTHHMMSSZ */
  amzDate: string;
}

/** The Authorization header value for a request (AWS Signature Version 4). */
export async function signV4(i: SignInput): Promise<string> {
  const service = i.service ?? 's3';
  const headers: Record<string, string> = { host: i.url.host, ...i.headers, 'x-amz-date': i.amzDate, 'x-amz-content-sha256': i.payloadHash };
  const names = Object.keys(headers).map((n) => n.toLowerCase()).sort();
  const lower: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) lower[k.toLowerCase()] = String(v).trim().replace(/\s+/g, ' ');
  const query = [...i.url.searchParams].map(([k, v]) => [uriEncode(k, false), uriEncode(v, false)]).sort((a, b) => (a[0]! < b[0]! ? -1 : a[0]! > b[0]! ? 1 : a[1]! < b[1]! ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`).join('&');
  const canonical = [i.method, uriEncode(decodeURIComponent(i.url.pathname), true), query,
    names.map((n) => `${n}:${lower[n]}`).join('\n') + '\n', names.join(';'), i.payloadHash].join('\n');
  const day = i.amzDate.slice(0, 8);
  const scope = `${day}/${i.region}/${service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', i.amzDate, scope, await sha256Hex(canonical)].join('\n');
  let key = await hmac(enc.encode('AWS4' + i.secretKey), day);
  key = await hmac(key, i.region);
  key = await hmac(key, service);
  key = await hmac(key, 'aws4_request');
  const sig = hex(await hmac(key, toSign));
  return `AWS4-HMAC-SHA256 Credential=${i.accessKey}/${scope},SignedHeaders=${names.join(';')},Signature=${sig}`;
}

export interface S3Settings { endpoint: string; region: string; bucket: string; accesskey: string; secretkey: string; partsize: number }

const amzDate = (d = new Date()) => d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');

export class S3Client {
  constructor(private readonly s: S3Settings) {}

  url(key: string, query = ''): URL {
    return new URL(`${this.s.endpoint.replace(/\/$/, '')}/${this.s.bucket}/${key.split('/').map((p) => uriEncode(p, false)).join('/')}${query}`);
  }

  private async send(method: string, url: URL, body?: Uint8Array, headers: Record<string, string> = {}): Promise<Response> {
    const payloadHash = await sha256Hex(body ?? new Uint8Array(0));
    const date = amzDate();
    const authorization = await signV4({ method, url, headers, payloadHash, accessKey: this.s.accesskey, secretKey: this.s.secretkey, region: this.s.region, amzDate: date });
    const res = await fetch(url, { method, body: body as BodyInit | undefined, headers: { ...headers, 'x-amz-date': date, 'x-amz-content-sha256': payloadHash, authorization } });
    if (!res.ok && res.status !== 206) {
      const text = await res.text().catch(() => '');
      throw new Error(`S3 ${method} ${url.pathname}${url.search}: ${res.status} ${text.slice(0, 200)}`);
    }
    return res;
  }

  /** Upload `data` as `key`: one PutObject, or a multipart upload above `partsize`. */
  async put(key: string, data: Uint8Array, contentType = 'application/octet-stream'): Promise<{ parts: number }> {
    if (data.length <= this.s.partsize) {
      await (await this.send('PUT', this.url(key), data, { 'content-type': contentType })).arrayBuffer();
      return { parts: 1 };
    }
    const init = await (await this.send('POST', this.url(key, '?uploads='), undefined, { 'content-type': contentType })).text();
    const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(init)?.[1];
    if (!uploadId) throw new Error(`S3 multipart: no UploadId in ${init.slice(0, 200)}`);
    const etags: string[] = [];
    try {
      for (let off = 0, n = 1; off < data.length; off += this.s.partsize, n++) {
        const res = await this.send('PUT', this.url(key, `?partNumber=${n}&uploadId=${encodeURIComponent(uploadId)}`), data.subarray(off, off + this.s.partsize));
        await res.arrayBuffer();
        etags.push(res.headers.get('etag') ?? '');
      }
      const xml = `<CompleteMultipartUpload>${etags.map((e, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${e}</ETag></Part>`).join('')}</CompleteMultipartUpload>`;
      await (await this.send('POST', this.url(key, `?uploadId=${encodeURIComponent(uploadId)}`), enc.encode(xml), { 'content-type': 'application/xml' })).text();
    } catch (err) {
      await this.send('DELETE', this.url(key, `?uploadId=${encodeURIComponent(uploadId)}`)).then((r) => r.arrayBuffer(), () => {});
      throw err;
    }
    return { parts: etags.length };
  }

  /** The object's bytes. */
  async get(key: string): Promise<Uint8Array> {
    return new Uint8Array(await (await this.send('GET', this.url(key))).arrayBuffer());
  }
}
