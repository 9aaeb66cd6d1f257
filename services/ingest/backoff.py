"""Reconnect delays: exponential from 1 s to 30 s with +-10 % jitter (capped at 30 s), reset after success.

Used by every pulled source (RTSP, the Bambu port-6000 camera): the first failed connect waits
1 s, then 2, 4, 8, 16, 30, 30, ... seconds; :meth:`Backoff.reset` after a connection delivered
frames, so a source that comes back after a short outage is retried within about a second.
"""

from __future__ import annotations

import random


class Backoff:
    """Delays in seconds; :meth:`next` returns the one to wait now."""

    def __init__(self, initial: float = 1.0, maximum: float = 30.0, factor: float = 2.0, jitter: float = 0.1) -> None:
        if initial <= 0 or maximum < initial or factor < 1:
            raise ValueError("backoff needs 0 < initial <= maximum and factor >= 1")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self.attempt = 0

    def next(self) -> float:
        """The delay before the next attempt (and count the attempt)."""
        base = min(self.maximum, self.initial * self.factor**self.attempt)
        self.attempt += 1
        return min(self.maximum, base * (1 + random.uniform(-self.jitter, self.jitter)))

    def reset(self) -> None:
        """Start again from ``initial`` (call once a connection worked)."""
        self.attempt = 0
