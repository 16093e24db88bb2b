// RTMP in, HTTP-FLV out, across plugins, judged by real clients (ffmpeg, ffprobe) and our FLV parser.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import rtmp from '../plugins/rtmp/index.ts';
import flv from '../plugins/flv/index.ts';
import { FlvDemuxer, parseVideoTagBody } from '../src/format/flv.ts';
import { parseHvcC } from '../src/codec/h265.ts';
import { ffmpegPath, ffprobe, sleep, start, startServer, testSourceArgs, until, videoLoss, type TestServer } from './helpers/media.ts';
import { h265Frames, tempDir } from './helpers/frames.ts';
import { nodeOnly } from './helpers/runtime-once.ts';

const servers: TestServer[] = [];
const procs: { kill(): Promise<void> }[] = [];
after(async () => {
  for (const p of procs) await p.kill();
  for (const s of servers) await s.stop();
});

async function server(yaml = '') {
  const s = await startServer([rtmp, flv], `rtmp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\n${yaml}`);
  servers.push(s);
  return s;
}

/** Video/audio packets of an ffprobe -show_packets answer, with dts as numbers. */
function packets(probe: any, type: 'video' | 'audio') {
  const idx = probe.streams.find((s: any) => s.codec_type === type)?.index;
  return (probe.packets as any[]).filter((p) => p.stream_index === idx).map((p) => ({ dts: Number(p.dts_time ?? p.pts_time), pts: Number(p.pts_time) }));
}

function assertMonotonic(list: { dts: number }[], what: string) {
  for (let i = 1; i < list.length; i++) assert.ok(list[i].dts >= list[i - 1].dts, `${what}: dts went back at ${i}: ${list[i - 1].dts} -> ${list[i].dts}`);
}

describe('interop: RTMP in, HTTP-FLV out', () => {
  it('ffmpeg publishes over RTMP; ffprobe reads HTTP-FLV: codecs, size, rate, frame count within 2 %, monotonic',
    nodeOnly('RTMP to HTTP-FLV is plugins/ code; each runtime runs RTMP ingest and HTTP-FLV play end to end, with the same checks, in the rtmp and flv tests'), async () => {
    const s = await server();
    const pub = start(ffmpegPath, [...testSourceArgs({ seconds: 40 }), '-f', 'flv', `rtmp://127.0.0.1:${s.port('rtmp', 'tcp')}/live/interop`]);
    procs.push(pub);
    await until(() => s.server.engine.getStream('live/interop')?.tracks.length === 2, 15_000, 'the stream to start');
    const probe = await ffprobe(`${s.http}/flv/live/interop.flv`, { packets: true, seconds: 10, timeoutMs: 40_000 });
    const v = probe.streams.find((x: any) => x.codec_type === 'video');
    const a = probe.streams.find((x: any) => x.codec_type === 'audio');
    assert.equal(v.codec_name, 'h264');
    assert.equal(`${v.width}x${v.height}`, '320x240');
    assert.equal(a.codec_name, 'aac');
    assert.equal(Number(a.sample_rate), 44100);
    const vp = packets(probe, 'video');
    // ffprobe reads 10 s of media from the start of what it gets: 25 fps over that span (after the
    // catch-up fast-forward of the cached GOP, see videoLoss).
    const loss = videoLoss(vp, 25);
    assert.ok(loss.span >= 9, `only ${loss.span} s of video`);
    assert.ok(loss.err <= 0.02, `video packets ${loss.count}, expected ${loss.expected.toFixed(1)} ± 2 %`);
    assertMonotonic(vp, 'video');
    assertMonotonic(packets(probe, 'audio'), 'audio');
    await pub.kill();
  });

  it('a publisher that drops and returns within waittimeout: the HTTP-FLV player keeps playing, no timestamp goes back', async () => {
    const s = await server('  subscribe:\n    waittimeout: 10s\n');
    const url = `rtmp://127.0.0.1:${s.port('rtmp', 'tcp')}/live/again`;
    const pub1 = start(ffmpegPath, [...testSourceArgs({ seconds: 30 }), '-f', 'flv', url]);
    procs.push(pub1);
    await until(() => s.server.engine.getStream('live/again')?.tracks.length === 2, 15_000, 'the first publisher');
    // ffprobe reads 12 s of media while the publisher changes under it.
    const probing = ffprobe(`${s.http}/flv/live/again.flv`, { packets: true, seconds: 12, timeoutMs: 60_000 });
    await sleep(4000);
    await pub1.kill();
    await sleep(1500);
    assert.equal(s.server.engine.getStream('live/again')?.state, 'waiting', 'the stream waits for its publisher');
    const pub2 = start(ffmpegPath, [...testSourceArgs({ seconds: 30 }), '-f', 'flv', url]);
    procs.push(pub2);
    const probe = await probing;
    // Checked before pub2 goes: with its publisher and its last viewer gone, the stream closes.
    assert.equal(s.server.engine.getStream('live/again')?.publishCount, 2, 'the second publisher adopted the stream');
    await pub2.kill();
    const vp = packets(probe, 'video');
    assertMonotonic(vp, 'video across the reconnect');
    assertMonotonic(packets(probe, 'audio'), 'audio across the reconnect');
    // The player got frames from both publishers: media time beyond what the first one sent (~4 s).
    assert.ok(vp[vp.length - 1].dts > 6, `last video dts ${vp[vp.length - 1].dts} s`);
  });
});

