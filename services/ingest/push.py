"""Pushed frames: validate one ``POST /ingest/{stream}`` body and headers -> a Frame (no I/O).

The gateway hands the body and headers over on ``camhub.ingest.push.<stream>`` (docs/bus.md
"Push").  :func:`parse_push` checks them:

* ``Content-Type`` (parameters ignored): ``image/jpeg`` -> ``jpeg``, ``image/webp`` -> ``webp``,
  ``video/h264`` -> ``h264`` (one Annex B access unit), ``video/h265`` -> ``h265``; anything else
  is 415;
* size: empty is 400, above ``CAMHUB_PUSH_MAX_BYTES`` is 413;
* content: :func:`services.ingest.bitstream.check_access_unit` (JPEG SOI/EOI, WebP RIFF/WEBP,
  Annex B with a coded slice) else 400;
* ``Camhub-Pts``: a non-negative integer (90 kHz ticks), default the wall clock in 90 kHz ticks
  since the Unix epoch; ``Camhub-Key``: ``1``/``0``, default detected (IDR/IRAP NAL unit; images
  are always keyframes).  Bad values are 400.

Errors are :class:`PushError` with the HTTP ``status`` for the gateway.
"""

from __future__ import annotations

import time

from services.common import h264
from services.common.frames import CLOCK_HZ, Frame
from services.ingest import bitstream

CONTENT_TYPES = {
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/webp": "webp",
    "video/h264": "h264",
    "video/h265": "h265",
    "video/hevc": "h265",
}
MAX_PTS = 2**63 - 1


class PushError(ValueError):
    """A pushed frame is refused; ``status`` is the HTTP status (400, 413, 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def header(headers: dict[str, str], name: str) -> str:
    """A header value, matched case-insensitively ("" when absent)."""
    low = name.lower()
    for k, v in headers.items():
        if k.lower() == low:
            return str(v)
    return ""


def parse_push(headers: dict[str, str], body: bytes, max_bytes: int, now_ns: int | None = None) -> Frame:
    """The frame a push carries.

    Raises:
        PushError: 415 unknown Content-Type, 413 too large, 400 empty/malformed body or headers.
    """
    ctype = header(headers, "Content-Type").split(";", 1)[0].strip().lower()
    if not ctype:
        raise PushError(415, "Content-Type is required: image/jpeg, image/webp, video/h264 or video/h265")
    codec = CONTENT_TYPES.get(ctype)
    if codec is None:
        raise PushError(
            415, f"unsupported Content-Type {ctype[:60]!r}: use image/jpeg, image/webp, video/h264 or video/h265"
        )
    if len(body) > max_bytes:
        raise PushError(413, f"frame of {len(body)} bytes exceeds the {max_bytes}-byte limit")
    if not body:
        raise PushError(400, "empty body")
    problem = bitstream.check_access_unit(codec, body)
    if problem is not None:
        raise PushError(400, f"body is not a valid {codec} frame: {problem}")
    key_h = header(headers, "Camhub-Key").strip()
    if key_h in ("1", "0"):
        key = key_h == "1"
    elif key_h:
        raise PushError(400, "Camhub-Key must be 1 or 0")
    else:
        key = True if codec in ("jpeg", "webp") else h264.is_keyframe(body, codec)
    pts_h = header(headers, "Camhub-Pts").strip()
    ts_ns = time.time_ns() if now_ns is None else now_ns
    if pts_h:
        try:
            pts = int(pts_h)
        except ValueError:
            raise PushError(400, "Camhub-Pts must be an integer (90 kHz ticks)") from None
        if not 0 <= pts <= MAX_PTS:
            raise PushError(400, "Camhub-Pts out of range")
    else:
        pts = ts_ns * CLOCK_HZ // 1_000_000_000
    return Frame(codec, pts, pts, key, bytes(body), 0, ts_ns)
