// RFC 6381 `codecs` strings from a track's codec name and setup bytes, for every codec a track can
// carry: what /api/stream/info shows and what a page passes to MediaSource.isTypeSupported().

import { aacCodecString, parseAsc } from './aac.ts';
import { h264CodecString } from './h264.ts';
import { h265CodecString, parseHvcC } from './h265.ts';

/**
 * MP3 in MP4 is an `mp4a` sample entry whose esds names object type 0x6B (MPEG-1 audio; src/format/fmp4.ts
 * writes that one), so its string is `mp4a.6B` (Chrome and Firefox accept it for MSE).
 */
export const MP3_CODEC_STRING = 'mp4a.6B';

/** G.711 in ISO BMFF is the `alaw` / `ulaw` sample entry; the strings are those four-character codes. */
export const G711_CODEC_STRINGS: Readonly<Record<string, string>> = { pcma: 'alaw', pcmu: 'ulaw' };

/** The codecs string of `codec` with its setup bytes (avcC, hvcC, AudioSpecificConfig), or undefined. */
export function codecStringOf(codec: string, data?: Uint8Array): string | undefined {
  try {
    switch (codec) {
      case 'h264': return data ? h264CodecString(data) : undefined;
      case 'h265': return data ? h265CodecString(parseHvcC(data)) : undefined;
      case 'aac': return data ? aacCodecString(parseAsc(data)) : undefined;
      case 'opus': return 'opus';
      case 'mp3': return MP3_CODEC_STRING;
      case 'pcma': case 'pcmu': return G711_CODEC_STRINGS[codec];
      default: return undefined;
    }
  } catch {
    return undefined; // setup bytes we cannot read: no string rather than a wrong one
  }
}
