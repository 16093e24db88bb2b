// Codec choice for WHIP and WHEP offers, with our own SDP code: for each audio/video section of the
// offer, pick the one payload type this server will use and cut the others out of the offer before the
// WebRTC stack sees it (so its answer names exactly that codec). Pure: offer text in, choice out.
//
// WHIP (publish): video H.264 (packetization-mode=1 first), H.265, VP8, VP9 or AV1 (in that order of
// preference); audio Opus, PCMA or PCMU.
// WHEP (play): the codec the source track has; H.264 prefers an offered profile that matches the source
// profile (profile_idc and constraint flags), then any with packetization-mode=1.

import { FormatError } from '../../src/format/bytes.ts';
import { fmtp, parseSdp, rtpmaps, type Sdp, type SdpMedia } from '../../src/format/sdp/index.ts';
import { sdpTracks, type SdpTrack } from '../../src/format/sdp/codec.ts';
import { parseAvcC } from '../../src/codec/h264.ts';

/** Codecs accepted from a WHIP publisher, in order of preference, per media kind. */
export const PUBLISH_CODECS: Record<string, string[]> = { video: ['h264', 'h265', 'vp8', 'vp9', 'av1'], audio: ['opus', 'pcma', 'pcmu'] };

/** Our codec name for an rtpmap encoding (upper-case), or undefined when we have no use for it. */
const ENCODINGS: Record<string, string> = { H264: 'h264', H265: 'h265', VP8: 'vp8', VP9: 'vp9', AV1: 'av1', OPUS: 'opus', PCMA: 'pcma', PCMU: 'pcmu' };

export interface MediaChoice {
  mid: string;
  kind: 'audio' | 'video';
  /** The chosen payload type, or undefined when the section has nothing usable (it gets no media). */
  payloadType?: number;
  codec?: string;
  /** The SDP track of the chosen payload type (clock rate, channels, config from fmtp). */
  track?: SdpTrack;
  /** Why nothing was chosen. */
  reason?: string;
}

export interface Negotiated {
  /** The offer with one payload type per usable section (unusable ones keep their first codec, unused). */
  offer: string;
  media: MediaChoice[];
}

/** Thrown for offers we cannot answer: `status` is the HTTP status to answer with. */
export class OfferError extends Error {
  constructor(readonly status: 400 | 406, message: string) { super(message); }
}

function parseOffer(text: string): Sdp {
  let sdp: Sdp;
  try {
    sdp = parseSdp(text);
  } catch (e) {
    if (e instanceof FormatError) throw new OfferError(400, `malformed SDP offer: ${e.message}`);
    throw e;
  }
  if (!sdp.media.length) throw new OfferError(400, 'SDP offer has no media sections');
  for (const m of sdp.media) {
    if ((m.type === 'audio' || m.type === 'video') && !m.attributes.some((a) => a.key === 'ice-ufrag') &&
        !sdp.attributes.some((a) => a.key === 'ice-ufrag')) {
      throw new OfferError(400, 'SDP offer has no ICE credentials (a=ice-ufrag): not a WebRTC offer');
    }
    if ((m.type === 'audio' || m.type === 'video') && !m.attributes.some((a) => a.key === 'fingerprint') &&
        !sdp.attributes.some((a) => a.key === 'fingerprint')) {
      throw new OfferError(400, 'SDP offer has no DTLS fingerprint (a=fingerprint): not a WebRTC offer');
    }
  }
  return sdp;
}

/** Payload types of `m` whose encoding we know, with the codec name and fmtp. */
function candidates(m: SdpMedia): { pt: number; codec: string; fmtp: Record<string, string> }[] {
  const maps = rtpmaps(m);
  const out: { pt: number; codec: string; fmtp: Record<string, string> }[] = [];
  for (const f of m.formats) {
    const pt = Number(f);
    const map = maps.get(pt);
    const enc = map ? map.encoding.toUpperCase() : pt === 0 ? 'PCMU' : pt === 8 ? 'PCMA' : '';
    const codec = ENCODINGS[enc];
    if (!codec) continue;
    if (['h264', 'h265', 'vp8', 'vp9', 'av1'].includes(codec) && map?.clockRate !== 90000) continue;
    if (codec === 'opus' && map?.clockRate !== 48000) continue;
    out.push({ pt, codec, fmtp: fmtp(m, pt) });
  }
  return out;
}

/** Keep only payload type `pt` in `m` (rtpmap/fmtp/rtcp-fb of the others dropped). */
function keepOnly(m: SdpMedia, pt: number): void {
  m.formats = [String(pt)];
  m.attributes = m.attributes.filter((a) => {
    if (a.key !== 'rtpmap' && a.key !== 'fmtp' && a.key !== 'rtcp-fb') return true;
    const p = (a.value ?? '').split(/\s/, 1)[0];
    return p === String(pt) || p === '*';
  });
}

/** 0..n: how well an offered H.264 fmtp suits a source with this avcC (higher is better; -1 unusable). */
export function h264Score(f: Record<string, string>, source?: { profile: number; compat: number }): number {
  if (f['packetization-mode'] !== '1') return -1; // mode 0 (single NAL) cannot carry our FU-A packets
  const pli = (f['profile-level-id'] ?? '42001f').toLowerCase();
  if (!/^[0-9a-f]{6}$/.test(pli)) return 0;
  const profile = parseInt(pli.slice(0, 2), 16), compat = parseInt(pli.slice(2, 4), 16);
  let s = 1;
  if (f['level-asymmetry-allowed'] === '1') s += 1;
  if (source) {
    if (profile === source.profile) s += 4;
    if (profile === source.profile && (compat & 0xfc) === (source.compat & 0xfc)) s += 2;
    // Constrained Baseline (42e0 / 4240) is a subset of Main/High: a High-profile decoder takes it.
    if (source.profile === 0x42 && (source.compat & 0x40) && (profile === 0x4d || profile === 0x64)) s += 3;
  }
  return s;
}

