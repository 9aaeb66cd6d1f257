/**
 * WHEP playback (RFC 9725 applied to egress, the draft-ietf-wish-whep shape): a receive-only
 * RTCPeerConnection, the complete offer (non-trickle: ICE gathering finishes before the POST)
 * sent as `application/sdp` to `POST /whep/{stream}`, the answer from the 201 body, and
 * `DELETE <Location>` to end the session.
 *
 * Latency: the jitter buffer delay of the last interval (`inbound-rtp` `jitterBufferDelay` /
 * `jitterBufferEmittedCount`, W3C webrtc-stats) plus half the ICE round-trip time
 * (`candidate-pair.currentRoundTripTime`). It omits the sender's capture/encode time.
 */

import { authHeaders, errorMessage, notifyAuthRequired } from "../../api/client";
import { PlaybackError, type Engine, type EngineCallbacks, type LatencySample } from "./types";

const GATHER_TIMEOUT_MS = 3000;
const DISCONNECT_GRACE_MS = 5000;

function waitIceGathering(pc: RTCPeerConnection, timeoutMs: number): Promise<void> {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === "complete") done();
    };
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

export class WhepEngine implements Engine {
  private pc: RTCPeerConnection | null = null;
  private location: string | null = null;
  private stopped = false;
  private lastJb: { delay: number; count: number } | null = null;
  private disconnectTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly stream: string,
    private readonly video: HTMLVideoElement,
    private readonly cb: EngineCallbacks,
  ) {}

  async start(): Promise<void> {
    const pc = new RTCPeerConnection({ iceServers: [] });
    this.pc = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addEventListener("track", (ev) => {
      const ms = ev.streams[0] ?? new MediaStream([ev.track]);
      if (this.video.srcObject !== ms) this.video.srcObject = ms;
      this.video.play().catch(() => undefined);
    });
    pc.addEventListener("connectionstatechange", () => this.onConnectionState());
    this.video.addEventListener("playing", this.onPlaying);

    await pc.setLocalDescription(await pc.createOffer());
    await waitIceGathering(pc, GATHER_TIMEOUT_MS);
    if (this.stopped) return;
    const offer = pc.localDescription?.sdp ?? "";
    let resp: Response;
    try {
      resp = await fetch(`/whep/${encodeURIComponent(this.stream)}`, {
        method: "POST",
        headers: authHeaders({ "Content-Type": "application/sdp", Accept: "application/sdp" }),
        body: offer,
      });
    } catch {
      throw new PlaybackError("the WHEP endpoint cannot be reached");
    }
    if (resp.status !== 201 && resp.status !== 200) {
      let body: unknown = null;
      try {
        body = await resp.json();
      } catch {
        /* not JSON */
      }
      if (resp.status === 401) notifyAuthRequired();
      throw new PlaybackError(errorMessage(resp.status, body), resp.status);
    }
    const loc = resp.headers.get("Location");
    this.location = loc ? new URL(loc, new URL(`/whep/${encodeURIComponent(this.stream)}`, window.location.href)).href : null;
    const answer = await resp.text();
    if (this.stopped) {
      this.deleteSession();
      return;
    }
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
  }

  private readonly onPlaying = () => this.cb.onPlaying();

  private onConnectionState(): void {
    const pc = this.pc;
    if (!pc || this.stopped) return;
    clearTimeout(this.disconnectTimer);
    if (pc.connectionState === "failed") {
      this.cb.onFatal(new PlaybackError("WebRTC connection failed (ICE)"));
    } else if (pc.connectionState === "disconnected") {
      this.disconnectTimer = setTimeout(() => {
        if (this.pc?.connectionState === "disconnected" && !this.stopped) {
          this.cb.onFatal(new PlaybackError("WebRTC connection lost"));
        }
      }, DISCONNECT_GRACE_MS);
    }
  }

  private deleteSession(): void {
    const loc = this.location;
    this.location = null;
    if (!loc) return;
    fetch(loc, { method: "DELETE", headers: authHeaders(), keepalive: true }).catch(() => undefined);
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.disconnectTimer);
    this.video.removeEventListener("playing", this.onPlaying);
    this.deleteSession();
    this.pc?.close();
    this.pc = null;
    this.video.srcObject = null;
  }

  async latency(): Promise<LatencySample | null> {
    const pc = this.pc;
    if (!pc) return null;
    const stats = await pc.getStats();
    let jbMs: number | null = null;
    let rttMs: number | null = null;
    stats.forEach((s: Record<string, unknown>) => {
      if (s.type === "inbound-rtp" && s.kind === "video") {
        const delay = Number(s.jitterBufferDelay ?? 0);
        const count = Number(s.jitterBufferEmittedCount ?? 0);
        const prev = this.lastJb;
        if (prev && count > prev.count) jbMs = ((delay - prev.delay) / (count - prev.count)) * 1000;
        else if (count > 0) jbMs = (delay / count) * 1000;
        this.lastJb = { delay, count };
      }
      if (s.type === "candidate-pair" && (s.nominated === true || s.selected === true) && s.state === "succeeded") {
        const rtt = s.currentRoundTripTime;
        if (typeof rtt === "number") rttMs = rtt * 1000;
      }
    });
    if (jbMs === null) return null;
    return { ms: jbMs + (rttMs ?? 0) / 2, method: rttMs === null ? "jitter buffer" : "jitter buffer + ½ RTT" };
  }
}
