"""HLS viewer counting: distinct clients that fetched a playlist in the last 10 s.

HLS has no session, so a viewer is a client id seen recently: the gateway passes one as
``client`` in the request map (e.g. a hash of the remote address and User-Agent); requests
without one count together as a single anonymous viewer.  The count feeds the heartbeat's
``viewers: {stream: n}`` (docs/bus.md, "Heartbeats").
"""

from __future__ import annotations

import time
from collections.abc import Callable

ANONYMOUS = ""


class ViewerCounter:
    """Distinct client ids seen within ``window`` seconds (``clock``: monotonic seconds)."""

    def __init__(self, window: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._seen: dict[str, float] = {}

    def seen(self, client: str | None) -> None:
        """Record a playlist request by ``client`` (None or "" = anonymous)."""
        self._seen[client[:128] if client else ANONYMOUS] = self._clock()

    def count(self) -> int:
        """Viewers now (expired ids are forgotten)."""
        cutoff = self._clock() - self.window
        for key in [k for k, t in self._seen.items() if t < cutoff]:
            del self._seen[key]
        return len(self._seen)
