"""Resource names below ``/hls/<stream>/`` and their parser (docs/bus.md, "HLS").

| name | what | Content-Type |
|---|---|---|
| ``stream.m3u8`` | standard media playlist (RFC 8216): MPEG-TS segments for H.264, fMP4 otherwise | playlist |
| ``stream_ll.m3u8`` | LL-HLS media playlist (RFC 8216bis): fMP4 segments and parts, blocking reload | playlist |
| ``seg000123.ts`` | MPEG-TS media segment, media sequence number 123 | ``video/mp2t`` |
| ``seg000123.m4s`` | fMP4 media segment 123 (the concatenation of its parts) | ``video/mp4`` |
| ``part000123.2.m4s`` | partial segment 2 of media segment 123 | ``video/mp4`` |
| ``init000120.mp4`` | fMP4 initialization segment (ftyp + moov) used from segment 120 on | ``video/mp4`` |
| ``init.mp4`` | the newest initialization segment (not cacheable) | ``video/mp4`` |

Numbers are zero padded to six digits when written; the parser accepts any 1-18 digits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

PLAYLIST = "stream.m3u8"
PLAYLIST_LL = "stream_ll.m3u8"
INIT_LATEST = "init.mp4"

Kind = Literal["playlist", "playlist_ll", "ts", "m4s", "part", "init"]

_SEG = re.compile(r"seg(\d{1,18})\.(ts|m4s)")
_PART = re.compile(r"part(\d{1,18})\.(\d{1,6})\.m4s")
_INIT = re.compile(r"init(\d{1,18})?\.mp4")


class UnknownResource(ValueError):
    """A path that names no HLS resource camhub serves (maps to 404)."""


@dataclass(frozen=True, slots=True)
class Resource:
    """A parsed resource name.

    ``msn`` is the media sequence number (segments and parts) or the generation id (the msn of the
    first segment using an init segment; -1 for ``init.mp4``); ``part`` the part index or -1.
    """

    kind: Kind
    msn: int = -1
    part: int = -1


def seg_ts(msn: int) -> str:
    return f"seg{msn:06d}.ts"


def seg_m4s(msn: int) -> str:
    return f"seg{msn:06d}.m4s"


def part_m4s(msn: int, index: int) -> str:
    return f"part{msn:06d}.{index}.m4s"


def init_mp4(generation: int) -> str:
    return f"init{generation:06d}.mp4"


def parse(path: str) -> Resource:
    """Parse a path relative to ``/hls/<stream>/``.

    Raises:
        UnknownResource: anything that is not one of the names in the module table.
    """
    if path == PLAYLIST:
        return Resource("playlist")
    if path == PLAYLIST_LL:
        return Resource("playlist_ll")
    if m := _SEG.fullmatch(path):
        return Resource("ts" if m[2] == "ts" else "m4s", int(m[1]))
    if m := _PART.fullmatch(path):
        return Resource("part", int(m[1]), int(m[2]))
    if m := _INIT.fullmatch(path):
        return Resource("init", int(m[1]) if m[1] else -1)
    shown = path if len(path) <= 80 else path[:77] + "..."
    raise UnknownResource(f"no HLS resource named {shown!r}")
