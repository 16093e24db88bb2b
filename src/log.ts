// Structured logger: JSON lines by default, a compact coloured line on a terminal. Every record carries
// the fields of its logger chain (plugin, stream path, connection id), so one grep follows a stream.
import { redact, redactUrl } from './redact.ts';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<LogLevel, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50 };
export const LOG_LEVELS = Object.keys(RANK) as LogLevel[];

export type LogFields = Record<string, unknown>;
export interface LogRecord { time: number; level: LogLevel; msg: string; fields: LogFields }

/** Where records go. `format` decides the text; `write` puts a line out (the adapter's stdout/stderr). */
export interface LogOutput {
  pretty: boolean;
  write(line: string, stream: 'stdout' | 'stderr'): void;
}

/** Shared, mutable state of one logger tree: the level can change at runtime (config hot reload). */
class LogRoot {
  min = RANK.info;
  listeners = new Set<(r: LogRecord) => void>();
  constructor(public out: LogOutput) {}
}

export class Logger {
  private constructor(private readonly root: LogRoot, readonly fields: LogFields) {}

  static create(out: LogOutput, level: LogLevel = 'info'): Logger {
    const root = new LogRoot(out);
    root.min = RANK[level] ?? RANK.info;
    return new Logger(root, {});
  }

  /** A logger that writes nothing (tests, library use). */
  static silent(): Logger {
    return Logger.create({ pretty: false, write() {} }, 'error').setLevelChain('error');
  }

  private setLevelChain(l: LogLevel): Logger { this.root.min = RANK[l] + 100; return this; }

  child(fields: LogFields): Logger {
    return new Logger(this.root, { ...this.fields, ...fields });
  }

  setLevel(level: LogLevel): void {
    if (RANK[level] !== undefined) this.root.min = RANK[level];
  }

  get level(): LogLevel {
    return (LOG_LEVELS.find((l) => RANK[l] === this.root.min) ?? 'info');
  }

  enabled(level: LogLevel): boolean { return RANK[level] >= this.root.min; }

  /** Observe every record at or above the level (the console's log view, tests). */
  onRecord(fn: (r: LogRecord) => void): () => void {
    this.root.listeners.add(fn);
    return () => this.root.listeners.delete(fn);
  }

  trace(msg: string, f?: LogFields): void { this.log('trace', msg, f); }
  debug(msg: string, f?: LogFields): void { this.log('debug', msg, f); }
  info(msg: string, f?: LogFields): void { this.log('info', msg, f); }
  warn(msg: string, f?: LogFields): void { this.log('warn', msg, f); }
  error(msg: string, f?: LogFields): void { this.log('error', msg, f); }

  log(level: LogLevel, msg: string, f?: LogFields): void {
    if (RANK[level] < this.root.min) return;
    // Secrets never reach a log line (passwords, keys, tokens; user:pass@ and ?secret= in URLs).
    const rec: LogRecord = { time: Date.now(), level, msg: redactUrl(msg), fields: redact(f ? { ...this.fields, ...f } : this.fields) };
    const out = this.root.out;
    out.write(out.pretty ? formatPretty(rec) : formatJson(rec), level === 'error' || level === 'warn' ? 'stderr' : 'stdout');
    for (const l of this.root.listeners) l(rec);
  }
}

function errValue(v: unknown): unknown {
  return v instanceof Error ? v.message : v;
}

export function formatJson(r: LogRecord): string {
  const o: Record<string, unknown> = { time: new Date(r.time).toISOString(), level: r.level, msg: r.msg };
  for (const k of Object.keys(r.fields)) o[k] = errValue(r.fields[k]);
  try { return JSON.stringify(o); } catch { return JSON.stringify({ time: o.time, level: r.level, msg: r.msg }); }
}

const COLOR: Record<LogLevel, string> = { trace: '90', debug: '36', info: '32', warn: '33', error: '31' };
const TAG: Record<LogLevel, string> = { trace: 'TRC', debug: 'DBG', info: 'INF', warn: 'WRN', error: 'ERR' };

export function formatPretty(r: LogRecord): string {
  const d = new Date(r.time);
  const ts = `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}:${String(d.getSeconds()).padStart(2, '0')}.${String(d.getMilliseconds()).padStart(3, '0')}`;
  const { plugin, ...rest } = r.fields;
  let s = `\x1b[90m${ts}\x1b[0m \x1b[${COLOR[r.level]}m${TAG[r.level]}\x1b[0m ${plugin ? `\x1b[35m[${plugin}]\x1b[0m ` : ''}${r.msg}`;
  for (const k of Object.keys(rest)) {
    const v = errValue(rest[k]);
    s += ` \x1b[90m${k}=\x1b[0m${typeof v === 'string' ? v : JSON.stringify(v)}`;
  }
  return s;
}
