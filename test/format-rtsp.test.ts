// RTSP messages, header values and auth; SDP read/write and codec mapping; RTCP packets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  RtspParser, RtspHeaders, serializeRequest, serializeResponse, interleavedHeader, parseTransport, formatTransport,
  parseSession, formatSession, parseRtpInfo, formatRtpInfo, parseNptRange, formatNptRange, parseChallenges,
  authorizationFor, parseAuthorization, checkAuthorization, digestChallenge, basicChallenge,
  type RtspMessage,
} from '../src/format/rtsp/index.ts';
import { parseSdp, formatSdp, fmtp, rtpmaps, controlUrl, direction, getAttr } from '../src/format/sdp/index.ts';
import { sdpTracks, sdpForTracks } from '../src/format/sdp/codec.ts';
import { parseRtcp, buildRtcp, toNtp, ntpSeconds, ntpMiddle, RtpReceiverStats, senderReport, type RtcpPacket } from '../src/format/rtcp/index.ts';
import { bytesEqual, fromHex, textDecoder, textEncoder, toHex, FormatError, base64Decode, base64Encode } from '../src/format/bytes.ts';
import { md5Hex } from '../src/format/md5.ts';
import { md5Hex as coreMd5Hex } from '../src/core/md5.ts';
import { buildAsc } from '../src/codec/aac.ts';
import { buildAvcC, parseAvcC } from '../src/codec/h264.ts';

const enc = (s: string) => textEncoder.encode(s);

// ---------------------------------------------------------------------------------------------------
// RTSP messages

test('RTSP parser: pipelined requests, interleaved frames between them, bodies, any chunking', () => {
  const stream = [
    enc('OPTIONS rtsp://h/live/a RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: t\r\n\r\n'),
    Uint8Array.of(0x24, 0, 0, 3, 9, 8, 7),
    enc('ANNOUNCE rtsp://h/live/a RTSP/1.0\r\nCSeq: 2\r\nContent-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n'),
    Uint8Array.of(0x24, 1, 0, 0),
    enc('\r\nRTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: 12345678;timeout=60\r\n\r\n'),
  ];
  const all = new Uint8Array(stream.reduce((n, b) => n + b.length, 0));
  let o = 0;
  for (const b of stream) { all.set(b, o); o += b.length; }
  const check = (msgs: RtspMessage[]) => {
    assert.equal(msgs.length, 5);
    const [a, b, c, d, e] = msgs as any[];
    assert.equal(a.kind, 'request');
    assert.equal(a.method, 'OPTIONS');
    assert.equal(a.headers.cseq, 1);
    assert.equal(a.headers.get('user-agent'), 't');
    assert.deepEqual([b.kind, b.channel, toHex(b.data)], ['data', 0, '090807']);
    assert.equal(c.method, 'ANNOUNCE');
    assert.equal(textDecoder.decode(c.body), 'v=0\r\n');
    assert.deepEqual([d.kind, d.channel, d.data.length], ['data', 1, 0]);
    assert.deepEqual([e.kind, e.status, e.reason, parseSession(e.headers.get('Session')).timeout], ['response', 200, 'OK', 60]);
  };
  // All at once, byte by byte, and in random chunk sizes.
  check(new RtspParser().push(all));
  const p1 = new RtspParser();
  const byByte: RtspMessage[] = [];
  for (let i = 0; i < all.length; i++) byByte.push(...p1.push(all.subarray(i, i + 1)));
  check(byByte);
  assert.equal(p1.buffered, 0);
  let seed = 3;
  for (let round = 0; round < 50; round++) {
    const p = new RtspParser();
    const got: RtspMessage[] = [];
    for (let i = 0; i < all.length;) {
      seed = (seed * 16807) % 2147483647;
      const n = 1 + (seed % 40);
      got.push(...p.push(all.slice(i, i + n)));
      i += n;
    }
    check(got);
  }
});

