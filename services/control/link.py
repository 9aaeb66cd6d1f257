"""One printer's MQTT session: connect, reconnect, watchdog (the I/O half of control).

paho-mqtt 2.x, MQTT 3.1.1, TLS to ``<host>:<mqtt_port>`` (8883 on a printer), user ``bblp``,
password = LAN access code, a fresh random client id and a clean session on every attempt
(research/bambu.md section 1).  Each attempt runs in its own paho network thread
(``loop_start``) with ``reconnect_on_failure=False``; this module is the supervisor around it,
an explicit asyncio loop that never exits on errors (the ha-bambulab dead-end bugs #2129, #2021
came from letting paho's loop decide):

* the blocking TCP connect + TLS handshake runs in a dedicated thread pool;
* paho callbacks hop onto the event loop with ``loop.call_soon_threadsafe``;
* after CONNACK it subscribes ``device/<serial>/report`` (QoS 0) only - never the request
  topic, which makes P1 printers drop the connection (OpenBambuAPI #26) - then asks for
  ``get_version`` and ``pushall``;
* reconnect backoff doubles from 1 s to 30 s; CONNACK "not authorized" (3.1.1 return code 5,
  or 4 "bad user name or password") reports ``auth_failed`` and waits ``auth_retry_seconds``
  (5 min) instead of hammering the printer (ha-bambulab pitfall 6);
* a watchdog sends ``pushing.start`` after ``watchdog_seconds`` (60 s) without any message,
  and again every period while the silence lasts (ha-bambulab ``WatchdogThread``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import socket
import ssl
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from services.control import metrics
from services.control.bambu import commands
from services.control.config import ControlSettings
from services.control.tls import client_context

log = logging.getLogger("camhub.control.link")

#: paho 2.x reason codes for MQTT 3.1.1 CONNACK return codes 4 and 5.
AUTH_FAILURES = (134, 135)


@dataclass(frozen=True)
class Target:
    """Where and how to reach one printer (from its registry entry)."""

    device_id: str
    host: str
    port: int
    serial: str
    access_code: str
    tls_ca: str

    def __repr__(self) -> str:
        return f"Target({self.device_id}, {self.host}:{self.port}, serial={self.serial})"

    @property
    def report_topic(self) -> str:
        return f"device/{self.serial}/report"

    @property
    def request_topic(self) -> str:
        return f"device/{self.serial}/request"


class LinkEvents:
    """What a :class:`Link` tells its owner; all called on the event loop."""

    def on_state(self, state: str, reason: str, connected: bool) -> None:
        """``state`` is ``connecting``, ``online`` (CONNACK accepted), ``offline`` or ``auth_failed``."""

    def on_message(self, payload: bytes) -> None:
        """A payload arrived on the report topic."""

    def on_silence(self, silent: bool) -> None:
        """The watchdog found the printer silent (True) or hearing from it again (False)."""

    def on_subscribed(self) -> None:
        """The session is ready: subscribed, ``get_version`` and ``pushall`` sent."""


def describe_error(exc: BaseException, timeout: float) -> str:
    """A sentence for a failed connect (no secrets: exceptions never carry the access code)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate rejected: {exc.verify_message or exc}"
    if isinstance(exc, ssl.SSLEOFError | ConnectionResetError | BrokenPipeError):
        return "the printer closed the connection during the TLS handshake (too many clients connected?)"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (MQTT port closed)"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"no answer within {timeout:g} s (printer off or unreachable)"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the printer's host: {exc.strerror or exc}"
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "host unreachable"
    if isinstance(exc, FileNotFoundError):
        return f"cannot read the TLS CA file: {exc.strerror}"
    return f"{type(exc).__name__}: {exc}"


