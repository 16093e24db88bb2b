// The audio bridge: a derived audio track in another codec (AAC → Opus for WebRTC viewers, Opus → AAC for
// RTMP/FLV/HLS/fMP4 viewers), made on demand by a transcoder a plugin provides (plugins/audiobridge:
// ffmpeg as a child process) and shared by every subscriber that needs it.
//
// A subscriber whose sink lists the audio codecs it takes (SubscriberSink.audioCodecs) and whose stream's
// audio is none of them asks the bridge when it starts. The first one starts the transcoder: an internal
// subscriber (not counted in the audience) feeds it the source track's frames, and its output is written
// into the same stream as a derived track (index DERIVED_INDEX_BASE and up), so every muxer interleaves
// it like any other track. Timestamps are mapped from the source's: the transcoder gets and returns
// contiguous samples, and each output packet takes the stream time of the input samples it came from
// (gaps and jumps in the source carry over). Later subscribers share the track; when the last one leaves
// the transcoder stops after `linger` ms (a viewer reloading a page finds it still running).

import type { Logger } from '../log.ts';
import { parseAsc } from '../codec/aac.ts';
import { opusPacketSamples } from '../codec/opus.ts';
import type { SubscribeConfig } from './config.ts';
import type { CodecConfig, Frame, Track } from './frame.ts';
import type { Stream } from './stream.ts';
import { Subscriber, type SubscriberSink } from './subscriber.ts';


/** What a running transcoder reports. */
export interface TranscodeOutput {
  /** One encoded packet of `samples` samples at the output config's sample rate. */
  packet(data: Uint8Array, samples: number): void;
  /** The transcoder stopped on its own (crash, bad input, missing encoder): the reason. */
  failed(reason: string): void;
}

export interface AudioTranscoder {
  /** One source frame (canonical payload, `cfg` its codec config). False: not taken (dropped, e.g. the transcoder is behind). */
  write(data: Uint8Array, cfg: CodecConfig): boolean;
  close(): void;
}

/** What a plugin provides: the codecs it can make and a way to start a transcoder. */
export interface TranscoderFactory {
  /** Shown in logs and /api (e.g. "ffmpeg"). */
  readonly name: string;
  /** The output when `from` can become `to`, or why not. `delay`: output samples before the first input sample (encoder priming). */
  plan(from: CodecConfig, to: string): { config: CodecConfig; delay: number } | string;
  start(from: CodecConfig, to: string, out: TranscodeOutput, what: string): AudioTranscoder;
}

/** How far (s) a source's timestamps may wander from its sample count before the bridge re-anchors. */
const REANCHOR_SEC = 0.08;

export interface BridgeInfo {
  stream: string;
  from: string;
  to: string;
  track: number;
  viewers: number;
  startTime: string;
  framesIn: number;
  framesOut: number;
  state: 'running' | 'lingering' | 'failed';
  error?: string;
}

interface Entry {
  key: string;
  stream: Stream;
  source: Track;
  codec: string;
  track: Track;
  leases: number;
  feed: Subscriber | null;
  tx: AudioTranscoder | null;
  /** Input positions (s of contiguous media) and the stream time (s) each input frame started at. */
  queue: { pos: number; sec: number }[];
  inPos: number;
  outSamples: number;
  outRate: number;
  delay: number;
  linger: ReturnType<typeof setTimeout> | undefined;
  startTime: number;
  framesIn: number;
  framesOut: number;
  error: string;
  stopped: boolean;
}

export class AudioBridge {
  private readonly entries = new Map<string, Entry>();
  private readonly byTrack = new Map<Track, Entry>();
  /** Transcoders started since the bridge was set up (tests, metrics). */
  started = 0;

  constructor(
    readonly factory: TranscoderFactory,
    private readonly opts: { linger: number; logger: Logger; feedConfig: () => SubscribeConfig },
  ) {}

