/** Nozzle, bed and chamber temperatures over the last hour as an inline SVG line chart, drawn in
 * CSS pixels (its width follows the card through a ResizeObserver) so labels keep their size. */
import { useEffect, useRef, useState } from "react";
import type { HistoryPoint } from "../api/types";
import { seriesPath, tempRange, tempTicks, type SeriesKey } from "../lib/chart";

const H = 120;
const LEFT = 34;
const BOTTOM = 18;
const SERIES: { key: SeriesKey; label: string; cls: string }[] = [
  { key: "nozzleC", label: "Nozzle", cls: "s-nozzle" },
  { key: "bedC", label: "Bed", cls: "s-bed" },
  { key: "chamberC", label: "Chamber", cls: "s-chamber" },
];

function useWidth<T extends HTMLElement>(): [React.RefObject<T | null>, number] {
  const ref = useRef<T>(null);
  const [width, setWidth] = useState(400);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    setWidth(el.clientWidth || 400);
    if (typeof ResizeObserver === "undefined") return;
    const ro = new ResizeObserver((entries) => {
      const w = entries[0]?.contentRect.width;
      if (w && w > 0) setWidth(Math.round(w));
    });
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  return [ref, width];
}

export function TempChart({ points, now, windowMs }: { points: HistoryPoint[]; now: number; windowMs: number }) {
  const [ref, width] = useWidth<HTMLElement>();
  const plotW = Math.max(50, width - LEFT - 4);
  const range = tempRange(points);
  const box = { width: plotW, height: H, windowMs, now, ...range };
  const ticks = tempTicks(range.min, range.max);
  const minutes = Math.round(windowMs / 60_000);
  if (points.length < 2) {
    return (
      <figure className="chart" ref={ref}>
        <p className="note chart-empty">Collecting temperature history…</p>
      </figure>
    );
  }
  return (
    <figure className="chart" ref={ref}>
      <svg width={width} height={H + BOTTOM + 6} viewBox={`${-LEFT} -6 ${width} ${H + BOTTOM + 6}`} role="img" data-testid="temp-chart" aria-label={`Temperatures over the last ${minutes} minutes`}>
        {ticks.map((t) => {
          const y = H - ((t - range.min) / (range.max - range.min)) * H;
          return (
            <g key={t}>
              <line x1={0} x2={plotW} y1={y} y2={y} className="grid" />
              <text x={-6} y={y + 4} className="tick" textAnchor="end">
                {t}°
              </text>
            </g>
          );
        })}
        <text x={0} y={H + BOTTOM - 2} className="tick">
          −{minutes} min
        </text>
        <text x={plotW} y={H + BOTTOM - 2} className="tick" textAnchor="end">
          now
        </text>
        {SERIES.map((s) => {
          const d = seriesPath(points, s.key, box);
          return d ? <path key={s.key} d={d} className={`line ${s.cls}`} /> : null;
        })}
      </svg>
      <figcaption className="legend">
        {SERIES.map((s) => (
          <span key={s.key} className={`lg ${s.cls}`}>
            <i aria-hidden="true" />
            {s.label}
          </span>
        ))}
        <span className="lg muted">{points.length === 1 ? "1 sample" : `${points.length} samples`}</span>
      </figcaption>
    </figure>
  );
}
