/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/// <reference lib="deno.ns" />
// The m7s web console (/admin/): a hash-routed page per view, no framework (see docs/console.md).
// Live data comes over the API's Server-Sent Events (/api/events, /api/logs/tail, and the `Accept:
// text/event-stream` form of /api/stream/info and /api/subscribers); nothing polls except the
// instances page, which asks each other server once per refresh.
import css from './style.css';
import { api, ApiError, esc, imageUrl, fmtBps, fmtBytes, type Instance, INSTANCES_KEY, localInstance, savedInstances, saveInstances, setUnauthorizedHandler, sse, TOKEN_KEY } from './api.ts';
import { LineChart, sparkline } from './chart.ts';
import { play, type Playing, PROTO_LABEL, protosFor, type Proto } from './players.ts';

const LIB = '/admin/lib/';
const style = document.createElement('style');
style.textContent = css;
document.head.appendChild(style);

let inst: Instance = localInstance();
let loginRequired = false;
let plugins: { name: string; enabled: boolean; reason?: string; description?: string; listen?: any[] }[] = [];
const enabled = () => new Set(plugins.filter((p) => p.enabled).map((p) => p.name));

type Page = (el: HTMLElement, arg: string, signal: AbortSignal) => void | Promise<void>;
const pages: Record<string, [string, Page]> = {};
// [route, title, plugin it needs (the entry shows only while that plugin runs)]
const NAV: [string, string, string?][] = [['', 'Overview'], ['streams', 'Streams'], ['proxies', 'Proxies'], ['recordings', 'Recordings'], ['wall', 'Video wall'],
  ['devices', 'Devices', 'gb28181'], ['onvif', 'ONVIF', 'onvif'], ['plugins', 'Plugins'], ['config', 'Config'], ['logs', 'Logs'], ['instances', 'Instances']];

const app = document.getElementById('app')!;
let current: AbortController | null = null;

function shell(): HTMLElement {
  const [route] = routeOf();
  const other = inst.url ? ` <a href="#/instances" data-reset="1">back to this server</a>` : '';
  app.innerHTML = `<div class="layout"><nav class="side" aria-label="Console"><div class="brand">m7s console</div>
    <div id="navlinks">${navLinks(route)}</div>
    <div class="inst">${esc(inst.name)}${inst.url ? ` · ${esc(inst.url)}` : ''}${other}</div>
    ${localStorage.getItem(TOKEN_KEY) ? '<a href="#/logout" id="logout">Log out</a>' : ''}</nav><main id="main"></main></div>`;
  app.querySelector('[data-reset]')?.addEventListener('click', () => { inst = localInstance(); });
  return document.getElementById('main')!;
}

function navLinks(route: string): string {
  const on = enabled();
  return NAV.filter(([, , need]) => !need || on.has(need))
    .map(([r, t]) => `<a href="#/${r}"${r === route || (route === 'stream' && r === 'streams') ? ' aria-current="page"' : ''}>${t}</a>`).join('');
}

