"""The output timeline: source timestamps rebased so camhub's PTS/DTS never go backwards.

Sources restart, wrap and glitch; HLS players want timestamps that grow.  :class:`Timeline`
maps each frame's source PTS/DTS (90 kHz ticks) onto one continuous output timeline by adding an
offset, and re-computes the offset (so the frame lands one frame duration after the previous
output frame) when:

* the source DTS goes backwards or stands still (any amount: a muxer rejects non-increasing DTS);
* the source DTS jumps forwards by more than ``max_jump`` ticks (a gap of seconds);
* :meth:`restart` was called (the source reconnected: its clock is unrelated to the old one).

A rebase by more than ``max_jump`` in either direction is reported as a *jump*: the packager then
starts the next segment with ``EXT-X-DISCONTINUITY`` (RFC 8216 section 4.3.2.3).  B-frames keep
their PTS-DTS distance, because PTS and DTS get the same offset.

This is camhub's core timestamp logic and has no library equivalent, hence written here.
"""

from __future__ import annotations

from dataclasses import dataclass

CLOCK_HZ = 90_000
DEFAULT_FRAME_TICKS = 3000  # 30 fps until the source shows its real rate


@dataclass(frozen=True, slots=True)
class Mapped:
    """One frame on the output timeline: ``pts``/``dts`` in 90 kHz ticks; ``jump`` when the
    source clock jumped by more than ``max_jump`` (or the timeline was restarted)."""

    pts: int
    dts: int
    jump: bool


class Timeline:
    """Rebases source timestamps onto a continuous output timeline starting at ``base`` ticks.

    ``max_jump``: the largest forward DTS gap (ticks) still treated as a normal gap.
    """

    def __init__(self, base: int = 0, max_jump: int = 5 * CLOCK_HZ) -> None:
        self.base = base
        self.max_jump = max_jump
        self.frame_ticks = DEFAULT_FRAME_TICKS
        self.rebases = 0
        self._offset: int | None = None
        self._last_in = 0
        self._last_out: int | None = None
        self._restarted = False

    @property
    def next_dts(self) -> int:
        """Where the next frame lands when the source restarts (output ticks)."""
        return self.base if self._last_out is None else self._last_out + self.frame_ticks

    @property
    def last_dts(self) -> int | None:
        """Output DTS of the last mapped frame, or None before the first."""
        return self._last_out

    def restart(self) -> None:
        """The source clock is new (reconnect): the next frame continues after the last one."""
        if self._offset is not None:
            self._offset = None
            self._restarted = True

    def map(self, pts: int, dts: int) -> Mapped:
        """Map one frame's source ``pts``/``dts`` (ticks, decode order) to the output timeline."""
        if pts < dts or pts - dts > self.max_jump:
            pts = dts  # broken source timestamps: present in decode order
        jump = False
        if self._offset is None:
            self._offset = self.next_dts - dts
            jump = self._restarted
            self._restarted = False
        else:
            delta = dts - self._last_in
            if delta <= 0 or delta > self.max_jump:
                jump = abs(delta) > self.max_jump
                self._offset = self.next_dts - dts
                self.rebases += 1
            else:
                self.frame_ticks = delta
        self._last_in = dts
        out_dts = dts + self._offset
        self._last_out = out_dts
        return Mapped(pts + self._offset, out_dts, jump)
