"""A simulated Bambu Lab printer's behaviour, without I/O: what it reports and how it answers.

Driven by explicit times (seconds on any monotonic clock), so tests can step it.  Behaviour
follows research/bambu.md:

* reports: ``{"print": {..., "command": "push_status", "sequence_id": <own counter>}}``; ``x1``
  mode pushes the full object every period without ``msg`` (X1 on LAN), ``p1`` mode pushes
  only what changed with ``msg: 1`` (P1/A1); ``pushing.pushall`` always gets the full object
  with ``msg: 0``.  ``silent`` starts with periodic pushes off until ``pushing.start``.
* a job that loops: IDLE -> PREPARE (bed 60 C, nozzle 220 C, heating as a first-order lag) ->
  RUNNING (percent, layers, remaining minutes; speed level scales the rate) -> FINISH, then a
  new job after ``idle_seconds``.  ``pause``/``resume``/``stop`` (stop -> FAILED with
  ``print_error`` 50348044, cleared 2 s later), ``print_speed``, ``gcode_line`` (``M104``/``M140``
  set targets), ``system.ledctrl``.
* replies echo the request (class, ``command``, ``sequence_id``, parameters) plus
  ``result``/``reason``; commands without ``sequence_id`` are dropped silently (bambulabs_api
  #183); ``require_signing`` answers every ``print.*`` command with
  ``result: failed, reason: "mqtt message verify failed", err_code: 84033543`` and raises HMS
  ``0500_0500_0001_0007``, sets ``fun`` bit 0x20000000, and still obeys ``system``/``pushing``/
  ``info``; ``no_ack`` drops every ``print``/``system`` command (firmware that never answers).
"""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass
from typing import Any

CANCELLED_ERROR = 50348044  # 0x0300400C
VERIFY_FAILED = 84033543  # 0x05024007
SIGNING_HMS = {"attr": 0x05000500, "code": 0x00010007}
SPEED_FACTOR = {1: 0.5, 2: 1.0, 3: 1.24, 4: 1.66}
AMBIENT_C = 25.0
_GCODE_TEMP = re.compile(r"^\s*(M104|M109|M140|M190)\b.*?\bS(\d+(?:\.\d+)?)", re.I | re.M)


@dataclass
class PrinterOptions:
    """How one simulated printer behaves (see module docstring)."""

    serial: str = "01S00C000000001"
    mode: str = "x1"
    require_signing: bool = False
    silent: bool = False
    no_ack: bool = False
    #: ``x1``: the ``ipcam.rtsp_url`` to report ("disable" when no camera runs).
    rtsp_url: str = "disable"
    job_seconds: float = 300.0
    idle_seconds: float = 20.0
    #: Time constant of heating/cooling, seconds.
    heat_tau: float = 3.0
    job_name: str = "camhub demo cube"
    total_layers: int = 120
    seed: int = 1

    def __post_init__(self) -> None:
        if self.mode not in ("x1", "p1"):
            raise ValueError(f"mode must be x1 or p1, not {self.mode!r}")


def diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """What changed from ``old`` to ``new``: objects compared recursively, anything else (arrays
    too) sent whole when different - the encoding side of the merge rule in OrcaSlicer
    ``json_diff.cpp``.  Keys missing from ``new`` are not expressed (the protocol cannot)."""
    out: dict[str, Any] = {}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            sub = diff(before, value)
            if sub:
                out[key] = sub
        elif before != value or key not in old:
            out[key] = value
    return out


