/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/// <reference lib="deno.ns" />
// The preview page (/preview/): the live streams of this server, each playable in every protocol the
// server has, with a latency readout. /preview/?stream=live/cam1&p=hls opens one directly.
import css from '../../console/ui/style.css';
import { api, esc, localInstance } from '../../console/ui/api.ts';
import { play, type Playing, PROTO_LABEL, protosFor, type Proto } from '../../console/ui/players.ts';

const style = document.createElement('style');
style.textContent = css;
document.head.appendChild(style);
const inst = localInstance();
const app = document.getElementById('app')!;

(async () => {
  const qs = new URLSearchParams(location.search);
  const [plugins, list] = await Promise.all([api(inst, '/api/plugins'), api(inst, '/api/stream/list?pageSize=1000')]);
  const protos = protosFor(new Set((plugins as any[]).filter((p) => p.enabled).map((p) => p.name)));
  const streams = (list.list as any[]).filter((s) => s.publisher).map((s) => s.path as string);
  const stream = qs.get('stream') ?? streams[0] ?? '';
  const proto = (qs.get('p') as Proto) ?? protos[0];
  app.innerHTML = `<main><h1>m7s preview</h1><div class="toolbar">
    <label>Stream <select id="s">${streams.map((p) => `<option${p === stream ? ' selected' : ''}>${esc(p)}</option>`).join('') || '<option value="">no live streams</option>'}</select></label>
    <label>Protocol <select id="p">${protos.map((p) => `<option value="${p}"${p === proto ? ' selected' : ''}>${PROTO_LABEL[p]}</option>`).join('')}</select></label>
    <span id="lat" class="muted"></span> <a href="/admin/">console</a></div>
    <video id="video" controls muted playsinline aria-label="preview"></video><p id="err" class="bad" role="alert"></p></main>`;
  const video = document.getElementById('video') as HTMLVideoElement;
  const s = document.getElementById('s') as HTMLSelectElement, p = document.getElementById('p') as HTMLSelectElement;
  let cur: Playing | null = null;
  const go = async () => {
    cur?.stop(); cur = null;
    document.getElementById('err')!.textContent = '';
    if (!s.value || !p.value) return;
    history.replaceState(null, '', `?stream=${encodeURIComponent(s.value)}&p=${p.value}`);
    try { cur = await play(video, inst, p.value as Proto, s.value, '/preview/lib/'); } catch (e) { document.getElementById('err')!.textContent = (e as Error).message; }
  };
  s.addEventListener('change', go); p.addEventListener('change', go);
  setInterval(() => {
    const l = cur?.latency();
    document.getElementById('lat')!.textContent = `t=${video.currentTime.toFixed(1)} s · latency ${l == null ? '—' : `${l.toFixed(2)} s`}`;
    const e = cur?.error(); if (e) document.getElementById('err')!.textContent = e;
  }, 500);
  void go();
})().catch((e) => { app.innerHTML = `<main><p class="bad" role="alert">${esc(e.message)}</p></main>`; });
