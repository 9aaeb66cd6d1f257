"""The control service: Bambu Lab printers over MQTT (docs/bus.md "Devices", "Device status").

It follows the registry (KV ``camhub-devices``) live: every ``kind == "bambu"`` device gets a
:class:`~services.control.worker.PrinterWorker` that contends for the lease ``control.<id>``;
the owner keeps one MQTT session to the printer, publishes the normalized status on
``camhub.device.<id>.status`` (+ KV ``camhub-status`` + stream ``CAMHUB_STATUS_HISTORY``, created
here at start) and answers ``camhub.device.<id>.cmd``.  Adding, editing or deleting a printer
takes effect at once; a deleted printer's status is removed from KV.

Heartbeat load: ``sessions`` (MQTT sessions up in this instance) and ``printers``
(``{id: state}`` for the printers this instance owns).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from services.common.registry import Device, Registry
from services.common.service import CamhubService, ServiceContext
from services.control.config import ControlSettings, load_control_settings
from services.control.publisher import ensure_history_stream
from services.control.tasks import cancel_and_wait
from services.control.worker import PrinterWorker

log = logging.getLogger("camhub.control")


class ControlService(CamhubService):
    name = "control"
    description = "camhub control: Bambu Lab printers over MQTT (status, commands, camera bootstrap)"

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.cfg: ControlSettings = load_control_settings()
        self.workers: dict[str, PrinterWorker] = {}
        self.registry = Registry(self.bus)
        self.executor = ThreadPoolExecutor(self.cfg.connect_threads, thread_name_prefix="mqtt")
        self._watch_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._stopping = False

    async def start(self) -> None:
        await ensure_history_stream(self.bus, self.cfg.history_max_bytes)
        self._watch_task = asyncio.create_task(self._watch_registry(), name="registry-watch")

    async def stop(self) -> None:
        self._stopping = True
        await cancel_and_wait(self._watch_task, 5.0)
        async with self._lock:
            workers, self.workers = list(self.workers.values()), {}
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
        self.executor.shutdown(wait=False, cancel_futures=True)

    def load(self) -> dict[str, Any]:
        owned = [w for w in self.workers.values() if w.owner]
        return {
            "sessions": sum(1 for w in owned if w.link is not None and w.link.ready),
            "printers": {w.device_id: w.status.effective_state()[0] for w in owned},
        }

    async def _watch_registry(self) -> None:
        first = True
        while not self._stopping:
            try:
                if not first:
                    present = {d.id for d in await self.registry.list() if d.kind == "bambu"}
                    for dev_id in [i for i in self.workers if i not in present]:
                        await self.apply(dev_id, None)
                first = False
                async for dev_id, dev in self.registry.watch():
                    await self.apply(dev_id, dev)
                    if self._stopping:  # a cancellation swallowed further down must still end this loop
                        return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("registry watch failed (%s); restarting it", exc)
            await asyncio.sleep(1.0)

    async def apply(self, dev_id: str, dev: Device | None) -> None:
        """React to one registry record (None: deleted)."""
        async with self._lock:
            if self._stopping:
                return
            worker = self.workers.get(dev_id)
            if dev is None or dev.kind != "bambu":
                if worker is not None:
                    del self.workers[dev_id]
                    log.info("printer %s removed", dev_id)
                    await worker.stop(deleted=True)
                return
            if worker is None:
                worker = PrinterWorker(self.bus, self.settings, self.cfg, self.ctx.instance, dev, self.executor)
                self.workers[dev_id] = worker
                log.info("printer %s added (%s:%d)", dev_id, dev.host, dev.mqtt_port)
                worker.start()
            elif worker.device != dev:
                await worker.update(dev)
