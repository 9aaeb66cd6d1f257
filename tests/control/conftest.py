"""Fixtures for the control tests: a real Mosquitto broker dressed as a printer (optionally
driven by the printer simulator's model), and the control service run in-process against the
real nats-server of ``tests/conftest.py``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from nats.micro import add_service

from services import __version__
from services.common import codec, subjects
from services.common.bus import Bus
from services.common.registry import Device, Registry
from services.common.service import ServiceContext
from services.common.settings import Settings
from services.control.service import ControlService
from services.sim.printer import start_jpeg_camera, start_rtsp_camera, stop_process
from services.sim.printer_broker import MosquittoBroker
from services.sim.printer_fleet import PrinterFleet
from services.sim.printer_model import PrinterModel, PrinterOptions
from services.sim.printer_tls import SimCerts, generate
from tests.support.nats import free_port

ACCESS_CODE = "12345678"
SERIAL = "01S00C000000042"

#: Fast but faithful defaults for tests (production: backoff 1 -> 30 s, watchdog 60 s).
CONTROL_ENV = {
    "BACKOFF_MIN_SECONDS": "0.3",
    "BACKOFF_MAX_SECONDS": "1",
    "CONNECT_TIMEOUT_SECONDS": "3",
    "PUSHALL_MIN_SECONDS": "0.5",
    "STATUS_MIN_INTERVAL_SECONDS": "0.05",
    "KEEPALIVE_SECONDS": "5",
    "CONNECT_THREADS": "8",
}


@dataclass
class Sim:
    """A Mosquitto broker with a printer's TLS face, plus the simulator's printer side."""

    broker: MosquittoBroker
    fleet: PrinterFleet
    certs: SimCerts
    serials: list[str]
    models: list[PrinterModel] = field(default_factory=list)
    camera_port: int = 6000

    @property
    def port(self) -> int:
        return self.broker.port

    @property
    def serial(self) -> str:
        return self.serials[0]

    def device(self, dev_id: str = "p1", **over: Any) -> Device:
        fields: dict[str, Any] = {
            "id": dev_id,
            "kind": "bambu",
            "name": "test printer",
            "host": "127.0.0.1",
            "serial": self.serial,
            "access_code": ACCESS_CODE,
            "mqtt_port": self.port,
            "camera_port": self.camera_port,
        }
        fields.update(over)
        return Device(**fields)

    def requests(self, cls: str | None = None, command: str | None = None) -> list[dict[str, Any]]:
        """Requests the printer received, optionally filtered by class and command."""
        out = []
        for _serial, obj in list(self.fleet.requests):
            for key, inner in obj.items():
                if not isinstance(inner, dict):
                    continue
                if (cls is None or key == cls) and (command is None or inner.get("command") == command):
                    out.append(obj)
        return out

    def connections(self) -> int:
        """Successful ``bblp`` MQTT connections in the broker log."""
        return self.broker.log_text().count("u'bblp'")


MakeSim = Callable[..., Awaitable[Sim]]


@pytest.fixture
async def make_sim(tmp_path: Path) -> AsyncIterator[MakeSim]:
    made: list[Sim] = []
    cameras: list[asyncio.subprocess.Process] = []
    jpegs: list[Any] = []

    async def make(
        *,
        serials: tuple[str, ...] = (SERIAL,),
        printer: bool = True,
        max_clients: int = 0,
        push_interval: float = 0.3,
        camera: bool = False,
        jpeg_camera: bool = False,
        **opts: Any,
    ) -> Sim:
        certs = generate(tmp_path / f"certs{len(made)}", list(serials))
        broker = MosquittoBroker(certs, free_port(), ACCESS_CODE, max_clients)
        await broker.start()
        opts.setdefault("heat_tau", 0.5)
        camera_proc = None
        if camera:
            camera_proc, url = await start_rtsp_camera(certs, free_port(), ACCESS_CODE)
            cameras.append(camera_proc)
            # printers have been seen reporting a wrong host in rtsp_url (ha-bambulab #189)
            opts["rtsp_url"] = url.replace("127.0.0.1", "192.168.99.99")
        jpeg = await start_jpeg_camera(certs, "127.0.0.1", free_port(), ACCESS_CODE) if jpeg_camera else None
        if jpeg is not None:
            jpegs.append(jpeg)
        now = time.monotonic()
        models = [PrinterModel(PrinterOptions(serial=s, **opts), now) for s in serials] if printer else []
        fleet = PrinterFleet(str(broker.socket_path), models, push_interval)
        sim = Sim(broker, fleet, certs, list(serials), models, jpeg.port if jpeg is not None else 6000)
        made.append(sim)
        await fleet.start(ticking=printer)
        return sim

    yield make
    for sim in made:
        await sim.fleet.stop()
        await sim.broker.stop()
        sim.broker.cleanup()
    for proc in cameras:
        await stop_process(proc)
    for server in jpegs:
        await server.close()


StartControl = Callable[..., Awaitable[ControlService]]


@pytest.fixture
async def control(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[StartControl]:
    """Start ControlService in-process (the same steps as ``run_service``, minus signals)."""
    started: list[ControlService] = []

    async def start(instance: str = "ctl-a", command_timeout: float = 5.0, **env: str) -> ControlService:
        for key, value in {**CONTROL_ENV, **env}.items():
            monkeypatch.setenv(f"CAMHUB_CONTROL_{key}", value)
        s = settings.model_copy(update={"instance": instance, "command_timeout_seconds": command_timeout})
        bus = await Bus.connect(s, f"camhub-control-{instance}")
        micro = await add_service(bus.nc, name="camhub-control", version=__version__, description="test")
        svc = ControlService(ServiceContext("control", s, bus, instance, micro))
        await svc.start()
        started.append(svc)
        return svc

    yield start
    for svc in started:
        await stop_control(svc)


async def stop_control(svc: ControlService) -> None:
    """Stop an in-process control service (idempotent)."""
    if svc.bus.nc.is_closed:
        return
    await svc.stop()
    await svc.ctx.micro.stop()
    await svc.bus.close()


async def register(bus: Bus, dev: Device) -> None:
    await Registry(bus).put(dev)


async def read_status(bus: Bus, dev_id: str) -> dict[str, Any] | None:
    kv = await bus.kv(subjects.KV_STATUS)
    try:
        entry = await kv.get(dev_id)
    except Exception:
        return None
    return codec.unpack_map(entry.value) if entry.value else None


async def wait_status(
    bus: Bus, dev_id: str, pred: Callable[[dict[str, Any]], bool], timeout: float = 10.0
) -> dict[str, Any]:
    """Poll KV ``camhub-status`` until ``pred(status)``; AssertionError with the last status."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        last = await read_status(bus, dev_id)
        if last is not None and pred(last):
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"status of {dev_id} never matched within {timeout:g} s; last: {last}")


async def command(bus: Bus, dev_id: str, body: dict[str, Any], timeout: float = 8.0) -> dict[str, Any]:
    return await bus.request_obj(subjects.device_cmd(dev_id), body, timeout=timeout)


async def wait_for(pred: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not met within {timeout:g} s")
