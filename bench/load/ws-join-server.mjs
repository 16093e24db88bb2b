// The server of bench/ws-join-cost.mjs: node|bun ws-join-server.mjs native|nodehttp N BURST
// Prints {"port"} once listening, then {"user","sys"} (µs of CPU per join, from the first connection's
// open to the N-th) once N clients have opened and each was sent one BURST-byte message.
// `ws` is the npm package on Node and Bun's own shim on Bun (as in m7s's Node adapter).
const [mode, n, size] = [process.argv[2], +process.argv[3], +process.argv[4]];
const burst = new Uint8Array(size);
let opened = 0, c0;
const onOpen = (ws) => {
  if (opened++ === 0) c0 = process.cpuUsage();
  ws.send(burst);
  if (opened === n) {
    const c = process.cpuUsage(c0);
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
