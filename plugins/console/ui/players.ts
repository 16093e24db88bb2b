/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/// <reference lib="deno.ns" />
// Plays a live m7s stream in a <video> with the player each protocol needs: mpegts.js (HTTP-FLV,
// WS-FLV), hls.js (HLS, LL-HLS), plain Media Source Extensions (live fMP4) and WHEP (WebRTC). The player
// libraries are served by the server itself (/admin/lib/, /preview/lib/), loaded on first use.
import { headers, type Instance } from './api.ts';

export type Proto = 'flv' | 'wsflv' | 'hls' | 'llhls' | 'mp4' | 'whep';
export const PROTO_LABEL: Record<Proto, string> = { flv: 'HTTP-FLV', wsflv: 'WS-FLV', hls: 'HLS', llhls: 'LL-HLS', mp4: 'fMP4 (MSE)', whep: 'WebRTC (WHEP)' };
/** Which plugin serves each protocol. */
export const PROTO_PLUGIN: Record<Proto, string> = { flv: 'flv', wsflv: 'flv', hls: 'hls', llhls: 'llhls', mp4: 'mp4', whep: 'webrtc' };

export function protosFor(enabledPlugins: Set<string>): Proto[] {
  return (Object.keys(PROTO_PLUGIN) as Proto[]).filter((p) => enabledPlugins.has(PROTO_PLUGIN[p]));
}

const loaded = new Map<string, Promise<void>>();
function loadScript(src: string): Promise<void> {
  let p = loaded.get(src);
  if (!p) {
    p = new Promise((res, rej) => {
      const s = document.createElement('script');
      s.src = src; s.onload = () => res(); s.onerror = () => rej(new Error(`cannot load ${src}`));
      document.head.appendChild(s);
    });
    loaded.set(src, p);
  }
  return p;
}

export function urlOf(inst: Instance, proto: Proto, stream: string): string {
  const base = inst.url || location.origin;
  const q = ''; // players use stream keys (publish/subscribe auth), never the console's API token
  switch (proto) {
    case 'flv': return `${base}/flv/${stream}.flv${q}`;
    case 'wsflv': return `${base.replace(/^http/, 'ws')}/flv/${stream}.flv${q}`;
    case 'hls': return `${base}/hls/${stream}.m3u8${q}`;
    case 'llhls': return `${base}/llhls/${stream}/index.m3u8${q}`;
    case 'mp4': return `${base}/mp4/${stream}.mp4${q}`;
    case 'whep': return `${base}/webrtc/play/${stream}${q}`;
  }
}

export interface Playing { stop(): void; latency(): number | null; error(): string | null }

/** Start playing; `libBase` is where hls.js and mpegts.js are served (e.g. /admin/lib/). `videoOnly`:
 *  ignore the audio (HTTP-FLV, WS-FLV), for sources whose audio MSE cannot play anyway (GB28181 cameras
 *  send G.711, which mpegts.js refuses with an error per audio tag). */
