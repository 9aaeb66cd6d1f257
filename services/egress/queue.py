"""The per-viewer frame queue: what one WHEP viewer is sent next, and when it must skip.

Policy (docs/bus.md "WHEP"):

* nothing is queued until the viewer's sender asks for its first frame (ICE and DTLS are done);
  then the queue :meth:`~ViewerQueue.start` s from the stream's cached GOP (a catch-up run, IDR
  first) or, with no GOP cached, waits for the next keyframe;
* live frames are queued as they arrive from the bus and sent as soon as the sender takes them;
* a viewer that falls behind (its oldest queued live frame has waited more than ``lag_ticks``) has
  its queue dropped and resumes at the next keyframe: a lagging viewer skips, it never delays the
  stream for others nor grows without bound;
* :meth:`~ViewerQueue.pause` (the source went away) empties the queue; the viewer resumes at the
  next keyframe of the returning source, its RTP timestamps continuing (see ``timeline.py``).

Pure logic (no asyncio, no clock): the async track in ``track.py`` wraps it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from services.common.frames import Frame
from services.egress.timeline import Timeline


@dataclass(slots=True)
class Outgoing:
    """One access unit to send: the bus frame, its RTP timestamp (90 kHz), and whether it is part
    of a catch-up run (cached frames, sent faster than real time; no latency is measured on them)."""

    frame: Frame
    ts: int
    catch_up: bool
    #: when it was queued (the caller's monotonic clock, 90 kHz ticks), or None
    queued_at: int | None = None


class ViewerQueue:
    """Frames waiting for one viewer's RTP sender.

    Args:
        lag_ticks: how long (90 kHz ticks of the caller's clock, or of decode time when no clock
            is given) the oldest queued live frame may wait before the viewer is lagging and skips
            to the next keyframe.
        max_items: hard bound on queued access units, whatever their timestamps say.
    """

    def __init__(self, lag_ticks: int, max_items: int = 2048) -> None:
        self.lag_ticks = lag_ticks
        self.max_items = max_items
        self.timeline = Timeline()
        self._items: deque[Outgoing] = deque()
        self._catchup_pending = 0
        self.started = False
        self.waiting_key = True
        #: live frames dropped because the viewer lagged
        self.dropped = 0
        #: frames not queued while waiting for a keyframe
        self.skipped = 0
        #: how many times the viewer lagged
        self.lags = 0
        #: starts and restarts (PLI) from the GOP cache
        self.restarts = 0

    def start(self, gop: Sequence[Frame], now: int | None = None) -> None:
        """(Re)start the viewer: queue ``gop`` (keyframe first) as a catch-up run, or wait for the
        next keyframe when ``gop`` is empty. Frames still queued are replaced (the GOP holds them).

        ``now`` is a monotonic clock in 90 kHz ticks (optional), used to keep RTP time in step
        with wall-clock time across pauses (``timeline.py``)."""
        self._items.clear()
        self._catchup_pending = 0
        self.started = True
        self.restarts += 1
        if gop and gop[0].key:
            for frame, ts in zip(gop, self.timeline.catch_up(gop, now), strict=True):
                self._items.append(Outgoing(frame, ts, True))
            self._catchup_pending = len(gop)
            self.waiting_key = False
        else:
            self.waiting_key = True

    def push(self, frame: Frame, now: int | None = None) -> bool:
        """Queue a live frame; False when it was not queued (not started, waiting for a keyframe,
        or the viewer lagged and skips). ``now`` as in :meth:`start`."""
        if not self.started:
            return False
        if self.waiting_key:
            if not frame.key:
                self.skipped += 1
                return False
            self.waiting_key = False
        if self._lagging(frame, now):
            live = len(self._items) - self._catchup_pending
            self.dropped += live
            self.lags += 1
            self._items.clear()
            self._catchup_pending = 0
            if not frame.key:
                self.waiting_key = True
                self.dropped += 1
                return False
        self._items.append(Outgoing(frame, self.timeline.live(frame, now), False, now))
        return True

    def _lagging(self, frame: Frame, now: int | None) -> bool:
        """The oldest queued live frame has waited more than ``lag_ticks`` (by the caller's clock;
        without one, by decode time: less robust, a source may repeat timestamps)."""
        if len(self._items) >= self.max_items:
            return True
        if len(self._items) <= self._catchup_pending:
            return False
        first_live = self._items[self._catchup_pending]
        if now is not None and first_live.queued_at is not None:
            return now - first_live.queued_at > self.lag_ticks
        return frame.dts - first_live.frame.dts > self.lag_ticks

    def pop(self) -> Outgoing | None:
        """The next access unit to send, or None when the queue is empty."""
        if not self._items:
            return None
        item = self._items.popleft()
        if item.catch_up:
            self._catchup_pending -= 1
        return item

    def pause(self) -> None:
        """The source went away: empty the queue and resume at the next keyframe."""
        self._items.clear()
        self._catchup_pending = 0
        self.waiting_key = True
        self.timeline.reanchor()

    def skip_to_keyframe(self) -> None:
        """Frames were lost upstream: keep what is queued, accept nothing until the next keyframe
        (a decoder fed past the hole would show corrupt pictures; the RTP sequence numbers give it
        no hint of the loss, which happened before packetization)."""
        if self.started:
            self.waiting_key = True

    def reanchor(self) -> None:
        """The source's timestamps restarted: keep the queue, re-time from the next live frame."""
        self.timeline.reanchor()

    def __len__(self) -> int:
        return len(self._items)
