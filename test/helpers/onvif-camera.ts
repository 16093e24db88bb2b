// A minimal simulated ONVIF camera for tests, written from the ONVIF Core/Media/PTZ specs and WS-Discovery
// (not from plugins/onvif): WS-Discovery ProbeMatches over UDP (unicast, or multicast when `multicast`),
// SOAP over HTTP with WS-UsernameToken digest checks (HTTP 400 + ter:NotAuthorized otherwise),
// GetCapabilities, GetProfiles, GetStreamUri, PTZ ContinuousMove/Stop (recorded in `moves`).
import dgram from 'node:dgram';
import http from 'node:http';
import { createHash } from 'node:crypto';

export const USER = 'admin', PASS = 'cam-secret';

/** A minimal ONVIF camera: WS-Discovery over UDP, SOAP over HTTP with UsernameToken checks. */
export async function camera(rtspUri: () => string, opts: { multicast?: boolean } = {}) {
  const moves: string[] = [];
  /** HTTP (SOAP) requests and WS-Discovery probes it received. */
  const seen = { http: 0, probes: 0 };
  const tag = (xml: string, name: string) => new RegExp(`<(?:\\w+:)?${name}[^>]*>([^<]*)</(?:\\w+:)?${name}>`).exec(xml)?.[1] ?? '';
  const env = (body: string) => `<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:trt="http://www.onvif.org/ver10/media/wsdl" xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:tptz="http://www.onvif.org/ver20/ptz/wsdl" xmlns:ter="http://www.onvif.org/ver10/error"><s:Body>${body}</s:Body></s:Envelope>`;
  const server = http.createServer((req, res) => {
    seen.http++;
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
  const udp = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  if (opts.multicast) {
    await new Promise<void>((r) => udp.bind(3702, () => r()));
    udp.addMembership('239.255.255.250', '127.0.0.1');
  } else {
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
  }
  udp.on('message', (m, from) => {
    const s = m.toString();
    if (!s.includes('Probe>') || !s.includes('NetworkVideoTransmitter')) return;
    seen.probes++;
    const id = tag(s, 'MessageID');
    udp.send(Buffer.from(`<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:dn="http://www.onvif.org/ver10/network/wsdl"><SOAP-ENV:Header><wsa:MessageID>uuid:cam-1</wsa:MessageID><wsa:RelatesTo>${id}</wsa:RelatesTo><wsa:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:To><wsa:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</wsa:Action></SOAP-ENV:Header><SOAP-ENV:Body><d:ProbeMatches><d:ProbeMatch><wsa:EndpointReference><wsa:Address>urn:uuid:1419d68a-1dd2-11b2-a105-000000000001</wsa:Address></wsa:EndpointReference><d:Types>dn:NetworkVideoTransmitter</d:Types><d:Scopes>onvif://www.onvif.org/name/SimCam onvif://www.onvif.org/hardware/Sim</d:Scopes><d:XAddrs>http://127.0.0.1:${port}/onvif/device_service</d:XAddrs><d:MetadataVersion>1</d:MetadataVersion></d:ProbeMatch></d:ProbeMatches></SOAP-ENV:Body></SOAP-ENV:Envelope>`), from.port, from.address);
  });
  return { port, udpPort: udp.address().port, moves, seen, close: () => { server.close(); udp.close(); } };
}