class PrinterModel:
    """One printer's state machine; :meth:`periodic` and :meth:`handle` return the report
    objects to publish on ``device/<serial>/report``."""

    def __init__(self, opts: PrinterOptions, now: float) -> None:
        self.opts = opts
        self.serial = opts.serial
        self.pushing = not opts.silent
        self.rng = random.Random(opts.seed)
        self.seq = 1000
        self.last = now
        self.phase = "IDLE"
        self.phase_until = now + 2.0
        self.progress = 0.0
        self.bed = AMBIENT_C
        self.nozzle = AMBIENT_C
        self.chamber = AMBIENT_C
        self.bed_target = 0.0
        self.nozzle_target = 0.0
        self.speed = 2
        self.light = "on"
        self.print_error = 0
        self.print_error_until = 0.0
        self.hms: list[dict[str, int]] = []
        self.wifi = -45
        self.requests = 0
        self._sent: dict[str, Any] = {}

    # --- simulation ----------------------------------------------------------------------------

    def advance(self, now: float) -> None:
        """Move the simulation to ``now``."""
        dt = max(0.0, now - self.last)
        self.last = now
        if dt == 0:
            return
        k = 1 - math.exp(-dt / self.opts.heat_tau)
        self.bed += ((self.bed_target or AMBIENT_C) - self.bed) * k
        self.nozzle += ((self.nozzle_target or AMBIENT_C) - self.nozzle) * k
        self.chamber += ((AMBIENT_C + (self.bed - AMBIENT_C) * 0.2) - self.chamber) * k
        if self.print_error and now >= self.print_error_until:
            self.print_error = 0
        if self.phase in ("IDLE", "FINISH", "FAILED") and now >= self.phase_until:
            self._start_job()
        elif (
            self.phase == "PREPARE"
            and abs(self.bed - self.bed_target) < 1.5
            and abs(self.nozzle - self.nozzle_target) < 3
        ):
            self.phase = "RUNNING"
        elif self.phase == "RUNNING":
            self.progress = min(1.0, self.progress + dt * SPEED_FACTOR[self.speed] / self.opts.job_seconds)
            if self.progress >= 1.0:
                self._end("FINISH", now)
        self.wifi = max(-70, min(-35, self.wifi + self.rng.choice((-1, 0, 0, 1))))

    def _start_job(self) -> None:
        self.phase = "PREPARE"
        self.progress = 0.0
        self.bed_target, self.nozzle_target = 60.0, 220.0

    def _end(self, phase: str, now: float) -> None:
        self.phase = phase
        self.bed_target = self.nozzle_target = 0.0
        self.phase_until = now + self.opts.idle_seconds

    def _stage(self) -> int:
        if self.phase == "PREPARE":
            return 2 if abs(self.bed - self.bed_target) >= 1.5 else 7
        return {"RUNNING": 0, "PAUSE": 16}.get(self.phase, 255)

    def state(self) -> dict[str, Any]:
        """The full ``print`` object (without ``command``/``msg``/``sequence_id``)."""
        x1 = self.opts.mode == "x1"
        active = self.phase in ("PREPARE", "RUNNING", "PAUSE")
        remaining_s = (1 - self.progress) * self.opts.job_seconds / SPEED_FACTOR[self.speed]
        lights = [{"node": "chamber_light", "mode": self.light}]
        if x1:
            lights.append({"node": "work_light", "mode": "off"})
        ipcam: dict[str, Any] = {
            "ipcam_dev": "1",
            "ipcam_record": "enable",
            "timelapse": "disable",
            "resolution": "1080p" if x1 else "",
            "tutk_server": "disable",
            "mode_bits": 2 if x1 else 3,
        }
        if x1:
            ipcam["rtsp_url"] = self.opts.rtsp_url
        state: dict[str, Any] = {
            "gcode_state": self.phase,
            "mc_percent": int(self.progress * 100),
            "mc_remaining_time": math.ceil(remaining_s / 60) if active else 0,
            "mc_print_stage": "2" if active else "1",
            "stg": [2, 14, 13] if active else [],
            "stg_cur": self._stage(),
            "nozzle_temper": round(self.nozzle, 1),
            "nozzle_target_temper": self.nozzle_target,
            "bed_temper": round(self.bed, 1),
            "bed_target_temper": self.bed_target,
            "chamber_temper": round(self.chamber, 1) if x1 else 5,
            "layer_num": math.ceil(self.progress * self.opts.total_layers),
            "total_layer_num": self.opts.total_layers if self.phase != "IDLE" else 0,
            "subtask_name": self.opts.job_name if self.phase != "IDLE" else "",
            "gcode_file": "/data/Metadata/plate_1.gcode" if active else "",
            "print_type": "local" if active else "idle",
            "spd_lvl": self.speed,
            "spd_mag": int(SPEED_FACTOR[self.speed] * 100),
            "print_error": self.print_error,
            "hms": list(self.hms),
            "lights_report": lights,
            "ipcam": ipcam,
            "wifi_signal": f"{self.wifi}dBm",
            "sdcard": True,
            "nozzle_diameter": "0.4",
            "ams": self._ams(x1),
        }
        if x1:
            state["fun"] = "3EC1AFFF9CFF" if self.opts.require_signing else "3EC18FFF9CFF"
        return state

    def _ams(self, x1: bool) -> dict[str, Any]:
        units = []
        if x1:
            colors = ("F7D959FF", "FFFFFFFF", "000000FF", "C12E1FFF")
            trays = [
                {
                    "id": str(i),
                    "tray_type": "PLA",
                    "tray_sub_brands": "PLA Basic",
                    "tray_color": c,
                    "remain": 80 - 10 * i,
                }
                for i, c in enumerate(colors)
            ]
            units.append({"id": "0", "humidity": "3", "temp": "24.5", "tray": trays})
        return {"ams": units, "ams_exist_bits": "1" if x1 else "0", "tray_now": "0" if x1 else "254", "version": 1}

    # --- reports -------------------------------------------------------------------------------

    def _push(self, body: dict[str, Any], msg: int | None) -> dict[str, Any]:
        self.seq += 1
        inner = {**body, "command": "push_status", "sequence_id": str(self.seq)}
        if msg is not None:
            inner["msg"] = msg
        return {"print": inner}

    def full_report(self) -> dict[str, Any]:
        """A ``pushall`` answer: the full state with ``msg: 0``."""
        state = self.state()
        self._sent = json.loads(json.dumps(state))
        return self._push(state, 0)

    def periodic(self, now: float) -> list[dict[str, Any]]:
        """Advance to ``now`` and return the periodic push (none while pushing is stopped, or in
        ``p1`` mode when nothing changed)."""
        self.advance(now)
        if not self.pushing:
            return []
        if self.opts.mode == "x1":
            state = self.state()
            self._sent = state
            return [self._push(state, None)]
        state = self.state()
        delta = diff(self._sent, state)
        self._sent = json.loads(json.dumps(state))
        return [self._push(delta, 1)] if delta else []

    # --- requests ------------------------------------------------------------------------------

    def handle(self, payload: bytes, now: float) -> list[dict[str, Any]]:
        """Answer one message from ``device/<serial>/request``; returns the reports to publish."""
        self.advance(now)
        try:
            obj = json.loads(payload)
        except ValueError:
            return []
        if not isinstance(obj, dict):
            return []
        out: list[dict[str, Any]] = []
        for cls, inner in obj.items():
            if not isinstance(inner, dict) or not isinstance(inner.get("command"), str):
                continue
            self.requests += 1
            out.extend(self._one(cls, inner, now))
        return out

    def _one(self, cls: str, inner: dict[str, Any], now: float) -> list[dict[str, Any]]:
        command = inner["command"]
        if cls == "pushing":
            if command == "pushall":
                return [self.full_report()]
            if command == "start":
                self.pushing = True
            elif command == "stop":
                self.pushing = False
            return []
        if cls == "info":
            return [self._version(inner)] if command == "get_version" else []
        if "sequence_id" not in inner or self.opts.no_ack or cls not in ("print", "system"):
            return []
        if cls == "system":
            if command != "ledctrl":
                return [self._ack(cls, inner, False, "unsupported command")]
            mode = inner.get("led_mode")
            if inner.get("led_node", "chamber_light") == "chamber_light" and mode in ("on", "off"):
                self.light = str(mode)
                return [self._ack(cls, inner, True)]
            return [self._ack(cls, inner, False, "bad led_node or led_mode")]
        if self.opts.require_signing:
            if SIGNING_HMS not in self.hms:
                self.hms.append(dict(SIGNING_HMS))
            return [self._ack(cls, inner, False, "mqtt message verify failed", VERIFY_FAILED)]
        return [self._print_command(inner, now)]

    def _print_command(self, inner: dict[str, Any], now: float) -> dict[str, Any]:
        command = inner["command"]
        if command == "pause":
            if self.phase not in ("RUNNING", "PREPARE"):
                return self._ack("print", inner, False, "no print job is running")
            self.phase = "PAUSE"
        elif command == "resume":
            if self.phase != "PAUSE":
                return self._ack("print", inner, False, "the print is not paused")
            self.phase = "RUNNING"
        elif command == "stop":
            if self.phase not in ("RUNNING", "PREPARE", "PAUSE"):
                return self._ack("print", inner, False, "no print job is running")
            self._end("FAILED", now)
            self.print_error, self.print_error_until = CANCELLED_ERROR, now + 2.0
        elif command == "print_speed":
            level = inner.get("param")
            if level not in ("1", "2", "3", "4"):
                return self._ack("print", inner, False, 'param must be "1".."4"')
            self.speed = int(level)
        elif command == "gcode_line":
            param = inner.get("param")
            if not isinstance(param, str):
                return self._ack("print", inner, False, "param must be a string")
            for code, value in _GCODE_TEMP.findall(param):
                if code.upper() in ("M104", "M109"):
                    self.nozzle_target = float(value)
                else:
                    self.bed_target = float(value)
        else:
            return self._ack("print", inner, False, "unsupported command")
        return self._ack("print", inner, True)

    def _ack(self, cls: str, inner: dict[str, Any], ok: bool, reason: str = "", err_code: int = 0) -> dict[str, Any]:
        reply = {**inner, "result": "success" if ok else "failed", "reason": reason or ("" if ok else "failed")}
        if err_code:
            reply["err_code"] = err_code
        return {cls: reply}

    def _version(self, inner: dict[str, Any]) -> dict[str, Any]:
        x1 = self.opts.mode == "x1"
        return {
            "info": {
                "command": "get_version",
                "sequence_id": inner.get("sequence_id", "0"),
                "module": [
                    {
                        "name": "ota",
                        "sw_ver": "01.08.05.00" if x1 else "01.08.02.00",
                        "hw_ver": "OTA",
                        "sn": self.serial,
                        "product_name": "Bambu Lab X1 Carbon" if x1 else "Bambu Lab P1S",
                    }
                ],
                "result": "success",
                "reason": "",
            }
        }