  /**
   * A derived track of the first codec in `codecs` the bridge can make from `source`, started if needed;
   * null when none can be made (the reason is logged once per stream and codec pair).
   */
  acquire(stream: Stream, source: Track, codecs: readonly string[]): Track | null {
    const reasons: string[] = [];
    for (const codec of codecs) {
      const key = `${stream.id}/${source.id}/${codec}`;
      const e = this.entries.get(key);
      if (e && !e.error) {
        e.leases++;
        if (e.linger !== undefined) { clearTimeout(e.linger); e.linger = undefined; }
        return e.track;
      }
      if (e) { reasons.push(`${codec}: ${e.error}`); continue; } // failed: not restarted while its viewers are still there
      const plan = this.factory.plan(source.config, codec);
      if (typeof plan === 'string') { reasons.push(plan); continue; }
      return this.startEntry(key, stream, source, codec, plan.config, plan.delay).track;
    }
    this.opts.logger.debug('audio bridge: nothing to make', { stream: stream.path, from: source.codec, to: codecs.join(','), reasons: reasons.join('; ') });
    return null;
  }

  /** A subscriber that got `track` from acquire() is done with it. */
  release(track: Track): void {
    const e = this.byTrack.get(track);
    if (!e || e.stopped) return;
    if (--e.leases > 0) return;
    e.leases = 0;
    if (e.error || this.opts.linger <= 0 || e.stream.state === 'closed') { this.stop(e, 'no viewers'); return; }
    e.linger = setTimeout(() => { e.linger = undefined; if (e.leases === 0) this.stop(e, `no viewers for ${this.opts.linger} ms`); }, this.opts.linger);
  }

  info(): BridgeInfo[] {
    return [...this.byTrack.values()].map((e) => ({
      stream: e.stream.path, from: e.source.codec, to: e.codec, track: e.track.index, viewers: e.leases,
      startTime: new Date(e.startTime).toISOString(), framesIn: e.framesIn, framesOut: e.framesOut,
      state: e.error ? 'failed' : e.leases === 0 ? 'lingering' : 'running', ...(e.error ? { error: e.error } : {}),
    }));
  }

  /** Stop every transcoder (the providing plugin stops). */
  close(): void {
    for (const e of [...this.byTrack.values()]) this.stop(e, 'audio bridge stopped');
  }

  private startEntry(key: string, stream: Stream, source: Track, codec: string, cfg: CodecConfig, delay: number): Entry {
    const outRate = cfg.sampleRate ?? 48000;
    const track = stream.addDerivedTrack('audio', outRate, cfg, source);
    const e: Entry = {
      key, stream, source, codec, track, leases: 1, feed: null, tx: null, queue: [], inPos: 0, outSamples: 0, outRate,
      delay: delay / outRate, linger: undefined, startTime: Date.now(), framesIn: 0, framesOut: 0, error: '', stopped: false,
    };
    this.entries.set(key, e);
    this.byTrack.set(track, e);
    this.started++;
    this.opts.logger.info('audio bridge started', { stream: stream.path, from: source.codec, to: codec, transcoder: this.factory.name });
    e.tx = this.factory.start(source.config, codec, {
      packet: (data, samples) => this.onPacket(e, data, samples),
      failed: (reason) => this.fail(e, reason),
    }, `audio bridge ${source.codec}→${codec} for ${stream.path}`);
    // The feed: the source track from the latest sync point on, never counted, never blocking.
    const base = this.opts.feedConfig();
    const conf: SubscribeConfig = { ...base, subvideo: false, subaudio: true, submode: 'real', catchup: 0, iframeonly: false, maxlag: Infinity };
    const sink: SubscriberSink = {
      frame: (f) => { this.onInput(e, f); return 0; },
      flush: () => true,
      close: (reason) => this.stop(e, reason),
    };
    const feed = new Subscriber(stream, conf, sink, 'audiobridge', 'bridge', { [conf.subaudioargname]: String(source.index) }, undefined, { counted: false });
    e.feed = feed;
    stream.addSubscriber(feed);
    feed.start();
    return e;
  }

