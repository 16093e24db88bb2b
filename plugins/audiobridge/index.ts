// The audiobridge plugin: transcoded audio tracks on demand, made by ffmpeg as a child process (see
// docs/plugins/audiobridge.md). AAC sources (RTMP, RTSP, HLS pull) get Opus for WebRTC viewers; Opus
// sources (WHIP) get AAC for RTMP/FLV/HLS/fMP4 viewers. The engine side (sharing, lazy start, linger,
// timestamps) is src/core/bridge.ts; this plugin only runs the codec.
//
//   ffmpeg stdin  ← ADTS (AAC source) or Ogg Opus (Opus source), one frame per write
//   ffmpeg stdout → Ogg Opus (libopus, 20 ms packets, one page each) or ADTS AAC
//
//   GET /audiobridge/api/status   the transcoder in use and the running bridges

import { adtsHeader, parseAdtsHeader, parseAsc, buildAsc } from '../../src/codec/aac.ts';
import { buildOpusHead, opusPacketSamples } from '../../src/codec/opus.ts';
import { OGG_BOS, OggReader, oggPage, opusTags } from '../../src/format/ogg.ts';
import { FormatError } from '../../src/format/bytes.ts';
import { definePlugin, t, type AudioTranscoder, type CodecConfig, type PluginContext, type TranscodeOutput, type TranscoderFactory } from '../../src/plugin.ts';
import type { ChildProcess } from '../../src/net/types.ts';

/** Input bytes held while ffmpeg starts or while its stdin pushes back; past this, frames are dropped. */
const MAX_PENDING = 256 * 1024;

interface Conf { ffmpeg: string; opusbitrate: number; aacbitrate: number; linger: number }

export default definePlugin({
  name: 'audiobridge',
  description: 'AAC ⇄ Opus for viewers whose protocol cannot carry the source audio (ffmpeg child process)',
  needs: ['proc'],
  defaults: {
    /** The ffmpeg program: a path, or a name looked up on PATH. It needs libopus for Opus output (ffmpeg's own opus encoder is used, with a warning, when it lacks it). */
    ffmpeg: t.str('ffmpeg'),
    /** Opus bitrate for WebRTC viewers of AAC sources (bits/s). */
    opusbitrate: t.num(64000, { min: 6000, max: 510000, int: true }),
    /** AAC bitrate for RTMP/FLV/HLS/fMP4 viewers of Opus sources (bits/s). */
    aacbitrate: t.num(128000, { min: 16000, max: 512000, int: true }),
    /** How long a transcoder keeps running after its last viewer left (a reload finds it warm). */
    linger: t.dur('5s'),
  },
  async setup(ctx) {
    const conf = ctx.config as unknown as Conf;
    const probe: { ffmpeg: string; libopus?: boolean; error?: string } = { ffmpeg: conf.ffmpeg };
    // What the ffmpeg here can do, found in the background when a bridge is first asked for (a bridge
    // started before it knows assumes libopus), not at every start: most servers never bridge.
    let probed: Promise<void> | undefined;
    const ensureProbe = () => (probed ??= probeCached(ctx, conf.ffmpeg).then((r) => {
      Object.assign(probe, r);
      if (r.error) ctx.logger.warn('audio bridge: ffmpeg is not usable', { ffmpeg: conf.ffmpeg, error: r.error });
      else if (!r.libopus) ctx.logger.warn('audio bridge: this ffmpeg has no libopus; using its experimental opus encoder', { ffmpeg: conf.ffmpeg });
    }));
    const factory: TranscoderFactory = {
      name: 'ffmpeg',
      plan(from, to) {
        void ensureProbe();
        if (probe.error) return `ffmpeg (${conf.ffmpeg}) is not usable: ${probe.error}`;
        const ch = Math.min(2, Math.max(1, from.channels ?? 2));
        if (from.codec === 'aac' && to === 'opus') {
          return { config: { codec: 'opus', sampleRate: 48000, channels: ch, data: buildOpusHead({ channels: ch, preSkip: 312, inputSampleRate: from.sampleRate ?? 48000, outputGain: 0, mappingFamily: 0 }) }, delay: 312 };
        }
        if (from.codec === 'opus' && to === 'aac') {
          return { config: { codec: 'aac', sampleRate: 48000, channels: ch, data: buildAsc({ objectType: 2, sampleRate: 48000, channelConfig: ch }) }, delay: 1024 };
        }
        return `no ${from.codec} → ${to} bridge (AAC → Opus and Opus → AAC only)`;
      },
      start: (from, to, out, what) => new FfmpegTranscoder(ctx, conf, probe, from, to, out, what),
    };
    const provided = ctx.engine.provideAudioBridge(factory, { linger: conf.linger });
    ctx.onStop(() => provided.remove());
    ctx.http.get('/api/status', async (c) => {
      await ensureProbe();
      return ctx.ok(c, { transcoder: 'ffmpeg', ffmpeg: probe.ffmpeg, libopus: probe.libopus ?? null, error: probe.error ?? null, started: provided.bridge.started, bridges: provided.bridge.info() });
    });
  },
});

