/**
 * HLS through hls.js over Media Source Extensions.
 *
 * `ll-hls` loads `/hls/{stream}/stream_ll.m3u8` (LL-HLS, fMP4 parts, blocking playlist reload)
 * with `lowLatencyMode`; when that playlist is missing (404) it falls back to `stream.m3u8`, as
 * the Bambu brief asks. `hls` loads `stream.m3u8` (MPEG-TS segments, RFC 8216) directly.
 *
 * Latency: `Date.now()` minus `hls.playingDate` (the EXT-X-PROGRAM-DATE-TIME of the playhead;
 * server and browser clocks must agree), else `hls.latency` (distance behind the live edge).
 */

import type Hls from "hls.js";
import type { ErrorData } from "hls.js";
import { getToken } from "../../api/client";
import { PlaybackError, type Engine, type EngineCallbacks, type LatencySample } from "./types";

type HlsCtor = typeof Hls;

/** How often a 503 playlist (packager starting) is retried, 1 s apart, before giving up. */
const MANIFEST_RETRIES = 10;

let hlsModule: Promise<HlsCtor> | null = null;
function loadHls(): Promise<HlsCtor> {
  hlsModule ??= import("hls.js").then((m) => m.default);
  return hlsModule;
}

export class HlsJsEngine implements Engine {
  private hls: Hls | null = null;
  private stopped = false;
  private fellBack = false;
  private mediaRecoveries = 0;
  private networkRetries = 0;
  private manifestRetries = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly stream: string,
    private readonly video: HTMLVideoElement,
    private readonly lowLatency: boolean,
    private readonly cb: EngineCallbacks,
  ) {}

  private url(ll: boolean): string {
    return `/hls/${encodeURIComponent(this.stream)}/${ll ? "stream_ll.m3u8" : "stream.m3u8"}`;
  }

  async start(): Promise<void> {
    const HlsClass = await loadHls();
    if (this.stopped) return;
    if (!HlsClass.isSupported()) throw new PlaybackError("hls.js is not supported in this browser");
    this.video.addEventListener("playing", this.onPlaying);
    this.load(HlsClass, this.lowLatency);
  }

  private load(HlsClass: HlsCtor, ll: boolean): void {
    this.hls?.destroy();
    const token = getToken();
    const hls = new HlsClass({
      lowLatencyMode: ll,
      backBufferLength: 10,
      // no liveSync* here: in lowLatencyMode hls.js then targets the playlist's PART-HOLD-BACK
      enableWorker: true,
      xhrSetup: token ? (xhr) => xhr.setRequestHeader("Authorization", `Bearer ${token}`) : undefined,
    });
    this.hls = hls;
    hls.on(HlsClass.Events.MANIFEST_PARSED, () => {
      this.video.play().catch(() => undefined);
    });
    hls.on(HlsClass.Events.FRAG_LOADED, () => {
      this.networkRetries = 0;
    });
    hls.on(HlsClass.Events.ERROR, (_ev, data: ErrorData) => this.onError(HlsClass, hls, ll, data));
    hls.loadSource(this.url(ll));
    hls.attachMedia(this.video);
  }

  private onError(HlsClass: HlsCtor, hls: Hls, ll: boolean, data: ErrorData): void {
    if (this.stopped || hls !== this.hls || !data.fatal) return;
    const status = data.response?.code;
    if (ll && !this.fellBack && data.details === HlsClass.ErrorDetails.MANIFEST_LOAD_ERROR && status === 404) {
      this.fellBack = true;
      this.cb.onNote?.("no LL-HLS playlist: playing stream.m3u8");
      this.load(HlsClass, false);
      return;
    }
    // 503 + Retry-After: the stream is known but its packager is starting (docs/http.md "HLS")
    if (data.details === HlsClass.ErrorDetails.MANIFEST_LOAD_ERROR && status === 503 && this.manifestRetries < MANIFEST_RETRIES) {
      this.manifestRetries++;
      this.retryTimer = setTimeout(() => {
        if (!this.stopped) this.load(HlsClass, ll);
      }, 1000);
      return;
    }
    if (data.type === HlsClass.ErrorTypes.MEDIA_ERROR && this.mediaRecoveries < 2) {
      this.mediaRecoveries++;
      hls.recoverMediaError();
      return;
    }
    if (data.type === HlsClass.ErrorTypes.NETWORK_ERROR && this.networkRetries < 3 && status !== 404 && status !== 401) {
      this.networkRetries++;
      hls.startLoad();
      return;
    }
    const what = status ? `${data.details} (HTTP ${status})` : data.details;
    this.cb.onFatal(new PlaybackError(what, status || undefined));
  }

  private readonly onPlaying = () => this.cb.onPlaying();

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.video.removeEventListener("playing", this.onPlaying);
    this.hls?.destroy();
    this.hls = null;
    this.video.removeAttribute("src");
    this.video.load();
  }

  async latency(): Promise<LatencySample | null> {
    const hls = this.hls;
    if (!hls) return null;
    const date = hls.playingDate;
    if (date) return { ms: Math.max(0, Date.now() - date.getTime()), method: "now − PDT at playhead" };
    const live = hls.latency;
    if (Number.isFinite(live) && live > 0) return { ms: live * 1000, method: "behind live edge" };
    return null;
  }
}
