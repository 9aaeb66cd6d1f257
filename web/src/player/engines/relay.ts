/**
 * The WebSocket relay (`/ws/{stream}`) into WebCodecs, drawn on a canvas: the camera brief's
 * path for AV1 cameras, also used for H.264, VP8, VP9 and for JPEG/WebP frames
 * (`createImageBitmap`). The wire format is in ../relay.ts.
 *
 * H.264/H.265 arrive as Annex B, so the decoder is configured without `description` and keyframes
 * that lack their SPS get the info message's parameter sets prepended. Decoding starts at a
 * keyframe, and after a decoder error or a backlog (> 30 queued) it waits for the next one.
 * The socket reconnects (3 tries, 1 s apart) before the path is given up.
 *
 * Latency: the time from a frame's arrival on the socket to its drawing ("receive → draw");
 * network and server time are not in it because frames carry no wall clock.
 */

import { withTokenQuery } from "../../api/client";
import {
  concatBytes,
  hasParameterSets,
  parseRelayFrame,
  parseRelayInfo,
  RelayFormatError,
  ticksToMicros,
  webCodecsString,
  type RelayInfo,
} from "../relay";
import { PlaybackError, type Engine, type EngineCallbacks, type LatencySample } from "./types";

const MAX_QUEUE = 30;
const MAX_RECONNECTS = 3;

export class RelayEngine implements Engine {
  private ws: WebSocket | null = null;
  private decoder: VideoDecoder | null = null;
  private info: RelayInfo | null = null;
  private decoderConfig: VideoDecoderConfig | null = null;
  private decoderErrors = 0;
  private waitKey = true;
  private stopped = false;
  private playing = false;
  private reconnects = 0;
  private readonly arrivals = new Map<number, number>();
  private lastLatency: number | null = null;
  private ctx: CanvasRenderingContext2D | null = null;
  /** Frames drawn so far (exposed on the canvas as `data-frames` for tests and diagnostics). */
  frames = 0;

  constructor(
    private readonly stream: string,
    private readonly canvas: HTMLCanvasElement,
    private readonly cb: EngineCallbacks,
  ) {}

  async start(): Promise<void> {
    this.ctx = this.canvas.getContext("2d");
    if (!this.ctx) throw new PlaybackError("no 2D canvas");
    this.connect();
  }

  private connect(): void {
    const proto = window.location.protocol === "https:" ? "wss:" : "ws:";
    const url = withTokenQuery(`${proto}//${window.location.host}/ws/${encodeURIComponent(this.stream)}`);
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onmessage = (ev) => {
      if (this.stopped) return;
      try {
        if (typeof ev.data === "string") void this.onInfo(ev.data);
        else this.onFrame(ev.data as ArrayBuffer);
      } catch (err) {
        this.fail(err instanceof RelayFormatError ? `relay: ${err.message}` : String(err));
      }
    };
    ws.onclose = (ev) => {
      if (this.stopped || ws !== this.ws) return;
      if (ev.code === 1008 || ev.code === 4401 || ev.code === 4403 || ev.code === 4404) {
        this.fail(`relay closed: ${ev.reason || `code ${ev.code}`}`);
        return;
      }
      if (this.reconnects >= MAX_RECONNECTS) {
        this.fail(`relay closed (${ev.reason || `code ${ev.code}`})`);
        return;
      }
      this.reconnects++;
      this.waitKey = true;
      setTimeout(() => {
        if (!this.stopped) this.connect();
      }, 1000);
    };
  }

  private fail(message: string): void {
    if (this.stopped) return;
    this.cb.onFatal(new PlaybackError(message));
  }

