import { describe, expect, it } from "vitest";
import { chartWindowMs, mergePoints, seriesPath, tempRange, tempTicks } from "./chart";

const now = 1_700_000_000_000;
const box = { width: 600, height: 100, windowMs: 60_000, now, min: 0, max: 250 };

describe("temperature chart geometry", () => {
  it("maps points into the box, oldest left, hottest up", () => {
    const pts = [
      { ts: now - 60_000, nozzleC: 0 },
      { ts: now - 30_000, nozzleC: 125 },
      { ts: now, nozzleC: 250 },
    ];
    expect(seriesPath(pts, "nozzleC", box)).toBe("M0.0 100.0 L300.0 50.0 L600.0 0.0");
  });

  it("breaks the line at gaps and missing values and skips points outside the window", () => {
    const pts = [
      { ts: now - 120_000, nozzleC: 200 },
      { ts: now - 50_000, nozzleC: 200 },
      { ts: now - 40_000, nozzleC: null },
      { ts: now - 30_000, nozzleC: 200 },
      { ts: now - 20_000, nozzleC: 200 },
    ];
    expect(seriesPath(pts, "nozzleC", box)).toBe("M100.0 20.0 M300.0 20.0 L400.0 20.0");
    expect(seriesPath(pts, "bedC", box)).toBe("");
    expect(seriesPath([{ ts: now - 10_000, bedC: 60 }, { ts: now - 5_000, bedC: 61 }], "bedC", box, 2000)).toBe("M500.0 76.0 M550.0 75.6");
  });

  it("chooses a range and ticks that hold the targets", () => {
    expect(tempRange([])).toEqual({ min: 0, max: 100 });
    expect(tempRange([{ ts: 0, nozzleC: 30, nozzleTargetC: 220, bedC: 60 }])).toEqual({ min: 0, max: 250 });
    expect(tempTicks(0, 250)).toEqual([0, 100, 200]);
    expect(tempTicks(0, 100)).toEqual([0, 50, 100]);
  });

  it("merges live points in order, drops old and same-second duplicates", () => {
    const h = [
      { ts: now - 70_000, nozzleC: 1 },
      { ts: now - 2_000, nozzleC: 2 },
      { ts: now - 500, nozzleC: 3 },
    ];
    const m = mergePoints(h, { ts: now, nozzleC: 4 }, now, 60_000);
    expect(m.map((p) => p.nozzleC)).toEqual([2, 4]);
  });
});

describe("chart window", () => {
  it("grows from 5 min to an hour with the history", () => {
    expect(chartWindowMs([], now)).toBe(5 * 60_000);
    expect(chartWindowMs([{ ts: now - 20_000 }], now)).toBe(5 * 60_000);
    expect(chartWindowMs([{ ts: now - 7 * 60_000 }, { ts: now }], now)).toBe(10 * 60_000);
    expect(chartWindowMs([{ ts: now - 45 * 60_000 }], now)).toBe(60 * 60_000);
    expect(chartWindowMs([{ ts: now - 5 * 3600_000 }], now)).toBe(60 * 60_000);
  });
});
