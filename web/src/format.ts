/**
 * Status formatting for the UI: pure functions from API values to the text and tone the tiles
 * and cards show (format.test.ts). "—" stands for an unknown value everywhere.
 */

import type { HmsError, PrinterStatus, StreamSummary } from "./api/types";

export const UNKNOWN = "—";

/** A colour class: `ok` green, `warn` amber, `bad` red, `info` blue, `muted` grey. */
export type Tone = "ok" | "warn" | "bad" | "info" | "muted";

export interface Badge {
  label: string;
  tone: Tone;
  /** A longer explanation for a tooltip or a line below the badge. */
  detail?: string;
}

function isNum(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v);
}

/** Remaining print time in minutes -> "1 h 23 min", "45 min", "< 1 min", "—" when unknown. */
export function formatRemaining(minutes: number | null | undefined): string {
  if (!isNum(minutes) || minutes < 0) return UNKNOWN;
  const m = Math.round(minutes);
  if (m === 0) return minutes > 0 ? "< 1 min" : "0 min";
  const h = Math.floor(m / 60);
  const rest = m % 60;
  if (h === 0) return `${rest} min`;
  if (h >= 24) {
    const d = Math.floor(h / 24);
    return `${d} d ${h % 24} h`;
  }
  return rest === 0 ? `${h} h` : `${h} h ${rest} min`;
}

/** The wall-clock time a job finishes, "ends 14:05", from `now` (ms) and remaining minutes. */
export function formatEta(minutes: number | null | undefined, now: number): string {
  if (!isNum(minutes) || minutes <= 0) return "";
  const end = new Date(now + minutes * 60_000);
  const hh = String(end.getHours()).padStart(2, "0");
  const mm = String(end.getMinutes()).padStart(2, "0");
  return `ends ${hh}:${mm}`;
}

function roundTemp(c: number): string {
  return String(Math.round(c));
}

/** Temperatures in °C -> "215 / 220 °C"; "60 °C" without a target (0 = heater off); "—". */
export function formatTemp(current: number | null | undefined, target?: number | null): string {
  if (!isNum(current)) return UNKNOWN;
  if (isNum(target) && target > 0) return `${roundTemp(current)} / ${roundTemp(target)} °C`;
  return `${roundTemp(current)} °C`;
}

/** Percent 0-100 clamped, rounded; null when unknown. */
export function clampPercent(p: number | null | undefined): number | null {
  if (!isNum(p)) return null;
  return Math.max(0, Math.min(100, Math.round(p)));
}

/** Bits per second -> "850 kbit/s", "2.4 Mbit/s", "—". */
export function formatBitrate(bps: number | null | undefined): string {
  if (!isNum(bps) || bps < 0) return UNKNOWN;
  if (bps >= 1_000_000) return `${(bps / 1_000_000).toFixed(bps >= 10_000_000 ? 0 : 1)} Mbit/s`;
  if (bps >= 1000) return `${Math.round(bps / 1000)} kbit/s`;
  return `${Math.round(bps)} bit/s`;
}

/** Frames per second -> "29.9 fps", "—". */
export function formatFps(fps: number | null | undefined): string {
  if (!isNum(fps) || fps < 0) return UNKNOWN;
  return `${fps >= 10 ? fps.toFixed(0) : fps.toFixed(1)} fps`;
}

/** An age in seconds -> "0.2 s", "12 s", "3 min", "2 h", "—". */
export function formatAge(seconds: number | null | undefined): string {
  if (!isNum(seconds) || seconds < 0) return UNKNOWN;
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 3600)} h`;
}

/** A latency in ms -> "320 ms", "2.1 s", "—". */
export function formatLatency(ms: number | null | undefined): string {
  if (!isNum(ms) || ms < 0) return UNKNOWN;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(1)} s`;
}

/** Width x height -> "1280×720", "—". */
export function formatResolution(w: number | null | undefined, h: number | null | undefined): string {
  if (!isNum(w) || !isNum(h) || w <= 0 || h <= 0) return UNKNOWN;
  return `${w}×${h}`;
}