/** Probe results of programs that worked, per process (a failure is tried again next time). */
const probes = new Map<string, { libopus?: boolean }>();

async function probeCached(ctx: PluginContext, ffmpeg: string): Promise<{ libopus?: boolean; error?: string }> {
  const known = probes.get(ffmpeg);
  if (known) return known;
  const r = await probeFfmpeg(ctx, ffmpeg);
  if (!r.error) probes.set(ffmpeg, r);
  return r;
}

/**
 * What this ffmpeg can encode, by trying: a tenth of a second of silence through libopus and aac (exit
 * status only, so nothing depends on reading its output), then aac alone when that failed.
 */
async function probeFfmpeg(ctx: PluginContext, ffmpeg: string): Promise<{ libopus?: boolean; error?: string }> {
  const tryEncode = async (codecs: string[]): Promise<{ ok: boolean; err: string }> => {
    const out = codecs.flatMap((c) => ['-map', '0:a', '-c:a', c, '-f', 'null', '-']);
    const p = await ctx.spawn(ffmpeg, ['-hide_banner', '-loglevel', 'error', '-t', '0.1', '-f', 'lavfi', '-i', 'anullsrc=r=48000:cl=stereo', ...out],
      { what: `audio bridge: ffmpeg encoder check (${codecs.join(', ')})` });
    let err = '';
    p.onStderr((b) => { err = (err + new TextDecoder().decode(b)).slice(-300); });
    p.endInput();
    const timer = setTimeout(() => p.kill('SIGKILL'), 15_000);
    const r = await p.exited;
    clearTimeout(timer);
    return { ok: r.code === 0, err: err.trim().split('\n').pop() || `exit ${r.code ?? r.signal}` };
  };
  try {
    if ((await tryEncode(['libopus', 'aac'])).ok) return { libopus: true };
    const aac = await tryEncode(['aac']);
    if (!aac.ok) return { error: `it cannot encode AAC: ${aac.err}` };
    return { libopus: false };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

class FfmpegTranscoder implements AudioTranscoder {
  private proc: ChildProcess | null = null;
  private closed = false;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private waitingDrain = false;
  private stderrTail = '';
  // Ogg input (Opus source)
  private oggSeq = 0;
  private granule = 0;
  private readonly serial = (Math.random() * 0x100000000) >>> 0;
  // Output
  private readonly ogg = new OggReader();
  private adts: Uint8Array = new Uint8Array(0);
  /** Input frames dropped because ffmpeg could not keep up. */
  dropped = 0;

  constructor(
    ctx: PluginContext,
    conf: Conf,
    probe: { libopus?: boolean },
    private readonly from: CodecConfig,
    private readonly to: string,
    private readonly out: TranscodeOutput,
    what: string,
  ) {
    const ch = String(Math.min(2, Math.max(1, from.channels ?? 2)));
    const input = from.codec === 'aac' ? ['-f', 'aac'] : ['-f', 'ogg'];
    const output = to === 'opus'
      ? [...(probe.libopus === false ? ['-c:a', 'opus', '-strict', '-2'] : ['-c:a', 'libopus', '-frame_duration', '20', '-application', 'audio']),
        '-b:a', String(conf.opusbitrate), '-ar', '48000', '-ac', ch, '-f', 'ogg', '-page_duration', '20000']
      : ['-c:a', 'aac', '-b:a', String(conf.aacbitrate), '-ar', '48000', '-ac', ch, '-f', 'adts'];
    const args = ['-hide_banner', '-loglevel', 'error', '-nostats', '-fflags', '+nobuffer', '-probesize', '32', '-analyzeduration', '0',
      ...input, '-i', 'pipe:0', '-map', '0:a', ...output, '-flush_packets', '1', 'pipe:1'];
    if (from.codec === 'opus') {
      const head = buildOpusHead({ channels: from.channels === 1 ? 1 : 2, preSkip: 0, inputSampleRate: 48000, outputGain: 0, mappingFamily: 0 });
      this.queue(oggPage(head, { serial: this.serial, seq: this.oggSeq++, granule: 0, flags: OGG_BOS }));
      this.queue(oggPage(opusTags('m7s'), { serial: this.serial, seq: this.oggSeq++, granule: 0 }));
    }
    ctx.spawn(conf.ffmpeg, args, { what }).then((p) => {
      if (this.closed) { p.kill(); return; }
      this.proc = p;
      p.onStdout((b) => this.onOutput(b));
      p.onStderr((b) => { this.stderrTail = (this.stderrTail + new TextDecoder().decode(b)).slice(-400); });
      void p.exited.then((r) => {
        if (!this.closed) this.out.failed(`ffmpeg exited (${r.code ?? r.signal})${this.stderrTail ? ': ' + this.stderrTail.trim().split('\n').pop() : ''}`);
      });
      this.flushPending();
    }, (err: Error) => { if (!this.closed) this.out.failed(err.message); });
  }

  write(data: Uint8Array, cfg: CodecConfig): boolean {
    if (this.closed) return false;
    let bytes: Uint8Array;
    try {
      if (cfg.codec === 'aac') {
        const a = cfg.data ? parseAsc(cfg.data) : { objectType: 2, sampleRate: cfg.sampleRate ?? 48000, channelConfig: cfg.channels ?? 2 };
        const h = adtsHeader(a, data.length);
        bytes = new Uint8Array(h.length + data.length);
        bytes.set(h);
        bytes.set(data, h.length);
      } else if (cfg.codec === 'opus') {
        this.granule += opusPacketSamples(data);
        bytes = oggPage(data, { serial: this.serial, seq: this.oggSeq++, granule: this.granule });
      } else {
        return false;
      }
    } catch (err) {
      if (err instanceof FormatError) return false; // a frame we cannot wrap: skipped
      throw err;
    }
    if (this.pendingBytes + bytes.length > MAX_PENDING) { this.dropped++; return false; }
    this.queue(bytes);
    if (this.proc && !this.waitingDrain) this.flushPending();
    return true;
  }

  private queue(b: Uint8Array): void {
    this.pending.push(b);
    this.pendingBytes += b.length;
  }

  private flushPending(): void {
    const p = this.proc;
    if (!p || this.closed) return;
    while (this.pending.length) {
      const b = this.pending.shift()!;
      this.pendingBytes -= b.length;
      if (!p.write(b)) {
        this.waitingDrain = true;
        void p.drain().then(() => { this.waitingDrain = false; this.flushPending(); });
        return;
      }
    }
  }

  private onOutput(b: Uint8Array): void {
    if (this.closed) return;
    try {
      if (this.to === 'opus') {
        for (const pkt of this.ogg.push(b)) {
          const d = pkt.data;
          if (d.length >= 8 && d[0] === 0x4f && d[1] === 0x70 && d[2] === 0x75 && d[3] === 0x73) continue; // OpusHead / OpusTags
          this.out.packet(d, opusPacketSamples(d));
        }
      } else {
        const buf = this.adts.length ? concat(this.adts, b) : b;
        let p = 0;
        while (buf.length - p >= 7) {
          const h = parseAdtsHeader(buf, p);
          if (buf.length - p < h.frameLength) break;
          this.out.packet(buf.slice(p + h.headerLength, p + h.frameLength), 1024 * h.rawBlocks);
          p += h.frameLength;
        }
        this.adts = p < buf.length ? buf.slice(p) : new Uint8Array(0);
      }
    } catch (err) {
      if (!(err instanceof FormatError)) throw err;
      this.out.failed(`unreadable ffmpeg output: ${err.message}`);
      this.close();
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pending = [];
    const p = this.proc;
    if (p) { p.endInput(); p.kill(); }
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const o = new Uint8Array(a.length + b.length);
  o.set(a);
  o.set(b, a.length);
  return o;
}
