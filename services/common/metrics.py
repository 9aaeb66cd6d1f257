"""Prometheus metrics shared by the services (prometheus-client's default registry).

Names follow Prometheus conventions: ``camhub_<thing>_<unit>_total`` for counters.  Each
service exports them on ``CAMHUB_METRICS_PORT`` when set; the gateway also serves its own on
``/metrics`` plus per-stream health learned from heartbeats.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

FRAMES_IN = Counter("camhub_frames_in_total", "Access units received from sources", ["stream"])
FRAMES_OUT = Counter("camhub_frames_published_total", "Access units published on the bus", ["stream"])
FRAMES_DROPPED = Counter(
    "camhub_frames_dropped_total", "Frames dropped (malformed, oversize, slow consumer)", ["service", "reason"]
)
BYTES_IN = Counter("camhub_bytes_in_total", "Access-unit bytes received from sources", ["stream"])
STREAM_UP = Gauge("camhub_stream_up", "1 while a source is connected", ["stream"])
VIEWERS = Gauge("camhub_viewers", "Viewers per stream and path", ["stream", "path"])
REQUESTS = Counter("camhub_bus_requests_total", "Bus requests handled", ["service", "endpoint", "outcome"])
LATENCY = Histogram(
    "camhub_latency_seconds",
    "Processing latency of camhub steps",
    ["step"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Expose the default registry on ``http://host:port/metrics`` (no-op when port is 0)."""
    if port:
        start_http_server(port, addr=host)
