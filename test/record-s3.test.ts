// S3 upload of finished segments and playback when the local copy is gone. The SigV4 signer is checked
// against AWS's published example (GET Object, examplebucket/test.txt, Range bytes=0-9). The store is a
// small S3-compatible server started by the test (PutObject, multipart upload, GetObject) that checks
// every request's signature and payload hash with that signer and refuses (403) what does not match.
// (s3rver from npm was not added: a new dependency for one test; this server speaks the same calls.)
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import rtmp from '../plugins/rtmp/index.ts';
import record from '../plugins/record/index.ts';
import { sha256Hex, signV4 } from '../plugins/record/s3.ts';
import { start, startServer, until, type TestServer } from './helpers/media.ts';
import { FFMPEG51, filesUnder, probe, sourceArgs } from './helpers/record.ts';

const AK = 'AKIDTEST', SK = 'test/secret+key';

describe('record: S3', () => {
  it('signV4 matches AWS\'s published GET Object example', async () => {
    const auth = await signV4({
      method: 'GET', url: new URL('https://examplebucket.s3.amazonaws.com/test.txt'), headers: { range: 'bytes=0-9' },
      payloadHash: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', accessKey: 'AKIAIOSFODNN7EXAMPLE',
      secretKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', region: 'us-east-1', amzDate: '20130524T000000Z',
    });
    assert.equal(auth, 'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,' +
      'SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41');
  });

  describe('upload and playback from the store', () => {
    let S: TestServer;
    let dir: string;
    const objects = new Map<string, Uint8Array>();
    const uploads = new Map<string, Map<number, Uint8Array>>();
    const log: string[] = [];
    let refused = 0;
    const store = createServer(async (req, res) => {
      const body = await readBody(req);
      const url = new URL(req.url!, `http://${req.headers.host}`);
      // Check the signature and the payload hash as S3 would.
      const signed = /SignedHeaders=([^,]+)/.exec(String(req.headers.authorization))?.[1]?.split(';') ?? [];
      const headers: Record<string, string> = {};
      for (const h of signed) if (h !== 'host' && h !== 'x-amz-date' && h !== 'x-amz-content-sha256') headers[h] = String(req.headers[h]);
      const want = await signV4({ method: req.method!, url, headers, payloadHash: String(req.headers['x-amz-content-sha256']), accessKey: AK,
        secretKey: SK, region: 'us-east-1', amzDate: String(req.headers['x-amz-date']) });
      if (want !== req.headers.authorization || (await sha256Hex(body)) !== req.headers['x-amz-content-sha256']) {
        refused++;
        res.writeHead(403).end('<Error><Code>SignatureDoesNotMatch</Code></Error>');
        return;
      }
      const key = decodeURIComponent(url.pathname);
      const q = url.searchParams;
      log.push(`${req.method} ${key}${url.search}`);
      if (req.method === 'POST' && q.has('uploads')) {
        const id = `u${uploads.size + 1}`;
        uploads.set(id, new Map());
        res.end(`<InitiateMultipartUploadResult><UploadId>${id}</UploadId></InitiateMultipartUploadResult>`);
      } else if (req.method === 'PUT' && q.has('partNumber')) {
        uploads.get(q.get('uploadId')!)!.set(Number(q.get('partNumber')), body);
        res.writeHead(200, { etag: `"p${q.get('partNumber')}"` }).end();
      } else if (req.method === 'POST' && q.has('uploadId')) {
        const parts = [...uploads.get(q.get('uploadId')!)!.entries()].sort((a, b) => a[0] - b[0]).map((x) => x[1]);
        const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        let o = 0;
        for (const p of parts) { all.set(p, o); o += p.length; }
        objects.set(key, all);
        res.end('<CompleteMultipartUploadResult/>');
      } else if (req.method === 'PUT') {
        objects.set(key, body);
        res.writeHead(200, { etag: '"x"' }).end();
      } else if (req.method === 'GET') {
        const o = objects.get(key);
        if (!o) res.writeHead(404).end('<Error><Code>NoSuchKey</Code></Error>');
        else res.writeHead(200, { 'content-length': String(o.length) }).end(o);
      } else res.writeHead(405).end();
    });

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'm7s-recs3-'));
      await new Promise<void>((r) => store.listen(0, '127.0.0.1', () => r()));
      const endpoint = `http://127.0.0.1:${(store.address() as { port: number }).port}`;
      S = await startServer([rtmp, record], `rtmp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\nrecord:\n  fragment: 5s\n  filepath: "${dir}/{streamPath}/{unix}"\n` +
        `  subscribe:\n    waittimeout: 1s\n  indexfile: "${dir}/index.jsonl"\n  s3:\n    endpoint: "${endpoint}"\n    bucket: rec\n    accesskey: ${AK}\n` +
        `    secretkey: "${SK}"\n    prefix: "m7s/"\n    partsize: 200000\n    removelocal: true\n`);
      const started = fetch(`${S.http}/record/api/start/live/s3`, { method: 'POST' });
      const pub = start(FFMPEG51, [...sourceArgs(10, 4), '-f', 'flv', `rtmp://127.0.0.1:${S.port('rtmp')}/live/s3`]);
      assert.equal(((await (await started).json()) as any).code, 0);
      await new Promise<void>((r) => pub.proc.once('close', () => r()));
      await until(async () => ((await (await fetch(`${S.http}/record/api/stats`)).json()) as any).data.uploaded >= 2, 20_000, 'two uploads');
    });

    after(async () => {
      await S?.stop();
      store.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('uploads each closed segment (multipart above partsize), signed; the local copies are removed', async () => {
      assert.equal(refused, 0, 'every request carried a valid signature');
      const segs = ((await (await fetch(`${S.http}/record/api/list?streamPath=live/s3`)).json()) as any).data;
      assert.equal(segs.length, 2);
      for (const e of segs) {
        assert.match(e.s3object, /^m7s\/live\/s3\/\d+\.mp4$/);
        assert.equal(objects.get(`/rec/${e.s3object}`)?.length, e.size, `${e.s3object} stored whole`);
      }
      assert.ok(log.some((l) => l.includes('?uploads')) && log.some((l) => l.includes('partNumber=2')), `multipart used: ${log.join(', ')}`);
      await until(() => filesUnder(dir, '.mp4').length === 0, 5000, 'local copies removed');
    });

    it('plays a segment whose local copy is gone from the store: /record/file and the stitched download', async () => {
      const segs = ((await (await fetch(`${S.http}/record/api/list?streamPath=live/s3`)).json()) as any).data;
      const r = await fetch(`${S.http}/record/file/live/s3/fmp4/${segs[0].start}.mp4`);
      assert.equal(r.status, 200);
      assert.deepEqual(new Uint8Array(await r.arrayBuffer()), objects.get(`/rec/${segs[0].s3object}`));
      const part = await fetch(`${S.http}/record/file/live/s3/fmp4/${segs[0].start}.mp4`, { headers: { range: 'bytes=100-199' } });
      assert.equal(part.status, 206);
      assert.deepEqual(new Uint8Array(await part.arrayBuffer()), objects.get(`/rec/${segs[0].s3object}`)!.subarray(100, 200));
      const p = await probe(`${S.http}/record/download/live/s3.mp4`);
      assert.equal(p.errors, '');
      assert.equal(p.packets.filter((x) => x.codec_type === 'video').length, 250, 'both segments, 10 s');
    });
  });
});

function readBody(req: IncomingMessage): Promise<Uint8Array> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(new Uint8Array(Buffer.concat(chunks))));
  });
}
