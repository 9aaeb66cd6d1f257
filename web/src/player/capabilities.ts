/** Detects the browser's playback capabilities for `planPaths` (select.ts). */
import type { Capabilities } from "./select";

type MseCtor = { isTypeSupported(mime: string): boolean };

function mediaSourceCtor(): MseCtor | null {
  const w = window as unknown as { MediaSource?: MseCtor; ManagedMediaSource?: MseCtor };
  return w.ManagedMediaSource ?? w.MediaSource ?? null;
}

function rtcReceiveCodecs(): string[] | null {
  if (typeof RTCRtpReceiver === "undefined" || typeof RTCRtpReceiver.getCapabilities !== "function") return null;
  const caps = RTCRtpReceiver.getCapabilities("video");
  if (!caps) return null;
  const out = new Set<string>();
  for (const c of caps.codecs) {
    const sub = c.mimeType.split("/")[1]?.toLowerCase();
    if (sub) out.add(sub);
  }
  return [...out];
}

let cached: Capabilities | null = null;

/** What this browser can do, detected once per page. */
export function detectCapabilities(): Capabilities {
  if (cached) return cached;
  const mse = mediaSourceCtor();
  const probe = document.createElement("video");
  const native = probe.canPlayType("application/vnd.apple.mpegurl");
  cached = {
    rtcPeerConnection: typeof RTCPeerConnection !== "undefined",
    rtcReceiveCodecs: rtcReceiveCodecs(),
    mediaSource: mse !== null,
    isTypeSupported: (mime: string) => (mse ? mse.isTypeSupported(mime) : false),
    nativeHls: native === "maybe" || native === "probably",
    webSocket: typeof WebSocket !== "undefined",
    videoDecoder: typeof VideoDecoder !== "undefined",
    imageBitmap: typeof createImageBitmap === "function",
  };
  return cached;
}
