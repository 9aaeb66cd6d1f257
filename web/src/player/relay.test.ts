import { describe, expect, it } from "vitest";
import {
  av1CodecString,
  h264CodecString,
  h265CodecString,
  hasParameterSets,
  parseRelayFrame,
  parseRelayInfo,
  RelayFormatError,
  splitAnnexB,
  ticksToMicros,
  unescapeRbsp,
  webCodecsString,
} from "./relay";

function hex(s: string): Uint8Array {
  return Uint8Array.from(s.match(/../g)!.map((b) => parseInt(b, 16)));
}

// Heads of real first access units, from PyAV 18.1 encoders (libx264 165, libx265 4.2, SVT-AV1 4.1).
const X264_HIGH_720P = hex("000000016764001facd9405005ba10000003001000000303c0f18319600000000168ebe3cb22c0");
const X264_BASELINE_480P = hex("000000016742c01ed900a03da10000030001000003003c0f162e480000000168cb83cb20");
const X265_MAIN_240P = hex(
  "0000000140010c01ffff01600000030090000003000003003c959809000000014201010160000003009000000300000300" +
    "3ca00a080f165959a4932b9a020000030002000003003c10000000014401c172b46240",
);
const SVTAV1_240P = hex("12000a0b000000043cffbc6af98040321810008b00814508204000028beca18c0cfa97cb0df62aa722");

function header(codecId: number, flags: number, pts: bigint, payload: number[]): Uint8Array {
  const b = new Uint8Array(16 + payload.length);
  b.set([0x43, 0x48, 1, flags, codecId], 0);
  new DataView(b.buffer).setBigUint64(8, pts, false);
  b.set(payload, 16);
  return b;
}

describe("parseRelayFrame", () => {
  it("reads flags, codec, a 64-bit PTS and the access unit", () => {
    const pts = 2n ** 33n + 12345n; // past 32 bits: 90 kHz wraps 32 bits after 13 h
    const f = parseRelayFrame(header(5, 1, pts, [9, 8, 7]).buffer as ArrayBuffer);
    expect(f.codec).toBe("av1");
    expect(f.keyframe).toBe(true);
    expect(f.pts).toBe(Number(pts));
    expect([...f.data]).toEqual([9, 8, 7]);
    expect(parseRelayFrame(header(1, 0, 0n, [])).keyframe).toBe(false);
    expect(parseRelayFrame(header(6, 0, 0n, [1])).codec).toBe("jpeg");
  });

  it("reads a frame at an offset inside a larger buffer", () => {
    const outer = new Uint8Array(40);
    outer.set(header(3, 1, 90000n, [1, 2]), 10);
    const f = parseRelayFrame(outer.subarray(10, 28));
    expect(f.codec).toBe("vp8");
    expect(f.pts).toBe(90000);
    expect([...f.data]).toEqual([1, 2]);
  });

  it("rejects short frames, bad magic, other versions and unknown codecs", () => {
    expect(() => parseRelayFrame(new Uint8Array(15))).toThrow(RelayFormatError);
    const bad = header(1, 0, 0n, []);
    bad[0] = 0x58;
    expect(() => parseRelayFrame(bad)).toThrow(/magic/);
    const v2 = header(1, 0, 0n, []);
    v2[2] = 2;
    expect(() => parseRelayFrame(v2)).toThrow(/version 2/);
    expect(() => parseRelayFrame(header(0, 0, 0n, []))).toThrow(/unknown codec id 0/);
    expect(() => parseRelayFrame(header(8, 0, 0n, []))).toThrow(/unknown codec id 8/);
  });
});

describe("parseRelayInfo", () => {
  it("decodes the base64 config", () => {
    const info = parseRelayInfo(JSON.stringify({ type: "info", codec: "H264", width: 1280, height: 720, config: btoa("\x00\x00\x00\x01\x67") }));
    expect(info).toMatchObject({ codec: "h264", width: 1280, height: 720 });
    expect([...info.config]).toEqual([0, 0, 0, 1, 0x67]);
    expect(parseRelayInfo('{"type":"info","codec":"av1"}').config.length).toBe(0);
  });

  it("rejects non-JSON, other types and bad base64", () => {
    expect(() => parseRelayInfo("not json")).toThrow(/not JSON/);
    expect(() => parseRelayInfo('{"type":"frame"}')).toThrow(RelayFormatError);
    expect(() => parseRelayInfo('{"type":"info","codec":"h264","config":"%%%"}')).toThrow(/base64/);
  });
});

describe("Annex B and codec strings", () => {
  it("splits NAL units at 3- and 4-byte start codes", () => {
    const nals = splitAnnexB(hex("00000001670102000001680300000165aa"));
    expect(nals.map((n) => n[0])).toEqual([0x67, 0x68, 0x65]);
    expect([...nals[2]!]).toEqual([0x65, 0xaa]);
  });

  it("builds avc1 strings from libx264 SPS (RFC 6381)", () => {
    expect(h264CodecString(X264_HIGH_720P)).toBe("avc1.64001F");
    expect(h264CodecString(X264_BASELINE_480P)).toBe("avc1.42C01E");
    expect(h264CodecString(hex("0000000168ce3880"))).toBeNull();
  });

  it("builds an hvc1 string from a libx265 SPS, undoing emulation prevention", () => {
    expect([...unescapeRbsp(hex("0000030100000300"))]).toEqual([0, 0, 1, 0, 0, 0]);
    expect(h265CodecString(X265_MAIN_240P)).toBe("hvc1.1.6.L60.90");
  });

  it("builds an av01 string from an SVT-AV1 sequence header OBU", () => {
    expect(av1CodecString(SVTAV1_240P)).toBe("av01.0.00M.08");
    // reduced_still_picture_header, seq_level_idx 13 (5.1): bits 000 1 1 01101 = 0x1b40
    expect(av1CodecString(hex("0a02" + "1b40"))).toBe("av01.0.13M.08");
    expect(av1CodecString(hex("0a01" + "1b"))).toBeNull(); // cut short
    expect(av1CodecString(hex("1200"))).toBeNull();
  });

  it("falls back to safe defaults when the config is empty", () => {
    const empty = new Uint8Array(0);
    expect(webCodecsString("h264", empty)).toBe("avc1.42E01E");
    expect(webCodecsString("av1", empty)).toBe("av01.0.08M.08");
    expect(webCodecsString("vp8", empty)).toBe("vp8");
    expect(webCodecsString("jpeg", empty)).toBeNull();
    expect(webCodecsString("av1", SVTAV1_240P)).toBe("av01.0.00M.08");
  });

  it("tells whether a keyframe carries its SPS", () => {
    expect(hasParameterSets("h264", X264_HIGH_720P)).toBe(true);
    expect(hasParameterSets("h264", hex("0000000165888480"))).toBe(false);
    expect(hasParameterSets("h265", X265_MAIN_240P)).toBe(true);
    expect(hasParameterSets("av1", new Uint8Array(0))).toBe(true);
  });

  it("converts 90 kHz ticks to microseconds", () => {
    expect(ticksToMicros(90_000)).toBe(1_000_000);
    expect(ticksToMicros(3003)).toBe(33_367);
  });
});
