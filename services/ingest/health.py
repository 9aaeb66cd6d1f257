"""Per-stream health figures: fps, bitrate, keyframe interval, frames lost/dropped, last-frame age.

One :class:`StreamHealth` per stream is fed by its :class:`~services.ingest.publisher.StreamPublisher`.
:meth:`StreamHealth.snapshot` gives the map that goes into ingest heartbeats
(``load.streams.<stream>``, keys in ``docs/bus.md``), into the ``health`` field of the stream's
info, and - through :class:`HealthCollector` - into Prometheus as gauges computed at scrape time.

Units: ``fps`` frames/s and ``bitrate`` bit/s over the last :data:`WINDOW_S` seconds of arrivals;
``keyframe_interval`` seconds between the last two keyframes (from their PTS, 90 kHz);
``last_frame_age`` seconds since the last frame arrived; ``frames``/``lost``/``dropped`` counts
since the process started (``lost``: frames the source lost before ingest saw them - RTP packet
loss reported by the WebRTC receiver, corrupt RTSP packets; ``dropped``: frames ingest discarded -
malformed, waiting for a keyframe, queue overflow, bus refused).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from services.common.frames import CLOCK_HZ

WINDOW_S = 5.0

#: ``state`` values: waiting for the source, publishing, ended, last attempt failed.
STATES = ("connecting", "up", "down", "error")


class StreamHealth:
    """Rolling figures of one stream; cheap to update once per frame."""

    def __init__(self, stream: str, source: str, codec: str = "") -> None:
        self.stream = stream
        self.source = source
        self.codec = codec
        self.width = 0
        self.height = 0
        self.state = "connecting"
        self.error = ""
        self.frames = 0
        self.bytes = 0
        self.lost = 0
        self.dropped = 0
        self.keyframes = 0
        self.reconnects = 0
        self._window: deque[tuple[float, int]] = deque()
        self._last_arrival: float | None = None
        self._key_pts: deque[int] = deque(maxlen=2)

    def on_frame(self, size: int, key: bool, pts: int, now: float | None = None) -> None:
        """Count one published frame of ``size`` bytes (``pts`` in 90 kHz ticks)."""
        t = time.monotonic() if now is None else now
        self.frames += 1
        self.bytes += size
        self._window.append((t, size))
        self._last_arrival = t
        if key:
            self.keyframes += 1
            self._key_pts.append(pts)
        self._trim(t)

    def on_lost(self, n: int = 1) -> None:
        self.lost += max(0, n)

    def on_dropped(self, n: int = 1) -> None:
        self.dropped += max(0, n)

    def set_state(self, state: str, error: str = "") -> None:
        """``state`` one of :data:`STATES`; ``error`` a sentence (no secrets) when it failed."""
        self.state = state
        self.error = error

    def _trim(self, now: float) -> None:
        while self._window and now - self._window[0][0] > WINDOW_S:
            self._window.popleft()

    def fps(self, now: float | None = None) -> float:
        t = time.monotonic() if now is None else now
        self._trim(t)
        n = len(self._window)
        if n < 2:
            return 0.0
        span = max(self._window[-1][0] - self._window[0][0], 1e-3)
        return (n - 1) / span

    def bitrate(self, now: float | None = None) -> float:
        """bit/s over the window (the first frame's bytes are excluded: they start the span)."""
        t = time.monotonic() if now is None else now
        self._trim(t)
        if len(self._window) < 2:
            return 0.0
        span = max(self._window[-1][0] - self._window[0][0], 1e-3)
        return 8.0 * sum(size for _, size in list(self._window)[1:]) / span

    def keyframe_interval(self) -> float:
        """Seconds between the last two keyframes (0 until two were seen)."""
        if len(self._key_pts) < 2:
            return 0.0
        return max(0.0, (self._key_pts[1] - self._key_pts[0]) / CLOCK_HZ)

    def last_frame_age(self, now: float | None = None) -> float:
        """Seconds since the last frame (-1 when none arrived yet)."""
        if self._last_arrival is None:
            return -1.0
        t = time.monotonic() if now is None else now
        return max(0.0, t - self._last_arrival)

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """The heartbeat map ``{fps, bitrate, keyframe_interval, frames, lost, dropped,
        last_frame_age, codec, width, height, source, state, error}``."""
        t = time.monotonic() if now is None else now
        return {
            "fps": round(self.fps(t), 2),
            "bitrate": int(self.bitrate(t)),
            "keyframe_interval": round(self.keyframe_interval(), 3),
            "frames": self.frames,
            "lost": self.lost,
            "dropped": self.dropped,
            "last_frame_age": round(self.last_frame_age(t), 3),
            "codec": self.codec,
            "width": self.width,
            "height": self.height,
            "source": self.source,
            "state": self.state,
            "error": self.error,
            "reconnects": self.reconnects,
        }


class HealthBoard:
    """The live :class:`StreamHealth` objects of this process (thread-safe registry)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: dict[str, StreamHealth] = {}

    def add(self, health: StreamHealth) -> None:
        with self._lock:
            self._streams[health.stream] = health

    def remove(self, health: StreamHealth) -> None:
        with self._lock:
            if self._streams.get(health.stream) is health:
                del self._streams[health.stream]

    def items(self) -> list[StreamHealth]:
        with self._lock:
            return list(self._streams.values())

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """``{stream: snapshot}`` for the heartbeat ``streams`` key."""
        now = time.monotonic()
        return {h.stream: h.snapshot(now) for h in self.items()}


BOARD = HealthBoard()


class HealthCollector(Collector):
    """Prometheus collector exporting :data:`BOARD` at scrape time (``camhub_ingest_*``)."""

    def collect(self) -> Iterator[Any]:
        now = time.monotonic()
        fps = GaugeMetricFamily("camhub_ingest_fps", "Frames per second over the last 5 s", labels=["stream"])
        bitrate = GaugeMetricFamily(
            "camhub_ingest_bitrate_bits_per_second", "Bitrate over the last 5 s", labels=["stream"]
        )
        keyint = GaugeMetricFamily(
            "camhub_ingest_keyframe_interval_seconds", "Seconds between the last two keyframes", labels=["stream"]
        )
        age = GaugeMetricFamily(
            "camhub_ingest_last_frame_age_seconds", "Seconds since the last frame", labels=["stream"]
        )
        up = GaugeMetricFamily("camhub_ingest_stream_up", "1 while the source publishes", labels=["stream", "source"])
        lost = CounterMetricFamily("camhub_ingest_frames_lost", "Frames lost by the source", labels=["stream"])
        dropped = CounterMetricFamily("camhub_ingest_frames_dropped", "Frames dropped by ingest", labels=["stream"])
        for h in BOARD.items():
            fps.add_metric([h.stream], h.fps(now))
            bitrate.add_metric([h.stream], h.bitrate(now))
            keyint.add_metric([h.stream], h.keyframe_interval())
            age.add_metric([h.stream], h.last_frame_age(now))
            up.add_metric([h.stream, h.source], 1.0 if h.state == "up" else 0.0)
            lost.add_metric([h.stream], h.lost)
            dropped.add_metric([h.stream], h.dropped)
        yield from (fps, bitrate, keyint, age, up, lost, dropped)


_registered: list[HealthCollector] = []


def register_collector() -> None:
    """Add :class:`HealthCollector` to prometheus-client's default registry (once per process)."""
    if not _registered:
        collector = HealthCollector()
        REGISTRY.register(collector)
        _registered.append(collector)
