// Ogg pages (RFC 3533) for Ogg Opus (RFC 7845): what the audio bridge hands an ffmpeg transcoder and
// reads back. A reader that turns a byte stream into packets (with their page's granule position), and a
// writer of one packet per page. The reader does not check page CRCs (its input comes from a local
// transcoder, not the network); everything malformed is a FormatError.

import { concat, FormatError } from './bytes.ts';

const CAPTURE = [0x4f, 0x67, 0x67, 0x53]; // "OggS"
const HEADER = 27;
/** Flags of header_type. */
export const OGG_CONTINUED = 1;
export const OGG_BOS = 2;
export const OGG_EOS = 4;
/** The largest packet the reader assembles across pages (an Opus packet is at most a few kB). */
const MAX_PACKET = 1 << 20;

export interface OggPacket {
  data: Uint8Array;
  /** Granule position of the page the packet ends on (-1: none ends there). */
  granule: number;
  serial: number;
}

/** Incremental reader: push() bytes as they come, get whole packets back. */
export class OggReader {
  private buf: Uint8Array = new Uint8Array(0);
  private partial: Uint8Array[] = [];
  private partialBytes = 0;

  push(chunk: Uint8Array): OggPacket[] {
    const out: OggPacket[] = [];
    let b = this.buf.length ? concat([this.buf, chunk]) : chunk;
    let p = 0;
    for (;;) {
      if (b.length - p < HEADER) break;
      for (let i = 0; i < 4; i++) if (b[p + i] !== CAPTURE[i]) throw new FormatError(`no Ogg capture pattern at page start (byte ${p})`);
      if (b[p + 4] !== 0) throw new FormatError(`Ogg stream structure version ${b[p + 4]} is not 0`);
      const nseg = b[p + 26]!;
      if (b.length - p < HEADER + nseg) break;
      let body = 0;
      for (let i = 0; i < nseg; i++) body += b[p + HEADER + i]!;
      const size = HEADER + nseg + body;
      if (b.length - p < size) break;
      const flags = b[p + 5]!;
      const dv = new DataView(b.buffer, b.byteOffset + p, HEADER);
      const lo = dv.getUint32(6, true), hi = dv.getInt32(10, true);
      const granule = hi === -1 && lo === 0xffffffff ? -1 : hi * 0x100000000 + lo;
      const serial = dv.getUint32(14, true);
      if (!(flags & OGG_CONTINUED) && this.partialBytes) { this.partial = []; this.partialBytes = 0; } // lost continuation
      let q = p + HEADER + nseg;
      let seg = 0;
      while (seg < nseg) {
        let len = 0, lace = 255, start = q;
        while (seg < nseg && lace === 255) { lace = b[p + HEADER + seg]!; len += lace; seg++; }
        q = start + len;
        const piece = b.subarray(start, q);
        if (lace === 255) { // continues on the next page
          this.partial.push(piece.slice());
          this.partialBytes += piece.length;
          if (this.partialBytes > MAX_PACKET) throw new FormatError(`Ogg packet larger than ${MAX_PACKET} bytes`);
          break;
        }
        let data = piece;
        if (this.partialBytes) { this.partial.push(piece); data = concat(this.partial); this.partial = []; this.partialBytes = 0; }
        out.push({ data: data.slice(), granule: seg === nseg ? granule : -1, serial });
      }
      p += size;
    }
    this.buf = p < b.length ? b.slice(p) : new Uint8Array(0);
    return out;
  }
}

/** One Ogg page holding exactly one whole packet. */
export function oggPage(packet: Uint8Array, o: { serial: number; seq: number; granule: number; flags?: number }): Uint8Array {
  const nseg = Math.floor(packet.length / 255) + 1;
  if (nseg > 255) throw new FormatError(`packet of ${packet.length} bytes does not fit one Ogg page`);
  const page = new Uint8Array(HEADER + nseg + packet.length);
  page.set(CAPTURE);
  page[5] = o.flags ?? 0;
  const dv = new DataView(page.buffer);
  const g = o.granule;
  dv.setUint32(6, g < 0 ? 0xffffffff : g % 0x100000000, true);
  dv.setUint32(10, g < 0 ? 0xffffffff : Math.floor(g / 0x100000000), true);
  dv.setUint32(14, o.serial >>> 0, true);
  dv.setUint32(18, o.seq >>> 0, true);
  page[26] = nseg;
  for (let i = 0; i < nseg - 1; i++) page[HEADER + i] = 255;
  page[HEADER + nseg - 1] = packet.length % 255;
  page.set(packet, HEADER + nseg);
  dv.setUint32(22, oggCrc(page), true);
  return page;
}

/** "OpusTags" with a vendor string and no comments (RFC 7845 5.2). */
export function opusTags(vendor: string): Uint8Array {
  const v = new TextEncoder().encode(vendor);
  const out = new Uint8Array(8 + 4 + v.length + 4);
  out.set([0x4f, 0x70, 0x75, 0x73, 0x54, 0x61, 0x67, 0x73]);
  new DataView(out.buffer).setUint32(8, v.length, true);
  out.set(v, 12);
  return out;
}

let table: Uint32Array | undefined;

/** The Ogg CRC-32 (polynomial 0x04c11db7, not reflected, initial value 0) of a page with a zeroed CRC field. */
export function oggCrc(b: Uint8Array): number {
  if (!table) {
    table = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      let r = i << 24;
      for (let j = 0; j < 8; j++) r = r & 0x80000000 ? (r << 1) ^ 0x04c11db7 : r << 1;
      table[i] = r >>> 0;
    }
  }
  let crc = 0;
  for (let i = 0; i < b.length; i++) crc = ((crc << 8) ^ table[((crc >>> 24) ^ b[i]!) & 0xff]!) >>> 0;
  return crc >>> 0;
}

