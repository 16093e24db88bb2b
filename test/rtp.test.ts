// RTP plugin: /rtp/api/receive opens a port that takes MPEG-PS (the tests' simulated GB28181 device's own
// muxer) over UDP and over RFC 4571 TCP, and MPEG-TS over RTP from ffmpeg (-f rtp_mpegts); ffprobe reads
// the stream over HTTP-FLV; a receiver that gets nothing closes after `timeout`. Node pass only:
// runtime-independent interop (UDP/TCP basics of the plugins run on every runtime in gb28181.test.ts).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import rtp from '../plugins/rtp/index.ts';
import flv from '../plugins/flv/index.ts';
import { ffmpegPath, ffprobe, start, startServer, until, type TestServer } from './helpers/media.ts';
import { tempDir } from './helpers/frames.ts';
import { makeGbMedia, sendPsRtp, type GbMedia } from './helpers/gb-device.ts';

const runtime = process.env.M7S_TEST_RUNTIME ?? 'node';

describe('rtp: receive PS/TS over RTP', { skip: runtime === 'node' ? false : 'runtime-independent interop: Node pass only' }, () => {
  const t = tempDir();
  let s: TestServer;
  let media: GbMedia;
  before(async () => {
    media = await makeGbMedia(t.dir, 'h264', 2);
    s = await startServer([rtp, flv], 'rtp:\n  portrange: ""\n  timeout: 2s\n');
  });
  after(async () => { await s?.stop(); t.remove(); });
  const receive = async (body: unknown) => (await fetch(`${s.http}/rtp/api/receive`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }).then((r) => r.json())) as any;

  for (const transport of ['udp', 'tcp'] as const) {
    it(`PS over RTP (${transport}) → stream; ffprobe reads H.264 + G.711A over HTTP-FLV`, async () => {
      const r = await receive({ streamPath: `rtp/ps-${transport}`, type: 'ps', transport });
      assert.equal(r.code, 0, r.message);
      const sending = sendPsRtp(media, r.data.port, 6, transport);
      const probe = await ffprobe(`${s.http}/flv/rtp/ps-${transport}.flv`, { packets: true, seconds: 1.5 });
      assert.equal(probe.streams.find((x: any) => x.codec_type === 'video')?.codec_name, 'h264');
      assert.equal(probe.streams.find((x: any) => x.codec_type === 'audio')?.codec_name, 'pcm_alaw');
      assert.ok(probe.packets.filter((p: any) => p.codec_type === 'video').length >= 20);
      await sending;
    });
  }

  it('TS over RTP from ffmpeg (-f rtp_mpegts) → stream with H.264 + AAC; closes after timeout without packets', async () => {
    const r = await receive({ streamPath: 'rtp/ts', type: 'ts' });
    assert.equal(r.code, 0, r.message);
    const ff = start(ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25:duration=8',
      '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100:duration=8', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '25', '-bf', '0',
      '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-f', 'rtp_mpegts', `rtp://127.0.0.1:${r.data.port}`]);
    try {
      const probe = await ffprobe(`${s.http}/flv/rtp/ts.flv`, { seconds: 1.5 });
      assert.equal(probe.streams.find((x: any) => x.codec_type === 'video')?.codec_name, 'h264');
      assert.equal(probe.streams.find((x: any) => x.codec_type === 'audio')?.codec_name, 'aac');
    } finally { await ff.kill(); }
    await until(async () => {
      const l = (await fetch(`${s.http}/rtp/api/list`).then((x) => x.json()) as any).data;
      return !l.receivers.some((x: any) => x.streamPath === 'rtp/ts' && !x.ended);
    }, 6000, 'receiver closed after timeout');
    assert.equal((await receive({ streamPath: 'bad', type: 'ps' })).code !== 0, true);
    assert.equal((await receive({ streamPath: 'rtp/x', type: 'es' })).message, 'type must be ps or ts');
  });
});
