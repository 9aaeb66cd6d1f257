/**
 * Turns gateway answers into the UI's shapes, tolerant of the field names the gateway uses
 * (docs/http.md): `GET /api/streams` entries carry `stream` (not `id`), `up`, and the ingest's
 * `health` map (with its `state`); `/health` uses snake_case. Pure, tested in normalize.test.ts.
 */
import type { Health, StreamState, StreamSummary } from "./types";

type Raw = Record<string, unknown>;

function num(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

const LIVE = new Set(["live", "up", "ok", "running", "streaming", "connected"]);
const RECONNECTING = new Set(["reconnecting", "connecting", "starting", "retrying", "stalled"]);
const DOWN = new Set(["down", "stopped", "error", "failed", "gone", "offline"]);

/** The tile state from `up` and the ingest's `health.state` (free text mapped to three states). */
export function streamState(raw: Raw): StreamState | string {
  const health = (raw.health && typeof raw.health === "object" ? raw.health : {}) as Raw;
  const s = (str(raw.state) ?? str(health.state) ?? "").toLowerCase();
  if (raw.up === false) return s && RECONNECTING.has(s) ? "reconnecting" : "down";
  if (LIVE.has(s)) return "live";
  if (RECONNECTING.has(s)) return "reconnecting";
  if (DOWN.has(s)) return "down";
  if (raw.up === true) return "live";
  return s || "unknown";
}

/** One stream summary from a `GET /api/streams` entry; null when it names no stream. */
export function normalizeStream(raw: unknown): StreamSummary | null {
  if (!raw || typeof raw !== "object") return null;
  const r = raw as Raw;
  const health = (r.health && typeof r.health === "object" ? r.health : {}) as Raw;
  const id = str(r.id) ?? str(r.stream);
  if (!id) return null;
  const out: StreamSummary = { id, state: streamState(r) };
  const codec = str(r.codec) ?? str(health.codec);
  if (codec) out.codec = codec.toLowerCase();
  const width = num(r.width) ?? num(health.width);
  const height = num(r.height) ?? num(health.height);
  if (width !== undefined) out.width = width;
  if (height !== undefined) out.height = height;
  const fps = num(r.fps) ?? num(health.fps);
  if (fps !== undefined) out.fps = fps;
  const bitrate = num(r.bitrate) ?? num(health.bitrate);
  if (bitrate !== undefined) out.bitrate = bitrate;
  const gop = num(r.keyframeInterval) ?? num(health.keyframe_interval);
  if (gop !== undefined) out.keyframeInterval = gop;
  const viewers = num(r.viewers);
  if (viewers !== undefined) out.viewers = viewers;
  const age = num(r.lastFrameAge) ?? num(health.last_frame_age);
  if (age !== undefined) out.lastFrameAge = age;
  const source = str(r.source) ?? str(health.source);
  if (source) out.source = source;
  return out;
}

export function normalizeStreams(raw: unknown): StreamSummary[] {
  const arr = Array.isArray(raw) ? raw : raw && typeof raw === "object" && Array.isArray((raw as Raw).streams) ? ((raw as Raw).streams as unknown[]) : [];
  return arr
    .map(normalizeStream)
    .filter((s): s is StreamSummary => s !== null)
    .sort((a, b) => a.id.localeCompare(b.id));
}

/** `/health` in either camelCase or snake_case. */
export function normalizeHealth(raw: unknown): Health {
  const r = (raw && typeof raw === "object" ? raw : {}) as Raw;
  const out: Health = {};
  const status = str(r.status);
  if (status) out.status = status;
  const version = str(r.version);
  if (version) out.version = version;
  const active = num(r.activeStreams) ?? num(r.active_streams);
  if (active !== undefined) out.activeStreams = active;
  const conns = num(r.connections) ?? num(r.totalConnections) ?? num(r.total_connections);
  if (conns !== undefined) out.connections = conns;
  if (r.services && typeof r.services === "object") out.services = r.services as Record<string, unknown>;
  return out;
}

/** Whether a `/health` status means all is well (`ok`, `running`, `healthy`). */
export function healthOk(status: string | undefined): boolean {
  return status === "ok" || status === "running" || status === "healthy";
}
