"""What every gateway route shares: the bus, registry, heartbeat board, relay hub, auth, signer.

The gateway keeps no media or registry state of its own: devices live in KV ``camhub-devices``,
status in ``camhub-status``, stream descriptions in ``camhub-streams``, viewer counts and
health in heartbeats.  What :class:`Gateway` holds is per-replica and disposable (open sockets,
the heartbeat board's view), so any number of replicas can run side by side.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import HTTPConnection

from services.common.bus import Bus
from services.common.registry import Registry
from services.common.settings import Settings
from services.common.streams import HeartbeatBoard
from services.gateway.auth import Auth, resolve_auth
from services.gateway.relay import RelayHub, RelayOptions
from services.gateway.session_token import SessionSigner, signing_key

log = logging.getLogger("camhub.gateway")

#: The built web UI (``cd web && npm ci && npm run build``).
WEB_DIST = Path(__file__).resolve().parents[2] / "web" / "dist"


@dataclass(frozen=True)
class GatewayOptions:
    """Knobs that are not ``CAMHUB_*`` settings (tests and benchmarks change them).

    ``sse_ping_s``: keep-alive comment interval of SSE streams (s).  ``webrtc_timeout_s``: how
    long WHIP/WHEP wait for ingest/egress to answer (s).  ``session_ttl_s``: VMS token lifetime
    (s, at most 60).
    """

    sse_ping_s: float = 15.0
    webrtc_timeout_s: float = 15.0
    session_ttl_s: int = 60
    relay: RelayOptions = field(default_factory=RelayOptions)
    web_dir: Path = WEB_DIST


class Gateway:
    """The shared state; :meth:`start` before serving, :meth:`stop` after."""

    def __init__(
        self,
        bus: Bus,
        settings: Settings,
        instance: str,
        options: GatewayOptions | None = None,
        on_viewers: Callable[[], None] = lambda: None,
    ) -> None:
        self.bus = bus
        self.settings = settings
        self.instance = instance
        self.options = options or GatewayOptions()
        self.registry = Registry(bus)
        self.board = HeartbeatBoard()
        self.hub = RelayHub(bus, self.options.relay, on_viewers)
        self.auth = Auth(required=False)
        self.signer: SessionSigner | None = None
        self.shutdown = asyncio.Event()
        #: The update queues of open SSE streams (their count is the SSE client count).
        self.sse_queues: set[asyncio.Queue[Any]] = set()

    async def start(self) -> None:
        """Follow heartbeats, resolve auth and the session signing key.

        Raises:
            BusError: NATS or JetStream unreachable.
        """
        await self.board.start(self.bus)
        self.auth, generated = await resolve_auth(self.bus, self.settings)
        if generated:
            # Printed once, to stdout, outside the JSON log (DESIGN.md section 6).
            print(
                f"camhub gateway: no CAMHUB_API_TOKEN set and listening on {self.settings.http_host}; "
                f"generated API token (shown once): {generated}",
                file=sys.stdout,
                flush=True,
            )
        log.info("API auth %s", "required" if self.auth.required else "off")
        self.signer = SessionSigner(await signing_key(self.bus, self.settings), self.options.session_ttl_s)

    def stop(self) -> None:
        """Ask SSE streams and WebSocket viewers to end."""
        self.shutdown.set()
        self.hub.close_all("server shutting down")
        for queue in list(self.sse_queues):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)

    def connections(self) -> int:
        """Open long-lived connections on this replica (WebSocket viewers + SSE clients)."""
        return self.hub.total() + len(self.sse_queues)


def gateway(conn: HTTPConnection) -> Gateway:
    """The :class:`Gateway` of the app serving ``conn``."""
    gw = conn.app.state.gateway
    assert isinstance(gw, Gateway)
    return gw
