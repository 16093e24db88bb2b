// Plays one m7s stream in the page's <video> with the player a web page would use, and keeps a record
// the test reads with page.evaluate(() => window.m7s.report()):
//   hls, llhls  hls.js        /hls/{stream}.m3u8, /llhls/{stream}/index.m3u8 (lowLatencyMode)
//   flv, wsflv  mpegts.js     http://…/flv/{stream}.flv, ws://…/flv/{stream}.flv
//   mp4         plain MSE     /mp4/{stream}.mp4, codecs from /api/stream/info/{stream}
// and the same URLs in a second player implementation, to catch what one player forgives:
//   shaka-hls, shaka-hlsfmp4, shaka-llhls   shaka-player  (/hls/….m3u8, ….m3u8?fmp4, /llhls/…)
//   flvjs                                   flv.js        (HTTP-FLV)
//   whep        the browser's RTCPeerConnection   POST /webrtc/play/{stream} (WHEP, video only)
// Expects the globals of the players used (Hls, mpegts, shaka, flvjs: their dist files) on the page.
'use strict';

(() => {
  const video = document.getElementById('v');
  const status = document.getElementById('status');

  const state = {
    mode: '',
    url: '',
    mime: '',
    error: null,
    startedAt: performance.now(),
    firstPlayingAt: 0,      // performance.now() of the first 'playing' event
    firstTime: 0,           // video.currentTime at that moment
    waitingSince: 0,        // an open 'waiting' (stall) after playback started, else 0
    stalls: [],             // [{ at, ms }] closed 'waiting' stalls after playback started
    frozenMs: 0,            // longest run with currentTime not moving while playing (sampled)
    events: [],             // the last media element events, for failure messages
  };
  let hls = null;
  let lastTime = -1, lastMove = 0;

  const log = (what) => {
    state.events.push(`${Math.round(performance.now() - state.startedAt)}ms ${what}`);
    if (state.events.length > 60) state.events.shift();
  };
  const fail = (what) => { if (!state.error) state.error = String(what); log(`error: ${what}`); };

  for (const ev of ['loadedmetadata', 'canplay', 'playing', 'waiting', 'stalled', 'pause', 'ended', 'error']) {
    video.addEventListener(ev, () => {
      log(ev);
      const now = performance.now();
      if (ev === 'playing') {
        if (!state.firstPlayingAt) { state.firstPlayingAt = now; state.firstTime = video.currentTime; }
        if (state.waitingSince) { state.stalls.push({ at: Math.round(state.waitingSince - state.firstPlayingAt), ms: Math.round(now - state.waitingSince) }); state.waitingSince = 0; }
      } else if (ev === 'waiting' && state.firstPlayingAt && !state.waitingSince) {
        state.waitingSince = now;
      } else if (ev === 'error') {
        fail(`media element error ${video.error?.code}: ${video.error?.message}`);
      }
    });
  }

  // A stall the events may not tell: currentTime frozen while the element thinks it plays.
  setInterval(() => {
    const now = performance.now();
    if (video.currentTime !== lastTime) { lastTime = video.currentTime; lastMove = now; }
    else if (state.firstPlayingAt && !video.paused) state.frozenMs = Math.max(state.frozenMs, now - lastMove);
    const b = video.buffered;
    status.textContent = `${state.mode} ${state.url}\nt=${video.currentTime.toFixed(2)} ` +
      `buffered=${b.length ? `${b.start(0).toFixed(2)}-${b.end(b.length - 1).toFixed(2)}` : '-'} ` +
      `readyState=${video.readyState} stalls=${state.stalls.length}` +
      (hls?.playingDate ? ` latency=${Date.now() - hls.playingDate.getTime()}ms` : '') +
      `\n${new Date().toISOString()}`;
  }, 100);

  const play = () => video.play().catch((e) => log(`play() rejected: ${e.message}`));

  function playHls(url, lowLatency) {
    if (!window.Hls?.isSupported()) throw new Error('hls.js: MSE not supported here');
    hls = new Hls({ lowLatencyMode: lowLatency, enableWorker: true });
    hls.on(Hls.Events.ERROR, (_e, d) => {
      log(`hls.js ${d.fatal ? 'fatal ' : ''}${d.type}/${d.details}`);
      if (d.fatal) fail(`hls.js fatal ${d.type}/${d.details}`);
    });
    hls.on(Hls.Events.MANIFEST_PARSED, play);
    hls.loadSource(url);
    hls.attachMedia(video);
  }

  function playFlv(url, config) {
    if (!window.mpegts?.isSupported()) throw new Error('mpegts.js: MSE not supported here');
    // The default config is the browser test's (low latency); bench/latency.mjs passes its own.
    const player = mpegts.createPlayer({ type: 'flv', isLive: true, url }, config ?? { enableStashBuffer: false, liveBufferLatencyChasing: true });
    player.on(mpegts.Events.ERROR, (type, detail, info) => fail(`mpegts.js ${type}/${detail} ${info?.msg ?? ''}`));
    player.attachMediaElement(video);
    player.load();
    play();
  }

  async function playShaka(url, lowLatency) {
    if (!window.shaka) throw new Error('shaka-player is not on the page');
    shaka.polyfill.installAll();
    if (!shaka.Player.isBrowserSupported()) throw new Error('shaka-player: browser not supported');
    const player = new shaka.Player();
    window.m7s.shaka = player;
    await player.attach(video);
    if (lowLatency) player.configure({ streaming: { lowLatencyMode: true } });
    // Severity 2 is CRITICAL (playback stopped); 1 is RECOVERABLE (logged only).
    player.addEventListener('error', (ev) => {
      const e = ev.detail;
      log(`shaka error ${e?.code} severity ${e?.severity}`);
      if (e?.severity === 2) fail(`shaka-player critical error ${e.code} (category ${e.category}) ${JSON.stringify(e.data ?? []).slice(0, 200)}`);
    });
    await player.load(url);
    play();
  }

  function playFlvjs(url) {
    if (!window.flvjs?.isSupported()) throw new Error('flv.js: MSE not supported here');
    const player = flvjs.createPlayer({ type: 'flv', isLive: true, url }, { enableStashBuffer: false });
    player.on(flvjs.Events.ERROR, (type, detail, info) => fail(`flv.js ${type}/${detail} ${info?.msg ?? ''}`));
    player.attachMediaElement(video);
    player.load();
    play();
  }

  async function playMp4(base, stream, url) {
    // The MIME type from the stream's own codec strings (RFC 6381), as a real page would do.
    const info = await (await fetch(`${base}/api/stream/info/${stream}`)).json();
    const codecs = (info.data?.tracks ?? []).map((t) => t.codecString).filter(Boolean);
    if (!codecs.length) throw new Error(`no codec strings in /api/stream/info: ${JSON.stringify(info).slice(0, 300)}`);
    state.mime = `video/mp4; codecs="${codecs.join(',')}"`;
    if (!MediaSource.isTypeSupported(state.mime)) throw new Error(`MSE does not support ${state.mime}`);
    const ms = new MediaSource();
    video.src = URL.createObjectURL(ms);
    await new Promise((r) => ms.addEventListener('sourceopen', r, { once: true }));
    const sb = ms.addSourceBuffer(state.mime);
    const queue = [];
    const feed = () => {
      if (sb.updating || !queue.length) return;
      // Keep the last 20 s only; a live page runs for hours.
      if (video.currentTime > 30 && sb.buffered.length && sb.buffered.start(0) < video.currentTime - 20) {
        sb.remove(0, video.currentTime - 20);
        return;
      }
      sb.appendBuffer(queue.shift());
    };
    sb.addEventListener('updateend', () => {
      // Start at the first buffered frame (timestamps start near, not at, 0).
      if (sb.buffered.length && video.currentTime < sb.buffered.start(0)) video.currentTime = sb.buffered.start(0);
      if (video.paused && video.readyState >= 2 && !state.firstPlayingAt) play();
      feed();
    });
    sb.addEventListener('error', () => fail('SourceBuffer error'));
    const res = await fetch(url);
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) { log('fMP4 body ended'); break; }
      queue.push(value);
      feed();
    }
  }

  /**
   * Start playing; returns at once (progress is read from report()). Optional: `query` (e.g.
   * 'catchup=0') is appended to the URL; `flv` replaces the mpegts.js config of flv/wsflv.
   */
  async function playWhep(url) {
    const pc = new RTCPeerConnection({ iceServers: [] });
    pc.addTransceiver('video', { direction: 'recvonly' });
    const ms = new MediaStream();
    pc.ontrack = (e) => { ms.addTrack(e.track); video.srcObject = ms; video.play().catch(() => {}); };
    await pc.setLocalDescription(await pc.createOffer());
    if (pc.iceGatheringState !== 'complete') {
      await new Promise((r) => { const t = setTimeout(r, 3000); pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') { clearTimeout(t); r(); } }); });
    }
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: pc.localDescription.sdp });
    const text = await res.text();
    if (res.status !== 201) throw new Error(`${res.status} ${text}`);
    await pc.setRemoteDescription({ type: 'answer', sdp: text });
    state.mime = 'webrtc';
    window.m7sPc = pc;
  }

  window.m7sPlay = ({ mode, base, stream, query, flv }) => {
    state.mode = mode;
    const ws = base.replace(/^http/, 'ws');
    const urls = {
      hls: `${base}/hls/${stream}.m3u8`,
      llhls: `${base}/llhls/${stream}/index.m3u8`,
      flv: `${base}/flv/${stream}.flv`,
      wsflv: `${ws}/flv/${stream}.flv`,
      mp4: `${base}/mp4/${stream}.mp4`,
      'shaka-hls': `${base}/hls/${stream}.m3u8`,
      'shaka-hlsfmp4': `${base}/hls/${stream}.m3u8?fmp4`,
      'shaka-llhls': `${base}/llhls/${stream}/index.m3u8`,
      flvjs: `${base}/flv/${stream}.flv`,
      whep: `${base}/webrtc/play/${stream}`,
    };
    if (!urls[mode]) throw new Error(`unknown mode ${mode}`);
    const url = query ? `${urls[mode]}${urls[mode].includes('?') ? '&' : '?'}${query}` : urls[mode];
    state.url = url;
    try {
      if (mode === 'hls' || mode === 'llhls') playHls(url, mode === 'llhls');
      else if (mode === 'flv' || mode === 'wsflv') playFlv(url, flv);
      else if (mode.startsWith('shaka-')) playShaka(url, mode === 'shaka-llhls').catch((e) => fail(`shaka-player: ${e?.code ?? ''} ${e?.message ?? e}`));
      else if (mode === 'flvjs') playFlvjs(url);
      else if (mode === 'whep') playWhep(url).catch((e) => fail(`whep: ${e?.message ?? e}`));
      else playMp4(base, stream, url).catch(fail);
    } catch (e) { fail(e.message ?? e); }
  };

  window.m7s = {
    state,
    /** A snapshot for the test: playback position, stalls, errors. */
    report() {
      const now = performance.now();
      return {
        mode: state.mode, url: state.url, mime: state.mime, error: state.error,
        currentTime: video.currentTime, readyState: video.readyState, paused: video.paused,
        played: state.firstPlayingAt ? video.currentTime - state.firstTime : 0,
        playingFor: state.firstPlayingAt ? (now - state.firstPlayingAt) / 1000 : 0,
        openStallMs: state.waitingSince ? now - state.waitingSince : 0,
        stalls: state.stalls, frozenMs: Math.round(state.frozenMs),
        width: video.videoWidth, height: video.videoHeight,
        // Chrome's decoder counters: frames it dropped (late, or out of order after a bad timestamp).
        dropped: video.getVideoPlaybackQuality?.().droppedVideoFrames ?? null,
        decoded: video.getVideoPlaybackQuality?.().totalVideoFrames ?? null,
        events: state.events.slice(-20),
      };
    },
    /** hls.js only: wall clock minus EXT-X-PROGRAM-DATE-TIME of the frame on screen, in ms (or null). */
    latency() {
      const d = hls?.playingDate;
      return d ? Date.now() - d.getTime() : null;
    },
  };
})();