function routeOf(): [string, string] {
  const h = decodeURIComponent(location.hash.replace(/^#\/?/, ''));
  const i = h.indexOf('/');
  return i < 0 ? [h, ''] : [h.slice(0, i), h.slice(i + 1)];
}

async function render(): Promise<void> {
  current?.abort();
  current = new AbortController();
  const signal = current.signal;
  const [route, arg] = routeOf();
  if (route === 'logout') { await logout(); return; }
  // Without a session the API would answer 401 (with a Basic challenge the browser shows itself).
  if (loginRequired && !inst.url && !localStorage.getItem(TOKEN_KEY)) { loginPage(); return; }
  const main = shell();
  const page = pages[route] ?? pages[''];
  try {
    if (!plugins.length || route === 'plugins') {
      plugins = await api(inst, '/api/plugins');
      const nav = document.getElementById('navlinks');
      if (nav) nav.innerHTML = navLinks(route); // entries of plugins that run (Devices, ONVIF)
    }
    await page[1](main, arg, signal);
  } catch (e) {
    if (signal.aborted) return;
    main.insertAdjacentHTML('beforeend', `<p class="bad" role="alert">${esc((e as Error).message)}</p>`);
  }
  document.title = `${page[0]} · m7s`;
}

// ------------------------------------------------------------------------------------------ login
async function sessionState(): Promise<{ loginRequired: boolean; user: string | null }> {
  const r = await fetch('/admin/session', { headers: inst.token && !inst.url ? { authorization: `Bearer ${inst.token}` } : {} });
  return (await r.json()).data;
}

function loginPage(message = ''): void {
  current?.abort();
  app.innerHTML = `<main><form class="login panel" id="login"><h1>m7s console</h1>
    <label>User name <input name="username" autocomplete="username" required></label>
    <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
    <button type="submit">Log in</button><p class="bad" id="login-error" role="alert">${esc(message)}</p></form></main>`;
  document.title = 'Log in · m7s';
  const f = document.getElementById('login') as HTMLFormElement;
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const fd = new FormData(f);
    const r = await fetch('/admin/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: fd.get('username'), password: fd.get('password') }) });
    const j = await r.json().catch(() => ({}));
    if (!r.ok) { document.getElementById('login-error')!.textContent = j.message ?? `HTTP ${r.status}`; return; }
    localStorage.setItem(TOKEN_KEY, j.data.token);
    inst = localInstance();
    void render();
  });
}

async function logout(): Promise<void> {
  const t = localStorage.getItem(TOKEN_KEY);
  if (t) await fetch('/admin/logout', { method: 'POST', headers: { authorization: `Bearer ${t}` } }).catch(() => {});
  localStorage.removeItem(TOKEN_KEY);
  inst = localInstance();
  history.replaceState(null, '', '#/'); // no hashchange: the login form stays
  loginPage('Logged out.');
}

setUnauthorizedHandler(() => { localStorage.removeItem(TOKEN_KEY); inst = localInstance(); loginPage('Please log in (session missing, expired or not valid).'); });

// ------------------------------------------------------------------------------------------ overview
interface Brief { path: string; state: string; subscribers: number; publisher: string | null; codecs: string[]; bps: number; fps: number; width?: number; height?: number }
const bpsHistory = new Map<string, number[]>();

pages[''] = ['Overview', (el, _a, signal) => {
  el.innerHTML = `<h1>Overview</h1><div class="cards" id="cards"></div><div class="charts">
    <div class="panel"><h2>Bitrate</h2><canvas class="chart" id="c-bps" role="img" aria-label="bitrate in and out"></canvas></div>
    <div class="panel"><h2>CPU</h2><canvas class="chart" id="c-cpu" role="img" aria-label="CPU usage"></canvas></div>
    <div class="panel"><h2>Memory</h2><canvas class="chart" id="c-mem" role="img" aria-label="memory"></canvas></div></div>
    <h2>Live streams</h2><div class="scroll"><table><thead><tr><th>stream</th><th>publisher</th><th>viewers</th><th>bitrate</th></tr></thead><tbody id="top"></tbody></table></div>`;
  const bps = new LineChart(el.querySelector('#c-bps')!, [['in', '#3b82f6'], ['out', '#f59e0b']], fmtBps);
  const cpu = new LineChart(el.querySelector('#c-cpu')!, [['cpu', '#10b981']], (v) => `${v.toFixed(1)} %`);
  const mem = new LineChart(el.querySelector('#c-mem')!, [['rss', '#8b5cf6'], ['heap', '#ec4899']], fmtBytes);
  let lastOut: { t: number; b: number } | null = null;
  sse(inst, '/api/events', (ev, d) => {
    if (ev !== 'summary') return;
    let out = 0;
    if (lastOut && d.time > lastOut.t) out = Math.max(0, ((d.bytesOut - lastOut.b) * 8000) / (d.time - lastOut.t));
    lastOut = { t: d.time, b: d.bytesOut };
    el.querySelector('#cards')!.innerHTML = [['streams', d.streamCount], ['publishing', d.publishingCount], ['viewers', d.subscribeCount], ['in', fmtBps(d.bpsIn)], ['out', fmtBps(out)],
      ['CPU', `${d.cpuUsage} %`], ['memory', fmtBytes(d.memory?.rss ?? 0)]].map(([k, v]) => `<div class="card"><div class="v">${esc(v)}</div><div class="k">${k}</div></div>`).join('');
    bps.push(d.bpsIn, out); cpu.push(d.cpuUsage); mem.push(d.memory?.rss ?? 0, d.memory?.heapUsed ?? 0);
    const top = (d.streams as Brief[]).slice().sort((a, b) => b.bps - a.bps).slice(0, 10);
    el.querySelector('#top')!.innerHTML = top.map((s) => `<tr><td><a href="#/stream/${esc(s.path)}">${esc(s.path)}</a></td><td>${esc(s.publisher ?? '—')}</td><td>${s.subscribers}</td><td>${fmtBps(s.bps)}</td></tr>`).join('')
      || '<tr><td colspan="4" class="muted">no streams</td></tr>';
  }, signal);
}];

// ------------------------------------------------------------------------------------------ streams
pages.streams = ['Streams', (el, _a, signal) => {
  el.innerHTML = `<h1>Streams</h1><div class="toolbar"><label>Search <input id="q" type="search" placeholder="path"></label>
    <label>Protocol <select id="proto"><option value="">all</option></select></label><span class="muted" id="count"></span></div>
    <div class="scroll"><table id="streams"><thead><tr><th>stream</th><th>state</th><th>publisher</th><th class="hide-narrow">codecs</th><th class="hide-narrow">size</th><th>fps</th><th>viewers</th><th>bitrate</th><th class="hide-narrow">trend</th></tr></thead><tbody></tbody></table></div>`;
  const q = el.querySelector('#q') as HTMLInputElement, proto = el.querySelector('#proto') as HTMLSelectElement;
  const body = el.querySelector('tbody')!;
  let last: Brief[] = [];
  const protos = new Set<string>();
  const draw = () => {
    const t0 = performance.now();
    const needle = q.value.trim().toLowerCase();
    const list = last.filter((s) => (!needle || s.path.toLowerCase().includes(needle)) && (!proto.value || s.publisher === proto.value));
    body.innerHTML = list.map((s) => `<tr data-path="${esc(s.path)}"><td><a href="#/stream/${esc(s.path)}">${esc(s.path)}</a></td><td>${esc(s.state)}</td><td>${esc(s.publisher ?? '—')}</td>
      <td class="hide-narrow">${esc(s.codecs.join(', '))}</td><td class="hide-narrow">${s.width ? `${s.width}×${s.height}` : ''}</td><td>${s.fps}</td><td>${s.subscribers}</td><td>${fmtBps(s.bps)}</td>
      <td class="hide-narrow">${sparkline(bpsHistory.get(s.path) ?? [])}</td></tr>`).join('') || '<tr><td colspan="9" class="muted">no streams</td></tr>';
    el.querySelector('#count')!.textContent = `${list.length} of ${last.length}`;
    (window as any).m7sStreamsRenderMs = performance.now() - t0;
  };
  q.addEventListener('input', draw); proto.addEventListener('change', draw);
  sse(inst, '/api/events', (ev, d) => {
    if (ev !== 'summary') return;
    last = d.streams;
    for (const s of last) {
      const h = bpsHistory.get(s.path) ?? []; h.push(s.bps); if (h.length > 30) h.shift(); bpsHistory.set(s.path, h);
      if (s.publisher && !protos.has(s.publisher)) { protos.add(s.publisher); proto.insertAdjacentHTML('beforeend', `<option>${esc(s.publisher)}</option>`); }
    }
    draw();
  }, signal);
}];

// ------------------------------------------------------------------------------------------ one stream
let playing: Playing | null = null;
function stopPlaying(): void { playing?.stop(); playing = null; }

function playerPanel(el: HTMLElement, path: string, signal: AbortSignal, chosen?: Proto, videoOnly = false): void {
  const protos = protosFor(enabled());
  el.innerHTML = `<div class="toolbar"><label>Protocol <select id="pp">${protos.map((p) => `<option value="${p}"${p === chosen ? ' selected' : ''}>${PROTO_LABEL[p]}</option>`).join('')}</select></label>
    <span id="lat" class="muted" aria-live="off"></span></div><video id="video" controls muted playsinline aria-label="preview of ${esc(path)}"></video><p id="perr" class="bad" role="alert"></p>`;
  const sel = el.querySelector('#pp') as HTMLSelectElement, video = el.querySelector('#video') as HTMLVideoElement;
  const go = async () => {
    stopPlaying();
    el.querySelector('#perr')!.textContent = '';
    try { playing = await play(video, inst, sel.value as Proto, path, LIB, videoOnly); } catch (e) { el.querySelector('#perr')!.textContent = (e as Error).message; }
  };
  sel.addEventListener('change', go);
  const t = setInterval(() => {
    const l = playing?.latency();
    const e = playing?.error();
    el.querySelector('#lat')!.textContent = `t=${video.currentTime.toFixed(1)} s · latency ${l == null ? '—' : `${l.toFixed(2)} s`}`;
    if (e) el.querySelector('#perr')!.textContent = e;
  }, 500);
  signal.addEventListener('abort', () => { clearInterval(t); stopPlaying(); });
  if (protos.length) void go(); else el.innerHTML = '<p class="muted">no player protocol is enabled</p>';
}

pages.stream = ['Stream', (el, path, signal) => {
  el.innerHTML = `<h1>${esc(path)}</h1><div class="grid2"><div><div class="panel" id="info">loading…</div>
    <div class="panel"><h2>Bitrate</h2><canvas class="chart" id="c-sbps" role="img" aria-label="stream bitrate"></canvas></div></div>
    <div><div class="panel" id="player"></div><div class="panel" id="thumb" hidden><h2>Snapshot</h2><img id="snapimg" alt="snapshot of ${esc(path)}" style="max-width:100%"><p class="muted" id="snapwhen"></p></div></div></div><h2>Subscribers</h2><div class="scroll"><table><thead><tr><th>id</th><th>protocol</th><th>address</th><th>state</th><th>lag</th><th>dropped</th><th>sent</th><th></th></tr></thead><tbody id="subs"></tbody></table></div>
    <p><button class="danger" id="stop">Stop stream</button></p>`;
  const chart = new LineChart(el.querySelector('#c-sbps')!, [['bitrate', '#3b82f6']], fmtBps);
  const enc = encodeURI(path);
  sse(inst, `/api/stream/info/${enc}`, (_ev, j) => {
    const s = j.data;
    if (!s) return;
    chart.push(s.tracks.reduce((a: number, t: any) => a + t.bps, 0));
    el.querySelector('#info')!.innerHTML = `<p>state <b>${esc(s.state)}</b> · publisher <b>${esc(s.publisher ? `${s.publisher.protocol} ${s.publisher.remote ?? ''}` : '—')}</b> · viewers <b>${s.subscribers}</b></p>
      <table><thead><tr><th>track</th><th>codec</th><th>details</th><th>fps</th><th>bitrate</th><th>GOP</th></tr></thead><tbody>${s.tracks.map((t: any) => `<tr><td>${esc(t.kind)}</td><td>${esc(t.codecString ?? t.codec)}</td>
      <td>${t.width ? `${t.width}×${t.height}` : t.sampleRate ? `${t.sampleRate} Hz ${t.channels ?? ''}ch` : ''}</td><td>${t.fps}</td><td>${fmtBps(t.bps)}</td><td>${t.kind === 'video' && t.keyframes ? `${(t.frames / t.keyframes).toFixed(0)} frames` : ''}</td></tr>`).join('')}</tbody></table>`;
  }, signal, (okState, why) => { if (!okState) el.querySelector('#info')!.innerHTML = `<p class="bad">${esc(why ?? 'gone')}</p>`; });
  sse(inst, `/api/subscribers/${enc}`, (_ev, j) => {
    const list = (j.data ?? []) as any[];
    el.querySelector('#subs')!.innerHTML = list.map((x) => `<tr data-sub="${x.id}"><td>${x.id}</td><td>${esc(x.protocol)}</td><td>${esc(x.remote ?? '')}</td><td>${esc(x.state)}${x.degraded ? ' <span class="badge warn">degraded</span>' : ''}</td>
      <td>${x.lagMs ?? 0} ms</td><td>${x.framesDropped ?? 0}</td><td>${fmtBytes(x.bytesSent ?? 0)}</td><td><button class="danger" data-kick="${x.id}" aria-label="kick subscriber ${x.id}">Kick</button></td></tr>`).join('')
      || '<tr><td colspan="8" class="muted">no subscribers</td></tr>';
  }, signal);
  el.querySelector('#subs')!.addEventListener('click', async (ev) => {
    const id = (ev.target as HTMLElement).dataset.kick;
    if (id) { try { await api(inst, `/api/subscribe/stop/${id}`, { method: 'POST' }); (ev.target as HTMLElement).closest('tr')?.remove(); } catch (e) { alert((e as Error).message); } }
  });
  el.querySelector('#stop')!.addEventListener('click', async () => { if (confirm(`Stop ${path}?`)) await api(inst, `/api/stream/stop/${enc}`, { method: 'POST' }).catch((e) => alert(e.message)); });
  playerPanel(el.querySelector('#player')!, path, signal, new URLSearchParams(location.search).get('p') as Proto ?? undefined);
  if (enabled().has('snap')) thumbnail(el.querySelector('#thumb') as HTMLElement, path, signal);
}];

// ------------------------------------------------------------------------------------------ proxies
const PROXY_PLUGINS = ['rtmp', 'rtsp', 'flv', 'hls'];
pages.proxies = ['Proxies', async (el, _a, signal) => {
  const have = PROXY_PLUGINS.filter((p) => enabled().has(p));
  el.innerHTML = `<h1>Pull and push proxies</h1><form class="inline panel" id="add"><label>Protocol <select name="plugin">${have.map((p) => `<option>${p}</option>`).join('')}</select></label>
    <label>Kind <select name="kind"><option>pull</option><option>push</option></select></label><label>Stream path <input name="streamPath" required placeholder="live/cam1"></label>
    <label>URL <input name="url" required size="40" placeholder="rtmp://host/live/cam1"></label><button type="submit">Add</button><span id="adderr" class="bad" role="alert"></span></form>
    <h2>Running</h2><div class="scroll"><table><thead><tr><th>id</th><th>plugin</th><th>kind</th><th>stream</th><th>URL</th><th>state</th><th></th></tr></thead><tbody id="jobs"></tbody></table></div>`;
  const load = async () => {
    const rows: string[] = [];
    for (const p of have) {
      const d = await api(inst, `/${p}/api/list`).catch(() => null);
      for (const k of ['pulls', 'pushes']) for (const j of (d?.[k] ?? []) as any[]) {
        rows.push(`<tr data-job="${j.id}"><td>${j.id}</td><td>${p}</td><td>${k === 'pulls' ? 'pull' : 'push'}</td><td>${esc(j.streamPath)}</td><td>${esc(j.url ?? j.target ?? '')}</td><td>${esc(j.state ?? (j.ended ? `ended: ${j.endReason ?? ''}` : 'running'))}</td>
          <td><button class="danger" data-stop="${p}/${j.id}">Remove</button></td></tr>`);
      }
    }
    if (!signal.aborted) el.querySelector('#jobs')!.innerHTML = rows.join('') || '<tr><td colspan="7" class="muted">none</td></tr>';
  };
  el.querySelector('#add')!.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const fd = new FormData(ev.target as HTMLFormElement);
    try {
      await api(inst, `/${fd.get('plugin')}/api/${fd.get('kind')}`, { body: { streamPath: fd.get('streamPath'), url: fd.get('url') } });
      el.querySelector('#adderr')!.textContent = '';
      await load();
    } catch (e) { el.querySelector('#adderr')!.textContent = (e as Error).message; }
  });
  el.querySelector('#jobs')!.addEventListener('click', async (ev) => {
    const s = (ev.target as HTMLElement).dataset.stop;
    if (s) { const [p, id] = s.split('/'); await api(inst, `/${p}/api/stop/${id}`, { method: 'POST' }).catch((e) => alert(e.message)); await load(); }
  });
  sse(inst, '/api/events?interval=5s&streams=false', () => { void load(); }, signal);
}];

