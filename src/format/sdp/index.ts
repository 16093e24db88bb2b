// SDP (RFC 8866, as RTSP uses it: RFC 2326 C / RFC 7826 appendix D): parse and write session
// descriptions, plus the pieces RTSP and WebRTC read from them (rtpmap, fmtp, control, direction, range)
// and the mapping between a media section and a codec (both ways). Parsing is lenient about what real
// cameras send (missing lines, \n line ends, unknown attributes) and strict about bounds.

import { FormatError, textDecoder } from '../bytes.ts';

export interface SdpAttribute { key: string; value?: string }

export interface SdpMedia {
  /** 'video' | 'audio' | 'application' | ... */
  type: string;
  port: number;
  numPorts?: number;
  /** 'RTP/AVP', 'RTP/AVPF', 'RTP/SAVPF', 'UDP/TLS/RTP/SAVPF', 'TCP/RTP/AVP' ... */
  proto: string;
  /** Payload types (as strings, as in the m= line). */
  formats: string[];
  title?: string;
  connection?: string;
  bandwidths: string[];
  attributes: SdpAttribute[];
}

export interface Sdp {
  version: number;
  /** The o= line value ("- 0 0 IN IP4 127.0.0.1"). */
  origin: string;
  sessionName: string;
  info?: string;
  uri?: string;
  connection?: string;
  bandwidths: string[];
  /** t= lines ("0 0"). */
  times: string[];
  attributes: SdpAttribute[];
  media: SdpMedia[];
}

/** Bounds for hostile input. */
const MAX_SDP_BYTES = 64 * 1024;
const MAX_LINES = 2000;
const MAX_MEDIA = 64;

/** Parse an SDP text (or its UTF-8 bytes). */
export function parseSdp(input: string | Uint8Array): Sdp {
  const text = typeof input === 'string' ? input : textDecoder.decode(input);
  if (text.length > MAX_SDP_BYTES) throw new FormatError(`SDP of ${text.length} characters exceeds ${MAX_SDP_BYTES}`);
  const lines = text.split(/\r?\n/);
  if (lines.length > MAX_LINES) throw new FormatError(`SDP with more than ${MAX_LINES} lines`);
  const sdp: Sdp = { version: 0, origin: '', sessionName: '', bandwidths: [], times: [], attributes: [], media: [] };
  let sawVersion = false;
  let m: SdpMedia | null = null;
  for (let raw of lines) {
    if (raw.endsWith('\r')) raw = raw.slice(0, -1);
    if (raw.trim() === '') continue;
    if (raw.length < 2 || raw[1] !== '=') throw new FormatError(`SDP line without "x=": ${JSON.stringify(raw.slice(0, 40))}`);
    const k = raw[0]!;
    const v = raw.slice(2);
    if (k === 'v') {
      if (sawVersion) throw new FormatError('SDP with two v= lines');
      if (v.trim() !== '0') throw new FormatError(`SDP version ${JSON.stringify(v)} (expected 0)`);
      sawVersion = true;
      continue;
    }
    if (k === 'm') {
      if (sdp.media.length >= MAX_MEDIA) throw new FormatError(`SDP with more than ${MAX_MEDIA} media sections`);
      m = parseMediaLine(v);
      sdp.media.push(m);
      continue;
    }
    if (k === 'a') {
      const i = v.indexOf(':');
      const a: SdpAttribute = i < 0 ? { key: v.trim() } : { key: v.slice(0, i).trim(), value: v.slice(i + 1).trim() };
      (m ? m.attributes : sdp.attributes).push(a);
      continue;
    }
    if (m) {
      if (k === 'c') m.connection = v.trim();
      else if (k === 'b') m.bandwidths.push(v.trim());
      else if (k === 'i') m.title = v;
      // k= and unknown letters are ignored
    } else {
      if (k === 'o') sdp.origin = v.trim();
      else if (k === 's') sdp.sessionName = v;
      else if (k === 'i') sdp.info = v;
      else if (k === 'u') sdp.uri = v.trim();
      else if (k === 'c') sdp.connection = v.trim();
      else if (k === 'b') sdp.bandwidths.push(v.trim());
      else if (k === 't') sdp.times.push(v.trim());
    }
  }
  if (!sawVersion && sdp.media.length === 0) throw new FormatError('not an SDP (no v= and no m= line)');
  return sdp;
}

function parseMediaLine(v: string): SdpMedia {
  const f = v.trim().split(/\s+/);
  if (f.length < 3) throw new FormatError(`SDP m= line ${JSON.stringify(v.slice(0, 60))} is incomplete`);
  const [type, portSpec, proto, ...formats] = f as [string, string, string, ...string[]];
  const pm = /^(\d{1,5})(?:\/(\d{1,5}))?$/.exec(portSpec);
  if (!pm) throw new FormatError(`SDP m= port ${JSON.stringify(portSpec)} is invalid`);
  const port = Number(pm[1]);
  if (port > 65535) throw new FormatError(`SDP m= port ${port} out of range`);
  const m: SdpMedia = { type, port, proto, formats, bandwidths: [], attributes: [] };
  if (pm[2]) m.numPorts = Number(pm[2]);
  return m;
}

