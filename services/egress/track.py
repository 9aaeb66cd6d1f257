"""The WHEP viewer's video track: bus access units handed to aiortc as ``av.Packet``, never decoded.

aiortc's ``RTCRtpSender._next_encoded_frame`` calls ``track.recv()``; for anything that is not an
``av.Frame`` it calls the codec's ``pack()`` (H.264: RFC 6184 FU-A/STAP-A, VP8: RFC 7741, AV1:
:mod:`services.egress.av1`) instead of an encoder (``shared/research/feasibility_probe.md`` 4).
So :meth:`BusTrack.recv` returns the access unit's bytes as an ``av.Packet`` with ``pts`` in
90 kHz ticks and ``time_base = 1/90000``.

Latency: the sender loop sends every RTP packet of an access unit before it calls ``recv()``
again, so the time of the next ``recv()`` call is when the previous access unit's last RTP packet
left; :attr:`BusTrack.latency` keeps ``that - Camhub-Ts`` (ms, the ingest's wall clock when the
frame entered camhub) for live frames, and ``camhub_latency_seconds{step="egress_send"}`` too.

The catch-up run (cached GOP) is paced at ``catchup_bitrate`` so a burst of several hundred kB
does not overflow the viewer's UDP receive buffer; live frames go out as soon as they arrive.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from services.common import metrics
from services.common.frames import Frame
from services.egress.queue import Outgoing, ViewerQueue

TIME_BASE = Fraction(1, 90_000)


def now_ticks() -> int:
    """The monotonic clock in 90 kHz ticks."""
    return time.monotonic_ns() * 9 // 100_000


class LatencyWindow:
    """The last ``size`` latency samples (ms) and their percentiles."""

    def __init__(self, size: int = 2048) -> None:
        self._samples: deque[float] = deque(maxlen=size)

    def add(self, ms: float) -> None:
        self._samples.append(ms)

    def summary(self) -> dict[str, float | int]:
        """``{n, p50, p99, max}`` in ms (zeros when empty)."""
        if not self._samples:
            return {"n": 0, "p50": 0.0, "p99": 0.0, "max": 0.0}
        s = sorted(self._samples)
        n = len(s)

        def pct(q: float) -> float:
            return round(s[min(n - 1, int(q * (n - 1) + 0.5))], 3)

        return {"n": n, "p50": pct(0.50), "p99": pct(0.99), "max": round(s[-1], 3)}


class Pacer:
    """Token-bucket pacing of a burst: :meth:`delay` says how long to wait before ``nbytes`` go."""

    def __init__(self, bitrate: int) -> None:
        self.rate = bitrate / 8.0
        self._next: float | None = None

    def delay(self, nbytes: int, now: float) -> float:
        """Seconds to wait (0 when within budget) before sending ``nbytes`` at time ``now`` (s)."""
        start = now if self._next is None else max(now, self._next)
        self._next = start + nbytes / self.rate
        return start - now

    def reset(self) -> None:
        self._next = None


class BusTrack(MediaStreamTrack):  # type: ignore[misc]
    """A video track fed from the bus through a :class:`ViewerQueue`.

    Args:
        queue: this viewer's queue.
        snapshot: returns the stream's cached GOP (called when the sender first asks for media).
        catchup_bitrate: pacing of catch-up runs, bit/s.
    """

    kind = "video"

    def __init__(self, queue: ViewerQueue, snapshot: Callable[[], Sequence[Frame]], catchup_bitrate: int) -> None:
        super().__init__()
        self.queue = queue
        self._snapshot = snapshot
        self._ready = asyncio.Event()
        self._pacer = Pacer(catchup_bitrate)
        self._previous: Outgoing | None = None
        self.latency = LatencyWindow()
        self.frames_sent = 0
        self.keyframes_sent = 0
        self.bytes_sent = 0
        #: monotonic times (s): first ``recv()``, last access unit handed to the sender, and the
        #: start of the current run of sending (after a pause of more than 1 s)
        self.started_at: float | None = None
        self.last_sent_at: float | None = None
        self.sending_since: float | None = None

    def push(self, frame: Frame) -> bool:
        """Offer a live frame to this viewer; True when queued."""
        queued = self.queue.push(frame, now_ticks())
        if queued:
            self._ready.set()
        return queued

    def restart(self, gop: Sequence[Frame]) -> None:
        """Restart from ``gop`` (a PLI/FIR from the viewer): catch-up run, or wait for a keyframe."""
        if self.queue.started:
            self.queue.start(gop, now_ticks())
            self._ready.set()

    def pause(self) -> None:
        """The source went away: drop what is queued; resume at the next keyframe."""
        self.queue.pause()

    def stop(self) -> None:
        super().stop()
        self._ready.set()

    def _account(self, now_ns: int) -> None:
        item, self._previous = self._previous, None
        if item is None or item.catch_up:
            return
        ms = (now_ns - item.frame.ts_ns) / 1e6
        if ms >= 0:
            self.latency.add(ms)
            metrics.LATENCY.labels("egress_send").observe(ms / 1000)

    async def recv(self) -> Any:
        """The next access unit as an ``av.Packet`` (``pts`` 90 kHz, ``time_base`` 1/90000).

        Raises:
            MediaStreamError: the track was stopped (the session is closing).
        """
        self._account(time.time_ns())
        # aiortc's sender sends a whole access unit without ever suspending (the UDP send is
        # synchronous), and so would a queue of them: yield once per access unit so the bus
        # reader, the feed and the other viewers' senders get their turn
        await asyncio.sleep(0)
        if not self.queue.started:
            self.started_at = time.monotonic()
            self.queue.start(self._snapshot(), now_ticks())
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            item = self.queue.pop()
            if item is not None:
                break
            self._ready.clear()
            await self._ready.wait()
        if item.catch_up:
            wait = self._pacer.delay(len(item.frame.data), time.monotonic())
            if wait > 0:
                await asyncio.sleep(wait)
        else:
            self._pacer.reset()
        packet = av.Packet(item.frame.data)
        packet.pts = item.ts
        packet.time_base = TIME_BASE
        now = time.monotonic()
        if self.last_sent_at is None or now - self.last_sent_at > 1.0:
            self.sending_since = now
        self.last_sent_at = now
        self.frames_sent += 1
        self.bytes_sent += len(item.frame.data)
        if item.frame.key:
            self.keyframes_sent += 1
        self._previous = item
        return packet
