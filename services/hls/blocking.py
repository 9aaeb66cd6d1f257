"""LL-HLS blocking playlist reload: directive parsing and the "is it there yet" rule, pure.

RFC 8216bis section 6.2.5.2 (Blocking Playlist Reload) and 6.2.5.3 (the Advance Part Limit):

* ``_HLS_msn=<M>`` holds the playlist request until media segment M is complete;
  ``_HLS_msn=<M>&_HLS_part=<P>`` until part P of segment M exists.  A part index past the last
  part of a segment that has completed means the parts of the following segment (a client that
  asks for (M, n) while M closes with n parts wants the next part: (M+1, 0)).
* ``_HLS_part`` without ``_HLS_msn``, or values that are not non-negative integers: 400.
* M more than two past the last complete segment, or a part more than the Advance Part Limit
  (3 / PART-TARGET parts when PART-TARGET < 1 s, else 3) past the last part: 400 at once.
* Waiting longer than three target durations: 503 (the async shell enforces the clock).
* ``_HLS_skip`` is accepted and ignored: the playlists do not offer delta updates
  (no ``CAN-SKIP-UNTIL``), so the whole playlist is the right answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

MAX_DIRECTIVE = 10**15


class DirectiveError(ValueError):
    """A malformed or too-far-ahead blocking request; the gateway answers 400."""

    status = 400


@dataclass(frozen=True, slots=True)
class Directives:
    """Parsed ``_HLS_msn`` / ``_HLS_part`` (None when absent)."""

    msn: int | None = None
    part: int | None = None

    @property
    def blocking(self) -> bool:
        return self.msn is not None


class Progress(Protocol):
    """What the rule needs to know about a packager's window."""

    def last_complete_msn(self) -> int | None:
        """Media sequence number of the newest complete segment, or None."""

    def open_msn(self) -> int | None:
        """Media sequence number of the segment being built, or None."""

    def open_parts(self) -> int:
        """Complete parts of the open segment."""

    def part_count(self, msn: int) -> int | None:
        """Parts of a complete, kept segment ``msn``; None when not kept or not complete."""


def _integer(query: Mapping[str, object], key: str) -> int | None:
    raw = query.get(key)
    if raw is None:
        return None
    text = raw if isinstance(raw, str) else str(raw)
    if not text.isdigit() or len(text) > 15:
        raise DirectiveError(f"{key} must be a non-negative integer, got {text[:40]!r}")
    value = int(text)
    if value > MAX_DIRECTIVE:
        raise DirectiveError(f"{key} is out of range")
    return value


def parse_directives(query: Mapping[str, object]) -> Directives:
    """Read the delivery directives of a playlist request's query.

    Raises:
        DirectiveError: bad values, or ``_HLS_part`` without ``_HLS_msn``.
    """
    msn = _integer(query, "_HLS_msn")
    part = _integer(query, "_HLS_part")
    if part is not None and msn is None:
        raise DirectiveError("_HLS_part requires _HLS_msn (RFC 8216bis 6.2.5.2)")
    return Directives(msn, part)


def advance_part_limit(part_target: float) -> float:
    """How many parts ahead of the last one a request may ask for (RFC 8216bis 6.2.5.3)."""
    return 3 / part_target if part_target < 1 else 3.0


def ready(d: Directives, progress: Progress, part_target: float) -> bool:
    """True when the playlist can be sent for ``d``; False to keep waiting.

    Raises:
        DirectiveError: the request is too far ahead of the live edge (answer 400 now).
    """
    if d.msn is None:
        return True
    last = progress.last_complete_msn()
    base = -1 if last is None else last
    if d.msn > base + 2:
        raise DirectiveError(f"_HLS_msn={d.msn} is more than two segments past the last one ({base})")
    msn, part = d.msn, d.part
    if part is None:
        return last is not None and msn <= last
    # A part index past the end of a completed segment names the next segment's parts.
    while True:
        count = progress.part_count(msn)
        if count is None or part < count:
            break
        part -= count
        msn += 1
    open_msn = progress.open_msn()
    limit = advance_part_limit(part_target)
    if open_msn is not None and msn == open_msn:
        ahead = part - (progress.open_parts() - 1)
    elif msn > base:
        ahead = part + 1  # at least: the open segment's remaining parts are not known yet
    else:
        return True  # a segment older than the live edge (complete, or gone with an old owner)
    if ahead > limit:
        raise DirectiveError(f"_HLS_part={d.part} is more than {limit:g} parts past the last part")
    if open_msn is not None and msn == open_msn:
        return part < progress.open_parts()
    return last is not None and msn <= last