class Link:
    """Keeps one MQTT session to one printer alive until cancelled (:meth:`run`)."""

    def __init__(
        self,
        target: Target,
        cfg: ControlSettings,
        events: LinkEvents,
        executor: ThreadPoolExecutor,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.cfg = cfg
        self.events = events
        self.executor = executor
        self.clock = clock
        self.attempts = 0
        self.connects = 0
        self.last_rx = 0.0
        self._client: mqtt.Client | None = None
        self._seq = commands.SequenceCounter()
        self._connack: asyncio.Future[int] | None = None
        self._closed: asyncio.Event | None = None
        self._close_reason = ""
        self._ready = False
        self._silent = False
        self._cleanup: set[asyncio.Future[Any]] = set()

    # --- used by the owner -------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True while subscribed on a live session (commands can be sent)."""
        return self._ready and self._client is not None

    def next_seq(self) -> str:
        """The next ``sequence_id`` of this connection."""
        return self._seq.next()

    def send(self, request: commands.Request) -> bool:
        """Queue ``request`` on the request topic (non-blocking, thread-safe in paho); False
        when there is no live session."""
        client = self._client
        if client is None or not self._ready:
            return False
        data = json.dumps(request.payload, separators=(",", ":")).encode()
        info = client.publish(self.target.request_topic, data, qos=request.qos)
        return bool(info.rc == mqtt.MQTT_ERR_SUCCESS)

    # --- the supervisor ---------------------------------------------------------------------

    async def run(self) -> None:
        """Connect and reconnect forever; returns only when cancelled."""
        delay = self.cfg.backoff_min_seconds
        self.events.on_state("connecting", "", False)
        while True:
            self.attempts += 1
            started = self.clock()
            try:
                outcome, reason = await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not end the supervisor (ha-bambulab #2129)
                log.exception("printer %s: session failed", self.target.device_id)
                outcome, reason = "failed", f"internal error: {type(exc).__name__}"
            if outcome == "auth":
                log.warning(
                    "printer %s: %s; retrying in %.0f s", self.target.device_id, reason, self.cfg.auth_retry_seconds
                )
                self.events.on_state("auth_failed", reason, False)
                await asyncio.sleep(self.cfg.auth_retry_seconds)
                delay = self.cfg.backoff_min_seconds
                continue
            lasted = self.clock() - started
            if outcome == "closed" and lasted >= 30:
                delay = self.cfg.backoff_min_seconds
            log.info("printer %s: %s; reconnecting in %.1f s", self.target.device_id, reason, delay)
            self.events.on_state("offline", reason, False)
            await asyncio.sleep(delay)
            delay = min(self.cfg.backoff_max_seconds, delay * 2)

    async def _session(self) -> tuple[str, str]:
        """One connection attempt and, when it succeeds, the session until it ends.

        Returns ``(outcome, reason)``: ``auth`` (not authorized), ``failed`` (no session),
        ``closed`` (a session ended).
        """
        loop = asyncio.get_running_loop()
        self._connack = loop.create_future()
        self._closed = asyncio.Event()
        self._close_reason = ""
        client = self._new_client(loop)
        timeout = self.cfg.connect_timeout_seconds
        connect = loop.run_in_executor(self.executor, self._connect_blocking, client)
        try:
            try:
                await asyncio.shield(connect)
            except asyncio.CancelledError:
                self._later(connect, client)
                raise
            except Exception as exc:
                return "failed", describe_error(exc, timeout)
            self._client = client
            client.loop_start()
            try:
                async with asyncio.timeout(timeout):
                    rc = await self._connack
            except TimeoutError:
                return "failed", f"no CONNACK within {timeout:g} s"
            if rc in AUTH_FAILURES:
                return "auth", "the printer refused the access code (MQTT CONNACK: not authorized)"
            if rc < 0:
                return "failed", f"{self._close_reason or 'connection closed'} before CONNACK"
            if rc != 0:
                return "failed", f"the printer refused the connection (CONNACK reason code {rc})"
            return "closed", await self._serve(client)
        finally:
            self._ready = False
            if self._client is client:
                self._client = None
                await self._stop_client(client)

    async def _serve(self, client: mqtt.Client) -> str:
        """Run a connected session until it ends; returns why it ended."""
        assert self._closed is not None
        self.connects += 1
        self.last_rx = self.clock()
        self._silent = False
        client.subscribe(self.target.report_topic, qos=0)
        self._ready = True
        self.events.on_state("online", "", True)
        self.send(commands.get_version(self.next_seq()))
        self.send(commands.pushall(self.next_seq()))
        self.events.on_subscribed()
        watchdog = self.cfg.watchdog_seconds
        next_kick = 0.0
        while not self._closed.is_set():
            now = self.clock()
            if not self._silent and now - self.last_rx >= watchdog:
                self._silent = True
                log.warning("printer %s: no report for %.0f s; sending pushing.start", self.target.device_id, watchdog)
                self.events.on_silence(True)
                next_kick = now
            if self._silent and now >= next_kick:
                self.send(commands.start_pushing(self.next_seq()))
                self.send(commands.pushall(self.next_seq()))
                next_kick = now + watchdog
            wait = (next_kick - now) if self._silent else (self.last_rx + watchdog - now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), max(0.05, wait))
        return self._close_reason or "connection closed"

    # --- paho plumbing ----------------------------------------------------------------------

    def _new_client(self, loop: asyncio.AbstractEventLoop) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"camhub-{uuid.uuid4().hex[:16]}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
            reconnect_on_failure=False,
        )
        client.username_pw_set("bblp", self.target.access_code)
        client.connect_timeout = self.cfg.connect_timeout_seconds
        report_topic = self.target.report_topic

        def on_connect(_c: Any, _u: Any, _flags: Any, rc: Any, _props: Any) -> None:
            loop.call_soon_threadsafe(self._on_connack, int(rc.value))

        def on_disconnect(_c: Any, _u: Any, _flags: Any, rc: Any, _props: Any) -> None:
            loop.call_soon_threadsafe(self._on_disconnect, str(rc))

        def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
            if msg.topic == report_topic:
                loop.call_soon_threadsafe(self._on_message, msg.payload, time.monotonic())

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_message = on_message
        return client

    def _connect_blocking(self, client: mqtt.Client) -> None:
        """TLS context + TCP connect + handshake + CONNECT; runs in the executor."""
        ctx, verified = client_context(self.target.serial, self.target.tls_ca, self.target.device_id)
        client.tls_set_context(ctx)
        if not verified:
            client.tls_insecure_set(True)
        client.connect(self.target.host, self.target.port, keepalive=self.cfg.keepalive_seconds)

    def _on_connack(self, rc: int) -> None:
        if self._connack is not None and not self._connack.done():
            self._connack.set_result(rc)

    def _on_disconnect(self, reason: str) -> None:
        self._ready = False
        self._close_reason = f"connection lost ({reason})" if reason and reason != "Success" else "connection closed"
        if self._connack is not None and not self._connack.done():
            self._connack.set_result(-1)
        if self._closed is not None:
            self._closed.set()

    def _on_message(self, payload: bytes | bytearray, received: float) -> None:
        self.last_rx = self.clock()
        metrics.REPORT_QUEUE.observe(max(0.0, time.monotonic() - received))
        if self._silent:
            self._silent = False
            self.events.on_silence(False)
        try:
            self.events.on_message(bytes(payload))
        except Exception:
            log.exception("printer %s: report handler failed", self.target.device_id)

    async def _stop_client(self, client: mqtt.Client) -> None:
        with contextlib.suppress(Exception):
            client.disconnect()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(Exception):
            await loop.run_in_executor(self.executor, client.loop_stop)

    def _later(self, connect: asyncio.Future[Any], client: mqtt.Client) -> None:
        """Close a client whose connect was still running when the session was cancelled."""

        def done(fut: asyncio.Future[Any]) -> None:
            self._cleanup.discard(fut)
            if not fut.cancelled() and fut.exception() is None:
                with contextlib.suppress(Exception):
                    client.disconnect()
                    sock = client.socket()
                    if sock is not None:
                        sock.close()

        self._cleanup.add(connect)
        connect.add_done_callback(done)
