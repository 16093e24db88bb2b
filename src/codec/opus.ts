// Opus: packet TOC (RFC 6716 3.1) for frame durations, and the OpusHead identification header
// (RFC 7845 5.1) used as the E-RTMP Opus sequence header and, converted, as the MP4 'dOps' box.
// Opus always runs a 48 kHz clock, whatever the input rate was.

import { FormatError } from '../format/bytes.ts';

export const OPUS_SAMPLE_RATE = 48000;
/** The longest packet RFC 6716 allows: 120 ms. */
export const OPUS_MAX_PACKET_SAMPLES = 5760;

/** Samples (at 48 kHz) in each frame of a packet with this TOC byte. */
export function opusFrameSamples(toc: number): number {
  const config = toc >> 3;
  if (config < 12) return [480, 960, 1920, 2880][config & 3]!; // SILK: 10, 20, 40, 60 ms
  if (config < 16) return config & 1 ? 960 : 480; // Hybrid: 10, 20 ms
  return [120, 240, 480, 960][config & 3]!; // CELT: 2.5, 5, 10, 20 ms
}

/** Number of frames in a packet (from the TOC's frame count code, and the count byte for code 3). */
export function opusFrameCount(packet: Uint8Array): number {
  if (packet.length < 1) throw new FormatError('empty Opus packet');
  const code = packet[0]! & 3;
  if (code === 0) return 1;
  if (code !== 3) return 2;
  if (packet.length < 2) throw new FormatError('Opus code-3 packet without its frame count byte');
  const m = packet[1]! & 0x3f;
  if (m === 0) throw new FormatError('Opus code-3 packet with a frame count of 0');
  return m;
}

/** Samples (at 48 kHz) in a packet; packets over 120 ms are a FormatError. */
export function opusPacketSamples(packet: Uint8Array): number {
  const samples = opusFrameCount(packet) * opusFrameSamples(packet[0]!);
  if (samples > OPUS_MAX_PACKET_SAMPLES) throw new FormatError(`Opus packet of ${samples} samples exceeds 120 ms`);
  return samples;
}

export interface OpusHead {
  version: number;
  channels: number;
  /** Samples (at 48 kHz) to discard from the decoder output at the start. */
  preSkip: number;
  /** The original input rate (informational). */
  inputSampleRate: number;
  /** Q7.8 dB. */
  outputGain: number;
  mappingFamily: number;
  /** Present when mappingFamily != 0. */
  streamCount?: number;
  coupledCount?: number;
  mapping?: Uint8Array;
}

const MAGIC = [0x4f, 0x70, 0x75, 0x73, 0x48, 0x65, 0x61, 0x64]; // "OpusHead"

/** Parse an OpusHead packet (little-endian fields, per RFC 7845). */
export function parseOpusHead(b: Uint8Array): OpusHead {
  if (b.length < 19) throw new FormatError(`OpusHead of ${b.length} bytes is shorter than 19`);
  for (let i = 0; i < 8; i++) if (b[i] !== MAGIC[i]) throw new FormatError('missing "OpusHead" signature');
  const version = b[8]!;
  if (version >> 4 !== 0) throw new FormatError(`unsupported OpusHead major version ${version >> 4}`);
  const channels = b[9]!;
  if (channels === 0) throw new FormatError('OpusHead with 0 channels');
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const head: OpusHead = {
    version,
    channels,
    preSkip: dv.getUint16(10, true),
    inputSampleRate: dv.getUint32(12, true),
    outputGain: dv.getInt16(16, true),
    mappingFamily: b[18]!,
  };
  if (head.mappingFamily !== 0) {
    if (b.length < 21 + channels) throw new FormatError(`OpusHead channel mapping table truncated (${b.length} bytes for ${channels} channels)`);
    head.streamCount = b[19]!;
    head.coupledCount = b[20]!;
    if (head.streamCount === 0 || head.coupledCount > head.streamCount) {
      throw new FormatError(`OpusHead stream counts ${head.streamCount}/${head.coupledCount} are invalid`);
    }
    head.mapping = b.subarray(21, 21 + channels);
  } else if (channels > 2) {
    throw new FormatError(`OpusHead mapping family 0 with ${channels} channels`);
  }
  return head;
}

/** Build an OpusHead packet. */
export function buildOpusHead(h: Omit<OpusHead, 'version'> & { version?: number }): Uint8Array {
  const family = h.mappingFamily;
  if (h.channels < 1 || h.channels > 255) throw new FormatError(`invalid Opus channel count ${h.channels}`);
  if (family === 0 && h.channels > 2) throw new FormatError('Opus mapping family 0 allows at most 2 channels');
  if (family !== 0 && (!h.mapping || h.mapping.length !== h.channels || h.streamCount === undefined || h.coupledCount === undefined)) {
    throw new FormatError('Opus mapping family != 0 needs streamCount, coupledCount and one mapping entry per channel');
  }
  const out = new Uint8Array(family === 0 ? 19 : 21 + h.channels);
  out.set(MAGIC);
  out[8] = h.version ?? 1;
  out[9] = h.channels;
  const dv = new DataView(out.buffer);
  dv.setUint16(10, h.preSkip, true);
  dv.setUint32(12, h.inputSampleRate >>> 0, true);
  dv.setInt16(16, h.outputGain, true);
  out[18] = family;
  if (family !== 0) {
    out[19] = h.streamCount!;
    out[20] = h.coupledCount!;
    out.set(h.mapping!, 21);
  }
  return out;
}