  /** The transcoder cannot go on: viewers keep the (now silent) track, later ones are not given it. */
  private fail(e: Entry, reason: string): void {
    if (e.stopped || e.error) return;
    e.error = reason; // stays listed (and is not restarted) until its viewers are gone
    this.opts.logger.warn('audio bridge failed', { stream: e.stream.path, from: e.source.codec, to: e.codec, error: reason });
    try { e.tx?.close(); } catch { /* already gone */ }
    e.tx = null;
    if (e.leases === 0) this.stop(e, reason);
  }

  private onInput(e: Entry, f: Frame): void {
    if (e.stopped || e.error || !e.tx) return;
    if (f.track !== e.source) {
      // A returning publisher at another clock rate gets a new track object in the same slot.
      const t = f.track;
      if (t.kind !== 'audio' || t.index !== e.source.index || t.derivedFrom) return;
      if (t.codec !== e.source.codec) { this.fail(e, `the source's audio changed from ${e.source.codec} to ${t.codec}`); return; }
      e.source = t;
    }
    const dur = frameSeconds(f);
    if (!(dur > 0)) return;
    if (!e.tx.write(f.data, f.config)) return;
    // A new anchor only where the source's time leaves the sample count by more than REANCHOR_SEC (a gap,
    // a jump, clock drift): in between, output times follow the sample count, so they keep the codec's
    // exact frame spacing instead of the source's rounding (RTMP's whole milliseconds).
    const sec = f.dts / f.track.clockRate;
    const last = e.queue[e.queue.length - 1];
    if (!last || Math.abs(last.sec + (e.inPos - last.pos) - sec) > REANCHOR_SEC) e.queue.push({ pos: e.inPos, sec });
    e.inPos += dur;
    e.framesIn++;
  }

  private onPacket(e: Entry, data: Uint8Array, samples: number): void {
    if (e.stopped) return;
    const pos = e.outSamples / e.outRate - e.delay;
    e.outSamples += samples;
    const q = e.queue;
    if (!q.length) return;
    let i = 0;
    while (i + 1 < q.length && q[i + 1]!.pos <= pos) i++;
    if (i > 0) q.splice(0, i);
    const at = q[0]!;
    const sec = at.sec + (pos - at.pos); // before the anchor for the encoder's priming samples
    let dts = Math.round(sec * e.outRate);
    if (dts <= e.track.lastDts) dts = e.track.lastDts + 1;
    e.framesOut++;
    e.stream.writeDerived(e.track, dts, data);
  }

  private stop(e: Entry, reason: string): void {
    if (e.stopped) return;
    e.stopped = true;
    if (e.linger !== undefined) clearTimeout(e.linger);
    if (this.entries.get(e.key) === e) this.entries.delete(e.key);
    this.byTrack.delete(e.track);
    const feed = e.feed;
    e.feed = null;
    feed?.close('audio bridge stopped');
    try { e.tx?.close(); } catch { /* already gone */ }
    e.tx = null;
    e.stream.removeDerivedTrack(e.track);
    this.opts.logger.info('audio bridge stopped', { stream: e.stream.path, from: e.source.codec, to: e.codec, reason, framesIn: e.framesIn, framesOut: e.framesOut });
  }
}

const aacFrameSec = new WeakMap<Uint8Array, number>();

/** Media duration of a source frame (s): AAC 1024 samples at the core rate, Opus from its TOC, G.711 by size. */
function frameSeconds(f: Frame): number {
  const c = f.config;
  try {
    switch (c.codec) {
      case 'aac': {
        if (!c.data) return 1024 / (c.sampleRate ?? f.track.clockRate);
        let d = aacFrameSec.get(c.data);
        if (d === undefined) {
          const a = parseAsc(c.data);
          aacFrameSec.set(c.data, d = a.samplesPerFrame / a.sampleRate);
        }
        return d;
      }
      case 'opus': return opusPacketSamples(f.data) / 48000;
      case 'pcma': case 'pcmu': return f.data.length / (c.sampleRate ?? 8000) / (c.channels ?? 1);
      default: return f.delta > 0 ? f.delta / f.track.clockRate : 0;
    }
  } catch {
    return 0; // a frame its own codec cannot read: not fed
  }
}
