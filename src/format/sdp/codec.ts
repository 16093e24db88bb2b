// From SDP media sections to codecs (what a DESCRIBE or an ANNOUNCE tells us about the RTP streams), and
// from track configs back to SDP media sections (what we DESCRIBE or ANNOUNCE).

import type { CodecConfig } from '../../codec/config.ts';
import { parseAvcC, parseH264Sps, h264CodecString, buildAvcC } from '../../codec/h264.ts';
import { buildHvcC, h265CodecString, parseH265Sps, parseHvcC } from '../../codec/h265.ts';
import { parseAsc } from '../../codec/aac.ts';
import { buildOpusHead, parseOpusHead } from '../../codec/opus.ts';
import { base64Decode, base64Encode, FormatError, fromHex, toHex } from '../bytes.ts';
import { parseStreamMuxConfig } from '../rtp/aac.ts';
import { fmtp, formatFmtp, formatSdp, getAttr, type NptRange, formatNptRange, rtpmaps, type Sdp, type SdpAttribute, type SdpMedia } from './index.ts';

export interface SdpTrack {
  /** The m= media type. */
  kind: string;
  media: SdpMedia;
  payloadType: number;
  /** Canonical codec: 'h264' | 'h265' | 'aac' | 'opus' | 'pcma' | 'pcmu' | 'mp2t', else the encoding lower-cased. */
  codec: string;
  /** Encoding name as written in the rtpmap (or the static payload type's name). */
  encoding: string;
  clockRate: number;
  channels?: number;
  fmtp: Record<string, string>;
  /** a=control value (resolve with controlUrl). */
  control?: string;
  /** Codec config, when the SDP carries enough for one (parameter sets, AudioSpecificConfig...). */
  config?: CodecConfig;
  /** H.264/H.265 parameter sets from the sprop-* parameters. */
  vps?: Uint8Array[];
  sps?: Uint8Array[];
  pps?: Uint8Array[];
  /** AAC: the payload format ('mpeg4-generic' or 'latm'). */
  aacMode?: 'mpeg4-generic' | 'latm';
  /** mpeg4-generic: the LATM StreamMuxConfig or the AudioSpecificConfig bytes from fmtp `config`. */
  rawConfig?: Uint8Array;
}

/** RFC 3551 static payload types this server understands. */
const STATIC: Record<number, { encoding: string; clockRate: number; channels?: number }> = {
  0: { encoding: 'PCMU', clockRate: 8000, channels: 1 },
  8: { encoding: 'PCMA', clockRate: 8000, channels: 1 },
  33: { encoding: 'MP2T', clockRate: 90000 },
};

const CODECS: Record<string, string> = {
  H264: 'h264', H265: 'h265', HEVC: 'h265', 'MPEG4-GENERIC': 'aac', 'MP4A-LATM': 'aac', OPUS: 'opus',
  PCMA: 'pcma', PCMU: 'pcmu', MP2T: 'mp2t',
};

function b64List(v: string | undefined): Uint8Array[] {
  if (!v) return [];
  return v.split(',').map((s) => s.trim()).filter(Boolean).map(base64Decode).filter((b) => b.length > 0);
}

/**
 * One track per media section: the first payload type with a codec we know (else the first listed).
 * Bad codec parameters (undecodable sprop-*, a bad config) leave `config` unset rather than failing the
 * whole description: in-band parameter sets may still come.
 */
export function sdpTracks(sdp: Sdp): SdpTrack[] {
  const out: SdpTrack[] = [];
  for (const m of sdp.media) {
    const maps = rtpmaps(m);
    let chosen: SdpTrack | undefined;
    for (const f of m.formats) {
      if (!/^\d{1,3}$/.test(f)) continue;
      const pt = Number(f);
      if (pt > 127) continue;
      const map = maps.get(pt) ?? (STATIC[pt] ? { payloadType: pt, ...STATIC[pt]! } : undefined);
      if (!map) continue;
      const enc = map.encoding.toUpperCase();
      const t: SdpTrack = {
        kind: m.type, media: m, payloadType: pt, codec: CODECS[enc] ?? enc.toLowerCase(), encoding: map.encoding,
        clockRate: map.clockRate, fmtp: fmtp(m, pt),
      };
      if (map.channels) t.channels = map.channels;
      const control = getAttr(m.attributes, 'control');
      if (control !== undefined) t.control = control;
      try {
        fillConfig(t, enc);
      } catch (e) {
        if (!(e instanceof FormatError)) throw e;
      }
      if (!chosen) chosen = t;
      if (CODECS[enc]) { chosen = t; break; }
    }
    if (chosen) out.push(chosen);
  }
  return out;
}

