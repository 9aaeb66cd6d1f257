/**
 * Which playback path a stream tile uses: a pure function of what the browser can do and the
 * stream's codec, so it is testable without a browser (select.test.ts).
 *
 * Paths, best first (lowest latency first):
 *  - `whep`: WebRTC playback (RFC 9725 WHEP, `POST /whep/{stream}`); needs RTCPeerConnection and
 *    a receive codec for the stream (egress passes H.264, VP8 and AV1 through).
 *  - `ll-hls`: hls.js over Media Source Extensions, `stream_ll.m3u8` (LL-HLS, fMP4 parts,
 *    RFC 8216bis); the player falls back to `stream.m3u8` when the LL playlist is missing.
 *  - `hls`: hls.js over MSE, `stream.m3u8` (MPEG-TS segments, RFC 8216).
 *  - `native-hls`: the `<video>` element plays `stream.m3u8` itself (Safari, iOS).
 *  - `webcodecs`: the WebSocket relay `/ws/{stream}` into a WebCodecs `VideoDecoder` (AV1,
 *    H.264, VP8, VP9) or `createImageBitmap` (JPEG, WebP) drawing on a canvas.
 */

export type PlaybackPath = "whep" | "ll-hls" | "hls" | "native-hls" | "webcodecs";

export const ALL_PATHS: readonly PlaybackPath[] = ["whep", "ll-hls", "hls", "native-hls", "webcodecs"];

export const PATH_LABELS: Record<PlaybackPath, string> = {
  whep: "WebRTC",
  "ll-hls": "LL-HLS",
  hls: "HLS",
  "native-hls": "Native HLS",
  webcodecs: "WebCodecs",
};

/** What the browser offers, as detected by `detectCapabilities()` (capabilities.ts). */
export interface Capabilities {
  /** `RTCPeerConnection` exists. */
  rtcPeerConnection: boolean;
  /** Receive codecs from `RTCRtpReceiver.getCapabilities("video")`, lower-case MIME subtypes
   * (`h264`, `vp8`, `av1`, ...). `null` when the browser cannot list them (assume the usual). */
  rtcReceiveCodecs: readonly string[] | null;
  /** `MediaSource` or `ManagedMediaSource` exists. */
  mediaSource: boolean;
  /** `MediaSource.isTypeSupported`, or always false without MSE. */
  isTypeSupported: (mime: string) => boolean;
  /** `video.canPlayType("application/vnd.apple.mpegurl")` is "maybe" or "probably". */
  nativeHls: boolean;
  /** `WebSocket` exists. */
  webSocket: boolean;
  /** `VideoDecoder` (WebCodecs) exists. */
  videoDecoder: boolean;
  /** `createImageBitmap` exists (JPEG/WebP frames). */
  imageBitmap: boolean;
}

export interface PathOption {
  path: PlaybackPath;
  available: boolean;
  /** Why the path cannot play this stream here (only when `available` is false). */
  reason?: string;
}

/** Codecs the egress passes through over WebRTC (docs/bus.md, WHIP/WHEP). */
const WHEP_CODECS = new Set(["h264", "vp8", "av1"]);
/** Codecs the HLS service packages (MPEG-TS and fMP4). */
const HLS_CODECS = new Set(["h264", "h265"]);
/** Codecs the hls.js MPEG-TS transmuxer handles. */
const TS_CODECS = new Set(["h264"]);
const WEBCODECS_VIDEO = new Set(["h264", "h265", "vp8", "vp9", "av1"]);
const IMAGE_CODECS = new Set(["jpeg", "webp"]);

/** A representative MSE type per codec, to ask `isTypeSupported`. */
const MSE_PROBE: Record<string, string> = {
  h264: 'video/mp4; codecs="avc1.42E01E"',
  h265: 'video/mp4; codecs="hvc1.1.6.L93.B0"',
};

function normCodec(codec: string | undefined | null): string {
  return (codec ?? "").trim().toLowerCase();
}

