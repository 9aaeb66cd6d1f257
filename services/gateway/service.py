"""The gateway service: camhub's one HTTP/WebSocket face, uvicorn inside the service's event loop.

:class:`GatewayService` (``python -m services.gateway``) resolves auth and the session key
(:class:`~services.gateway.state.Gateway`), binds ``CAMHUB_HTTP_HOST:CAMHUB_HTTP_PORT`` itself
(so a busy port is a clear start error, not uvicorn's ``sys.exit``), and serves the Starlette
app with uvicorn in the same loop as the bus.  uvicorn's own signal handling is off: SIGTERM
goes to :func:`services.common.service.run_service`, which calls :meth:`GatewayService.stop`:
SSE streams and WebSocket viewers are ended (close 1001), then uvicorn stops within 3 s.

Heartbeat load: ``viewers: {stream: n}`` (WebSocket viewers on this replica; a heartbeat is sent
at once when a count changes), ``connections`` (WebSocket + SSE) and ``sse``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator
from typing import Any, ClassVar

import uvicorn

from services.common.service import CamhubService, ServiceContext
from services.gateway.app import build_app
from services.gateway.state import Gateway, GatewayOptions

log = logging.getLogger("camhub.gateway")


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers (the service runner owns SIGTERM/SIGINT)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``.

    Raises:
        OSError: with the address in the message (port in use, bad host).
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(2048)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


class GatewayService(CamhubService):
    name = "gateway"
    description = "camhub gateway: REST, SSE, WebSocket relay, WHIP/WHEP, HLS, UI"
    #: Options for the HTTP side (tests and benchmarks use a subclass to change them).
    options: ClassVar[GatewayOptions] = GatewayOptions()

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.gateway = Gateway(ctx.bus, ctx.settings, ctx.instance, self.options, on_viewers=ctx.heartbeat_now)
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self) -> None:
        """Start serving HTTP.

        Raises:
            OSError: the address cannot be bound.
            BusError: NATS/JetStream unreachable.
        """
        sock = bind(self.settings.http_host, self.settings.http_port)
        try:
            await self.gateway.start()
        except BaseException:
            sock.close()
            raise
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            build_app(self.gateway),
            lifespan="off",
            log_config=None,
            access_log=False,
            ws="websockets-sansio",
            ws_per_message_deflate=False,
            timeout_graceful_shutdown=3,
            server_header=False,
            proxy_headers=False,
        )
        # uvicorn logs one INFO line per WebSocket, with its query string (?token=): keep it quiet.
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="uvicorn")
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("uvicorn stopped during start")
            await asyncio.sleep(0.02)
        log.info("gateway listening on http://%s:%d", self.settings.http_host, self.port)

    async def stop(self) -> None:
        self.gateway.stop()
        if self._server is None or self._task is None:
            return
        await asyncio.sleep(0.05)  # let viewers' close frames go out
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), 6.0)
        except TimeoutError:
            self._server.force_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 2.0)

    def load(self) -> dict[str, Any]:
        return {
            "viewers": self.gateway.hub.counts(),
            "connections": self.gateway.connections(),
            "sse": len(self.gateway.sse_queues),
        }
