// The audio bridge (src/core/bridge.ts + plugins/audiobridge): AAC sources play over WHEP with Opus, Opus
// sources play over HTTP-FLV/HLS with AAC; one transcoder per stream shared by every viewer, started by
// the first and stopped after the last leaves. ffmpeg here is the npm one (libopus inside).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as NDC from 'node-datachannel';
import rtmp from '../plugins/rtmp/index.ts';
import rtsp from '../plugins/rtsp/index.ts';
import flv from '../plugins/flv/index.ts';
import hls from '../plugins/hls/index.ts';
import webrtc from '../plugins/webrtc/index.ts';
import audiobridge from '../plugins/audiobridge/index.ts';
import { OggReader, oggCrc, oggPage, opusTags, OGG_BOS } from '../src/format/ogg.ts';
import { buildOpusHead, opusPacketSamples } from '../src/codec/opus.ts';
import { FormatError } from '../src/format/bytes.ts';
import { NalPacketizer, parseRtp, RtpWriter } from '../src/format/rtp/index.ts';
import { ffmpegPath, ffprobe, run, sleep, start, startServer, testSourceArgs, until, type TestServer } from './helpers/media.ts';
import { fuzz } from './helpers/fuzz.ts';
import { currentRuntime } from '../adapters/current.ts';
import { Server } from '../src/server.ts';
import { Logger } from '../src/log.ts';
import { buildAsc } from '../src/codec/aac.ts';
import { Engine, defaultPublish, defaultSubscribe, type Frame, type SubscriberSink } from '../src/core/index.ts';
import type { AudioTranscoder, TranscodeOutput, TranscoderFactory } from '../src/core/bridge.ts';

/** Records what it gets (a viewer without codec wishes). */
class RecSink implements SubscriberSink {
  got: { kind: string; codec: string }[] = [];
  frame(f: Frame) { this.got.push({ kind: f.track.kind, codec: f.track.codec }); return 1; }
  flush() { return true; }
}
import { accessUnits, parameterSets } from './helpers/webrtc-client.ts';

const RUNTIME = process.env.M7S_TEST_RUNTIME ?? 'node';
const nodeOnly = RUNTIME === 'node' ? false : 'runtime-independent interop: Node pass only';
// libdatachannel is loaded only where its tests run (see the hooks below for why not on Deno).
// deno-lint-ignore no-explicit-any
const nodeDataChannel: typeof NDC = nodeOnly ? (null as any) : ((await import('node-datachannel')) as any).default;
const BRIDGE = `audiobridge:\n  ffmpeg: ${JSON.stringify(ffmpegPath)}\n  linger: 300ms\n`;
const WEBRTC = 'webrtc:\n  subscribe:\n    waittimeout: 5s\n  port: "udp:0"\n  iceaddresses: ["127.0.0.1"]\n';

/** Bridge transcoders listed in /api/sysinfo `children`. */
async function bridgeChildren(S: TestServer): Promise<any[]> {
  const j = await (await fetch(`${S.http}/api/sysinfo`)).json();
  return (j.data?.children ?? j.children ?? []).filter((c: any) => c.plugin === 'audiobridge' && /audio bridge .*→/.test(c.what ?? ''));
}

/** dts (s) of one stream's packets never go back. */
function monotonic(packets: any[], index: number): { n: number; back: number } {
  let prev = -Infinity, back = 0, n = 0;
  for (const p of packets) {
    if (p.stream_index !== index || p.dts_time === undefined) continue;
    const d = Number(p.dts_time);
    if (d < prev) back++;
    prev = d;
    n++;
  }
  return { n, back };
}

