"""One printer's normalized status: connection facts + merged report + camera, as the map
published on ``camhub.device.<id>.status`` (docs/bus.md "Device status").

``state`` is ``connecting`` (no attempt has finished yet), ``online`` (MQTT session up and
reports arriving), ``offline`` (no session, or the printer went silent), ``auth_failed``
(CONNACK "not authorized": wrong access code) or ``developer_mode_required`` (session up, but
the printer demands signed commands).  ``connected`` is the MQTT session, ``online`` is
"reports are arriving".  Times: ``lastUpdate`` / ``lastSeen`` ISO 8601 UTC (last good report /
last message of any kind), ``ts`` ms since the epoch.

:meth:`PrinterStatus.change_key` leaves out the fields that move on every report (times,
Wi-Fi signal), so a publisher can send a status only when something a person cares about
changed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from services.control.bambu.camera import camera_info
from services.control.bambu.commands import DEVELOPER_MODE_ERROR
from services.control.bambu.merge import PrintState
from services.control.bambu.normalize import normalize_print, signing_required

STATES = ("connecting", "online", "offline", "auth_failed", "developer_mode_required")
VOLATILE = frozenset({"lastUpdate", "lastSeen", "ts", "wifiSignal"})


def iso(ms: int | None) -> str | None:
    """ms since the epoch as ``2026-01-18T20:15:00Z`` (None stays None)."""
    if ms is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


@dataclass
class PrinterStatus:
    """Everything known about one printer; :meth:`snapshot` renders the status map."""

    device_id: str
    name: str = ""
    host: str = ""
    rtsp_override: str = ""
    camera_port: int = 6000
    model: str = ""
    firmware: str = ""
    pushall_min_seconds: float = 15.0
    state: str = "connecting"
    reason: str = ""
    connected: bool = False
    silent: bool = False
    dev_mode_refused: bool = False
    last_report_ms: int | None = None
    last_seen_ms: int | None = None
    print_state: PrintState = field(default_factory=PrintState)

    def __post_init__(self) -> None:
        self.print_state.pushall_min_seconds = self.pushall_min_seconds

    def set_connection(self, state: str, reason: str = "", *, connected: bool) -> None:
        """Record a session transition (``state`` one of :data:`STATES`)."""
        if state not in STATES:
            raise ValueError(f"unknown printer state {state!r}")
        self.state, self.reason, self.connected = state, reason, connected
        if not connected:
            self.silent = False

    def apply_info(self, info: Any) -> bool:
        """Take model and firmware from an ``info.get_version`` reply; True when they changed."""
        if not isinstance(info, dict) or info.get("command") != "get_version":
            return False
        modules = info.get("module")
        if not isinstance(modules, list):
            return False
        before = (self.model, self.firmware)
        for mod in modules:
            if isinstance(mod, dict) and mod.get("name") == "ota":
                if isinstance(mod.get("product_name"), str) and mod["product_name"]:
                    self.model = mod["product_name"][:80]
                if isinstance(mod.get("sw_ver"), str):
                    self.firmware = mod["sw_ver"][:40]
        return (self.model, self.firmware) != before

    def effective_state(self) -> tuple[str, str]:
        """``(state, reason)`` after folding in silence and Developer Mode facts."""
        if not self.connected:
            return self.state, self.reason
        if self.silent:
            return "offline", "the printer stopped sending reports; asked it to resume (pushing.start)"
        data = self.print_state.data
        if self.dev_mode_refused or signing_required(data):
            return "developer_mode_required", DEVELOPER_MODE_ERROR
        if self.last_seen_ms is None:
            return "connecting", "connected; waiting for the first report"
        return "online", ""

    def snapshot(self, now_ms: int | None = None) -> dict[str, Any]:
        """The normalized status map (see module docstring and docs/bus.md)."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        state, reason = self.effective_state()
        data = self.print_state.data
        out: dict[str, Any] = {
            "id": self.device_id,
            "name": self.name,
            "connected": self.connected,
            "online": self.connected and state in ("online", "developer_mode_required"),
            "state": state,
            "reason": reason,
            **normalize_print(data),
            "lastUpdate": iso(self.last_report_ms),
            "lastSeen": iso(self.last_seen_ms),
            "model": self.model,
            "firmware": self.firmware,
            "camera": camera_info(
                data.get("ipcam"),
                host=self.host,
                override_url=self.rtsp_override,
                camera_port=self.camera_port,
                model=self.model,
                complete=self.print_state.complete,
            ),
            "ts": now_ms,
        }
        return out

    @staticmethod
    def change_key(status: dict[str, Any]) -> dict[str, Any]:
        """``status`` without :data:`VOLATILE` fields (compare two of these to detect a change)."""
        return {k: v for k, v in status.items() if k not in VOLATILE}