// ------------------------------------------------------------------------------------------ recordings
pages.recordings = ['Recordings', async (el, _a, signal) => {
  el.innerHTML = '<h1>Recordings</h1>';
  if (!enabled().has('record')) { el.insertAdjacentHTML('beforeend', `<p class="muted">The record plugin is not running${esc(plugins.find((p) => p.name === 'record')?.reason ? `: ${plugins.find((p) => p.name === 'record')!.reason}` : '')}.</p>`); return; }
  // A query key makes /record/api/list the recorded segments (without one it lists sessions).
  const list = await api<any[]>(inst, '/record/api/list?start=0');
  el.insertAdjacentHTML('beforeend', `<div class="grid2"><div class="scroll"><table><thead><tr><th>stream</th><th>type</th><th>start</th><th>duration</th><th></th></tr></thead><tbody>${list.map((e, i) => `<tr><td>${esc(e.streamPath)}</td><td>${esc(e.type)}</td>
    <td>${new Date(e.start).toLocaleString()}</td><td>${e.duration ? `${(e.duration / 1000).toFixed(1)} s` : e.open ? 'recording' : ''}</td><td>${e.open ? '' : `<button data-rec="${i}">Play</button>`}</td></tr>`).join('') || '<tr><td colspan="5" class="muted">no recordings</td></tr>'}</tbody></table></div>
    <div><video id="rv" controls aria-label="recording"></video></div></div>`);
  let h: any = null;
  signal.addEventListener('abort', () => h?.destroy?.());
  el.querySelector('tbody')!.addEventListener('click', async (ev) => {
    const i = (ev.target as HTMLElement).dataset.rec;
    if (i === undefined) return;
    const e = list[+i], v = el.querySelector('#rv') as HTMLVideoElement;
    h?.destroy?.(); h = null;
    const base = inst.url || location.origin;
    if (e.type === 'hls' || e.type === 'fmp4') {
      const url = `${base}/record/vod/${e.streamPath}.m3u8?start=${e.start}&end=${e.start + (e.duration ?? 0)}&type=${e.type}`;
      const s = document.createElement('script'); s.src = LIB + 'hls.js';
      if (!(window as any).Hls) await new Promise((r) => { s.onload = r; document.head.appendChild(s); });
      const H = (window as any).Hls; h = new H(); h.loadSource(url); h.attachMedia(v);
    } else v.src = `${base}/record/file/${e.streamPath}/${e.type}/${e.start}.${e.type === 'flv' ? 'flv' : 'mp4'}`;
    v.play().catch(() => {});
  });
}];

