// RTSP UDP multicast play (Transport: RTP/AVP;multicast) with real players: ffmpeg
// (-rtsp_transport udp_multicast), ffprobe and GStreamer (rtspsrc protocols=udp-mcast) decode the
// groups the server sends to, while one sender per stream serves them all; the groups close when the
// last multicast viewer leaves.
//
// The traffic stays on this machine: the players run in a network namespace this test creates, joined
// to this one by a veth pair (10.253.N.0/30, addresses only on that link); the server sends out of its
// end of the link with TTL 1, and the namespace routes 224.0.0.0/4 to its end. (Loopback alone does not
// do: players join groups on the interface of the route to 224.0.0.0/4, which here is the default route.)
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import rtsp from '../plugins/rtsp/index.ts';
import { parseMulticastRange } from '../plugins/rtsp/multicast.ts';
import { run, sleep, start, startServer, until, type TestServer } from './helpers/media.ts';

const FFMPEG = '/usr/bin/ffmpeg';
const FFPROBE = '/usr/bin/ffprobe';
const GST = '/usr/bin/gst-launch-1.0';

function skipReason(): string | false {
  const runtime = process.env.M7S_TEST_RUNTIME ?? ((globalThis as any).Deno ? 'deno' : (globalThis as any).Bun ? 'bun' : 'node');
  if (runtime !== 'node') return 'runtime-independent interop: Node pass only';
  if (!existsSync(FFMPEG) || !existsSync(FFPROBE)) return 'Debian ffmpeg/ffprobe not installed';
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'needs root (ip netns)';
  if (!existsSync('/usr/sbin/ip')) return 'needs ip (iproute2)';
  const ns = `m7smccheck${process.pid}`;
  const r = spawnSync('ip', ['netns', 'add', ns]);
  if (r.status !== 0) return `ip netns is unavailable here (${String(r.stderr).trim()})`;
  spawnSync('ip', ['netns', 'del', ns]);
  return false;
}

describe('rtsp: multicast range config', () => {
  it('parses CIDR ranges inside 224.0.0.0/4 and refuses others', () => {
    assert.deepEqual(parseMulticastRange('224.1.0.0/16'), { first: 0xe0010000, last: 0xe001ffff });
    assert.deepEqual(parseMulticastRange('239.255.1.7'), { first: 0xefff0107, last: 0xefff0107 });
    assert.deepEqual(parseMulticastRange('239.255.1.9/30'), { first: 0xefff0108, last: 0xefff010b });
    assert.throws(() => parseMulticastRange('10.0.0.0/8'), /224\.0\.0\.0\/4/);
    assert.throws(() => parseMulticastRange('224.0.0.0/3'), /prefix/);
    assert.throws(() => parseMulticastRange('223.255.255.0/23'), /224\.0\.0\.0\/4/);
    assert.throws(() => parseMulticastRange('224.1.0.0/40'), /prefix/);
    assert.throws(() => parseMulticastRange('nope'), /IPv4 CIDR/);
  });
});

