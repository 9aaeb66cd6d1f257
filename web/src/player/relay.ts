/**
 * The WebSocket relay's wire format (`GET /ws/{stream}`, docs/http.md) and the WebCodecs codec
 * strings derived from in-band codec configuration. Pure functions, tested in relay.test.ts.
 *
 * Messages: first a text message `{"type": "info", codec, width, height, config}` (`config`: the
 * codec configuration, base64; H.264/H.265 Annex B parameter sets, AV1 sequence header OBU), then
 * one binary message per access unit with a 16-byte header:
 *
 * | bytes | field |
 * |---|---|
 * | 0-1 | magic `CH` |
 * | 2 | version, 1 |
 * | 3 | flags, bit 0 = keyframe |
 * | 4 | codec: 1 h264, 2 h265, 3 vp8, 4 vp9, 5 av1, 6 jpeg, 7 webp |
 * | 5-7 | reserved |
 * | 8-15 | PTS, uint64 big endian, 90 kHz ticks |
 */

import type { Codec } from "../api/types";

export const HEADER_BYTES = 16;
export const CLOCK_HZ = 90_000;

const CODEC_IDS: Record<number, Codec> = { 1: "h264", 2: "h265", 3: "vp8", 4: "vp9", 5: "av1", 6: "jpeg", 7: "webp" };

export class RelayFormatError extends Error {
  override name = "RelayFormatError";
}

export interface RelayFrame {
  keyframe: boolean;
  codec: Codec;
  /** Presentation time in 90 kHz ticks. */
  pts: number;
  /** The access unit (Annex B for H.264/H.265, a temporal unit for AV1, a whole image). */
  data: Uint8Array;
}

export interface RelayInfo {
  type: "info";
  codec: string;
  width?: number;
  height?: number;
  /** Decoded `config` bytes (empty when the server sent none). */
  config: Uint8Array;
}

/**
 * Parses one binary relay message.
 *
 * @throws RelayFormatError when the message is shorter than the header, has the wrong magic or
 *   version, or names an unknown codec.
 */
