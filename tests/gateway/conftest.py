"""Gateway test fixtures: a real gateway (uvicorn + Starlette) on a free loopback port, on a real
nats-server, reached over real HTTP/WebSocket.

``gateway`` runs :func:`services.common.service.run_service` with :class:`GatewayService` inside
the test's event loop (fast to start; the process form is covered by ``test_process.py``).
``start_gateway`` starts more, e.g. a second replica or one with auth on.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from services.common.bus import Bus
from services.common.service import run_service
from services.common.settings import Settings
from services.gateway.service import GatewayService
from services.gateway.state import GatewayOptions
from tests.support.nats import free_port

FAST = GatewayOptions(sse_ping_s=0.5, webrtc_timeout_s=10.0)


@dataclass
class RunningGateway:
    """A gateway serving ``url``; ``client`` is an httpx client bound to it."""

    url: str
    port: int
    settings: Settings
    client: httpx.AsyncClient
    _stop: asyncio.Event
    _task: asyncio.Task[int]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    async def stop(self) -> int:
        self._stop.set()
        await self.client.aclose()
        return await asyncio.wait_for(self._task, 15)


async def launch(settings: Settings, options: GatewayOptions = FAST, **overrides: Any) -> RunningGateway:
    """Start a gateway with ``settings`` (+ ``overrides``) and wait until ``/livez`` answers."""
    port = free_port()
    s = settings.model_copy(update={"http_port": port, "instance": f"gw-{port}", **overrides})
    cls = type("TestGateway", (GatewayService,), {"options": options})
    stop = asyncio.Event()
    task = asyncio.create_task(run_service(cls, s, stop))
    url = f"http://127.0.0.1:{port}"
    client = httpx.AsyncClient(base_url=url, timeout=20)
    for _ in range(200):
        if task.done():
            await task
            raise RuntimeError("gateway exited during start")
        try:
            if (await client.get("/livez")).status_code == 200:
                break
        except httpx.HTTPError:
            await asyncio.sleep(0.05)
    else:
        raise TimeoutError("gateway did not start")
    # run_service took SIGINT/SIGTERM for this loop; give Ctrl-C back to pytest.
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(sig)
    return RunningGateway(url, port, s, client, stop, task)


StartGateway = Callable[..., Awaitable[RunningGateway]]


@pytest.fixture
async def start_gateway(settings: Settings) -> AsyncIterator[StartGateway]:
    started: list[RunningGateway] = []

    async def start(options: GatewayOptions = FAST, **overrides: Any) -> RunningGateway:
        gw = await launch(settings, options, **overrides)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        with contextlib.suppress(Exception):
            await gw.stop()


@pytest.fixture
async def gateway(start_gateway: StartGateway) -> RunningGateway:
    return await start_gateway()


@pytest.fixture
def api(gateway: RunningGateway) -> httpx.AsyncClient:
    return gateway.client


async def wait_for(check: Callable[[], Awaitable[bool]], timeout: float = 5.0, step: float = 0.05) -> None:
    """Poll ``check`` until true.

    Raises:
        TimeoutError: not true within ``timeout`` s.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await check():
            return
        await asyncio.sleep(step)
    raise TimeoutError("condition not met in time")


__all__ = ["Bus", "RunningGateway", "StartGateway", "launch", "wait_for"]
