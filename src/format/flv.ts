// FLV: file header, tag framing (mux and a streaming demuxer), and the audio/video tag bodies that RTMP
// messages share, including Enhanced RTMP/FLV (E-RTMP, Veovera): FourCC video (avc1, hvc1, av01, vp09,
// vp08) and audio (Opus, fLaC, ac-3, ec-3, mp4a, .mp3), ModEx prefixes and single-track multitrack.
//
// Layout reminders (all big-endian):
//   file header  'F' 'L' 'V' version flags(audio=4, video=1) dataOffset:u32, then PreviousTagSize0:u32 = 0
//   tag          type:u8 dataSize:u24 timestamp:u24 timestampExt:u8 streamId:u24 | data | PreviousTagSize:u32
//   video (legacy)   frameType:4 codecId:4 | AVCPacketType:u8 compositionTime:si24 | data
//   video (E-RTMP)   1 frameType:3 packetType:4 | [ModEx...] FourCC [si24 cts] | data
//   audio (legacy)   soundFormat:4 rate:2 size:1 type:1 | [AACPacketType:u8] | data
//   audio (E-RTMP)   9:4 packetType:4 | [ModEx...] FourCC | data
//
// Parsers return views into the input (no copies); builders return a small header to put in front of the
// caller's payload so the payload is never copied either.

import { amf0Decode, amf0Encode, AmfEcmaArray } from './amf.ts';
import { ByteReader, FormatError, UnsupportedFormatError } from './bytes.ts';

export const FLV_TAG_AUDIO = 8;
export const FLV_TAG_VIDEO = 9;
export const FLV_TAG_SCRIPT = 18;
export type FlvTagType = 8 | 9 | 18;

/** Size of an FLV tag header. */
export const FLV_TAG_HEADER_SIZE = 11;
/** Default upper bound for one tag's data in the demuxer (the format's own limit is 16 MiB - 1). */
export const FLV_DEFAULT_MAX_TAG_SIZE = 8 * 1024 * 1024;

const EMPTY = new Uint8Array(0);

// ---------------------------------------------------------------------------------------------------
// File header and tag framing

/** The 9-byte FLV file header followed by PreviousTagSize0 (13 bytes in all). */
export function flvHeader(opts: { audio?: boolean; video?: boolean } = { audio: true, video: true }): Uint8Array {
  const h = new Uint8Array(13);
  h[0] = 0x46; // 'F'
  h[1] = 0x4c; // 'L'
  h[2] = 0x56; // 'V'
  h[3] = 1;
  h[4] = (opts.audio ? 4 : 0) | (opts.video ? 1 : 0);
  h[8] = 9; // dataOffset
  return h;
}

export interface FlvFileHeader {
  version: number;
  audio: boolean;
  video: boolean;
  /** Offset of PreviousTagSize0 from the start of the file (9 for every real file). */
  dataOffset: number;
}

/** Parse the 9-byte file header at `offset`. */
export function parseFlvHeader(b: Uint8Array, offset = 0): FlvFileHeader {
  if (b.length - offset < 9) throw new FormatError(`FLV header needs 9 bytes, got ${Math.max(0, b.length - offset)}`);
  if (b[offset] !== 0x46 || b[offset + 1] !== 0x4c || b[offset + 2] !== 0x56) throw new FormatError('not an FLV stream (no "FLV" signature)');
  const version = b[offset + 3]!;
  if (version !== 1) throw new FormatError(`unsupported FLV version ${version}`);
  const flags = b[offset + 4]!;
  const dataOffset = ((b[offset + 5]! << 24) | (b[offset + 6]! << 16) | (b[offset + 7]! << 8) | b[offset + 8]!) >>> 0;
  if (dataOffset < 9 || dataOffset > 4096) throw new FormatError(`implausible FLV header dataOffset ${dataOffset}`);
  return { version, audio: (flags & 4) !== 0, video: (flags & 1) !== 0, dataOffset };
}

export interface FlvTagHeader {
  type: FlvTagType;
  dataSize: number;
  /** Milliseconds, 32-bit (the extension byte is the high byte). */
  timestamp: number;
  streamId: number;
}

