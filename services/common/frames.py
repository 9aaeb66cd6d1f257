"""The frame envelope: one encoded access unit per NATS message (docs/frames.md).

Metadata rides in NATS headers so ``nats sub --headers-only camhub.media.cam1.frames`` reads
well; the body is the access unit exactly as it arrived (H.264/H.265 Annex B with start codes,
an AV1 temporal unit, a VP8 frame, a whole JPEG or WebP).  Timestamps are 90 kHz ticks.

A frame larger than the server's ``max_payload`` is split into chunks (header
``Camhub-Chunk: <index>/<count>``, all with the same ``Camhub-Seq``) and put back together by
:class:`FrameAssembler`; an incomplete chunk run is dropped and counted, never delivered.

This is camhub's core routing format, so it is written here rather than taken from a library.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

CODECS = ("h264", "h265", "vp8", "vp9", "av1", "jpeg", "webp")
VIDEO_CODECS = ("h264", "h265", "vp8", "vp9", "av1")
IMAGE_CODECS = ("jpeg", "webp")
CLOCK_HZ = 90_000

H_CODEC = "Camhub-Codec"
H_PTS = "Camhub-Pts"
H_DTS = "Camhub-Dts"
H_KEY = "Camhub-Key"
H_SEQ = "Camhub-Seq"
H_TS = "Camhub-Ts"
H_CHUNK = "Camhub-Chunk"


class FrameError(ValueError):
    """A message on a frames subject is not a valid frame envelope."""


@dataclass(slots=True)
class Frame:
    """One encoded access unit.

    Attributes:
        codec: one of :data:`CODECS`.
        pts: presentation time, 90 kHz ticks, monotonic per stream.
        dts: decode time, 90 kHz ticks (equals ``pts`` without B-frames).
        key: True on an IDR / keyframe (a decoder can start here).
        data: the access unit bytes.
        seq: per-stream counter set by the publisher; gaps mean loss.
        ts_ns: ingest wall clock when the frame entered camhub, ns since the epoch.
    """

    codec: str
    pts: int
    dts: int
    key: bool
    data: bytes
    seq: int = 0
    ts_ns: int = field(default_factory=time.time_ns)

    def headers(self) -> dict[str, str]:
        """The NATS headers of this frame (without chunking)."""
        return {
            H_CODEC: self.codec,
            H_PTS: str(self.pts),
            H_DTS: str(self.dts),
            H_KEY: "1" if self.key else "0",
            H_SEQ: str(self.seq),
            H_TS: str(self.ts_ns),
        }


def encode(frame: Frame, max_payload: int) -> Iterator[tuple[dict[str, str], bytes]]:
    """Yield ``(headers, body)`` messages for ``frame``: one, or chunks of <= ``max_payload``.

    ``max_payload`` is the server's limit in bytes; 4 KiB are kept free for headers.
    """
    if frame.codec not in CODECS:
        raise FrameError(f"unknown codec {frame.codec!r}")
    limit = max(1024, max_payload - 4096)
    headers = frame.headers()
    data = frame.data
    if len(data) <= limit:
        yield headers, data
        return
    count = (len(data) + limit - 1) // limit
    for i in range(count):
        h = dict(headers)
        h[H_CHUNK] = f"{i}/{count}"
        yield h, data[i * limit : (i + 1) * limit]


def _int(headers: dict[str, str], name: str) -> int:
    try:
        return int(headers[name])
    except KeyError:
        raise FrameError(f"header {name} missing") from None
    except ValueError:
        raise FrameError(f"header {name} is not an integer: {headers[name]!r}") from None


def decode(headers: dict[str, str] | None, body: bytes) -> Frame:
    """Build a :class:`Frame` from one unchunked message.

    Raises:
        FrameError: missing or malformed headers, unknown codec, empty body.
    """
    if not headers:
        raise FrameError("frame message has no headers")
    codec = headers.get(H_CODEC, "")
    if codec not in CODECS:
        raise FrameError(f"unknown codec {codec!r}")
    if not body:
        raise FrameError("empty access unit")
    pts = _int(headers, H_PTS)
    dts = _int(headers, H_DTS) if H_DTS in headers else pts
    seq = _int(headers, H_SEQ) if H_SEQ in headers else 0
    ts_ns = _int(headers, H_TS) if H_TS in headers else time.time_ns()
    return Frame(codec, pts, dts, headers.get(H_KEY) == "1", bytes(body), seq, ts_ns)


class FrameAssembler:
    """Turns frame messages (whole or chunked) back into frames, for one subscription.

    Call :meth:`push` with each message's headers and body; it returns a :class:`Frame` when
    one is complete, else None.  Chunk runs that are interrupted are dropped and counted in
    :attr:`dropped`; malformed messages raise :class:`FrameError` (the caller counts and skips).
    """

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._seq: int | None = None
        self._count = 0
        self.dropped = 0

    def push(self, headers: dict[str, str] | None, body: bytes) -> Frame | None:
        chunk = headers.get(H_CHUNK) if headers else None
        if chunk is None:
            if self._parts:
                self._reset(dropped=True)
            return decode(headers, body)
        try:
            idx_s, count_s = chunk.split("/")
            idx, count = int(idx_s), int(count_s)
        except ValueError:
            raise FrameError(f"bad {H_CHUNK} header {chunk!r}") from None
        if not 0 <= idx < count or count > 4096:
            raise FrameError(f"bad {H_CHUNK} header {chunk!r}")
        seq = _int(headers or {}, H_SEQ)
        if idx == 0:
            if self._parts:
                self._reset(dropped=True)
            self._seq, self._count = seq, count
        elif seq != self._seq or idx != len(self._parts) or count != self._count:
            if self._parts:
                self._reset(dropped=True)
            return None
        self._parts.append(bytes(body))
        if len(self._parts) < self._count:
            return None
        data = b"".join(self._parts)
        self._reset(dropped=False)
        return decode(headers, data)

    def _reset(self, dropped: bool) -> None:
        if dropped:
            self.dropped += 1
        self._parts = []
        self._seq = None
        self._count = 0
