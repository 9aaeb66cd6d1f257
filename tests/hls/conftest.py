"""Fixtures for the hls tests: the real hls service as a child process on the test's NATS."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.support.nats import NatsServer
from tests.support.procs import ServiceProcess, service_env, wait_services

Starter = Callable[..., ServiceProcess]


@pytest.fixture
def hls_procs(nats_server: NatsServer, tmp_path: Path) -> Iterator[Starter]:
    """Start ``python -m services.hls`` children (``start(instance, **env)``); all stopped after."""
    procs: list[ServiceProcess] = []

    def start(instance: str = "hls-a", **env: str) -> ServiceProcess:
        extra = {"CAMHUB_INSTANCE": instance, "CAMHUB_HLS_DIR": str(tmp_path / "hls"), **env}
        log_dir = tmp_path / instance
        proc = ServiceProcess("hls", service_env(nats_server.url, tmp_path / "data", **extra), log_dir)
        procs.append(proc.start())
        return proc

    yield start
    for proc in procs:
        proc.stop()


@pytest.fixture
async def hls_service(hls_procs: Starter, nats_server: NatsServer) -> AsyncIterator[ServiceProcess]:
    """One hls service, answering ``$SRV.PING``."""
    proc = hls_procs()
    await wait_services(nats_server.url, {"hls"})
    yield proc