  private async onInfo(text: string): Promise<void> {
    const info = parseRelayInfo(text);
    this.info = info;
    this.waitKey = true;
    if (info.codec === "jpeg" || info.codec === "webp") return;
    const codec = webCodecsString(info.codec, info.config);
    if (!codec) {
      this.fail(`no WebCodecs decoder for ${info.codec || "an unknown codec"}`);
      return;
    }
    const config: VideoDecoderConfig = { codec, optimizeForLatency: true };
    if (info.width && info.height) {
      config.codedWidth = info.width;
      config.codedHeight = info.height;
    }
    const support = await VideoDecoder.isConfigSupported(config);
    if (this.stopped) return;
    if (!support.supported) {
      this.fail(`this browser cannot decode ${codec}`);
      return;
    }
    this.decoderConfig = config;
    this.makeDecoder();
  }

  private makeDecoder(): void {
    if (this.decoder && this.decoder.state !== "closed") this.decoder.close();
    const config = this.decoderConfig;
    if (!config || this.stopped) return;
    this.decoder = new VideoDecoder({
      output: (frame) => this.draw(frame),
      error: (err) => {
        // a decoder is closed after an error: make a new one and resume at the next keyframe
        this.decoder = null;
        this.decoderErrors++;
        if (this.decoderErrors > 3) this.fail(`the video decoder failed: ${err.message}`);
        else {
          this.waitKey = true;
          this.makeDecoder();
        }
      },
    });
    this.decoder.configure(config);
  }

  private onFrame(buf: ArrayBuffer): void {
    const f = parseRelayFrame(buf);
    const now = performance.now();
    if (f.codec === "jpeg" || f.codec === "webp") {
      const blob = new Blob([f.data as Uint8Array<ArrayBuffer>], { type: `image/${f.codec}` });
      createImageBitmap(blob)
        .then((bmp) => {
          this.drawImage(bmp, bmp.width, bmp.height, now);
          bmp.close();
        })
        .catch(() => undefined);
      return;
    }
    const dec = this.decoder;
    if (!dec || dec.state !== "configured") return;
    if (dec.decodeQueueSize > MAX_QUEUE) this.waitKey = true;
    if (this.waitKey && !f.keyframe) return;
    let data = f.data;
    if (f.keyframe && this.info && this.info.config.length > 0 && !hasParameterSets(f.codec, data)) {
      data = concatBytes(this.info.config, data);
    }
    const timestamp = ticksToMicros(f.pts);
    this.arrivals.set(timestamp, now);
    if (this.arrivals.size > 120) {
      const first = this.arrivals.keys().next().value;
      if (first !== undefined) this.arrivals.delete(first);
    }
    try {
      dec.decode(new EncodedVideoChunk({ type: f.keyframe ? "key" : "delta", timestamp, data }));
      this.waitKey = false;
    } catch {
      this.waitKey = true;
    }
  }

  private draw(frame: VideoFrame): void {
    const arrived = this.arrivals.get(frame.timestamp);
    this.arrivals.delete(frame.timestamp);
    this.drawImage(frame, frame.displayWidth, frame.displayHeight, arrived ?? null);
    frame.close();
  }

  private drawImage(img: CanvasImageSource, w: number, h: number, arrived: number | null): void {
    const ctx = this.ctx;
    if (!ctx || this.stopped) return;
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    ctx.drawImage(img, 0, 0, w, h);
    this.frames++;
    this.canvas.dataset.frames = String(this.frames);
    if (arrived !== null) this.lastLatency = performance.now() - arrived;
    this.decoderErrors = 0;
    if (!this.playing) {
      this.playing = true;
      this.reconnects = 0;
      this.cb.onPlaying();
    }
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onmessage = null;
      ws.onclose = null;
      if (ws.readyState === WebSocket.CONNECTING) ws.onopen = () => ws.close(1000);
      else ws.close(1000);
    }
    if (this.decoder && this.decoder.state !== "closed") this.decoder.close();
    this.decoder = null;
  }

  async latency(): Promise<LatencySample | null> {
    return this.lastLatency === null ? null : { ms: this.lastLatency, method: "receive → draw" };
  }
}
