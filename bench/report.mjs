#!/usr/bin/env node
// Regenerates docs/BENCHMARKS.md and docs/bench-cpu.svg from bench/results/*.json.
//
//   node bench/report.mjs            (bench/run.mjs calls writeReport after a run)
//
// Rows from several runs are merged: for each (server, protocol, N) the newest successful row wins,
// and the machine/method section is taken from the newest run. Failed rows are listed separately.
// Rows measured with the slow player (`slow: true`, bench/run.mjs --slow) are merged on their own and
// only appear in the "Slow player" section, so the CPU tables and the chart hold one row per
// (server, protocol, N). Fields added later (liveEdgeMs, slowPlayer, ...) show as "–" in older results.

import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PROTO_NAMES = { rtmp: 'RTMP', flv: 'HTTP-FLV', ws: 'WS-FLV', rtsp: 'RTSP (TCP)' };
const SERVER_ORDER = ['m7s-node', 'm7s-bun', 'm7s-deno', 'nms', 'nginx'];
const f = (x, d = 1) => (x === null || x === undefined || Number.isNaN(x) ? '–' : Number(x).toFixed(d));

export function loadResults(root) {
  const dir = join(root, 'bench/results');
  let files = [];
  try { files = readdirSync(dir).filter((n) => n.endsWith('.json')).sort(); } catch { /* no results yet */ }
  return files.map((n) => ({ file: n, ...JSON.parse(readFileSync(join(dir, n), 'utf8')) }));
}

/**
 * Newest successful row per (server, proto, n) — `rows` without the slow player, `slow` with it — and
 * failures that were never measured successfully.
 */
export function mergeRows(runs) {
  const best = new Map(), failed = new Map();
  for (const run of runs) {
    // A --slow run's plain rows are the baselines of its slow rows, often measured in another network
    // setting (--netns): they stay with the slow rows (slowImpact) and out of the main tables.
    const slowRun = run.rows.some((r) => r.slow);
    for (const r of run.rows) {
      if (slowRun && !r.slow) continue;
      const k = `${r.server}|${r.proto}|${r.n}${r.slow ? '|slow' : ''}`;
      if (r.ok) { best.set(k, { ...r, run: run.date }); failed.delete(k); } else if (!best.has(k)) failed.set(k, { ...r, run: run.date });
    }
  }
  const protoIndex = (p) => Object.keys(PROTO_NAMES).indexOf(p);
  const order = (r) => [SERVER_ORDER.indexOf(r.server), protoIndex(r.proto), r.n, r.slow ? 1 : 0];
  const sort = (xs) => xs.sort((a, b) => { const x = order(a), y = order(b); return x[0] - y[0] || x[1] - y[1] || x[2] - y[2] || x[3] - y[3]; });
  const all = [...best.values()];
  return { rows: sort(all.filter((r) => !r.slow)), slow: sort(all.filter((r) => r.slow)), failed: sort([...failed.values()]) };
}

/**
 * A time to an edge (live or display) as p50 over all N players, those that never got there counting as
 * never; in brackets how many got there when not all did. Results from before players.mjs reported
 * `p50All` have only the p50 over those that got there: shown as is when all did, as a lower bound
 * when half or more did, and as "not by half" when fewer did (that p50 said nothing about the others).
 */
function edgeCell(e, n) {
  if (!e || e.reached == null) return '–'; // not measured in that run (none got there is "not by half (0/N)")
  const of = e.reached < n ? ` (${e.reached}/${n})` : '';
  if ('p50All' in e) return e.p50All == null ? `not by half${of}` : `${f(e.p50All, 0)}${of}`;
  if (e.reached >= n) return f(e.p50, 0);
  return e.reached * 2 < n ? `not by half${of}` : `≥ ${f(e.p50, 0)}${of}`;
}

