// ONVIF over SOAP 1.2: WS-Discovery Probe / ProbeMatches (UDP 3702), and device/media/PTZ calls over HTTP
// with a WS-Security UsernameToken (PasswordDigest = Base64(SHA-1(nonce + created + password))). XML is
// read with the bounded reader of src/format/sip/manscdp.ts; element names are matched by local name.

import { parseXml, type XmlElement } from '../../src/format/sip/manscdp.ts';
import { base64Encode, FormatError, textEncoder } from '../../src/format/bytes.ts';

const SOAP = 'http://www.w3.org/2003/05/soap-envelope';

export const local = (name: string) => name.slice(name.indexOf(':') + 1);

/** First descendant (depth-first) with this local name. */
export function find(el: XmlElement | undefined, name: string): XmlElement | undefined {
  if (!el) return undefined;
  for (const c of el.children) {
    if (local(c.name) === name) return c;
    const d = find(c, name);
    if (d) return d;
  }
  return undefined;
}
export function findAll(el: XmlElement | undefined, name: string, out: XmlElement[] = []): XmlElement[] {
  for (const c of el?.children ?? []) {
    if (local(c.name) === name) out.push(c);
    findAll(c, name, out);
  }
  return out;
}

export function probeMessage(messageId: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?><e:Envelope xmlns:e="${SOAP}" xmlns:w="http://schemas.xmlsoap.org/ws/2004/08/addressing" ` +
    'xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:dn="http://www.onvif.org/ver10/network/wsdl"><e:Header>' +
    `<w:MessageID>uuid:${messageId}</w:MessageID><w:To e:mustUnderstand="true">urn:schemas-xmlsoap-org:ws:2005:04:discovery</w:To>` +
    '<w:Action e:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</w:Action></e:Header><e:Body>' +
    '<d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></e:Body></e:Envelope>';
}

export interface ProbeMatch { address: string; xaddrs: string[]; scopes: string[]; types: string; relatesTo: string }

/** ProbeMatches of a WS-Discovery answer (FormatError when it is not one). */
export function parseProbeMatches(b: Uint8Array): ProbeMatch[] {
  const xml = parseXml(b);
  if (local(xml.name) !== 'Envelope') throw new FormatError('not a SOAP envelope');
  const relatesTo = find(xml, 'RelatesTo')?.text ?? '';
  return findAll(xml, 'ProbeMatch').map((m) => ({
    address: find(find(m, 'EndpointReference'), 'Address')?.text ?? '',
    xaddrs: (find(m, 'XAddrs')?.text ?? '').split(/\s+/).filter(Boolean),
    scopes: (find(m, 'Scopes')?.text ?? '').split(/\s+/).filter(Boolean),
    types: find(m, 'Types')?.text ?? '',
    relatesTo,
  }));
}

async function sha1(b: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-1', b as unknown as ArrayBuffer));
}

/** The WS-Security header with a UsernameToken digest. */
export async function securityHeader(username: string, password: string, now = new Date()): Promise<string> {
  const nonce = crypto.getRandomValues(new Uint8Array(16));
  const created = now.toISOString().replace(/\.\d+Z$/, 'Z');
  const c = textEncoder.encode(created), p = textEncoder.encode(password);
  const all = new Uint8Array(nonce.length + c.length + p.length);
  all.set(nonce); all.set(c, nonce.length); all.set(p, nonce.length + c.length);
  const digest = base64Encode(await sha1(all));
  const esc = (s: string) => s.replace(/[<>&"]/g, (x) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[x]!);
  return '<s:Header><Security s:mustUnderstand="1" xmlns="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd">' +
    `<UsernameToken><Username>${esc(username)}</Username>` +
    `<Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest">${digest}</Password>` +
    `<Nonce EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary">${base64Encode(nonce)}</Nonce>` +
    `<Created xmlns="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">${created}</Created></UsernameToken></Security></s:Header>`;
}

export class OnvifError extends Error {
  constructor(message: string, readonly status = 502) { super(message); this.name = 'OnvifError'; }
}

/** One SOAP call: POST the body (inside s:Body) to `url`; returns the parsed response Body element. */
export async function soapCall(url: string, body: string, cred: { username: string; password: string } | null, timeoutMs = 5000): Promise<XmlElement> {
  const header = cred && cred.username ? await securityHeader(cred.username, cred.password) : '';
  const env = `<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="${SOAP}" xmlns:tds="http://www.onvif.org/ver10/device/wsdl" ` +
    'xmlns:trt="http://www.onvif.org/ver10/media/wsdl" xmlns:tptz="http://www.onvif.org/ver20/ptz/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema">' +
    `${header}<s:Body>${body}</s:Body></s:Envelope>`;
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', body: env, headers: { 'content-type': 'application/soap+xml; charset=utf-8' }, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    throw new OnvifError(`ONVIF device ${url} did not answer: ${(err as Error).message}`, 504);
  }
  const bytes = new Uint8Array(await res.arrayBuffer());
  let xml: XmlElement;
  try { xml = parseXml(bytes); } catch (err) {
    throw new OnvifError(`ONVIF device ${url} answered ${res.status} with no SOAP (${(err as Error).message})`);
  }
  const fault = find(xml, 'Fault');
  if (fault || !res.ok) {
    const sub = findAll(fault, 'Value').map((v) => local(v.text)).filter(Boolean);
    const reason = find(find(fault, 'Reason'), 'Text')?.text ?? '';
    if (res.status === 401 || sub.some((x) => /NotAuthorized|FailedAuthentication/i.test(x))) {
      throw new OnvifError(`ONVIF device ${url} refused the credentials${cred?.username ? ` of user ${cred.username}` : ' (none given)'}: ${reason || sub.join('/') || res.status}`, 401);
    }
    throw new OnvifError(`ONVIF device ${url} answered a fault: ${reason || sub.join('/') || res.status}`);
  }
  const b = find(xml, 'Body');
  if (!b) throw new OnvifError(`ONVIF device ${url} answered without a SOAP Body`);
  return b;
}
