"""The service runner: what every camhub process does around its own work.

``run_service(MyService)`` sets up JSON logging, connects the bus, registers the NATS micro
service ``camhub-<name>`` (so ``nats micro ls`` / ``$SRV.PING`` / ``$SRV.INFO`` / ``$SRV.STATS``
list it with its endpoints), starts the service, publishes heartbeats on
``camhub.svc.<name>.<instance>.heartbeat`` every ``CAMHUB_HEARTBEAT_SECONDS``, and on SIGTERM or
SIGINT stops it: the service's own ``stop`` first, then the micro service, then a NATS drain,
all within 10 s (a service that hangs is abandoned and the process exits 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import psutil
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import EndpointConfig, Service

from services import __version__
from services.common import codec, metrics, subjects
from services.common.bus import Bus
from services.common.logs import setup_logging
from services.common.settings import Settings, SettingsError, load_settings

log = logging.getLogger("camhub.service")

STOP_BUDGET_S = 10.0
MicroHandler = Callable[[Request], Awaitable[None]]


@dataclass
class ServiceContext:
    """What a running service is given: settings, bus, its instance id and micro service."""

    name: str
    settings: Settings
    bus: Bus
    instance: str
    micro: Service
    _beat: asyncio.Event = field(default_factory=asyncio.Event)

    async def add_endpoint(
        self, name: str, subject: str, handler: MicroHandler, *, queue_group: str | None = None
    ) -> None:
        """Add a micro endpoint; ``queue_group`` defaults to ``camhub-<service>``."""

        async def safe(req: Request) -> None:
            try:
                await handler(req)
                metrics.REQUESTS.labels(self.name, name, "ok").inc()
            except Exception as exc:
                metrics.REQUESTS.labels(self.name, name, "error").inc()
                log.exception("endpoint %s failed", name)
                with contextlib.suppress(Exception):
                    await req.respond(
                        codec.pack({"ok": False, "error": f"internal error: {type(exc).__name__}", "status": 500}),
                        headers=codec.HEADERS,
                    )

        await self.micro.add_endpoint(
            EndpointConfig(
                name=name,
                subject=subject,
                handler=safe,
                queue_group=queue_group or subjects.micro_name(self.name),
            )
        )

    def heartbeat_now(self) -> None:
        """Ask for a heartbeat at once (e.g. a viewer count changed)."""
        self._beat.set()


class CamhubService:
    """Base class of the five services. Override :meth:`start`, :meth:`stop`, :meth:`load`."""

    name: ClassVar[str] = "base"
    description: ClassVar[str] = ""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.bus = ctx.bus
        self.settings = ctx.settings

    async def start(self) -> None:
        """Register endpoints and subscriptions, start background tasks."""

    async def stop(self) -> None:
        """Stop accepting work, close peers; called once on shutdown."""

    def load(self) -> dict[str, Any]:
        """Figures for the heartbeat (``streams``, ``sessions``, ``viewers``...)."""
        return {}


async def _heartbeats(ctx: ServiceContext, svc: CamhubService) -> None:
    proc = psutil.Process()
    proc.cpu_percent(None)
    subject = subjects.heartbeat(ctx.name, ctx.instance)
    while True:
        try:
            body = {
                "service": ctx.name,
                "instance": ctx.instance,
                "version": __version__,
                "ts": int(time.time() * 1000),
                "interval": ctx.settings.heartbeat_seconds,
                "cpu": proc.cpu_percent(None),
                "rss": proc.memory_info().rss,
                **svc.load(),
            }
            await ctx.bus.publish_obj(subject, body)
        except Exception as exc:
            log.debug("heartbeat failed: %s", exc)
        ctx._beat.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(ctx._beat.wait(), ctx.settings.heartbeat_seconds)
        await asyncio.sleep(0.05)


async def run_service(
    cls: type[CamhubService], settings: Settings | None = None, stop: asyncio.Event | None = None
) -> int:
    """Run ``cls`` until SIGTERM/SIGINT (or ``stop`` is set); returns the exit code."""
    settings = settings or load_settings()
    instance = settings.instance_id()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    bus = await Bus.connect(settings, f"camhub-{cls.name}-{instance}")
    micro = await add_service(
        bus.nc,
        name=subjects.micro_name(cls.name),
        version=__version__,
        description=cls.description,
        metadata={"instance": instance, "pid": str(os.getpid())},
    )
    ctx = ServiceContext(cls.name, settings, bus, instance, micro)
    svc = cls(ctx)
    await svc.start()
    beat = asyncio.create_task(_heartbeats(ctx, svc), name="heartbeat")
    log.info("camhub-%s %s started as %s", cls.name, __version__, instance)
    await stop.wait()
    log.info("camhub-%s stopping", cls.name)
    code = 0
    try:
        async with asyncio.timeout(STOP_BUDGET_S):
            beat.cancel()
            try:
                await svc.stop()
            except Exception:
                log.exception("stop failed")
                code = 1
            if bus.connected:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(micro.stop(), 2.0)
            await bus.close(timeout=3.0)
    except TimeoutError:
        log.error("camhub-%s did not stop within %.0f s", cls.name, STOP_BUDGET_S)
        code = 1
    log.info("camhub-%s stopped", cls.name)
    return code


def main(cls: type[CamhubService]) -> None:
    """Entry point of ``python -m services.<name>`` and ``camhub <name>``."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"camhub {cls.name}: {exc}", file=sys.stderr)
        sys.exit(2)
    setup_logging(cls.name, settings.log_level)
    metrics.serve(settings.metrics_port)
    try:
        code = asyncio.run(run_service(cls, settings))
    except KeyboardInterrupt:
        code = 0
    except Exception as exc:
        log.exception("camhub-%s crashed: %s", cls.name, exc)
        code = 1
    sys.exit(code)
