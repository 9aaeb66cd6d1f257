"""The per-stream GOP cache that lets a new WHEP viewer start at once.

It holds the last keyframe of a stream and every access unit after it, in decode order, so a
viewer that joins mid-GOP can be sent a decodable run (IDR first) instead of waiting for the next
IDR. Bounded in decode time (90 kHz ticks) and bytes: a GOP that outgrows either bound is dropped
(counted in :attr:`GopCache.overflows`) and the cache stays empty until the next keyframe, since a
GOP cut at its head cannot be decoded.

This is camhub's frame-routing core (docs/bus.md "WHEP"), written here rather than taken from a
library: no library keeps an encoded GOP for a packetizer.
"""

from __future__ import annotations

from services.common.frames import Frame


class GopCache:
    """The current GOP of one stream.

    Args:
        max_ticks: largest decode-time span kept, 90 kHz ticks (last DTS - keyframe DTS).
        max_bytes: largest total access-unit size kept, bytes.
    """

    def __init__(self, max_ticks: int, max_bytes: int) -> None:
        self.max_ticks = max_ticks
        self.max_bytes = max_bytes
        self._frames: list[Frame] = []
        self._bytes = 0
        self.overflows = 0

    def push(self, frame: Frame) -> None:
        """Add the next access unit (decode order). A keyframe starts a new GOP."""
        if frame.key:
            self._frames = [frame]
            self._bytes = len(frame.data)
        elif not self._frames:
            return  # no keyframe yet: nothing decodable to keep
        else:
            self._frames.append(frame)
            self._bytes += len(frame.data)
        if self._bytes > self.max_bytes or self.span_ticks > self.max_ticks:
            self.overflows += 1
            self.clear()

    def snapshot(self) -> list[Frame]:
        """The cached GOP (keyframe first), or [] when none is cached."""
        return list(self._frames)

    def clear(self) -> None:
        """Forget the cached GOP (the source restarted or went away)."""
        self._frames = []
        self._bytes = 0

    @property
    def keyframe(self) -> Frame | None:
        """The cached GOP's keyframe, or None."""
        return self._frames[0] if self._frames else None

    @property
    def span_ticks(self) -> int:
        """Decode-time span of the cached GOP, 90 kHz ticks."""
        if len(self._frames) < 2:
            return 0
        return self._frames[-1].dts - self._frames[0].dts

    @property
    def size(self) -> int:
        """Total bytes cached."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._frames)
