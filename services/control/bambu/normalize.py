"""From a merged Bambu ``print`` object to camhub's normalized printer fields (docs/bus.md
"Device status").

Field sources (research/bambu.md section 2.2): ``gcode_state``, ``mc_percent``,
``mc_remaining_time`` (minutes), ``nozzle_temper``/``bed_temper``/``chamber_temper`` and their
``*_target_temper`` (degrees C), or on newer firmware the packed ``device.extruder.info[].temp``,
``device.bed.info.temp``, ``device.ctc.info.temp`` (low 16 bits current, high 16 bits target;
preferred when present because legacy fields go stale there), ``lights_report``, ``layer_num`` /
``total_layer_num``, ``subtask_name``, ``stg_cur``, ``spd_lvl``/``spd_mag``, ``hms``,
``print_error``, ``ams``, ``wifi_signal`` (``"-46dBm"``), ``fun`` (bit 0x20000000: commands
must be signed, i.e. Developer Mode is off).

Every reader returns None (or ``"unknown"``) for a missing or malformed value; nothing here
raises on printer input.
"""

from __future__ import annotations

import re
from typing import Any

from services.control.bambu.fields import to_number
from services.control.bambu.hms import decode_hms, print_error

JOB_STATES = ("IDLE", "PREPARE", "RUNNING", "PAUSE", "FINISH", "FAILED")
#: Firmware states outside the brief's list, mapped onto it (ha-bambulab ``GCODE_STATE_OPTIONS``).
JOB_STATE_ALIASES = {"SLICING": "PREPARE", "INIT": "IDLE"}

#: ``stg_cur`` ids (ha-bambulab ``CURRENT_STAGE_IDS``, Orca ``get_stage_string``).
STAGES = {
    0: "printing",
    1: "auto bed leveling",
    2: "heatbed preheating",
    4: "changing filament",
    5: "M400 pause",
    6: "paused: filament runout",
    7: "heating hotend",
    13: "homing toolhead",
    14: "cleaning nozzle tip",
    16: "paused by the user",
    255: "idle",
    -1: "idle",
}

#: ``spd_lvl`` values (ha-bambulab ``SPEED_PROFILE``).
SPEED_LEVELS = {1: "silent", 2: "standard", 3: "sport", 4: "ludicrous"}

FUN_SIGNING_REQUIRED = 0x20000000

_DBM = re.compile(r"^\s*(-?\d{1,3})\s*(?:dBm)?\s*$", re.I)


def _int(value: Any) -> int | None:
    num = to_number(value)
    return None if num is None else int(num)


def _temp(value: Any) -> float | None:
    num = to_number(value)
    if num is None or num < -100 or num > 1000:
        return None
    return round(float(num), 1)


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def unpack_temp(value: Any) -> tuple[float, float] | None:
    """A packed ``device.*.temp`` int as ``(current, target)`` degrees C: low 16 bits current,
    high 16 bits target (``6553700`` = 0x00640064 -> (100, 100)); None when malformed."""
    num = to_number(value)
    if num is None or (isinstance(num, float) and not num.is_integer()):
        return None
    raw = int(num)
    if raw < 0 or raw > 0xFFFFFFFF:
        return None
    return float(raw & 0xFFFF), float((raw >> 16) & 0xFFFF)


def job_state(value: Any) -> str:
    """``gcode_state`` as one of :data:`JOB_STATES` or ``UNKNOWN``."""
    if not isinstance(value, str):
        return "UNKNOWN"
    state = value.strip().upper()
    state = JOB_STATE_ALIASES.get(state, state)
    return state if state in JOB_STATES else "UNKNOWN"


def _active_extruder(p: dict[str, Any]) -> dict[str, Any] | None:
    infos = _get(p, "device", "extruder", "info")
    if not isinstance(infos, list):
        return None
    entries = [e for e in infos if isinstance(e, dict)]
    if not entries:
        return None
    state = _int(_get(p, "device", "extruder", "state"))
    active = (state >> 4) & 0xF if state is not None and state >= 0 else 0
    for entry in entries:
        if _int(entry.get("id")) == active:
            return entry
    return entries[0]


def temperatures(p: dict[str, Any]) -> dict[str, float | None]:
    """``nozzleC, nozzleTargetC, bedC, bedTargetC, chamberC`` (degrees C, 0.1 resolution)."""
    out: dict[str, float | None] = {
        "nozzleC": _temp(p.get("nozzle_temper")),
        "nozzleTargetC": _temp(p.get("nozzle_target_temper")),
        "bedC": _temp(p.get("bed_temper")),
        "bedTargetC": _temp(p.get("bed_target_temper")),
        "chamberC": _temp(p.get("chamber_temper")),
    }
    extruder = _active_extruder(p)
    packed = unpack_temp(extruder.get("temp")) if extruder else None
    if packed:
        out["nozzleC"], out["nozzleTargetC"] = packed
    packed = unpack_temp(_get(p, "device", "bed", "info", "temp"))
    if packed:
        out["bedC"], out["bedTargetC"] = packed
    packed = unpack_temp(_get(p, "device", "ctc", "info", "temp"))
    if packed:
        out["chamberC"] = packed[0]
    return out


