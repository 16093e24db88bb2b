// AAC: AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1) parse/build and ADTS (14496-3 1.A.2) framing.
// The engine's canonical AAC form is raw access units plus the AudioSpecificConfig.

import { BitReader, BitWriter, FormatError, UnsupportedFormatError } from '../format/bytes.ts';

/** Sampling frequencies by samplingFrequencyIndex (13 and 14 are reserved, 15 means explicit). */
export const AAC_SAMPLE_RATES: readonly number[] = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];
/** Samples per AAC frame (per channel) unless frameLengthFlag selects 960. */
export const AAC_SAMPLES_PER_FRAME = 1024;
/** Channels by channelConfiguration (0: defined by a program config element in the payload). */
const CHANNELS_BY_CONFIG: readonly number[] = [0, 1, 2, 3, 4, 5, 6, 8, 0, 0, 0, 7, 8, 24, 8, 0];

export const AAC_MAIN = 1;
export const AAC_LC = 2;
export const AAC_SSR = 3;
export const AAC_LTP = 4;
export const AAC_SBR = 5;
export const AAC_PS = 29;

export interface AacConfig {
  /** Audio object type of the core coder (2 = AAC-LC). */
  objectType: number;
  /** 5 (SBR, HE-AAC) or 29 (PS, HE-AACv2) when the config signals them explicitly. */
  extensionObjectType?: number;
  /** Core sampling rate in Hz: the rate of the track clock. */
  sampleRate: number;
  /** samplingFrequencyIndex (0..12), or 15 when the rate was given explicitly. */
  samplingIndex: number;
  /** Output rate of the SBR extension, when signalled. */
  extensionSampleRate?: number;
  channelConfig: number;
  /** Channel count implied by channelConfig (0 when a program config element defines it). */
  channels: number;
  /** 1024, or 960 when frameLengthFlag is set: samples per frame at `sampleRate`. */
  samplesPerFrame: number;
}

/** Index for a rate in AAC_SAMPLE_RATES, or -1. */
export function aacSamplingIndex(rate: number): number {
  return AAC_SAMPLE_RATES.indexOf(rate);
}

function readObjectType(br: BitReader): number {
  const t = br.bits(5);
  return t === 31 ? 32 + br.bits(6) : t;
}

function readRate(br: BitReader): { index: number; rate: number } {
  const index = br.bits(4);
  if (index === 15) {
    const rate = br.bits(24);
    if (rate === 0) throw new FormatError('AudioSpecificConfig explicit sampling rate is 0');
    return { index, rate };
  }
  const rate = AAC_SAMPLE_RATES[index];
  if (rate === undefined) throw new FormatError(`reserved AAC samplingFrequencyIndex ${index}`);
  return { index, rate };
}

/** Object types whose GASpecificConfig starts with frameLengthFlag. */
const GA_TYPES = new Set([1, 2, 3, 4, 6, 7, 17, 19, 20, 21, 22, 23]);

/** Parse an AudioSpecificConfig (the FLV AAC sequence header / MP4 esds DecoderSpecificInfo). */
export function parseAsc(bytes: Uint8Array): AacConfig {
  if (bytes.length < 2) throw new FormatError(`AudioSpecificConfig of ${bytes.length} byte(s) is too short`);
  const br = new BitReader(bytes);
  let objectType = readObjectType(br);
  if (objectType === 0) throw new FormatError('AudioSpecificConfig object type 0 (null)');
  const { index, rate } = readRate(br);
  const channelConfig = br.bits(4);
  const cfg: AacConfig = {
    objectType,
    sampleRate: rate,
    samplingIndex: index,
    channelConfig,
    channels: CHANNELS_BY_CONFIG[channelConfig]!,
    samplesPerFrame: AAC_SAMPLES_PER_FRAME,
  };
  if (objectType === AAC_SBR || objectType === AAC_PS) {
    // Explicit hierarchical signalling: extension rate, then the core object type.
    cfg.extensionObjectType = objectType;
    cfg.extensionSampleRate = readRate(br).rate;
    objectType = readObjectType(br);
    if (objectType === 0) throw new FormatError('AudioSpecificConfig core object type 0 (null)');
    cfg.objectType = objectType;
  }
  // GASpecificConfig: only frameLengthFlag matters here; a config cut short before it means 1024.
  if (GA_TYPES.has(objectType) && br.bitsLeft > 0 && br.bool()) cfg.samplesPerFrame = 960;
  return cfg;
}

