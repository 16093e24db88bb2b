// S3 upload of finished segments and playback when the local copy is gone, against s3rver (npm), an
// S3-compatible server started here on 127.0.0.1 with a temp directory: real PutObject, multipart upload
// (CreateMultipartUpload / UploadPart / CompleteMultipartUpload, assembled by s3rver) and GetObject.
// s3rver refuses unknown access keys and malformed SigV4 headers, but it does NOT verify SigV4
// signatures (3.7.1, lib/middleware/authentication.js: "Signature version 4 calculation is
// unimplemeneted"), so a wrong secret would pass it: the signer is proven by the unit tests against
// AWS's published examples (GET Object, PUT Object, GET Bucket Lifecycle, GET Bucket) instead.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// @ts-ignore: s3rver ships no types; used only here, through its documented constructor/run/close.
import S3rver from 's3rver';
import rtmp from '../plugins/rtmp/index.ts';
import record from '../plugins/record/index.ts';
import { signV4 } from '../plugins/record/s3.ts';
import { start, startServer, until, type TestServer } from './helpers/media.ts';
import { FFMPEG51, filesUnder, probe, sourceArgs } from './helpers/record.ts';

// s3rver's built-in account (it refuses any other access key id with InvalidAccessKeyId).
const AK = 'S3RVER', SK = 'S3RVER';

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

  // The other published examples of the same page (sig-v4-header-based-auth): a PUT with a payload hash
  // and an encoded key, a valueless subresource (like ?uploads) and sorted query parameters (like
  // ?partNumber=&uploadId=): the parts of the signer the multipart calls use and s3rver does not check.
  it('signV4 matches AWS\'s published PUT Object, GET Bucket Lifecycle and GET Bucket examples', async () => {
    const base = { accessKey: 'AKIAIOSFODNN7EXAMPLE', secretKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', region: 'us-east-1', amzDate: '20130524T000000Z' };
    const empty = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
    const sig = (a: string) => /Signature=(\w+)$/.exec(a)?.[1];
    const put = await signV4({ ...base, method: 'PUT', url: new URL('https://examplebucket.s3.amazonaws.com/test%24file.text'),
      headers: { date: 'Fri, 24 May 2013 00:00:00 GMT', 'x-amz-storage-class': 'REDUCED_REDUNDANCY' },
      payloadHash: '44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072' });
    assert.match(put, /SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,/);
    assert.equal(sig(put), '98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd');
    assert.equal(sig(await signV4({ ...base, method: 'GET', url: new URL('https://examplebucket.s3.amazonaws.com/?lifecycle'), headers: {}, payloadHash: empty })),
      'fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543');
    assert.equal(sig(await signV4({ ...base, method: 'GET', url: new URL('https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J'), headers: {}, payloadHash: empty })),
      '34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7');
  });

  describe('upload and playback from the store', () => {
    let S: TestServer;
    let dir: string;
    let s3: any;
    let endpoint = '';
    const log: string[] = [];
    const object = async (key: string) => {
      const r = await fetch(`${endpoint}/rec/${key}`);
      assert.equal(r.status, 200, `GET ${key} from s3rver`);
      return new Uint8Array(await r.arrayBuffer());
    };

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'm7s-recs3-'));
      s3 = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: join(dir, 's3rver'), configureBuckets: [{ name: 'rec', configs: [] }] });
      const addr = await s3.run() as { port: number };
      endpoint = `http://127.0.0.1:${addr.port}`;
      // Every request s3rver answers, with its status (the plugin's requests and the test's own reads).
      (s3.httpServer as Server).on('request', (req, res) => res.on('finish', () => log.push(`${req.method} ${req.url} ${res.statusCode}`)));
      S = await startServer([rtmp, record], `rtmp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\nrecord:\n  fragment: 5s\n  filepath: "${dir}/rec/{streamPath}/{unix}"\n` +
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
      await s3?.close().catch(() => {});
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('uploads each closed segment (multipart above partsize); the local copies are removed', async () => {
      const stats = ((await (await fetch(`${S.http}/record/api/stats`)).json()) as any).data;
      assert.equal(stats.uploadFailures, 0, 'no upload failed');
      const segs = ((await (await fetch(`${S.http}/record/api/list?streamPath=live/s3`)).json()) as any).data;
      assert.equal(segs.length, 2);
      let multipart = 0;
      for (const e of segs) {
        assert.match(e.s3object, /^m7s\/live\/s3\/\d+\.mp4$/);
        assert.equal((await object(e.s3object)).length, e.size, `${e.s3object} stored whole`);
        const path = `/rec/${e.s3object}`;
        const parts = log.filter((l) => l.startsWith(`PUT ${path}?partNumber=`));
        if (e.size > 200000) {
          multipart++;
          assert.ok(log.includes(`POST ${path}?uploads= 200`), `${path}: CreateMultipartUpload`);
          assert.equal(parts.length, Math.ceil(e.size / 200000), `${path}: one UploadPart per 200000 bytes`);
          assert.ok(log.some((l) => l.startsWith(`POST ${path}?uploadId=`)), `${path}: CompleteMultipartUpload`);
        } else {
          assert.ok(log.includes(`PUT ${path} 200`) && parts.length === 0, `${path}: one PutObject`);
        }
      }
      assert.ok(multipart >= 1, `at least one segment above partsize went up as a multipart upload: ${log.join(', ')}`);
      assert.ok(log.every((l) => / 200$/.test(l)), `every request accepted: ${log.join(', ')}`);
      await until(() => filesUnder(join(dir, 'rec'), '.mp4').length === 0, 5000, 'local copies removed');
    });

    it('plays a segment whose local copy is gone from the store: /record/file and the stitched download', async () => {
      const segs = ((await (await fetch(`${S.http}/record/api/list?streamPath=live/s3`)).json()) as any).data;
      const stored = await object(segs[0].s3object);
      const n = log.length;
      const r = await fetch(`${S.http}/record/file/live/s3/fmp4/${segs[0].start}.mp4`);
      assert.equal(r.status, 200);
      assert.deepEqual(new Uint8Array(await r.arrayBuffer()), stored);
      assert.ok(log.slice(n).some((l) => l.startsWith(`GET /rec/${segs[0].s3object} 200`)), 'read from the store');
      const part = await fetch(`${S.http}/record/file/live/s3/fmp4/${segs[0].start}.mp4`, { headers: { range: 'bytes=100-199' } });
      assert.equal(part.status, 206);
      assert.deepEqual(new Uint8Array(await part.arrayBuffer()), stored.subarray(100, 200));
      const p = await probe(`${S.http}/record/download/live/s3.mp4`);
      assert.equal(p.errors, '');
      assert.equal(p.packets.filter((x) => x.codec_type === 'video').length, 250, 'both segments, 10 s');
    });
  });
});