// ------------------------------------------------------------------------------------------ plugins
pages.plugins = ['Plugins', (el) => {
  el.innerHTML = `<h1>Plugins</h1><div class="scroll"><table><thead><tr><th>plugin</th><th>state</th><th>listening</th><th>config</th></tr></thead><tbody>${plugins.map((p) => `<tr><td><b>${esc(p.name)}</b><br><span class="muted">${esc(p.description ?? '')}</span></td>
    <td>${p.enabled ? '<span class="ok">running</span>' : `<span class="bad">off</span><br><span class="muted">${esc(p.reason ?? '')}</span>`}</td>
    <td>${(p.listen ?? []).map((l: any) => `${esc(l.proto)} ${esc(l.host)}:${l.port}`).join('<br>')}</td><td><button class="secondary" data-cfg="${esc(p.name)}">Show</button></td></tr>`).join('')}</tbody></table></div><pre id="cfg" class="panel" hidden></pre>`;
  el.querySelector('tbody')!.addEventListener('click', async (ev) => {
    const n = (ev.target as HTMLElement).dataset.cfg;
    if (!n) return;
    const pre = el.querySelector('#cfg') as HTMLPreElement;
    pre.hidden = false;
    pre.textContent = `${n}:\n` + JSON.stringify((await api(inst, `/api/config/get/${n}`)).config, null, 2);
  });
}];

// ------------------------------------------------------------------------------------------ config editor
pages.config = ['Config', async (el) => {
  const d = await api(inst, '/api/config/file');
  el.innerHTML = `<h1>Config${d.file ? ` · ${esc(d.file)}` : ''}</h1><p class="muted">Secret values show as *** and are kept when left so. Apply writes the file and reloads it without a restart.</p>
    <div class="toolbar"><button id="validate" class="secondary">Validate</button><button id="apply">Apply</button><span id="cstatus" role="status"></span></div>
    <div class="editor"><div class="gutter" id="gutter" aria-hidden="true"></div><textarea id="yaml" spellcheck="false" aria-label="config.yaml"></textarea></div><ul id="cerrors" class="bad"></ul>`;
  const ta = el.querySelector('#yaml') as HTMLTextAreaElement, gutter = el.querySelector('#gutter')!;
  let bad = new Set<number>();
  const fit = () => {
    const n = ta.value.split('\n').length;
    gutter.innerHTML = Array.from({ length: n }, (_, i) => bad.has(i + 1) ? `<span class="err" data-line="${i + 1}">${i + 1}</span>` : String(i + 1)).join('\n');
    ta.style.height = '0'; ta.style.height = `${ta.scrollHeight}px`;
  };
  ta.value = d.text || '# no config file: changes apply to the running server only\n';
  fit();
  ta.addEventListener('input', fit);
  const send = async (what: 'validate' | 'apply') => {
    const st = el.querySelector('#cstatus')!, list = el.querySelector('#cerrors')!;
    st.textContent = '…'; list.innerHTML = '';
    try {
      const r = await api(inst, `/api/config/${what}`, { body: ta.value, type: 'application/yaml' });
      bad = new Set();
      st.innerHTML = `<span class="ok">${what === 'apply' ? `applied${r.saved ? ' and saved' : ''}` : 'valid'}${r.changed?.length ? `: ${esc(r.changed.join(', '))}` : ''}</span>`;
    } catch (e) {
      const errs = ((e as ApiError).data?.errors ?? [{ message: (e as Error).message }]) as { line: number | null; message: string }[];
      bad = new Set(errs.map((x) => x.line).filter((x): x is number => !!x));
      st.innerHTML = '<span class="bad">not valid</span>';
      list.innerHTML = errs.map((x) => `<li data-line="${x.line ?? ''}">${x.line ? `line ${x.line}: ` : ''}${esc(x.message)}</li>`).join('');
    }
    fit();
  };
  el.querySelector('#validate')!.addEventListener('click', () => send('validate'));
  el.querySelector('#apply')!.addEventListener('click', () => send('apply'));
}];

