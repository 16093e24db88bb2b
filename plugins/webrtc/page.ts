// The test pages: /webrtc/test/publish (camera or screen → WHIP) and /webrtc/test/play (WHEP with live
// getStats numbers). Plain HTML + browser JS, no build step. The tests drive the same functions
// (window.m7sWhip / window.m7sWhep) the pages' buttons call.

const SCRIPT = String.raw`
async function waitGathered(pc) {
  if (pc.iceGatheringState === 'complete') return;
  await new Promise((r) => {
    const t = setTimeout(r, 3000);
    pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') { clearTimeout(t); r(); } });
  });
}
async function exchange(url, pc, token) {
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  await waitGathered(pc);
  const headers = { 'content-type': 'application/sdp' };
  if (token) headers.authorization = 'Bearer ' + token;
  const res = await fetch(url, { method: 'POST', headers, body: pc.localDescription.sdp });
  const text = await res.text();
  if (res.status !== 201) throw new Error(res.status + ' ' + text);
  await pc.setRemoteDescription({ type: 'answer', sdp: text });
  return { location: res.headers.get('location'), answeredAt: performance.now() };
}
window.m7sWhip = async function (o) {
  const stream = o.screen ? await navigator.mediaDevices.getDisplayMedia({ video: true, audio: true })
    : await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: true });
  const pc = new RTCPeerConnection({ iceServers: [] });
  for (const t of stream.getTracks()) {
    const tr = pc.addTransceiver(t, { direction: 'sendonly', streams: [stream] });
    // o.codec ('VP8', 'VP9', 'AV1', 'H264'…; or ?codec= on the page URL): offer only that video codec.
    const want = o.codec || new URLSearchParams(location.search).get('codec');
    if (want && t.kind === 'video' && tr.setCodecPreferences) {
      const cs = RTCRtpSender.getCapabilities('video').codecs.filter((c) => c.mimeType.toLowerCase() === 'video/' + want.toLowerCase());
      if (!cs.length) throw new Error('this browser cannot send ' + want);
      tr.setCodecPreferences(cs);
    }
  }
  const r = await exchange(o.base + '/webrtc/push/' + o.stream, pc, o.token);
  window.m7sPub = { pc, stream, location: r.location };
  const v = document.querySelector('video'); if (v) { v.muted = true; v.srcObject = stream; }
  return r.location;
};
window.m7sWhep = async function (o) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  const ms = new MediaStream();
  const v = document.querySelector('video');
  let firstFrameAt = 0;
  pc.ontrack = (e) => { ms.addTrack(e.track); v.srcObject = ms; };
  if (v.requestVideoFrameCallback) v.requestVideoFrameCallback(() => { firstFrameAt = performance.now(); });
  v.muted = true; v.autoplay = true; v.playsInline = true;
  const r = await exchange(o.base + '/webrtc/play/' + o.stream, pc, o.token);
  v.play().catch(() => {});
  window.m7sSub = { pc, location: r.location, answeredAt: r.answeredAt, firstFrame: () => firstFrameAt };
  return r.location;
};
window.m7sStats = async function () {
  const s = window.m7sSub; const v = document.querySelector('video');
  const out = { currentTime: v.currentTime, width: v.videoWidth, height: v.videoHeight, video: null, audio: null,
    firstFrameMs: s && s.firstFrame() ? s.firstFrame() - s.answeredAt : null, state: s ? s.pc.connectionState : null };
  if (!s) return out;
  const stats = await s.pc.getStats();
  stats.forEach((r) => {
    if (r.type === 'inbound-rtp') out[r.kind] = { packets: r.packetsReceived, lost: r.packetsLost, nack: r.nackCount, pli: r.pliCount,
      frames: r.framesDecoded, audioLevel: r.audioLevel, bytes: r.bytesReceived, codec: r.codecId && stats.get(r.codecId) ? stats.get(r.codecId).mimeType : null };
  });
  return out;
};
window.m7sStop = async function (which) {
  const s = which === 'pub' ? window.m7sPub : window.m7sSub;
  if (!s) return;
  await fetch(s.location, { method: 'DELETE' });
  s.pc.close();
};
`;

export function testPage(kind: 'publish' | 'play'): string {
  const ui = kind === 'publish'
    ? `<button id=go>Publish camera</button> <button id=scr>Publish screen</button> <button id=end>Stop</button>`
    : `<button id=go>Play</button> <button id=end>Stop</button> <pre id=stats></pre>`;
  const wire = kind === 'publish'
    ? `go.onclick = () => m7sWhip({ base: '', stream: sp.value, token: tk.value }).then((l) => msg.textContent = 'publishing: ' + l, (e) => msg.textContent = String(e));
       scr.onclick = () => m7sWhip({ base: '', stream: sp.value, token: tk.value, screen: true }).then((l) => msg.textContent = 'publishing: ' + l, (e) => msg.textContent = String(e));
       end.onclick = () => m7sStop('pub');`
    : `go.onclick = () => m7sWhep({ base: '', stream: sp.value, token: tk.value }).then((l) => msg.textContent = 'playing: ' + l, (e) => msg.textContent = String(e));
       end.onclick = () => m7sStop('sub');
       setInterval(async () => { stats.textContent = JSON.stringify(await m7sStats(), null, 1); }, 1000);`;
  return `<!doctype html><html><head><meta charset=utf-8><title>m7s WebRTC ${kind}</title>
<style>body{font:14px sans-serif;margin:1em}video{width:640px;max-width:100%;background:#000;display:block;margin:.5em 0}</style></head>
<body><h1>WebRTC ${kind === 'publish' ? 'publish (WHIP)' : 'play (WHEP)'}</h1>
<label>Stream path <input id=sp value="live/test"></label> <label>Bearer token <input id=tk></label><br>${ui}
<div id=msg></div><video controls muted autoplay playsinline></video>
<script>${SCRIPT}</script><script>${wire}</script></body></html>`;
}
