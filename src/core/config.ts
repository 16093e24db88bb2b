// The engine's publish/subscribe settings, resolved (durations in ms). The schema that declares their
// defaults, documentation and validation lives in src/core/schema.ts; this file only has the shapes.

export type SubMode = 'real' | 'noskip' | 'buffer';
export type WaitTrack = 'video' | 'audio' | 'all' | 'any';

export interface PublishConfig {
  /** Maximum publishing streams in the server, 0 = no limit. */
  maxcount: number;
  pubaudio: boolean;
  pubvideo: boolean;
  /** A new publisher on a busy path takes it over instead of being refused. */
  kickexist: boolean;
  /** No data for this long ends the publisher (ms). */
  publishtimeout: number;
  /** After the last subscriber leaves, stop the stream after this long (ms); 0 = never. */
  delayclosetimeout: number;
  /** A stream nobody ever subscribed to is stopped after this long (ms); 0 = never. */
  idletimeout: number;
  /** While paused, no data for this long ends the publisher (ms). */
  pausetimeout: number;
  /** Keep at least this much history for time-shifted subscribers (ms). */
  buffertime: number;
  /** Pace file/VOD sources at this multiple of real time; 0 = as fast as they come. */
  speed: number;
  /** Secret for key + expire auth; empty = off. */
  key: string;
  secretargname: string;
  expireargname: string;
  /** Hard bounds of a stream's ring: frames and payload bytes. */
  ringsize: number;
  ringbytes: number;
}

export interface SubscribeConfig {
  /** Maximum subscribers per stream, 0 = no limit. */
  maxcount: number;
  subaudio: boolean;
  subvideo: boolean;
  /** real: skip to a keyframe when behind; noskip: never skip (recording); buffer: start buffertime back. */
  submode: SubMode;
  buffertime: number;
  /** Keyframes only (thumbnails, low-bandwidth previews). */
  iframeonly: boolean;
  /** How long to wait for a missing publisher (also: for a lost one to come back) (ms). */
  waittimeout: number;
  /** Which track must be ready before play starts. */
  waittrack: WaitTrack;
  /** In real mode, a subscriber further behind the live edge than this skips to the latest keyframe (ms). */
  maxlag: number;
  /**
   * Merged writes (ms): a viewer's frames are held until the oldest unsent one is this old, then written
   * in one go. 0 = every frame is written when it arrives (lowest latency, most writes).
   */
  mergewrite: number;
  /**
   * Instant start at the live edge (ms): a new player's cached GOP is retimed to play within this time
   * (its cached audio is left out), so it is at the live edge after it. 0 = off: the GOP plays in real
   * time and the player stays behind by the GOP's age.
   */
  catchup: number;
  /**
   * A viewer whose connection stays blocked (its write queue above the high-water mark, not draining)
   * this long is ended (ms); 0 = never. ZLMediaKit ends such sockets after 10 s, nginx after send_timeout (60 s).
   */
  writetimeout: number;
  key: string;
  secretargname: string;
  expireargname: string;
  /** Query args that pick a video / audio track by index (big/small streams). */
  subvideoargname: string;
  subaudioargname: string;
}

export const defaultPublish: PublishConfig = {
  maxcount: 0, pubaudio: true, pubvideo: true, kickexist: false, publishtimeout: 10_000, delayclosetimeout: 0,
  idletimeout: 0, pausetimeout: 30_000, buffertime: 0, speed: 0, key: '', secretargname: 'secret',
  expireargname: 'expire', ringsize: 4096, ringbytes: 64 << 20,
};

export const defaultSubscribe: SubscribeConfig = {
  maxcount: 0, subaudio: true, subvideo: true, submode: 'real', buffertime: 0, iframeonly: false,
  waittimeout: 10_000, waittrack: 'video', maxlag: 3000, mergewrite: 0, catchup: 100, writetimeout: 30_000, key: '', secretargname: 'secret',
  expireargname: 'expire', subvideoargname: 'vts', subaudioargname: 'ats',
};

/** Monibuca writes submode as 0/1/2; accept both spellings. */
export function normSubMode(v: unknown): SubMode {
  if (v === 1 || v === '1' || v === 'noskip' || v === 'record') return 'noskip';
  if (v === 2 || v === '2' || v === 'buffer') return 'buffer';
  return 'real';
}
