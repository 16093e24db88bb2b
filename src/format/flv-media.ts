// FLV tag bodies ⇄ engine frames. RTMP messages and FLV tags carry the same bodies, so every plugin
// that speaks either (rtmp, flv, and later recorders) uses these two pieces:
//   FlvIngest  — tag bodies in (sequence headers, coded frames, metadata) → publisher tracks and frames
//   flvBody()  — a frame's tag body out, built once per frame and shared by every FLV/RTMP subscriber
// Timestamps: FLV/RTMP carry milliseconds; tracks use 90 kHz (video) and the sample rate (audio).

import { parseAsc, aacCodecString } from '../codec/aac.ts';
import { h264CodecString, normalizeAvcc, parseAvcC, parseH264Sps } from '../codec/h264.ts';
import { h265CodecString, parseH265Sps, parseHvcC } from '../codec/h265.ts';
import { parseOpusHead } from '../codec/opus.ts';
import type { CodecConfig, Frame, Track } from '../core/frame.ts';
import type { Publisher } from '../core/publisher.ts';
import { FormatError } from './bytes.ts';
import {
  type AudioCodec, buildAudioTagHeader, buildOnMetaData, buildVideoTagHeader, FLV_TAG_AUDIO, FLV_TAG_SCRIPT, FLV_TAG_VIDEO,
  parseAudioTagBody, parseScriptTagBody, parseVideoTagBody, type VideoCodec,
} from './flv.ts';

const VIDEO_CODECS = new Set<string>(['h264', 'h265', 'av1', 'vp9', 'vp8']);
/** Audio codecs we forward (others are dropped with one warning). */
const AUDIO_CODECS = new Set<string>(['aac', 'mp3', 'pcma', 'pcmu', 'opus']);

export interface FlvIngestEvents {
  /** Something was dropped or could not be parsed; `once` messages are reported once per ingest. */
  warn?(msg: string): void;
  /** onMetaData arrived. */
  metadata?(meta: Record<string, unknown>): void;
}

/**
 * Turns FLV/RTMP tag bodies into tracks and frames of one publisher. Bad bodies throw FormatError
 * (the caller decides: RTMP closes the connection, a file reader may skip the tag).
 */
export class FlvIngest {
  video: Track | null = null;
  audio: Track | null = null;
  meta: Record<string, unknown> | null = null;
  private videoLengthSize = 4;
  private warned = new Set<string>();

  constructor(readonly pub: Publisher, private readonly ev: FlvIngestEvents = {}) {}

  private warnOnce(key: string, msg: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.ev.warn?.(msg);
  }

  /** One tag: type 8 audio, 9 video, 18 script; `ts` in ms (32-bit, already extended); body bytes. */
  tag(type: number, ts: number, body: Uint8Array): void {
    if (type === FLV_TAG_VIDEO) this.videoTag(ts, body);
    else if (type === FLV_TAG_AUDIO) this.audioTag(ts, body);
    else if (type === FLV_TAG_SCRIPT) this.scriptTag(body);
  }

  private scriptTag(body: Uint8Array): void {
    let s;
    try { s = parseScriptTagBody(body); } catch { this.warnOnce('script', 'unparsable script data dropped'); return; }
    if (s.name === 'onMetaData' && s.value && typeof s.value === 'object') {
      this.meta = s.value as Record<string, unknown>;
      this.ev.metadata?.(this.meta);
    }
  }

  private videoTag(ts: number, body: Uint8Array): void {
    if (body.length === 0) return; // some encoders send empty tags
    const v = parseVideoTagBody(body);
    if (v.packet === 'end' || v.packet === 'metadata') return;
    if (!VIDEO_CODECS.has(v.codec)) { this.warnOnce('vcodec', `video codec ${v.codec} not supported; dropped`); return; }
    if (v.packet === 'seqhdr') {
      const cfg = videoConfig(v.codec, v.data);
      if (cfg.codec === 'h264' || cfg.codec === 'h265') this.videoLengthSize = cfg.lengthSize;
      if (this.video) this.pub.setConfig(this.video, cfg.config);
      else this.video = this.pub.addTrack('video', cfg.config);
      return;
    }
    if (!this.video) {
      if (v.codec === 'h264' || v.codec === 'h265') { this.warnOnce('noseq', `${v.codec} frames before the sequence header dropped`); return; }
      this.video = this.pub.addTrack('video', { codec: v.codec });
    }
    if (v.frameType === 'generated-key' && v.data.length === 0) return;
    let data = v.data;
    if ((v.codec === 'h264' || v.codec === 'h265') && this.videoLengthSize !== 4) data = normalizeAvcc(data, this.videoLengthSize);
    this.pub.write(this.video, ts * 90, v.cts * 90, v.frameType === 'key' || v.frameType === 'generated-key', data);
  }