test('RTSP parser: bounds (header bytes, header count, body size, Content-Length syntax) are FormatErrors and stop the parser', () => {
  const bad = [
    ['OPTIONS * RTSP/1.0\r\n' + 'X: ' + 'a'.repeat(20000) + '\r\n\r\n', /header block/],
    ['OPTIONS * RTSP/1.0\r\n' + 'X-A: b\r\n'.repeat(100) + '\r\n', /more than 64/],
    ['ANNOUNCE * RTSP/1.0\r\nContent-Length: 99999999\r\n\r\n', /exceeds/],
    ['ANNOUNCE * RTSP/1.0\r\nContent-Length: -1\r\n\r\n', /Content-Length/],
    ['GET / HTTP/1.1\r\n\r\n', /start line/],
    ['OPTIONS * RTSP/1.0\r\nno colon here\r\n\r\n', /header line/],
  ] as const;
  for (const [text, re] of bad) {
    const p = new RtspParser();
    assert.throws(() => p.push(enc(text)), (e: unknown) => e instanceof FormatError && re.test((e as Error).message), text.slice(0, 30));
    assert.throws(() => p.push(enc('OPTIONS * RTSP/1.0\r\n\r\n')), FormatError);
  }
  // A header block arriving slowly without its end is refused once it passes the bound.
  const p = new RtspParser({ maxHeaderBytes: 1000 });
  p.push(enc('OPTIONS * RTSP/1.0\r\n'));
  assert.throws(() => { for (let i = 0; i < 200; i++) p.push(enc('X-Y: zzz\r\n')); }, /header block/);
});

test('RTSP serializer: requests and responses round-trip through the parser; interleaved header', () => {
  const req = serializeRequest({ method: 'SETUP', uri: 'rtsp://h/a/trackID=0', headers: new RtspHeaders({ CSeq: 3, Transport: 'RTP/AVP/TCP;unicast;interleaved=0-1' }) });
  const res = serializeResponse({ status: 401, headers: new RtspHeaders([['CSeq', '3'], ['WWW-Authenticate', basicChallenge('m7s')]]), body: 'nope' });
  const msgs = new RtspParser().push(new Uint8Array([...req, ...res])) as any[];
  assert.equal(msgs[0].uri, 'rtsp://h/a/trackID=0');
  assert.equal(msgs[0].headers.get('transport'), 'RTP/AVP/TCP;unicast;interleaved=0-1');
  assert.deepEqual([msgs[1].status, msgs[1].reason, textDecoder.decode(msgs[1].body)], [401, 'Unauthorized', 'nope']);
  assert.equal(textDecoder.decode(res).split('\r\n')[0], 'RTSP/1.0 401 Unauthorized');
  assert.equal(toHex(interleavedHeader(1, 0x1234)), '24011234');
  assert.throws(() => new RtspHeaders().append('X', 'a\r\nInjected: 1'), FormatError);
});

test('RTSP headers: Transport, Session, RTP-Info, Range', () => {
  const [tcp, udp] = parseTransport('RTP/AVP/TCP;unicast;interleaved=2-3;mode=record, RTP/AVP;unicast;client_port=5000-5001;ssrc=1A2B3C4D');
  assert.deepEqual([tcp!.lower, tcp!.interleaved, tcp!.mode], ['TCP', [2, 3], 'record']);
  assert.deepEqual([udp!.lower, udp!.cast, udp!.clientPort, udp!.ssrc], ['UDP', 'unicast', [5000, 5001], '1A2B3C4D']);
  const [mc] = parseTransport('RTP/AVP;multicast;destination=239.1.2.3;port=6000-6001;ttl=16;mode="PLAY"');
  assert.deepEqual([mc!.cast, mc!.destination, mc!.port, mc!.ttl, mc!.mode], ['multicast', '239.1.2.3', [6000, 6001], 16, 'play']);
  assert.equal(formatTransport({ protocol: 'RTP/AVP', cast: 'unicast', clientPort: [5000, 5001], serverPort: [8000, 8001], ssrc: '00000001' }),
    'RTP/AVP;unicast;client_port=5000-5001;server_port=8000-8001;ssrc=00000001');
  assert.throws(() => parseTransport('RTP/AVP;client_port=99999-1'), FormatError);
  assert.throws(() => parseTransport('RTP/AVP/TCP;interleaved=300-301'), FormatError);
  assert.deepEqual(parseSession('abcDEF123;timeout=30'), { id: 'abcDEF123', timeout: 30 });
  assert.equal(formatSession({ id: 'x1', timeout: 60 }), 'x1;timeout=60');
  assert.throws(() => parseSession('bad id'), FormatError);
  const info = parseRtpInfo('url=rtsp://h/a/trackID=0;seq=45102;rtptime=12345678, url=rtsp://h/a/trackID=1;seq=30211;rtptime=8000');
  assert.deepEqual(info, [{ url: 'rtsp://h/a/trackID=0', seq: 45102, rtptime: 12345678 }, { url: 'rtsp://h/a/trackID=1', seq: 30211, rtptime: 8000 }]);
  assert.equal(formatRtpInfo(info), 'url=rtsp://h/a/trackID=0;seq=45102;rtptime=12345678,url=rtsp://h/a/trackID=1;seq=30211;rtptime=8000');
  assert.deepEqual(parseNptRange('npt=0.000-'), { start: 0 });
  assert.deepEqual(parseNptRange('npt=now-'), { start: 'now' });
  assert.deepEqual(parseNptRange('npt=1:02:03.5-3723.75'), { start: 3723.5, end: 3723.75 });
  assert.equal(formatNptRange({ start: 1.5, end: 20 }), 'npt=1.5-20');
  assert.throws(() => parseNptRange('clock=19961108T143720.25Z-'), FormatError);
});