export async function play(video: HTMLVideoElement, inst: Instance, proto: Proto, stream: string, libBase: string, videoOnly = false): Promise<Playing> {
  const url = urlOf(inst, proto, stream);
  let err: string | null = null;
  const fail = (e: unknown) => { err ??= String((e as Error)?.message ?? e); };
  video.muted = true; video.autoplay = true; video.playsInline = true;
  const start = () => video.play().catch(() => {});
  const bufLatency = () => { const b = video.buffered; return b.length ? Math.max(0, b.end(b.length - 1) - video.currentTime) : null; };
  if (proto === 'flv' || proto === 'wsflv') {
    await loadScript(libBase + 'mpegts.js');
    const m = (window as any).mpegts;
    if (!m?.isSupported()) throw new Error('this browser cannot play FLV (no MSE)');
    const p = m.createPlayer({ type: 'flv', isLive: true, url, ...(videoOnly ? { hasAudio: false } : {}) }, { enableStashBuffer: false, liveBufferLatencyChasing: true, lazyLoad: false });
    p.on(m.Events.ERROR, (t: string, d: string, i: any) => fail(`${t}/${d} ${i?.msg ?? ''}`));
    p.attachMediaElement(video); p.load(); start();
    return { stop: () => { try { p.destroy(); } catch { /* gone */ } }, latency: bufLatency, error: () => err };
  }
  if (proto === 'hls' || proto === 'llhls') {
    await loadScript(libBase + 'hls.js');
    const H = (window as any).Hls;
    if (!H?.isSupported()) {
      video.src = url; start();
      return { stop: () => { video.removeAttribute('src'); video.load(); }, latency: bufLatency, error: () => err };
    }
    const h = new H({ lowLatencyMode: proto === 'llhls', enableWorker: true });
    h.on(H.Events.ERROR, (_e: unknown, d: any) => { if (d.fatal) fail(`hls.js ${d.type}/${d.details}`); });
    h.on(H.Events.MANIFEST_PARSED, start);
    h.loadSource(url); h.attachMedia(video);
    return { stop: () => h.destroy(), latency: () => (typeof h.latency === 'number' && h.latency > 0 ? h.latency : bufLatency()), error: () => err };
  }
  if (proto === 'mp4') {
    const ctl = new AbortController();
    const info = await (await fetch(`${inst.url}/api/stream/info/${stream}`, { headers: headers(inst), signal: ctl.signal })).json();
    const codecs = (info.data?.tracks ?? []).map((t: any) => t.codecString).filter(Boolean);
    const mime = `video/mp4; codecs="${codecs.join(',')}"`;
    if (!codecs.length || !MediaSource.isTypeSupported(mime)) throw new Error(`MSE cannot play ${mime}`);
    const ms = new MediaSource();
    video.src = URL.createObjectURL(ms);
    await new Promise((r) => ms.addEventListener('sourceopen', r, { once: true }));
    const sb = ms.addSourceBuffer(mime);
    const queue: Uint8Array[] = [];
    const feed = () => {
      if (sb.updating || !queue.length) return;
      if (video.currentTime > 30 && sb.buffered.length && sb.buffered.start(0) < video.currentTime - 20) { sb.remove(0, video.currentTime - 20); return; }
      sb.appendBuffer(queue.shift()! as BufferSource);
    };
    sb.addEventListener('updateend', () => {
      if (sb.buffered.length && video.currentTime < sb.buffered.start(0)) video.currentTime = sb.buffered.start(0);
      // Live: stay near the edge.
      if (sb.buffered.length && sb.buffered.end(sb.buffered.length - 1) - video.currentTime > 3) video.currentTime = sb.buffered.end(sb.buffered.length - 1) - 0.5;
      if (video.paused && video.readyState >= 2) start();
      feed();
    });
    (async () => {
      const r = await fetch(url, { signal: ctl.signal });
      if (!r.ok || !r.body) throw new Error(`${url}: HTTP ${r.status}`);
      const reader = r.body.getReader();
      for (;;) { const { done, value } = await reader.read(); if (done) break; queue.push(value); feed(); }
    })().catch((e) => { if (!ctl.signal.aborted) fail(e); });
    return { stop: () => { ctl.abort(); video.removeAttribute('src'); video.load(); }, latency: bufLatency, error: () => err };
  }
  // WHEP: an offer with two recvonly transceivers, POSTed as application/sdp; the answer in the body.
  const pc = new RTCPeerConnection();
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  const ms = new MediaStream();
  pc.ontrack = (e) => { ms.addTrack(e.track); video.srcObject = ms; start(); };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise<void>((r) => { if (pc.iceGatheringState === 'complete') r(); else { pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r(); setTimeout(r, 2000); } });
  const r = await fetch(url, { method: 'POST', headers: headers(inst, { 'content-type': 'application/sdp' }), body: pc.localDescription!.sdp });
  if (!r.ok) { pc.close(); throw new Error(`WHEP: HTTP ${r.status} ${await r.text()}`); }
  const resource = r.headers.get('location');
  await pc.setRemoteDescription({ type: 'answer', sdp: await r.text() });
  let rtt: number | null = null;
  const timer = setInterval(async () => {
    const st = await pc.getStats();
    st.forEach((s: any) => { if (s.type === 'candidate-pair' && s.nominated && s.currentRoundTripTime !== undefined) rtt = s.currentRoundTripTime; });
  }, 1000);
  return {
    stop: () => { clearInterval(timer); pc.close(); if (resource) void fetch(new URL(resource, url), { method: 'DELETE', headers: headers(inst) }).catch(() => {}); },
    latency: () => (rtt !== null ? rtt / 2 : null), error: () => err,
  };
}