  private audioTag(ts: number, body: Uint8Array): void {
    if (body.length === 0) return;
    const a = parseAudioTagBody(body);
    if (a.packet === 'end' || a.packet === 'multichannel') return;
    if (!AUDIO_CODECS.has(a.codec)) { this.warnOnce('acodec', `audio codec ${a.codec} not supported; dropped`); return; }
    if (a.packet === 'seqhdr') {
      const cfg = audioConfig(a.codec, a.data, a.soundRate, a.channels);
      if (this.audio && this.audio.clockRate === cfg.sampleRate) this.pub.setConfig(this.audio, cfg);
      else this.audio = this.pub.addTrack('audio', cfg, { clockRate: cfg.sampleRate });
      return;
    }
    if (!this.audio) {
      if (a.codec === 'aac' || a.codec === 'opus') { this.warnOnce('noaseq', `${a.codec} frames before the sequence header dropped`); return; }
      const rate = a.codec === 'pcma' || a.codec === 'pcmu' ? 8000 : (a.soundRate ?? 44100);
      this.audio = this.pub.addTrack('audio', { codec: a.codec, sampleRate: rate, channels: a.channels ?? 1 }, { clockRate: rate });
    }
    const rate = this.audio.clockRate;
    this.pub.write(this.audio, Math.round((ts * rate) / 1000), 0, true, a.data);
  }
}

function videoConfig(codec: VideoCodec, rec: Uint8Array): { codec: string; lengthSize: number; config: CodecConfig } {
  if (codec === 'h264') {
    const c = parseAvcC(rec);
    let width: number | undefined, height: number | undefined;
    if (c.sps[0]) { try { const s = parseH264Sps(c.sps[0]); width = s.width; height = s.height; } catch { /* keep going without size */ } }
    return { codec, lengthSize: c.lengthSize, config: { codec, data: rec, width, height, codecString: safe(() => h264CodecString(rec)) } };
  }
  if (codec === 'h265') {
    const c = parseHvcC(rec);
    let width: number | undefined, height: number | undefined;
    if (c.sps[0]) { try { const s = parseH265Sps(c.sps[0]); width = s.width; height = s.height; } catch { /* size unknown */ } }
    return { codec, lengthSize: c.lengthSize, config: { codec, data: rec, width, height, codecString: safe(() => h265CodecString(c)) } };
  }
  return { codec, lengthSize: 4, config: { codec, data: rec } };
}

function audioConfig(codec: AudioCodec, data: Uint8Array, soundRate?: number, channels?: number): CodecConfig & { sampleRate: number } {
  if (codec === 'aac') {
    const c = parseAsc(data);
    return { codec, data, sampleRate: c.sampleRate, channels: c.channels || channels || 2, codecString: aacCodecString(c) };
  }
  if (codec === 'opus') {
    const h = parseOpusHead(data);
    return { codec, data, sampleRate: 48000, channels: h.channels, codecString: 'opus' };
  }
  return { codec, sampleRate: soundRate ?? 44100, channels: channels ?? 2 };
}

function safe<T>(f: () => T): T | undefined {
  try { return f(); } catch { return undefined; }
}

// ------------------------------------------------------------------------------------------ egress

/** FLV tag type for a track kind. */
export function flvTagType(kind: Track['kind']): 8 | 9 | 18 {
  return kind === 'video' ? FLV_TAG_VIDEO : kind === 'audio' ? FLV_TAG_AUDIO : FLV_TAG_SCRIPT;
}

export interface FlvBody {
  /** Body parts: tag-body header, then the payload (never copied). */
  parts: Uint8Array[];
  /** Total body size. */
  size: number;
}

/** Whether a track can be carried in FLV/RTMP. */
export function flvCanCarry(t: Track): boolean {
  return t.kind === 'video' ? VIDEO_CODECS.has(t.codec) : t.kind === 'audio' ? AUDIO_CODECS.has(t.codec) : false;
}

/** The tag body of a frame, built on first use and shared by every subscriber (cache key 'flv.body'). */
export function flvBody(f: Frame): FlvBody {
  return f.pack('flv.body', (fr) => buildFlvBody(fr));
}

/**
 * The tag body of a frame sent with another composition offset than its own (`cts` in track clock
 * units; a catch-up's retimed frame, see Subscriber.planCatchup): a header of its own in front of the
 * frame's shared payload. The frame's shared body when the offset is the same in ms.
 */
