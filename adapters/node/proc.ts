// The `proc` capability (Runtime.spawn) on node:child_process. Bun and Deno implement node:child_process
// too, so all three adapters share this through nodeHost.

import * as cp from 'node:child_process';
import type { ChildExit, ChildProcess, SpawnOptions } from '../../src/net/types.ts';
import { asU8 } from './net.ts';

export function spawnChild(cmd: string, args: readonly string[], opts: SpawnOptions = {}): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    let child: cp.ChildProcess;
    try {
      child = cp.spawn(cmd, [...args], {
        cwd: opts.cwd,
        env: opts.env ? { ...process.env, ...opts.env } : process.env,
        stdio: [opts.stdin ?? 'pipe', opts.stdout ?? 'pipe', opts.stderr ?? 'pipe'],
        windowsHide: true,
      });
    } catch (err) {
      reject(new Error(`cannot start ${cmd}: ${(err as Error).message}`));
      return;
    }
    let started = false;
    let ended = false;
    const exited = new Promise<ChildExit>((res) => {
      // 'close' comes after the child's stdio has ended, so every output chunk has been delivered.
      child.once('close', (code, signal) => { ended = true; res({ code, signal }); });
    });
    child.once('error', (err) => {
      if (!started) reject(new Error(`cannot start ${cmd}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : err.message}`));
    });
    // A child that exits while we write gives EPIPE on stdin: its exit status tells the story.
    child.stdin?.on('error', () => {});
    child.once('spawn', () => {
      started = true;
      // Output that arrives before the caller attached a callback (Bun can deliver the first chunk
      // between 'spawn' and the caller's onStdout) is held and handed to the first callback.
      const out: ((c: Uint8Array) => void)[] = [];
      const errOut: ((c: Uint8Array) => void)[] = [];
      const heldOut: Uint8Array[] = [];
      const heldErr: Uint8Array[] = [];
      const deliver = (cbs: ((c: Uint8Array) => void)[], held: Uint8Array[]) => (d: Buffer) => {
        const u = asU8(d);
        if (!cbs.length) { held.push(u); return; }
        for (const f of cbs) f(u);
      };
      const attach = (cbs: ((c: Uint8Array) => void)[], held: Uint8Array[], cb: (c: Uint8Array) => void) => {
        cbs.push(cb);
        if (cbs.length === 1) for (const u of held.splice(0)) cb(u);
      };
      child.stdout?.on('data', deliver(out, heldOut));
      child.stderr?.on('data', deliver(errOut, heldErr));
      const proc: ChildProcess = {
        pid: child.pid ?? 0,
        write: (chunk) => (child.stdin && !child.stdin.destroyed ? child.stdin.write(chunk) : false),
        drain: () => new Promise<void>((res) => {
          const s = child.stdin;
          if (!s || ended || s.destroyed || !s.writableNeedDrain) return res();
          const done = () => { s.off('drain', done); s.off('close', done); res(); };
          s.on('drain', done);
          s.on('close', done);
        }),
        endInput: () => { child.stdin?.end(); },
        onStdout: (cb) => attach(out, heldOut, cb),
        onStderr: (cb) => attach(errOut, heldErr, cb),
        pauseOutput: () => { child.stdout?.pause(); },
        resumeOutput: () => { child.stdout?.resume(); },
        kill: (signal = 'SIGTERM') => { if (!ended) { try { child.kill(signal); } catch { /* already gone */ } } },
        exited,
      };
      resolve(proc);
    });
  });
}
