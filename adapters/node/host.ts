// The host side of a Runtime (files, file watching, environment, process, signals, sysinfo) built on
// node:fs, node:os, node:path and `process`. These work unchanged on Bun and Deno too, so the bun and
// deno adapters spread `nodeHost` into their Runtime and only replace name/version and HTTP.

import * as fsp from 'node:fs/promises';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as dns from 'node:dns/promises';
import type { FileStat, Runtime, SysInfo } from '../../src/net/types.ts';
import { asU8 } from './net.ts';
import { spawnChild } from './proc.ts';

/** Debounce for watchFile: editors often write a file in several steps (truncate, write, rename). */
const WATCH_DEBOUNCE_MS = 200;
/** Poll interval of the fallback watcher, used when fs.watch is unavailable. */
const WATCH_POLL_MS = 1000;

/** The Runtime members that do not depend on the HTTP server or the runtime's identity. */
export type HostFunctions = Omit<Runtime, 'name' | 'listenTcp' | 'connectTcp' | 'bindUdp' | 'serveHttp' | 'upgradeWebSocket' | 'connInfo' | 'sysinfo'>;

function isNotFound(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

async function statOrNull(p: string): Promise<FileStat | null> {
  try {
    const st = await fsp.stat(p);
    return { size: st.size, mtimeMs: st.mtimeMs, isFile: st.isFile(), isDirectory: st.isDirectory() };
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

/**
 * Watch one file. We watch its directory rather than the file: editors and config tools replace a file
 * by writing a temporary one and renaming it over the original, after which a watch on the old inode
 * goes silent. Events for other names are ignored, and onChange only runs when size or mtime differ
 * from the last seen state (directory watchers also report metadata-only touches).
 */
function watchFile(file: string, onChange: () => void): () => void {
  const abs = path.resolve(file);
  const dir = path.dirname(abs);
  const base = path.basename(abs);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  let last: string;
  const signature = (st: FileStat | null) => (st ? `${st.size}:${st.mtimeMs}` : 'missing');

  // Record the starting state (synchronously, so no change can slip in before it is known).
  try {
    const st = fs.statSync(abs);
    last = `${st.size}:${st.mtimeMs}`;
  } catch {
    last = 'missing';
  }

  const check = () => {
    timer = undefined;
    statOrNull(abs).then(
      (st) => {
        const sig = signature(st);
        // A file that is gone (mid-rename) is not a change worth reloading; its reappearance is.
        if (stopped || sig === last || !st) return;
        last = sig;
        try {
          onChange();
        } catch {
          // A failing reload must not kill the watcher or the process.
        }
      },
      () => {},
    );
  };
  const schedule = () => {
    if (stopped) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(check, WATCH_DEBOUNCE_MS);
  };

  let watcher: fs.FSWatcher | undefined;
  let polling = false;
  try {
    watcher = fs.watch(dir, { persistent: false }, (_event, name) => {
      // Some platforms do not report the name; then any event in the directory is checked.
      if (!name || path.basename(String(name)) === base) schedule();
    });
    watcher.on('error', () => {});
  } catch {
    // No directory watching here (or the directory is missing): poll the file instead.
    polling = true;
    fs.watchFile(abs, { persistent: false, interval: WATCH_POLL_MS }, schedule);
  }

  return () => {
    if (stopped) return;
    stopped = true;
    if (timer) clearTimeout(timer);
    if (watcher) watcher.close();
    if (polling) fs.unwatchFile(abs, schedule);
  };
}

export const nodeHost: HostFunctions = {
  spawn: spawnChild,
  async readFile(p) {
    return asU8(await fsp.readFile(p));
  },
  readFileStream(p, opts = {}) {
    // Pull-based: one read per consumer pull, into a fresh buffer (chunks are handed out, never reused).
    const size = Math.max(4096, Math.min(opts.chunkSize ?? 64 * 1024, 4 << 20));
    let handle: fsp.FileHandle | undefined;
    const closeHandle = async () => {
      const h = handle;
      handle = undefined;
      await h?.close().catch(() => {});
    };
    return new ReadableStream<Uint8Array>({
      async pull(ctl) {
        try {
          handle ??= await fsp.open(p, 'r');
          const buf = new Uint8Array(size);
          const { bytesRead } = await handle.read(buf, 0, size, null);
          if (bytesRead === 0) {
            await closeHandle();
            ctl.close();
          } else {
            ctl.enqueue(bytesRead === size ? buf : buf.subarray(0, bytesRead));
          }
        } catch (err) {
          await closeHandle();
          ctl.error(err);
        }
      },
      cancel: closeHandle,
    }, { highWaterMark: 0 });
  },
  readTextFile(p) {
    return fsp.readFile(p, 'utf8');
  },
  async writeFile(p, data, opts) {
    await fsp.writeFile(p, data, opts?.mode !== undefined ? { mode: opts.mode } : undefined);
    if (opts?.mode !== undefined) await fsp.chmod(p, opts.mode);
  },
  realPath(p) {
    return fsp.realpath(p);
  },
  async lookup(host) {
    return (await dns.lookup(host, { all: true, verbatim: true })).map((a) => a.address);
  },
  async replaceFile(p, data) {
    // A temporary file beside the target (same file system, so rename is atomic), flushed to disk,
    // then renamed over it; the directory is synced so the rename survives a crash. Any failure
    // removes the temporary file and leaves the target as it was.
    const abs = path.resolve(p);
    const tmp = path.join(path.dirname(abs), `.${path.basename(abs)}.${process.pid}.${Date.now().toString(36)}.tmp`);
    let mode = 0o644;
    try { mode = (await fsp.stat(abs)).mode & 0o7777; } catch { /* new file */ }
    let h: fsp.FileHandle | undefined;
    try {
      h = await fsp.open(tmp, 'wx', mode);
      const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
      let off = 0;
      while (off < bytes.length) off += (await h.write(bytes, off, bytes.length - off)).bytesWritten;
      await h.sync();
      await h.close();
      h = undefined;
      await fsp.rename(tmp, abs);
    } catch (err) {
      await h?.close().catch(() => {});
      await fsp.unlink(tmp).catch(() => {});
      throw err;
    }
    try {
      const d = await fsp.open(path.dirname(abs), 'r');
      await d.sync().catch(() => {});
      await d.close();
    } catch { /* directories cannot be opened or synced everywhere */ }
  },
  async openWrite(p) {
    const handle = await fsp.open(p, 'a');
    let closed = false;
    return {
      async write(data: Uint8Array) {
        // FileHandle.write may write less than asked; loop until the chunk is on disk.
        let off = 0;
        while (off < data.byteLength) {
          const { bytesWritten } = await handle.write(data, off, data.byteLength - off);
          off += bytesWritten;
        }
      },
      async close() {
        if (closed) return;
        closed = true;
        await handle.close();
      },
    };
  },
  stat: statOrNull,
  async diskUsage(p) {
    try {
      const s = await fsp.statfs(p);
      return { total: s.blocks * s.bsize, free: s.bavail * s.bsize };
    } catch {
      return null;
    }
  },
  async mkdir(p) {
    await fsp.mkdir(p, { recursive: true });
  },
  remove(p) {
    return fsp.rm(p, { recursive: true, force: true });
  },
  readDir(p) {
    return fsp.readdir(p);
  },
  watchFile,
  env() {
    return { ...process.env };
  },
  args() {
    return process.argv.slice(2);
  },
  isTTY() {
    return process.stdout.isTTY === true;
  },
  writeLog(line, stream) {
    (stream === 'stderr' ? process.stderr : process.stdout).write(line.endsWith('\n') ? line : line + '\n');
  },
  onSignal(signal, handler) {
    try {
      process.on(signal, handler);
    } catch {
      // e.g. SIGHUP where the platform has none: there is nothing to listen for.
    }
  },
  exit(code): never {
    process.exit(code);
  },
};

/** sysinfo from node:os and `process`; the caller supplies its runtime's identity. */
export function hostSysinfo(runtime: SysInfo['runtime'], runtimeVersion: string): SysInfo {
  const safe = <T>(f: () => T, fallback: T): T => {
    try {
      return f();
    } catch {
      return fallback;
    }
  };
  const mem = safe(() => process.memoryUsage(), { rss: 0, heapUsed: 0, heapTotal: 0 } as NodeJS.MemoryUsage);
  const cpu = safe(() => process.cpuUsage(), { user: 0, system: 0 });
  return {
    runtime,
    runtimeVersion,
    os: process.platform,
    arch: process.arch,
    cpus: safe(() => os.availableParallelism?.() ?? os.cpus().length, 0),
    hostname: safe(() => os.hostname(), ''),
    pid: process.pid,
    memory: {
      rss: mem.rss,
      heapUsed: mem.heapUsed,
      heapTotal: mem.heapTotal,
      total: safe(() => os.totalmem(), 0),
      free: safe(() => os.freemem(), 0),
    },
    cpuUsage: { user: cpu.user, system: cpu.system },
    loadavg: safe(() => os.loadavg(), [0, 0, 0]),
  };
}