export function flvBodyWithCts(f: Frame, cts: number): FlvBody {
  const t = f.track;
  if (t.kind !== 'video' || Math.round((cts * 1000) / t.clockRate) === Math.round((f.cts * 1000) / t.clockRate)) return flvBody(f);
  return buildFlvBody(f, cts);
}

function buildFlvBody(f: Frame, ctsClock = f.cts): FlvBody {
  const t = f.track;
  let header: Uint8Array;
  if (t.kind === 'video') {
    const codec = t.codec as VideoCodec;
    const cts = codec === 'h264' || codec === 'h265' ? Math.round((ctsClock * 1000) / t.clockRate) : 0;
    header = buildVideoTagHeader({ codec, packet: 'nalu', frameType: f.key ? 'key' : 'inter', cts });
  } else if (t.kind === 'audio') {
    header = audioHeader(f.config, 'raw');
  } else {
    return { parts: [f.data], size: f.data.length };
  }
  return { parts: [header, f.data], size: header.length + f.data.length };
}

const audioHeaders = new WeakMap<CodecConfig, Uint8Array>();
function audioHeader(cfg: CodecConfig, packet: 'raw' | 'seqhdr'): Uint8Array {
  if (packet === 'raw') {
    let h = audioHeaders.get(cfg);
    if (!h) audioHeaders.set(cfg, (h = buildAudioTagHeader({ codec: cfg.codec as AudioCodec, packet, soundRate: cfg.sampleRate, channels: cfg.channels })));
    return h;
  }
  return buildAudioTagHeader({ codec: cfg.codec as AudioCodec, packet, soundRate: cfg.sampleRate, channels: cfg.channels });
}

/** The sequence-header tag body for a track's config, or null when the codec has none (MP3, G.711). */
export function flvSequenceHeader(t: Track, cfg: CodecConfig): FlvBody | null {
  if (!cfg.data) return null;
  if (t.kind === 'video') {
    if (!VIDEO_CODECS.has(cfg.codec)) return null;
    const h = buildVideoTagHeader({ codec: cfg.codec as VideoCodec, packet: 'seqhdr' });
    return { parts: [h, cfg.data], size: h.length + cfg.data.length };
  }
  if (t.kind === 'audio' && (cfg.codec === 'aac' || cfg.codec === 'opus')) {
    const h = audioHeader(cfg, 'seqhdr');
    return { parts: [h, cfg.data], size: h.length + cfg.data.length };
  }
  return null;
}

/** onMetaData fields describing the tracks a subscriber will receive. */
export function flvMetaFields(tracks: Track[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  const meta: Record<string, unknown> = {};
  const v = tracks.find((t) => t.kind === 'video' && flvCanCarry(t));
  const a = tracks.find((t) => t.kind === 'audio' && flvCanCarry(t));
  if (v) {
    const c = v.config;
    if (c.width) meta.width = c.width;
    if (c.height) meta.height = c.height;
    if (v.fps) meta.framerate = v.fps;
    meta.videocodecid = ({ h264: 7, h265: 12, av1: 13, vp9: 14 } as Record<string, number>)[c.codec] ?? 0;
  }
  if (a) {
    const c = a.config;
    meta.audiocodecid = ({ aac: 10, mp3: 2, pcma: 7, pcmu: 8, opus: 13 } as Record<string, number>)[c.codec] ?? 0;
    if (c.sampleRate) meta.audiosamplerate = c.sampleRate;
    if (c.channels) meta.stereo = c.channels > 1;
  }
  meta.encoder = 'm7s';
  return { ...meta, ...extra };
}

/** An onMetaData script-tag body describing the tracks a subscriber will receive (shared: read-only). */
export function flvMetaData(tracks: Track[], extra: Record<string, unknown> = {}): Uint8Array {
  const fields = flvMetaFields(tracks, extra);
  return metaBytes('flv', fields, () => buildOnMetaData(fields));
}

/**
 * Encoded metadata by its fields and form: every player of a stream gets the same bytes, and a join
 * storm encoded them once per player (AMF0 encoding measured ~45 µs a join in a busy Node server,
 * ~3 µs in a loop of its own). Few distinct values live at once (a stream's fps changes now and
 * then): the map is emptied when it passes 64 entries. The bytes are shared: callers never write to
 * them. Fields JSON cannot key are encoded every time.
 */
export function metaBytes(form: string, fields: Record<string, unknown>, build: () => Uint8Array): Uint8Array {
  let key: string;
  try { key = form + JSON.stringify(fields); } catch { return build(); }
  let b = metaCache.get(key);
  if (b === undefined) {
    b = build();
    if (metaCache.size >= 64) metaCache.clear();
    metaCache.set(key, b);
  }
  return b;
}
const metaCache = new Map<string, Uint8Array>();

export { FormatError };
