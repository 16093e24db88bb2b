// Codec parameters of a track: part of the codec library (no imports from the core), so format code
// (demuxers, RTP depacketizers, SDP helpers) can produce and consume it.

/** Codec parameters of a track. Replaced (not mutated) when the publisher sends new ones. */
export interface CodecConfig {
  /** 'h264' | 'h265' | 'av1' | 'vp9' | 'aac' | 'opus' | 'mp3' | 'pcma' | 'pcmu' | 'data' | ... */
  codec: string;
  /** Codec-specific setup: avcC/hvcC record, AudioSpecificConfig, OpusHead. */
  data?: Uint8Array;
  width?: number;
  height?: number;
  sampleRate?: number;
  channels?: number;
  /** An RFC 6381 codec string when known ("avc1.64001f", "mp4a.40.2"). */
  codecString?: string;
}
