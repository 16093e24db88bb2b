// The light Request of m7s's HTTP server on Node (adapters/light-request.ts) against the runtime's own
// Request built from the same parts: every member a handler or hono reads answers the same, the body
// is read once through either path, and what the Request constructor refuses is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Hono } from 'hono';
import { lightRequest } from '../adapters/light-request.ts';

const URL_ = 'http://127.0.0.1:8080/live/cam1.flv?token=a%20b';
const HEADERS: [string, string][] = [['host', '127.0.0.1:8080'], ['user-agent', 'test/1'], ['x-twice', 'a'], ['x-twice', 'b'], ['content-type', 'application/json']];

function bodyOf(text: string): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  return new ReadableStream({ start(c) { c.enqueue(bytes.subarray(0, 3)); c.enqueue(bytes.subarray(3)); c.close(); } });
}

test('light request: the fields a GET reads, as the real Request gives them', () => {
  const ac = new AbortController();
  const light = lightRequest(URL_, 'GET', HEADERS, null, ac.signal);
  const real = new Request(URL_, { method: 'GET', headers: HEADERS, signal: ac.signal });
  assert.ok(light instanceof Request);
  assert.equal(light.url, real.url);
  assert.equal(light.method, real.method);
  assert.deepEqual([...light.headers], [...real.headers]);
  assert.equal(light.headers.get('x-twice'), 'a, b');
  assert.equal(light.headers, light.headers, 'one Headers object per request');
  assert.equal(light.body, null);
  assert.equal(light.bodyUsed, false);
  assert.equal(light.signal.aborted, false);
  ac.abort(new Error('client disconnected'));
  assert.equal(light.signal.aborted, true, 'the signal is the server\'s own');
  assert.equal(light.cache, real.cache);
  assert.equal(light.redirect, real.redirect);
});

test('light request: the body read through the real Request\'s methods, once', async () => {
  const light = lightRequest(URL_, 'POST', HEADERS, bodyOf('{"a":[1,2]}'), new AbortController().signal);
  assert.deepEqual(await light.json(), { a: [1, 2] });
  assert.equal(light.bodyUsed, true);
  await assert.rejects(() => light.text(), TypeError, 'a used body cannot be read again');

  const l2 = lightRequest(URL_, 'PUT', HEADERS, bodyOf('hello'), new AbortController().signal);
  const copy = l2.clone();
  assert.ok(copy instanceof Request);
  assert.equal(await copy.text(), 'hello');
  assert.equal(new TextDecoder().decode(await l2.arrayBuffer()), 'hello');

  const l3 = lightRequest(URL_, 'POST', HEADERS, bodyOf('stream me'), new AbortController().signal);
  const chunks: Uint8Array[] = [];
  for await (const c of l3.body! as unknown as AsyncIterable<Uint8Array>) chunks.push(c);
  assert.equal(new TextDecoder().decode(Buffer.concat(chunks)), 'stream me');
});

test('light request: as another Request\'s init (src/http/api.ts forwards one so)', async () => {
  const light = lightRequest(URL_, 'POST', HEADERS, bodyOf('fwd'), new AbortController().signal);
  const fwd = new Request('http://127.0.0.1:8080/cascade/api/cluster', light);
  assert.equal(fwd.method, 'POST');
  assert.equal(fwd.headers.get('user-agent'), 'test/1');
  assert.equal(await fwd.text(), 'fwd');
});

test('light request: through hono, as a handler sees it', async () => {
  const app = new Hono();
  app.post('/live/:name', async (c) => c.json({
    name: c.req.param('name'), token: c.req.query('token'), ua: c.req.header('user-agent'), body: await c.req.json(),
    aborted: c.req.raw.signal.aborted,
  }));
  const res = await app.fetch(lightRequest(URL_.replace('cam1.flv', 'cam1'), 'POST', HEADERS, bodyOf('{"x":1}'), new AbortController().signal));
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { name: 'cam1', token: 'a b', ua: 'test/1', body: { x: 1 }, aborted: false });
});

test('light request: methods the Fetch standard forbids are refused, as Node\'s Request refuses them', () => {
  for (const m of ['CONNECT', 'trace', 'TRACK']) {
    // Node's (undici) refuses them; Bun's takes them. The light request is Node's.
    if (!('Bun' in globalThis)) assert.throws(() => new Request(URL_, { method: m }), TypeError);
    assert.throws(() => lightRequest(URL_, m, HEADERS, null, new AbortController().signal), TypeError);
  }
  assert.equal(lightRequest(URL_, 'OPTIONS', HEADERS, null, new AbortController().signal).method, 'OPTIONS');
});
