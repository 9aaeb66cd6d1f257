import { describe, expect, it } from "vitest";
import {
  clampPercent,
  formatAge,
  formatBitrate,
  formatEta,
  formatFps,
  formatLatency,
  formatLayers,
  formatRemaining,
  formatResolution,
  formatSince,
  formatTemp,
  formatWifi,
  trayColor,
  hmsTone,
  jobBadge,
  jobControls,
  printerBadge,
  speedLabel,
  streamHealth,
} from "./format";

describe("printer formatting", () => {
  it("formats remaining time", () => {
    expect(formatRemaining(83)).toBe("1 h 23 min");
    expect(formatRemaining(45)).toBe("45 min");
    expect(formatRemaining(120)).toBe("2 h");
    expect(formatRemaining(0.3)).toBe("< 1 min");
    expect(formatRemaining(0)).toBe("0 min");
    expect(formatRemaining(60 * 26 + 5)).toBe("1 d 2 h");
    expect(formatRemaining(null)).toBe("—");
    expect(formatRemaining(-1)).toBe("—");
    expect(formatRemaining(Number.NaN)).toBe("—");
  });

  it("formats the end time from now", () => {
    const now = new Date(2026, 0, 18, 13, 50).getTime();
    expect(formatEta(15, now)).toBe("ends 14:05");
    expect(formatEta(0, now)).toBe("");
  });

  it("formats temperatures current / target", () => {
    expect(formatTemp(215.3, 220)).toBe("215 / 220 °C");
    expect(formatTemp(59.6, 0)).toBe("60 °C");
    expect(formatTemp(38.2)).toBe("38 °C");
    expect(formatTemp(null, 220)).toBe("—");
  });

  it("clamps percent", () => {
    expect(clampPercent(42.4)).toBe(42);
    expect(clampPercent(130)).toBe(100);
    expect(clampPercent(-3)).toBe(0);
    expect(clampPercent(undefined)).toBeNull();
  });

  it("labels job states", () => {
    expect(jobBadge("RUNNING")).toEqual({ label: "Printing", tone: "ok" });
    expect(jobBadge("PAUSE")).toEqual({ label: "Paused", tone: "warn" });
    expect(jobBadge("FAILED").tone).toBe("bad");
    expect(jobBadge(undefined).label).toBe("Unknown");
    expect(jobBadge("SLICING").label).toBe("SLICING");
  });

  it("is honest about offline, auth failures and developer mode", () => {
    expect(printerBadge({ state: "auth_failed" })).toMatchObject({ label: "Auth failed", tone: "bad" });
    expect(printerBadge({ state: "developer_mode_required" }).detail).toContain("Developer Mode");
    expect(printerBadge({ state: "offline", reason: "no route to host" })).toEqual({
      label: "Offline",
      tone: "bad",
      detail: "no route to host",
    });
    expect(printerBadge({ state: "connecting" }).label).toBe("Connecting…");
    expect(printerBadge(null).label).toBe("Connecting…");
    expect(printerBadge({ state: "unknown", connected: false }).label).toBe("No status yet");
    expect(printerBadge({ state: "online", connected: true, jobState: "PAUSE" })).toEqual({ label: "Online", tone: "ok" });
    expect(printerBadge({ state: "online", connected: false }).label).toBe("Offline");
  });

  it("enables job controls by state", () => {
    expect(jobControls({ state: "online", jobState: "RUNNING" })).toEqual({ canPause: true, canResume: false, canStop: true });
    expect(jobControls({ state: "online", jobState: "PAUSE" })).toEqual({ canPause: false, canResume: true, canStop: true });
    expect(jobControls({ state: "online", jobState: "IDLE" })).toEqual({ canPause: false, canResume: false, canStop: false });
    expect(jobControls({ state: "offline", jobState: "RUNNING" }).canPause).toBe(false);
  });

  it("names speed levels, layers and HMS tones", () => {
    expect(speedLabel(2)).toBe("Standard");
    expect(speedLabel(4)).toBe("Ludicrous");
    expect(speedLabel(7)).toBe("—");
    expect(formatLayers(12, 250)).toBe("Layer 12 / 250");
    expect(formatLayers(0, 250)).toBe("");
    expect(hmsTone({ code: "HMS_0300_0100_0001_0007", severity: "fatal" })).toBe("bad");
    expect(hmsTone({ code: "x", severity: "common" })).toBe("warn");
  });
});

describe("wifi and AMS", () => {
  it("formats the Wi-Fi signal and tray colours", () => {
    expect(formatWifi(-42)).toBe("-42 dBm");
    expect(formatWifi("-48dBm")).toBe("-48 dBm");
    expect(formatWifi(null)).toBe("");
    expect(trayColor("F7D959FF")).toBe("#F7D959");
    expect(trayColor("c12e1f")).toBe("#C12E1F");
    expect(trayColor("nope")).toBeNull();
  });
});

describe("stream formatting", () => {
  it("formats bitrate, fps, ages, latency and resolution", () => {
    expect(formatBitrate(2_400_000)).toBe("2.4 Mbit/s");
    expect(formatBitrate(12_600_000)).toBe("13 Mbit/s");
    expect(formatBitrate(850_400)).toBe("850 kbit/s");
    expect(formatBitrate(512)).toBe("512 bit/s");
    expect(formatBitrate(undefined)).toBe("—");
    expect(formatFps(29.97)).toBe("30 fps");
    expect(formatFps(2.5)).toBe("2.5 fps");
    expect(formatAge(0.23)).toBe("0.2 s");
    expect(formatAge(42)).toBe("42 s");
    expect(formatAge(600)).toBe("10 min");
    expect(formatAge(null)).toBe("—");
    expect(formatLatency(321.6)).toBe("322 ms");
    expect(formatLatency(2140)).toBe("2.1 s");
    expect(formatResolution(1280, 720)).toBe("1280×720");
    expect(formatResolution(0, 0)).toBe("—");
  });

  it("formats times since", () => {
    const now = Date.parse("2026-01-18T20:15:30Z");
    expect(formatSince("2026-01-18T20:15:30Z", now)).toBe("just now");
    expect(formatSince("2026-01-18T20:15:00Z", now)).toBe("30 s ago");
    expect(formatSince("2026-01-18T20:00:00Z", now)).toBe("16 min ago");
    expect(formatSince("garbage", now)).toBe("—");
  });

  it("derives stream health from state and last frame age", () => {
    expect(streamHealth({ state: "live", lastFrameAge: 0.1 })).toEqual({ label: "Live", tone: "ok" });
    expect(streamHealth({ state: "live", lastFrameAge: 9 })).toMatchObject({ label: "Stalled", tone: "warn" });
    expect(streamHealth({ state: "reconnecting" }).tone).toBe("warn");
    expect(streamHealth({ state: "down" }).tone).toBe("bad");
    expect(streamHealth({}).label).toBe("Unknown");
  });
});
