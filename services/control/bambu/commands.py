"""Requests to ``device/<serial>/request`` and the printer's acknowledgements.

Shapes (research/bambu.md section 3.1; ha-bambulab ``commands.py``, OrcaSlicer
``DeviceManager.cpp``), every one wrapped as ``{"user_id": "1", "<class>": {...}}`` (brief
section 6) with a string ``sequence_id``:

* pause / resume / stop: ``{"print": {"command": "pause", "param": "", "sequence_id": ...}}``
  (``param`` included: firmware drops these commands without it, bambulabs_api #183), QoS 1;
* light: ``{"system": {"command": "ledctrl", "led_node": "chamber_light", "led_mode": "on"|"off",
  "led_on_time": 500, "led_off_time": 500, "loop_times": 0, "interval_time": 0}}``;
* speed: ``{"print": {"command": "print_speed", "param": "1".."4"}}`` (silent..ludicrous);
* gcode: ``{"print": {"command": "gcode_line", "param": "M104 S220\\n"}}``;
* ``pushing.pushall`` (``version: 1, push_target: 1``), ``pushing.start``, ``info.get_version``.

The printer answers on the report topic with the same class and ``command``, the echoed
``sequence_id`` and ``result`` (case-insensitive ``success``/``fail``/``failed``), often
``reason`` and ``err_code``.  ``err_code`` 84033543 (0x05024007) or reason
``mqtt message verify failed`` means the command needed a signature: the printer is not in
LAN-only + Developer Mode (research/bambu.md section 5).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from services.control.bambu.fields import to_number

USER_ID = "1"
#: camhub's sequence ids start here, away from Bambu Studio's 20000-29999.
SEQUENCE_START = 50000
DEVELOPER_MODE_ERROR = "the printer requires LAN-only + Developer Mode for control"
#: 0x05024007 (no signature) and 0x05024009 (malformed signature).
VERIFY_FAILED_CODES = frozenset({84033543, 84033545})
MAX_GCODE_CHARS = 4096
COMMAND_TYPES = ("pause", "resume", "stop", "light", "speed", "gcode")
SPEED_NAMES = {"silent": 1, "standard": 2, "sport": 3, "ludicrous": 4}


class CommandError(ValueError):
    """A device command request is malformed; ``status`` is 400."""

    status = 400


@dataclass(frozen=True)
class Request:
    """One MQTT request: ``cls`` (``print``, ``system``, ``pushing``, ``info``), ``command``,
    ``sequence_id``, the full JSON-ready ``payload`` and the ``qos`` to publish it with."""

    cls: str
    command: str
    sequence_id: str
    payload: dict[str, Any]
    qos: int = 0


class SequenceCounter:
    """String sequence ids, monotonic for one MQTT connection (``"50001"``, ``"50002"``...)."""

    def __init__(self, start: int = SEQUENCE_START) -> None:
        self._it = itertools.count(start + 1)

    def next(self) -> str:
        return str(next(self._it))


def _wrap(cls: str, command: str, seq: str, qos: int = 0, **fields: Any) -> Request:
    inner = {"sequence_id": seq, "command": command, **fields}
    return Request(cls, command, seq, {"user_id": USER_ID, cls: inner}, qos)


def pushall(seq: str) -> Request:
    """``pushing.pushall``: the printer answers with a full ``push_status`` (``msg: 0``)."""
    return _wrap("pushing", "pushall", seq, version=1, push_target=1)


def start_pushing(seq: str) -> Request:
    """``pushing.start``: resume periodic reports (sent by the silence watchdog)."""
    return _wrap("pushing", "start", seq)


def get_version(seq: str) -> Request:
    """``info.get_version``: module list with firmware versions and the product name."""
    return _wrap("info", "get_version", seq)


def _gcode(line: Any) -> str:
    if not isinstance(line, str) or not line.strip():
        raise CommandError("gcode needs 'line': a non-empty string of G-code")
    if len(line) > MAX_GCODE_CHARS:
        raise CommandError(f"gcode 'line' is longer than {MAX_GCODE_CHARS} characters")
    if any((ord(c) < 32 and c not in "\n\r\t") or ord(c) == 127 for c in line):
        raise CommandError("gcode 'line' contains control characters")
    if not line.isascii():
        raise CommandError("gcode 'line' must be ASCII")
    return line if line.endswith("\n") else line + "\n"


def _level(value: Any) -> int:
    if isinstance(value, str) and value.strip().lower() in SPEED_NAMES:
        return SPEED_NAMES[value.strip().lower()]
    num = to_number(value)
    if num is None or (isinstance(num, float) and not num.is_integer()) or not 1 <= int(num) <= 4:
        raise CommandError("speed needs 'level': 1 (silent), 2 (standard), 3 (sport) or 4 (ludicrous)")
    return int(num)


def build_command(req: Any, seq: str) -> Request:
    """The MQTT request for a bus command ``{type, on?, level?, line?}`` (docs/bus.md "Devices").

    Raises:
        CommandError: not a map, unknown ``type``, or a missing/invalid ``on``/``level``/``line``.
    """
    if not isinstance(req, dict):
        raise CommandError("a device command is a map with 'type'")
    kind = req.get("type")
    if kind in ("pause", "resume", "stop"):
        return _wrap("print", str(kind), seq, qos=1, param="")
    if kind == "light":
        on = req.get("on")
        if not isinstance(on, bool):
            raise CommandError("light needs 'on': true or false")
        return _wrap(
            "system",
            "ledctrl",
            seq,
            led_node="chamber_light",
            led_mode="on" if on else "off",
            led_on_time=500,
            led_off_time=500,
            loop_times=0,
            interval_time=0,
        )
    if kind == "speed":
        return _wrap("print", "print_speed", seq, param=str(_level(req.get("level"))))
    if kind == "gcode":
        return _wrap("print", "gcode_line", seq, param=_gcode(req.get("line")))
    shown = repr(kind)[:40]
    raise CommandError(f"unknown command type {shown}: use one of {', '.join(COMMAND_TYPES)}")


@dataclass(frozen=True)
class Ack:
    """A printer's answer to one request: ``ok``; else ``error`` (a sentence), ``status`` (502
    refused, 403 Developer Mode required) and ``developer_mode`` True for a signature failure."""

    ok: bool
    error: str = ""
    status: int = 200
    developer_mode: bool = False


def interpret_ack(inner: dict[str, Any]) -> Ack:
    """Read ``result``/``reason``/``err_code`` of an echoed request."""
    result = inner.get("result")
    raw_reason = inner.get("reason")
    reason = raw_reason if isinstance(raw_reason, str) else ""
    err = to_number(inner.get("err_code"))
    err_code = int(err) if err is not None else 0
    verify_failed = err_code in VERIFY_FAILED_CODES or "verify failed" in reason.lower()
    if verify_failed:
        return Ack(False, DEVELOPER_MODE_ERROR, 403, True)
    text = result.strip().lower() if isinstance(result, str) else ""
    if text == "success" or (not text and not err_code):
        return Ack(True)
    detail = reason if reason and reason.lower() not in ("fail", "failed") else ""
    if err_code:
        detail = f"{detail} (err_code {err_code:#010x})".strip()
    return Ack(False, f"the printer refused the command{': ' + detail if detail else ''}", 502)


def find_acks(report: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """Every ``(class, command, sequence_id, inner)`` echoed in a report.  Status pushes
    (``push_status``, whose ``sequence_id`` is the printer's own counter) are not acks."""
    out = []
    for cls, inner in report.items():
        if not isinstance(inner, dict):
            continue
        command = inner.get("command")
        seq = inner.get("sequence_id")
        if not isinstance(command, str) or command == "push_status" or isinstance(seq, bool):
            continue
        if isinstance(seq, int):
            seq = str(seq)
        if not isinstance(seq, str) or not seq:
            continue
        out.append((cls, command, seq, inner))
    return out
