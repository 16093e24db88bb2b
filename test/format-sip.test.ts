// SIP messages, transactions, digest auth and MANSCDP XML (src/format/sip) with known bytes, plus the
// seeded fuzzer: SIP datagrams, the TCP stream parser and the MANSCDP reader. Cases per target:
// M7S_FUZZ_CASES [100 000 on Node; 5 000 on Bun/Deno, whose result does not differ].
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fuzz } from './helpers/fuzz.ts';
import { FormatError, textEncoder } from '../src/format/bytes.ts';
import {
  parseSipMessage, serializeSip, SipStreamParser, header, parseVia, parseNameAddr, parseSipUri, userOf, ClientTransactions,
  ServerTransactions, SipTimeoutError, parseManscdp, catalogItems, recordItems, parseXml, ptzMove, ptzPreset, parsePtzCmd,
  digestChallenge, parseChallenges, authorizationFor, parseAuthorization, checkAuthorization, buildManscdp, newBranch, type SipMessage,
} from '../src/format/sip/index.ts';

const runtime = process.env.M7S_TEST_RUNTIME ?? 'node';
const CASES = Number(process.env.M7S_FUZZ_CASES ?? (runtime === 'node' ? 100000 : 5000));
const enc = (s: string) => textEncoder.encode(s);

const REGISTER = 'REGISTER sip:34020000002000000001@3402000000 SIP/2.0\r\n' +
  'Via: SIP/2.0/UDP 192.168.1.64:5060;rport;branch=z9hG4bK1371463273\r\n' +
  'From: <sip:34020000001320000001@3402000000>;tag=2043466181\r\n' +
  'To: <sip:34020000001320000001@3402000000>\r\n' +
  'Call-ID: 1011047669\r\nCSeq: 1 REGISTER\r\n' +
  'Contact: <sip:34020000001320000001@192.168.1.64:5060>\r\nMax-Forwards: 70\r\nUser-Agent: IP Camera\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n';
const KEEPALIVE_XML = '<?xml version="1.0" encoding="GB2312"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n<SN>12</SN>\r\n<DeviceID>34020000001320000001</DeviceID>\r\n<Status>OK</Status>\r\n</Notify>\r\n';
const MESSAGE = 'MESSAGE sip:34020000002000000001@3402000000 SIP/2.0\r\n' +
  'v: SIP/2.0/TCP 10.0.0.2:5060;branch=z9hG4bKabc\r\nf: <sip:34020000001320000001@3402000000>;tag=1\r\nt: <sip:34020000002000000001@3402000000>\r\n' +
  `i: m1\r\nCSeq: 20 MESSAGE\r\nc: Application/MANSCDP+xml\r\nl: ${KEEPALIVE_XML.length}\r\n\r\n${KEEPALIVE_XML}`;

// 摄像机一 in GBK: C9E3 CFF1 BBFA D2BB
const GBK_NAME = new Uint8Array([0xc9, 0xe3, 0xcf, 0xf1, 0xbb, 0xfa, 0xd2, 0xbb]);
function catalogBody(): Uint8Array {
  const a = enc('<?xml version="1.0" encoding="GB2312"?>\r\n<Response><CmdType>Catalog</CmdType><SN>7</SN><DeviceID>34020000001320000001</DeviceID><SumNum>2</SumNum><DeviceList Num="2"><Item><DeviceID>34020000001310000001</DeviceID><Name>');
  const b = enc('</Name><Manufacturer>Sim</Manufacturer><Status>ON</Status><Info><PTZType>1</PTZType></Info></Item><Item><DeviceID>34020000001310000002</DeviceID><Name>cam &amp; 2</Name><Status>OFF</Status></Item></DeviceList></Response>');
  const out = new Uint8Array(a.length + GBK_NAME.length + b.length);
  out.set(a); out.set(GBK_NAME, a.length); out.set(b, a.length + GBK_NAME.length);
  return out;
}

