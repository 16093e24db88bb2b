// G.711 (A-law "pcma", µ-law "pcmu"): one byte per sample, 8 kHz, mono.

export type G711Codec = 'pcma' | 'pcmu';

export const G711_SAMPLE_RATE = 8000;
export const G711_CHANNELS = 1;
/** Static RTP payload types (RFC 3551). */
export const G711_RTP_PAYLOAD_TYPE: Readonly<Record<G711Codec, number>> = { pcmu: 0, pcma: 8 };

/** Samples in a G.711 packet of `channels` interleaved channels: one byte each. */
export function g711Samples(packet: Uint8Array, channels = G711_CHANNELS): number {
  return Math.floor(packet.length / channels);
}
