/**
 * Geometry of the temperature chart (an inline SVG, no chart library): points -> SVG path
 * strings in a fixed viewBox, and round axis ticks. Pure, tested in chart.test.ts.
 */
import type { HistoryPoint } from "../api/types";

export type SeriesKey = "nozzleC" | "bedC" | "chamberC";

export interface ChartBox {
  width: number;
  height: number;
  /** Time window shown, ms, ending at `now`. */
  windowMs: number;
  now: number;
  /** Temperature range in °C. */
  min: number;
  max: number;
}

/** The y range for the points: 0 to the highest value (targets included) rounded up to 50 °C, at least 100. */
export function tempRange(points: readonly HistoryPoint[]): { min: number; max: number } {
  let hi = 0;
  for (const p of points) {
    for (const v of [p.nozzleC, p.bedC, p.chamberC, p.nozzleTargetC, p.bedTargetC]) {
      if (typeof v === "number" && Number.isFinite(v) && v > hi) hi = v;
    }
  }
  return { min: 0, max: Math.max(100, Math.ceil((hi + 5) / 50) * 50) };
}

/**
 * An SVG path ("M x y L x y ...") for one series; a gap in the data (missing value or more than
 * `gapMs` between points) starts a new subpath. Empty string when no point is in the window.
 */
export function seriesPath(points: readonly HistoryPoint[], key: SeriesKey, box: ChartBox, gapMs = 120_000): string {
  const t0 = box.now - box.windowMs;
  const span = box.max - box.min || 1;
  const parts: string[] = [];
  let prevTs: number | null = null;
  for (const p of points) {
    const v = p[key];
    if (p.ts < t0 || p.ts > box.now + 1000 || typeof v !== "number" || !Number.isFinite(v)) {
      prevTs = null;
      continue;
    }
    const x = ((p.ts - t0) / box.windowMs) * box.width;
    const y = box.height - ((Math.min(Math.max(v, box.min), box.max) - box.min) / span) * box.height;
    const cmd = prevTs === null || p.ts - prevTs > gapMs ? "M" : "L";
    parts.push(`${cmd}${x.toFixed(1)} ${y.toFixed(1)}`);
    prevTs = p.ts;
  }
  return parts.join(" ");
}

/** Tick values every `step` °C from min to max inclusive. */
export function tempTicks(min: number, max: number): number[] {
  const step = max - min > 200 ? 100 : 50;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max; v += step) out.push(v);
  return out;
}

/** Merges live points into the history: sorted by ts, one per second, older than the window dropped. */
export function mergePoints(history: readonly HistoryPoint[], add: HistoryPoint, now: number, windowMs: number): HistoryPoint[] {
  const cutoff = now - windowMs;
  const out = history.filter((p) => p.ts >= cutoff && Math.abs(p.ts - add.ts) >= 1000);
  out.push(add);
  out.sort((a, b) => a.ts - b.ts);
  return out;
}

const WINDOWS_MIN = [5, 10, 15, 30, 60];

/** The chart's time window: the smallest of 5, 10, 15, 30, 60 min that holds the oldest point (ms). */
export function chartWindowMs(points: readonly HistoryPoint[], now: number): number {
  const oldest = points.length > 0 ? Math.min(...points.map((p) => p.ts)) : now;
  const span = Math.max(0, now - oldest);
  for (const m of WINDOWS_MIN) if (span <= m * 60_000) return m * 60_000;
  return 60 * 60_000;
}
