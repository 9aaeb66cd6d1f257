"""Where segments and parts begin: camhub's cutting rule, pure and socket-free.

Rules (RFC 8216 section 3, RFC 8216bis section 4.4.4.9, Apple HLS authoring spec):

* A media segment starts only at a keyframe (IDR): frames before the first keyframe, or after
  :meth:`Segmenter.close` and before the next keyframe, cannot be placed (``place`` returns None).
* A new segment starts at the first keyframe whose DTS is at least the target duration after the
  segment's first DTS (half a frame of tolerance absorbs jittery source clocks), or at any
  keyframe when the caller forces it (a discontinuity).  So a segment lasts from the target up to
  the target plus one GOP.
* With parts enabled, a new partial segment starts at every keyframe (so it can be marked
  ``INDEPENDENT=YES``) and when the open part has reached the part target (within half a frame:
  at 30 fps and 0.333 s a part holds 10 frames).

Durations are measured on DTS (decode order), in 90 kHz ticks; the caller passes the current frame
duration estimate.  Writing this here rather than using a library is deliberate: the cutting rule
is camhub's own segment logic.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Cut:
    """What a placed frame starts: a new media ``segment`` (and then always a new ``part``)."""

    segment: bool
    part: bool


NO_CUT = Cut(False, False)
NEW_PART = Cut(False, True)
NEW_SEGMENT = Cut(True, True)


class Segmenter:
    """Decides segment and part boundaries.

    ``target``: segment target duration, ticks; ``part_target``: part target, ticks, or None
    (parts only at segment starts).
    """

    def __init__(self, target: int, part_target: int | None = None) -> None:
        if target <= 0 or (part_target is not None and part_target <= 0):
            raise ValueError("target durations must be positive")
        self.target = target
        self.part_target = part_target
        self.is_open = False
        self.segment_start = 0
        self.part_start = 0

    def place(self, dts: int, key: bool, frame_ticks: int, *, force: bool = False) -> Cut | None:
        """Place the next frame (decode order, output DTS in ticks).

        Returns the :class:`Cut` it starts, or None when it cannot be placed (no segment is open
        and it is not a keyframe).  ``force`` starts a new segment at this frame when it is a
        keyframe (ignored otherwise).
        """
        half = max(0, frame_ticks // 2)
        if not self.is_open:
            if not key:
                return None
            self._start_segment(dts)
            return NEW_SEGMENT
        if key and (force or dts - self.segment_start >= self.target - half):
            self._start_segment(dts)
            return NEW_SEGMENT
        if self.part_target is not None and (key or dts - self.part_start >= self.part_target - half):
            self.part_start = dts
            return NEW_PART
        return NO_CUT

    def close(self) -> None:
        """End the open segment (discontinuity, stream down): the next segment needs a keyframe."""
        self.is_open = False

    def _start_segment(self, dts: int) -> None:
        self.is_open = True
        self.segment_start = dts
        self.part_start = dts