/** Parse an 11-byte tag header at `offset`. Rejects unknown and encrypted (filtered) tags. */
export function parseFlvTagHeader(b: Uint8Array, offset = 0): FlvTagHeader {
  if (b.length - offset < FLV_TAG_HEADER_SIZE) {
    throw new FormatError(`FLV tag header needs 11 bytes, got ${Math.max(0, b.length - offset)}`);
  }
  const b0 = b[offset]!;
  if (b0 & 0x20) throw new UnsupportedFormatError('encrypted (filtered) FLV tag');
  if (b0 & 0xc0) throw new FormatError(`FLV tag header reserved bits set (0x${b0.toString(16)})`);
  const type = b0 & 0x1f;
  if (type !== FLV_TAG_AUDIO && type !== FLV_TAG_VIDEO && type !== FLV_TAG_SCRIPT) throw new FormatError(`unknown FLV tag type ${type}`);
  const dataSize = (b[offset + 1]! << 16) | (b[offset + 2]! << 8) | b[offset + 3]!;
  const timestamp = ((b[offset + 7]! << 24) | (b[offset + 4]! << 16) | (b[offset + 5]! << 8) | b[offset + 6]!) >>> 0;
  const streamId = (b[offset + 8]! << 16) | (b[offset + 9]! << 8) | b[offset + 10]!;
  return { type, dataSize, timestamp, streamId };
}

/** Write an 11-byte tag header into `out` at `offset`. `timestampMs` is taken modulo 2^32. */
export function writeFlvTagHeader(out: Uint8Array, offset: number, type: FlvTagType, dataSize: number, timestampMs: number): void {
  if (dataSize > 0xffffff || dataSize < 0) throw new FormatError(`FLV tag data of ${dataSize} bytes exceeds 16 MiB`);
  const ts = Math.floor(timestampMs) >>> 0;
  out[offset] = type;
  out[offset + 1] = dataSize >>> 16;
  out[offset + 2] = dataSize >>> 8;
  out[offset + 3] = dataSize;
  out[offset + 4] = ts >>> 16;
  out[offset + 5] = ts >>> 8;
  out[offset + 6] = ts;
  out[offset + 7] = ts >>> 24;
  out[offset + 8] = 0;
  out[offset + 9] = 0;
  out[offset + 10] = 0;
}

/**
 * One complete FLV tag as a vectored write: [11-byte header, ...payloadParts, 4-byte PreviousTagSize].
 * The payload parts are not copied; header and trailer share one small allocation.
 */
