// TCP connections for the load generator that read into one shared buffer (net.connect's `onread`).
//
// A thousand players in one process spend most of their CPU on reading, not parsing: each read through
// the socket's Readable allocates a Buffer, pushes it through the stream machinery and emits 'data'
// (against nginx-rtmp at N = 1000, 14 % of the players' profile samples were GC and ~18 % that stream
// code; their user CPU fell from 60 % to 35 % of a core with this). With
// `onread`, libuv reads into the buffer given here and calls back with the byte count: no allocation,
// no stream code. Every reader of these bytes (bench/load/rtmp.mjs, flv.mjs) copies what it keeps, so
// one buffer serves all connections (callbacks run one at a time).

import net from 'node:net';

const SHARED = Buffer.allocUnsafe(256 * 1024);

/**
 * net.connect(opts) whose incoming bytes go to `socket.ondata(chunk)` (a view of the shared buffer,
 * valid only during the call) instead of 'data' events; `socket.bytesIn` counts them.
 */
export function connect(opts) {
  const socket = net.connect({
    ...opts,
    onread: {
      buffer: SHARED,
      callback(n, buf) {
        socket.bytesIn += n;
        socket.ondata?.(buf.subarray(0, n));
      },
    },
  });
  socket.ondata = null;
  socket.bytesIn = 0;
  return socket;
}
