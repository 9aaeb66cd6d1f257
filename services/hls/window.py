"""The sliding window of media segments and parts one packager keeps in memory.

RFC 8216 section 6.2.2: a live playlist lists the newest ``size`` complete segments; a segment
that left the playlist stays available for a while (a client may have fetched the old playlist
just before), so the store keeps ``size + grace`` segments.  Parts live inside their segment:
when a segment completes, its fMP4 bytes become one ``bytes`` and the parts are views into it, so
part and segment bytes are never stored twice.  Init segments are kept while a kept segment uses
them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from services.hls import names

CLOCK_HZ = 90_000


@dataclass(slots=True)
class Part:
    """One LL-HLS partial segment: ``duration`` in 90 kHz ticks, ``data`` its fMP4 bytes."""

    index: int
    duration: int
    independent: bool
    data: bytes | memoryview


@dataclass(slots=True)
class Segment:
    """One media segment.

    ``start_dts`` and ``duration`` are output-timeline ticks; ``pdt`` the wall clock of its first
    frame (s since the Unix epoch, for ``EXT-X-PROGRAM-DATE-TIME``); ``dsn`` its discontinuity
    sequence number; ``generation`` the id of its fMP4 init segment (None without fMP4).
    """

    msn: int
    start_dts: int
    pdt: float
    discontinuity: bool
    dsn: int
    generation: int | None
    parts: list[Part] = field(default_factory=list)
    duration: int = 0
    complete: bool = False
    frames: int = 0
    ts: bytes | None = None
    m4s: bytes | None = None

    @property
    def seconds(self) -> float:
        return self.duration / CLOCK_HZ

    def names(self) -> list[str]:
        """Every resource name of this segment (for the disk mirror's clean-up)."""
        out = [names.seg_m4s(self.msn)] if self.generation is not None else []
        if self.ts is not None:
            out.append(names.seg_ts(self.msn))
        out += [names.part_m4s(self.msn, p.index) for p in self.parts]
        return out


class Window:
    """Complete segments (oldest first), the open one, and init segments by generation id."""

    def __init__(self, size: int, grace: int) -> None:
        self.size = size
        self.grace = grace
        self.segments: deque[Segment] = deque()
        self.open: Segment | None = None
        self.inits: dict[int, bytes] = {}
        self.latest_init: int | None = None

    def add_init(self, generation: int, data: bytes) -> None:
        self.inits[generation] = data
        self.latest_init = generation

    def begin(self, segment: Segment) -> None:
        """Open ``segment``; the previous one must have been completed."""
        if self.open is not None:
            raise RuntimeError("a segment is already open")
        self.open = segment

    def add_part(self, part: Part) -> None:
        if self.open is None:
            raise RuntimeError("no open segment")
        self.open.parts.append(part)

    def complete(self, duration: int, ts: bytes | None) -> tuple[Segment, list[str]]:
        """Complete the open segment; returns it and the resource names evicted from the store."""
        seg = self.open
        if seg is None:
            raise RuntimeError("no open segment")
        self.open = None
        seg.duration = max(1, duration)
        seg.complete = True
        seg.ts = ts
        if seg.generation is not None:
            seg.m4s = b"".join(bytes(p.data) for p in seg.parts)
            view = memoryview(seg.m4s)
            offset = 0
            for p in seg.parts:
                n = len(p.data)
                p.data = view[offset : offset + n]
                offset += n
        self.segments.append(seg)
        evicted: list[str] = []
        while len(self.segments) > self.size + self.grace:
            evicted += self.segments.popleft().names()
        used = {s.generation for s in self.segments} | {self.latest_init}
        if self.open is not None:
            used.add(self.open.generation)
        for gen in [g for g in self.inits if g not in used]:
            del self.inits[gen]
            evicted.append(names.init_mp4(gen))
        return seg, evicted

    def listed(self) -> list[Segment]:
        """The complete segments a playlist lists now (the newest ``size``)."""
        n = len(self.segments)
        return list(self.segments)[max(0, n - self.size) :]

    def find(self, msn: int) -> Segment | None:
        """A kept segment (complete or open) by media sequence number."""
        if self.open is not None and self.open.msn == msn:
            return self.open
        if self.segments:
            i = msn - self.segments[0].msn
            if 0 <= i < len(self.segments) and self.segments[i].msn == msn:
                return self.segments[i]
        return None

    @property
    def last_complete(self) -> Segment | None:
        return self.segments[-1] if self.segments else None