function whepOption(caps: Capabilities, codec: string): PathOption {
  if (!caps.rtcPeerConnection) return { path: "whep", available: false, reason: "this browser has no WebRTC" };
  if (!WHEP_CODECS.has(codec)) return { path: "whep", available: false, reason: `WebRTC does not carry ${codec || "this codec"}` };
  if (caps.rtcReceiveCodecs !== null && !caps.rtcReceiveCodecs.includes(codec)) {
    return { path: "whep", available: false, reason: `this browser cannot receive ${codec} over WebRTC` };
  }
  return { path: "whep", available: true };
}

function mseHlsOption(path: "ll-hls" | "hls", caps: Capabilities, codec: string): PathOption {
  if (!caps.mediaSource) return { path, available: false, reason: "this browser has no Media Source Extensions" };
  const codecs = path === "hls" ? TS_CODECS : HLS_CODECS;
  if (!codecs.has(codec)) return { path, available: false, reason: `HLS does not carry ${codec || "this codec"}` };
  const probe = MSE_PROBE[codec];
  if (probe !== undefined && !caps.isTypeSupported(probe)) {
    return { path, available: false, reason: `this browser cannot decode ${codec} in MSE` };
  }
  return { path, available: true };
}

function nativeHlsOption(caps: Capabilities, codec: string): PathOption {
  if (!caps.nativeHls) return { path: "native-hls", available: false, reason: "this browser has no native HLS" };
  if (!HLS_CODECS.has(codec)) return { path: "native-hls", available: false, reason: `HLS does not carry ${codec || "this codec"}` };
  return { path: "native-hls", available: true };
}

function webcodecsOption(caps: Capabilities, codec: string): PathOption {
  if (!caps.webSocket) return { path: "webcodecs", available: false, reason: "this browser has no WebSocket" };
  if (IMAGE_CODECS.has(codec)) {
    return caps.imageBitmap
      ? { path: "webcodecs", available: true }
      : { path: "webcodecs", available: false, reason: "this browser has no createImageBitmap" };
  }
  if (!WEBCODECS_VIDEO.has(codec)) return { path: "webcodecs", available: false, reason: `no decoder for ${codec || "this codec"}` };
  if (!caps.videoDecoder) return { path: "webcodecs", available: false, reason: "this browser has no WebCodecs" };
  return { path: "webcodecs", available: true };
}

/**
 * Every path with whether it can play `codec` here, in preference order.
 *
 * The order is WHEP, LL-HLS, HLS, native HLS, WebCodecs, except that native HLS moves before the
 * hls.js paths when MSE is missing (iOS Safari), which the `available` flags already express.
 */
export function planPaths(caps: Capabilities, codec: string | undefined | null): PathOption[] {
  const c = normCodec(codec);
  return [
    whepOption(caps, c),
    mseHlsOption("ll-hls", caps, c),
    mseHlsOption("hls", caps, c),
    nativeHlsOption(caps, c),
    webcodecsOption(caps, c),
  ];
}

/** The paths that can play `codec` here, best first. Empty when none can. */
export function availablePaths(caps: Capabilities, codec: string | undefined | null): PlaybackPath[] {
  return planPaths(caps, codec)
    .filter((o) => o.available)
    .map((o) => o.path);
}

/**
 * The path to start with: the user's `preferred` one when it is available, else the best.
 * Returns null when no path can play the stream.
 */
export function choosePath(
  caps: Capabilities,
  codec: string | undefined | null,
  preferred?: PlaybackPath | null,
): PlaybackPath | null {
  const paths = availablePaths(caps, codec);
  if (preferred && paths.includes(preferred)) return preferred;
  return paths[0] ?? null;
}

/**
 * The next path to try after `failed` stopped working: the next available one in preference
 * order that is not in `tried`, wrapping around to the better ones. Null when none is left.
 */
export function nextPath(
  caps: Capabilities,
  codec: string | undefined | null,
  failed: PlaybackPath,
  tried: ReadonlySet<PlaybackPath> = new Set(),
): PlaybackPath | null {
  const paths = availablePaths(caps, codec);
  const start = paths.indexOf(failed);
  for (let step = 1; step <= paths.length; step++) {
    const p = paths[(start + step + paths.length) % paths.length];
    if (p !== undefined && p !== failed && !tried.has(p)) return p;
  }
  return null;
}

export function isPlaybackPath(value: unknown): value is PlaybackPath {
  return typeof value === "string" && (ALL_PATHS as readonly string[]).includes(value);
}
