import { describe, expect, it } from "vitest";
import { healthOk, normalizeHealth, normalizeStream, normalizeStreams, streamState } from "./normalize";

describe("streams", () => {
  it("maps the gateway's StreamOut (stream, up, health) to a tile summary", () => {
    const raw = {
      stream: "demo",
      codec: "h264",
      width: 1280,
      height: 720,
      fps: 30,
      source: "demo",
      owner: "ingest-1",
      up: true,
      epoch: 1,
      startedAt: 1,
      bitrate: 2_000_000,
      keyframeInterval: 1,
      lastFrameAge: 0.03,
      viewers: 2,
      viewersByPath: { egress: 1, hls: 1 },
      health: { state: "live", fps: 29.9 },
    };
    expect(normalizeStream(raw)).toEqual({
      id: "demo",
      state: "live",
      codec: "h264",
      width: 1280,
      height: 720,
      fps: 30,
      bitrate: 2_000_000,
      keyframeInterval: 1,
      viewers: 2,
      lastFrameAge: 0.03,
      source: "demo",
    });
  });

  it("takes figures from health when the top level lacks them", () => {
    const s = normalizeStream({ stream: "cam", codec: "AV1", up: true, health: { bitrate: 5e5, last_frame_age: 2, keyframe_interval: 2 } });
    expect(s).toMatchObject({ codec: "av1", bitrate: 5e5, lastFrameAge: 2, keyframeInterval: 2 });
  });

  it("derives live / reconnecting / down", () => {
    expect(streamState({ up: false })).toBe("down");
    expect(streamState({ up: false, health: { state: "reconnecting" } })).toBe("reconnecting");
    expect(streamState({ up: true, health: null })).toBe("live");
    expect(streamState({ up: true, health: { state: "connecting" } })).toBe("reconnecting");
    expect(streamState({ state: "down" })).toBe("down");
    expect(streamState({})).toBe("unknown");
  });

  it("drops entries without a stream id and sorts by id", () => {
    expect(normalizeStreams([{ stream: "b" }, { foo: 1 }, null, { id: "a" }]).map((s) => s.id)).toEqual(["a", "b"]);
    expect(normalizeStreams({ streams: [{ stream: "x" }] }).map((s) => s.id)).toEqual(["x"]);
    expect(normalizeStreams("nope")).toEqual([]);
  });
});

describe("health", () => {
  it("reads snake_case and camelCase", () => {
    expect(normalizeHealth({ status: "running", version: "0.1.0", active_streams: 1, total_connections: 3, services: { hls: 1 } })).toEqual({
      status: "running",
      version: "0.1.0",
      activeStreams: 1,
      connections: 3,
      services: { hls: 1 },
    });
    expect(normalizeHealth({ status: "ok", activeStreams: 2, connections: 4 })).toMatchObject({ activeStreams: 2, connections: 4 });
    expect(healthOk("running")).toBe(true);
    expect(healthOk("degraded")).toBe(false);
  });
});
