"""Publishing one printer's status: ``camhub.device.<id>.status`` + KV ``camhub-status``.

The JetStream stream ``CAMHUB_STATUS_HISTORY`` captures the same subject (24 h, for temperature
charts), so one publish feeds live subscribers and history.  Statuses are coalesced: at most one
per ``min_interval`` seconds (0.2 s -> <= 5/s per printer), and the newest one always wins, so
a burst of reports never queues stale statuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from nats.js.api import DiscardPolicy, StorageType, StreamConfig

from services.common import codec, subjects
from services.common.bus import Bus
from services.control.tasks import cancel_and_wait

log = logging.getLogger("camhub.control.publisher")

HISTORY_MAX_AGE_S = 24 * 3600.0


async def ensure_history_stream(bus: Bus, max_bytes: int) -> None:
    """Create (or update) the stream ``CAMHUB_STATUS_HISTORY`` on ``camhub.device.*.status``:
    24 h max age, ``max_bytes`` cap, oldest discarded first.

    Raises:
        nats.js.errors.Error: JetStream refused both create and update.
    """
    cfg = StreamConfig(
        name=subjects.STREAM_STATUS_HISTORY,
        subjects=[subjects.DEVICE_STATUS_ALL],
        max_age=HISTORY_MAX_AGE_S,
        max_bytes=max_bytes,
        storage=StorageType.FILE,
        num_replicas=bus.settings.kv_replicas,
        discard=DiscardPolicy.OLD,
    )
    try:
        await bus.js.add_stream(cfg)
    except Exception:
        await bus.js.update_stream(cfg)


class StatusPublisher:
    """Coalescing publisher for one device id."""

    def __init__(self, bus: Bus, device_id: str, min_interval: float = 0.2) -> None:
        self.bus = bus
        self.device_id = device_id
        self.subject = subjects.device_status(device_id)
        self.min_interval = min_interval
        self.published = 0
        self._latest: dict[str, Any] | None = None
        self._last_sent = 0.0
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def offer(self, status: dict[str, Any]) -> None:
        """Publish ``status`` as soon as the rate limit allows (replacing any not yet sent)."""
        if self._closed:
            return
        self._latest = status
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name=f"status:{self.device_id}")

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._latest is not None:
            wait = self._last_sent + self.min_interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            status, self._latest = self._latest, None
            if status is None:
                break
            self._last_sent = loop.time()
            await self._send(status)

    async def _send(self, status: dict[str, Any]) -> None:
        data = codec.pack(status)
        try:
            await self.bus.publish(self.subject, data, headers=codec.HEADERS)
            kv = await self.bus.kv(subjects.KV_STATUS)
            await kv.put(self.device_id, data)
            self.published += 1
        except Exception as exc:
            log.warning("status of %s not stored: %s", self.device_id, exc)

    async def publish_now(self, status: dict[str, Any]) -> None:
        """Publish ``status`` at once, after anything pending (a final status before handing over)."""
        await self.flush()
        self._latest = None
        await self._send(status)

    async def flush(self) -> None:
        """Wait until the pending status (if any) is sent."""
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task

    async def close(self) -> None:
        """Stop publishing; a pending status is dropped."""
        self._closed = True
        self._latest = None
        await cancel_and_wait(self._task)

    async def delete(self) -> None:
        """Remove the device's latest status from KV (the device was deleted)."""
        with contextlib.suppress(Exception):
            kv = await self.bus.kv(subjects.KV_STATUS)
            await kv.delete(self.device_id)


def now_ms() -> int:
    return int(time.time() * 1000)