test('Digest auth: the RFC 2617 3.5 example, client and server; Basic; md5 still re-exported from the core', () => {
  assert.equal(coreMd5Hex('abc'), md5Hex('abc'));
  assert.equal(md5Hex('abc'), '900150983cd24fb0d6963f7d28e17f72');
  const [c] = parseChallenges(['Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"']);
  const cred = { username: 'Mufasa', password: 'Circle Of Life' };
  const h = authorizationFor(c!, cred, 'GET', '/dir/index.html', { nc: 1, cnonce: '0a4f113b' });
  assert.match(h, /response="6629fae49393a05397450978507c4ef1"/);
  assert.match(h, /qop=auth, nc=00000001, cnonce="0a4f113b"/);
  const parsed = parseAuthorization(h);
  assert.equal(parsed.username, 'Mufasa');
  const expect = { method: 'GET', realm: 'testrealm@host.com', password: 'Circle Of Life', nonceOk: (n: string) => n === c!.nonce };
  assert.equal(checkAuthorization(parsed, expect), true);
  assert.equal(checkAuthorization(parsed, { ...expect, password: 'wrong' }), false);
  assert.equal(checkAuthorization(parsed, { ...expect, method: 'PUT' }), false);
  assert.equal(checkAuthorization(parsed, { ...expect, nonceOk: () => false }), false);
  // No qop (as most RTSP cameras): response = MD5(HA1:nonce:HA2).
  const [c2] = parseChallenges([digestChallenge('cam', 'n0nce')]);
  const h2 = authorizationFor(c2!, { username: 'admin', password: 'pw' }, 'DESCRIBE', 'rtsp://127.0.0.1/live');
  const ha1 = md5Hex('admin:cam:pw'), ha2 = md5Hex('DESCRIBE:rtsp://127.0.0.1/live');
  assert.match(h2, new RegExp(`response="${md5Hex(`${ha1}:n0nce:${ha2}`)}"`));
  assert.equal(checkAuthorization(parseAuthorization(h2), { method: 'DESCRIBE', realm: 'cam', password: 'pw' }), true);
  // Basic.
  const [b] = parseChallenges(['Basic realm="m7s"']);
  const hb = authorizationFor(b!, { username: 'Aladdin', password: 'open sesame' }, 'OPTIONS', '*');
  assert.equal(hb, 'Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==');
  const pb = parseAuthorization(hb);
  assert.deepEqual([pb.username, pb.password], ['Aladdin', 'open sesame']);
  assert.equal(checkAuthorization(pb, { method: 'OPTIONS', realm: 'm7s', password: 'open sesame' }), true);
  assert.equal(checkAuthorization(pb, { method: 'OPTIONS', realm: 'm7s', password: 'open sesame', allowBasic: false }), false);
  assert.throws(() => parseAuthorization('Bearer abc'), FormatError);
  assert.throws(() => parseAuthorization('Basic !!!'), FormatError);
  assert.equal(base64Encode(base64Decode('Z2F0')), 'Z2F0');
  assert.equal(base64Encode(enc('ab')), 'YWI=');
});

// ---------------------------------------------------------------------------------------------------
// SDP

