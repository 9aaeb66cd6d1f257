"""Fixtures for the ingest tests: the GStreamer RTSP server as a child process, TLS
certificates made at test time, and the real ingest service run in-process or as a child."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from services.common.service import ServiceContext, run_service
from services.common.settings import Settings
from services.ingest.service import IngestService
from services.sim.bambu_camera import self_signed
from tests.support.nats import free_port
from tests.support.procs import ROOT, wait_services

SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_SERVER = ROOT / "services" / "sim" / "rtsp_server.py"


@dataclass
class RtspServer:
    """A running ``services/sim/rtsp_server.py`` (gst-rtsp-server) child."""

    args: list[str]
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""

    def start(self, timeout: float = 10.0) -> RtspServer:
        out = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(RTSP_SERVER), "--port", str(self.port), *self.args],
            stdout=subprocess.PIPE,
            stderr=out,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline().decode()
            if line.startswith("READY "):
                self.url = line.split(" ", 1)[1].strip()
                return self
            if not line and self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"rtsp_server did not start: {self.log_path.read_text(errors='replace')[-2000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None


@pytest.fixture
def rtsp_server(tmp_path: Path) -> Iterator[Callable[..., RtspServer]]:
    """Factory: ``rtsp_server("--user", "u", ...)`` starts one on a free port."""
    servers: list[RtspServer] = []

    def make(*args: str, port: int = 0) -> RtspServer:
        srv = RtspServer(list(args), port or free_port(), tmp_path / f"rtsp-{len(servers)}.log")
        servers.append(srv)
        return srv.start()

    yield make
    for s in servers:
        s.stop()


def make_cert(directory: Path, cn: str = "localhost") -> tuple[Path, Path]:
    """A self-signed certificate + key for 127.0.0.1, made at test time (never committed): the
    simulator's own generator, so tests and ``camhub sim`` serve the same kind of certificate."""
    return self_signed(directory, cn)


@pytest.fixture
def tls_cert(tmp_path: Path) -> tuple[Path, Path]:
    return make_cert(tmp_path)


class ProbeIngest(IngestService):
    """The real IngestService; remembers its instance so tests can look inside."""

    instances: ClassVar[list[ProbeIngest]] = []

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        ProbeIngest.instances.append(self)


@contextlib.asynccontextmanager
async def running_ingest(settings: Settings) -> AsyncIterator[ProbeIngest]:
    """Run the ingest service in this process (same code path as ``python -m services.ingest``)."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_service(ProbeIngest, settings, stop))
    try:
        await wait_services(settings.nats_servers[0], {"ingest"}, timeout=15)
        yield ProbeIngest.instances[-1]
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 15)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):  # run_service's handlers: give pytest its own back
            loop.remove_signal_handler(sig)
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
async def ingest(settings: Settings) -> AsyncIterator[ProbeIngest]:
    fast = settings.model_copy(
        update={"whip_connect_timeout_seconds": 3.0, "whip_media_timeout_seconds": 3.0, "command_timeout_seconds": 1.5}
    )
    async with running_ingest(fast) as svc:
        yield svc


async def wait_for(pred: Callable[[], Any], timeout: float = 10.0, step: float = 0.05) -> Any:
    """Poll ``pred`` until it returns something truthy; raises TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(step)
