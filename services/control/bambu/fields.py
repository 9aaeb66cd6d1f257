"""Type rules for the ``print`` fields camhub reads, applied before a report is merged.

Printers send numbers as strings now and then (``mc_percent: "22"``; research/bambu.md section
6.12): those are accepted as sent (readers use :func:`to_number`).  :func:`sanitize_print` drops
a known field whose value has the wrong shape (``nozzle_temper: "hot"``, ``hms: "x"``,
``ams.tray_now: {}``, ``lights_report: ["x"]``), so the merged state - and the status built from
it - keeps the last good value instead.  Rules nest (:data:`SCHEMA`); unknown fields pass through as sent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

NUM = "number"
STR = "string"
OBJ = "object"


def to_number(value: Any) -> int | float | None:
    """``value`` as a finite int/float, or None (bools, NaN, infinities and non-numeric strings
    are not numbers).  ``"22"`` -> 22, ``"25.5"`` -> 25.5."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        s = value.strip()
        if not s or len(s) > 32:
            return None
        try:
            return int(s)
        except ValueError:
            pass
        try:
            f = float(s)
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def _hms_item(item: Any) -> bool:
    return (
        isinstance(item, dict) and to_number(item.get("attr")) is not None and to_number(item.get("code")) is not None
    )


def _light_item(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("node"), str) and isinstance(item.get("mode"), str)


def _number_item(item: Any) -> bool:
    return to_number(item) is not None


def _object_item(item: Any) -> bool:
    return isinstance(item, dict)


class ListOf:
    """A rule for an array whose every item must pass ``check`` (else the field is dropped)."""

    def __init__(self, check: Callable[[Any], bool]) -> None:
        self.check = check


Rule = Any  # NUM | STR | OBJ | ListOf | dict[str, Rule]

#: The shape of the ``print`` fields camhub reads (nested dicts = objects with rules inside).
SCHEMA: dict[str, Rule] = {
    **dict.fromkeys(
        (
            "nozzle_temper",
            "nozzle_target_temper",
            "bed_temper",
            "bed_target_temper",
            "chamber_temper",
            "mc_percent",
            "mc_remaining_time",
            "layer_num",
            "total_layer_num",
            "spd_lvl",
            "spd_mag",
            "stg_cur",
            "print_error",
            "mc_print_sub_stage",
        ),
        NUM,
    ),
    **dict.fromkeys(("gcode_state", "subtask_name", "wifi_signal", "fun", "gcode_file", "print_type"), STR),
    **dict.fromkeys(("vt_tray", "upgrade_state", "online", "net", "upload", "xcam"), OBJ),
    "hms": ListOf(_hms_item),
    "lights_report": ListOf(_light_item),
    "stg": ListOf(_number_item),
    "ams": {"ams": ListOf(_object_item), "tray_now": NUM},
    "ipcam": {"rtsp_url": STR},
    "device": {
        "bed": {"info": {"temp": NUM}},
        "ctc": {"info": {"temp": NUM}},
        "extruder": {"state": NUM, "info": ListOf(_object_item)},
    },
}


def _clean(obj: dict[str, Any], schema: dict[str, Rule], prefix: str, rejected: list[str]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in obj.items():
        rule = schema.get(key)
        name = prefix + key
        if rule is None:
            clean[key] = value
        elif rule == NUM:
            if to_number(value) is None:
                rejected.append(name)
            else:
                clean[key] = value
        elif rule == STR:
            if isinstance(value, str):
                clean[key] = value
            else:
                rejected.append(name)
        elif rule == OBJ:
            if isinstance(value, dict):
                clean[key] = value
            else:
                rejected.append(name)
        elif isinstance(rule, ListOf):
            if isinstance(value, list) and all(rule.check(item) for item in value):
                clean[key] = value
            else:
                rejected.append(name)
        elif isinstance(rule, dict):
            if isinstance(value, dict):
                clean[key] = _clean(value, rule, name + ".", rejected)
            else:
                rejected.append(name)
    return clean


def sanitize_print(obj: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A copy of a ``print`` object checked against :data:`SCHEMA`.

    Returns ``(clean, rejected)``: ``clean`` holds every acceptable field unchanged, ``rejected``
    the dotted names of fields dropped for a wrong shape.
    """
    rejected: list[str] = []
    return _clean(obj, SCHEMA, "", rejected), rejected
