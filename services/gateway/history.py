"""Printer status history for charts: read JetStream ``CAMHUB_STATUS_HISTORY`` and downsample.

The stream (written by control, subjects ``camhub.device.*.status``, 24 h) is read from
``now - minutes`` with an ephemeral pull consumer (no acks, deleted after 5 s idle), at most
:data:`MAX_READ` messages.  :func:`downsample` is pure: equal time buckets, numeric chart fields
averaged per bucket, the rest taken from the bucket's last sample, at most ``max_points`` points.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from services.common import codec, subjects
from services.common.bus import Bus

MAX_READ = 50_000
CHART_FIELDS = (
    "percent",
    "remainingMinutes",
    "nozzleC",
    "nozzleTargetC",
    "bedC",
    "bedTargetC",
    "chamberC",
    "layer",
    "speedLevel",
)
LAST_FIELDS = ("jobState", "state", "connected", "totalLayers")

Sample = tuple[int, dict[str, Any]]


def downsample(samples: list[Sample], max_points: int, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
    """Bucket ``samples`` (``(ts_ms, status)`` in time order) into at most ``max_points`` points
    ``{ts, <chart fields averaged>, <LAST_FIELDS from the last sample>}`` between ``start_ms`` and
    ``end_ms``; empty buckets are left out."""
    if not samples or max_points < 1:
        return []
    width = max(1.0, (end_ms - start_ms) / max_points)
    buckets: dict[int, list[Sample]] = {}
    for ts, status in samples:
        idx = min(max_points - 1, max(0, int((ts - start_ms) // width)))
        buckets.setdefault(idx, []).append((ts, status))
    points = []
    for idx in sorted(buckets):
        group = buckets[idx]
        point: dict[str, Any] = {"ts": group[-1][0]}
        for name in CHART_FIELDS:
            values = [
                float(s[name])
                for _, s in group
                if isinstance(s.get(name), int | float)
                and not isinstance(s.get(name), bool)
                and math.isfinite(float(s[name]))
            ]
            if values:
                point[name] = round(sum(values) / len(values), 2)
        last = group[-1][1]
        for name in LAST_FIELDS:
            if name in last:
                point[name] = last[name]
        points.append(point)
    return points


async def read_history(bus: Bus, device_id: str, minutes: int) -> list[Sample]:
    """Stored statuses of ``device_id`` from the last ``minutes`` (empty when the stream is absent).

    Raises:
        BusError, nats errors: JetStream unreachable.
    """
    subject = subjects.device_status(device_id)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes)
    try:
        await bus.js.stream_info(subjects.STREAM_STATUS_HISTORY)
    except Exception as exc:
        if "not found" in str(exc).lower():
            return []
        raise
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_TIME,
        opt_start_time=start,
        ack_policy=AckPolicy.NONE,
        filter_subject=subject,
        inactive_threshold=5.0,
        max_waiting=1,
    )
    psub = await bus.js.pull_subscribe(subject, durable=None, stream=subjects.STREAM_STATUS_HISTORY, config=config)
    out: list[Sample] = []
    try:
        info = await psub.consumer_info()
        pending = int(info.num_pending or 0)
        while pending > 0 and len(out) < MAX_READ:
            msgs = await psub.fetch(batch=min(1000, pending), timeout=2.0)
            for msg in msgs:
                pending = int(msg.metadata.num_pending)
                try:
                    status = codec.unpack_map(msg.data)
                except codec.PayloadError:
                    continue
                ts = int(msg.metadata.timestamp.timestamp() * 1000)
                out.append((ts, status))
    finally:
        try:
            await psub.unsubscribe()
        except Exception:
            pass
    return out