function fillConfig(t: SdpTrack, enc: string): void {
  const f = t.fmtp;
  switch (enc) {
    case 'H264': {
      const sets = b64List(f['sprop-parameter-sets']);
      t.sps = sets.filter((n) => (n[0]! & 0x1f) === 7);
      t.pps = sets.filter((n) => (n[0]! & 0x1f) === 8);
      if (t.sps.length && t.pps.length) {
        const s = parseH264Sps(t.sps[0]!);
        t.config = { codec: 'h264', data: buildAvcC(t.sps.slice(0, 1), t.pps.slice(0, 1)), width: s.width, height: s.height, codecString: h264CodecString(t.sps[0]!) };
      }
      return;
    }
    case 'H265':
    case 'HEVC': {
      t.vps = b64List(f['sprop-vps']);
      t.sps = b64List(f['sprop-sps']);
      t.pps = b64List(f['sprop-pps']);
      if (t.vps.length && t.sps.length && t.pps.length) {
        const s = parseH265Sps(t.sps[0]!);
        t.config = { codec: 'h265', data: buildHvcC(t.vps.slice(0, 1), t.sps.slice(0, 1), t.pps.slice(0, 1)), width: s.width, height: s.height, codecString: h265CodecString(s) };
      }
      return;
    }
    case 'MPEG4-GENERIC': {
      t.aacMode = 'mpeg4-generic';
      const mode = (f['mode'] ?? '').toLowerCase();
      if (mode && mode !== 'aac-hbr' && mode !== 'aac-lbr') throw new FormatError(`mpeg4-generic mode ${mode} is not AAC`);
      if (!f['config']) return;
      t.rawConfig = fromHex(f['config']);
      const c = parseAsc(t.rawConfig);
      t.config = { codec: 'aac', data: t.rawConfig, sampleRate: c.sampleRate, channels: c.channels || t.channels, codecString: `mp4a.40.${c.extensionObjectType ?? c.objectType}` };
      return;
    }
    case 'MP4A-LATM': {
      t.aacMode = 'latm';
      if ((f['cpresent'] ?? '1') !== '0' || !f['config']) return; // in-band config is not supported
      t.rawConfig = fromHex(f['config']);
      const l = parseStreamMuxConfig(t.rawConfig);
      t.config = { codec: 'aac', data: l.asc, sampleRate: l.aac.sampleRate, channels: l.aac.channels, codecString: `mp4a.40.${l.aac.objectType}` };
      return;
    }
    case 'OPUS': {
      const channels = f['sprop-stereo'] === '0' ? 1 : (t.channels ?? 2) >= 2 ? 2 : 1;
      t.config = { codec: 'opus', data: buildOpusHead({ channels, preSkip: 0, inputSampleRate: 48000, outputGain: 0, mappingFamily: 0 }), sampleRate: 48000, channels, codecString: 'opus' };
      return;
    }
    case 'PCMA':
    case 'PCMU':
      t.config = { codec: enc.toLowerCase(), sampleRate: t.clockRate, channels: t.channels ?? 1 };
      return;
  }
}

// ---------------------------------------------------------------------------------------------------
// Tracks -> SDP

export interface SdpTrackOut {
  config: CodecConfig;
  /** Dynamic payload type for codecs without a static one [96 + index]. */
  payloadType?: number;
  /** a=control [trackID=<index>]. */
  control?: string;
}

export interface SdpBuildOptions {
  sessionName?: string;
  /** Address in o= and c= [127.0.0.1 / 0.0.0.0]. */
  originAddress?: string;
  connectionAddress?: string;
  range?: NptRange;
  tool?: string;
}