export function flvTag(type: FlvTagType, timestampMs: number, payloadParts: readonly Uint8Array[]): Uint8Array[] {
  let size = 0;
  for (const p of payloadParts) size += p.length;
  const hdr = new Uint8Array(15);
  writeFlvTagHeader(hdr, 0, type, size, timestampMs);
  const total = size + FLV_TAG_HEADER_SIZE;
  hdr[11] = total >>> 24;
  hdr[12] = total >>> 16;
  hdr[13] = total >>> 8;
  hdr[14] = total;
  const out: Uint8Array[] = [hdr.subarray(0, 11)];
  for (const p of payloadParts) if (p.length) out.push(p);
  out.push(hdr.subarray(11, 15));
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Streaming demuxer

export interface FlvTag {
  type: FlvTagType;
  /** Milliseconds (32-bit). */
  timestamp: number;
  streamId: number;
  /** The tag data. A view into a pushed chunk when it arrived in one piece, unless `copy` is set. */
  data: Uint8Array;
}

export interface FlvDemuxerOptions {
  /** Largest tag data accepted, in bytes [8 MiB]. A bigger declared size is a FormatError. */
  maxTagSize?: number;
  /** Expect the 9-byte file header and PreviousTagSize0 first [true]. */
  header?: boolean;
  /** Require PreviousTagSize to equal 11 + dataSize (and PreviousTagSize0 to be 0) [true]. */
  checkPreviousTagSize?: boolean;
  /** Copy every tag's data (for adapters that reuse their read buffer) [false]. */
  copy?: boolean;
}

/** First allocation for a tag body that spans chunks; it doubles up to the tag's size as data arrives. */
const BODY_INITIAL = 64 * 1024;

const S_HEADER = 0;
const S_SKIP = 1;
const S_PREV = 2;
const S_TAG_HEADER = 3;
const S_BODY = 4;

/**
 * Push-based FLV demuxer: feed chunks of any size with push(); each complete tag goes to `onTag`
 * synchronously. Malformed input throws a FormatError from push(), after which the demuxer stays failed
 * (every later push() rethrows) because it can no longer find tag boundaries; an exception thrown by
 * `onTag` propagates the same way.
 */
export class FlvDemuxer {
  /** The file header, once parsed (null with `header: false`). */
  fileHeader: FlvFileHeader | null = null;
  /** Tags emitted so far. */
  tags = 0;

  private readonly onTag: (tag: FlvTag) => void;
  private readonly maxTagSize: number;
  private readonly checkPrev: boolean;
  private readonly copy: boolean;

  private state: number;
  /** Bytes still needed for the current item. */
  private need: number;
  /** Staging area for small fixed-size items split across chunks. */
  private readonly scratch = new Uint8Array(16);
  private fill = 0;
  /** Body being assembled from several chunks. */
  private body: Uint8Array | null = null;
  private cur: FlvTagHeader | null = null;
  private lastDataSize = -1;
  private failed: Error | null = null;

  constructor(onTag: (tag: FlvTag) => void, opts: FlvDemuxerOptions = {}) {
    this.onTag = onTag;
    this.maxTagSize = Math.min(opts.maxTagSize ?? FLV_DEFAULT_MAX_TAG_SIZE, 0xffffff);
    this.checkPrev = opts.checkPreviousTagSize ?? true;
    this.copy = opts.copy ?? false;
    if (opts.header ?? true) {
      this.state = S_HEADER;
      this.need = 9;
    } else {
      this.state = S_TAG_HEADER;
      this.need = FLV_TAG_HEADER_SIZE;
    }
  }

  /** Bytes received but not yet part of an emitted tag. */
  get pending(): number {
    if (this.state === S_BODY) return this.body ? this.fill : 0;
    return this.state === S_SKIP ? 0 : this.fill;
  }

  /** True when no partial tag is buffered: a clean place for the input to end. */
  get atBoundary(): boolean {
    return this.state === S_PREV || (this.state === S_TAG_HEADER && this.fill === 0);
  }

  push(chunk: Uint8Array): void {
    if (this.failed) throw this.failed;
    try {
      this.consume(chunk);
    } catch (e) {
      this.failed = e instanceof Error ? e : new Error(String(e));
      throw e;
    }
  }

  /**
   * Declare the end of input: throws a FormatError if it stopped inside a header or a tag. A stream may
   * end without the last tag's PreviousTagSize (live cut-offs), so a partial trailer is accepted.
   */
  end(): void {
    if (this.failed) throw this.failed;
    if (!this.atBoundary) throw new FormatError(`FLV stream ended inside ${this.state === S_BODY ? 'a tag body' : 'a header'}`);
  }

  private consume(chunk: Uint8Array): void {
    const n = chunk.length;
    let p = 0;
    while (p < n) {
      if (this.state === S_BODY) {
        const need = this.need;
        if (this.body === null && n - p >= need) {
          // Whole body in this chunk: hand out a view.
          const data = chunk.subarray(p, p + need);
          p += need;
          this.emit(this.copy ? data.slice() : data);
          continue;
        }
        const take = Math.min(need - this.fill, n - p);
        if (this.body === null) {
          // Memory follows the bytes that actually arrive, not the declared size: start small and grow.
          this.body = new Uint8Array(Math.min(need, Math.max(BODY_INITIAL, take)));
          this.fill = 0;
        }
        if (this.fill + take > this.body.length) {
          const grown = new Uint8Array(Math.min(need, Math.max(this.fill + take, this.body.length * 2)));
          grown.set(this.body.subarray(0, this.fill));
          this.body = grown;
        }
        this.body.set(chunk.subarray(p, p + take), this.fill);
        this.fill += take;
        p += take;
        if (this.fill === need) {
          const data = this.body;
          this.body = null;
          this.fill = 0;
          this.emit(data);
        }
        continue;
      }
      if (this.state === S_SKIP) {
        const take = Math.min(this.need, n - p);
        this.need -= take;
        p += take;
        if (this.need === 0) this.toPrev(-1);
        continue;
      }
      // Fixed-size item (file header, tag header, PreviousTagSize).
      const need = this.need;
      let src: Uint8Array;
      let at: number;
      if (this.fill === 0 && n - p >= need) {
        src = chunk;
        at = p;
        p += need;
      } else {
        const take = Math.min(need - this.fill, n - p);
        this.scratch.set(chunk.subarray(p, p + take), this.fill);
        this.fill += take;
        p += take;
        if (this.fill < need) continue;
        src = this.scratch;
        at = 0;
        this.fill = 0;
      }
      this.item(src, at);
    }
  }

  private toPrev(expectedDataSize: number): void {
    this.state = S_PREV;
    this.need = 4;
    this.lastDataSize = expectedDataSize;
  }

  private item(b: Uint8Array, at: number): void {
    switch (this.state) {
      case S_HEADER: {
        const h = parseFlvHeader(b, at);
        this.fileHeader = h;
        if (h.dataOffset > 9) {
          this.state = S_SKIP;
          this.need = h.dataOffset - 9;
        } else {
          this.toPrev(-1);
        }
        return;
      }
      case S_PREV: {
        const v = ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
        if (this.checkPrev) {
          const expect = this.lastDataSize < 0 ? 0 : this.lastDataSize + FLV_TAG_HEADER_SIZE;
          if (v !== expect) throw new FormatError(`FLV PreviousTagSize ${v} does not match the previous tag (${expect})`);
        }
        this.state = S_TAG_HEADER;
        this.need = FLV_TAG_HEADER_SIZE;
        return;
      }
      case S_TAG_HEADER: {
        const h = parseFlvTagHeader(b, at);
        if (h.dataSize > this.maxTagSize) throw new FormatError(`FLV tag of ${h.dataSize} bytes exceeds the ${this.maxTagSize}-byte limit`);
        this.cur = h;
        if (h.dataSize === 0) {
          this.emit(EMPTY);
        } else {
          this.state = S_BODY;
          this.need = h.dataSize;
        }
        return;
      }
    }
  }

  private emit(data: Uint8Array): void {
    const h = this.cur!;
    this.toPrev(h.dataSize);
    this.tags++;
    this.onTag({ type: h.type, timestamp: h.timestamp, streamId: h.streamId, data });
  }
}

// ---------------------------------------------------------------------------------------------------
// Video tag bodies

export type VideoCodec = 'h264' | 'h265' | 'av1' | 'vp9' | 'vp8';
export type VideoFrameType = 'key' | 'inter' | 'disposable' | 'generated-key';
/** seqhdr: decoder configuration record; nalu: coded frame(s); end: end of sequence; metadata: AMF. */
export type VideoPacket = 'seqhdr' | 'nalu' | 'end' | 'metadata';

export interface VideoTagBody {
  codec: VideoCodec;
  frameType: VideoFrameType;
  packet: VideoPacket;
  /** Composition time offset in ms (signed 24-bit); 0 when the packet has none. */
  cts: number;
  /**
   * seqhdr: the configuration record (avcC / hvcC / av1C / vpcC). nalu: the frame (length-prefixed
   * NALUs for H.264/H.265 with the record's length size, OBUs for AV1, a frame for VP8/VP9).
   * metadata: AMF0 name/value pairs (see parseVideoMetadata). end: empty.
   */
  data: Uint8Array;
  /** Signalled with the E-RTMP extended header (FourCC). */
  enhanced: boolean;
  /** E-RTMP single-track multitrack: the track id. */
  trackId?: number;
  /** E-RTMP ModEx TimestampOffsetNano (0..999999 ns added to the tag timestamp). */
  timestampOffsetNano?: number;
}

const VIDEO_FRAME_TYPES: readonly (VideoFrameType | undefined)[] = [undefined, 'key', 'inter', 'disposable', 'generated-key'];
const VIDEO_FRAME_TYPE_IDS: Record<VideoFrameType, number> = { key: 1, inter: 2, disposable: 3, 'generated-key': 4 };

const VIDEO_FOURCC: Record<string, VideoCodec> = { avc1: 'h264', hvc1: 'h265', av01: 'av1', vp09: 'vp9', vp08: 'vp8' };
const VIDEO_CODEC_FOURCC: Record<VideoCodec, string> = { h264: 'avc1', h265: 'hvc1', av1: 'av01', vp9: 'vp09', vp8: 'vp08' };

// Legacy FLV codec ids.
const CODEC_ID_AVC = 7;
const CODEC_ID_HEVC = 12; // the widespread (non-standard) Chinese CDN extension

// E-RTMP video packet types.
const VPT_SEQUENCE_START = 0;
const VPT_CODED_FRAMES = 1;
const VPT_SEQUENCE_END = 2;
const VPT_CODED_FRAMES_X = 3;
const VPT_METADATA = 4;
const VPT_MPEG2TS_SEQUENCE_START = 5;
const VPT_MULTITRACK = 6;
const VPT_MOD_EX = 7;

// E-RTMP audio packet types.
const APT_SEQUENCE_START = 0;
const APT_CODED_FRAMES = 1;
const APT_SEQUENCE_END = 2;
const APT_MULTICHANNEL_CONFIG = 4;
const APT_MULTITRACK = 5;
const APT_MOD_EX = 7;

const FRAME_TYPE_COMMAND = 5;

function printable(s: string): string {
  return JSON.stringify(s);
}

/** Reads E-RTMP ModEx prefixes (shared by audio and video); returns the final packet type. */
function readModEx(r: ByteReader, packetType: number, modExCode: number, out: { timestampOffsetNano?: number }): number {
  let guard = 0;
  while (packetType === modExCode) {
    if (++guard > 16) throw new FormatError('E-RTMP: more than 16 ModEx prefixes');
    let size = r.u8() + 1;
    if (size === 256) size = r.u16() + 1;
    const data = r.bytes(size, 'E-RTMP ModEx data');
    const b = r.u8();
    const modExType = b >> 4;
    packetType = b & 0x0f;
    if (modExType === 0 && size >= 3) {
      // TimestampOffsetNano: UI24 nanoseconds.
      out.timestampOffsetNano = (data[0]! << 16) | (data[1]! << 8) | data[2]!;
    }
  }
  return packetType;
}

/** Parse a video tag body (an FLV video tag's data or an RTMP video message). */
export function parseVideoTagBody(body: Uint8Array): VideoTagBody {
  if (body.length < 1) throw new FormatError('empty video tag');
  const b0 = body[0]!;
  const ft = (b0 >> 4) & 7;
  if ((b0 & 0x80) === 0) {
    // Legacy header.
    const codecId = b0 & 0x0f;
    if (ft === FRAME_TYPE_COMMAND) throw new UnsupportedFormatError('video command frame');
    const frameType = VIDEO_FRAME_TYPES[ft];
    if (!frameType) throw new FormatError(`reserved video frame type ${ft}`);
    if (codecId !== CODEC_ID_AVC && codecId !== CODEC_ID_HEVC) throw new UnsupportedFormatError(`legacy video codec id ${codecId}`);
    if (body.length < 5) throw new FormatError(`video tag of ${body.length} bytes is shorter than its 5-byte header`);
    const pt = body[1]!;
    const packet: VideoPacket | undefined = pt === 0 ? 'seqhdr' : pt === 1 ? 'nalu' : pt === 2 ? 'end' : undefined;
    if (!packet) throw new FormatError(`unknown AVC packet type ${pt}`);
    const cts = (((body[2]! << 16) | (body[3]! << 8) | body[4]!) << 8) >> 8;
    return { codec: codecId === CODEC_ID_AVC ? 'h264' : 'h265', frameType, packet, cts, data: body.subarray(5), enhanced: false };
  }

  // E-RTMP extended header.
  const r = new ByteReader(body, 1);
  const extra: { timestampOffsetNano?: number } = {};
  let pt = readModEx(r, b0 & 0x0f, VPT_MOD_EX, extra);
  if (ft === FRAME_TYPE_COMMAND && pt !== VPT_METADATA) throw new UnsupportedFormatError('video command frame');
  let trackId: number | undefined;
  let fourcc: string;
  if (pt === VPT_MULTITRACK) {
    const m = r.u8();
    const multitrackType = m >> 4;
    pt = m & 0x0f;
    if (multitrackType !== 0) throw new UnsupportedFormatError(`E-RTMP video multitrack type ${multitrackType} (only one-track is supported)`);
    if (pt === VPT_MULTITRACK || pt === VPT_MOD_EX) throw new FormatError(`E-RTMP multitrack nests packet type ${pt}`);
    fourcc = r.fourcc();
    trackId = r.u8();
  } else {
    fourcc = r.fourcc();
  }
  const codec = VIDEO_FOURCC[fourcc];
  if (!codec) throw new UnsupportedFormatError(`E-RTMP video FourCC ${printable(fourcc)}`);
  let frameType = VIDEO_FRAME_TYPES[ft];
  if (!frameType) {
    if (pt !== VPT_METADATA) throw new FormatError(`reserved video frame type ${ft}`);
    frameType = 'inter'; // ignored for metadata
  }
  let packet: VideoPacket;
  let cts = 0;
  switch (pt) {
    case VPT_SEQUENCE_START:
      packet = 'seqhdr';
      break;
    case VPT_CODED_FRAMES:
      packet = 'nalu';
      if (codec === 'h264' || codec === 'h265') cts = r.i24();
      break;
    case VPT_CODED_FRAMES_X:
      packet = 'nalu';
      break;
    case VPT_SEQUENCE_END:
      packet = 'end';
      break;
    case VPT_METADATA:
      packet = 'metadata';
      break;
    case VPT_MPEG2TS_SEQUENCE_START:
      throw new UnsupportedFormatError('E-RTMP MPEG2TSSequenceStart');
    default:
      throw new FormatError(`unknown E-RTMP video packet type ${pt}`);
  }
  const out: VideoTagBody = { codec, frameType, packet, cts, data: r.rest(), enhanced: true };
  if (trackId !== undefined) out.trackId = trackId;
  if (extra.timestampOffsetNano !== undefined) out.timestampOffsetNano = extra.timestampOffsetNano;
  return out;
}

export interface VideoTagHeaderOptions {
  codec: VideoCodec;
  packet: VideoPacket;
  /** [inter for frames, key otherwise; always key for seqhdr] */
  frameType?: VideoFrameType;
  /** Composition time offset in ms, -2^23..2^23-1 [0]. Only H.264/H.265 frames can carry one. */
  cts?: number;
  /** Use the E-RTMP FourCC header for H.264 too ('avc1') [false: legacy codec id 7]. */
  enhanced?: boolean;
  /** Use the legacy codec id 12 for H.265 instead of E-RTMP 'hvc1' [false]. */
  legacyHevc?: boolean;
}

/**
 * The header bytes of a video tag body: send them followed by the payload (record, NALUs, OBUs, AMF).
 * H.264 uses the legacy header unless `enhanced`; H.265 uses E-RTMP 'hvc1' unless `legacyHevc`;
 * AV1/VP9/VP8 are always E-RTMP.
 */
export function buildVideoTagHeader(o: VideoTagHeaderOptions): Uint8Array {
  // Sequence headers are always keyframes; other packets default to inter frames, except sequence end
  // and metadata, which default to key as ffmpeg writes them.
  const frameType = o.packet === 'seqhdr' ? 1 : VIDEO_FRAME_TYPE_IDS[o.frameType ?? (o.packet === 'nalu' ? 'inter' : 'key')];
  if (frameType === undefined) throw new FormatError(`unknown video frame type ${String(o.frameType)}`);
  const cts = o.cts ?? 0;
  if (!Number.isInteger(cts) || cts < -0x800000 || cts > 0x7fffff) throw new FormatError(`composition time ${cts} ms does not fit 24 bits`);
  const hasCts = o.codec === 'h264' || o.codec === 'h265';
  if (!hasCts && cts !== 0) throw new FormatError(`${o.codec} frames carry no composition time (got ${cts})`);
  const legacy = (o.codec === 'h264' && !o.enhanced) || (o.codec === 'h265' && o.legacyHevc === true);
  if (legacy) {
    if (o.packet === 'metadata') throw new FormatError('video metadata packets need the E-RTMP header');
    const h = new Uint8Array(5);
    h[0] = (frameType << 4) | (o.codec === 'h264' ? CODEC_ID_AVC : CODEC_ID_HEVC);
    h[1] = o.packet === 'seqhdr' ? 0 : o.packet === 'nalu' ? 1 : 2;
    h[2] = cts >> 16;
    h[3] = cts >> 8;
    h[4] = cts;
    return h;
  }
  let pt: number;
  switch (o.packet) {
    case 'seqhdr':
      pt = VPT_SEQUENCE_START;
      break;
    case 'end':
      pt = VPT_SEQUENCE_END;
      break;
    case 'metadata':
      pt = VPT_METADATA;
      break;
    case 'nalu':
      pt = hasCts && cts !== 0 ? VPT_CODED_FRAMES : hasCts ? VPT_CODED_FRAMES_X : VPT_CODED_FRAMES;
      break;
    default:
      throw new FormatError(`unknown video packet ${String(o.packet)}`);
  }
  const withCts = pt === VPT_CODED_FRAMES && hasCts;
  const h = new Uint8Array(withCts ? 8 : 5);
  h[0] = 0x80 | (frameType << 4) | pt;
  const fcc = VIDEO_CODEC_FOURCC[o.codec];
  if (!fcc) throw new FormatError(`unknown video codec ${String(o.codec)}`);
  for (let i = 0; i < 4; i++) h[1 + i] = fcc.charCodeAt(i);
  if (withCts) {
    h[5] = cts >> 16;
    h[6] = cts >> 8;
    h[7] = cts;
  }
  return h;
}

/** [header, payload]: a video tag body as a vectored write (the payload is not copied). */
export function buildVideoTagBody(o: VideoTagHeaderOptions, payload: Uint8Array): Uint8Array[] {
  return [buildVideoTagHeader(o), payload];
}

/** Decode an E-RTMP video metadata packet's data into [name, value] pairs (e.g. ['colorInfo', {...}]). */
export function parseVideoMetadata(data: Uint8Array): [string, unknown][] {
  const values = amf0Decode(data);
  const out: [string, unknown][] = [];
  for (let i = 0; i + 1 < values.length; i += 2) {
    const name = values[i];
    if (typeof name !== 'string') throw new FormatError('E-RTMP video metadata: expected a name string');
    out.push([name, values[i + 1]]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Audio tag bodies

export type AudioCodec =
  | 'aac' | 'mp3' | 'pcma' | 'pcmu' | 'opus' | 'flac' | 'ac3' | 'eac3'
  | 'pcm' | 'pcm-le' | 'adpcm' | 'nellymoser' | 'speex';
/** seqhdr: decoder config (AudioSpecificConfig, OpusHead, FLAC STREAMINFO); raw: coded frame(s). */
export type AudioPacket = 'seqhdr' | 'raw' | 'end' | 'multichannel';

export interface AudioMultichannelConfig {
  /** 0 unspecified, 1 native (see `channelFlags`), 2 custom (see `mapping`). */
  order: number;
  channelCount: number;
  mapping?: Uint8Array;
  channelFlags?: number;
}

export interface AudioTagBody {
  codec: AudioCodec;
  packet: AudioPacket;
  data: Uint8Array;
  enhanced: boolean;
  /** Legacy header fields as signalled (often nominal: AAC always says 44100/16/stereo). */
  soundRate?: number;
  soundSize?: 8 | 16;
  channels?: 1 | 2;
  multichannel?: AudioMultichannelConfig;
  trackId?: number;
  timestampOffsetNano?: number;
}

const LEGACY_AUDIO_CODECS: readonly (AudioCodec | undefined)[] = [
  'pcm', 'adpcm', 'mp3', 'pcm-le', 'nellymoser', 'nellymoser', 'nellymoser', 'pcma', 'pcmu',
  undefined /* 9: E-RTMP */, 'aac', 'speex', undefined, undefined, 'mp3' /* 14: MP3 8 kHz */, undefined,
];
const LEGACY_RATES = [5512, 11025, 22050, 44100];

const AUDIO_FOURCC: Record<string, AudioCodec> = { Opus: 'opus', fLaC: 'flac', 'ac-3': 'ac3', 'ec-3': 'eac3', mp4a: 'aac', '.mp3': 'mp3' };
const AUDIO_CODEC_FOURCC: Partial<Record<AudioCodec, string>> = { opus: 'Opus', flac: 'fLaC', ac3: 'ac-3', eac3: 'ec-3', aac: 'mp4a', mp3: '.mp3' };

/** Parse an audio tag body (an FLV audio tag's data or an RTMP audio message). */
export function parseAudioTagBody(body: Uint8Array): AudioTagBody {
  if (body.length < 1) throw new FormatError('empty audio tag');
  const b0 = body[0]!;
  const fmt = b0 >> 4;
  if (fmt !== 9) {
    const codec = LEGACY_AUDIO_CODECS[fmt];
    if (!codec) throw new UnsupportedFormatError(`legacy audio sound format ${fmt}`);
    const soundRate = fmt === 14 ? 8000 : fmt === 4 ? 16000 : fmt === 5 ? 8000 : LEGACY_RATES[(b0 >> 2) & 3]!;
    const soundSize: 8 | 16 = b0 & 2 ? 16 : 8;
    const channels: 1 | 2 = b0 & 1 ? 2 : 1;
    if (codec === 'aac') {
      if (body.length < 2) throw new FormatError('AAC audio tag shorter than its 2-byte header');
      const pt = body[1]!;
      if (pt > 1) throw new FormatError(`unknown AAC packet type ${pt}`);
      return { codec, packet: pt === 0 ? 'seqhdr' : 'raw', data: body.subarray(2), enhanced: false, soundRate, soundSize, channels };
    }
    return { codec, packet: 'raw', data: body.subarray(1), enhanced: false, soundRate, soundSize, channels };
  }

  // E-RTMP extended audio header.
  const r = new ByteReader(body, 1);
  const extra: { timestampOffsetNano?: number } = {};
  let pt = readModEx(r, b0 & 0x0f, APT_MOD_EX, extra);
  let trackId: number | undefined;
  let fourcc: string;
  if (pt === APT_MULTITRACK) {
    const m = r.u8();
    const multitrackType = m >> 4;
    pt = m & 0x0f;
    if (multitrackType !== 0) throw new UnsupportedFormatError(`E-RTMP audio multitrack type ${multitrackType} (only one-track is supported)`);
    if (pt === APT_MULTITRACK || pt === APT_MOD_EX) throw new FormatError(`E-RTMP multitrack nests packet type ${pt}`);
    fourcc = r.fourcc();
    trackId = r.u8();
  } else {
    fourcc = r.fourcc();
  }
  const codec = AUDIO_FOURCC[fourcc];
  if (!codec) throw new UnsupportedFormatError(`E-RTMP audio FourCC ${printable(fourcc)}`);
  let packet: AudioPacket;
  let multichannel: AudioMultichannelConfig | undefined;
  switch (pt) {
    case APT_SEQUENCE_START:
      packet = 'seqhdr';
      break;
    case APT_CODED_FRAMES:
      packet = 'raw';
      break;
    case APT_SEQUENCE_END:
      packet = 'end';
      break;
    case APT_MULTICHANNEL_CONFIG: {
      packet = 'multichannel';
      const order = r.u8();
      const channelCount = r.u8();
      multichannel = { order, channelCount };
      if (order === 2) multichannel.mapping = r.bytes(channelCount, 'audio channel mapping');
      else if (order === 1) multichannel.channelFlags = r.u32();
      else if (order !== 0) throw new FormatError(`unknown E-RTMP audio channel order ${order}`);
      break;
    }
    default:
      throw new FormatError(`unknown E-RTMP audio packet type ${pt}`);
  }
  const out: AudioTagBody = { codec, packet, data: r.rest(), enhanced: true };
  if (multichannel) out.multichannel = multichannel;
  if (trackId !== undefined) out.trackId = trackId;
  if (extra.timestampOffsetNano !== undefined) out.timestampOffsetNano = extra.timestampOffsetNano;
  return out;
}

export interface AudioTagHeaderOptions {
  codec: AudioCodec;
  /** [raw] */
  packet?: 'seqhdr' | 'raw' | 'end';
  /** Legacy header hints: sample rate in Hz, bits per sample, channel count. */
  soundRate?: number;
  soundSize?: 8 | 16;
  channels?: number;
  /** Use the E-RTMP FourCC header for AAC/MP3 too [false]. Opus, FLAC, AC-3, E-AC-3 always use it. */
  enhanced?: boolean;
}

function legacyRateBits(hz: number): number {
  return hz <= 5512 ? 0 : hz <= 11025 ? 1 : hz <= 22050 ? 2 : 3;
}

/**
 * The header bytes of an audio tag body (send them followed by the payload). AAC: 0xAF 0x00|0x01;
 * MP3: sound format 2 (14 at 8 kHz); G.711 A-law/µ-law: 7/8; Opus, FLAC, AC-3, E-AC-3: E-RTMP header.
 */
export function buildAudioTagHeader(o: AudioTagHeaderOptions): Uint8Array {
  const packet = o.packet ?? 'raw';
  const codec = o.codec;
  const enhanced = o.enhanced || codec === 'opus' || codec === 'flac' || codec === 'ac3' || codec === 'eac3';
  if (enhanced) {
    const fcc = AUDIO_CODEC_FOURCC[codec];
    if (!fcc) throw new FormatError(`no E-RTMP FourCC for audio codec ${codec}`);
    const pt = packet === 'seqhdr' ? APT_SEQUENCE_START : packet === 'raw' ? APT_CODED_FRAMES : APT_SEQUENCE_END;
    const h = new Uint8Array(5);
    h[0] = 0x90 | pt;
    for (let i = 0; i < 4; i++) h[1 + i] = fcc.charCodeAt(i);
    return h;
  }
  if (packet === 'end') throw new FormatError(`legacy ${codec} audio has no sequence-end packet`);
  const size = (o.soundSize ?? 16) === 16 ? 2 : 0;
  const stereo = (o.channels ?? 2) >= 2 ? 1 : 0;
  switch (codec) {
    case 'aac':
      return Uint8Array.of(0xaf, packet === 'seqhdr' ? 0 : 1);
    case 'mp3': {
      if (packet === 'seqhdr') throw new FormatError('MP3 has no sequence header');
      const rate = o.soundRate ?? 44100;
      if (rate === 8000) return Uint8Array.of((14 << 4) | (3 << 2) | size | stereo);
      return Uint8Array.of((2 << 4) | (legacyRateBits(rate) << 2) | size | stereo);
    }
    case 'pcma':
    case 'pcmu': {
      if (packet === 'seqhdr') throw new FormatError('G.711 has no sequence header');
      // G.711 is 8 kHz; the rate bits have no 8 kHz value and are left 0 with the 16-bit flag set,
      // as ffmpeg writes it (0x72 / 0x82 for mono).
      const g711Size = (o.soundSize ?? 16) === 16 ? 2 : 0;
      const g711Stereo = (o.channels ?? 1) >= 2 ? 1 : 0;
      return Uint8Array.of(((codec === 'pcma' ? 7 : 8) << 4) | g711Size | g711Stereo);
    }
    default:
      throw new FormatError(`cannot build an FLV audio header for ${codec}`);
  }
}

/** [header, payload]: an audio tag body as a vectored write. */
export function buildAudioTagBody(o: AudioTagHeaderOptions, payload: Uint8Array): Uint8Array[] {
  return [buildAudioTagHeader(o), payload];
}

// ---------------------------------------------------------------------------------------------------
// Script data (onMetaData)

export interface ScriptTagBody {
  /** The handler name, e.g. 'onMetaData' (an RTMP '@setDataFrame' prefix is skipped). */
  name: string;
  /** The first value after the name (the metadata object for onMetaData). */
  value: unknown;
  /** All values after the name. */
  values: unknown[];
}

/** Parse a script data tag / RTMP data message: a name string followed by AMF0 values. */
export function parseScriptTagBody(body: Uint8Array): ScriptTagBody {
  const all = amf0Decode(body);
  let i = 0;
  if (all[0] === '@setDataFrame' && typeof all[1] === 'string') i = 1;
  const name = all[i];
  if (typeof name !== 'string') throw new FormatError('script data does not start with a name string');
  const values = all.slice(i + 1);
  return { name, value: values[0], values };
}

/** The onMetaData object from a script tag / data message, or undefined if it is some other message. */
export function parseOnMetaData(body: Uint8Array): Record<string, unknown> | undefined {
  const s = parseScriptTagBody(body);
  if (s.name !== 'onMetaData') return undefined;
  const v = s.value;
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/** Script tag body: AMF0 name string then the values as given. */
export function buildScriptTagBody(name: string, ...values: unknown[]): Uint8Array {
  return amf0Encode(name, ...values);
}

/** onMetaData script tag body: 'onMetaData' + ECMA array (as ffmpeg and OBS write it). */
export function buildOnMetaData(meta: Record<string, unknown>): Uint8Array {
  return amf0Encode('onMetaData', new AmfEcmaArray(meta));
}
