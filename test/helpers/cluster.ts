// Cluster tests' helpers: servers on chosen loopback addresses, cheap HTTP-FLV viewers on raw sockets.
import { connect, createServer, type Socket } from 'node:net';
import rtmp from '../../plugins/rtmp/index.ts';
import flv from '../../plugins/flv/index.ts';
import cascade from '../../plugins/cascade/index.ts';
import { Server } from '../../src/server.ts';
import { Logger } from '../../src/log.ts';
import { currentRuntime } from '../../adapters/current.ts';
import { FlvDemuxer } from '../../src/format/flv.ts';
import type { PluginDef } from '../../src/plugin.ts';

/** A free TCP port on `ip` (closed again; a race is possible but unlikely on loopback). */
export function freePort(ip = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, ip, () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
  });
}

export interface Node { server: Server; ip: string; http: string; rtmp: string; stop(): Promise<void> }

/** A server with every listener on `ip`, port 0. */
export async function startNode(ip: string, yaml = '', httpPort = 0, extra: PluginDef<any>[] = []): Promise<Node> {
  const configText = `global:\n  loglevel: ${process.env.M7S_TEST_LOGLEVEL ?? 'error'}\n  http:\n    listenaddr: "${ip}:${httpPort}"\n` +
    `rtmp:\n  tcp:\n    listenaddr: "${ip}:0"\n${yaml}`;
  const logger = process.env.M7S_TEST_LOGLEVEL ? undefined : Logger.silent();
  const server = await Server.start({ runtime: await currentRuntime(), plugins: [rtmp, flv, ...extra, cascade], configText, logger, watch: false });
  const rtmpPort = server.listening.find((l) => l.plugin === 'rtmp')!.port;
  return { server, ip, http: `http://${ip}:${server.http!.port}`, rtmp: `rtmp://${ip}:${rtmpPort}`, stop: () => server.stop() };
}

/** An HTTP-FLV viewer on a raw socket: video tag timestamps as they arrive. */
export class Viewer {
  readonly ts: number[] = [];
  readonly at: number[] = [];
  /** A fingerprint of each video tag's bytes (its length and last 32 bytes): the same frame on two paths. */
  readonly keys: string[] = [];
  status = '';
  closed = false;
  private sock: Socket;
  constructor(url: string) {
    const u = new URL(url);
    const demux = new FlvDemuxer((t) => { if (t.type === 9) { this.ts.push(t.timestamp); this.at.push(performance.now()); this.keys.push(`${t.data.length}:${Array.from(t.data.subarray(Math.max(0, t.data.length - 32))).join(',')}`); } });
    let head = true, buf = '';
    this.sock = connect(Number(u.port), u.hostname, () => this.sock.write(`GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\n\r\n`));
    // Chunked transfer: strip the chunk framing before the demuxer.
    let pending: Uint8Array = new Uint8Array(0);
    let left = 0;
    this.sock.on('data', (d: Uint8Array) => {
      if (head) {
        buf += Buffer.from(d).toString('latin1');
        const i = buf.indexOf('\r\n\r\n');
        if (i < 0) return;
        this.status = buf.slice(0, buf.indexOf('\r\n'));
        head = false;
        d = Buffer.from(buf.slice(i + 4), 'latin1');
      }
      let b: Uint8Array = pending.length ? Buffer.concat([pending, d]) : d;
      pending = new Uint8Array(0);
      while (b.length) {
        if (left === 0) {
          const s = Buffer.from(b).indexOf('\r\n');
          if (s < 0) { pending = b; return; }
          const line = Buffer.from(b.subarray(0, s)).toString();
          if (line === '') { b = b.subarray(2); continue; }
          left = parseInt(line, 16);
          b = b.subarray(s + 2);
          if (left === 0) { this.sock.end(); return; }
          continue;
        }
        const n = Math.min(left, b.length);
        demux.push(b.subarray(0, n));
        left -= n;
        b = b.subarray(n);
      }
    });
    this.sock.on('close', () => { this.closed = true; });
    this.sock.on('error', () => {});
  }
  last(): number { return this.ts.length ? this.ts[this.ts.length - 1] : -1; }
  stop(): void { this.sock.destroy(); }
  /** Timestamps never go back; the largest forward step. */
  check(): { monotonic: boolean; maxStep: number } {
    let monotonic = true, maxStep = 0;
    for (let i = 1; i < this.ts.length; i++) {
      const d = this.ts[i] - this.ts[i - 1];
      if (d < 0) monotonic = false;
      maxStep = Math.max(maxStep, d);
    }
    return { monotonic, maxStep };
  }
}

