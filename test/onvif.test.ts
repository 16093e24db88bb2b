// ONVIF plugin against a simulated camera written here from the ONVIF Core/Media/PTZ specs and
// WS-Discovery (not from the plugin): unicast WS-Discovery on loopback finds it, its GetCapabilities /
// GetProfiles / GetStreamUri (WS-UsernameToken digest checked) lead to an RTSP pull (the camera's URI
// points at an ffmpeg stream on this server's RTSP port), a PTZ ContinuousMove/Stop reaches it, and wrong
// credentials give a clear 401. Multicast discovery inside a network namespace is not tested here.
// Node pass only: runtime-independent interop.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import http from 'node:http';
import { createHash } from 'node:crypto';
import onvif from '../plugins/onvif/index.ts';
import rtsp from '../plugins/rtsp/index.ts';
import { ffmpegPath, start, startServer, until, type TestServer } from './helpers/media.ts';

const runtime = process.env.M7S_TEST_RUNTIME ?? 'node';
const USER = 'admin', PASS = 'cam-secret';

/** A minimal ONVIF camera: WS-Discovery over UDP, SOAP over HTTP with UsernameToken checks. */
async function camera(rtspUri: () => string) {
  const moves: string[] = [];
  const tag = (xml: string, name: string) => new RegExp(`<(?:\\w+:)?${name}[^>]*>([^<]*)</(?:\\w+:)?${name}>`).exec(xml)?.[1] ?? '';
  const env = (body: string) => `<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:trt="http://www.onvif.org/ver10/media/wsdl" xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:tptz="http://www.onvif.org/ver20/ptz/wsdl" xmlns:ter="http://www.onvif.org/ver10/error"><s:Body>${body}</s:Body></s:Envelope>`;
  const server = http.createServer((req, res) => {
    let data = '';
    req.on('data', (d) => { data += d; });
    req.on('end', () => {
      const user = tag(data, 'Username'), pw = tag(data, 'Password'), nonce = tag(data, 'Nonce'), created = tag(data, 'Created');
      const want = createHash('sha1').update(Buffer.concat([Buffer.from(nonce, 'base64'), Buffer.from(created), Buffer.from(PASS)])).digest('base64');
      if (user !== USER || pw !== want) {
        res.writeHead(400, { 'content-type': 'application/soap+xml' });
        res.end(env('<s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>ter:NotAuthorized</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en">Sender not Authorized</s:Text></s:Reason></s:Fault>'));
        return;
      }
      const xaddr = `http://127.0.0.1:${port}/onvif/device_service`;
      let body = '';
      if (data.includes('GetCapabilities>') || data.includes('GetCapabilities/>')) body = `<tds:GetCapabilitiesResponse><tds:Capabilities><tt:Media><tt:XAddr>${xaddr.replace('device_service', 'media_service')}</tt:XAddr></tt:Media><tt:PTZ><tt:XAddr>${xaddr.replace('device_service', 'ptz_service')}</tt:XAddr></tt:PTZ></tds:Capabilities></tds:GetCapabilitiesResponse>`;
      else if (data.includes('GetProfiles')) body = '<trt:GetProfilesResponse><trt:Profiles token="main" fixed="true"><tt:Name>MainStream</tt:Name><tt:PTZConfiguration token="ptz0"><tt:Name>ptz</tt:Name></tt:PTZConfiguration></trt:Profiles><trt:Profiles token="sub"><tt:Name>SubStream</tt:Name></trt:Profiles></trt:GetProfilesResponse>';
      else if (data.includes('GetStreamUri')) body = `<trt:GetStreamUriResponse><trt:MediaUri><tt:Uri>${rtspUri()}</tt:Uri><tt:InvalidAfterConnect>false</tt:InvalidAfterConnect></trt:MediaUri></trt:GetStreamUriResponse>`;
      else if (data.includes('ContinuousMove')) {
        moves.push(`move ${tag(data, 'ProfileToken')} ${/PanTilt x="([^"]*)" y="([^"]*)"/.exec(data)?.slice(1).join(',')} zoom ${/Zoom x="([^"]*)"/.exec(data)?.[1]} via ${req.url}`);
        body = '<tptz:ContinuousMoveResponse/>';
      } else if (data.includes('<tptz:Stop')) { moves.push(`stop ${tag(data, 'ProfileToken')}`); body = '<tptz:StopResponse/>'; }
      else { res.writeHead(400); res.end(env('<s:Fault><s:Code><s:Value>s:Sender</s:Value></s:Code><s:Reason><s:Text>unknown action</s:Text></s:Reason></s:Fault>')); return; }
      res.writeHead(200, { 'content-type': 'application/soap+xml' });
      res.end(env(body));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as any).port;
  const udp = dgram.createSocket('udp4');
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
  udp.on('message', (m, from) => {
    const s = m.toString();
    if (!s.includes('Probe>') || !s.includes('NetworkVideoTransmitter')) return;
    const id = tag(s, 'MessageID');
    udp.send(Buffer.from(`<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:dn="http://www.onvif.org/ver10/network/wsdl"><SOAP-ENV:Header><wsa:MessageID>uuid:cam-1</wsa:MessageID><wsa:RelatesTo>${id}</wsa:RelatesTo><wsa:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:To><wsa:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</wsa:Action></SOAP-ENV:Header><SOAP-ENV:Body><d:ProbeMatches><d:ProbeMatch><wsa:EndpointReference><wsa:Address>urn:uuid:1419d68a-1dd2-11b2-a105-000000000001</wsa:Address></wsa:EndpointReference><d:Types>dn:NetworkVideoTransmitter</d:Types><d:Scopes>onvif://www.onvif.org/name/SimCam onvif://www.onvif.org/hardware/Sim</d:Scopes><d:XAddrs>http://127.0.0.1:${port}/onvif/device_service</d:XAddrs><d:MetadataVersion>1</d:MetadataVersion></d:ProbeMatch></d:ProbeMatches></SOAP-ENV:Body></SOAP-ENV:Envelope>`), from.port, from.address);
  });
  return { port, udpPort: udp.address().port, moves, close: () => { server.close(); udp.close(); } };
}

describe('onvif: discovery, profiles, RTSP pull, PTZ', { skip: runtime === 'node' ? false : 'runtime-independent interop: Node pass only' }, () => {
  let s: TestServer;
  let cam: Awaited<ReturnType<typeof camera>>;
  let ff: ReturnType<typeof start>;
  before(async () => {
    s = await startServer([rtsp, onvif], 'rtsp:\n  tcp:\n    listenaddr: "127.0.0.1:0"\n  udpaddr: ""\n  rtcpaddr: ""\nonvif:\n  discovertimeout: 500ms\n');
    const rtspPort = s.port('rtsp', 'tcp');
    cam = await camera(() => `rtsp://127.0.0.1:${rtspPort}/live/cam`);
    ff = start(ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25:duration=30',
      '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '25', '-bf', '0', '-pix_fmt', 'yuv420p', '-f', 'rtsp', '-rtsp_transport', 'tcp', `rtsp://127.0.0.1:${rtspPort}/live/cam`]);
  });
  after(async () => { await ff?.kill(); cam?.close(); await s?.stop(); });
  const post = async (p: string, body: unknown) => {
    const r = await fetch(`${s.http}/onvif/api/${p}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    return { status: r.status, ...(await r.json() as any) };
  };

  it('WS-Discovery probe finds the camera; wrong credentials are a clear 401; profiles, stream URI → RTSP pull; PTZ move and stop reach it', async () => {
    const found = await post('discover', { targets: [`127.0.0.1:${cam.udpPort}`], multicast: false });
    assert.equal(found.code, 0, found.message);
    assert.equal(found.data.length, 1);
    const xaddr = found.data[0].xaddrs[0];
    assert.equal(xaddr, `http://127.0.0.1:${cam.port}/onvif/device_service`);
    assert.ok(found.data[0].scopes.includes('onvif://www.onvif.org/name/SimCam'));

    const bad = await post('devices', { xaddr, username: USER, password: 'nope' });
    assert.equal(bad.status, 401);
    assert.match(bad.message, /refused the credentials of user admin/);

    const added = await post('devices', { xaddr, username: USER, password: PASS });
    assert.equal(added.code, 0, added.message);
    assert.deepEqual(added.data.profiles.map((p: any) => [p.profile, p.name, p.ptz]), [['main', 'MainStream', true], ['sub', 'SubStream', false]]);

    await until(async () => (await fetch(`${s.http}/api/stream/info/live/cam`)).ok, 15_000, 'ffmpeg publishing live/cam');
    const pulled = await post('pull', { id: added.data.id, streamPath: 'onvif/cam' });
    assert.equal(pulled.code, 0, pulled.message);
    assert.match(pulled.data.uri, /\/live\/cam$/);
    const info = await until(async () => {
      const r = await fetch(`${s.http}/api/stream/info/onvif/cam`);
      const j = r.ok ? (await r.json() as any).data : null;
      return j?.tracks?.some((x: any) => x.codec === 'h264' && x.frames > 10) ? j : null;
    }, 15_000, 'onvif/cam pulled');
    assert.ok(info);

    assert.equal((await post('ptz/move', { id: added.data.id, x: 0.5, y: -0.25, zoom: 0 })).code, 0);
    assert.equal((await post('ptz/stop', { id: added.data.id })).code, 0);
    assert.deepEqual(cam.moves, ['move main 0.5,-0.25 zoom 0 via /onvif/ptz_service', 'stop main']);
    assert.equal((await post('ptz/move', { id: added.data.id, x: 5 })).status, 400);
  });
});