// ------------------------------------------------------------------------------------------ logs
pages.logs = ['Logs', (el, _a, signal) => {
  el.innerHTML = `<h1>Logs</h1><form class="inline" id="lf"><label>Level <select name="level">${['trace', 'debug', 'info', 'warn', 'error'].map((l) => `<option${l === 'info' ? ' selected' : ''}>${l}</option>`).join('')}</select></label>
    <label>Stream <input name="stream" placeholder="live/cam1"></label><label>Text <input name="q"></label><button type="submit">Filter</button></form><div class="logs" id="logs" role="log" aria-live="off" tabindex="0"></div>`;
  const box = el.querySelector('#logs')!;
  let ctl: AbortController | null = null;
  const start = () => {
    ctl?.abort(); ctl = new AbortController();
    signal.addEventListener('abort', () => ctl?.abort());
    box.innerHTML = '';
    const fd = new FormData(el.querySelector('#lf') as HTMLFormElement);
    const qs = new URLSearchParams([...fd.entries()].filter(([, v]) => v) as [string, string][]);
    sse(inst, `/api/logs/tail?${qs}`, (_e, r) => {
      const stick = box.scrollTop + box.clientHeight >= box.scrollHeight - 20;
      const line = document.createElement('div');
      line.className = r.level;
      const f = Object.entries(r.fields ?? {}).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
      line.textContent = `${new Date(r.time).toLocaleTimeString()} ${r.level.toUpperCase().padEnd(5)} ${r.msg} ${f}`;
      box.appendChild(line);
      while (box.childElementCount > 1000) box.firstElementChild!.remove();
      if (stick) box.scrollTop = box.scrollHeight;
    }, ctl.signal);
  };
  el.querySelector('#lf')!.addEventListener('submit', (ev) => { ev.preventDefault(); start(); });
  start();
}];

// ------------------------------------------------------------------------------------------ video wall
/** A live thumbnail from the snap plugin (the cached keyframe as JPEG), refreshed every 10 s. */
function thumbnail(panel: HTMLElement, path: string, signal: AbortSignal, width = 480): void {
  const img = panel.querySelector('img') as HTMLImageElement;
  let last = '';
  const load = async () => {
    try {
      const u = await imageUrl(inst, `/snap/${encodeURI(path)}.jpg?w=${width}`, signal);
      if (last) URL.revokeObjectURL(last);
      last = u; img.src = u; panel.hidden = false;
      const when = panel.querySelector('.muted');
      if (when) when.textContent = `keyframe snapshot, ${new Date().toLocaleTimeString()}`;
    } catch { /* no keyframe yet, or snap unavailable: keep the last one */ }
  };
  void load();
  const t = setInterval(load, 10_000);
  signal.addEventListener('abort', () => { clearInterval(t); if (last) URL.revokeObjectURL(last); });
}

pages.wall = ['Video wall', async (el, arg, signal) => {
  const d = await api(inst, '/api/stream/list?pageSize=1000');
  const live = (d.list as any[]).filter((s) => s.publisher).map((s) => s.path as string);
  const chosen = arg ? arg.split(',').filter(Boolean).slice(0, 16) : live.slice(0, 16);
  const protos = protosFor(enabled());
  // The lightest protocol the browser plays: HTTP-FLV (one connection, no segments), then HLS.
  const proto: Proto | undefined = (['flv', 'wsflv', 'mp4', 'hls', 'llhls'] as Proto[]).find((p) => protos.includes(p));
  const cols = Math.ceil(Math.sqrt(Math.max(1, chosen.length)));
  el.innerHTML = `<h1>Video wall</h1><p class="muted">${chosen.length} of ${live.length} live streams${proto ? ` · ${PROTO_LABEL[proto]}` : ''}. Pick: <a href="#/wall">all (first 16)</a></p>
    <div class="wall" style="grid-template-columns:repeat(${Math.min(cols, 4)},minmax(0,1fr))">${chosen.map((p, i) => `<div class="tile"><video id="w${i}" muted playsinline aria-label="${esc(p)}" data-path="${esc(p)}"></video><span>${esc(p)}</span></div>`).join('')}</div>`;
  if (!proto) { el.insertAdjacentHTML('beforeend', '<p class="bad">no player protocol is enabled</p>'); return; }
  const players: Playing[] = [];
  signal.addEventListener('abort', () => players.forEach((p) => p.stop()));
  await Promise.all(chosen.map(async (p, i) => {
    try { const pl = await play(el.querySelector(`#w${i}`) as HTMLVideoElement, inst, proto, p, LIB); if (signal.aborted) pl.stop(); else players.push(pl); }
    catch (e) {
      // A stream the browser cannot play shows its snapshot instead, where the snap plugin runs.
      const tile = el.querySelector(`#w${i}`)!.parentElement!;
      tile.insertAdjacentHTML('beforeend', `<p class="bad">${esc((e as Error).message)}</p>`);
      if (enabled().has('snap')) {
        tile.insertAdjacentHTML('afterbegin', `<div hidden><img alt="snapshot of ${esc(p)}" style="max-width:100%"><span class="muted"></span></div>`);
        thumbnail(tile.firstElementChild as HTMLElement, p, signal, 320);
      }
    }
  }));
}];

// ------------------------------------------------------------------------------------------ GB28181 devices
/** datetime-local value ↔ unix seconds (the browser's time zone). */
const toUnix = (v: string) => Math.floor(new Date(v).getTime() / 1000);
const toLocal = (d: Date) => new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
const PTZ_PAD: [string, string][] = [['upleft', '↖'], ['up', '↑'], ['upright', '↗'], ['left', '←'], ['', ''], ['right', '→'], ['downleft', '↙'], ['down', '↓'], ['downright', '↘']];

