"""The hls service: MPEG-TS and LL-HLS packaging of every video stream on the bus.

It learns streams from KV ``camhub-streams`` (read at start and every :data:`RESCAN_SECONDS`)
and from ``camhub.media.*.info``.  For each stream that is up with a packageable codec
(H.264, H.265, AV1) it runs a :class:`~services.hls.runner.StreamRunner`, which contends for the
stream's lease; the owner packages the stream and answers ``camhub.hls.<stream>.get``
(docs/bus.md, "HLS").  A stream that has been down for ``CAMHUB_HLS_IDLE_SECONDS`` is dropped:
its lease is released and its muxers stop.  JPEG/WebP/VP8/VP9 streams are not packaged;
:func:`services.hls.client.hls_get` answers 404 with the reason.

Heartbeat load: ``viewers: {stream: n}`` (distinct HLS clients in the last 10 s, for the streams
this instance packages) and ``muxers: n`` (streams it packages); a heartbeat goes out at once
when either changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from nats.aio.msg import Msg

from services.common import codec, subjects
from services.common.ids import is_valid_id
from services.common.service import CamhubService, ServiceContext
from services.common.streams import StreamInfo, list_infos
from services.hls.runner import StreamRunner
from services.hls.wire import PACKAGED_CODECS

log = logging.getLogger("camhub.hls")

RESCAN_SECONDS = 5.0
TICK_SECONDS = 1.0


class HlsService(CamhubService):
    name = "hls"
    description = "camhub hls: MPEG-TS segments and LL-HLS fMP4 parts with blocking reload"

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.runners: dict[str, StreamRunner] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._last_load: dict[str, Any] = {}
        self._stopping = False

    async def start(self) -> None:
        await self.bus.subscribe(subjects.MEDIA_INFO_ALL, self._on_info)
        await self._rescan()
        self._tasks = [
            asyncio.create_task(self._every(RESCAN_SECONDS, self._rescan), name="hls-rescan"),
            asyncio.create_task(self._every(TICK_SECONDS, self._tick), name="hls-tick"),
        ]

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        runners = list(self.runners.values())
        self.runners.clear()
        if runners:
            await asyncio.gather(*(r.stop() for r in runners), return_exceptions=True)

    def load(self) -> dict[str, Any]:
        viewers = {s: r.viewers.count() for s, r in self.runners.items() if r.owner}
        return {"viewers": {s: n for s, n in viewers.items() if n}, "muxers": len(viewers)}

    # ---- stream discovery -------------------------------------------------------------

    def _changed(self) -> None:
        load = self.load()
        if load != self._last_load:
            self._last_load = load
            self.ctx.heartbeat_now()

    def _see(self, info: StreamInfo) -> None:
        if self._stopping or not is_valid_id(info.stream):
            return
        runner = self.runners.get(info.stream)
        if runner is None:
            if not info.up or info.codec not in PACKAGED_CODECS:
                return
            runner = StreamRunner(self.bus, self.settings, self.ctx.instance, info.stream, on_change=self._changed)
            self.runners[info.stream] = runner
            runner.update_info(info)
            runner.start()
            return
        runner.update_info(info)

    async def _on_info(self, msg: Msg) -> None:
        try:
            info = StreamInfo.model_validate(codec.unpack_map(msg.data))
        except (codec.PayloadError, ValueError):
            return
        self._see(info)

    async def _rescan(self) -> None:
        for info in await list_infos(self.bus):
            self._see(info)

    async def _tick(self) -> None:
        now = time.monotonic()
        idle = self.settings.hls_idle_seconds
        for stream, runner in list(self.runners.items()):
            runner.tick(now)
            if runner.down_since is not None and now - runner.down_since > idle:
                del self.runners[stream]
                log.info("stream %s down for %.0f s: muxer stopped", stream, idle, extra={"stream": stream})
                await runner.stop()
        self._changed()

    async def _every(self, seconds: float, job: Any) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("hls housekeeping failed")
