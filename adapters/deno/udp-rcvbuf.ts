// The UDP receive buffer on Deno. Deno 2.9's node:dgram setRecvBufferSize() does nothing and
// getRecvBufferSize() echoes the last value set (ss shows rb212992, the system default, whatever was
// asked), and Deno drains a socket slowly, so a burst larger than the default buffer (~110 datagrams of
// 1.2 KB) is dropped by the kernel without an error (measured: 116 of 3000 datagrams sent in bursts of
// 300 per 5 ms arrived; 3000 of 3000 with the buffer really at 4 MiB). Neither
// node:dgram nor Deno.listenDatagram exposes the descriptor or setsockopt, so on Linux this finds the
// socket's descriptor by its bound port (/proc/net/udp{,6} inode → /proc/self/fd) and calls libc's
// setsockopt/getsockopt through FFI (the server runs with -A; without --allow-ffi or off Linux, set
// throws UdpUnsupportedError and get answers 0 = unknown, which is the truth).

import type { RecvBufferOps } from '../node/net.ts';

interface DenoFfi {
  build: { os: string };
  readTextFileSync(p: string): string;
  readDirSync(p: string): Iterable<{ name: string }>;
  readLinkSync(p: string): string;
  dlopen(lib: string, symbols: Record<string, { parameters: string[]; result: string }>): {
    symbols: {
      setsockopt(fd: number, level: number, name: number, val: Uint8Array, len: number): number;
      getsockopt(fd: number, level: number, name: number, val: Uint8Array, len: Uint8Array): number;
    };
  };
}
const Deno = (globalThis as unknown as { Deno: DenoFfi }).Deno;

const SOL_SOCKET = 1, SO_RCVBUF = 8;

let libc: ReturnType<DenoFfi['dlopen']> | null | undefined;
let libcError = '';
function lib(): ReturnType<DenoFfi['dlopen']> | null {
  if (libc !== undefined) return libc;
  try {
    if (Deno.build.os !== 'linux') throw new Error(`not on Linux (${Deno.build.os})`);
    libc = Deno.dlopen('libc.so.6', {
      setsockopt: { parameters: ['i32', 'i32', 'i32', 'buffer', 'u32'], result: 'i32' },
      getsockopt: { parameters: ['i32', 'i32', 'i32', 'buffer', 'buffer'], result: 'i32' },
    });
  } catch (err) {
    libc = null;
    libcError = (err as Error).message.split('\n')[0]!.slice(0, 200);
  }
  return libc;
}

/** Our own descriptors of UDP sockets bound to `port` (both families). */
function fdsOf(port: number): number[] {
  const hex = ':' + port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set<string>();
  for (const f of ['/proc/net/udp', '/proc/net/udp6']) {
    let text = '';
    try { text = Deno.readTextFileSync(f); } catch { continue; }
    for (const line of text.split('\n').slice(1)) {
      const c = line.trim().split(/\s+/);
      if (c[1]?.endsWith(hex) && c[9]) inodes.add(c[9]);
    }
  }
  if (!inodes.size) return [];
  const fds: number[] = [];
  for (const e of Deno.readDirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(Deno.readLinkSync('/proc/self/fd/' + e.name));
      if (m && inodes.has(m[1]!)) fds.push(Number(e.name));
    } catch {
      // closed meanwhile
    }
  }
  return fds;
}

export const denoRecvBuffer: RecvBufferOps = {
  set(port, bytes) {
    const l = lib();
    if (!l) throw new Error(`not implemented: UDP receive buffer on Deno needs FFI (${libcError})`);
    const fds = fdsOf(port);
    if (!fds.length) throw new Error(`not implemented: no descriptor found for UDP port ${port}`);
    const v = new Uint8Array(new Int32Array([bytes]).buffer);
    for (const fd of fds) {
      if (l.symbols.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, v, 4) !== 0) throw new Error(`setsockopt(SO_RCVBUF, ${bytes}) failed`);
    }
  },
  get(port) {
    const l = lib();
    if (!l) return 0;
    const fd = fdsOf(port)[0];
    if (fd === undefined) return 0;
    const v = new Int32Array(1), len = new Uint32Array([4]);
    if (l.symbols.getsockopt(fd, SOL_SOCKET, SO_RCVBUF, new Uint8Array(v.buffer), new Uint8Array(len.buffer)) !== 0) return 0;
    return v[0]!;
  },
};
