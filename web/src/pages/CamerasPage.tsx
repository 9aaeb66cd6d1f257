/**
 * Cameras: start, stop and configure (bitrate, fps, resolution) over the camera's data channel
 * (`POST /api/cameras/{id}/start|stop|config`), with the camera's acknowledgement or the error.
 */
import { useState } from "react";
import { api } from "../api/client";
import type { Camera, CameraConfig, CommandReply, StreamSummary } from "../api/types";
import { Badge } from "../components/Badge";
import { streamHealth } from "../format";
import { usePoll } from "../lib/hooks";
import { StreamStats } from "./LivePage";

const RESOLUTIONS: { label: string; w: number; h: number }[] = [
  { label: "640×360", w: 640, h: 360 },
  { label: "854×480", w: 854, h: 480 },
  { label: "1280×720", w: 1280, h: 720 },
  { label: "1920×1080", w: 1920, h: 1080 },
];

interface Outcome {
  ok: boolean;
  text: string;
}

function describeAck(action: string, reply: CommandReply): Outcome {
  if (!reply.ok) return { ok: false, text: `${action}: ${reply.error ?? "the camera refused"}` };
  let ack = "";
  if (reply.ack !== undefined && reply.ack !== null) {
    ack = typeof reply.ack === "string" ? reply.ack : JSON.stringify(reply.ack);
  }
  return { ok: true, text: `${action}: acknowledged${ack ? ` ${ack}` : ""}` };
}

function CameraCard({ camera, stream }: { camera: Camera; stream: StreamSummary | undefined }) {
  const streamId = camera.stream ?? camera.id;
  const status = usePoll((signal) => api.cameraStatus(camera.id, signal), 5000, [camera.id]);
  const [busy, setBusy] = useState<string | null>(null);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const [bitrate, setBitrate] = useState("2000");
  const [fps, setFps] = useState("30");
  const [res, setRes] = useState("1280×720");

  const run = async (action: string, call: () => Promise<CommandReply>) => {
    setBusy(action);
    setOutcome(null);
    try {
      setOutcome(describeAck(action, await call()));
    } catch (err) {
      setOutcome({ ok: false, text: `${action}: ${err instanceof Error ? err.message : String(err)}` });
    } finally {
      setBusy(null);
      status.reload();
    }
  };

  const submitConfig = (e: React.FormEvent) => {
    e.preventDefault();
    const r = RESOLUTIONS.find((x) => x.label === res);
    const cfg: CameraConfig = { bitrate: Number(bitrate), fps: Number(fps) };
    if (r) {
      cfg.width = r.w;
      cfg.height = r.h;
    }
    void run("Config", () => api.cameraConfig(camera.id, cfg));
  };

  const health = stream ? streamHealth(stream) : { label: "No stream", tone: "muted" as const };
  const st = status.data;
  return (
    <article className="card camera" data-camera={camera.id} aria-labelledby={`camera-${camera.id}`}>
      <header className="card-head">
        <div>
          <h2 id={`camera-${camera.id}`} className="card-title">
            {camera.name || camera.id}
          </h2>
          <p className="card-sub">
            {camera.id} · {camera.kind ?? "?"}
            {st?.state ? ` · ${String(st.state)}` : ""}
            {st && typeof st.connected === "boolean" ? ` · ${st.connected ? "connected" : "not connected"}` : ""}
          </p>
        </div>
        <Badge badge={health} />
      </header>
      {stream ? <StreamStats s={stream} /> : <p className="muted small">Stream {streamId} is not publishing.</p>}
      <div className="controls" role="group" aria-label="Camera controls">
        <button type="button" className="btn primary" disabled={busy !== null} onClick={() => void run("Start", () => api.cameraStart(camera.id))}>
          {busy === "Start" ? "Starting…" : "Start"}
        </button>
        <button type="button" className="btn" disabled={busy !== null} onClick={() => void run("Stop", () => api.cameraStop(camera.id))}>
          {busy === "Stop" ? "Stopping…" : "Stop"}
        </button>
      </div>
      <form className="config-form" onSubmit={submitConfig} aria-label={`Configure ${camera.name || camera.id}`}>
        <label className="field">
          <span>Bitrate (kbit/s)</span>
          <input type="number" min={100} max={50000} step={100} required value={bitrate} onChange={(e) => setBitrate(e.target.value)} />
        </label>
        <label className="field">
          <span>fps</span>
          <input type="number" min={1} max={60} required value={fps} onChange={(e) => setFps(e.target.value)} />
        </label>
        <label className="field">
          <span>Resolution</span>
          <select value={res} onChange={(e) => setRes(e.target.value)}>
            {RESOLUTIONS.map((r) => (
              <option key={r.label}>{r.label}</option>
            ))}
          </select>
        </label>
        <button type="submit" className="btn" disabled={busy !== null}>
          {busy === "Config" ? "Applying…" : "Apply"}
        </button>
      </form>
      {outcome && (
        <p className={`result tone-${outcome.ok ? "ok" : "bad"}`} role={outcome.ok ? "status" : "alert"} data-testid="camera-result">
          {outcome.text}
        </p>
      )}
    </article>
  );
}

export function CamerasPage() {
  const cameras = usePoll((signal) => api.cameras(signal), 10_000);
  const streams = usePoll((signal) => api.streams(signal), 3000);
  const list = cameras.data ?? [];
  return (
    <section aria-labelledby="cameras-title">
      <div className="page-head">
        <h1 id="cameras-title">Cameras</h1>
        <p className="muted">
          {cameras.data ? `${list.length} camera${list.length === 1 ? "" : "s"}` : "loading…"}
          {cameras.error ? ` · ${cameras.error.message}` : ""}
        </p>
      </div>
      {cameras.data && list.length === 0 && (
        <div className="empty">
          <p>No cameras registered.</p>
          <p className="muted">
            Add one under <a href="#/manage">Manage</a>. Commands reach WebRTC cameras over their data channel.
          </p>
        </div>
      )}
      <div className="grid">
        {list.map((c) => (
          <CameraCard key={c.id} camera={c} stream={(streams.data ?? []).find((s) => s.id === (c.stream ?? c.id))} />
        ))}
      </div>
    </section>
  );
}
