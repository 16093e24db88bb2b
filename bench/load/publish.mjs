#!/usr/bin/env node
// The real-time RTMP publisher for the bench.
//
//   node bench/load/publish.mjs --url rtmp://127.0.0.1:1935/live/bench [--max-seconds 600]
//                               [--video-kbps 2000] [--audio-kbps 128]
//
// Publishes @setDataFrame/onMetaData, the AVC and AAC sequence headers, then in real time 30 video
// frames/s (SEI clock + a fake IDR or non-IDR slice; IDR every 2 s, 5x a P frame) and AAC frames of
// 1024 samples at 44.1 kHz. Frames are scheduled against the wall clock (no drift); each SEI is
// stamped just before its frame is written. Prints {"event":"publishing"} once the server accepted
// the stream, and a summary line on exit (SIGTERM/SIGINT or --max-seconds).

import { parseArgs } from 'node:util';
import { encodeAmf0 } from './amf0.mjs';
import { aacSequenceHeader, audioFrame, avcSequenceHeader, plan, videoFrame, wallMicros } from './media.mjs';
import { rtmpSession } from './rtmp.mjs';

const { values: a } = parseArgs({
  options: {
    url: { type: 'string' }, 'max-seconds': { type: 'string', default: '600' },
    'video-kbps': { type: 'string', default: '2000' }, 'audio-kbps': { type: 'string', default: '128' },
  },
});
const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const P = plan({ videoKbps: Number(a['video-kbps']), audioKbps: Number(a['audio-kbps']) });

const { socket, writer, streamId } = await rtmpSession(a.url, 'publish', {
  onError: (e) => { emit({ event: 'error', error: String(e.message ?? e) }); process.exit(1); },
});
emit({ event: 'publishing', plan: P });

const meta = encodeAmf0('@setDataFrame', 'onMetaData', {
  width: 1280, height: 720, framerate: P.fps, videocodecid: 7, videodatarate: Number(a['video-kbps']),
  audiocodecid: 10, audiodatarate: Number(a['audio-kbps']), audiosamplerate: 44100, audiosamplesize: 16, stereo: true,
  encoder: 'm7s-bench',
});
writer.send(5, 18, streamId, 0, meta);
writer.send(6, 9, streamId, 0, avcSequenceHeader());
writer.send(7, 8, streamId, 0, aacSequenceHeader());

// Audio bodies never change: build one and reuse it.
const audio = audioFrame(P.audioSize);
const t0 = performance.now();
let vIndex = 0, aIndex = 0, bytes = 0, blocked = 0;
const vStep = 1000 / P.fps, aStep = 1000 / P.audioFps;
const maxMs = Number(a['max-seconds']) * 1000;

/** Sends every frame that is due by now, in timestamp order; then sleeps until the next one. */
function tick() {
  const now = performance.now() - t0;
  if (now > maxMs) return stop('max-seconds');
  for (let guard = 0; guard < 1000; guard++) {
    const vAt = vIndex * vStep, aAt = aIndex * aStep;
    const next = Math.min(vAt, aAt);
    if (next > now) break;
    let ok;
    if (vAt <= aAt) {
      const key = vIndex % P.gop === 0;
      const body = videoFrame(key ? P.idrSize : P.pSize, key, wallMicros());
      ok = writer.send(6, 9, streamId, Math.round(vAt), body);
      bytes += body.length; vIndex++;
    } else {
      ok = writer.send(7, 8, streamId, Math.round(aAt), audio);
      bytes += audio.length; aIndex++;
    }
    if (!ok) blocked++;
  }
  const wait = Math.min(vIndex * vStep, aIndex * aStep) - (performance.now() - t0);
  setTimeout(tick, Math.max(0, wait));
}

function stop(why) {
  const secs = (performance.now() - t0) / 1000;
  emit({ event: 'stopped', why, seconds: secs, videoFrames: vIndex, audioFrames: aIndex, kbps: (bytes * 8) / 1000 / secs, writesBlocked: blocked });
  socket.end();
  setTimeout(() => process.exit(0), 100).unref();
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
tick();