/** Write an SDP (CRLF line ends). */
export function formatSdp(s: Sdp): string {
  const L: string[] = [`v=${s.version}`, `o=${s.origin || '- 0 0 IN IP4 127.0.0.1'}`, `s=${s.sessionName || '-'}`];
  if (s.info !== undefined) L.push(`i=${s.info}`);
  if (s.uri !== undefined) L.push(`u=${s.uri}`);
  if (s.connection) L.push(`c=${s.connection}`);
  for (const b of s.bandwidths) L.push(`b=${b}`);
  for (const t of s.times.length ? s.times : ['0 0']) L.push(`t=${t}`);
  for (const a of s.attributes) L.push(formatAttr(a));
  for (const m of s.media) {
    L.push(`m=${m.type} ${m.port}${m.numPorts ? '/' + m.numPorts : ''} ${m.proto} ${m.formats.join(' ')}`);
    if (m.title !== undefined) L.push(`i=${m.title}`);
    if (m.connection) L.push(`c=${m.connection}`);
    for (const b of m.bandwidths) L.push(`b=${b}`);
    for (const a of m.attributes) L.push(formatAttr(a));
  }
  return L.join('\r\n') + '\r\n';
}

function formatAttr(a: SdpAttribute): string {
  return a.value === undefined ? `a=${a.key}` : `a=${a.key}:${a.value}`;
}

/** The value of the first attribute `key` (case-insensitive), or undefined. Flag attributes give ''. */
export function getAttr(list: readonly SdpAttribute[], key: string): string | undefined {
  const k = key.toLowerCase();
  for (const a of list) if (a.key.toLowerCase() === k) return a.value ?? '';
  return undefined;
}

/** Values of every attribute `key` (case-insensitive). */
export function getAttrs(list: readonly SdpAttribute[], key: string): string[] {
  const k = key.toLowerCase();
  return list.filter((a) => a.key.toLowerCase() === k).map((a) => a.value ?? '');
}

export interface RtpMap { payloadType: number; encoding: string; clockRate: number; channels?: number }

/** a=rtpmap lines of a media section, by payload type. */
export function rtpmaps(m: SdpMedia): Map<number, RtpMap> {
  const out = new Map<number, RtpMap>();
  for (const v of getAttrs(m.attributes, 'rtpmap')) {
    const r = /^(\d{1,3})\s+([^/\s]+)\/(\d+)(?:\/(\d+))?/.exec(v);
    if (!r) continue; // a malformed rtpmap is skipped, the static defaults still apply
    const pt = Number(r[1]);
    if (pt > 127) continue;
    const map: RtpMap = { payloadType: pt, encoding: r[2]!, clockRate: Number(r[3]) };
    if (r[4]) map.channels = Number(r[4]);
    out.set(pt, map);
  }
  return out;
}

/** a=fmtp parameters for a payload type (keys lower-cased; values as written). */
export function fmtp(m: SdpMedia, payloadType: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of getAttrs(m.attributes, 'fmtp')) {
    const sp = v.search(/\s/);
    if (sp < 0 || v.slice(0, sp) !== String(payloadType)) continue;
    for (const part of v.slice(sp + 1).split(';')) {
      const t = part.trim();
      if (!t) continue;
      const eq = t.indexOf('=');
      if (eq < 0) out[t.toLowerCase()] = '';
      else out[t.slice(0, eq).trim().toLowerCase()] = t.slice(eq + 1).trim();
    }
  }
  return out;
}

/** Format fmtp parameters back into an a=fmtp value. */
export function formatFmtp(payloadType: number, params: Record<string, string>): string {
  return `${payloadType} ` + Object.entries(params).map(([k, v]) => (v === '' ? k : `${k}=${v}`)).join(';');
}

/** a=control of a media section or session, resolved against a base URL (RFC 2326 C.1.1). */
export function controlUrl(base: string, control: string | undefined): string {
  if (control === undefined || control === '' || control === '*') return base;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(control)) return control;
  return base.endsWith('/') ? base + control : `${base}/${control}`;
}

export type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

/** The media direction (media attribute first, then the session's, default sendrecv). */
export function direction(m: SdpMedia, s?: Sdp): Direction {
  for (const list of [m.attributes, s?.attributes ?? []]) {
    for (const d of ['sendrecv', 'sendonly', 'recvonly', 'inactive'] as const) if (getAttr(list, d) !== undefined) return d;
  }
  return 'sendrecv';
}

export interface NptRange {
  /** Seconds; 'now' for live start. */
  start: number | 'now';
  /** Seconds, when given. */
  end?: number;
}

/** Parse one NPT time: seconds ("12.5"), "h:mm:ss(.frac)" or "now". */
function nptTime(s: string): number | 'now' {
  if (s === 'now') return 'now';
  let r = /^(\d{1,12})(?:\.(\d{0,9}))?$/.exec(s);
  if (r) return Number(`${r[1]}.${r[2] || 0}`);
  r = /^(\d{1,9}):([0-5]?\d):([0-5]?\d)(?:\.(\d{0,9}))?$/.exec(s);
  if (r) return Number(r[1]) * 3600 + Number(r[2]) * 60 + Number(`${r[3]}.${r[4] || 0}`);
  throw new FormatError(`invalid NPT time ${JSON.stringify(s.slice(0, 40))}`);
}

/** Parse an NPT range ("npt=0-", "npt=now-", "npt=10.5-20", "npt:0-" in a=range). Other units are a FormatError. */
export function parseNptRange(v: string): NptRange {
  const r = /^\s*npt\s*[=:]\s*([^-\s]*)\s*-\s*([^;\s]*)/i.exec(v);
  if (!r) throw new FormatError(`unsupported range ${JSON.stringify(v.slice(0, 60))}`);
  const start = r[1] === '' ? 0 : nptTime(r[1]!);
  const out: NptRange = { start };
  if (r[2]) {
    const end = nptTime(r[2]);
    if (end === 'now') throw new FormatError('NPT range cannot end at "now"');
    out.end = end;
  }
  return out;
}

export function formatNptRange(r: NptRange): string {
  const f = (t: number | 'now') => (t === 'now' ? 'now' : String(Math.round(t * 1000) / 1000));
  return `npt=${f(r.start)}-${r.end !== undefined ? f(r.end) : ''}`;
}