def light(p: dict[str, Any]) -> str:
    """The chamber light from ``lights_report``: ``on`` (also for ``flashing``), ``off`` or
    ``unknown``."""
    report = p.get("lights_report")
    if not isinstance(report, list):
        return "unknown"
    for entry in report:
        if isinstance(entry, dict) and entry.get("node") == "chamber_light":
            mode = entry.get("mode")
            if mode in ("on", "flashing"):
                return "on"
            if mode == "off":
                return "off"
    return "unknown"


def stage(p: dict[str, Any], state: str) -> str | None:
    """A name for ``stg_cur`` (``printing``, ``heatbed preheating``, ...; ``stage <n>`` when
    unlisted).  The boot quirk ``stg_cur: 0`` while not printing reads as ``idle``."""
    cur = _int(p.get("stg_cur"))
    if cur is None:
        return None
    if cur == 0 and state in ("IDLE", "FINISH", "FAILED", "UNKNOWN"):
        return "idle"
    return STAGES.get(cur, f"stage {cur}")


def wifi_dbm(value: Any) -> int | None:
    """``wifi_signal`` (``"-46dBm"``) as an int in dBm."""
    if isinstance(value, str):
        m = _DBM.match(value)
        return int(m.group(1)) if m else None
    num = to_number(value)
    return None if num is None else int(num)


def signing_required(p: dict[str, Any]) -> bool | None:
    """True when ``fun`` says print commands must be signed (Developer Mode off), False when
    it says they need not, None when the printer does not report ``fun`` (A1/P1)."""
    fun = p.get("fun")
    if not isinstance(fun, str) or not fun.strip():
        return None
    try:
        bits = int(fun.strip(), 16)
    except ValueError:
        return None
    return bool(bits & FUN_SIGNING_REQUIRED)


def _ams_tray(unit_id: int | None, tray: dict[str, Any], tray_now: int | None) -> dict[str, Any]:
    tray_id = _int(tray.get("id"))
    index = None
    if unit_id is not None and tray_id is not None:
        index = unit_id + tray_id if unit_id >= 128 else unit_id * 4 + tray_id
    color = tray.get("tray_color")
    return {
        "id": tray_id,
        "type": tray.get("tray_type") if isinstance(tray.get("tray_type"), str) else None,
        "name": tray.get("tray_sub_brands") if isinstance(tray.get("tray_sub_brands"), str) else None,
        "color": color if isinstance(color, str) else None,
        "remainPercent": _int(tray.get("remain")),
        "active": index is not None and index == tray_now,
    }


def ams_units(p: dict[str, Any]) -> list[dict[str, Any]]:
    """``[{id, humidity, tempC, trays: [{id, type, name, color, remainPercent, active}]}]`` from
    ``ams.ams``; ``active`` marks the tray ``ams.tray_now`` points at (unit*4+tray, 128+ for AMS
    HT)."""
    ams = p.get("ams")
    units = ams.get("ams") if isinstance(ams, dict) else None
    if not isinstance(units, list):
        return []
    tray_now = _int(ams.get("tray_now")) if isinstance(ams, dict) else None
    out = []
    for unit in units[:16]:
        if not isinstance(unit, dict):
            continue
        unit_id = _int(unit.get("id"))
        raw_trays = unit.get("tray")
        trays: list[Any] = raw_trays if isinstance(raw_trays, list) else []
        out.append(
            {
                "id": unit_id,
                "humidity": _int(unit.get("humidity")),
                "tempC": _temp(unit.get("temp")),
                "trays": [_ams_tray(unit_id, t, tray_now) for t in trays[:8] if isinstance(t, dict)],
            }
        )
    return out


def normalize_print(p: dict[str, Any]) -> dict[str, Any]:
    """The printer part of the normalized status (camelCase, units in the names: C, minutes,
    percent, dBm)."""
    state = job_state(p.get("gcode_state"))
    percent = _int(p.get("mc_percent"))
    remaining = _int(p.get("mc_remaining_time"))
    speed = _int(p.get("spd_lvl"))
    name = p.get("subtask_name")
    out: dict[str, Any] = {
        "jobState": state,
        "percent": None if percent is None else max(0, min(100, percent)),
        "remainingMinutes": None if remaining is None else max(0, remaining),
        **temperatures(p),
        "light": light(p),
        "layer": _int(p.get("layer_num")),
        "totalLayers": _int(p.get("total_layer_num")),
        "jobName": name[:200] if isinstance(name, str) and name else None,
        "stage": stage(p, state),
        "speedLevel": speed if speed in SPEED_LEVELS else None,
        "speedPercent": _int(p.get("spd_mag")),
        "hms": decode_hms(p.get("hms")),
        "printError": print_error(p.get("print_error")),
        "ams": ams_units(p),
        "wifiSignal": wifi_dbm(p.get("wifi_signal")),
    }
    return out