test('SIP: parse a device REGISTER and serialize it back', () => {
  const m = parseSipMessage(enc(REGISTER));
  assert.equal(m.method, 'REGISTER');
  assert.equal(m.uri, 'sip:34020000002000000001@3402000000');
  assert.equal(header(m, 'expires'), '3600');
  const via = parseVia(header(m, 'Via')!);
  assert.deepEqual([via.transport, via.host, via.port, via.params.branch, via.params.rport], ['UDP', '192.168.1.64', 5060, 'z9hG4bK1371463273', '']);
  assert.equal(userOf(header(m, 'From')!), '34020000001320000001');
  assert.equal(parseNameAddr(header(m, 'From')!).params.tag, '2043466181');
  assert.deepEqual(parseSipUri('sip:34020000001320000001@192.168.1.64:5060;transport=tcp'), { scheme: 'sip', user: '34020000001320000001', host: '192.168.1.64', port: 5060, params: { transport: 'tcp' } });
  const again = parseSipMessage(serializeSip(m));
  assert.deepEqual(again.headers, m.headers.filter(([k]) => k !== 'Content-Length').concat([['Content-Length', '0']]));
});

test('SIP: compact headers, TCP framing by Content-Length across chunk boundaries, keep-alive CRLFs', () => {
  const bytes = enc('\r\n\r\n' + MESSAGE + MESSAGE);
  const p = new SipStreamParser();
  const got: SipMessage[] = [];
  for (let i = 0; i < bytes.length; i += 7) got.push(...p.push(bytes.subarray(i, i + 7)));
  assert.equal(got.length, 2);
  assert.equal(header(got[0]!, 'Call-ID'), 'm1');
  assert.equal(header(got[1]!, 'Content-Type'), 'Application/MANSCDP+xml');
  const k = parseManscdp(got[1]!.body);
  assert.deepEqual([k.root, k.cmdType, k.sn, k.deviceId], ['Notify', 'Keepalive', 12, '34020000001320000001']);
  // A stream message without Content-Length, an oversized body, and a parser that failed once.
  assert.throws(() => new SipStreamParser().push(enc(REGISTER.replace('Content-Length: 0\r\n', ''))), FormatError);
  assert.throws(() => new SipStreamParser().push(enc(REGISTER.replace('Content-Length: 0', 'Content-Length: 9999999'))), FormatError);
  assert.throws(() => new SipStreamParser().push(new Uint8Array(20000).fill(65)), FormatError);
  assert.throws(() => parseSipMessage(enc(REGISTER.replace('CSeq: 1 REGISTER\r\n', ''))), /without CSeq/);
});

test('MANSCDP: a GB2312 Catalog with Chinese names decodes right; RecordInfo; hostile XML is a FormatError', () => {
  const m = parseManscdp(catalogBody());
  const { sumNum, items } = catalogItems(m);
  assert.equal(sumNum, 2);
  assert.deepEqual(items.map((i) => [i.deviceId, i.name, i.status, i.ptzType]), [
    ['34020000001310000001', '摄像机一', 'ON', '1'], ['34020000001310000002', 'cam & 2', 'OFF', ''],
  ]);
  const r = recordItems(parseManscdp('<?xml version="1.0"?><Response><CmdType>RecordInfo</CmdType><SN>3</SN><DeviceID>1</DeviceID><SumNum>1</SumNum><RecordList Num="1"><Item><DeviceID>1</DeviceID><Name>r</Name><StartTime>2026-11-30T10:00:00</StartTime><EndTime>2026-11-30T10:10:00</EndTime><Type>time</Type></Item></RecordList></Response>'));
  assert.deepEqual(r.items[0], { deviceId: '1', name: 'r', startTime: '2026-11-30T10:00:00', endTime: '2026-11-30T10:10:00', type: 'time', fileSize: undefined });
  assert.throws(() => parseXml('<!DOCTYPE x [<!ENTITY a "b">]><x/>'), FormatError);
  assert.throws(() => parseXml('<a>' + '<b>'.repeat(40) + '</b>'.repeat(40) + '</a>'), /deeper/);
  assert.throws(() => parseXml('<a></b>'), FormatError);
  assert.throws(() => parseXml(enc('<?xml version="1.0" encoding="klingon"?><a/>')), FormatError);
  const q = buildManscdp('Query', { CmdType: 'Catalog', SN: 1, DeviceID: '3402' });
  assert.equal(parseManscdp(enc(q)).cmdType, 'Catalog');
});

