"""RTP timestamps for one WHEP viewer, derived from the bus timestamps of the access units it is sent.

A viewer's RTP timestamps (90 kHz, RFC 6184 section 8.1 / RFC 7741 section 4.1) must keep
increasing in real time for the whole session, while the bus timestamps do not: a source that
reconnects restarts its PTS (``discontinuity``), and a viewer that is (re)started from the GOP
cache is sent frames that are already in the past. :class:`Timeline` hides both:

* live frames keep their PTS spacing: ``rtp = pts + offset``, with the offset fixed per anchor;
* when decode time goes backwards or jumps by more than :data:`MAX_GAP_TICKS`, or after
  :meth:`Timeline.reanchor`, the next frame is placed after the last one sent by the wall-clock
  time that passed (``now``, when the caller gives it) or one frame interval;
* a catch-up run (the cached GOP) is compressed to :data:`CATCHUP_STEP_TICKS` per access unit and
  ends "now", so a browser decodes it at once and shows the newest picture instead of replaying
  seconds of old video; the live frames that follow keep their natural spacing after it.

Pure logic, no clock and no I/O, so it is tested without sockets.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.common.frames import Frame

#: First RTP timestamp of a session (aiortc adds its own random origin on top).
START_TICKS = 90_000
#: Spacing of catch-up access units: 1 ms at 90 kHz.
CATCHUP_STEP_TICKS = 90
#: A decode-time jump larger than this (5 s) is a discontinuity, not a gap.
MAX_GAP_TICKS = 5 * 90_000
#: Frame interval assumed until two frames have been seen (30 fps).
DEFAULT_INTERVAL_TICKS = 3_000


class Timeline:
    """Maps ``(pts, dts)`` of bus frames (90 kHz) to one viewer's RTP timestamps (90 kHz)."""

    def __init__(self) -> None:
        self._offset: int | None = None
        self._last_dts: int | None = None
        self._max_out: int | None = None
        self._last_out: int | None = None
        self._interval = DEFAULT_INTERVAL_TICKS
        self._last_now: int | None = None
        self.anchors = 0

    def _next_base(self, now: int | None) -> int:
        if self._max_out is None:
            return START_TICKS
        step = self._interval
        if now is not None and self._last_now is not None:
            step = max(step, now - self._last_now)
        return self._max_out + step

    def _emit(self, frame: Frame, out: int, now: int | None) -> int:
        if out == self._last_out:
            out += 1  # never repeat the previous timestamp: a receiver would merge the two AUs
        self._last_out = out
        self._max_out = out if self._max_out is None else max(self._max_out, out)
        self._last_dts = frame.dts
        self._last_now = now if now is not None else self._last_now
        return out

    def catch_up(self, frames: Sequence[Frame], now: int | None = None) -> list[int]:
        """RTP timestamps for a catch-up run (decode order), compressed to 1 ms apart.

        ``now`` is the caller's monotonic clock in 90 kHz ticks (optional). The live frames that
        follow are timed relative to the run's last frame.
        """
        if not frames:
            return []
        base = self._next_base(now)
        outs = [base + i * CATCHUP_STEP_TICKS for i in range(len(frames))]
        self._offset = outs[-1] - frames[-1].pts
        self._max_out = outs[-1] if self._max_out is None else max(self._max_out, outs[-1])
        self._last_out = outs[-1]
        self._last_dts = frames[-1].dts
        self._last_now = now if now is not None else self._last_now
        self.anchors += 1
        return outs

    def live(self, frame: Frame, now: int | None = None) -> int:
        """The RTP timestamp of the next live frame (decode order); ``now`` as in :meth:`catch_up`."""
        last = self._last_dts
        if self._offset is None or last is None or frame.dts < last or frame.dts - last > MAX_GAP_TICKS:
            self._offset = self._next_base(now) - frame.pts
            self.anchors += 1
        elif 0 < frame.dts - last <= 90_000:
            self._interval = frame.dts - last
        return self._emit(frame, frame.pts + self._offset, now)

    def reanchor(self) -> None:
        """Re-time from the next live frame (the source restarted its timestamps)."""
        self._offset = None
