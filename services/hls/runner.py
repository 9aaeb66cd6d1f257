"""One stream in the hls service: contend for its lease; while owner, package and serve it.

DESIGN.md section 4: exactly one hls instance packages a stream, the holder of KV lease
``hls.<stream>``.  Every instance that sees the stream up contends; the owner

* loads where the previous owner stopped (:mod:`services.hls.state`) so the media sequence
  continues (with a discontinuity), and asks the source for a keyframe
  (``keyframe-request`` event) so the first segment comes soon;
* subscribes ``camhub.media.<stream>.*`` (frames, info and events in publish order) and
  ``camhub.hls.<stream>.get`` (plain subscription, not a micro endpoint);
* answers each request in its own task (a blocking playlist request must not hold up the others),
  at most :data:`MAX_REQUESTS` at a time (then 503);
* completes the open segment when the source goes ``down`` or sends nothing for
  :data:`STALL_SECONDS` (so every frame received is listed).

Replies larger than the server's ``max_payload`` go out in chunks: the reply carries
``Camhub-Total`` (bytes) and ``Camhub-Offset``, and the client asks again with ``offset``
(:func:`services.hls.client.hls_get` does this).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from services.common import codec, subjects
from services.common.bus import Bus
from services.common.frames import FrameAssembler, FrameError
from services.common.ids import validate_id
from services.common.lease import Lease
from services.common.settings import Settings
from services.common.streams import StreamInfo, publish_event
from services.hls import names
from services.hls.endpoint import HlsEndpoint, Reply, error_reply
from services.hls.mirror import DiskMirror
from services.hls.packager import PackagerConfig, StreamPackager, Update
from services.hls.state import StateWriter, load_resume
from services.hls.viewers import ViewerCounter
from services.hls.wire import H_OFFSET, H_TOTAL

log = logging.getLogger("camhub.hls.runner")

MAX_REQUESTS = 2000
STALL_SECONDS = 5.0
HEADER_ROOM = 8192


def packager_config(settings: Settings) -> PackagerConfig:
    return PackagerConfig(
        segment_seconds=settings.hls_segment_seconds,
        part_seconds=settings.hls_part_seconds,
        window=settings.hls_window,
        low_latency=settings.hls_low_latency,
    )


def max_wait(settings: Settings) -> float:
    """Longest wait before a 503, s: below the gateway's timeout of 3 x target + 2 s."""
    return 3 * math.ceil(settings.hls_segment_seconds) + 1.0


