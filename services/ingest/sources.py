"""Pulled sources follow the registry live: one owner per source across ingest replicas.

:class:`SourceManager` watches KV ``camhub-devices`` (:meth:`services.common.registry.Registry.watch`)
and KV ``camhub-status`` (written by control; field ``camera: {source, url, disabled, reason}``) and
keeps, per device, the pull :func:`desired_spec` asks for:

* ``rtsp`` cameras: ``rtsp_url`` (credentials from the URL, else ``username``/``password``);
* ``bambu`` printers: the registry's ``rtsp_url`` when set (user ``bblp`` + ``access_code`` unless
  it has credentials); else the status' camera: ``source: rtsp`` -> RTSPS pull of ``url`` with
  ``bblp:<access_code>``; ``source: bambu-jpeg`` -> the port-6000 client on
  ``host:camera_port``; ``none`` or ``disabled`` -> nothing.

Each wanted source contends for lease ``ingest.<id>`` (``services.common.lease``); the holder runs
it, so exactly one replica pulls a camera, and another takes over within ~5 s when it dies.  A
changed spec (new URL, new access code) restarts the source; a deleted device stops it.
Stream id = device id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from services.common import codec, subjects
from services.common.bus import Bus
from services.common.lease import Lease
from services.common.registry import Device, Registry, redact_url
from services.common.settings import Settings
from services.ingest.access import DeviceCache, lease_key
from services.ingest.bambu_camera import BambuCameraSource
from services.ingest.rtsp import RtspSource, RtspUrlError, with_credentials

log = logging.getLogger("camhub.ingest.sources")


@dataclass(frozen=True)
class SourceSpec:
    """What to pull: ``kind`` ``rtsp`` (``url`` with credentials) or ``bambu-jpeg``
    (``host``, ``port``, ``access_code``).  Secrets are excluded from ``repr``."""

    kind: str
    url: str = field(default="", repr=False)
    host: str = ""
    port: int = 0
    access_code: str = field(default="", repr=False)

    def describe(self) -> str:
        return redact_url(self.url) if self.kind == "rtsp" else f"bambu-jpeg {self.host}:{self.port}"


def desired_spec(dev: Device | None, camera: dict[str, Any] | None) -> SourceSpec | None:
    """The pull a device needs now (None: nothing to pull).

    Raises:
        RtspUrlError: the registry or status URL is not a usable rtsp(s):// URL.
    """
    if dev is None:
        return None
    if dev.kind == "rtsp":
        if not dev.rtsp_url:
            return None
        return SourceSpec("rtsp", with_credentials(dev.rtsp_url, dev.username, dev.password))
    if dev.kind != "bambu":
        return None
    if dev.rtsp_url:
        return SourceSpec(
            "rtsp", with_credentials(dev.rtsp_url, dev.username or "bblp", dev.password or dev.access_code)
        )
    if not isinstance(camera, dict) or camera.get("disabled"):
        return None
    source = camera.get("source")
    if source == "rtsp" and isinstance(camera.get("url"), str) and camera["url"]:
        return SourceSpec("rtsp", with_credentials(camera["url"], "bblp", dev.access_code))
    if source == "bambu-jpeg":
        host = dev.host
        if not host and isinstance(camera.get("url"), str):
            with contextlib.suppress(ValueError):
                host = urlsplit(camera["url"]).hostname or ""
        if host:
            return SourceSpec("bambu-jpeg", host=host, port=dev.camera_port, access_code=dev.access_code)
    return None


class ManagedSource:
    """One wanted source: contends for its lease and runs while holding it."""

    def __init__(self, manager: SourceManager, stream: str, spec: SourceSpec) -> None:
        self.manager = manager
        self.stream = stream
        self.spec = spec
        self.source: RtspSource | BambuCameraSource | None = None
        self.task: asyncio.Task[None] | None = None
        self.lease = Lease(
            manager.bus, lease_key(stream), manager.instance, on_acquired=self._acquired, on_lost=self._lost
        )

    def make_source(self) -> RtspSource | BambuCameraSource:
        m = self.manager
        timeout = m.settings.rtsp_timeout_seconds
        if self.spec.kind == "rtsp":
            return RtspSource(m.bus, self.stream, self.spec.url, m.instance, timeout_s=timeout)
        return BambuCameraSource(
            m.bus,
            self.stream,
            self.spec.host,
            self.spec.port,
            self.spec.access_code,
            m.instance,
            connect_timeout=timeout,
            read_timeout=max(10.0, 2 * timeout),
        )

    async def _acquired(self) -> None:
        log.info("source %s: owning %s", self.stream, self.spec.describe())
        self.source = self.make_source()
        self.task = asyncio.create_task(self.source.run(), name=f"source:{self.stream}")

    async def _lost(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def start(self) -> None:
        self.lease.start()

    async def stop(self) -> None:
        await self.lease.stop()
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5.0)


class SourceManager:
    """Reconciles wanted pulls (registry + status) with running ones."""

    def __init__(self, bus: Bus, settings: Settings, instance: str, devices: DeviceCache) -> None:
        self.bus = bus
        self.settings = settings
        self.instance = instance
        self.devices = devices
        self.cameras: dict[str, dict[str, Any]] = {}
        self.running: dict[str, ManagedSource] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()
        self.synced = asyncio.Event()

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._watch_registry(), name="watch-registry"))
        self._tasks.append(asyncio.create_task(self._watch_status(), name="watch-status"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        await asyncio.gather(*(s.stop() for s in self.running.values()), return_exceptions=True)
        self.running.clear()

    def sources(self) -> list[RtspSource | BambuCameraSource]:
        return [m.source for m in self.running.values() if m.source is not None and m.task is not None]

    async def _watch_registry(self) -> None:
        registry = Registry(self.bus)
        while True:
            try:
                async for device_id, dev in registry.watch():
                    self.devices.update(device_id, dev)
                    await self.reconcile(device_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("registry watch failed, retrying: %s", exc)
            await asyncio.sleep(1.0)

    async def _watch_status(self) -> None:
        while True:
            try:
                kv = await self.bus.kv(subjects.KV_STATUS)
                watcher: Any = await kv.watchall()
                try:
                    async for entry in watcher:
                        if entry is None:
                            continue
                        camera: dict[str, Any] | None = None
                        if entry.operation not in ("DEL", "PURGE") and entry.value:
                            with contextlib.suppress(codec.PayloadError):
                                body = codec.unpack_map(entry.value)
                                cam = body.get("camera")
                                camera = cam if isinstance(cam, dict) else None
                        if camera is None:
                            self.cameras.pop(entry.key, None)
                        else:
                            self.cameras[entry.key] = camera
                        await self.reconcile(entry.key)
                finally:
                    with contextlib.suppress(Exception):
                        await watcher.stop()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("status watch failed, retrying: %s", exc)
            await asyncio.sleep(1.0)

    async def reconcile(self, device_id: str) -> None:
        """Start, restart or stop the device's pull to match what it needs now."""
        async with self._lock:
            try:
                spec = desired_spec(self.devices.get(device_id), self.cameras.get(device_id))
            except RtspUrlError as exc:
                log.warning("device %s: %s", device_id, exc)
                spec = None
            cur = self.running.get(device_id)
            if cur is not None and cur.spec == spec:
                return
            if cur is not None:
                del self.running[device_id]
                await cur.stop()
            if spec is not None:
                managed = ManagedSource(self, device_id, spec)
                self.running[device_id] = managed
                managed.start()