export interface AscOptions {
  objectType: number;
  sampleRate: number;
  channelConfig: number;
  /** 960-sample frames [false]. */
  frameLengthFlag?: boolean;
}

/** Build an AudioSpecificConfig (2 bytes for common configs; longer for escaped types or explicit rates). */
export function buildAsc(o: AscOptions): Uint8Array {
  if (!Number.isInteger(o.objectType) || o.objectType < 1 || o.objectType > 95 || o.objectType === 31) throw new FormatError(`invalid AAC object type ${o.objectType}`);
  if (!Number.isInteger(o.channelConfig) || o.channelConfig < 0 || o.channelConfig > 15) throw new FormatError(`invalid AAC channel config ${o.channelConfig}`);
  if (!Number.isInteger(o.sampleRate) || o.sampleRate <= 0 || o.sampleRate > 0xffffff) throw new FormatError(`invalid AAC sample rate ${o.sampleRate}`);
  const w = new BitWriter();
  if (o.objectType >= 31) w.bits(5, 31).bits(6, o.objectType - 32);
  else w.bits(5, o.objectType);
  const idx = aacSamplingIndex(o.sampleRate);
  if (idx >= 0) w.bits(4, idx);
  else w.bits(4, 15).bits(24, o.sampleRate);
  w.bits(4, o.channelConfig);
  if (GA_TYPES.has(o.objectType)) {
    w.bits(1, o.frameLengthFlag ? 1 : 0);
    w.bits(1, 0); // dependsOnCoreCoder
    w.bits(1, 0); // extensionFlag
  }
  return w.finish();
}

/** RFC 6381 codec string 'mp4a.40.N' (N = 5 or 29 for explicitly signalled HE-AAC). */
export function aacCodecString(cfg: Pick<AacConfig, 'objectType' | 'extensionObjectType'>): string {
  return `mp4a.40.${cfg.extensionObjectType ?? cfg.objectType}`;
}

// ---------------------------------------------------------------------------------------------------
// ADTS

export interface AdtsHeader {
  config: AacConfig;
  /** Whole frame length including the header. */
  frameLength: number;
  /** 7, or 9 with CRC. */
  headerLength: number;
  protectionAbsent: boolean;
  /** number_of_raw_data_blocks_in_frame + 1. */
  rawBlocks: number;
  bufferFullness: number;
}

/** Parse the ADTS header at `offset` (needs 7 bytes; does not check that the whole frame is present). */
export function parseAdtsHeader(b: Uint8Array, offset = 0): AdtsHeader {
  if (b.length - offset < 7) throw new FormatError(`ADTS header needs 7 bytes, got ${Math.max(0, b.length - offset)}`);
  const b1 = b[offset + 1]!;
  if (b[offset] !== 0xff || (b1 & 0xf6) !== 0xf0) throw new FormatError(`no ADTS syncword at offset ${offset}`);
  const b2 = b[offset + 2]!;
  const b3 = b[offset + 3]!;
  const b5 = b[offset + 5]!;
  const b6 = b[offset + 6]!;
  const protectionAbsent = (b1 & 1) === 1;
  const samplingIndex = (b2 >> 2) & 0x0f;
  const sampleRate = AAC_SAMPLE_RATES[samplingIndex];
  if (sampleRate === undefined) throw new FormatError(`ADTS samplingFrequencyIndex ${samplingIndex} is reserved`);
  const channelConfig = ((b2 & 1) << 2) | (b3 >> 6);
  const frameLength = ((b3 & 3) << 11) | (b[offset + 4]! << 3) | (b5 >> 5);
  const headerLength = protectionAbsent ? 7 : 9;
  if (frameLength <= headerLength) throw new FormatError(`ADTS frame length ${frameLength} is not larger than its header`);
  return {
    config: {
      objectType: (b2 >> 6) + 1,
      sampleRate,
      samplingIndex,
      channelConfig,
      channels: CHANNELS_BY_CONFIG[channelConfig]!,
      samplesPerFrame: AAC_SAMPLES_PER_FRAME,
    },
    frameLength,
    headerLength,
    protectionAbsent,
    rawBlocks: (b6 & 3) + 1,
    bufferFullness: ((b5 & 0x1f) << 6) | (b6 >> 2),
  };
}