/** The media section of one track (payload type, rtpmap, fmtp, control). Unknown codecs are a FormatError. */
export function sdpMediaForTrack(t: SdpTrackOut, index: number): SdpMedia {
  const c = t.config;
  const attrs: SdpAttribute[] = [];
  let pt = t.payloadType ?? 96 + index;
  let kind = 'video';
  switch (c.codec) {
    case 'h264': {
      attrs.push({ key: 'rtpmap', value: `${pt} H264/90000` });
      const p: Record<string, string> = { 'packetization-mode': '1' };
      if (c.data) {
        const a = parseAvcC(c.data);
        if (a.sps[0] && a.sps[0].length >= 4) p['profile-level-id'] = toHex(a.sps[0].subarray(1, 4)).toUpperCase();
        p['sprop-parameter-sets'] = [...a.sps, ...a.pps].map(base64Encode).join(',');
      }
      attrs.push({ key: 'fmtp', value: formatFmtp(pt, p) });
      break;
    }
    case 'h265': {
      attrs.push({ key: 'rtpmap', value: `${pt} H265/90000` });
      if (c.data) {
        const h = parseHvcC(c.data);
        attrs.push({ key: 'fmtp', value: formatFmtp(pt, { 'sprop-vps': h.vps.map(base64Encode).join(','), 'sprop-sps': h.sps.map(base64Encode).join(','), 'sprop-pps': h.pps.map(base64Encode).join(',') }) });
      }
      break;
    }
    case 'aac': {
      kind = 'audio';
      if (!c.data) throw new FormatError('AAC track without an AudioSpecificConfig cannot be described');
      const a = parseAsc(c.data);
      attrs.push({ key: 'rtpmap', value: `${pt} MPEG4-GENERIC/${a.sampleRate}/${a.channels || c.channels || 1}` });
      attrs.push({ key: 'fmtp', value: `${pt} profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=${toHex(c.data)}` });
      break;
    }
    case 'opus': {
      kind = 'audio';
      let channels = c.channels ?? 2;
      if (c.data) try { channels = parseOpusHead(c.data).channels; } catch (e) { if (!(e instanceof FormatError)) throw e; }
      attrs.push({ key: 'rtpmap', value: `${pt} opus/48000/2` });
      attrs.push({ key: 'fmtp', value: `${pt} sprop-stereo=${channels >= 2 ? 1 : 0}` });
      break;
    }
    case 'pcma':
    case 'pcmu': {
      kind = 'audio';
      const rate = c.sampleRate ?? 8000, ch = c.channels ?? 1;
      if (rate === 8000 && ch === 1 && t.payloadType === undefined) pt = c.codec === 'pcma' ? 8 : 0;
      attrs.push({ key: 'rtpmap', value: `${pt} ${c.codec.toUpperCase()}/${rate}${ch > 1 ? '/' + ch : ''}` });
      break;
    }
    default:
      throw new FormatError(`codec ${c.codec} has no RTP mapping`);
  }
  attrs.push({ key: 'control', value: t.control ?? `trackID=${index}` });
  return { type: kind, port: 0, proto: 'RTP/AVP', formats: [String(pt)], bandwidths: [], attributes: attrs };
}

/** An SDP for a set of tracks (as an RTSP server answers DESCRIBE, or a client ANNOUNCEs). */
export function sdpForTracks(tracks: readonly SdpTrackOut[], o: SdpBuildOptions = {}): string {
  const addr = o.originAddress ?? '127.0.0.1';
  const sdp: Sdp = {
    version: 0, origin: `- 0 0 IN IP4 ${addr}`, sessionName: o.sessionName ?? 'Stream', bandwidths: [], times: ['0 0'],
    connection: `IN IP4 ${o.connectionAddress ?? '0.0.0.0'}`,
    attributes: [{ key: 'tool', value: o.tool ?? 'm7s' }, { key: 'control', value: '*' }],
    media: tracks.map((t, i) => sdpMediaForTrack(t, i)),
  };
  if (o.range) sdp.attributes.push({ key: 'range', value: formatNptRange(o.range) });
  return formatSdp(sdp);
}
