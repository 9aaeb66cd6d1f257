"""Fixtures for the egress tests: the real egress, as a child process or inside the test's loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.common.service import run_service
from services.common.settings import Settings
from services.egress.service import EgressService
from tests.support.nats import NatsServer
from tests.support.procs import ServiceProcess, service_env, wait_services

FAST = {
    "CAMHUB_EGRESS_HANDSHAKE_SECONDS": "3",
    "CAMHUB_EGRESS_IDLE_SECONDS": "3",
    "CAMHUB_EGRESS_LINGER_SECONDS": "2",
}


def egress_process(nats_server: NatsServer, tmp_path: Path, **env: str) -> ServiceProcess:
    """``python -m services.egress`` against the test's NATS; ``env`` adds CAMHUB_* variables."""
    proc_env = service_env(nats_server.url, tmp_path / "data", CAMHUB_INSTANCE="egress-test", **{**FAST, **env})
    return ServiceProcess("egress", proc_env, tmp_path / "logs")


@pytest.fixture
async def egress(nats_server: NatsServer, tmp_path: Path) -> AsyncIterator[ServiceProcess]:
    """The real egress service as a child process, answering ``$SRV.PING``."""
    proc = egress_process(nats_server, tmp_path).start()
    try:
        await wait_services(nats_server.url, {"egress"}, timeout=20)
        yield proc
    finally:
        proc.stop()
        log = proc.log()
        assert "Traceback" not in log, log[-4000:]


@pytest.fixture
async def egress_inproc(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """The egress service running inside the test's event loop (to spy on aiortc in-process)."""
    for key, value in FAST.items():
        monkeypatch.setenv(key, value)
    stop = asyncio.Event()
    task = asyncio.ensure_future(run_service(EgressService, settings, stop))
    try:
        await wait_services(settings.nats_servers[0], {"egress"}, timeout=20)
        yield
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 15)