describe('rtsp: UDP multicast play (ffmpeg, ffprobe, GStreamer in a network namespace)', { skip: skipReason() }, () => {
  const n = 1 + (process.pid % 250);
  const ns = `m7smc${process.pid}`;
  const vh = `m7c${n}h${process.pid % 1000}`.slice(0, 15), vn = `m7c${n}n${process.pid % 1000}`.slice(0, 15);
  const host = `10.253.${n}.1`, peer = `10.253.${n}.2`;
  // Administratively scoped groups (RFC 2365), a /29 so that the test can see addresses come back.
  const range = `239.255.${n}.0/29`;
  const mport = 30000 + 2 * Math.floor(Math.random() * 5000);
  const sh = async (...args: string[]) => {
    const r = await run(args[0]!, args.slice(1), 20_000);
    if (r.code !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
  };
  let s: TestServer & { rtsp: string };
  before(async () => {
    await sh('ip', 'netns', 'add', ns);
    await sh('ip', 'link', 'add', vh, 'type', 'veth', 'peer', 'name', vn);
    await sh('ip', 'link', 'set', vn, 'netns', ns);
    await sh('ip', 'addr', 'add', `${host}/30`, 'dev', vh);
    await sh('ip', 'link', 'set', vh, 'up');
    await sh('ip', 'netns', 'exec', ns, 'ip', 'addr', 'add', `${peer}/30`, 'dev', vn);
    await sh('ip', 'netns', 'exec', ns, 'ip', 'link', 'set', vn, 'up');
    await sh('ip', 'netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');
    await sh('ip', 'netns', 'exec', ns, 'ip', 'route', 'add', '224.0.0.0/4', 'dev', vn);
    const srv = await startServer([rtsp],
      `rtsp:\n  tcp:\n    listenaddr: "${host}:0"\n  udpaddr: ""\n  rtcpaddr: ""\n` +
      `  multicastiprange: "${range}"\n  multicastrtpport: ${mport}\n  multicastrtcpport: ${mport + 1}\n  multicastttl: 1\n  multicastinterface: "${host}"\n`);
    s = Object.assign(srv, { rtsp: `rtsp://${host}:${srv.port('rtsp', 'tcp')}` });
  });
  after(async () => {
    await s?.stop();
    await run('ip', ['netns', 'del', ns]); // takes the veth pair with it
    await run('ip', ['link', 'del', vh]);
    const left = await run('ip', ['netns', 'list']);
    assert.ok(!left.stdout.includes(ns), 'namespace removed');
  });

  const inNs = (cmd: string, args: string[]) => ['netns', 'exec', ns, cmd, ...args];
  const multicastInfo = async (): Promise<any[]> => (await (await fetch(`${s.http}/rtsp/api/multicast`)).json()).data;

  it('ffmpeg and ffprobe (udp_multicast) and GStreamer (udp-mcast) decode the groups of one sender; the groups close after the last viewer', async () => {
    const pub = start(FFMPEG, ['-hide_banner', '-loglevel', 'error', '-re',
      '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25:duration=40', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100:duration=40',
      '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-pix_fmt', 'yuv420p', '-g', '25', '-c:a', 'aac', '-b:a', '64k',
      '-f', 'rtsp', '-rtsp_transport', 'tcp', `${s.rtsp}/live/mc`]);
    try {
      await until(async () => s.server.engine.streams.get('live/mc')?.tracks.length === 2, 20_000, 'publisher');
      await sleep(500);
      const url = `${s.rtsp}/live/mc`;
      let maxViewers = 0, streamsSeen = 0, groupsSeen: string[] = [], subsAtMax = 0;
      let polling = true;
      const poll = (async () => {
        while (polling) {
          const info = await multicastInfo().catch(() => []);
          const st = info.find((x) => x.stream === 'live/mc');
          const subs = s.server.engine.streams.get('live/mc')?.subscribers.size ?? 0;
          // Both counts of one moment: the viewers did not change around the subscriber count.
          const again = (await multicastInfo().catch(() => [])).find((x) => x.stream === 'live/mc');
          if (st && again?.viewers === st.viewers && st.viewers > maxViewers && st.sending) { maxViewers = st.viewers; subsAtMax = subs; groupsSeen = st.groups.map((g: any) => g.address); }
          streamsSeen = Math.max(streamsSeen, info.length);
          await sleep(300);
        }
      })();
      const dec = run('ip', inNs(FFMPEG, ['-v', 'error', '-rtsp_transport', 'udp_multicast', '-i', url, '-t', '8', '-f', 'null', '-']), 40_000);
      const probe = run('ip', inNs(FFPROBE, ['-v', 'error', '-rtsp_transport', 'udp_multicast', '-print_format', 'json', '-show_streams', '-show_packets', '-read_intervals', '%+6', url]), 40_000);
      const gst = existsSync(GST) ? new Promise<{ video: number; audio: number; err: string }>((resolve) => {
        const p = spawn('ip', inNs(GST, ['-v', 'rtspsrc', `location=${url}`, 'protocols=udp-mcast', 'latency=200', 'name=s',
          's.', '!', 'application/x-rtp,media=video', '!', 'rtph264depay', '!', 'h264parse', '!', 'avdec_h264', '!', 'fakesink', 'name=v', 'silent=false', 'sync=false',
          's.', '!', 'application/x-rtp,media=audio', '!', 'rtpmp4gdepay', '!', 'aacparse', '!', 'avdec_aac', '!', 'fakesink', 'name=a', 'silent=false', 'sync=false']), { stdio: ['ignore', 'pipe', 'pipe'] });
        let video = 0, audio = 0, err = '', rest = '';
        p.stdout!.on('data', (d) => {
          const lines = (rest + d).split('\n');
          rest = lines.pop()!;
          for (const l of lines) {
            if (/GstFakeSink:v: last-message = chain/.test(l)) video++;
            else if (/GstFakeSink:a: last-message = chain/.test(l)) audio++;
          }
        });
        p.stderr!.on('data', (d) => { err += d; });
        const t = setTimeout(() => p.kill('SIGINT'), 10_000);
        p.on('close', () => { clearTimeout(t); resolve({ video, audio, err }); });
      }) : null;
      const [d, pr, g] = await Promise.all([dec, probe, gst]);
      polling = false;
      await poll;

      assert.equal(d.code, 0, `ffmpeg udp_multicast: ${d.stderr.slice(-800)}`);
      // A player joining a running group reads a few RTP packets before the first RTCP sender report
      // (they queue from SETUP on, ffmpeg reads RTP before RTCP); when the report comes, ffmpeg re-bases
      // the second stream (audio) onto the first one's clock, and its null muxer warns that the audio
      // dts stepped back once by that A/V offset. Those lines, and only a few, are allowed.
      const lines = d.stderr.split('\n').filter((l) => l.trim());
      const rebase = lines.filter((l) => /non monotonically increasing dts to muxer in stream 1:/.test(l));
      assert.deepEqual(lines.filter((l) => !rebase.includes(l)), [], 'ffmpeg decodes 8 s of the groups without an error');
      assert.ok(rebase.length <= 25, `audio re-based once at the join (${rebase.length} lines)`);
      assert.equal(pr.code, 0, `ffprobe: ${pr.stderr.slice(-800)}`);
      const p = JSON.parse(pr.stdout);
      const v = p.streams.find((x: any) => x.codec_type === 'video');
      assert.equal(v?.codec_name, 'h264');
      assert.equal(v.width, 320);
      assert.equal(v.height, 240);
      assert.equal(p.streams.find((x: any) => x.codec_type === 'audio')?.codec_name, 'aac');
      const dts = p.packets.filter((x: any) => x.stream_index === v.index && x.dts_time !== undefined).map((x: any) => Number(x.dts_time));
      for (let i = 1; i < dts.length; i++) assert.ok(dts[i] >= dts[i - 1], `dts goes back at packet ${i}`);
      const span = dts[dts.length - 1] - dts[0];
      // Multicast has no cached-GOP burst (the group is already running): the frames are the span's.
      assert.ok(span >= 4, `ffprobe read ${span.toFixed(2)} s`);
      assert.ok(Math.abs(dts.length - (span * 25 + 1)) <= 0.02 * (span * 25 + 1) + 1, `${dts.length} video frames over ${span.toFixed(2)} s at 25 fps`);
      if (g) {
        assert.ok(g.video >= 120, `gst udp-mcast: ${g.video} video buffers (${g.err.slice(-300)})`);
        assert.ok(g.audio >= 120, `gst udp-mcast: ${g.audio} audio buffers`);
      }
      // One sender for every viewer: one stream entry, one group per track, all viewers on it.
      assert.ok(maxViewers >= 2, `viewers sharing the groups at once: ${maxViewers}`);
      assert.equal(streamsSeen, 1, 'one multicast sender');
      // Engine subscribers then: each viewer's own (sends nothing) plus the one sender.
      assert.equal(subsAtMax, maxViewers + 1, `subscribers ${subsAtMax} with ${maxViewers} multicast viewers: one sender for all`);
      assert.equal(groupsSeen.length, 2, 'a group per track');
      assert.notEqual(groupsSeen[0], groupsSeen[1]);
      const r = parseMulticastRange(range);
      for (const a of groupsSeen) {
        const x = a.split('.').map(Number);
        const num = ((x[0]! << 24) | (x[1]! << 16) | (x[2]! << 8) | x[3]!) >>> 0;
        assert.ok(num >= r.first && num <= r.last, `${a} in ${range}`);
      }
      // The last viewer gone: the sender stops, its socket closes and is unlisted.
      await until(async () => (await multicastInfo()).length === 0, 15_000, 'multicast groups closed after the last viewer');
      assert.ok(!s.server.listening.some((l) => /multicast/.test(l.what ?? '')), 'multicast socket unlisted');
      assert.equal(s.server.engine.streams.get('live/mc')?.subscribers.size ?? 0, 0, 'no subscriber left (viewers and the sender)');
    } finally {
      await pub.kill();
    }
  });
});
