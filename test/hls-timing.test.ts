// When does a finished HLS segment show up in the playlist? (issue 10, item 7: the hls.js test stalled
// ~1 s at segment boundaries on a loaded CI machine.) The segmenter's own completion times (read in
// this process, at the moment it cuts) are set against the first playlist poll (every 50 ms) that lists
// each segment, and the completion cadence against the segments' EXTINF (how late the source itself
// delivers). A segment listed late would be ours to fix; a late source or a player without headroom is
// not. Prints one "# hls timing" line with the figures; runs on each runtime.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import flv from '../plugins/flv/index.ts';
import hls from '../plugins/hls/index.ts';
import { managerFor } from '../plugins/hls/manager.ts';
import { ffmpegPath, sleep, start, startServer, testSourceArgs, until, type TestServer } from './helpers/media.ts';

const POLL_MS = 50;
const MEASURE_MS = 9000;

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))]! : NaN;
};

describe('HLS playlist timing', () => {
  let S: TestServer;
  let pub: { kill(): Promise<void>; stderr(): string };

  before(async () => {
    S = await startServer([flv, hls], 'hls:\n  fragment: 1s\n');
    pub = start(ffmpegPath, [...testSourceArgs({ seconds: 60 }), '-f', 'flv', '-method', 'POST', `${S.http}/flv/live/timing.flv`]);
    await until(() => S.server.engine.getStream('live/timing')?.publisher, 15_000, 'publisher')
      .catch((e) => { throw new Error(`${e.message}; ffmpeg: ${pub.stderr()}`); });
  });

  after(async () => {
    await pub?.kill();
    await S?.stop();
  });

  it('a cold segmenter answers its first /hls/ playlist with startsegments (2) segments', async () => {
    // ?fmp4: this stream's fMP4 segmenter does not run yet (the TS one is the next test's).
    const mgr = managerFor(S.server.engine, S.server.logger);
    assert.equal(mgr.find('live/timing', 'fmp4'), undefined, 'cold');
    const t0 = Date.now();
    const r = await fetch(`${S.http}/hls/live/timing.m3u8?fmp4`);
    const text = await r.text();
    const ms = Date.now() - t0;
    assert.equal(r.status, 200, text);
    const segs = text.split('\n').filter((l) => /\d+\.m4s$/.test(l.trim())).length;
    assert.ok(segs >= 2, text);
    console.log(`# hls timing: cold first playlist with ${segs} segments after ${ms} ms`);
  });

  it('a complete segment is listed at the next playlist request', async () => {
    const url = `${S.http}/hls/live/timing.m3u8`;
    const first = await fetch(url);
    assert.equal(first.status, 200, await first.text());
    const seg = managerFor(S.server.engine, S.server.logger).find('live/timing', 'ts')!.seg;
    assert.ok(seg, 'the segmenter runs');

    // Server side: the wall clock at which each segment became complete (the predicate runs on every
    // notify, synchronously inside the cut).
    const completedAt = new Map<number, number>();
    let stop = false;
    const spy = () => {
      const now = Date.now();
      for (const x of seg.segments) if (x.complete && !completedAt.has(x.msn)) completedAt.set(x.msn, now);
      return stop;
    };
    spy();
    const known = new Set(completedAt.keys()); // complete before we looked: not measured
    const spying = seg.waitFor(spy, MEASURE_MS + 5000);

    // Client side: poll the playlist; the first poll that lists each segment, and its EXTINF.
    const listedAt = new Map<number, number>();
    const extinf = new Map<number, number>();
    const t0 = Date.now();
    while (Date.now() - t0 < MEASURE_MS) {
      const text = await (await fetch(url)).text();
      const now = Date.now();
      const lines = text.split('\n');
      for (let i = 0; i < lines.length; i++) {
        const m = /^(?:.*\/)?(\d+)\.ts$/.exec(lines[i]!.trim());
        if (!m) continue;
        const msn = Number(m[1]);
        if (!listedAt.has(msn)) listedAt.set(msn, now);
        const d = /^#EXTINF:([\d.]+)/.exec(lines[i - 1] ?? '');
        if (d) extinf.set(msn, Number(d[1]));
      }
      await sleep(POLL_MS);
    }
    stop = true;
    await spying;

    const measured = [...completedAt.keys()].filter((n) => !known.has(n) && listedAt.has(n)).sort((a, b) => a - b);
    assert.ok(measured.length >= 5, `segments measured: ${measured.length} (${[...completedAt.keys()]}, listed ${[...listedAt.keys()]})`);
    const delays = measured.map((n) => listedAt.get(n)! - completedAt.get(n)!);
    // Source cadence: time between two completions minus the later segment's duration (> 0: the
    // source delivered that segment's media later than real time).
    const lateness: number[] = [];
    for (let i = 1; i < measured.length; i++) {
      const n = measured[i]!, p = measured[i - 1]!;
      if (n === p + 1 && extinf.has(n)) lateness.push(completedAt.get(n)! - completedAt.get(p)! - extinf.get(n)! * 1000);
    }
    console.log(`# hls timing: ${measured.length} segments; listed after completion: median ${pct(delays, 0.5)} ms, ` +
      `p95 ${pct(delays, 0.95)} ms, max ${Math.max(...delays)} ms (poll every ${POLL_MS} ms); ` +
      `completion interval − EXTINF (source lateness): median ${Math.round(pct(lateness, 0.5))} ms, ` +
      `min ${Math.round(Math.min(...lateness))} ms, max ${Math.round(Math.max(...lateness))} ms`);
    // Listed at the first poll after completion: the poll interval plus one request, with room for a
    // loaded machine. Never a whole segment late.
    for (const [i, d] of delays.entries()) {
      assert.ok(d >= -5, `segment ${measured[i]} listed ${-d} ms before it was complete`);
      assert.ok(d <= POLL_MS + 450, `segment ${measured[i]} listed ${d} ms after it was complete (delays ${delays})`);
    }
    assert.ok(pct(delays, 0.5) <= POLL_MS + 100, `median listing delay ${pct(delays, 0.5)} ms (delays ${delays})`);
  });
});
