"""Where each stream's packager left off, in KV ``camhub-hls`` (key = stream id).

Value (msgpack): ``{msn, dsn, dts, ts, instance}``: ``msn`` the next media sequence number a
successor must use, ``dsn`` the discontinuity sequence number of the last segment opened,
``dts`` the output-timeline tick (90 kHz) where that segment started, ``ts`` when it was written
(ms since the epoch), ``instance`` the writer.  The owner writes it each time it opens a
segment, *before* that segment can be listed, so a replica taking over after a crash starts
after every segment the old owner may have shown (docs/bus.md, "HLS").  The bucket keeps no
history and has no TTL: the media sequence also survives a full restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from services.common import codec
from services.common.bus import Bus
from services.common.subjects import KV_HLS
from services.hls.packager import Resume

log = logging.getLogger("camhub.hls.state")

#: A stored position older than this is not continued on the timeline (the media sequence is).
MAX_TIMELINE_GAP_S = 600.0


def resume_from(value: dict[str, object], now_ms: int) -> Resume | None:
    """A :class:`Resume` from a stored value, with ``dts`` moved past what the old owner could
    have produced since (media time runs at wall-clock speed, plus 1 s); None when malformed."""
    try:
        msn, dsn, dts, ts = (int(value[k]) for k in ("msn", "dsn", "dts", "ts"))  # type: ignore[call-overload]
    except (KeyError, TypeError, ValueError):
        return None
    if msn < 0 or dsn < 0:
        return None
    elapsed = max(0, now_ms - ts) / 1000.0
    start = dts + round((elapsed + 1.0) * 90_000) if elapsed <= MAX_TIMELINE_GAP_S and dts >= 0 else 0
    return Resume(msn, dsn, start)


async def load_resume(bus: Bus, stream: str) -> Resume | None:
    """The stored position of ``stream``, or None (first time, or unreadable)."""
    try:
        kv = await bus.kv(KV_HLS)
        entry = await kv.get(stream)
    except Exception:
        return None
    if not entry.value:
        return None
    try:
        return resume_from(codec.unpack_map(entry.value), int(time.time() * 1000))
    except codec.PayloadError:
        return None


class StateWriter:
    """Writes the newest :class:`Resume` of one stream; older pending values are skipped."""

    def __init__(self, bus: Bus, stream: str, instance: str) -> None:
        self.bus = bus
        self.stream = stream
        self.instance = instance
        self._latest: Resume | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.writes = 0

    def save(self, resume: Resume) -> None:
        """Queue ``resume`` for writing (returns at once)."""
        self._latest = resume
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"hls-state:{self.stream}")

    async def _write(self, resume: Resume) -> None:
        kv = await self.bus.kv(KV_HLS)
        body = {
            "msn": resume.msn,
            "dsn": resume.dsn,
            "dts": resume.dts,
            "ts": int(time.time() * 1000),
            "instance": self.instance,
        }
        await asyncio.wait_for(kv.put(self.stream, codec.pack(body)), 5.0)
        self.writes += 1

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            resume, self._latest = self._latest, None
            if resume is None:
                continue
            try:
                await self._write(resume)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cannot store HLS position of %s: %s", self.stream, exc)

    async def close(self, timeout: float = 2.0) -> None:
        """Write what is pending (bounded by ``timeout``), then stop."""
        if self._task is None:
            return
        pending, self._latest = self._latest, None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self._task = None
        if pending is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._write(pending), timeout)