/** An ISO time relative to `now` (ms) -> "just now", "12 s ago", "5 min ago", "—". */
export function formatSince(iso: string | null | undefined, now: number): string {
  if (!iso) return UNKNOWN;
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return UNKNOWN;
  const s = Math.max(0, (now - t) / 1000);
  if (s < 2) return "just now";
  if (s < 120) return `${Math.round(s)} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

/** A stream's last frame is "stale" after this many seconds without one. */
export const STALE_SECONDS = 5;

/** The health badge of a stream tile from `GET /api/streams`. */
export function streamHealth(s: Pick<StreamSummary, "state" | "lastFrameAge">): Badge {
  const state = (s.state ?? "").toLowerCase();
  if (state === "down") return { label: "Down", tone: "bad", detail: "the source is gone" };
  if (state === "reconnecting") return { label: "Reconnecting", tone: "warn", detail: "the source is reconnecting" };
  if (state === "live") {
    if (isNum(s.lastFrameAge) && s.lastFrameAge > STALE_SECONDS) {
      return { label: "Stalled", tone: "warn", detail: `no frame for ${formatAge(s.lastFrameAge)}` };
    }
    return { label: "Live", tone: "ok" };
  }
  return { label: state ? state[0]!.toUpperCase() + state.slice(1) : "Unknown", tone: "muted" };
}

const JOB_LABELS: Record<string, Badge> = {
  IDLE: { label: "Idle", tone: "muted" },
  PREPARE: { label: "Preparing", tone: "info" },
  RUNNING: { label: "Printing", tone: "ok" },
  PAUSE: { label: "Paused", tone: "warn" },
  FINISH: { label: "Finished", tone: "ok" },
  FAILED: { label: "Failed", tone: "bad" },
  UNKNOWN: { label: "Unknown", tone: "muted" },
};

/** The job badge from `jobState` (IDLE, PREPARE, RUNNING, PAUSE, FINISH, FAILED, UNKNOWN). */
export function jobBadge(jobState: string | null | undefined): Badge {
  const key = (jobState ?? "UNKNOWN").toUpperCase();
  return JOB_LABELS[key] ?? { label: key, tone: "muted" };
}

/**
 * The printer's connection badge: honest about why there is no live status ("Online" when all
 * is well; the job has its own badge, `jobBadge`). The others say what is wrong and what to do.
 */
export function printerBadge(s: PrinterStatus | null | undefined): Badge {
  if (!s) return { label: "Connecting…", tone: "info", detail: "waiting for the first status" };
  const reason = s.reason ?? undefined;
  switch (s.state) {
    case "auth_failed":
      return { label: "Auth failed", tone: "bad", detail: reason ?? "the printer rejected the access code; check it under Manage" };
    case "developer_mode_required":
      return {
        label: "Developer mode required",
        tone: "bad",
        detail: reason ?? "the printer requires LAN-only + Developer Mode for control",
      };
    case "offline":
      return { label: "Offline", tone: "bad", detail: reason ?? "the printer does not answer on the network" };
    case "connecting":
      return { label: "Connecting…", tone: "info", ...(reason ? { detail: reason } : {}) };
    case "unknown":
      return { label: "No status yet", tone: "muted", detail: reason ?? "the control service has not reported this printer yet" };
    default:
      if (s.connected === false || s.online === false) return { label: "Offline", tone: "bad", ...(reason ? { detail: reason } : {}) };
      return { label: "Online", tone: "ok" };
  }
}

/** Whether pause/resume/stop make sense in this status. */
export function jobControls(s: PrinterStatus | null | undefined): { canPause: boolean; canResume: boolean; canStop: boolean } {
  const ready = !!s && s.state === "online";
  const job = (s?.jobState ?? "").toUpperCase();
  return {
    canPause: ready && (job === "RUNNING" || job === "PREPARE"),
    canResume: ready && job === "PAUSE",
    canStop: ready && (job === "RUNNING" || job === "PAUSE" || job === "PREPARE"),
  };
}

export const SPEED_LEVELS: Record<1 | 2 | 3 | 4, string> = { 1: "Silent", 2: "Standard", 3: "Sport", 4: "Ludicrous" };

/** Bambu speed level 1-4 -> "Silent" ... "Ludicrous", "—". */
export function speedLabel(level: number | null | undefined): string {
  if (level === 1 || level === 2 || level === 3 || level === 4) return SPEED_LEVELS[level];
  return UNKNOWN;
}

/** "Layer 12 / 250", "" when unknown. */
export function formatLayers(layer: number | null | undefined, total: number | null | undefined): string {
  if (!isNum(layer) || layer <= 0) return "";
  return isNum(total) && total > 0 ? `Layer ${layer} / ${total}` : `Layer ${layer}`;
}

/** Tone of an HMS entry by its severity (fatal/serious -> bad, common -> warn, info -> info). */
export function hmsTone(e: HmsError): Tone {
  const sev = (e.severity ?? "").toLowerCase();
  if (sev === "fatal" || sev === "serious" || sev === "error") return "bad";
  if (sev === "info" || sev === "information") return "info";
  return "warn";
}

/** Wi-Fi signal: -42 or "-42dBm" -> "-42 dBm"; "" when unknown. */
export function formatWifi(signal: number | string | null | undefined): string {
  if (isNum(signal)) return `${Math.round(signal)} dBm`;
  if (typeof signal === "string" && signal.trim()) {
    const m = /^(-?\d+)\s*dBm$/i.exec(signal.trim());
    return m ? `${m[1]} dBm` : signal.trim();
  }
  return "";
}

/** An AMS tray colour "F7D959FF" (RRGGBBAA) -> "#F7D959"; null when not a colour. */
export function trayColor(rgba: string | null | undefined): string | null {
  if (!rgba || !/^[0-9a-fA-F]{6}([0-9a-fA-F]{2})?$/.test(rgba)) return null;
  return `#${rgba.slice(0, 6).toUpperCase()}`;
}