/**
 * Split a buffer of whole ADTS frames into raw AAC frames (views, no copy) and the stream's config.
 * A truncated last frame, a lost syncword or a config change mid-buffer is a FormatError; frames holding
 * several raw data blocks are unsupported.
 */
export function splitAdts(bytes: Uint8Array): { config: AacConfig; frames: Uint8Array[] } {
  const n = bytes.length;
  if (n === 0) throw new FormatError('empty ADTS data');
  let config: AacConfig | null = null;
  const frames: Uint8Array[] = [];
  let p = 0;
  while (p < n) {
    const h = parseAdtsHeader(bytes, p);
    if (h.rawBlocks !== 1) throw new UnsupportedFormatError(`ADTS frame with ${h.rawBlocks} raw data blocks`);
    if (h.frameLength > n - p) throw new FormatError(`truncated ADTS frame at offset ${p}: ${h.frameLength} bytes declared, ${n - p} present`);
    if (!config) config = h.config;
    else if (h.config.objectType !== config.objectType || h.config.samplingIndex !== config.samplingIndex || h.config.channelConfig !== config.channelConfig) {
      throw new FormatError(`ADTS configuration changes at offset ${p}`);
    }
    frames.push(bytes.subarray(p + h.headerLength, p + h.frameLength));
    p += h.frameLength;
  }
  return { config: config!, frames };
}

/**
 * A 7-byte ADTS header (no CRC) for one raw frame of `rawLength` bytes. HE-AAC configs are written as
 * AAC-LC at the core rate (implicit SBR signalling), which is what ADTS can express.
 */
export function adtsHeader(config: Pick<AacConfig, 'objectType' | 'sampleRate' | 'channelConfig'>, rawLength: number): Uint8Array {
  const objectType = config.objectType === AAC_SBR || config.objectType === AAC_PS ? AAC_LC : config.objectType;
  if (objectType < 1 || objectType > 4) throw new FormatError(`ADTS cannot carry AAC object type ${config.objectType}`);
  const idx = aacSamplingIndex(config.sampleRate);
  if (idx < 0) throw new FormatError(`ADTS cannot signal a sampling rate of ${config.sampleRate} Hz`);
  if (config.channelConfig < 0 || config.channelConfig > 7) throw new FormatError(`ADTS cannot signal channel config ${config.channelConfig}`);
  const len = rawLength + 7;
  if (rawLength < 0 || len > 0x1fff) throw new FormatError(`AAC frame of ${rawLength} bytes is too large for ADTS`);
  const h = new Uint8Array(7);
  h[0] = 0xff;
  h[1] = 0xf1; // MPEG-4, layer 0, no CRC
  h[2] = ((objectType - 1) << 6) | (idx << 2) | (config.channelConfig >> 2);
  h[3] = ((config.channelConfig & 3) << 6) | (len >> 11);
  h[4] = (len >> 3) & 0xff;
  h[5] = ((len & 7) << 5) | 0x1f; // buffer fullness 0x7FF (VBR), high bits
  h[6] = 0xfc; // buffer fullness low bits, one raw data block
  return h;
}