pages.devices = ['Devices', async (el, _a, signal) => {
  const gb = (p: string, body?: unknown) => api(inst, `/gb28181/api/${p}`, body === undefined ? {} : { body });
  el.innerHTML = `<h1>GB28181 devices</h1><div class="grid2"><div id="gbdevs" aria-live="polite">loading…</div>
    <div><div class="panel" id="gbplayer" hidden></div><div class="panel" id="gbsel"><p class="muted">Play a channel, or choose one for PTZ and playback.</p></div></div></div>`;
  let sel: { d: string; c: string; name: string } | null = null;
  let playingPath = '';
  let panel: AbortController | null = null; // the player panel's own life (its readout timer, its player)
  let devs: any[] = [];
  const status = (m: string, bad = false) => { const p = el.querySelector('#gbmsg'); if (p) { p.textContent = m; p.className = bad ? 'bad' : 'muted'; } };
  const draw = () => {
    el.querySelector('#gbdevs')!.innerHTML = devs.map((d) => `<div class="panel" data-dev="${esc(d.id)}"><div class="devhead"><h2>${esc(d.name || d.id)}</h2>
      <span class="badge ${d.online ? 'ok' : 'bad'}" data-online="${d.online}">${d.online ? 'online' : `offline${d.offlineReason ? `: ${esc(d.offlineReason)}` : ''}`}</span>
      <span class="muted">${esc(d.id)} · ${esc(d.transport ?? '')} ${esc(d.remote ?? '')}${d.manufacturer ? ` · ${esc(d.manufacturer)} ${esc(d.model ?? '')}` : ''}</span>
      <button class="secondary" data-sync="${esc(d.id)}">Query catalog</button></div>
      <div class="scroll"><table><thead><tr><th>channel</th><th class="hide-narrow">id</th><th>status</th><th>actions</th></tr></thead><tbody>${(d.channels ?? []).map((c: any) => `<tr data-ch="${esc(c.deviceId)}"${sel?.d === d.id && sel?.c === c.deviceId ? ' class="sel"' : ''}>
        <td>${esc(c.name || c.deviceId)}</td><td class="muted hide-narrow">${esc(c.deviceId)}</td><td>${esc(c.status || '—')}</td>
        <td><button data-play="${esc(d.id)}/${esc(c.deviceId)}" aria-label="play ${esc(c.name || c.deviceId)}">Play</button> <button class="secondary" data-pick="${esc(d.id)}/${esc(c.deviceId)}">PTZ / playback</button></td></tr>`).join('')
        || '<tr><td colspan="4" class="muted">no channels (the device has not answered the Catalog query)</td></tr>'}</tbody></table></div></div>`).join('')
      || '<p class="muted">No device has registered. Point a camera at this server (see docs/plugins/gb28181.md).</p>';
  };
  const load = async () => {
    const list = await api<any[]>(inst, '/gb28181/api/devices');
    const full = await Promise.all(list.slice(0, 500).map((d) => api(inst, `/gb28181/api/devices/${encodeURIComponent(d.id)}`).catch(() => d)));
    if (signal.aborted) return;
    devs = full;
    draw();
  };
  const stopPlayer = () => { panel?.abort(); panel = null; const pl = el.querySelector('#gbplayer') as HTMLElement; pl.hidden = true; pl.innerHTML = ''; };
  const playPath = (path: string) => {
    const pl = el.querySelector('#gbplayer') as HTMLElement;
    pl.hidden = false;
    playingPath = path;
    panel?.abort();
    const ctl = panel = new AbortController();
    signal.addEventListener('abort', () => ctl.abort());
    playerPanel(pl, path, ctl.signal, undefined, true); // video only: cameras send G.711, which MSE cannot play
    pl.insertAdjacentHTML('afterbegin', `<h2 class="path">${esc(path)}</h2>`);
  };
  const pick = (d: string, c: string) => {
    const ch = devs.find((x) => x.id === d)?.channels?.find((x: any) => x.deviceId === c);
    sel = { d, c, name: ch?.name || c };
    draw();
    const now = new Date();
    el.querySelector('#gbsel')!.innerHTML = `<h2>${esc(sel.name)} <span class="muted">${esc(d)}/${esc(c)}</span></h2>
      <div class="toolbar"><button id="gbplay">Play</button><button class="danger" id="gbstop">Stop</button><span id="gbmsg" class="muted" role="status"></span></div>
      <h2>PTZ</h2><div class="toolbar"><div class="ptz" id="ptz" role="group" aria-label="PTZ: hold a button to move">${PTZ_PAD.map(([dir, label]) => dir ? `<button class="secondary" data-dir="${dir}" aria-label="${dir}">${label}</button>` : '<span></span>').join('')}
        <div class="z"><button class="secondary" data-dir="zoomin">Zoom in</button><button class="secondary" data-dir="zoomout">Zoom out</button></div></div>
        <label>Speed <input id="ptzspeed" type="range" min="1" max="255" value="128" aria-label="PTZ speed"></label></div>
      <form class="inline" id="preset"><label>Preset <input name="preset" type="number" min="1" max="255" value="1" required></label><button name="op" value="call">Call</button><button class="secondary" name="op" value="set">Set</button></form>
      <h2>Playback</h2><form class="inline" id="pb"><label>Start <input name="start" type="datetime-local" value="${toLocal(new Date(now.getTime() - 3600_000))}" required></label>
        <label>End <input name="end" type="datetime-local" value="${toLocal(now)}" required></label><button name="what" value="records" class="secondary">Find recordings</button><button name="what" value="play">Play back</button></form>
      <div id="pbctl" class="toolbar" hidden><button class="secondary" data-op="pause">Pause</button><button class="secondary" data-op="resume">Resume</button>
        <label>Speed <select id="pbspeed">${[0.25, 0.5, 1, 2, 4, 8].map((v) => `<option${v === 1 ? ' selected' : ''}>${v}</option>`).join('')}</select></label></div>
      <div class="scroll"><table id="recs" hidden><thead><tr><th>start</th><th>end</th><th>actions</th></tr></thead><tbody></tbody></table></div>`;
    const live = `gb28181/${d}/${c}`;
    const pbctl = el.querySelector('#pbctl') as HTMLElement;
    el.querySelector('#gbplay')!.addEventListener('click', () => { status(''); pbctl.hidden = true; playPath(live); });
    el.querySelector('#gbstop')!.addEventListener('click', async () => {
      const path = playingPath || live;
      stopPlayer();
      playingPath = '';
      pbctl.hidden = true;
      try { await gb(`bye/${d}/${c}`, { streamPath: path }); status(`stopped ${path}`); } catch (e) { status((e as Error).message, true); }
    });
    // PTZ: pressing a button moves, releasing (or leaving it, or losing the pointer) stops.
    let moving = '';
    const move = async (dir: string) => {
      moving = dir;
      const speed = Number((el.querySelector('#ptzspeed') as HTMLInputElement).value);
      try { await gb(`ptz/${d}/${c}`, { direction: dir, speed }); status(`${dir} at speed ${speed}`); } catch (e) { status((e as Error).message, true); }
    };
    const stop = async () => {
      if (!moving) return;
      moving = '';
      try { await gb(`ptz/${d}/${c}`, { direction: 'stop' }); status('stopped'); } catch (e) { status((e as Error).message, true); }
    };
    const pad = el.querySelector('#ptz') as HTMLElement;
    pad.addEventListener('pointerdown', (ev) => {
      const dir = (ev.target as HTMLElement).closest('button')?.dataset.dir;
      if (!dir) return;
      (ev.target as HTMLElement).setPointerCapture?.(ev.pointerId);
      void move(dir);
    });
    for (const t of ['pointerup', 'pointercancel', 'lostpointercapture']) pad.addEventListener(t, () => void stop());
    pad.addEventListener('keydown', (ev) => { const dir = (ev.target as HTMLElement).dataset?.dir; if (dir && (ev.key === ' ' || ev.key === 'Enter') && !ev.repeat) { ev.preventDefault(); void move(dir); } });
    pad.addEventListener('keyup', (ev) => { if (ev.key === ' ' || ev.key === 'Enter') void stop(); });
    pad.addEventListener('focusout', () => void stop());
    el.querySelector('#preset')!.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const op = ((ev as SubmitEvent).submitter as HTMLButtonElement | null)?.value ?? 'call';
      const preset = Number(new FormData(ev.target as HTMLFormElement).get('preset'));
      try { await gb(`preset/${d}/${c}`, { op, preset }); status(`preset ${preset}: ${op}`); } catch (e) { status((e as Error).message, true); }
    });
    const playback = async (start: number, end: number) => {
      status('inviting playback…');
      const r = await gb(`playback/${d}/${c}`, { start, end });
      status(`playing back ${new Date(start * 1000).toLocaleString()} – ${new Date(end * 1000).toLocaleString()}`);
      pbctl.hidden = false;
      playPath(r.streamPath);
    };
    el.querySelector('#pb')!.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const what = ((ev as SubmitEvent).submitter as HTMLButtonElement | null)?.value ?? 'play';
      const fd = new FormData(ev.target as HTMLFormElement);
      const start = toUnix(String(fd.get('start'))), end = toUnix(String(fd.get('end')));
      try {
        if (what === 'play') { await playback(start, end); return; }
        const recs = await api<any[]>(inst, `/gb28181/api/records/${d}/${c}?start=${start}&end=${end}`);
        const t = el.querySelector('#recs') as HTMLTableElement;
        t.hidden = false;
        t.tBodies[0]!.innerHTML = recs.map((r) => `<tr><td>${esc(r.startTime)}</td><td>${esc(r.endTime)}</td><td><button data-rs="${esc(r.startTime)}" data-re="${esc(r.endTime)}">Play back</button></td></tr>`).join('')
          || '<tr><td colspan="3" class="muted">no recordings in this range</td></tr>';
      } catch (e) { status((e as Error).message, true); }
    });
    el.querySelector('#recs')!.addEventListener('click', (ev) => {
      const b = (ev.target as HTMLElement).dataset;
      // Device times are local wall-clock times without a zone (GB/T 28181 A.2.1).
      if (b.rs && b.re) playback(toUnix(b.rs), toUnix(b.re)).catch((e) => status(e.message, true));
    });
    pbctl.addEventListener('click', (ev) => {
      const op = (ev.target as HTMLElement).dataset.op;
      if (op) gb(`playback/${op}`, { streamPath: playingPath }).then(() => status(op), (e) => status(e.message, true));
    });
    el.querySelector('#pbspeed')!.addEventListener('change', (ev) => {
      gb('playback/speed', { streamPath: playingPath, speed: Number((ev.target as HTMLSelectElement).value) }).then(() => status(`speed ${(ev.target as HTMLSelectElement).value}×`), (e) => status(e.message, true));
    });
  };
  el.querySelector('#gbdevs')!.addEventListener('click', async (ev) => {
    const t = (ev.target as HTMLElement).dataset;
    if (t.play || t.pick) {
      const [d, c] = (t.play ?? t.pick)!.split('/') as [string, string];
      pick(d, c);
      if (t.play) playPath(`gb28181/${d}/${c}`);
    }
    if (t.sync) { try { await gb(`devices/${t.sync}/sync`, {}); await load(); } catch (e) { alert((e as Error).message); } }
  });
  await load();
  sse(inst, '/api/events?interval=5s&streams=false', () => { void load().catch(() => {}); }, signal);
}];

