// One RTSP session (RFC 2326 3.0: the state SETUP creates, named by the Session header): a viewer (PLAY)
// or a publisher (ANNOUNCE/RECORD), with the transport of each of its tracks. Owned by the connection
// that created it; a TCP session ends with its connection, a UDP session also times out when neither
// requests nor RTCP/RTP come for `sessiontimeout`.

import type { Publisher, SessionHandle, Subscriber, Track } from '../../src/plugin.ts';
import type { SdpTrack } from '../../src/format/sdp/codec.ts';
import type { RtpIngest } from './ingest.ts';
import type { RtpPlaySink, TrackOut } from './sink.ts';

export interface SetupTrack {
  /** Index in the SDP (DESCRIBE answer or ANNOUNCEd). */
  index: number;
  control: string;
  out: TrackOut;
  /** Play: the stream track. */
  track?: Track;
  /** UDP: routes registered on the shared listeners, removed on close. */
  unregister: (() => void)[];
}

export class RtspSession {
  readonly setups = new Map<number, SetupTrack>();
  state: 'init' | 'ready' | 'playing' | 'recording' = 'init';
  lastSeen = Date.now();
  closed = false;
  closeReason = '';
  handle: SessionHandle<RtspSession> | null = null;
  // play
  sub: Subscriber | null = null;
  sink: RtpPlaySink | null = null;
  playTracks: Track[] = [];
  // record
  pub: Publisher | null = null;
  sdpTracks: SdpTrack[] = [];
  ingest: RtpIngest | null = null;

  constructor(
    readonly id: string,
    readonly mode: 'play' | 'record',
    readonly path: string,
    readonly args: Record<string, string>,
    readonly remote: string,
    private readonly onClose: (s: RtspSession, reason: string) => void,
  ) {}

  get transport(): 'tcp' | 'udp' | 'multicast' | '' {
    for (const s of this.setups.values()) return s.out.kind;
    return '';
  }

  touch(): void { this.lastSeen = Date.now(); }

  info(): Record<string, unknown> {
    return {
      session: this.id, mode: this.mode, state: this.state, transport: this.transport,
      tracks: [...this.setups.values()].map((s) => ({ index: s.index, control: s.control, ...s.out })),
      frames: this.sink?.frames, packets: this.sink?.packets,
      rtp: this.ingest?.stats(),
    };
  }

  /** Stop playing (PAUSE): the subscriber ends, the session stays. */
  pausePlay(): void {
    if (this.sub) { const s = this.sub; this.sub = null; this.sink?.dispose(); s.close('paused'); }
    this.sink = null;
    if (this.state === 'playing') this.state = 'ready';
  }

  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    this.pausePlay();
    this.ingest?.close();
    this.pub?.close(reason);
    for (const s of this.setups.values()) for (const u of s.unregister) u();
    this.onClose(this, reason);
    this.handle?.remove(reason);
  }
}
