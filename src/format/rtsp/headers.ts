// RTSP header values: Transport (RFC 2326 12.39), Session (12.37), RTP-Info (12.33) and Range (12.29,
// NPT only: parsed by the SDP module, which uses the same syntax in a=range).

import { FormatError } from '../bytes.ts';
export { formatNptRange, parseNptRange, type NptRange } from '../sdp/index.ts';

export interface Transport {
  /** "RTP/AVP" (UDP), "RTP/AVP/TCP", "RTP/AVPF", "RTP/SAVP"... as written, upper-cased. */
  protocol: string;
  /** Lower transport: 'TCP' when the spec says /TCP, else 'UDP'. */
  lower: 'UDP' | 'TCP';
  /** 'unicast' | 'multicast' when given. */
  cast?: 'unicast' | 'multicast';
  destination?: string;
  source?: string;
  interleaved?: [number, number];
  clientPort?: [number, number];
  serverPort?: [number, number];
  /** Multicast port pair. */
  port?: [number, number];
  ttl?: number;
  ssrc?: string;
  /** 'play' | 'record' (quotes removed, lower-cased). */
  mode?: string;
  /** Every other parameter, as written. */
  extra: [string, string | undefined][];
}

function range(v: string | undefined, what: string): [number, number] {
  const r = /^\s*(\d{1,5})(?:\s*-\s*(\d{1,5}))?\s*$/.exec(v ?? '');
  if (!r) throw new FormatError(`Transport ${what}=${JSON.stringify((v ?? '').slice(0, 20))} is invalid`);
  const a = Number(r[1]);
  const b = r[2] !== undefined ? Number(r[2]) : a + 1;
  if (a > 65535 || b > 65535) throw new FormatError(`Transport ${what} out of range`);
  return [a, b];
}

/** Parse a Transport header: one spec per comma-separated alternative, in the client's order. */
export function parseTransport(header: string): Transport[] {
  if (header.length > 4096) throw new FormatError('Transport header too long');
  const out: Transport[] = [];
  for (const alt of header.split(',')) {
    const parts = alt.split(';').map((s) => s.trim()).filter(Boolean);
    if (!parts.length) continue;
    const protocol = parts[0]!.toUpperCase();
    if (!/^[A-Z0-9]+\/[A-Z0-9]+(\/(TCP|UDP))?$/.test(protocol)) throw new FormatError(`Transport protocol ${JSON.stringify(parts[0]!.slice(0, 30))} is invalid`);
    const t: Transport = { protocol, lower: protocol.endsWith('/TCP') ? 'TCP' : 'UDP', extra: [] };
    for (const p of parts.slice(1)) {
      const eq = p.indexOf('=');
      const k = (eq < 0 ? p : p.slice(0, eq)).trim().toLowerCase();
      const v = eq < 0 ? undefined : p.slice(eq + 1).trim();
      switch (k) {
        case 'unicast': case 'multicast': t.cast = k; break;
        case 'destination': t.destination = v; break;
        case 'source': t.source = v; break;
        case 'interleaved': {
          t.interleaved = range(v, k);
          if (t.interleaved[0] > 255 || t.interleaved[1] > 255) throw new FormatError('interleaved channel above 255');
          break;
        }
        case 'client_port': t.clientPort = range(v, k); break;
        case 'server_port': t.serverPort = range(v, k); break;
        case 'port': t.port = range(v, k); break;
        case 'ttl': {
          if (!/^\d{1,3}$/.test(v ?? '')) throw new FormatError('Transport ttl is invalid');
          t.ttl = Number(v);
          break;
        }
        case 'ssrc': t.ssrc = v; break;
        case 'mode': t.mode = (v ?? '').replace(/"/g, '').trim().toLowerCase(); break;
        default: t.extra.push([p.slice(0, eq < 0 ? p.length : eq).trim(), v]);
      }
    }
    out.push(t);
  }
  if (!out.length) throw new FormatError('empty Transport header');
  return out;
}

export function formatTransport(t: Omit<Transport, 'lower' | 'extra'> & { extra?: [string, string | undefined][] }): string {
  const p: string[] = [t.protocol];
  if (t.cast) p.push(t.cast);
  if (t.destination) p.push(`destination=${t.destination}`);
  if (t.source) p.push(`source=${t.source}`);
  if (t.interleaved) p.push(`interleaved=${t.interleaved[0]}-${t.interleaved[1]}`);
  if (t.clientPort) p.push(`client_port=${t.clientPort[0]}-${t.clientPort[1]}`);
  if (t.serverPort) p.push(`server_port=${t.serverPort[0]}-${t.serverPort[1]}`);
  if (t.port) p.push(`port=${t.port[0]}-${t.port[1]}`);
  if (t.ttl !== undefined) p.push(`ttl=${t.ttl}`);
  if (t.ssrc) p.push(`ssrc=${t.ssrc}`);
  if (t.mode) p.push(`mode=${t.mode}`);
  for (const [k, v] of t.extra ?? []) p.push(v === undefined ? k : `${k}=${v}`);
  return p.join(';');
}

export interface SessionHeader { id: string; /** Seconds. */ timeout?: number }

export function parseSession(v: string): SessionHeader {
  const parts = v.split(';').map((s) => s.trim());
  const id = parts[0]!;
  if (!/^[A-Za-z0-9$\-_.+]{1,256}$/.test(id)) throw new FormatError(`invalid Session id ${JSON.stringify(id.slice(0, 40))}`);
  const out: SessionHeader = { id };
  for (const p of parts.slice(1)) {
    const m = /^timeout\s*=\s*(\d{1,9})$/i.exec(p);
    if (m) out.timeout = Number(m[1]);
  }
  return out;
}

export function formatSession(s: SessionHeader): string {
  return s.timeout !== undefined ? `${s.id};timeout=${s.timeout}` : s.id;
}

export interface RtpInfo { url: string; seq?: number; rtptime?: number }

/** Parse RTP-Info ("url=...;seq=..;rtptime=.., url=..."). */
export function parseRtpInfo(v: string): RtpInfo[] {
  if (v.length > 8192) throw new FormatError('RTP-Info header too long');
  const out: RtpInfo[] = [];
  for (const item of v.split(/,\s*(?=url=)/i)) {
    const info: RtpInfo = { url: '' };
    for (const p of item.split(';')) {
      const eq = p.indexOf('=');
      if (eq < 0) continue;
      const k = p.slice(0, eq).trim().toLowerCase(), val = p.slice(eq + 1).trim();
      if (k === 'url') info.url = val;
      else if (k === 'seq' && /^\d{1,5}$/.test(val)) info.seq = Number(val) & 0xffff;
      else if (k === 'rtptime' && /^\d{1,10}$/.test(val)) info.rtptime = Number(val) >>> 0;
    }
    if (!info.url) throw new FormatError('RTP-Info entry without a url');
    out.push(info);
  }
  return out;
}

export function formatRtpInfo(list: readonly RtpInfo[]): string {
  return list.map((i) => [`url=${i.url}`, i.seq !== undefined ? `seq=${i.seq}` : '', i.rtptime !== undefined ? `rtptime=${i.rtptime >>> 0}` : '']
    .filter(Boolean).join(';')).join(',');
}