// A typical camera DESCRIBE answer (Hikvision-like), with \r\n and a session-level control.
const CAMERA_SDP = `v=0\r
o=- 1109162014219182 1109162014219192 IN IP4 192.168.1.64\r
s=Media Presentation\r
e=NONE\r
b=AS:5050\r
t=0 0\r
a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/\r
m=video 0 RTP/AVP 96\r
c=IN IP4 0.0.0.0\r
b=AS:5000\r
a=recvonly\r
a=x-dimensions:1920,1080\r
a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1\r
a=rtpmap:96 H264/90000\r
a=fmtp:96 profile-level-id=420029; packetization-mode=1; sprop-parameter-sets=Z01AKI2NQDwBE/LCAAAOEAACvyAI,aO44gA==\r
m=audio 0 RTP/AVP 8\r
c=IN IP4 0.0.0.0\r
b=AS:50\r
a=recvonly\r
a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=2\r
a=rtpmap:8 PCMA/8000\r
a=Media_header:MEDIAINFO=494D4B48010100000400010010710110401F000000FA000000000000000000000000000000000000;\r
a=appversion:1.0\r
`;

test('SDP: a camera description parses into tracks (H.264 with sprop sets, PCMA), controls resolve', () => {
  const sdp = parseSdp(CAMERA_SDP);
  assert.equal(sdp.sessionName, 'Media Presentation');
  assert.equal(sdp.media.length, 2);
  const [v, a] = sdpTracks(sdp);
  assert.deepEqual([v!.codec, v!.payloadType, v!.clockRate], ['h264', 96, 90000]);
  assert.equal(v!.fmtp['packetization-mode'], '1');
  assert.equal(v!.config!.width, 1920);
  assert.equal(v!.config!.height, 1080);
  assert.equal(v!.config!.codecString, 'avc1.4d4028');
  assert.deepEqual([a!.codec, a!.payloadType, a!.clockRate, a!.config!.sampleRate], ['pcma', 8, 8000, 8000]);
  assert.equal(direction(sdp.media[0]!, sdp), 'recvonly');
  const base = getAttr(sdp.attributes, 'control')!;
  assert.equal(controlUrl(base, v!.control), 'rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1');
  assert.equal(controlUrl('rtsp://h/live/a', 'trackID=0'), 'rtsp://h/live/a/trackID=0');
  assert.equal(controlUrl('rtsp://h/live/a/', '*'), 'rtsp://h/live/a/');
  // Written back and read again: the same media, attributes and fmtp.
  const again = parseSdp(formatSdp(sdp));
  assert.deepEqual(again.media, sdp.media);
  assert.deepEqual(fmtp(again.media[0]!, 96), fmtp(sdp.media[0]!, 96));
  assert.deepEqual([...rtpmaps(again.media[1]!).values()], [{ payloadType: 8, encoding: 'PCMA', clockRate: 8000 }]);
  assert.throws(() => parseSdp('hello'), FormatError);
  assert.throws(() => parseSdp('v=0\r\nm=video notaport RTP/AVP 96\r\n'), FormatError);
});

test('SDP: tracks -> SDP -> tracks keeps codecs and configs (H.264, H.265 sprop, AAC config, Opus, PCMU)', () => {
  const camera = sdpTracks(parseSdp(CAMERA_SDP))[0]!;
  const avcc = buildAvcC(camera.sps!, camera.pps!);
  const asc = buildAsc({ objectType: 2, sampleRate: 48000, channelConfig: 2 });
  const text = sdpForTracks([
    { config: { codec: 'h264', data: avcc } },
    { config: { codec: 'aac', data: asc, sampleRate: 48000, channels: 2 } },
    { config: { codec: 'opus', sampleRate: 48000, channels: 2 } },
    { config: { codec: 'pcmu', sampleRate: 8000, channels: 1 } },
  ], { sessionName: 'live/test', range: { start: 0 } });
  assert.match(text, /a=range:npt=0-\r\n/);
  const t = sdpTracks(parseSdp(text));
  assert.deepEqual(t.map((x) => [x.codec, x.payloadType, x.clockRate, x.control]),
    [['h264', 96, 90000, 'trackID=0'], ['aac', 97, 48000, 'trackID=1'], ['opus', 98, 48000, 'trackID=2'], ['pcmu', 0, 8000, 'trackID=3']]);
  assert.ok(bytesEqual(parseAvcC(t[0]!.config!.data!).sps[0]!, camera.sps![0]!));
  assert.equal(t[0]!.fmtp['profile-level-id'], '4D4028');
  assert.ok(bytesEqual(t[1]!.config!.data!, asc));
  assert.equal(t[1]!.fmtp['mode'], 'AAC-hbr');
  assert.equal(t[2]!.config!.channels, 2);
});

