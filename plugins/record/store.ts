// The segment index: every segment of every stream with its wall-clock start/end, size and codecs, kept
// in memory sorted by start per stream (a time-range query is two binary searches) and persisted as an
// append-only JSON-lines journal: `open` when a segment starts (so a crash leaves a trace to recover
// from), `close` when it is complete, `delete` when retention removed it. Compacted at start.

import type { Runtime } from '../../src/net/types.ts';
import type { SegmentInfo } from './recorder.ts';

export interface IndexEntry extends SegmentInfo {
  /** Still being written (or left open by a crash, before recovery). */
  open?: boolean;
  /** The object key of its copy in the S3 store, once uploaded. */
  s3object?: string;
}

type Line = { op: 'open' | 'close'; seg: IndexEntry } | { op: 'delete'; path: string };

export class SegmentIndex {
  private readonly byStream = new Map<string, IndexEntry[]>();
  private readonly byPath = new Map<string, IndexEntry>();
  private chain: Promise<void> = Promise.resolve();
  private dirMade = false;

  constructor(private readonly rt: Runtime | null, readonly file: string) {}

  /** Load the journal; returns the entries a crash left open. */
  async load(): Promise<IndexEntry[]> {
    if (!this.rt) return [];
    let text = '';
    try { text = await this.rt.readTextFile(this.file); } catch { return []; }
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      let l: Line;
      try { l = JSON.parse(line); } catch { continue; } // a torn last line
      if (l.op === 'delete') this.forget(l.path);
      else this.put({ ...l.seg, open: l.op === 'open' });
    }
    await this.compact();
    return [...this.byPath.values()].filter((e) => e.open);
  }

  /** Rewrite the journal with one line per live entry. */
  async compact(): Promise<void> {
    if (!this.rt) return;
    const lines = [...this.byPath.values()].map((e) => JSON.stringify({ op: e.open ? 'open' : 'close', seg: e }));
    await this.rt.writeFile(this.file, lines.length ? lines.join('\n') + '\n' : '');
  }

  private journal(l: Line): void {
    const rt = this.rt;
    if (!rt) return;
    const text = JSON.stringify(l) + '\n';
    this.chain = this.chain.then(async () => {
      if (!this.dirMade) {
        const i = this.file.lastIndexOf('/');
        if (i > 0) await rt.mkdir(this.file.slice(0, i));
        this.dirMade = true;
      }
      const f = await rt.openWrite(this.file);
      try { await f.write(new TextEncoder().encode(text)); } finally { await f.close(); }
    }).catch(() => {});
  }

  flushed(): Promise<void> { return this.chain; }

  /** Add or replace an entry in memory only (tests, load). */
  put(e: IndexEntry): void {
    this.forget(e.path);
    this.byPath.set(e.path, e);
    let list = this.byStream.get(e.streamPath);
    if (!list) this.byStream.set(e.streamPath, (list = []));
    // Almost always appended at the end (segments arrive in time order).
    let i = list.length;
    while (i > 0 && list[i - 1]!.start > e.start) i--;
    list.splice(i, 0, e);
  }

  private forget(path: string): void {
    const old = this.byPath.get(path);
    if (!old) return;
    this.byPath.delete(path);
    const list = this.byStream.get(old.streamPath);
    const i = list ? list.indexOf(old) : -1;
    if (i >= 0) list!.splice(i, 1);
    if (list && !list.length) this.byStream.delete(old.streamPath);
  }

  opened(seg: SegmentInfo): void {
    const e = { ...seg, open: true };
    this.put(e);
    this.journal({ op: 'open', seg: e });
  }

  closed(seg: IndexEntry): void {
    const e = { ...seg };
    delete (e as IndexEntry).open;
    this.put(e);
    this.journal({ op: 'close', seg: e });
  }

  removed(path: string): void {
    this.forget(path);
    this.journal({ op: 'delete', path });
  }

  streams(): string[] { return [...this.byStream.keys()]; }

  get(path: string): IndexEntry | undefined { return this.byPath.get(path); }

  all(): IndexEntry[] { return [...this.byPath.values()]; }

  /** Segments of `streamPath` overlapping [start, end] (ms since epoch), oldest first. */
  query(streamPath: string, start = -Infinity, end = Infinity): IndexEntry[] {
    const list = this.byStream.get(streamPath);
    if (!list) return [];
    // First segment starting after `end` bounds the range; segments are short, so walk back from the
    // first whose start is >= start - (the longest segment) would need more state: instead binary-search
    // the first start > end and scan back while segments still overlap.
    let lo = 0, hi = list.length;
    while (lo < hi) { const m = (lo + hi) >> 1; if (list[m]!.start <= end) lo = m + 1; else hi = m; }
    const out: IndexEntry[] = [];
    for (let i = lo - 1; i >= 0; i--) {
      const e = list[i]!;
      if (e.end >= start || e.open) out.push(e);
      else if (e.start < start - 86_400_000) break; // nothing older can reach `start` (segments < 1 day)
    }
    return out.reverse();
  }

  /** Every entry, oldest end first (retention). */
  oldestFirst(): IndexEntry[] { return this.all().filter((e) => !e.open).sort((a, b) => a.end - b.end); }
}
