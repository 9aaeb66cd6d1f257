"""The ingest service: every way video enters camhub, published as frames on the bus.

* pulled sources that follow the registry (:mod:`services.ingest.sources`): RTSP/RTSPS cameras and
  printers (:mod:`services.ingest.rtsp`), the Bambu P1/A1 port-6000 JPEG camera
  (:mod:`services.ingest.bambu_camera`), one owner per source via KV leases;
* WHIP publish behind ``camhub.ingest.whip`` (:mod:`services.ingest.whip`), with camera commands
  over the peer's data channel (:mod:`services.ingest.cameras`);
* frames pushed over HTTP behind ``camhub.ingest.push.<stream>`` (:mod:`services.ingest.push_ingest`).

Heartbeats carry ``streams: {stream: health}`` (:mod:`services.ingest.health`) and
``sessions`` (live WHIP peers); Prometheus gets ``camhub_ingest_*`` gauges.  Every 5 s the stored
info of each live stream is refreshed with its current figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from nats.micro.request import Request

from services.common import codec, subjects
from services.common.service import CamhubService, ServiceContext
from services.common.streams import HeartbeatBoard
from services.ingest.access import DeviceCache
from services.ingest.cameras import CameraControls
from services.ingest.health import BOARD, register_collector
from services.ingest.publisher import StreamPublisher
from services.ingest.push_ingest import PushIngest
from services.ingest.sources import SourceManager
from services.ingest.whip import WhipIngest

log = logging.getLogger("camhub.ingest")

INFO_REFRESH_S = 5.0


class IngestService(CamhubService):
    name = "ingest"
    description = "camhub ingest: RTSP/RTSPS pull, WHIP publish, HTTP push, Bambu camera"

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.devices = DeviceCache()
        self.board = HeartbeatBoard()
        self.cameras = CameraControls(self.bus, timeout=self.settings.command_timeout_seconds)
        self.whip = WhipIngest(self.bus, self.settings, ctx.instance, self.cameras)
        self.push = PushIngest(
            self.bus,
            ctx.instance,
            self.devices,
            self.board,
            self.settings.push_max_bytes,
            self.settings.push_idle_seconds,
        )
        self.sources = SourceManager(self.bus, self.settings, ctx.instance, self.devices)
        self._tasks: list[asyncio.Task[None]] = []
        self._forward_sub: Any = None

    async def start(self) -> None:
        register_collector()
        await self.board.start(self.bus)
        await self.ctx.add_endpoint("whip", subjects.INGEST_WHIP, self._on_whip)
        await self.ctx.add_endpoint("push", subjects.INGEST_PUSH_ALL, self._on_push)
        self._forward_sub = await self.bus.subscribe(self.push.forward_subject(), self.push.on_forward)
        await self.sources.start()
        self._tasks.append(asyncio.create_task(self._refresh_infos(), name="info-refresh"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self._forward_sub is not None:
            with contextlib.suppress(Exception):
                await self._forward_sub.unsubscribe()
        await asyncio.gather(
            self.whip.close(), self.push.close(), self.sources.stop(), self.cameras.close(), return_exceptions=True
        )

    def load(self) -> dict[str, Any]:
        return {"streams": BOARD.snapshot(), "sessions": len(self.whip.sessions)}

    async def _respond(self, req: Request, reply: dict[str, Any]) -> None:
        await req.respond(codec.pack(reply), headers=codec.HEADERS)

    async def _on_whip(self, req: Request) -> None:
        await self._respond(req, await self.whip.handle(req.data))

    async def _on_push(self, req: Request) -> None:
        stream = req.subject.rsplit(".", 1)[-1]
        headers = {str(k): str(v) for k, v in (req.headers or {}).items()}
        await self._respond(req, await self.push.handle(stream, headers, req.data))

    def _publishers(self) -> list[StreamPublisher]:
        pubs = [s.publisher for s in self.whip.sessions.values()]
        pubs += [p.publisher for p in self.push.streams.values()]
        pubs += [s.publisher for s in self.sources.sources()]
        return pubs

    async def _refresh_infos(self) -> None:
        while True:
            await asyncio.sleep(INFO_REFRESH_S)
            for pub in self._publishers():
                try:
                    await pub.refresh_info()
                except Exception as exc:
                    log.debug("info refresh of %s failed: %s", pub.stream, exc)