function chooseSections(sdp: Sdp, pick: (kind: 'audio' | 'video', c: ReturnType<typeof candidates>) => { pt: number; codec: string } | string): MediaChoice[] {
  const out: MediaChoice[] = [];
  sdp.media.forEach((m, i) => {
    if (m.type !== 'audio' && m.type !== 'video') return;
    const mid = m.attributes.find((a) => a.key === 'mid')?.value ?? String(i);
    const kind = m.type;
    if (m.port === 0) { out.push({ mid, kind, reason: 'section rejected by the offerer (port 0)' }); return; }
    const r = pick(kind, candidates(m));
    if (typeof r === 'string') { out.push({ mid, kind, reason: r }); return; }
    keepOnly(m, r.pt);
    out.push({ mid, kind, payloadType: r.pt, codec: r.codec });
  });
  // SDP tracks of the rewritten sections (one payload type each) carry clock rate, channels and config.
  const tracks = sdpTracks(sdp);
  for (const c of out) {
    if (c.payloadType === undefined) continue;
    c.track = tracks.find((t) => t.payloadType === c.payloadType && t.kind === c.kind);
  }
  return out;
}

/** WHIP: what a publisher's offer will send us. 406 when no section has a codec we take. */
export function negotiatePublish(text: string): Negotiated {
  const sdp = parseOffer(text);
  const media = chooseSections(sdp, (kind, cands) => {
    for (const want of PUBLISH_CODECS[kind]!) {
      const ok = cands.filter((c) => c.codec === want && (want !== 'h264' || h264Score(c.fmtp) >= 0));
      if (want === 'h264') ok.sort((a, b) => h264Score(b.fmtp) - h264Score(a.fmtp));
      if (ok[0]) return { pt: ok[0].pt, codec: want };
    }
    return `no supported ${kind} codec offered (we take ${PUBLISH_CODECS[kind]!.join(', ')}${kind === 'video' ? ' with packetization-mode=1' : ''})`;
  });
  if (!media.some((c) => c.payloadType !== undefined)) {
    throw new OfferError(406, `no usable media in the offer: ${media.map((c) => `${c.kind}: ${c.reason}`).join('; ') || 'no audio or video section'}`);
  }
  return { offer: sdpText(sdp, text), media };
}

/** What a WHEP viewer can get of a stream: the codec config of its main video and audio track. */
export interface SourceTracks { video?: { codec: string; data?: Uint8Array }; audio?: { codec: string; channels?: number } }

/** WHEP: which offered payload type carries each source track. 406 when none can be played. */
export function negotiatePlay(text: string, source: SourceTracks): Negotiated {
  const sdp = parseOffer(text);
  let h264src: { profile: number; compat: number } | undefined;
  if (source.video?.codec === 'h264' && source.video.data) {
    try {
      const a = parseAvcC(source.video.data);
      h264src = { profile: a.profile, compat: a.compat };
    } catch (e) {
      if (!(e instanceof FormatError)) throw e;
    }
  }
  const used = new Set<string>();
  const media = chooseSections(sdp, (kind, cands) => {
    const src = source[kind];
    if (!src) return `the stream has no ${kind} track`;
    if (used.has(kind)) return `the stream's ${kind} track is sent on an earlier section`;
    let ok = cands.filter((c) => c.codec === src.codec);
    if (src.codec === 'h264') ok = ok.filter((c) => h264Score(c.fmtp, h264src) >= 0).sort((a, b) => h264Score(b.fmtp, h264src) - h264Score(a.fmtp, h264src));
    if (!ok[0]) {
      return src.codec === 'aac'
        ? 'the stream has AAC audio, which WebRTC cannot carry, and no audio bridge made Opus of it (plugins/audiobridge: needs child processes and ffmpeg)'
        : `the stream's ${kind} is ${src.codec}, which the offer does not include`;
    }
    used.add(kind);
    return { pt: ok[0].pt, codec: src.codec };
  });
  if (!media.some((c) => c.payloadType !== undefined)) {
    throw new OfferError(406, `nothing in the offer can play this stream: ${media.map((c) => `${c.kind}: ${c.reason}`).join('; ') || 'no audio or video section'}`);
  }
  return { offer: sdpText(sdp, text), media };
}

/** The rewritten offer: the original text with each section's m=/rtpmap/fmtp/rtcp-fb lines narrowed. */
function sdpText(sdp: Sdp, original: string): string {
  // Rebuild section by section from the original lines so nothing we do not model (ssrc-group, extmap-
  // allow-mixed, msid-semantic…) is lost; only formats and per-payload-type attributes change.
  const lines = original.split(/\r?\n/).filter((l) => l.trim() !== '');
  const out: string[] = [];
  let mi = -1;
  for (const l of lines) {
    if (l.startsWith('m=')) {
      mi++;
      const m = sdp.media[mi]!;
      out.push(`m=${m.type} ${m.port}${m.numPorts ? '/' + m.numPorts : ''} ${m.proto} ${m.formats.join(' ')}`);
      continue;
    }
    if (mi >= 0 && /^a=(rtpmap|fmtp|rtcp-fb):/.test(l)) {
      const m = sdp.media[mi]!;
      const pt = l.slice(l.indexOf(':') + 1).split(/\s/, 1)[0];
      if (pt !== '*' && !m.formats.includes(pt!)) continue;
    }
    out.push(l);
  }
  return out.join('\r\n') + '\r\n';
}
