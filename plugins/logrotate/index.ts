// The logrotate plugin: the server's log records written to files in `path`, one file per period
// (`rotate`: day, hour or minute) and a new one when a file reaches `size`; files older than `days` or
// beyond the newest `maxfiles` are deleted. SIGHUP reopens the current file (after an outside tool
// moved it away). See docs/plugins/logrotate.md.
//
//   GET /logrotate/api/list          the log files, newest first: {name, size, mtime}
//   GET /logrotate/api/get/{file}    one file's text

import { t } from '../../src/config/schema.ts';
import { formatJson, type LogLevel, type LogRecord } from '../../src/log.ts';
import { definePlugin } from '../../src/plugin.ts';
import type { Runtime } from '../../src/net/types.ts';

const RANK: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50 };
const pad = (n: number) => String(n).padStart(2, '0');

/** The file-name stem of the period holding `ms` (UTC): m7s-2026-11-30[T18[40]]. */
export function periodName(ms: number, rotate: string): string {
  const d = new Date(ms);
  let s = `m7s-${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  if (rotate === 'hour' || rotate === 'minute') s += `T${pad(d.getUTCHours())}`;
  if (rotate === 'minute') s += pad(d.getUTCMinutes());
  return s;
}

const FILE_RE = /^m7s-\d{4}-\d{2}-\d{2}(T\d{2}(\d{2})?)?(\.\d+)?\.log$/;

export default definePlugin({
  name: 'logrotate',
  description: 'log files rotated by time and size',
  listquery: true,
  needs: ['fs'],
  defaults: {
    /** Folder of the log files (relative to the config file). Empty = off (Monibuca's default is ./logs). */
    path: t.str(''),
    /** A new file when the current one reaches this many bytes; 0 = by time only. */
    size: t.num(0, { min: 0, int: true }),
    /** One file per day, hour or minute (UTC). */
    rotate: t.str('day', { enum: ['day', 'hour', 'minute'] }),
    /** Delete files older than this many days (fractions allowed); 0 = keep. */
    days: t.num(7, { min: 0 }),
    /** Keep at most this many files (oldest deleted first); 0 = no limit. */
    maxfiles: t.num(0, { min: 0, int: true }),
    /** Lowest level written to the files. */
    level: t.str('info', { enum: ['trace', 'debug', 'info', 'warn', 'error'] }),
  },
  async setup(ctx) {
    const rt = ctx.runtime;
    if (!ctx.config.path) {
      ctx.http.get('/api/list', (c) => ctx.ok(c, []));
      return; // off until a folder is set
    }
    const dir = ctx.resolvePath(ctx.config.path);
    await rt.mkdir(dir);
    const files = new LogFiles(rt, dir, ctx.config);
    let stopped = false;

    const off = ctx.logger.onRecord((r: LogRecord) => {
      if (stopped || RANK[r.level]! < RANK[ctx.config.level as LogLevel]!) return;
      files.write(formatJson(r), r.time);
    });

    // SIGHUP: reopen the file by its name (an outside logrotate moved it away), and retry after a failure.
    rt.onSignal('SIGHUP', () => {
      if (stopped) return;
      files.reopen();
      ctx.logger.info('logrotate: reopened the log file (SIGHUP)');
    });

    ctx.onStop(async () => {
      stopped = true;
      off();
      await files.close();
    });

    ctx.http.get('/api/list', async (c) => {
      await files.idle();
      const out = [];
      for (const n of (await rt.readDir(dir)).filter((x) => FILE_RE.test(x))) {
        const st = await rt.stat(`${dir}/${n}`);
        if (st) out.push({ name: n, size: st.size, mtime: new Date(st.mtimeMs).toISOString(), current: n === files.current });
      }
      out.sort((a, b) => (a.mtime < b.mtime ? 1 : a.mtime > b.mtime ? -1 : a.name < b.name ? 1 : -1));
      return ctx.ok(c, out);
    });

    ctx.http.get('/api/get/:file', async (c) => {
      const name = c.req.param('file');
      if (!FILE_RE.test(name)) return ctx.fail(c, 400, 'not a log file name (m7s-YYYY-MM-DD….log)');
      await files.idle();
      const st = await rt.stat(`${dir}/${name}`);
      if (!st) return ctx.fail(c, 404, `no log file ${name}`);
      return c.body(await rt.readTextFile(`${dir}/${name}`), 200, { 'content-type': 'text/plain; charset=utf-8' });
    });
  },
});

export interface LogFileSettings { size: number; rotate: string; days: number; maxfiles: number }

/** The files of one log folder: period files, size parts, cleanup; writes in order through one chain. */
export class LogFiles {
  current = '';
  private file: { write(d: Uint8Array): Promise<void>; close(): Promise<void> } | null = null;
  private period = '';
  private part = 0;
  private written = 0;
  private chain: Promise<void> = Promise.resolve();
  private failed = false;
  private readonly enc = new TextEncoder();

  constructor(private readonly rt: Runtime, readonly dir: string, private readonly conf: LogFileSettings) {}

  private nameOf(p: string, n: number): string { return `${p}${n ? '.' + n : ''}.log`; }

  private async open(name: string): Promise<void> {
    await this.file?.close().catch(() => {});
    this.file = await this.rt.openWrite(`${this.dir}/${name}`);
    this.current = name;
    this.written = (await this.rt.stat(`${this.dir}/${name}`))?.size ?? 0;
  }

  private async cleanup(): Promise<void> {
    const c = this.conf, rt = this.rt;
    const names = (await rt.readDir(this.dir)).filter((n) => FILE_RE.test(n) && n !== this.current);
    const files = [];
    for (const n of names) { const st = await rt.stat(`${this.dir}/${n}`); if (st) files.push({ n, mtime: st.mtimeMs }); }
    files.sort((a, b) => b.mtime - a.mtime || (b.n < a.n ? -1 : 1)); // newest first
    const keep = c.maxfiles > 0 ? c.maxfiles - 1 : Infinity; // the current file counts
    for (const [i, f] of files.entries()) {
      if (i >= keep || (c.days > 0 && Date.now() - f.mtime > c.days * 86_400_000)) await rt.remove(`${this.dir}/${f.n}`);
    }
  }

  /** Append one line written at `now` (ms): to its period's file, a new part past `size`. */
  write(line: string, now: number): void {
    const bytes = this.enc.encode(line + '\n');
    this.chain = this.chain.then(async () => {
      if (this.failed) return;
      try {
        const p = periodName(now, this.conf.rotate);
        if (p !== this.period) {
          this.period = p;
          this.part = 0;
          await this.open(this.nameOf(p, 0));
          await this.cleanup();
        } else if (this.conf.size > 0 && this.written > 0 && this.written + bytes.length > this.conf.size) {
          while (await this.rt.stat(`${this.dir}/${this.nameOf(this.period, ++this.part)}`)) { /* next free part */ }
          await this.open(this.nameOf(this.period, this.part));
          await this.cleanup();
        }
        await this.file!.write(bytes);
        this.written += bytes.length;
      } catch (err) {
        this.failed = true; // never log from here: the record would come back to this writer
        this.rt.writeLog(`logrotate: writing ${this.dir}/${this.current} failed: ${(err as Error)?.message ?? err}; file logging stopped until SIGHUP`, 'stderr');
      }
    });
  }

  /** Open the current file again by its name (SIGHUP), and retry after a failure. */
  reopen(): void {
    this.chain = this.chain.then(async () => {
      this.failed = false;
      if (this.current) await this.open(this.current).catch(() => { this.failed = true; });
    });
  }

  idle(): Promise<void> { return this.chain; }

  async close(): Promise<void> {
    await this.chain;
    await this.file?.close().catch(() => {});
    this.file = null;
  }
}