describe('interop: H.265 over Enhanced RTMP', () => {
  const tmp = tempDir();
  after(() => tmp.remove());

  it('an H.265 stream pushed over E-RTMP to another instance comes out of its HTTP-FLV as hvc1', async () => {
    const media = await h265Frames(tmp.dir, 3);
    const a = await server();
    const b = await server();
    // Publish real H.265 frames into A (as an ingest plugin would), at real time.
    const pub = await a.server.engine.publish('live/hevc', { protocol: 'test' });
    const track = pub.addTrack('video', media.video.config);
    let i = 0;
    const t0 = Date.now();
    const timer = setInterval(() => {
      const due = ((Date.now() - t0) / 1000) * 25;
      while (i < due) {
        const f = media.video.frames[i % media.video.frames.length];
        const loop = Math.floor(i / media.video.frames.length);
        pub.write(track, f.dts + loop * media.video.frames.length * 3600, f.cts, f.key, f.data);
        i++;
      }
    }, 20);
    try {
      // A pushes it to B over RTMP (the rtmp client speaks E-RTMP for H.265).
      const r = await fetch(`${a.http}/rtmp/api/push`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ streamPath: 'live/hevc', url: `rtmp://127.0.0.1:${b.port('rtmp', 'tcp')}/live/hevc` }),
      });
      assert.equal((await r.json()).code, 0);
      await until(() => b.server.engine.getStream('live/hevc')?.tracks[0]?.keyframes, 10_000, 'B to receive the push');
      assert.equal(b.server.engine.getStream('live/hevc')!.tracks[0].codec, 'h265');
      // Read B's HTTP-FLV and look at the video tags.
      const ac = new AbortController();
      const res = await fetch(`${b.http}/flv/live/hevc.flv`, { signal: ac.signal });
      assert.equal(res.status, 200);
      // The head is the same whether the runtime streams the body directly (Node) or through a
      // ReadableStream: CORS from the middleware included.
      assert.equal(res.headers.get('content-type'), 'video/x-flv');
      assert.equal(res.headers.get('access-control-allow-origin'), '*');
      const tags: ReturnType<typeof parseVideoTagBody>[] = [];
      const dmx = new FlvDemuxer((tag) => { if (tag.type === 9) tags.push(parseVideoTagBody(tag.data)); }, { copy: true });
      const reader = res.body!.getReader();
      const end = Date.now() + 10_000;
      while (tags.filter((t) => t.packet === 'nalu').length < 20 && Date.now() < end) {
        const { value, done } = await reader.read();
        if (done) break;
        dmx.push(value);
      }
      ac.abort();
      await reader.cancel().catch(() => {});
      const seq = tags.find((t) => t.packet === 'seqhdr');
      assert.ok(seq, 'a sequence header');
      assert.equal(seq.codec, 'h265');
      assert.equal(seq.enhanced, true, 'E-RTMP FourCC header (hvc1), not the legacy codec id 12');
      assert.deepEqual(parseHvcC(seq.data).sps, parseHvcC(media.video.config.data!).sps, 'the same SPS arrives');
      const frames = tags.filter((t) => t.packet === 'nalu');
      assert.ok(frames.length >= 20, `${frames.length} coded frames`);
      assert.ok(frames.every((t) => t.codec === 'h265' && t.enhanced));
      assert.equal(frames[0].frameType, 'key');
    } finally {
      clearInterval(timer);
      pub.close();
    }
  });
});