test('PTZCmd bytes (GB/T 28181 A.3): moves, zoom, presets, checksum', () => {
  assert.equal(ptzMove('stop'), 'A50F0000000000B4');
  assert.equal(ptzMove('right', 0x80), 'A50F0001800000B5'.replace('B5', ((0xa5 + 0x0f + 1 + 0x80) % 256).toString(16).toUpperCase()));
  assert.equal(ptzMove('up', 0x40), 'A50F000800400004'.slice(0, 14) + ((0xa5 + 0x0f + 8 + 0x40) % 256).toString(16).toUpperCase().padStart(2, '0'));
  const z = parsePtzCmd(ptzMove('zoomin', 0, 5));
  assert.deepEqual([z.instruction, z.data3], [0x10, 5]);
  const p = parsePtzCmd(ptzPreset('call', 3));
  assert.deepEqual([p.instruction, p.data2], [0x82, 3]);
  assert.throws(() => parsePtzCmd('A50F0000000000B5'), /checksum/);
  assert.throws(() => ptzPreset('set', 0), FormatError);
});

test('SIP digest (RFC 2617): challenge, answer, check; a wrong password fails', () => {
  const ch = parseChallenges([digestChallenge('3402000000', 'abc123')])[0]!;
  const good = authorizationFor(ch, { username: '34020000001320000001', password: '12345678' }, 'REGISTER', 'sip:34020000002000000001@3402000000');
  const a = parseAuthorization(good);
  assert.equal(a.username, '34020000001320000001');
  assert.equal(checkAuthorization(a, { method: 'REGISTER', realm: '3402000000', password: '12345678', allowBasic: false }), true);
  assert.equal(checkAuthorization(a, { method: 'REGISTER', realm: '3402000000', password: 'nope', allowBasic: false }), false);
});

test('SIP transactions: UDP retransmits at T1 doubling, stops on a response; Timer F times out; server absorbs a retransmission', async () => {
  const tx = new ClientTransactions({ t1: 20, t2: 80, timeout: 400 });
  const req = parseSipMessage(enc(REGISTER));
  let sends = 0;
  const p = tx.request(req, () => { sends++; }, false);
  await new Promise((r) => setTimeout(r, 170)); // sends at 0, 20, 60, 140
  assert.ok(sends >= 3 && sends <= 5, `sends ${sends}`);
  const res: SipMessage = { status: 200, reason: 'OK', headers: req.headers, body: new Uint8Array(0) };
  assert.equal(tx.onResponse(res), true);
  assert.equal((await p).status, 200);
  const after = sends;
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(sends, after, 'no retransmission after the final response');
  const req2 = { ...req, headers: req.headers.map(([k, v]): [string, string] => [k, k === 'Via' ? `SIP/2.0/UDP 1.2.3.4;branch=${newBranch()}` : v]) };
  const t0 = Date.now();
  await assert.rejects(tx.request(req2, () => {}, true), SipTimeoutError);
  assert.ok(Date.now() - t0 >= 350);
  assert.equal(tx.size, 0);
  const st = new ServerTransactions();
  assert.equal(st.check(req), 'new');
  assert.equal(st.check(req), null);
  st.answered(req, enc('SIP/2.0 200 OK\r\n'));
  assert.ok(st.check(req) instanceof Uint8Array);
});

test(`fuzz: SIP datagrams, the TCP stream parser and header parsers (${CASES} cases each)`, () => {
  const seeds = [enc(REGISTER), enc(MESSAGE), enc('SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP a;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 REGISTER\r\nWWW-Authenticate: Digest realm="r", nonce="n"\r\nContent-Length: 0\r\n\r\n')];
  fuzz('sip datagram', seeds, (b) => {
    const m = parseSipMessage(b);
    for (const h of ['Via', 'From', 'To', 'Contact']) {
      const v = header(m, h);
      if (v === undefined) continue;
      if (h === 'Via') parseVia(v); else parseSipUri(parseNameAddr(v).uri);
    }
    const w = header(m, 'WWW-Authenticate');
    if (w) parseChallenges([w]);
    const a = header(m, 'Authorization');
    if (a) parseAuthorization(a);
    serializeSip(m);
  }, CASES, 11);
  fuzz('sip stream', seeds, (b) => {
    const p = new SipStreamParser();
    p.push(b.subarray(0, b.length >> 1));
    p.push(b.subarray(b.length >> 1));
  }, CASES, 12);
});

test(`fuzz: MANSCDP XML in GBK (${CASES} cases)`, () => {
  const seeds = [catalogBody(), enc(KEEPALIVE_XML), enc('<?xml version="1.0" encoding="UTF-8"?><Response><CmdType>RecordInfo</CmdType><RecordList><Item><Name>&#x4e2d;</Name></Item></RecordList></Response>')];
  fuzz('manscdp', seeds, (b) => {
    const m = parseManscdp(b);
    catalogItems(m);
    recordItems(m);
  }, CASES, 13);
});
