"""Spotting access units that reach the egress late: the process is behind (CPU-starved, or the bus
delivered a backlog), so sending them would only add delay for every viewer of the stream.

A frame's age is ``now - Camhub-Ts`` (the ingest's wall clock when it entered camhub). Clocks of
two hosts may differ, so the age is judged against the smallest age seen recently (the
baseline: base latency + clock offset): a frame more than ``max_late_ns`` older than the baseline is
late. The baseline is the minimum over the current and the previous window of ``window_s``
(10) seconds: long enough that a delay building up over several seconds (this process starved
of CPU, a backlog in the TCP path from nats-server, invisible to the subscription's pending
count) is caught, short enough that after the ingest host's clock is stepped back frames are
judged late for at most two windows (20 s; NTP normally slews, it steps only at boot).

Pure logic: the caller passes the times.
"""

from __future__ import annotations


class LateDetector:
    """Decides whether a frame arrived late.

    Args:
        max_late_ns: how much older than the baseline a frame may be, ns.
        window_s: length of a baseline window, seconds (the baseline spans 1-2 windows).
    """

    def __init__(self, max_late_ns: int, window_s: float = 10.0) -> None:
        self.max_late_ns = max_late_ns
        self.window_s = window_s
        self._window_start: float | None = None
        self._cur: int | None = None
        self._prev: int | None = None

    def late(self, age_ns: int, now_s: float) -> bool:
        """Record a frame of age ``age_ns`` (ns) arriving at ``now_s`` (monotonic s); True if late."""
        if self._window_start is None or now_s - self._window_start >= self.window_s:
            self._prev, self._cur = self._cur, None
            self._window_start = now_s
        self._cur = age_ns if self._cur is None else min(self._cur, age_ns)
        baseline = self._cur if self._prev is None else min(self._cur, self._prev)
        return age_ns - baseline > self.max_late_ns
