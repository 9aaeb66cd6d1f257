/** The interface every playback engine (WHEP, hls.js, native HLS, WebCodecs relay) implements. */

/** One latency measurement and what exactly it measures (shown next to the number). */
export interface LatencySample {
  ms: number;
  /** e.g. "jitter buffer + ½ RTT", "now − PDT at playhead", "receive → draw". */
  method: string;
}

/** Raised by an engine when its path cannot play; `status` is the HTTP status when one came back. */
export class PlaybackError extends Error {
  override name = "PlaybackError";
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export interface EngineCallbacks {
  /** Media started flowing (first frame shown). */
  onPlaying: () => void;
  /** The path failed for good; the player moves to the next one. */
  onFatal: (err: PlaybackError) => void;
  /** A remark to show under the player ("LL-HLS playlist missing: playing stream.m3u8"). */
  onNote?: (note: string) => void;
}

export interface Engine {
  /** Starts playback; rejects with PlaybackError when the path cannot start. */
  start(): Promise<void>;
  /** Stops playback and releases everything (idempotent). */
  stop(): void;
  /** The current latency estimate, or null while none is known. */
  latency(): Promise<LatencySample | null>;
}
