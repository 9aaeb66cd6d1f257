"""The simulated printers' side of the broker: one paho client on the broker's Unix socket
that answers ``device/<serial>/request`` and publishes ``device/<serial>/report`` for every
:class:`~services.sim.printer_model.PrinterModel` (one or many printers per broker).

paho runs its network thread; requests hop onto the event loop with
``loop.call_soon_threadsafe``; a ticker publishes the periodic pushes every ``push_interval``
seconds.  ``requests`` keeps the last 1000 requests seen (``(serial, decoded JSON)``) so tests
and benchmarks can check what a client sent.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from services.sim.printer_model import PrinterModel

log = logging.getLogger("camhub.sim.printer")

RequestHook = Callable[[str, dict[str, Any]], None]


class PrinterFleet:
    """Drive ``models`` through the broker at ``socket_path``."""

    def __init__(self, socket_path: str, models: list[PrinterModel], push_interval: float = 1.0) -> None:
        self.socket_path = socket_path
        self.models = {m.serial: m for m in models}
        self.push_interval = push_interval
        self.requests: collections.deque[tuple[str, Any]] = collections.deque(maxlen=1000)
        self.on_request: RequestHook | None = None
        self.published = 0
        #: Successful (re)connections to the broker (paho reconnects after a broker restart).
        self.connects = 0
        self._client: mqtt.Client | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def start(self, ticking: bool = True) -> None:
        """Connect to the broker and (``ticking``) start the periodic pushes.

        Raises:
            OSError: the broker's socket does not answer.
            TimeoutError: no CONNACK within 5 s.
        """
        loop = asyncio.get_running_loop()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"printer-{uuid.uuid4().hex[:8]}", transport="unix")

        def on_connect(c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            if not rc.is_failure:
                c.subscribe("device/+/request", qos=1)
                loop.call_soon_threadsafe(self._on_connected)

        def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
            loop.call_soon_threadsafe(self._on_request, msg.topic, bytes(msg.payload))

        client.on_connect = on_connect
        client.on_message = on_message
        client.reconnect_delay_set(1, 2)
        await asyncio.to_thread(client.connect, self.socket_path, 1883, 30)  # port unused on a Unix socket
        client.loop_start()
        self._client = client
        await asyncio.wait_for(self._connected.wait(), 5.0)
        await asyncio.sleep(0.05)  # SUBACK
        if ticking:
            self._ticker = asyncio.create_task(self._tick(), name="printer-ticker")

    async def stop(self) -> None:
        """Stop pushing and disconnect."""
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            await asyncio.wait({ticker}, timeout=2.0)
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)

    def _on_connected(self) -> None:
        self.connects += 1
        self._connected.set()

    def publish(self, serial: str, report: dict[str, Any]) -> None:
        """Publish one report object as printer ``serial``."""
        self.publish_raw(serial, json.dumps(report, separators=(",", ":")).encode())

    def publish_raw(self, serial: str, payload: bytes) -> None:
        """Publish raw bytes on ``device/<serial>/report`` (malformed payloads for tests)."""
        if self._client is not None:
            self._client.publish(f"device/{serial}/report", payload, qos=0)
            self.published += 1

    def _on_request(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) != 3:
            return
        serial = parts[1]
        try:
            obj = json.loads(payload)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            self.requests.append((serial, obj))
            if self.on_request is not None:
                try:
                    self.on_request(serial, obj)
                except Exception:
                    log.exception("request hook failed")
        model = self.models.get(serial)
        if model is None:
            return
        for report in model.handle(payload, time.monotonic()):
            self.publish(model.serial, report)

    async def _tick(self) -> None:
        while True:
            started = time.monotonic()
            for model in self.models.values():
                for report in model.periodic(started):
                    self.publish(model.serial, report)
            await asyncio.sleep(max(0.05, self.push_interval - (time.monotonic() - started)))
