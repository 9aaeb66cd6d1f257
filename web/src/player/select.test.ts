import { describe, expect, it } from "vitest";
import { availablePaths, choosePath, nextPath, planPaths, type Capabilities } from "./select";

/** Debian Chromium 156 headless as measured in shared/research/feasibility_probe.md (addendum). */
const chromium: Capabilities = {
  rtcPeerConnection: true,
  rtcReceiveCodecs: ["vp8", "vp9", "h264", "av1", "rtx", "red", "ulpfec"],
  mediaSource: true,
  isTypeSupported: (mime) => mime.includes("avc1") || mime.includes("av01"),
  nativeHls: true,
  webSocket: true,
  videoDecoder: true,
  imageBitmap: true,
};

/** iOS Safari before ManagedMediaSource: WebRTC and native HLS, no MSE, no WebCodecs. */
const oldIos: Capabilities = {
  rtcPeerConnection: true,
  rtcReceiveCodecs: ["h264", "vp8"],
  mediaSource: false,
  isTypeSupported: () => false,
  nativeHls: true,
  webSocket: true,
  videoDecoder: false,
  imageBitmap: true,
};

/** Firefox-like: MSE and WebRTC, no native HLS. */
const firefox: Capabilities = { ...chromium, nativeHls: false };

describe("planPaths", () => {
  it("orders H.264 paths WHEP, LL-HLS, HLS, native HLS, WebCodecs on Chromium", () => {
    expect(availablePaths(chromium, "h264")).toEqual(["whep", "ll-hls", "hls", "native-hls", "webcodecs"]);
  });

  it("leaves native HLS out when the browser has none", () => {
    expect(availablePaths(firefox, "h264")).toEqual(["whep", "ll-hls", "hls", "webcodecs"]);
  });

  it("plays H.264 on old iOS Safari by WHEP, then native HLS", () => {
    expect(availablePaths(oldIos, "h264")).toEqual(["whep", "native-hls"]);
    const ll = planPaths(oldIos, "h264").find((o) => o.path === "ll-hls");
    expect(ll).toEqual({ path: "ll-hls", available: false, reason: "this browser has no Media Source Extensions" });
  });

  it("plays AV1 cameras by WHEP or WebCodecs, never HLS", () => {
    expect(availablePaths(chromium, "av1")).toEqual(["whep", "webcodecs"]);
    const hls = planPaths(chromium, "av1").find((o) => o.path === "hls");
    expect(hls?.available).toBe(false);
    expect(hls?.reason).toContain("av1");
  });

  it("falls back to WebCodecs for AV1 when WebRTC cannot receive it", () => {
    const noAv1 = { ...chromium, rtcReceiveCodecs: ["vp8", "h264"] };
    expect(availablePaths(noAv1, "av1")).toEqual(["webcodecs"]);
    expect(planPaths(noAv1, "av1")[0]?.reason).toBe("this browser cannot receive av1 over WebRTC");
  });

  it("assumes the usual receive codecs when the browser cannot list them", () => {
    expect(availablePaths({ ...chromium, rtcReceiveCodecs: null }, "vp8")[0]).toBe("whep");
  });

  it("draws JPEG and WebP frames over the relay only, and needs createImageBitmap", () => {
    expect(availablePaths(chromium, "jpeg")).toEqual(["webcodecs"]);
    expect(availablePaths(chromium, "WEBP")).toEqual(["webcodecs"]);
    expect(availablePaths({ ...chromium, imageBitmap: false }, "jpeg")).toEqual([]);
  });

  it("offers H.265 only where MSE decodes it, and only over LL-HLS (fMP4) among the hls.js paths", () => {
    expect(availablePaths(chromium, "h265")).toEqual(["native-hls", "webcodecs"]);
    const hevc = { ...chromium, isTypeSupported: () => true };
    expect(availablePaths(hevc, "h265")).toEqual(["ll-hls", "native-hls", "webcodecs"]);
  });

  it("has no path for an unknown codec or a browser with nothing", () => {
    expect(availablePaths(chromium, "mjpeg2000")).toEqual([]);
    expect(availablePaths(chromium, undefined)).toEqual([]);
    const nothing: Capabilities = {
      rtcPeerConnection: false,
      rtcReceiveCodecs: null,
      mediaSource: false,
      isTypeSupported: () => false,
      nativeHls: false,
      webSocket: false,
      videoDecoder: false,
      imageBitmap: false,
    };
    expect(availablePaths(nothing, "h264")).toEqual([]);
    expect(planPaths(nothing, "h264").every((o) => o.reason !== undefined)).toBe(true);
  });
});

describe("choosePath / nextPath", () => {
  it("starts with the best path, or the user's choice when it can play", () => {
    expect(choosePath(chromium, "h264")).toBe("whep");
    expect(choosePath(chromium, "h264", "hls")).toBe("hls");
    expect(choosePath(oldIos, "h264", "ll-hls")).toBe("whep");
    expect(choosePath(chromium, "nope")).toBeNull();
  });

  it("moves to the next path on failure, wrapping to better ones, skipping tried ones", () => {
    expect(nextPath(chromium, "h264", "whep")).toBe("ll-hls");
    expect(nextPath(chromium, "h264", "ll-hls", new Set(["whep", "ll-hls"]))).toBe("hls");
    expect(nextPath(chromium, "h264", "webcodecs")).toBe("whep");
    expect(nextPath(chromium, "av1", "webcodecs", new Set(["whep"]))).toBeNull();
    expect(nextPath(chromium, "jpeg", "webcodecs")).toBeNull();
  });
});
