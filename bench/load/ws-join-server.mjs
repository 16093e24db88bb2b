// The server of bench/ws-join-cost.mjs: node|bun ws-join-server.mjs MODE N BURST
// Prints {"port"} once listening, then {"user","sys"} (µs of CPU per join, from the first connection's
// open to the N-th) once N clients have opened and each was sent one BURST-byte message.
// `ws` is the npm package on Node and Bun's own shim on Bun (as in m7s's Node adapter).
// MODE: native (Bun.serve), nodehttp (node:http + ws), nodehttp-raw (node:http, handshake and frame
// written by hand), bunlisten-raw (Bun.listen, the same by hand: the floor of a server of our own),
// net-raw (node:net, the same by hand: that floor on Node),
// sockets (m7s's adapters/bun/socket-server.ts with a bare handler), m7s-sockets / m7s-nodehttp (m7s's
// HTTP servers on Node: see below).
// SKIP=K: K joins first that are not measured (the JIT warmed up; the client must open N + K).
// THREADS=1: also print each thread's CPU ms over the window on stderr (Bun's JIT workers, GC).
const [mode, n, size] = [process.argv[2], +process.argv[3], +process.argv[4]];
const burst = new Uint8Array(size);
import { readdirSync, readFileSync } from 'node:fs';
let opened = 0, c0, t0, skipDone = false;
const threads = () => { const r = {}; for (const t of readdirSync('/proc/self/task')) { try { const st = readFileSync(`/proc/self/task/${t}/stat`, 'utf8'); const comm = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')')); const f = st.slice(st.lastIndexOf(')') + 2).split(' '); r[comm + ':' + t] = (+f[11] + +f[12]) * 10; } catch {} } return r; };
const skip = +(process.env.SKIP ?? 0);
const onOpen = (ws) => {
  if (skip && !skipDone) { opened++; ws.send(burst); if (opened === skip) { opened = 0; skipDone = true; } return; }
  if (opened++ === 0) { c0 = process.cpuUsage(); t0 = threads(); }
  ws.send(burst);
  if (opened === n) {
    const c = process.cpuUsage(c0);
    if (process.env.THREADS) { const t1 = threads(); const out = {}; for (const [k, v] of Object.entries(t1)) { const d = v - (t0[k] ?? 0); if (d) out[k] = d; } console.error(JSON.stringify(out)); }
    console.log(JSON.stringify({ user: c.user / n, sys: c.system / n }));
    setTimeout(() => process.exit(0), 200);
  }
};
let port;
if (mode === 'native') {
  port = Bun.serve({
    port: 0, hostname: '127.0.0.1',
    fetch(req, s) { return s.upgrade(req) ? undefined : new Response('no', { status: 400 }); },
    websocket: { open: onOpen, message() {} },
  }).port;
} else if (mode === 'sockets') {
  // m7s's own server on Bun's sockets (adapters/bun/socket-server.ts) with a bare fetch handler.
  const { serveSockets, socketUpgradeWebSocket } = await import('../../adapters/bun/socket-server.ts');
  const srv = await serveSockets({ port: 0, host: '127.0.0.1' }, (req, env) =>
    socketUpgradeWebSocket({ env, req: { raw: req } }, { onOpen: (ws) => onOpen({ send: (b) => ws.send(b) }) }) ?? new Response('no', { status: 400 }));
  port = srv.port;
} else if (mode === 'm7s-sockets' || mode === 'm7s-nodehttp') {
  // m7s's HTTP servers with a bare handler, through the Runtime calls m7s's plugins make: on Node, its
  // own server on node:net (the default) or node:http (global.http.nativeserver: true). M7S_RUNTIME:
  // the bundle of adapters/node/runtime.ts (bench/ws-join-cost.mjs builds it). KIND=flv: the join is an
  // HTTP GET answered through streamResponse with one BURST-byte chunk (an HTTP-FLV player's catch-up).
  const { nodeRuntime: rt } = await import(process.env.M7S_RUNTIME);
  const flv = process.env.KIND === 'flv';
  const srv = await rt.serveHttp({ port: 0, host: '127.0.0.1', native: mode === 'm7s-nodehttp' }, (req, env) => {
    const c = { env, req: { raw: req } };
    if (flv) {
      const s = rt.streamResponse(c, 200, { 'content-type': 'video/x-flv' }, 1 << 20);
      if (!s) return new Response('no', { status: 500 });
      onOpen({ send: (b) => s.sink.write(b) });
      return s.response;
    }
    return rt.upgradeWebSocket(c, { onOpen: (ws) => onOpen({ send: (b) => ws.send(b) }) }) ?? new Response('no', { status: 400 });
  });
  port = srv.port;
} else if (mode === 'nodehttp-raw' || mode === 'bunlisten-raw' || mode === 'net-raw') {
  const { createHash } = await import('node:crypto');
  const accept = (key) => createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  const frame = (n) => { const h = new Uint8Array(10); h[0] = 0x82; h[1] = 127; new DataView(h.buffer).setUint32(6, n); return h; };
  const hdr = frame(size);
  if (mode === 'net-raw') {
    const net = await import('node:net');
    const srv = net.createServer({ noDelay: true }, (sock) => {
      let head = '';
      sock.on('error', () => {});
      const onData = (d) => {
        head += d.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        sock.off('data', onData); sock.on('data', () => {});
        const key = /sec-websocket-key:\s*(\S+)/i.exec(head)[1];
        sock.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ' + accept(key) + '\r\n\r\n');
        onOpen({ send: (b) => { sock.write(hdr); sock.write(b); } });
      };
      sock.on('data', onData);
    });
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    port = srv.address().port;
  } else if (mode === 'nodehttp-raw') {
    const http = await import('node:http');
    const srv = http.createServer((q, r) => { r.statusCode = 400; r.end(); });
    srv.on('upgrade', (req, sock) => {
      sock.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ' + accept(req.headers['sec-websocket-key']) + '\r\n\r\n');
      sock.on('data', () => {}); sock.on('error', () => {});
      onOpen({ send: (b) => { sock.write(hdr); sock.write(b); } });
    });
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    port = srv.address().port;
  } else {
    const dec = new TextDecoder(); const enc = new TextEncoder(); let partial = 0; process.on('exit', () => console.error('partial writes', partial));
    port = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: {
      data(s, d) {
        if (s.data) return;
        const t = dec.decode(d); const m = /sec-websocket-key:\s*(\S+)/i.exec(t);
        s.data = 1;
        const resp = enc.encode('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ' + accept(m[1]) + '\r\n\r\n');
        onOpen({ send: (b) => { const h = new Uint8Array(resp.length + 10); h.set(resp); h.set(hdr, resp.length); s.write(h); const w = s.write(b); if (w !== b.length) partial++; } });
      }, error() {}, close() {},
    } }).port;
  }
} else {
  const http = await import('node:http');
  const { WebSocketServer } = await import('ws');
  const wss = new WebSocketServer({ noServer: true });
  const srv = http.createServer((q, r) => { r.statusCode = 400; r.end(); });
  srv.on('upgrade', (req, sock, head) => wss.handleUpgrade(req, sock, head, onOpen));
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  port = srv.address().port;
}
console.log(JSON.stringify({ port }));
