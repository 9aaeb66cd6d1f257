"""The ``camhub.ingest.push.<stream>`` endpoint: frames POSTed to the gateway, published here.

Per request (body = the frame bytes, headers as in docs/bus.md "Push"):

1. :func:`~services.ingest.push.parse_push` validates it (415/413/400);
2. :func:`~services.ingest.access.check_publisher` checks the registry entry and ``Camhub-Token``
   (401/409);
3. the frame goes to this instance's :class:`PushStream` for the stream (created on the first
   push, holding lease ``ingest.<stream>``); when another ingest replica holds the lease, the
   request is forwarded to it on ``camhub.ingest.forward.<instance>`` so one publisher numbers
   the stream; when a non-push source holds it, 409;
4. the reply is ``{ok: true, viewers, status}``: 200 with viewers (heartbeats,
   :class:`~services.common.streams.HeartbeatBoard`), 202 with none.

A push stream with no frame for ``CAMHUB_PUSH_IDLE_SECONDS`` ends (``down``, lease released).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from nats.aio.msg import Msg

from services.common import codec, subjects
from services.common.bus import Bus, BusError
from services.common.ids import InvalidId, validate_id
from services.common.lease import Lease, lease_owner
from services.common.streams import HeartbeatBoard
from services.ingest.access import DeviceCache, check_publisher, claim_stream, lease_key
from services.ingest.publisher import StreamPublisher
from services.ingest.push import PushError, header, parse_push

log = logging.getLogger("camhub.ingest.push")

H_STREAM = "Camhub-Stream"


class PushStream:
    """One pushed stream owned by this instance: publisher + lease + idle timer."""

    def __init__(self, bus: Bus, stream: str, owner: str, idle_s: float) -> None:
        self.stream = stream
        self.publisher = StreamPublisher(bus, stream, "push", owner)
        self.lease: Lease | None = None
        self.idle_s = idle_s
        self.last = time.monotonic()
        self.closed = False
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def start_idle_timer(self, on_idle: Any) -> None:
        async def watch() -> None:
            while not self.closed:
                await asyncio.sleep(min(1.0, self.idle_s / 4))
                if time.monotonic() - self.last > self.idle_s:
                    await on_idle(self, f"no frame pushed for {self.idle_s:g} s")
                    return

        self._task = asyncio.create_task(watch(), name=f"push-idle:{self.stream}")

    async def publish(self, frame: Any) -> None:
        async with self._lock:  # requests for one stream may overlap; keep their order
            self.last = time.monotonic()
            if not self.publisher.live:
                await self.publisher.start(frame.codec, reason="push restarted")
            await self.publisher.publish(frame)

    async def close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        await self.publisher.stop(reason)
        self.publisher.close()
        if self.lease is not None:
            lease, self.lease = self.lease, None
            await lease.stop()


class PushIngest:
    """Handles push requests for one ingest instance."""

    def __init__(
        self, bus: Bus, instance: str, devices: DeviceCache, board: HeartbeatBoard, max_bytes: int, idle_s: float
    ) -> None:
        self.bus = bus
        self.instance = instance
        self.devices = devices
        self.board = board
        self.max_bytes = max_bytes
        self.idle_s = idle_s
        self.streams: dict[str, PushStream] = {}
        self._claiming: dict[str, asyncio.Lock] = {}
        self._closing: dict[str, asyncio.Event] = {}
        self.forwarded = 0

    def forward_subject(self) -> str:
        return subjects.ingest_forward(self.instance)

    async def handle(
        self, stream: str, headers: dict[str, str], body: bytes, forwarded: bool = False
    ) -> dict[str, Any]:
        """The reply map for one pushed frame (never raises for bad input)."""
        try:
            validate_id(stream, "stream id")
        except InvalidId as exc:
            return {"ok": False, "error": str(exc), "status": 400}
        try:
            frame = parse_push(headers, body, self.max_bytes)
        except PushError as exc:
            return {"ok": False, "error": str(exc), "status": exc.status}
        denied = check_publisher(self.devices.get(stream), "push", header(headers, "Camhub-Token"))
        if denied is not None:
            return {"ok": False, "error": denied[1], "status": denied[0]}
        ps = self.streams.get(stream)
        if ps is None:
            if forwarded:
                return {"ok": False, "error": f"stream {stream} is not pushed through this ingest", "status": 409}
            closing = self._closing.get(stream)
            if closing is not None:  # the previous push stream is still releasing its lease
                await closing.wait()
            lock = self._claiming.setdefault(stream, asyncio.Lock())
            async with lock:
                ps = self.streams.get(stream)
                if ps is None:
                    ps = await self._claim(stream)
            if ps is None:
                return await self._forward(stream, headers, body)
        await ps.publish(frame)
        viewers = self.board.viewers(stream)
        return {"ok": True, "viewers": viewers, "status": 200 if viewers > 0 else 202}

    async def _claim(self, stream: str) -> PushStream | None:
        ps = PushStream(self.bus, stream, self.instance, self.idle_s)

        async def lost() -> None:
            ps.lease = None
            await self._end(ps, "lease lost")

        lease = await claim_stream(self.bus, stream, self.instance, on_lost=lost)
        if lease is None:
            ps.publisher.close()
            return None
        ps.lease = lease
        self.streams[stream] = ps
        ps.start_idle_timer(self._end)
        log.info("push stream %s started", stream)
        return ps

    async def _end(self, ps: PushStream, reason: str) -> None:
        if self.streams.get(ps.stream) is ps:
            del self.streams[ps.stream]
        done = self._closing.setdefault(ps.stream, asyncio.Event())
        try:
            await ps.close(reason)
        finally:
            done.set()
            if self._closing.get(ps.stream) is done:
                del self._closing[ps.stream]

    async def _forward(self, stream: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        owner = await lease_owner(self.bus, lease_key(stream))
        if not owner or owner == self.instance:
            return {"ok": False, "error": f"stream {stream} is being published by another source", "status": 409}
        fwd = dict(headers)
        fwd[H_STREAM] = stream
        try:
            msg = await self.bus.request(subjects.ingest_forward(owner), body, headers=fwd, timeout=5.0)
            return codec.unpack_map(msg.data)
        except (BusError, codec.PayloadError):
            return {"ok": False, "error": f"stream {stream} is being published by another source", "status": 409}

    async def on_forward(self, msg: Msg) -> None:
        """Handler of ``camhub.ingest.forward.<this instance>``."""
        self.forwarded += 1
        headers = dict(msg.headers or {})
        reply = await self.handle(headers.pop(H_STREAM, ""), headers, msg.data, forwarded=True)
        if msg.reply:
            await self.bus.publish(msg.reply, codec.pack(reply), headers=codec.HEADERS)

    async def close(self) -> None:
        for ps in list(self.streams.values()):
            with contextlib.suppress(Exception):
                await self._end(ps, "ingest stopping")