// ------------------------------------------------------------------------------------------ ONVIF
pages.onvif = ['ONVIF', async (el, _a, signal) => {
  el.innerHTML = `<h1>ONVIF cameras</h1><div class="toolbar"><button id="disc">Discover now</button><span id="omsg" class="muted" role="status"></span></div>
    <h2>Discovered</h2><div class="scroll"><table><thead><tr><th>address</th><th>service URL</th><th>scopes</th><th>actions</th></tr></thead><tbody id="found"></tbody></table></div>
    <form class="inline panel" id="oadd"><label>Service URL <input name="xaddr" required size="40" placeholder="http://192.168.1.64/onvif/device_service"></label>
      <label>User <input name="username" autocomplete="off"></label><label>Password <input name="password" type="password" autocomplete="off"></label><button type="submit">Add device</button></form>
    <h2>Devices</h2><div class="scroll"><table><thead><tr><th>device</th><th>profiles</th><th>streams</th></tr></thead><tbody id="odevs"></tbody></table></div>`;
  const msg = (m: string, bad = false) => { const p = el.querySelector('#omsg')!; p.textContent = m; p.className = bad ? 'bad' : 'muted'; };
  const drawFound = (list: any[]) => {
    el.querySelector('#found')!.innerHTML = list.map((f) => `<tr><td>${esc(f.address ?? '')}</td><td>${(f.xaddrs ?? []).map((x: string) => esc(x)).join('<br>')}</td>
      <td class="muted">${esc((f.scopes ?? []).filter((s: string) => /name|hardware|location/.test(s)).map((s: string) => decodeURIComponent(s.replace(/^.*\//, ''))).join(', '))}</td>
      <td>${f.xaddrs?.[0] ? `<button class="secondary" data-use="${esc(f.xaddrs[0])}">Use</button>` : ''}</td></tr>`).join('') || '<tr><td colspan="4" class="muted">nothing found yet</td></tr>';
  };
  const loadDevices = async () => {
    const list = await api<any[]>(inst, '/onvif/api/devices');
    if (signal.aborted) return;
    el.querySelector('#odevs')!.innerHTML = list.map((d) => `<tr><td><b>${esc(d.id)}</b><br><span class="muted">${esc(d.xaddr)}</span>${d.error ? `<br><span class="bad">${esc(d.error)}</span>` : ''}</td>
      <td>${(d.profiles ?? []).map((p: any) => `${esc(p.name || p.profile)}${p.ptz ? ' <span class="badge">PTZ</span>' : ''} <button data-pull="${esc(d.id)}" data-profile="${esc(p.profile)}">Add as pull</button>`).join('<br>')}</td>
      <td>${(d.streams ?? []).map((s: string) => `<a href="#/stream/${esc(s)}">${esc(s)}</a>`).join('<br>')}</td></tr>`).join('') || '<tr><td colspan="3" class="muted">no devices: add one found above</td></tr>';
  };
  drawFound(await api<any[]>(inst, '/onvif/api/discovered'));
  await loadDevices();
  el.querySelector('#disc')!.addEventListener('click', async () => {
    msg('probing…');
    try { const r = await api<any[]>(inst, '/onvif/api/discover', { body: {} }); drawFound(await api<any[]>(inst, '/onvif/api/discovered')); msg(`${r.length} answered`); } catch (e) { msg((e as Error).message, true); }
  });
  el.querySelector('#found')!.addEventListener('click', (ev) => {
    const x = (ev.target as HTMLElement).dataset.use;
    if (x) { (el.querySelector('input[name=xaddr]') as HTMLInputElement).value = x; (el.querySelector('input[name=username]') as HTMLInputElement).focus(); }
  });
  el.querySelector('#oadd')!.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const fd = new FormData(ev.target as HTMLFormElement);
    try { await api(inst, '/onvif/api/devices', { body: Object.fromEntries(fd.entries()) }); msg('added'); await loadDevices(); } catch (e) { msg((e as Error).message, true); }
  });
  el.querySelector('#odevs')!.addEventListener('click', async (ev) => {
    const b = (ev.target as HTMLElement).dataset;
    if (!b.pull) return;
    try { const r = await api(inst, '/onvif/api/pull', { body: { id: b.pull, profile: b.profile } }); msg(`pulling into ${r.streamPath}`); await loadDevices(); } catch (e) { msg((e as Error).message, true); }
  });
}];