class StreamRunner:
    """Lease, packager, subscriptions and request tasks of one stream on this instance.

    ``on_change`` is called when ownership or the viewer count may have changed (the service
    then sends a heartbeat).
    """

    def __init__(
        self,
        bus: Bus,
        settings: Settings,
        instance: str,
        stream: str,
        *,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.bus = bus
        self.settings = settings
        self.instance = instance
        self.stream = validate_id(stream, "stream id")
        self._on_change = on_change
        self.lease = Lease(bus, f"hls.{stream}", instance, on_acquired=self._acquired, on_lost=self._lost)
        self.info: StreamInfo | None = None
        self.down_since: float | None = None
        self.packager: StreamPackager | None = None
        self.endpoint: HlsEndpoint | None = None
        self.viewers = ViewerCounter()
        self.mirror: DiskMirror | None = None
        self.state: StateWriter | None = None
        self.bad_messages = 0
        self._assembler = FrameAssembler()
        self._subs: list[Subscription] = []
        self._requests: set[asyncio.Task[None]] = set()
        self._last_frame = time.monotonic()
        self._restart: asyncio.Task[None] | None = None

    @property
    def owner(self) -> bool:
        return self.packager is not None

    def start(self) -> None:
        """Start contending for the lease."""
        self.lease.start()

    async def stop(self) -> None:
        """Stop contending; as owner, release the lease so another replica takes over at once."""
        await self.lease.stop(release=True)

    def update_info(self, info: StreamInfo, *, in_order: bool = False) -> None:
        """New StreamInfo.  ``in_order``: it came on the owner's ``camhub.media.<stream>.*``
        subscription, in order with the frames, so ``up: false`` may end the open segment (from
        KV or the service-wide subscription it might overtake the source's last frames)."""
        self.info = info
        if self.packager is not None:
            self.packager.set_source(info.codec, info.width, info.height, info.config)
        if info.up:
            self.down_since = None
            return
        if self.down_since is None:
            self.down_since = time.monotonic()
        if in_order and self.packager is not None and self.packager.window.open is not None:
            self._apply(self.packager.end())

    def tick(self, now: float) -> None:
        """Housekeeping (about once a second): end a segment whose source stalled."""
        pk = self.packager
        if pk is not None and pk.window.open is not None and now - self._last_frame > STALL_SECONDS:
            self._apply(pk.end())

    # ---- ownership ------------------------------------------------------------------

    async def _acquired(self) -> None:
        resume = await load_resume(self.bus, self.stream)
        pk = StreamPackager(self.stream, packager_config(self.settings), resume=resume)
        if self.info is not None:
            pk.set_source(self.info.codec, self.info.width, self.info.height, self.info.config)
        self.endpoint = HlsEndpoint(pk, max_wait=max_wait(self.settings))
        self.state = StateWriter(self.bus, self.stream, self.instance)
        if self.settings.hls_dir:
            self.mirror = DiskMirror(Path(self.settings.hls_dir) / self.stream)
            self.mirror.start()
        self._assembler = FrameAssembler()
        self._last_frame = time.monotonic()
        self.packager = pk
        try:
            self._subs = [
                await self.bus.subscribe(subjects.media_all(self.stream), self._on_media),
                await self.bus.subscribe(subjects.hls_get(self.stream), self._on_get),
            ]
        except Exception as exc:
            # Holding the lease without serving would block the stream: give it up, contend again.
            log.warning("cannot serve %s: %s; releasing its lease", self.stream, exc)
            self._restart = asyncio.create_task(self._restart_lease(), name=f"hls-lease:{self.stream}")
            return
        log.info(
            "packaging %s from media sequence %d",
            self.stream,
            resume.msn if resume else 0,
            extra={"stream": self.stream},
        )
        with contextlib.suppress(Exception):
            await publish_event(self.bus, self.stream, "keyframe-request", by="hls")
        self._on_change()

    async def _restart_lease(self) -> None:
        await self.lease.stop(release=True)
        self.lease = Lease(
            self.bus, f"hls.{self.stream}", self.instance, on_acquired=self._acquired, on_lost=self._lost
        )
        await asyncio.sleep(1.0)
        self.lease.start()

    async def _lost(self) -> None:
        subs, self._subs = self._subs, []
        for sub in subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        for task in list(self._requests):
            task.cancel()
        if self._requests:
            await asyncio.wait(list(self._requests), timeout=2.0)
        self.packager = None
        self.endpoint = None
        state, self.state = self.state, None
        if state is not None:
            await state.close()
        mirror, self.mirror = self.mirror, None
        if mirror is not None:
            await mirror.close()
        log.info("stopped packaging %s", self.stream, extra={"stream": self.stream})
        self._on_change()

    # ---- media ------------------------------------------------------------------------

    def _apply(self, update: Update) -> None:
        pk = self.packager
        if pk is None:
            return
        if update.changed and self.endpoint is not None:
            self.endpoint.notify()
        if self.mirror is not None:
            self.mirror.apply(pk, update)
        if update.opened and self.state is not None:
            self.state.save(pk.resume_state())

    async def _on_media(self, msg: Msg) -> None:
        pk = self.packager
        if pk is None:
            return
        kind = msg.subject.rsplit(".", 1)[-1]
        if kind == "frames":
            try:
                frame = self._assembler.push(msg.headers, msg.data)
            except FrameError:
                self.bad_messages += 1
                return
            if frame is not None:
                self._last_frame = time.monotonic()
                self.down_since = None
                self._apply(pk.push(frame))
            return
        try:
            body = codec.unpack_map(msg.data)
        except codec.PayloadError:
            self.bad_messages += 1
            return
        if kind == "events":
            self._on_event(pk, body)
        elif kind == "info":
            try:
                self.update_info(StreamInfo.model_validate(body), in_order=True)
            except ValueError:
                self.bad_messages += 1

    def _on_event(self, pk: StreamPackager, body: dict[str, Any]) -> None:
        kind = body.get("type")
        if kind == "discontinuity":
            self._apply(pk.discontinuity())
        elif kind == "down":
            self.down_since = time.monotonic()
            self._apply(pk.end())
        elif kind == "up":
            self.down_since = None

    # ---- requests -----------------------------------------------------------------------

    async def _on_get(self, msg: Msg) -> None:
        if not msg.reply:
            return
        if len(self._requests) >= MAX_REQUESTS:
            await self._send(msg, error_reply(503, f"too many requests waiting on stream {self.stream}"), 0)
            return
        task = asyncio.create_task(self._serve(msg), name=f"hls-get:{self.stream}")
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)

    async def _serve(self, msg: Msg) -> None:
        try:
            reply, offset = await self._answer(msg)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await self._send(msg, error_reply(503, f"stream {self.stream} is moving to another replica; retry"), 0)
            raise
        except Exception as exc:
            log.exception("HLS request on %s failed", self.stream)
            reply, offset = error_reply(500, f"internal error: {type(exc).__name__}"), 0
        await self._send(msg, reply, offset)

    async def _answer(self, msg: Msg) -> tuple[Reply, int]:
        endpoint = self.endpoint
        if endpoint is None:
            return error_reply(503, f"stream {self.stream} is moving to another replica; retry"), 0
        try:
            req = codec.unpack_map(msg.data)
        except codec.PayloadError as exc:
            return error_reply(400, f"request must be a msgpack map {{path, query}}: {exc}"), 0
        path, query, offset = req.get("path"), req.get("query") or {}, req.get("offset", 0)
        if not isinstance(path, str) or not path:
            return error_reply(400, "request needs path (a string)"), 0
        if not isinstance(query, dict) or not all(isinstance(k, str) for k in query):
            return error_reply(400, "query must be a map of strings"), 0
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            return error_reply(400, "offset must be a non-negative integer"), 0
        if path in (names.PLAYLIST, names.PLAYLIST_LL):
            client = req.get("client")
            before = self.viewers.count()
            self.viewers.seen(client if isinstance(client, str) else None)
            if self.viewers.count() != before:
                self._on_change()
        return await endpoint.handle(path, query), offset

    async def _send(self, msg: Msg, reply: Reply, offset: int) -> None:
        limit = max(1024, self.bus.max_payload - HEADER_ROOM)
        body, headers = reply.body, reply.bus_headers()
        if len(body) > limit or offset:
            if offset >= len(body) and reply.status == 200:
                reply = error_reply(400, f"offset {offset} is past the end ({len(body)} bytes)")
                body, headers = reply.body, reply.bus_headers()
            else:
                headers[H_TOTAL] = str(len(body))
                headers[H_OFFSET] = str(offset)
                body = body[offset : offset + limit]
        with contextlib.suppress(Exception):
            await self.bus.publish(msg.reply, body, headers=headers)