describe('ogg pages (unit)', { skip: nodeOnly }, () => {
  it('writes pages ffmpeg reads, and reads back what ffmpeg writes (packets, granules, CRC)', async () => {
    // The known CRC of an empty-bodied page with everything zero but "OggS": checked against a page ffmpeg wrote below.
    const dir = mkdtempSync(join(tmpdir(), 'm7s-ogg-'));
    try {
      const f = join(dir, 'a.opus');
      const r = await run(ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000:duration=1',
        '-c:a', 'libopus', '-b:a', '32k', '-f', 'ogg', f]);
      assert.equal(r.code, 0, r.stderr);
      const bytes = new Uint8Array(readFileSync(f));
      // Every page's CRC as ffmpeg wrote it matches ours.
      let p = 0, pages = 0;
      while (p < bytes.length) {
        const nseg = bytes[p + 26]!;
        let size = 27 + nseg;
        for (let i = 0; i < nseg; i++) size += bytes[p + 27 + i]!;
        const page = bytes.slice(p, p + size);
        const crc = new DataView(page.buffer).getUint32(22, true);
        page.fill(0, 22, 26);
        assert.equal(oggCrc(page), crc, `page ${pages} CRC`);
        p += size;
        pages++;
      }
      // Fed in small pieces, the reader gives OpusHead, OpusTags, then ~50 packets of 20 ms.
      const rd = new OggReader();
      const pkts = [];
      for (let i = 0; i < bytes.length; i += 37) pkts.push(...rd.push(bytes.subarray(i, i + 37)));
      assert.equal(new TextDecoder().decode(pkts[0]!.data.subarray(0, 8)), 'OpusHead');
      assert.equal(new TextDecoder().decode(pkts[1]!.data.subarray(0, 8)), 'OpusTags');
      const audio = pkts.slice(2);
      const samples = audio.reduce((n, x) => n + opusPacketSamples(x.data), 0);
      assert.ok(audio.length >= 50 && samples >= 48000, `${audio.length} packets, ${samples} samples`);
      // Written back one packet per page, ffmpeg decodes the same duration.
      const serial = 1234;
      const out: Uint8Array[] = [oggPage(buildOpusHead({ channels: 1, preSkip: 312, inputSampleRate: 48000, outputGain: 0, mappingFamily: 0 }), { serial, seq: 0, granule: 0, flags: OGG_BOS }),
        oggPage(opusTags('m7s'), { serial, seq: 1, granule: 0 })];
      let g = 0;
      audio.forEach((x, i) => { g += opusPacketSamples(x.data); out.push(oggPage(x.data, { serial, seq: i + 2, granule: g })); });
      const back = join(dir, 'b.opus');
      writeFileSync(back, Buffer.concat(out));
      const probe = await ffprobe(back, { extra: ['-show_format'] });
      assert.equal(probe.streams[0].codec_name, 'opus');
      const dur = Number(probe.format.duration);
      assert.ok(Math.abs(dur - samples / 48000) < 0.05, `duration ${dur}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('bad pages are a FormatError (seeded fuzz)', () => {
    const serial = 7;
    const seed = new Uint8Array(Buffer.concat([oggPage(new Uint8Array(300).fill(3), { serial, seq: 0, granule: 960 }), oggPage(new Uint8Array(10), { serial, seq: 1, granule: 1920 })]));
    assert.throws(() => new OggReader().push(new Uint8Array(40).fill(1)), FormatError);
    fuzz('ogg', [seed], (b) => new OggReader().push(b));
  });
});

describe('audio bridge: engine side (src/core/bridge.ts, unit)', { skip: nodeOnly }, () => {
  // The codec is stood in for by a counter that turns each 1024-sample input frame (44.1 kHz) into
  // 20 ms "packets" at 48 kHz as the samples add up: what is tested here is sharing, lifetime and
  // timestamps, which do not depend on the codec (the real one, ffmpeg, is tested above and below).
  function counterFactory(log: { started: number; closed: number; fail?: (r: string) => void }): TranscoderFactory {
    return {
      name: 'counter',
      plan: (from, to) => from.codec === 'aac' && to === 'opus' ? { config: { codec: 'opus', sampleRate: 48000, channels: 1 }, delay: 0 } : 'no',
      start(_from, _to, out: TranscodeOutput): AudioTranscoder {
        log.started++;
        let acc = 0;
        log.fail = (r) => out.failed(r);
        return {
          write() { acc += 1024 * 48000 / 44100; while (acc >= 960) { acc -= 960; out.packet(new Uint8Array([0xfc, 1, 2]), 960); } return true; },
          close() { log.closed++; },
        };
      },
    };
  }
  class Sink implements SubscriberSink {
    readonly audioCodecs = ['opus'];
    got: { codec: string; dts: number; derived: boolean }[] = [];
    frame(f: Frame, dts: number) { this.got.push({ codec: f.track.codec, dts, derived: !!f.track.derivedFrom }); return 1; }
    flush() { return true; }
  }

  it('one transcoder for every viewer that needs it, exact 960-tick spacing despite millisecond source times, source gaps kept, stopped after the last viewer', async () => {
    const e = new Engine({ publish: { ...defaultPublish }, subscribe: { ...defaultSubscribe } });
    const log = { started: 0, closed: 0 };
    const provided = e.provideAudioBridge(counterFactory(log), { linger: 0 });
    try {
      const pub = await e.publish('live/u', { protocol: 'test' });
      const a = pub.addTrack('audio', { codec: 'aac', sampleRate: 44100, channels: 1, data: buildAsc({ objectType: 2, sampleRate: 44100, channelConfig: 1 }) }, { clockRate: 1000 });
      let n = 0;
      // RTMP-like: whole milliseconds (23 or 24 ms apart), then a 2 s gap.
      const write = (count: number, gapMs = 0) => { for (let i = 0; i < count; i++, n++) pub.write(a, Math.round(n * 1024000 / 44100) + gapMs, 0, true, new Uint8Array(50)); };
      write(100);
      const s1 = new Sink(), s2 = new Sink(), plain = new RecSink();
      const sub1 = await e.subscribe('live/u', { protocol: 'test', sink: s1 });
      const sub2 = await e.subscribe('live/u', { protocol: 'test', sink: s2 });
      await e.subscribe('live/u', { protocol: 'test', sink: plain });
      assert.equal(log.started, 1, 'one transcoder for two viewers');
      assert.equal(sub1.audioTrack()?.codec, 'opus');
      assert.equal(sub1.info().audioBridged, 'opus');
      write(200);
      write(100, 2000);
      const d = s1.got.filter((g) => g.derived).map((g) => g.dts);
      assert.ok(d.length > 250, `${d.length} bridged frames`);
      assert.ok(s1.got.every((g) => g.codec === 'opus'), 'only the bridged track reaches an Opus-only viewer');
      const steps = d.slice(1).map((x, i) => x - d[i]!);
      const odd = steps.filter((x) => x !== 960);
      assert.equal(odd.length, 1, `steps other than 960: ${odd.join(',')}`);
      assert.ok(Math.abs(odd[0]! - 960 - 96000) < 960, `the 2 s source gap is kept: ${odd[0]}`);
      assert.deepEqual(s2.got.filter((g) => g.derived).length, d.length, 'the second viewer gets the same frames');
      assert.ok(plain.got.length > 0 && plain.got.every((g) => g.codec === 'aac'), 'a viewer without codec wishes keeps the source audio only');
      assert.equal(e.getStream('live/u')!.subscribers.size, 4, 'three viewers and the bridge feed');
      sub1.close();
      assert.equal(log.closed, 0, 'still one viewer');
      sub2.close();
      assert.equal(log.closed, 1, 'stopped with the last viewer (linger 0)');
      const st = e.getStream('live/u')!;
      assert.ok(!st.tracks.some((t) => t.derivedFrom), 'derived track removed');
      assert.equal(st.subscribers.size, 1, 'feed gone');
    } finally {
      provided.remove();
      e.shutdown();
    }
  });

  it('a failed transcoder is not restarted while its viewers remain; the next viewer after them starts a new one', async () => {
    const e = new Engine({ publish: { ...defaultPublish }, subscribe: { ...defaultSubscribe } });
    const log: { started: number; closed: number; fail?: (r: string) => void } = { started: 0, closed: 0 };
    const provided = e.provideAudioBridge(counterFactory(log), { linger: 50 });
    try {
      const pub = await e.publish('live/f', { protocol: 'test' });
      const a = pub.addTrack('audio', { codec: 'aac', sampleRate: 44100, channels: 1, data: buildAsc({ objectType: 2, sampleRate: 44100, channelConfig: 1 }) });
      for (let i = 0; i < 60; i++) pub.write(a, i * 1024, 0, true, new Uint8Array(50));
      const sub1 = await e.subscribe('live/f', { protocol: 'test', sink: new Sink() });
      log.fail!('crashed');
      assert.equal(provided.bridge.info()[0]!.state, 'failed');
      const sub2 = await e.subscribe('live/f', { protocol: 'test', sink: new Sink() });
      assert.equal(log.started, 1);
      assert.equal(sub2.audioTrack()?.codec, 'aac', 'no bridge for it: the source audio');
      sub1.close();
      sub2.close();
      assert.equal(provided.bridge.info().length, 0);
      const sub3 = await e.subscribe('live/f', { protocol: 'test', sink: new Sink() });
      assert.equal(log.started, 2);
      assert.equal(sub3.audioTrack()?.codec, 'opus');
      sub3.close();
      await sleep(120);
      assert.equal(provided.bridge.info().length, 0, 'stopped after linger');
    } finally {
      provided.remove();
      e.shutdown();
    }
  });
});

describe('audio bridge: Opus (RTSP push) plays over HTTP-FLV and HLS with AAC', () => {
  let S: TestServer;
  before(async () => {
    S = await startServer([rtsp, flv, hls, audiobridge], `rtsp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\n  udpaddr: ""\n  rtcpaddr: ""\n${BRIDGE}`);
  });
  after(async () => { await S?.stop(); });

  it('ffprobe reads h264 + aac from HTTP-FLV with no dts going back; the transcoder stops after the viewer', async () => {
    const path = 'live/opus-rtsp';
    const args = testSourceArgs({ seconds: 40, rate: 48000 });
    args.splice(args.indexOf('aac'), 1, 'libopus');
    const pub = start(ffmpegPath, [...args, '-f', 'rtsp', '-rtsp_transport', 'tcp', `rtsp://127.0.0.1:${S.port('rtsp', 'tcp')}/${path}`]);
    try {
      await until(() => S.server.engine.getStream(path)?.tracks.find((t) => t.kind === 'audio' && t.codec === 'opus' && t.frames > 20), 20_000, `Opus from RTSP (${pub.stderr()})`);
      const p = await ffprobe(`${S.http}/flv/${path}.flv`, { packets: true, seconds: 4 });
      const v = p.streams.find((s: any) => s.codec_type === 'video');
      const a = p.streams.find((s: any) => s.codec_type === 'audio');
      assert.equal(v?.codec_name, 'h264');
      assert.equal(a?.codec_name, 'aac', JSON.stringify(p.streams));
      assert.equal(Number(a.sample_rate), 48000);
      const av = monotonic(p.packets, a.index), vv = monotonic(p.packets, v.index);
      assert.ok(av.n >= 100, `${av.n} AAC packets in 4 s`); // 46.9 per second at 48 kHz
      assert.ok(vv.n >= 60, `${vv.n} video packets`);
      assert.equal(av.back, 0, 'audio dts going back');
      assert.equal(vv.back, 0, 'video dts going back');
      // HLS (the TS muxer) gets AAC from the same transcoder.
      const h = await ffprobe(`${S.http}/hls/${path}.m3u8`, { packets: true, seconds: 3, timeoutMs: 60_000 });
      const ha = h.streams.find((s: any) => s.codec_type === 'audio');
      assert.equal(ha?.codec_name, 'aac', JSON.stringify(h.streams));
      const hb = monotonic(h.packets, ha.index);
      if (hb.back) writeFileSync('/tmp/hls-probe.json', JSON.stringify(h.packets.map((x: any) => [x.stream_index, x.dts_time, x.pts_time, x.pos])));
      assert.equal(hb.back, 0, 'HLS audio dts going back');
      const st = await (await fetch(`${S.http}/audiobridge/api/status`)).json();
      assert.ok(st.data.started >= 1, JSON.stringify(st.data));
      assert.equal(st.data.libopus, true, `the encoder check finds libopus in the npm ffmpeg: ${JSON.stringify(st.data)}`);
      assert.ok(st.data.bridges.some((b: any) => b.stream === path && b.from === 'opus' && b.to === 'aac' && b.framesOut > 100), JSON.stringify(st.data.bridges));
    } finally {
      await pub.kill();
    }
    // The publisher left and so did every viewer (the HLS session goes at its idle timeout): the derived track goes.
    await until(() => !S.server.engine.getStream(path), 30_000, 'the stream to close');
    await until(async () => (await bridgeChildren(S)).length === 0, 10_000, 'the transcoder to exit');
  });
});

describe('audio bridge: a host without child processes', { skip: nodeOnly }, () => {
  it('the plugin is disabled with the reason, the engine has no bridge, and viewers keep the source audio', async () => {
    const rt = await currentRuntime();
    const edge = Object.assign(Object.create(Object.getPrototypeOf(rt)), rt, { capabilities: ['net', 'fs'] });
    const server = await Server.start({ runtime: edge, plugins: [audiobridge], logger: Logger.silent(), watch: false,
      configText: 'global:\n  http:\n    listenaddr: "127.0.0.1:0"\n' });
    try {
      const list = await (await fetch(`http://127.0.0.1:${server.http!.port}/api/plugins`)).json();
      const p = list.data.find((x: any) => x.name === 'audiobridge');
      assert.equal(p.enabled, false);
      assert.match(JSON.stringify(p), /proc/);
      assert.equal(server.engine.audioBridge, null);
    } finally {
      await server.stop();
    }
  });
});

describe('audio bridge: RTMP H.264 + AAC plays over WHEP with Opus (node-datachannel)', { skip: nodeOnly }, () => {
  let S: TestServer;
  let pub: ReturnType<typeof start> | undefined;
  const path = 'live/aac-rtmp';
  before(async () => {
    if (nodeOnly) return;
    S = await startServer([rtmp, webrtc, audiobridge], `rtmp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\n${WEBRTC}${BRIDGE}`);
    pub = start(ffmpegPath, [...testSourceArgs({ seconds: 60 }), '-f', 'flv', `rtmp://127.0.0.1:${S.port('rtmp', 'tcp')}/${path}`]);
    await until(() => S.server.engine.getStream(path)?.tracks.find((t) => t.kind === 'audio' && t.frames > 20), 20_000, `AAC over RTMP (${pub!.stderr()})`);
  });
  // Hooks return at once where the suite is skipped (a guard only: deno test does not run the hooks of a
  // skipped suite). libdatachannel itself is loaded only on Node (see the import above).
  after(async () => { if (nodeOnly) return; await pub?.kill(); await S?.stop(); nodeDataChannel.cleanup(); });

  it('two viewers get Opus RTP (20 ms packets, 960-tick steps, audible 440 Hz) from one transcoder, which stops after the last leaves', async () => {
    assert.equal((await bridgeChildren(S)).length, 0, 'no transcoder before a viewer needs it');
    const a = await whepAv(S.http, path);
    const b = await whepAv(S.http, path);
    try {
      assert.equal(a.status, 201, a.text);
      assert.equal(b.status, 201, b.text);
      assert.match(a.text, /a=rtpmap:\d+ opus\/48000\/2/i);
      await until(() => a.audio.length >= 100 && b.audio.length >= 100 && a.video > 20, 20_000, `Opus RTP (a ${a.audio.length}, b ${b.audio.length}, video ${a.video})`);
      const bridges = await bridgeChildren(S);
      assert.equal(bridges.length, 1, `one transcoder for two viewers: ${JSON.stringify(bridges)}`);
      // 20 ms Opus packets with RTP timestamps 960 apart (a few gaps allowed: the first GOP's catch-up).
      const steps = a.audio.slice(10, 100).map((p, i) => (p.ts - a.audio[9 + i]!.ts) >>> 0);
      const regular = steps.filter((d) => d === 960).length;
      assert.ok(regular >= steps.length * 0.9, `timestamp steps ${steps.join(',')}`);
      assert.ok(a.audio.every((p) => opusPacketSamples(p.payload) === 960));
      // What the viewer got decodes to the 440 Hz tone (not silence).
      const dir = mkdtempSync(join(tmpdir(), 'm7s-whep-opus-'));
      try {
        const f = join(dir, 'got.opus');
        const serial = 99;
        const pages = [oggPage(buildOpusHead({ channels: 2, preSkip: 312, inputSampleRate: 48000, outputGain: 0, mappingFamily: 0 }), { serial, seq: 0, granule: 0, flags: OGG_BOS }),
          oggPage(opusTags('m7s-test'), { serial, seq: 1, granule: 0 })];
        a.audio.forEach((p, i) => pages.push(oggPage(p.payload, { serial, seq: i + 2, granule: (i + 1) * 960 })));
        writeFileSync(f, Buffer.concat(pages));
        const r = await run(ffmpegPath, ['-hide_banner', '-i', f, '-af', 'volumedetect', '-f', 'null', '-']);
        const mean = Number(/mean_volume: (-?[\d.]+) dB/.exec(r.stderr)?.[1]);
        assert.ok(mean > -40, `mean volume ${mean} dB (${r.stderr.slice(-500)})`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      const info = await (await fetch(`${S.http}/api/stream/info/${path}`)).json().catch(() => null);
      if (info?.data?.tracks) assert.ok(info.data.tracks.some((t: any) => t.codec === 'opus' && t.derivedFrom), JSON.stringify(info.data.tracks));
    } finally {
      await a.close();
      await b.close();
    }
    await until(async () => (await bridgeChildren(S)).length === 0, 10_000, 'the transcoder to stop after the last viewer (linger 300 ms)');
    assert.ok(!S.server.engine.getStream(path)!.tracks.some((t) => t.derivedFrom), 'the derived track is gone');
    // A new viewer starts it again.
    const c = await whepAv(S.http, path);
    try {
      await until(() => c.audio.length >= 20, 20_000, 'Opus after a restart');
      assert.equal((await bridgeChildren(S)).length, 1);
    } finally {
      await c.close();
    }
  });
});

describe('audio bridge: WHIP H.264 + Opus (node-datachannel) plays over HTTP-FLV with AAC', { skip: nodeOnly }, () => {
  let S: TestServer;
  let dir: string;
  before(async () => {
    if (nodeOnly) return;
    dir = mkdtempSync(join(tmpdir(), 'm7s-whip-opus-'));
    S = await startServer([webrtc, flv, audiobridge], `${WEBRTC}${BRIDGE}`);
  });
  after(async () => { if (nodeOnly) return; await S?.stop(); rmSync(dir, { recursive: true, force: true }); nodeDataChannel.cleanup(); });

  it('ffprobe reads h264 + aac with no dts going back', async () => {
    const h = join(dir, 'v.h264'), o = join(dir, 'a.opus');
    let r = await run(ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25:duration=2',
      '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-profile:v', 'baseline', '-g', '25', '-bf', '0', '-pix_fmt', 'yuv420p', '-f', 'h264', h]);
    assert.equal(r.code, 0, r.stderr);
    r = await run(ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000:duration=2',
      '-c:a', 'libopus', '-b:a', '48k', '-frame_duration', '20', '-f', 'ogg', o]);
    assert.equal(r.code, 0, r.stderr);
    const vb = new Uint8Array(readFileSync(h));
    const opus = new OggReader().push(new Uint8Array(readFileSync(o))).slice(2).map((p) => p.data);
    const pub = await whipAv(S.http, 'live/whip-opus', accessUnits('h264', vb), parameterSets('h264', vb), opus);
    try {
      assert.equal(pub.status, 201, pub.text);
      await until(() => S.server.engine.getStream('live/whip-opus')?.tracks.find((t) => t.kind === 'audio' && t.codec === 'opus' && t.frames > 50), 20_000, 'Opus by WHIP');
      const p = await ffprobe(`${S.http}/flv/live/whip-opus.flv`, { packets: true, seconds: 4 });
      const v = p.streams.find((s: any) => s.codec_type === 'video');
      const a = p.streams.find((s: any) => s.codec_type === 'audio');
      assert.equal(v?.codec_name, 'h264');
      assert.equal(a?.codec_name, 'aac', JSON.stringify(p.streams));
      const av = monotonic(p.packets, a.index), vv = monotonic(p.packets, v.index);
      assert.ok(av.n >= 100 && vv.n >= 60, `${av.n} audio, ${vv.n} video packets`);
      assert.equal(av.back, 0);
      assert.equal(vv.back, 0);
    } finally {
      await pub.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------------
// node-datachannel peers with an audio section (the shared helper only does video).

interface AvClient { status: number; text: string; location: string; close(): Promise<void> }

async function gathered(pc: NDC.PeerConnection): Promise<void> {
  const t0 = Date.now();
  while (pc.gatheringState() !== 'complete') {
    if (Date.now() - t0 > 5000) throw new Error('gathering did not complete');
    await sleep(10);
  }
}

async function offer(pc: NDC.PeerConnection, url: string): Promise<{ status: number; text: string; location: string }> {
  pc.setLocalDescription();
  await gathered(pc);
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: pc.localDescription()!.sdp });
  const text = await res.text();
  if (res.status === 201) pc.setRemoteDescription(text, 'answer' as NDC.DescriptionType);
  return { status: res.status, text, location: res.headers.get('location') ?? '' };
}

function closer(base: string, pc: NDC.PeerConnection, tracks: NDC.Track[], location: string, stop?: () => void): () => Promise<void> {
  let done = false;
  return async () => {
    if (done) return;
    done = true;
    stop?.();
    if (location) await fetch(base + location, { method: 'DELETE' }).then((r) => r.body?.cancel()).catch(() => {});
    for (const t of tracks) { try { t.close(); } catch { /* closed */ } }
    pc.close();
  };
}

/** WHEP with H.264 video and Opus audio sections; audio RTP payloads and timestamps are kept. */
async function whepAv(base: string, path: string): Promise<AvClient & { audio: { ts: number; payload: Uint8Array }[]; video: number }> {
  const pc = new nodeDataChannel.PeerConnection('whep-av', { iceServers: [], bindAddress: '127.0.0.1' });
  const v = new nodeDataChannel.Video('0', 'RecvOnly');
  v.addH264Codec(96);
  const au = new nodeDataChannel.Audio('1', 'RecvOnly');
  au.addOpusCodec(111);
  const vt = pc.addTrack(v), at = pc.addTrack(au);
  const audio: { ts: number; payload: Uint8Array }[] = [];
  let video = 0;
  const rtp = (m: unknown) => { const b = new Uint8Array(m as Uint8Array); return b.length >= 12 && !(b[1]! >= 200 && b[1]! <= 206) ? b : null; };
  vt.onMessage((m) => { if (rtp(m)) video++; });
  at.onMessage((m) => {
    const b = rtp(m);
    if (!b) return;
    const p = parseRtp(b);
    audio.push({ ts: p.timestamp, payload: p.payload.slice() });
  });
  const r = await offer(pc, `${base}/webrtc/play/${path}`);
  return { ...r, audio, get video() { return video; }, close: closer(base, pc, [vt, at], r.location) };
}

/** WHIP with H.264 (25 fps) and Opus (20 ms packets), both looping until close(). */
async function whipAv(base: string, path: string, aus: { au: Uint8Array; key: boolean }[], ps: Uint8Array[], opus: Uint8Array[]): Promise<AvClient> {
  const pc = new nodeDataChannel.PeerConnection('whip-av', { iceServers: [], bindAddress: '127.0.0.1' });
  const v = new nodeDataChannel.Video('0', 'SendOnly');
  v.addH264Codec(96);
  v.addSSRC(0x3001, 'm7s-test');
  const au = new nodeDataChannel.Audio('1', 'SendOnly');
  au.addOpusCodec(111);
  au.addSSRC(0x3002, 'm7s-test');
  const vt = pc.addTrack(v), at = pc.addTrack(au);
  const r = await offer(pc, `${base}/webrtc/push/${path}`);
  const timers: ReturnType<typeof setInterval>[] = [];
  if (r.status === 201) {
    const pk = new NalPacketizer('h264', new RtpWriter(96, 0x3001, 1));
    pk.setParameterSets(ps);
    const aw = new RtpWriter(111, 0x3002, 1);
    let i = 0, vts = 1000, j = 0, ats = 5000;
    timers.push(setInterval(() => {
      if (!vt.isOpen()) return;
      const f = aus[i++ % aus.length]!;
      for (const p of pk.packetize(f.au, vts, f.key)) vt.sendMessageBinary(p as any);
      vts += 3600;
    }, 40));
    const t0 = Date.now();
    timers.push(setInterval(() => {
      if (!at.isOpen()) return;
      // Keep to the wall clock (timers are late on a loaded machine): send what is due.
      while (j * 20 <= Date.now() - t0) {
        const pkt = opus[j++ % opus.length]!;
        at.sendMessageBinary(aw.packet(ats, true, pkt) as any);
        ats += 960;
      }
    }, 20));
  }
  return { ...r, close: closer(base, pc, [vt, at], r.location, () => timers.forEach(clearInterval)) };
}
