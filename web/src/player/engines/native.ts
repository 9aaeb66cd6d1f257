/**
 * Native HLS: the `<video>` element loads `/hls/{stream}/stream.m3u8` itself (Safari, iOS, and
 * Chromium builds with built-in HLS). A bearer token goes in `?token=` because the element
 * cannot send headers.
 *
 * Latency: `Date.now()` minus the playhead's wall clock (`getStartDate()` + `currentTime`, Safari),
 * else the distance from the playhead to the end of the seekable range ("behind live edge").
 */

import { withTokenQuery } from "../../api/client";
import { PlaybackError, type Engine, type EngineCallbacks, type LatencySample } from "./types";

type SafariVideo = HTMLVideoElement & { getStartDate?: () => Date };

export class NativeHlsEngine implements Engine {
  private stopped = false;

  constructor(
    private readonly stream: string,
    private readonly video: HTMLVideoElement,
    private readonly cb: EngineCallbacks,
  ) {}

  async start(): Promise<void> {
    this.video.addEventListener("playing", this.onPlaying);
    this.video.addEventListener("error", this.onError);
    this.video.src = withTokenQuery(`/hls/${encodeURIComponent(this.stream)}/stream.m3u8`);
    this.video.play().catch(() => undefined);
  }

  private readonly onPlaying = () => this.cb.onPlaying();

  private readonly onError = () => {
    if (this.stopped) return;
    const err = this.video.error;
    this.cb.onFatal(new PlaybackError(err?.message || `media error ${err?.code ?? "?"}`));
  };

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.video.removeEventListener("playing", this.onPlaying);
    this.video.removeEventListener("error", this.onError);
    this.video.removeAttribute("src");
    this.video.load();
  }

  async latency(): Promise<LatencySample | null> {
    const v = this.video as SafariVideo;
    const start = v.getStartDate?.();
    if (start && Number.isFinite(start.getTime()) && start.getTime() > 0) {
      return { ms: Math.max(0, Date.now() - (start.getTime() + v.currentTime * 1000)), method: "now − PDT at playhead" };
    }
    if (v.seekable.length > 0) {
      const edge = v.seekable.end(v.seekable.length - 1);
      return { ms: Math.max(0, (edge - v.currentTime) * 1000), method: "behind live edge" };
    }
    return null;
  }
}