// ------------------------------------------------------------------------------------------ instances
pages.instances = ['Instances', async (el, _a, signal) => {
  el.innerHTML = `<h1>Instances</h1><p class="muted">Other m7s servers (origin, edges, workers): URL and an API token (a console session token of that server). Stored in this browser only.</p>
    <form class="inline panel" id="addi"><label>Name <input name="name" required></label><label>URL <input name="url" required type="url" placeholder="http://10.0.0.2:8080" size="30"></label>
    <label>Token <input name="token" type="password" autocomplete="off"></label><button type="submit">Add</button></form>
    <div class="scroll"><table><thead><tr><th>instance</th><th>state</th><th>streams</th><th>viewers</th><th>in</th><th>CPU</th><th></th></tr></thead><tbody id="insts"></tbody></table></div>`;
  const draw = () => {
    const all = [localInstance(), ...savedInstances()];
    const body = el.querySelector("#insts") as HTMLElement;
    body.innerHTML = all.map((x, i) => `<tr data-inst="${i}"><td><b>${esc(x.name)}</b><br><span class="muted">${esc(x.url || location.origin)}</span></td><td class="st">…</td><td class="n"></td><td class="v"></td><td class="b"></td><td class="c"></td>
      <td><button data-open="${i}">Open</button>${i ? ` <button class="secondary" data-del="${i}">Remove</button>` : ''}</td></tr>`).join('');
    // Each asked on its own with a short timeout: an unreachable one never holds up the others.
    all.forEach(async (x, i) => {
      const row = body.querySelector(`[data-inst="${i}"]`)!;
      try {
        const s = await api(x, '/api/summary', { timeoutMs: 3000 });
        if (signal.aborted) return;
        row.querySelector('.st')!.innerHTML = '<span class="ok">up</span>';
        row.querySelector('.n')!.textContent = String(s.streamCount); row.querySelector('.v')!.textContent = String(s.subscribeCount);
        row.querySelector('.b')!.textContent = fmtBps(s.bpsIn); row.querySelector('.c')!.textContent = `${s.cpuUsage} %`;
        row.setAttribute('data-streams', (s.streams as any[]).map((z) => z.path).join(','));
      } catch (e) {
        row.querySelector('.st')!.innerHTML = `<span class="bad">unreachable</span><br><span class="muted">${esc((e as Error).name === 'TimeoutError' ? 'timed out' : (e as Error).message)}</span>`;
      }
    });
    body.onclick = (ev: MouseEvent) => {
      const t = ev.target as HTMLElement;
      if (t.dataset.open) { inst = all[+t.dataset.open]; plugins = []; location.hash = '#/streams'; }
      if (t.dataset.del) { const l = savedInstances(); l.splice(+t.dataset.del - 1, 1); saveInstances(l); draw(); }
    };
  };
  el.querySelector('#addi')!.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const fd = new FormData(ev.target as HTMLFormElement);
    const l = savedInstances();
    l.push({ name: String(fd.get('name')), url: String(fd.get('url')).replace(/\/+$/, ''), token: String(fd.get('token') || '') || undefined });
    saveInstances(l);
    (ev.target as HTMLFormElement).reset();
    draw();
  });
  draw();
}];

// ------------------------------------------------------------------------------------------ start
void INSTANCES_KEY;
window.addEventListener('hashchange', () => void render());
(async () => {
  const s = await sessionState().catch(() => ({ loginRequired: false, user: null }));
  loginRequired = s.loginRequired;
  if (s.loginRequired && !s.user) {
    const had = localStorage.getItem(TOKEN_KEY);
    localStorage.removeItem(TOKEN_KEY);
    inst = localInstance();
    loginPage(had ? 'Session expired or not valid: please log in again.' : '');
  }
  else void render();
})();