function table(rows) {
  const out = [
    '| server | N | CPU % | user % | RSS MB | load-gen CPU % (core 1 busy %) | median kb/s per player | first frame p50 ms | live edge p50 ms | latency p50 ms | latency p99 ms | display p50 ms | display edge p50 ms | players ok |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const loadGen = (r.load.publisherPct ?? 0) + (r.load.playersPct ?? 0);
    const lim = r.loadLimited ? ' **load-limited**' : '';
    const noisy = r.serverCoreNoisy ? ` † (core busy ${f(r.serverCoreBusyPct, 0)})` : '';
    out.push(`| ${r.label} | ${r.n} | ${f(r.serverCpu.pct)}${noisy} | ${f(r.serverCpu.userPct)} | ${f(r.rssMB, 0)} | ${f(loadGen)} (${f(r.load.coreBusyPct, 0)})${lim} | ${f(r.kbpsMedian, 0)} | ${f(r.firstFrameP50, 0)} | ${edgeCell(r.liveEdgeMs, r.n)} | ${f(r.latency.p50)} | ${f(r.latency.p99)} | ${f(r.display?.p50, 0)} | ${edgeCell(r.display?.edge, r.n)} | ${r.players.ok}/${r.n} |`);
  }
  return out.join('\n');
}

/** The "Slow player" table: one row per (server, proto, N) measured with --slow. */
function slowTable(rows) {
  const out = [
    '| server | protocol | N | others\' latency p50 ms: without → with | others\' p99 ms: without → with | p99 Δ ms | slow player kb/s (target) | keyframes received | server max buffered KB | server drops / skips (state) |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const s = r.slowPlayer ?? {}, sv = s.server, imp = r.slowImpact;
    const sign = (x) => (x === null || x === undefined ? '–' : `${x > 0 ? '+' : ''}${f(x)}`);
    out.push(`| ${r.label} | ${PROTO_NAMES[r.proto] ?? r.proto} | ${r.n} | ${f(imp?.baseP50)} → ${f(r.latency.p50)} | ${f(imp?.baseP99)} → ${f(r.latency.p99)} | ${sign(imp?.p99DeltaMs)} |` +
      ` ${f(s.kbps, 0)} (${f(s.targetKbps, 0)}) | ${s.keyframes ?? '–'} | ${sv ? f(sv.maxBuffered / 1024, 0) : '–'} | ${sv ? `${sv.framesDropped} / ${sv.skips}${sv.state ? ` (${sv.state})` : ''}` : '–'} |`);
  }
  return out.join('\n');
}

/** Hand-written SVG: server CPU % against N (log axis), one line per server/protocol. */
export function cpuChart(rows) {
  const W = 760, H = 420, L = 60, R = 230, T = 30, B = 50;
  const series = new Map();
  for (const r of rows) {
    const k = `${r.server}|${r.proto}`;
    if (!series.has(k)) series.set(k, { name: `${r.server} ${PROTO_NAMES[r.proto] ?? r.proto}`, proto: r.proto, server: r.server, pts: [] });
    series.get(k).pts.push([r.n, r.serverCpu.pct, r.loadLimited]);
  }
  const ns = rows.map((r) => r.n);
  const nMin = Math.min(...ns, 10), nMax = Math.max(...ns, 100);
  const yMax = Math.max(100, Math.ceil(Math.max(...rows.map((r) => r.serverCpu.pct ?? 0), 0) / 20) * 20);
  const x = (n) => L + ((Math.log10(n) - Math.log10(nMin)) / (Math.log10(nMax) - Math.log10(nMin) || 1)) * (W - L - R);
  const y = (v) => T + (1 - v / yMax) * (H - T - B);
  const colors = { 'm7s-node': '#1f77b4', 'm7s-bun': '#9467bd', 'm7s-deno': '#2ca02c', nms: '#d62728', nginx: '#ff7f0e' };
  const dash = { rtmp: '', flv: '6 4', ws: '2 3', rtsp: '8 2 2 2' };
  const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${L}" y="18" font-size="14" font-weight="bold">Server CPU (% of one core) vs players N — 1 publisher, 2.3 Mb/s</text>`,
  ];
  for (let v = 0; v <= yMax; v += 20) {
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`, `<text x="${L - 8}" y="${y(v) + 4}" text-anchor="end">${v}</text>`);
  }
  // Any set of N: a grid line for each, a label unless it would overlap the previous one (log axis).
  let lastLabel = -Infinity;
  for (const n of [...new Set(ns)].sort((a, b) => a - b)) {
    parts.push(`<line x1="${x(n).toFixed(1)}" x2="${x(n).toFixed(1)}" y1="${T}" y2="${H - B}" stroke="#eee"/>`);
    if (x(n) - lastLabel < 8 * String(n).length + 6) continue;
    parts.push(`<text x="${x(n).toFixed(1)}" y="${H - B + 18}" text-anchor="middle">${n}</text>`);
    lastLabel = x(n);
  }
  parts.push(`<line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="#333"/>`, `<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="#333"/>`,
    `<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">players N (log scale)</text>`,
    `<text x="16" y="${(T + H - B) / 2}" transform="rotate(-90 16 ${(T + H - B) / 2})" text-anchor="middle">CPU %</text>`);
  let ly = T + 10;
  for (const s of series.values()) {
    s.pts.sort((a, b) => a[0] - b[0]);
    const c = colors[s.server] ?? '#555';
    parts.push(`<polyline fill="none" stroke="${c}" stroke-width="2" stroke-dasharray="${dash[s.proto] ?? ''}" points="${s.pts.map(([n, v]) => `${x(n).toFixed(1)},${y(v).toFixed(1)}`).join(' ')}"/>`);
    for (const [n, v, lim] of s.pts) {
      parts.push(lim ? `<circle cx="${x(n).toFixed(1)}" cy="${y(v).toFixed(1)}" r="4" fill="white" stroke="${c}" stroke-width="2"/>` : `<circle cx="${x(n).toFixed(1)}" cy="${y(v).toFixed(1)}" r="3" fill="${c}"/>`);
    }
    parts.push(`<line x1="${W - R + 15}" x2="${W - R + 45}" y1="${ly}" y2="${ly}" stroke="${c}" stroke-width="2" stroke-dasharray="${dash[s.proto] ?? ''}"/>`,
      `<text x="${W - R + 52}" y="${ly + 4}">${esc(s.name)}</text>`);
    ly += 18;
  }
  parts.push(`<text x="${W - R + 15}" y="${ly + 8}" fill="#555">hollow point: load-limited</text>`, '</svg>');
  return parts.join('\n') + '\n';
}

