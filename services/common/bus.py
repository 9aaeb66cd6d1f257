"""The bus: one NATS connection per process, with infinite reconnect and clean drain.

:class:`Bus` wraps nats-py so services never touch connection options: it reconnects forever
(backoff 0.25 s -> 2 s with jitter), logs disconnects and reconnects, buffers up to 8 MiB of
publishes while disconnected, and drains on :meth:`close` (pending messages are delivered,
subscriptions finish).  JetStream KV buckets are created on first use with camhub's defaults.

Errors: :meth:`request` raises :class:`BusTimeout` when no responder answers in time and
:class:`NoResponders` when nobody subscribes to the subject at all (fast 503s at the gateway).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from services.common import codec
from services.common.settings import Settings

log = logging.getLogger("camhub.bus")

Handler = Callable[[Msg], Awaitable[None]]


class BusError(RuntimeError):
    """The bus could not do what was asked (not connected, JetStream unavailable, ...)."""


class BusTimeout(BusError):
    """A request got no reply within its timeout."""


class NoResponders(BusError):
    """A request found no subscriber on its subject (the service is not running)."""


class Bus:
    """A connected NATS client plus camhub's helpers; create with :meth:`connect`."""

    def __init__(self, nc: Client, settings: Settings, name: str) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(timeout=5.0)
        self.settings = settings
        self.name = name
        self._kv: dict[str, KeyValue] = {}
        self._kv_lock = asyncio.Lock()
        self.reconnects = 0

    @classmethod
    async def connect(cls, settings: Settings, name: str, *, connect_timeout: float = 30.0) -> Bus:
        """Connect to ``settings.nats_servers``; waits (retrying) up to ``connect_timeout`` s.

        Raises:
            BusError: no server answered in time.
        """
        holder: dict[str, Bus] = {}

        errors_since_connect = [0]

        async def on_error(exc: Exception) -> None:
            errors_since_connect[0] += 1
            level = logging.WARNING if errors_since_connect[0] <= 1 else logging.DEBUG
            log.log(level, "nats error: %s", exc)

        async def on_disconnect() -> None:
            log.warning("nats disconnected; reconnecting")

        async def on_reconnect() -> None:
            bus = holder.get("bus")
            if bus is not None:
                bus.reconnects += 1
            errors_since_connect[0] = 0
            log.info("nats reconnected")

        opts: dict[str, Any] = {
            "name": name,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": 0.5,
            "connect_timeout": 2,
            "ping_interval": 5,
            "max_outstanding_pings": 3,
            "allow_reconnect": True,
            "error_cb": on_error,
            "disconnected_cb": on_disconnect,
            "reconnected_cb": on_reconnect,
            "pending_size": 64 * 1024 * 1024,
            "flush_timeout": 10,
        }
        if settings.nats_user:
            opts["user"] = settings.nats_user
            opts["password"] = settings.nats_password
        loop = asyncio.get_running_loop()
        deadline = loop.time() + connect_timeout
        while True:
            try:
                nc = await nats.connect(settings.nats_servers, **opts)
                break
            except Exception as exc:
                if loop.time() > deadline:
                    raise BusError(
                        f"cannot reach NATS at {settings.nats_url or settings.nats_servers}: {exc}"
                    ) from None
                log.info("waiting for NATS: %s", exc)
                await asyncio.sleep(0.5)
        bus = cls(nc, settings, name)
        holder["bus"] = bus
        return bus

    @property
    def max_payload(self) -> int:
        """The server's ``max_payload`` in bytes."""
        return int(self.nc.max_payload)

    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected)

    async def publish(self, subject: str, data: bytes, headers: dict[str, str] | None = None) -> None:
        """Publish fire-and-forget (buffered while reconnecting)."""
        await self.nc.publish(subject, data, headers=headers)

    async def publish_obj(self, subject: str, obj: Any) -> None:
        """Publish ``obj`` as msgpack with the msgpack Content-Type header."""
        await self.nc.publish(subject, codec.pack(obj), headers=codec.HEADERS)

    async def subscribe(
        self,
        subject: str,
        handler: Handler,
        *,
        queue: str = "",
        pending_msgs: int = 65536,
        pending_bytes: int = 256 * 1024 * 1024,
    ) -> Subscription:
        """Subscribe ``handler`` (an ``async def`` taking a Msg).  Errors in the handler are
        logged and never end the subscription."""

        async def safe(msg: Msg) -> None:
            try:
                await handler(msg)
            except Exception:
                log.exception("handler for %s failed", msg.subject)

        return await self.nc.subscribe(
            subject,
            queue=queue,
            cb=safe,
            pending_msgs_limit=pending_msgs,
            pending_bytes_limit=pending_bytes,
        )

    async def request(
        self,
        subject: str,
        data: bytes,
        *,
        timeout: float = 5.0,
        headers: dict[str, str] | None = None,
    ) -> Msg:
        """Request/reply.

        Raises:
            NoResponders: nobody listens on ``subject``.
            BusTimeout: no reply within ``timeout`` seconds.
            BusError: the connection is closed or draining.
        """
        try:
            return await self.nc.request(subject, data, timeout=timeout, headers=headers)
        except nats.errors.NoRespondersError:
            raise NoResponders(f"no service answers {subject}") from None
        except (TimeoutError, nats.errors.TimeoutError):
            raise BusTimeout(f"no reply on {subject} within {timeout:g} s") from None
        except (nats.errors.ConnectionClosedError, nats.errors.ConnectionDrainingError) as exc:
            raise BusError(f"nats connection unavailable: {exc}") from None

    async def request_obj(self, subject: str, obj: Any, *, timeout: float = 5.0) -> dict[str, Any]:
        """Request with a msgpack map, expect a msgpack map back.

        Raises:
            NoResponders, BusTimeout, BusError: as :meth:`request`.
            codec.PayloadError: the reply is not a msgpack map.
        """
        msg = await self.request(subject, codec.pack(obj), timeout=timeout, headers=codec.HEADERS)
        return codec.unpack_map(msg.data)

    async def kv(self, bucket: str, *, ttl: float | None = None, history: int = 1) -> KeyValue:
        """The KV bucket ``bucket``, created with ``ttl`` seconds (None: keep) when missing.

        Raises:
            BusError: JetStream is not enabled or not reachable.
        """
        if bucket in self._kv:
            return self._kv[bucket]
        async with self._kv_lock:
            if bucket in self._kv:
                return self._kv[bucket]
            for attempt in range(20):
                try:
                    kv = await self.js.key_value(bucket)
                    break
                except nats.js.errors.BucketNotFoundError:
                    try:
                        kv = await self.js.create_key_value(
                            KeyValueConfig(
                                bucket=bucket,
                                ttl=ttl,
                                history=history,
                                storage=StorageType.FILE,
                                replicas=self.settings.kv_replicas,
                            )
                        )
                        break
                    except Exception as exc:
                        if attempt == 19:
                            raise BusError(f"cannot create KV bucket {bucket}: {exc}") from None
                except Exception as exc:
                    if attempt == 19:
                        raise BusError(f"JetStream KV {bucket} unavailable: {exc}") from None
                await asyncio.sleep(0.25)
            self._kv[bucket] = kv
            return kv

    async def close(self, timeout: float = 5.0) -> None:
        """Drain (deliver what is pending, end subscriptions) then close; bounded by ``timeout``."""
        if self.nc.is_closed:
            return
        try:
            if self.nc.is_connected:
                await asyncio.wait_for(self.nc.drain(), timeout)
        except Exception:
            pass
        if not self.nc.is_closed:
            try:
                await self.nc.close()
            except Exception:
                pass
