// RTP: packets, the UDP reorder buffer, (de)packetizers per codec and the timeline stage.
export * from './packet.ts';
export * from './reorder.ts';
export * from './common.ts';
export * from './nal.ts';
export * from './aac.ts';
export * from './simple.ts';
export * from './mp2t.ts';
export * from './timeline.ts';
export * from './history.ts';
export * from './vpx.ts';

import { FormatError, UnsupportedFormatError } from '../bytes.ts';
import type { SdpTrack } from '../sdp/codec.ts';
import type { CodecConfig } from '../../codec/config.ts';
import { parseAvcC } from '../../codec/h264.ts';
import { parseHvcC } from '../../codec/h265.ts';
import { type Depacketizer, type DepacketizerOptions, DEFAULT_RTP_MTU } from './common.ts';
import { NalDepacketizer, NalPacketizer } from './nal.ts';
import { LatmDepacketizer, Mpeg4GenericDepacketizer, Mpeg4GenericPacketizer } from './aac.ts';
import { FrameDepacketizer, G711Packetizer, OpusPacketizer } from './simple.ts';
import type { RtpWriter } from './packet.ts';
import { VpxDepacketizer, VpxPacketizer } from './vpx.ts';

/** The depacketizer for a track described by SDP (MP2T has its own: Mp2tDepacketizer). */
export function createDepacketizer(t: SdpTrack, opts: DepacketizerOptions = {}): Depacketizer {
  switch (t.codec) {
    case 'h264':
    case 'h265':
      return new NalDepacketizer(t.codec, { ...opts, vps: t.vps, sps: t.sps, pps: t.pps });
    case 'aac':
      if (!t.rawConfig) throw new UnsupportedFormatError(`${t.encoding} without an fmtp config is not supported`);
      if (t.aacMode === 'latm') return new LatmDepacketizer({ ...opts, config: t.rawConfig });
      return new Mpeg4GenericDepacketizer({
        ...opts, config: t.rawConfig,
        sizeLength: t.fmtp['sizelength'] ? Number(t.fmtp['sizelength']) : undefined,
        indexLength: t.fmtp['indexlength'] ? Number(t.fmtp['indexlength']) : undefined,
        indexDeltaLength: t.fmtp['indexdeltalength'] ? Number(t.fmtp['indexdeltalength']) : undefined,
      });
    case 'opus':
    case 'pcma':
    case 'pcmu':
      return new FrameDepacketizer(t.codec, t.config, opts);
    case 'vp8':
    case 'vp9':
    case 'av1':
      return new VpxDepacketizer(t.codec, opts);
    default:
      throw new UnsupportedFormatError(`no RTP depacketizer for ${t.encoding}`);
  }
}

/** Anything that turns one canonical frame into serialized RTP packets of one track. */
export interface Packetizer {
  packetize(frame: Uint8Array, timestamp: number, key?: boolean): Uint8Array[];
}

/** The packetizer for a track config; H.264/H.265 ones put the config's parameter sets before keyframes. */
export function createPacketizer(config: CodecConfig, writer: RtpWriter, opts: { mtu?: number } = {}): Packetizer {
  const mtu = opts.mtu ?? DEFAULT_RTP_MTU;
  switch (config.codec) {
    case 'h264':
    case 'h265': {
      const p = new NalPacketizer(config.codec, writer, { mtu });
      if (config.data) {
        if (config.codec === 'h264') {
          const a = parseAvcC(config.data);
          p.setParameterSets([...a.sps, ...a.pps]);
        } else {
          const h = parseHvcC(config.data);
          p.setParameterSets([...h.vps, ...h.sps, ...h.pps]);
        }
      }
      return p;
    }
    case 'aac':
      return new Mpeg4GenericPacketizer(writer, { mtu });
    case 'opus':
      return new OpusPacketizer(writer);
    case 'pcma':
    case 'pcmu':
      return new G711Packetizer(writer, { mtu, channels: config.channels });
    case 'vp8':
    case 'vp9':
    case 'av1':
      return new VpxPacketizer(config.codec, writer, { mtu });
    default:
      throw new FormatError(`codec ${config.codec} has no RTP packetizer`);
  }
}