export function parseRelayFrame(buf: ArrayBuffer | Uint8Array): RelayFrame {
  const bytes = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
  if (bytes.byteLength < HEADER_BYTES) throw new RelayFormatError(`frame of ${bytes.byteLength} bytes is shorter than the 16-byte header`);
  if (bytes[0] !== 0x43 || bytes[1] !== 0x48) throw new RelayFormatError("frame does not start with the magic 'CH'");
  if (bytes[2] !== 1) throw new RelayFormatError(`unsupported relay version ${bytes[2]}`);
  const codec = CODEC_IDS[bytes[4] ?? 0];
  if (!codec) throw new RelayFormatError(`unknown codec id ${bytes[4]}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const pts = Number(view.getBigUint64(8, false));
  return { keyframe: ((bytes[3] ?? 0) & 1) === 1, codec, pts, data: bytes.subarray(HEADER_BYTES) };
}

function base64ToBytes(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * Parses the relay's first (text) message.
 *
 * @throws RelayFormatError when it is not JSON, not `type: "info"`, or `config` is not base64.
 */
export function parseRelayInfo(text: string): RelayInfo {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    throw new RelayFormatError("info message is not JSON");
  }
  if (typeof msg !== "object" || msg === null || (msg as { type?: unknown }).type !== "info") {
    throw new RelayFormatError("first message is not {type: 'info'}");
  }
  const m = msg as { codec?: unknown; width?: unknown; height?: unknown; config?: unknown };
  let config: Uint8Array = new Uint8Array(0);
  if (typeof m.config === "string" && m.config.length > 0) {
    try {
      config = base64ToBytes(m.config);
    } catch {
      throw new RelayFormatError("info.config is not base64");
    }
  }
  const info: RelayInfo = { type: "info", codec: typeof m.codec === "string" ? m.codec.toLowerCase() : "", config };
  if (typeof m.width === "number") info.width = m.width;
  if (typeof m.height === "number") info.height = m.height;
  return info;
}

/** 90 kHz ticks to the microseconds WebCodecs timestamps use. */
export function ticksToMicros(pts: number): number {
  return Math.round((pts * 1_000_000) / CLOCK_HZ);
}

/** NAL units of an Annex B byte stream (3- or 4-byte start codes), without their start codes. */
export function splitAnnexB(data: Uint8Array): Uint8Array[] {
  const starts: { at: number; len: number }[] = [];
  for (let i = 0; i + 2 < data.length; i++) {
    if (data[i] === 0 && data[i + 1] === 0) {
      if (data[i + 2] === 1) {
        starts.push({ at: i, len: 3 });
        i += 2;
      } else if (data[i + 2] === 0 && i + 3 < data.length && data[i + 3] === 1) {
        starts.push({ at: i, len: 4 });
        i += 3;
      }
    }
  }
  const out: Uint8Array[] = [];
  for (let k = 0; k < starts.length; k++) {
    const s = starts[k]!;
    const end = k + 1 < starts.length ? starts[k + 1]!.at : data.length;
    out.push(data.subarray(s.at + s.len, end));
  }
  return out;
}

function hex2(n: number): string {
  return n.toString(16).toUpperCase().padStart(2, "0");
}

/** H.264 NAL unit type (ITU-T H.264 7.3.1): 5 IDR, 7 SPS, 8 PPS. */
export function h264NalType(nal: Uint8Array): number {
  return (nal[0] ?? 0) & 0x1f;
}

/** H.265 NAL unit type (ITU-T H.265 7.3.1.2): 32 VPS, 33 SPS, 34 PPS. */
export function h265NalType(nal: Uint8Array): number {
  return ((nal[0] ?? 0) >> 1) & 0x3f;
}

/**
 * The `avc1.PPCCLL` codec string (RFC 6381 section 3.3) from the first SPS in Annex B `data`:
 * profile_idc, constraint flags and level_idc as hex. Null when there is no SPS.
 */
export function h264CodecString(data: Uint8Array): string | null {
  for (const nal of splitAnnexB(data)) {
    if (h264NalType(nal) === 7 && nal.length >= 4) return `avc1.${hex2(nal[1]!)}${hex2(nal[2]!)}${hex2(nal[3]!)}`;
  }
  return null;
}

/** Removes emulation prevention bytes (00 00 03 -> 00 00), ITU-T H.264/H.265 7.4.1. */
export function unescapeRbsp(nal: Uint8Array): Uint8Array {
  const out: number[] = [];
  let zeros = 0;
  for (const b of nal) {
    if (zeros >= 2 && b === 3) {
      zeros = 0;
      continue;
    }
    out.push(b);
    zeros = b === 0 ? zeros + 1 : 0;
  }
  return Uint8Array.from(out);
}

/** MSB-first bit reader over a byte array. */
export class BitReader {
  private pos = 0;
  constructor(private readonly bytes: Uint8Array) {}

  /** Reads `n` (<= 32) bits. @throws RelayFormatError past the end. */
  bits(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) {
      const byte = this.bytes[this.pos >> 3];
      if (byte === undefined) throw new RelayFormatError("bitstream ended early");
      v = v * 2 + ((byte >> (7 - (this.pos & 7))) & 1);
      this.pos++;
    }
    return v;
  }

  flag(): boolean {
    return this.bits(1) === 1;
  }
}

function reverseBits32(v: number): number {
  let r = 0;
  for (let i = 0; i < 32; i++) r = r * 2 + ((v >>> i) & 1);
  return r;
}

/**
 * The `hvc1.P.C.TL.B0` codec string (ISO/IEC 14496-15 annex E) from the first H.265 SPS in
 * Annex B `data`. Null when there is none or it is cut short.
 */
export function h265CodecString(data: Uint8Array): string | null {
  for (const nal of splitAnnexB(data)) {
    if (h265NalType(nal) !== 33) continue;
    try {
      const r = new BitReader(unescapeRbsp(nal.subarray(2)));
      r.bits(4); // sps_video_parameter_set_id
      r.bits(3); // sps_max_sub_layers_minus1
      r.bits(1); // sps_temporal_id_nesting_flag
      const space = r.bits(2);
      const tier = r.bits(1);
      const profile = r.bits(5);
      const compat = r.bits(32);
      const constraint: number[] = [];
      for (let i = 0; i < 6; i++) constraint.push(r.bits(8));
      const level = r.bits(8);
      const spaceChar = ["", "A", "B", "C"][space] ?? "";
      let cons = constraint.slice();
      while (cons.length > 1 && cons[cons.length - 1] === 0) cons = cons.slice(0, -1);
      const consStr = cons.map((b) => b.toString(16).toUpperCase()).join(".");
      return `hvc1.${spaceChar}${profile}.${reverseBits32(compat).toString(16).toUpperCase()}.${tier ? "H" : "L"}${level}.${consStr}`;
    } catch {
      return null;
    }
  }
  return null;
}

/**
 * The `av01.P.LLT.DD` codec string (AV1 codec ISO-BMFF binding, "Codecs Parameter String") from
 * an AV1 sequence header OBU (AV1 spec 5.5). Bit depth is reported as 08 unless
 * `high_bitdepth` is read; null when `data` holds no sequence header.
 */
export function av1CodecString(data: Uint8Array): string | null {
  let pos = 0;
  while (pos < data.length) {
    const header = data[pos]!;
    const type = (header >> 3) & 0x0f;
    const hasExt = (header >> 2) & 1;
    const hasSize = (header >> 1) & 1;
    let p = pos + 1 + hasExt;
    let size = data.length - p;
    if (hasSize) {
      size = 0;
      for (let i = 0; i < 8; i++) {
        const b = data[p++];
        if (b === undefined) return null;
        size += (b & 0x7f) * 2 ** (7 * i);
        if ((b & 0x80) === 0) break;
      }
    }
    if (type === 1) {
      try {
        return av1FromSequenceHeader(data.subarray(p, p + size));
      } catch {
        return null;
      }
    }
    pos = p + size;
  }
  return null;
}

function av1FromSequenceHeader(payload: Uint8Array): string {
  const r = new BitReader(payload);
  const profile = r.bits(3);
  r.bits(1); // still_picture
  const reduced = r.flag();
  let level = 0;
  let tier = 0;
  if (reduced) {
    level = r.bits(5);
  } else {
    const timingInfo = r.flag();
    let decoderModelInfo = false;
    if (timingInfo) {
      r.bits(32); // num_units_in_display_tick
      r.bits(32); // time_scale
      if (r.flag()) {
        // equal_picture_interval: num_ticks_per_picture_minus_1 as uvlc
        let zeros = 0;
        while (!r.flag()) zeros++;
        if (zeros < 32) r.bits(zeros);
      }
      decoderModelInfo = r.flag();
      if (decoderModelInfo) throw new RelayFormatError("decoder model info not parsed");
    }
    r.bits(1); // initial_display_delay_present_flag
    r.bits(5); // operating_points_cnt_minus_1
    r.bits(12); // operating_point_idc[0]
    level = r.bits(5);
    if (level > 7) tier = r.bits(1);
  }
  return `av01.${profile}.${String(level).padStart(2, "0")}${tier ? "H" : "M"}.08`;
}

/** The WebCodecs codec string for `codec` given its in-band `config`, with a safe default. */
export function webCodecsString(codec: string, config: Uint8Array): string | null {
  switch (codec) {
    case "h264":
      return h264CodecString(config) ?? "avc1.42E01E";
    case "h265":
      return h265CodecString(config) ?? "hvc1.1.6.L93.B0";
    case "av1":
      return av1CodecString(config) ?? "av01.0.08M.08";
    case "vp8":
      return "vp8";
    case "vp9":
      return "vp09.00.10.08";
    default:
      return null;
  }
}

/**
 * True when an H.264/H.265 keyframe carries its own parameter sets (SPS); a decoder configured
 * without `description` needs them in band, so the player prepends the info's `config` if not.
 */
export function hasParameterSets(codec: string, au: Uint8Array): boolean {
  const nals = splitAnnexB(au);
  if (codec === "h264") return nals.some((n) => h264NalType(n) === 7);
  if (codec === "h265") return nals.some((n) => h265NalType(n) === 33);
  return true;
}

export function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
