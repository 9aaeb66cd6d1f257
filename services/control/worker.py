"""One registered printer inside one control instance: contend for its lease, and while
holding it run the MQTT :class:`~services.control.link.Link`, keep the
:class:`~services.control.bambu.status.PrinterStatus`, publish it, and answer
``camhub.device.<id>.cmd``.

Only the lease owner (``control.<id>`` in KV ``camhub-leases``) connects and answers
commands, so a printer sees one camhub session however many replicas run (printers accept only
a handful of MQTT clients).  Non-owners keep contending and take over within ~5 s when the
owner dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from services.common import codec, subjects
from services.common.bus import Bus
from services.common.lease import Lease
from services.common.registry import Device
from services.common.settings import Settings
from services.control import metrics
from services.control.bambu import commands
from services.control.bambu.payload import ReportError, decode_report
from services.control.bambu.status import PrinterStatus
from services.control.config import ControlSettings
from services.control.link import Link, LinkEvents, Target
from services.control.publisher import StatusPublisher
from services.control.tasks import cancel_and_wait

log = logging.getLogger("camhub.control.worker")

#: Serials become MQTT topic levels: no ``/``, ``+``, ``#`` or white space may widen them.
SERIAL_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_PENDING_COMMANDS = 16


def _error(status: int, error: str) -> dict[str, Any]:
    return {"ok": False, "error": error, "status": status}


@dataclass
class _Pending:
    cls: str
    command: str
    future: asyncio.Future[commands.Ack]


class PrinterWorker(LinkEvents):
    """Lease contender and (while owner) session keeper for one printer."""

    def __init__(
        self,
        bus: Bus,
        settings: Settings,
        cfg: ControlSettings,
        instance: str,
        device: Device,
        executor: ThreadPoolExecutor,
    ) -> None:
        self.bus = bus
        self.settings = settings
        self.cfg = cfg
        self.instance = instance
        self.device = device
        self.executor = executor
        self.owner = False
        self.status = self._new_status()
        self.link: Link | None = None
        self.publisher: StatusPublisher | None = None
        self.pending: dict[str, _Pending] = {}
        self._link_task: asyncio.Task[None] | None = None
        self._sub: Subscription | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_key: dict[str, Any] | None = None
        self._last_offer = 0.0
        self._bad_logged = 0.0
        self._deleted = False
        self._pushall_timer: asyncio.TimerHandle | None = None
        self.lease = Lease(bus, f"control.{device.id}", instance, on_acquired=self._acquired, on_lost=self._lost)

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def device_id(self) -> str:
        return self.device.id

    def start(self) -> None:
        """Start contending for the printer's lease."""
        self.lease.start()

    async def stop(self, *, deleted: bool = False) -> None:
        """Stop (releasing the lease).  ``deleted``: the registry entry is gone, so the owner
        removes the status from KV instead of publishing a last ``offline``."""
        self._deleted = deleted
        publisher = self.publisher if self.owner else None
        await self.lease.stop()
        if deleted and publisher is not None:
            await publisher.delete()

    async def update(self, device: Device) -> None:
        """Apply an edited registry entry: reconnect when how to reach the printer changed
        (this also ends an ``auth_failed`` wait), else just refresh the status."""
        old, self.device = self.device, device
        reach = ("host", "serial", "access_code", "mqtt_port", "tls_ca")
        changed = any(getattr(old, f) != getattr(device, f) for f in reach)
        self.status.name = device.name
        self.status.host = device.host
        self.status.rtsp_override = device.rtsp_url
        self.status.camera_port = device.camera_port
        if device.model and not self.status.model:
            self.status.model = device.model
        if not self.owner:
            return
        if changed:
            log.info("printer %s: registry entry changed; reconnecting", device.id)
            await self._stop_link()
            self.status = self._new_status()
            self._start_link()
        self._offer(force=True)

    def _new_status(self) -> PrinterStatus:
        d = self.device
        return PrinterStatus(
            d.id,
            name=d.name,
            host=d.host,
            rtsp_override=d.rtsp_url,
            camera_port=d.camera_port,
            model=d.model,
            pushall_min_seconds=self.cfg.pushall_min_seconds,
        )

    async def _acquired(self) -> None:
        self.owner = True
        self._deleted = False
        self.status = self._new_status()
        self.publisher = StatusPublisher(self.bus, self.device_id, self.cfg.status_min_interval_seconds)
        self._sub = await self.bus.subscribe(subjects.device_cmd(self.device_id), self._on_cmd)
        self._start_link()
        self._offer(force=True)

    async def _lost(self) -> None:
        self.owner = False
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        await self._stop_link("the control session for this printer moved to another instance")
        publisher, self.publisher = self.publisher, None
        if publisher is not None:
            if not self._deleted and self.bus.connected:
                self.status.set_connection("offline", "camhub control stopped watching this printer", connected=False)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(publisher.publish_now(self.status.snapshot()), 1.0)
            await publisher.close()

    def _start_link(self) -> None:
        d = self.device
        problem = ""
        if not d.host:
            problem = "the printer has no host configured"
        elif not SERIAL_RE.fullmatch(d.serial):
            problem = "the printer's serial number is missing or invalid (letters, digits, '-' and '_' only)"
        if problem:
            self.status.set_connection("offline", problem, connected=False)
            return
        target = Target(d.id, d.host, d.mqtt_port, d.serial, d.access_code, d.tls_ca or self.settings.mqtt_tls_ca)
        self.link = Link(target, self.cfg, self, self.executor)
        self._link_task = asyncio.create_task(self.link.run(), name=f"mqtt:{d.id}")

    async def _stop_link(self, why: str = "the printer's connection settings changed") -> None:
        for pending in list(self.pending.values()):
            if not pending.future.done():
                pending.future.set_result(commands.Ack(False, why, 409))
        if self._pushall_timer is not None:
            self._pushall_timer.cancel()
            self._pushall_timer = None
        task, self._link_task = self._link_task, None
        self.link = None
        await cancel_and_wait(task, 2.0)

    # --- LinkEvents --------------------------------------------------------------------------

    def on_state(self, state: str, reason: str, connected: bool) -> None:
        if (state, connected) != (self.status.state, self.status.connected) and state != "connecting":
            d = self.device
            log.info("printer %s (%s:%d) %s%s", d.id, d.host, d.mqtt_port, state, f": {reason}" if reason else "")
        self.status.set_connection(state, reason, connected=connected)
        self._offer(force=True)

    def on_silence(self, silent: bool) -> None:
        self.status.silent = silent
        self._offer(force=True)

    def on_subscribed(self) -> None:
        self.status.print_state.pushall_sent(time.monotonic())

    def on_message(self, payload: bytes) -> None:
        received = time.monotonic()
        now = int(time.time() * 1000)
        self.status.last_seen_ms = now
        metrics.REPORTS.inc()
        try:
            report = decode_report(payload)
        except ReportError as exc:
            metrics.BAD_REPORTS.labels("undecodable").inc()
            self._log_bad(str(exc))
            self.status.print_state.note_failure()
            self._maybe_pushall()
            return
        if report.repaired:
            metrics.BAD_REPORTS.labels("invalid_utf8").inc()
        obj = report.obj
        for cls, command, seq, inner in commands.find_acks(obj):
            pending = self.pending.get(seq)
            if pending and pending.cls == cls and pending.command == command and not pending.future.done():
                pending.future.set_result(commands.interpret_ack(inner))
        if "print" in obj:
            result = self.status.print_state.apply(obj["print"])
            if result.kind in ("full", "delta"):
                self.status.last_report_ms = now
            if result.failed:
                metrics.BAD_REPORTS.labels("merge").inc()
                self._log_bad(result.error)
        if "info" in obj:
            self.status.apply_info(obj["info"])
        self._maybe_pushall()
        self._offer()
        metrics.REPORT_LATENCY.observe(time.monotonic() - received)

    def _log_bad(self, why: str) -> None:
        now = time.monotonic()
        if now - self._bad_logged >= 10:
            self._bad_logged = now
            log.warning("printer %s: bad report kept out of the status: %s", self.device_id, why)

    def _maybe_pushall(self) -> None:
        """Send the ``pushall`` a failed merge wants, now or (rate limit) once it is allowed."""
        now = time.monotonic()
        link = self.link
        wait = self.status.print_state.pushall_wait(now)
        if link is None or not link.ready or wait is None:
            return
        if wait > 0:
            if self._pushall_timer is None:
                self._pushall_timer = asyncio.get_running_loop().call_later(wait, self._pushall_due)
            return
        if link.send(commands.pushall(link.next_seq())):
            self.status.print_state.pushall_sent(now)
            log.info("printer %s: asked for a full report after a failed merge", self.device_id)

    def _pushall_due(self) -> None:
        self._pushall_timer = None
        self._maybe_pushall()

    def _offer(self, force: bool = False) -> None:
        publisher = self.publisher
        if publisher is None or not self.owner:
            return
        try:
            snap = self.status.snapshot()
        except Exception:
            log.exception("printer %s: status could not be built; keeping the last one", self.device_id)
            return
        key = PrinterStatus.change_key(snap)
        now = time.monotonic()
        if force or key != self._last_key or now - self._last_offer >= self.cfg.status_refresh_seconds:
            self._last_key = key
            self._last_offer = now
            publisher.offer(snap)

    # --- commands ----------------------------------------------------------------------------

    async def _on_cmd(self, msg: Msg) -> None:
        if len(self._tasks) >= MAX_PENDING_COMMANDS:
            await self._respond(msg, _error(503, "too many commands in flight for this printer"))
            return
        task = asyncio.create_task(self._answer(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _respond(self, msg: Msg, reply: dict[str, Any]) -> None:
        if msg.reply:
            await self.bus.publish(msg.reply, codec.pack(reply), headers=codec.HEADERS)

    async def _answer(self, msg: Msg) -> None:
        try:
            reply = await self.execute(msg.data)
        except Exception as exc:
            log.exception("printer %s: command failed", self.device_id)
            reply = _error(500, f"internal error: {type(exc).__name__}")
        metrics.COMMANDS.labels("ok" if reply.get("ok") else str(reply.get("status"))).inc()
        with contextlib.suppress(Exception):
            await self._respond(msg, reply)

    async def execute(self, data: bytes) -> dict[str, Any]:
        """Run one bus command (docs/bus.md "Devices") and return the reply map."""
        try:
            req = codec.unpack_map(data)
            commands.build_command(req, "0")
        except (codec.PayloadError, commands.CommandError) as exc:
            return _error(400, str(exc))
        link = self.link
        if link is None or not link.ready:
            state, reason = self.status.effective_state()
            why = f" ({reason})" if reason else ""
            return _error(409, f"printer {self.device_id} is not connected: {state}{why}")
        request = commands.build_command(req, link.next_seq())
        future: asyncio.Future[commands.Ack] = asyncio.get_running_loop().create_future()
        self.pending[request.sequence_id] = _Pending(request.cls, request.command, future)
        try:
            if not link.send(request):
                return _error(409, f"printer {self.device_id} is not connected")
            timeout = self.settings.command_timeout_seconds
            try:
                ack = await asyncio.wait_for(future, timeout)
            except TimeoutError:
                return _error(504, f"the printer did not acknowledge the command within {timeout:g} s")
        finally:
            self.pending.pop(request.sequence_id, None)
        if (
            request.cls == "print"
            and (ack.ok or ack.developer_mode)
            and self.status.dev_mode_refused != ack.developer_mode
        ):
            self.status.dev_mode_refused = ack.developer_mode
            self._offer(force=True)
        if ack.ok:
            return {"ok": True}
        return _error(ack.status, ack.error)
