// Connection caps for every listener of the process (HTTP and the TCP listeners of plugins), on all
// three runtimes.
//
// A listener admits at most `maxConnections` connections (global.limits.maxconn, 0 = no own cap), and
// the whole process at most a budget derived from its descriptor limit (RLIMIT_NOFILE, read from
// /proc/self/limits where there is one), so that accept() never runs out of descriptors while there is
// room for a file, a pull or a log. When a cap is reached, the oldest *silent* connection (one that has
// not yet sent a complete request head, or for raw TCP not a single byte) is closed to make room;
// when none is silent, the new connection is refused. Either way one warning line says so (at most one
// every 10 s per listener). A legitimate player therefore gets in even while thousands of idle sockets
// knock: they are the ones that go.

import { readFileSync } from 'node:fs';

/** One admitted connection. `active` = it has shown it is a real client (a request head, a byte). */
export interface GuardEntry {
  readonly since: number;
  active: boolean;
  readonly guard: ConnGuard;
  /** Close the connection now (eviction). */
  kill(): void;
}

/** Descriptors kept free for everything that is not a client connection (files, pulls, logs, timers). */
const RESERVED_FDS = 96;

/** The soft descriptor limit, or 0 when unknown. */
export function descriptorLimit(): number {
  try {
    const text = readFileSync('/proc/self/limits', 'utf8');
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(text);
    if (m && m[1] !== 'unlimited') return Number(m[1]);
  } catch {
    // not Linux, or no /proc: no process-wide cap beyond the per-listener ones
  }
  return 0;
}

/** Connections the whole process admits: 90 % of the descriptor limit minus a reserve (0 = unknown). */
export function processBudget(limit = descriptorLimit()): number {
  if (!limit) return 0;
  return Math.max(32, Math.floor(limit * 0.9) - RESERVED_FDS);
}

const all = new Set<GuardEntry>();
let budget = processBudget();

/** Override the process-wide budget (tests). */
export function setProcessBudget(n: number): void { budget = n; }
export function processConnections(): number { return all.size; }

/** Where refusals are reported. A JSON line on stderr by default (adapters have no logger). */
export let guardLog: (msg: string, fields: Record<string, unknown>) => void = (msg, fields) => {
  try {
    process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: 'warn', msg, ...fields }) + '\n');
  } catch {
    // stderr closed: nothing to do
  }
};
export function setGuardLog(fn: typeof guardLog): void { guardLog = fn; }

export class ConnGuard {
  readonly conns = new Set<GuardEntry>();
  refused = 0;
  evicted = 0;
  private lastWarn = 0;
  private unreported = 0;

  constructor(public what: string, public maxConnections = 0) {}

  /** Admit a new connection (evicting a silent one when full), or return null: then close it. */
  admit(kill: () => void, active = false): GuardEntry | null {
    const ownFull = this.maxConnections > 0 && this.conns.size >= this.maxConnections;
    const procFull = budget > 0 && all.size >= budget;
    if (ownFull || procFull) {
      const victim = oldestSilent(ownFull ? this.conns : all);
      if (victim) {
        this.evicted++;
        victim.guard.remove(victim);
        try { victim.kill(); } catch { /* already gone */ }
        this.report('closed the oldest silent connection to admit a new one');
      } else {
        this.refused++;
        this.report('connection refused: connection limit reached');
        return null;
      }
    }
    const e: GuardEntry = { since: Date.now(), active, guard: this, kill };
    this.conns.add(e);
    all.add(e);
    return e;
  }

  remove(e: GuardEntry): void {
    this.conns.delete(e);
    all.delete(e);
  }

  private report(msg: string): void {
    this.unreported++;
    const now = Date.now();
    if (now - this.lastWarn < 10_000) return;
    this.lastWarn = now;
    guardLog(msg, {
      listener: this.what, connections: this.conns.size, processConnections: all.size,
      maxconn: this.maxConnections, processBudget: budget, events: this.unreported, refused: this.refused, evicted: this.evicted,
    });
    this.unreported = 0;
  }
}

/** The oldest connection that is not active (sets iterate in insertion order: oldest first). */
function oldestSilent(set: Set<GuardEntry>): GuardEntry | undefined {
  for (const e of set) if (!e.active) return e;
  return undefined;
}