/**
 * Runs made with --by-n (method.byN): protocols measured back to back at each N, usually on a machine
 * busy with other work. Shown on their own, with each protocol's CPU and RSS as a ratio of the first
 * protocol's at the same N (the ratio is the figure such a run is for; the absolute numbers are noisy).
 */
function pairedSection(runs) {
  const out = ['## Paired runs (protocols back to back, loaded machine)', '',
    'Each N measured for every protocol one right after the other (`bench/run.mjs --by-n`), on a shared machine where other work ran at the same time: † and "core busy" show how busy the server\'s core was overall. Compare within a run and an N (the ratio columns: this protocol ÷ the first one), not with the tables above.', ''];
  for (const run of runs) {
    const m = run.machine;
    out.push(`### ${run.date}`, '', `\`${run.command}\` — ${m.nproc} × ${m.cpu}, Linux ${m.kernel}, Node ${m.node}, m7s ${m.m7s} (${m.m7sCommit})${run.method.note ? '. ' + run.method.note : ''}.`, '',
      '| server | protocol | N | CPU % | RSS MB | CPU ÷ first | RSS ÷ first | server core busy % | load-gen CPU % (core 1 busy %) | median kb/s per player | latency p50 / p99 ms | players ok |',
      '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    const ns = [...new Set(run.rows.map((r) => r.n))];
    for (const n of ns) {
      const rows = run.rows.filter((r) => r.n === n);
      const base = rows.find((r) => r.ok);
      for (const r of rows) {
        if (!r.ok) { out.push(`| ${r.label} | ${PROTO_NAMES[r.proto]} | ${n} | failed: ${r.error} | | | | | | | | |`); continue; }
        const ratio = (a, b) => (a && b ? (a / b).toFixed(2) : '–');
        const loadGen = (r.load.publisherPct ?? 0) + (r.load.playersPct ?? 0);
        out.push(`| ${r.label} | ${PROTO_NAMES[r.proto]} | ${n} | ${f(r.serverCpu.pct)}${r.serverCoreNoisy ? ' †' : ''} | ${f(r.rssMB, 0)} | ${ratio(r.serverCpu.pct, base.serverCpu.pct)} | ${ratio(r.rssMB, base.rssMB)} | ${f(r.serverCoreBusyPct, 0)} | ${f(loadGen)} (${f(r.load.coreBusyPct, 0)})${r.loadLimited ? ' **load-limited**' : ''} | ${f(r.kbpsMedian, 0)} | ${f(r.latency.p50)} / ${f(r.latency.p99)} | ${r.players.ok}/${r.n} |`);
      }
    }
    out.push('');
  }
  return out;
}

export function markdown(allRuns, merged) {
  const runs = allRuns.filter((r) => !r.method?.byN);
  const paired = allRuns.filter((r) => r.method?.byN);
  const last = runs[runs.length - 1];
  const m = last.machine, me = last.method;
  const protos = ['rtmp', 'flv', 'ws', 'rtsp'].filter((p) => merged.rows.some((r) => r.proto === p));
  const lines = [
    '# Benchmarks',
    '',
    '<!-- Generated by bench/report.mjs from bench/results/*.json. Do not edit by hand: run `node bench/run.mjs`. -->',
    '',
    'Fan-out: one real-time RTMP publisher, N players of one protocol, every server started fresh for each',
    'row. The same load generator (`bench/load/`, our own small RTMP / HTTP-FLV / WS-FLV clients, no m7s',
    'code) drives every server. Since 2026-12-01 14:22 UTC its players read into one shared buffer (`net.connect`',
    "`onread`, bench/load/conn.mjs) instead of 'data' events, which cut their own CPU by a quarter; rows before",
    'that were measured with the older players.',
    '',
    '![server CPU against N](bench-cpu.svg)',
    '',
    '## Method',
    '',
    `- Machine: ${m.nproc} × ${m.cpu}, Linux ${m.kernel}. Node ${m.node}, Bun ${m.bun ?? '–'}, ${m.deno ?? 'Deno –'}; node-media-server ${m.nms ?? '–'}; ${m.nginx ?? 'nginx –'}. m7s ${m.m7s} (${m.m7sCommit}).`,
    `- Stream: 1280×720 30 fps H.264 (synthetic: valid SPS/PPS, fake slices; IDR every 2 s at 5× a P frame) ≈ 2 Mb/s, plus AAC 44.1 kHz 1024-sample frames ≈ 128 kb/s; ≈ 2.2 Mb/s with FLV/RTMP overhead.`,
    `- Pinning: the server on core ${me.serverCore} (\`taskset -c ${me.serverCore}\`), the publisher and all players on core ${me.loadCore}. Loopback only.`,
    `- Window: players join (batches of 50 per 20 ms), ${me.warmup} s warm-up, then a ${me.seconds} s measurement window.`,
    '- CPU %: the server process\'s utime+stime over the window (/proc/<pid>/stat) as % of one core; user % is the user part. RSS: highest VmRSS sampled each second in the window.',
    `- Load-gen CPU %: publisher + players processes (utime+stime); in brackets how busy core ${me.loadCore} was as a whole (including kernel work such as loopback TCP). Rows where the load generator\'s processes used more than ${me.loadLimitPct} % of their core are marked **load-limited**: there the client, not the server, may have set the pace, and latency includes client queueing. Core 1 busy well above the load generator\'s own share means kernel work or other processes on that core.`,
    `- Noise: before each row the runner waits (up to 20 s) for both cores to be < 15 % busy; † marks a row where core ${me.serverCore} was more than 15 points busier than the server itself during the window (something else ran there).`,
    '- Latency: every video frame carries an SEI NAL (user_data_unregistered, fixed UUID) with the publisher\'s wall clock in µs, stamped just before the frame is written; a player records now − stamp for each frame received during the window and more than 3 s after it joined. p50/p99 over all players\' frames.',
    '- First frame: from the player starting to connect to its first video message/tag (with N players joining at once).',
    `- Live edge: from the player starting to connect to its first video frame whose SEI latency is below ${me.edgeMs ?? 100} ms (a new player first gets the server's cached GOP, old frames, then live ones); p50 over all players, those that never got there counting as never, with how many did in brackets when not all did ("not by half": fewer than half did; "≥": a run from before 2026-12-02 that recorded only the p50 over those that did). "–": not measured in that run.`,
    `- Display: what a player without a buffer of its own would show. It paces frames by their timestamps from the first one it got (a frame that arrives after its time stalls that clock); display latency = when the frame is shown − the SEI stamp, p50 over the window. This is where a GOP cache's cost shows: a cached GOP sent at once with its original timestamps is shown a GOP age late for the whole session (node-media-server ≈ 1.0–1.3 s here); a server without a cache (nginx-rtmp) waits for the next keyframe instead (first frame ≈ 0.6–0.9 s); m7s fast-forwards the cached GOP into \`subscribe.catchup\` (100 ms). Display edge: time to the first frame shown less than the live-edge threshold late, p50 over all players as for the live edge.`,
    '- Median kb/s: each player\'s received bytes over the window, median over players (≈ 2200 means it kept up).',
    '- Servers: m7s from this tree (bundled like `npm run build`, run as `node …/m7s.mjs -c`, `bun adapters/bun/main.ts -c`, `deno run -A adapters/deno/main.ts -c`; log level warn); node-media-server with its v4 defaults (webadmin off); nginx-rtmp (Debian, one process, `live on`, RTMP only).',
    '',
    `Reproduce: \`npm ci && node bench/run.mjs --n 10,100,1000 --proto rtmp,flv,ws,rtsp\` (nginx rows need \`apt-get install nginx libnginx-mod-rtmp\`). Runs: ${runs.map((r) => `\`${r.command}\` (${r.date})`).join('; ')}.`,
    '',
  ];
  for (const p of protos) {
    lines.push(`## ${PROTO_NAMES[p]}`, '', table(merged.rows.filter((r) => r.proto === p)), '');
  }
  if (merged.slow.length) {
    const sm = runs.findLast((r) => r.rows.some((x) => x.slow))?.method ?? me;
    lines.push('## Slow player', '',
      `Each row is measured twice, server restarted in between: as above, then with one more player of the same protocol that reads at most ${sm.slowKbps ?? 220} kb/s (≈ 10 % of the stream, a byte budget per 100 ms; \`bench/load/slow_player.py\`, with a WAN-like MSS of 1400 and a 64 KiB receive buffer set before it connects) and connects ${sm.slowLead ?? 0} s before the N players. "Others" are the N normal players (the slow player\'s own frames are not in their figures); Δ is with − without, so it includes run-to-run noise of a few ms. Keyframes: video keyframes the slow player received in the window. For m7s the runner reads \`GET /api/subscribers/live/bench\` every second in the window: the slow subscriber\'s highest \`buffered\` (bytes queued in its connection) and its \`framesDropped\` / \`skips\` at the end.`,
      '',
      `Kernel buffers: the slow player\'s small MSS and receive window are what a WAN viewer has, but the server\'s kernel send buffer grows with its congestion window. With TCP congestion control reno/cubic it stays moderate while the receiver\'s window is the limit (cwnd stops at about twice the segments the 64 KiB window lets out; 0.3–0.5 MB queued in the kernel for m7s), so the server sees the backpressure within a few seconds, as it would on a WAN path; with BBR on loopback (µs round trips) Linux grows it to 1–2.6 MB, and the slow player then reads data tens of seconds old whatever the server does. ${sm.netns ? `These rows ran in a private network namespace with congestion control ${sm.netns} (bench/run.mjs --netns ${sm.netns}).` : 'These rows ran with the machine\'s default congestion control (bench/run.mjs --netns reno gives the WAN-like case).'} The server-side columns and the others\' latency are the figures to compare.`,
      '', slowTable(merged.slow), '');
  }
  if (paired.length) lines.push(...pairedSection(paired));
  if (merged.failed.length) {
    lines.push('## Not measured', '');
    for (const r of merged.failed) lines.push(`- ${r.label}, ${PROTO_NAMES[r.proto]}, N=${r.n}${r.slow ? ' (with the slow player)' : ''}: ${r.error}`);
    lines.push('');
  }
  return lines.join('\n');
}

/** Everything from this line to the end of docs/BENCHMARKS.md is written by hand and survives regeneration. */
export const KEEP_MARKER = '<!-- Hand-written below (kept by bench/report.mjs): measured by other scripts, see each section. -->';

export function writeReport(root) {
  const runs = loadResults(root);
  if (!runs.length) return [];
  const merged = mergeRows(runs.filter((r) => !r.method?.byN));
  const md = join(root, 'docs/BENCHMARKS.md'), svg = join(root, 'docs/bench-cpu.svg');
  // Sections measured by other scripts (bench/latency.mjs) sit after KEEP_MARKER and are kept as they are.
  let kept = '';
  try { const old = readFileSync(md, 'utf8'); const i = old.indexOf(KEEP_MARKER); if (i >= 0) kept = '\n' + old.slice(i); } catch { /* first run */ }
  writeFileSync(md, markdown(runs, merged) + kept);
  writeFileSync(svg, cpuChart(merged.rows));
  return [md, svg];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = join(fileURLToPath(import.meta.url), '../..');
  console.log(writeReport(root).join('\n') || 'no results in bench/results');
}
