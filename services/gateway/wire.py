"""The WebSocket relay's message format (docs/http.md "WebSocket relay"), for WebCodecs players.

Binary message = 16-byte header + one access unit exactly as it travelled on the bus::

    bytes 0-1   magic b"CH"
    byte  2     version (1)
    byte  3     flags: bit 0 = keyframe (IDR / key), other bits 0
    byte  4     codec: 1 h264, 2 h265, 3 vp8, 4 vp9, 5 av1, 6 jpeg, 7 webp
    bytes 5-7   reserved, 0
    bytes 8-15  PTS, uint64 big-endian, 90 kHz ticks

Text message = JSON ``{"type": "info", "stream", "codec", "width", "height", "fps", "epoch",
"config": base64}``, sent before the first frame and again whenever the stream's description
changes (then the next binary message is a keyframe).  ``config`` is the in-band codec
configuration of ``StreamInfo`` (H.264/H.265 Annex B parameter sets, AV1 sequence header).

camhub's own framing, so it is written here; pure functions, no I/O.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass

from services.common import h264
from services.common.frames import Frame
from services.common.streams import StreamInfo

MAGIC = b"CH"
VERSION = 1
FLAG_KEY = 0x01
HEADER = struct.Struct(">2sBBB3xQ")
HEADER_SIZE = HEADER.size  # 16
CODEC_IDS = {"h264": 1, "h265": 2, "vp8": 3, "vp9": 4, "av1": 5, "jpeg": 6, "webp": 7}
CODEC_NAMES = {v: k for k, v in CODEC_IDS.items()}
_PTS_MASK = (1 << 64) - 1


class WireError(ValueError):
    """A message is not a camhub relay frame."""


def pack_frame(codec: str, pts: int, key: bool, data: bytes) -> bytes:
    """Header + ``data``; ``pts`` in 90 kHz ticks (taken modulo 2**64).

    Raises:
        WireError: unknown codec.
    """
    try:
        cid = CODEC_IDS[codec]
    except KeyError:
        raise WireError(f"unknown codec {codec!r}") from None
    return HEADER.pack(MAGIC, VERSION, FLAG_KEY if key else 0, cid, pts & _PTS_MASK) + data


@dataclass(frozen=True, slots=True)
class WireFrame:
    codec: str
    pts: int
    key: bool
    data: bytes


def unpack_frame(message: bytes) -> WireFrame:
    """Parse a binary relay message (players and tests).

    Raises:
        WireError: too short, wrong magic/version, unknown codec.
    """
    if len(message) < HEADER_SIZE:
        raise WireError(f"message of {len(message)} bytes is shorter than the {HEADER_SIZE}-byte header")
    magic, version, flags, cid, pts = HEADER.unpack_from(message)
    if magic != MAGIC or version != VERSION:
        raise WireError("not a camhub relay frame (magic/version)")
    if cid not in CODEC_NAMES:
        raise WireError(f"unknown codec id {cid}")
    return WireFrame(CODEC_NAMES[cid], pts, bool(flags & FLAG_KEY), bytes(message[HEADER_SIZE:]))


def info_message(stream: str, info: StreamInfo | None, frame: Frame | None = None) -> str:
    """The ``info`` text message from ``info``; without one, what ``frame`` (a keyframe) tells:
    its codec and, for H.264/H.265, its in-band parameter sets."""
    if info is not None:
        body = {
            "codec": info.codec,
            "width": info.width,
            "height": info.height,
            "fps": info.fps,
            "epoch": info.epoch,
            "config": base64.b64encode(info.config).decode(),
        }
    else:
        codec = frame.codec if frame is not None else ""
        config = h264.parameter_sets(frame.data, codec) if frame is not None and codec in ("h264", "h265") else b""
        body = {
            "codec": codec,
            "width": 0,
            "height": 0,
            "fps": 0.0,
            "epoch": 0,
            "config": base64.b64encode(config).decode(),
        }
    return json.dumps({"type": "info", "stream": stream, **body})
