"""Sanity checks on access units before they reach the bus (no decoding).

:func:`check_access_unit` returns None for an access unit that looks well formed, else a short
reason.  It catches garbage a source can deliver (random RTP payloads, truncated or foreign
bytes), not every bitstream error:

* H.264 / H.265 (ITU-T H.264 7.3.1 / H.265 7.3.1.2): Annex B with at least one NAL unit, every
  ``forbidden_zero_bit`` 0, no reserved/unspecified NAL type, at least one VCL NAL unit (H.264
  types 1-5, H.265 types 0-31).
* VP8 (RFC 6386 section 9.1): a frame tag of 3 bytes; a key frame carries the start code
  ``9d 01 2a`` and dimensions.
* AV1: a low-overhead temporal unit whose OBUs parse (:mod:`services.common.av1`).
* JPEG: SOI ``FF D8`` ... EOI ``FF D9``; WebP: ``RIFF....WEBP``.
"""

from __future__ import annotations

from services.common import av1, h264

H264_RESERVED = frozenset({0, *range(24, 32)})


def check_h26x(data: bytes, codec: str, nals: list[bytes] | None = None) -> str | None:
    """Check an H.264/H.265 access unit; ``nals`` (its NAL units, when the caller already split
    them) saves a pass over the bytes."""
    if not h264.is_annexb(data):
        return "not Annex B (no start code)"
    vcl = False
    count = 0
    for nal in h264.iter_nals(data) if nals is None else nals:
        count += 1
        if nal[0] & 0x80:
            return "NAL unit with forbidden_zero_bit set"
        t = h264.nal_type(nal, codec)
        if codec == "h265":
            if len(nal) < 2:
                return "truncated H.265 NAL unit header"
            if t >= 41:
                return f"reserved or unspecified H.265 NAL type {t}"
            if t < 32:
                vcl = True
        else:
            if t in H264_RESERVED:
                return f"reserved or unspecified H.264 NAL type {t}"
            if 1 <= t <= 5:
                vcl = True
        if len(nal) < 2 and (codec == "h265" or (1 <= t <= 5)):
            return "truncated NAL unit"
    if not count:
        return "no NAL unit"
    if not vcl:
        return "no coded slice (VCL NAL unit) in the access unit"
    return None


def check_vp8(data: bytes) -> str | None:
    if len(data) < 3:
        return "VP8 frame shorter than its 3-byte tag"
    if data[0] & 0x01 == 0 and (len(data) < 10 or data[3:6] != b"\x9d\x01\x2a"):  # key frame
        return "VP8 key frame without start code 9d 01 2a"
    return None


def check_av1(data: bytes) -> str | None:
    try:
        n = sum(1 for _ in av1.iter_obus(data))
    except av1.Av1Error as exc:
        return str(exc)
    return None if n else "empty temporal unit"


def check_jpeg(data: bytes) -> str | None:
    if len(data) < 4 or not data.startswith(b"\xff\xd8"):
        return "not a JPEG (no SOI marker FF D8)"
    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return "truncated JPEG (no EOI marker FF D9)"
    return None


def check_webp(data: bytes) -> str | None:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return "not a WebP image (no RIFF....WEBP header)"
    size = int.from_bytes(data[4:8], "little")
    if size + 8 > len(data):
        return "truncated WebP image"
    return None


def check_access_unit(codec: str, data: bytes) -> str | None:
    """None when ``data`` looks like a valid ``codec`` access unit, else the reason."""
    if not data:
        return "empty access unit"
    if codec in ("h264", "h265"):
        return check_h26x(data, codec)
    if codec == "vp8":
        return check_vp8(data)
    if codec == "av1":
        return check_av1(data)
    if codec == "jpeg":
        return check_jpeg(data)
    if codec == "webp":
        return check_webp(data)
    return None


_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def jpeg_dimensions(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's SOFn segment (ITU-T T.81 B.2.2), (0, 0) when not found."""
    pos, n = 2, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return 0, 0
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker in _SOF and pos + 9 <= n:
            return int.from_bytes(data[pos + 7 : pos + 9], "big"), int.from_bytes(data[pos + 5 : pos + 7], "big")
        if marker == 0xDA or length < 2:
            return 0, 0
        pos += 2 + length
    return 0, 0