// ---------------------------------------------------------------------------------------------------
// RTCP

test('RTCP: known SR+SDES compound bytes, and every record type round-trips through build/parse', () => {
  // SR (ssrc 0x11111111, NTP 0xE3A1B2C3.80000000, rtp 0x00010000, 100 packets, 5000 octets, no reports)
  // + SDES CNAME "m7s".
  const b = fromHex('80c80006 11111111 e3a1b2c3 80000000 00010000 00000064 00001388 81ca0003 11111111 01036d37 73000000');
  const [sr, sdes] = parseRtcp(b) as any[];
  assert.deepEqual([sr.type, sr.ssrc, sr.ntpSec, sr.ntpFrac, sr.rtpTimestamp, sr.packetCount, sr.octetCount],
    ['sr', 0x11111111, 0xe3a1b2c3, 0x80000000, 0x10000, 100, 5000]);
  assert.deepEqual(sdes.chunks, [{ ssrc: 0x11111111, items: [{ type: 1, text: 'm7s' }] }]);
  assert.equal(toHex(buildRtcp([sr, sdes])), toHex(b));
  const all: RtcpPacket[] = [
    { type: 'rr', ssrc: 5, reports: [{ ssrc: 7, fractionLost: 12, packetsLost: -3, highestSeq: 70000, jitter: 33, lsr: 0xabcdef01, dlsr: 65536 }] },
    { type: 'bye', ssrcs: [1, 2], reason: 'teardown' },
    { type: 'pli', senderSsrc: 1, mediaSsrc: 2 },
    { type: 'fir', senderSsrc: 1, entries: [{ ssrc: 2, seq: 9 }] },
    { type: 'nack', senderSsrc: 1, mediaSsrc: 2, lost: [100, 101, 105, 116, 117, 200] },
  ];
  const parsed = parseRtcp(buildRtcp(all));
  assert.deepEqual(parsed, all);
  const { ntpSec, ntpFrac } = toNtp(Date.UTC(2026, 0, 1));
  assert.equal(Math.round((ntpSeconds(ntpSec, ntpFrac) - 2208988800) * 1000), Date.UTC(2026, 0, 1));
  assert.throws(() => parseRtcp(fromHex('80c80006 11111111')), FormatError);
  assert.throws(() => parseRtcp(fromHex('40c80000')), FormatError);
});

test('RTCP receiver stats: extended sequence across the wrap, loss, fraction, jitter, LSR/DLSR; sender report', () => {
  const st = new RtpReceiverStats(0xabc, 90000);
  // 65530..65535, 0..10 with 65534 and 3 missing; 20 ms apart, steady (no jitter).
  const seqs = [65530, 65531, 65532, 65533, 65535, 0, 1, 2, 4, 5, 6, 7, 8, 9, 10];
  const idx = (s: number) => (s >= 65530 ? s - 65530 : s + 6);
  for (const s of seqs) st.packet(s, 1000 + idx(s) * 1800, 5000 + idx(s) * 20);
  const { ntpSec, ntpFrac } = toNtp(1_700_000_000_000);
  st.senderReport(ntpSec, ntpFrac, 6000);
  const r = st.report(6500);
  assert.equal(r.highestSeq, 65536 + 10);
  assert.equal(r.packetsLost, 2);
  assert.equal(r.fractionLost, Math.floor((2 * 256) / 17));
  assert.equal(r.jitter, 0);
  assert.equal(r.lsr, ntpMiddle(ntpSec, ntpFrac));
  assert.equal(r.dlsr, 32768); // 0.5 s in 1/65536 s
  // Next interval: nothing lost; then arrival jitter of +-10 ms (900 ticks) converges towards 900.
  for (let i = 11; i < 400; i++) st.packet(i, 1000 + (i + 6) * 1800, 5000 + (i + 6) * 20 + (i % 2 ? 10 : 0));
  const r2 = st.report(20000);
  assert.equal(r2.fractionLost, 0);
  assert.equal(r2.packetsLost, 2);
  assert.ok(r2.jitter > 800 && r2.jitter <= 900, `jitter ${r2.jitter}`);
  const sr = parseRtcp(buildRtcp([senderReport(7, 1_700_000_000_000, 123, 10, 1000), { type: 'rr', ssrc: 7, reports: [r2] }]));
  assert.equal((sr[0] as any).ntpSec, ntpSec);
  assert.deepEqual((sr[1] as any).reports[0], r2);
});
