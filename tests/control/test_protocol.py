"""Pure protocol logic against the recorded payloads of research/bambu.md: decoding, merging,
normalizing, HMS codes.  No I/O: these are the functions the control service runs on every
report."""

from __future__ import annotations

from typing import Any

import pytest

from services.control.bambu import hms, normalize
from services.control.bambu.fields import sanitize_print, to_number
from services.control.bambu.merge import PrintState, deep_merge
from services.control.bambu.payload import ReportError, decode_report
from tests.control import recorded


def test_decode_recorded_and_reject_malformed() -> None:
    for raw in recorded.p1_deltas():
        assert decode_report(raw).obj["print"]["command"] == "push_status"
    bad = {
        b"": "empty",
        b"{not json": "not JSON",
        b"[1, 2]": "JSON list",
        b'"print"': "JSON str",
        b"[" * 5000 + b"]" * 5000: "nests",
        ('{"a": ' + "[" * 40 + "1" + "]" * 40 + "}").encode(): "deeper",
        b"{" + b" " * (1 << 20) + b"}": "larger",
    }
    for data, why in bad.items():
        with pytest.raises(ReportError, match=why):
            decode_report(data)


def test_invalid_utf8_is_repaired_not_dropped() -> None:
    raw = b'{"print":{"subtask_name":"sensor_altanl\xe5s_v2","command":"push_status","msg":1}}'
    report = decode_report(raw)
    assert report.repaired
    assert report.obj["print"]["subtask_name"] == "sensor_altanl\ufffds_v2"


def test_deep_merge_objects_recursive_arrays_replaced() -> None:
    base = {"a": {"b": 1, "c": {"d": 2}}, "arr": [1, 2, 3], "x": 1}
    deep_merge(base, {"a": {"c": {"e": 3}}, "arr": [9], "x": {"now": "object"}})
    assert base == {"a": {"b": 1, "c": {"d": 2, "e": 3}}, "arr": [9], "x": {"now": "object"}}


def test_recorded_p1_deltas_merge_into_full_state() -> None:
    state = PrintState()
    assert state.apply(recorded.p1p_full()["print"]).kind == "full"
    for raw in recorded.p1_deltas():
        result = state.apply(decode_report(raw).obj["print"])
        assert result.kind == "delta" and not result.failed
    data = state.data
    assert data["bed_temper"] == 22.5 and data["wifi_signal"] == "-46dBm" and data["nozzle_temper"] == 28
    assert data["gcode_state"] == "FINISH" and data["vt_tray"]["tray_type"] == "PETG"  # untouched fields kept
    status = normalize.normalize_print(data)
    assert status["bedC"] == 22.5 and status["nozzleC"] == 28.0 and status["wifiSignal"] == -46


def test_h2d_fragments_merge_into_device_tree() -> None:
    state = PrintState()
    state.apply(recorded.x1c_full()["print"])
    frags = recorded.h2d_fragments()
    state.apply({"command": "push_status", "msg": 1, **frags["push_left_extruder"]})
    state.apply({"command": "push_status", "msg": 1, **frags["push_alt_nozzle_info"]})
    device = state.data["device"]
    assert device["extruder"] == {"state": 274}
    assert device["fan"] == 57130  # sibling kept by the recursive merge
    assert [n["type"] for n in device["nozzle"]["info"]] == ["HS00", "HX05"]  # array replaced whole
    assert device["nozzle"]["0"]["temp"] == 14418139


def test_delta_before_full_state_is_a_failed_merge_and_pushall_is_rate_limited() -> None:
    state = PrintState(pushall_min_seconds=15)
    state.pushall_sent(0.0)
    result = state.apply(decode_report(recorded.p1_deltas()[0]).obj["print"])
    assert result.failed and state.data["bed_temper"] == 25.625
    assert not state.wants_pushall(5.0)  # the connect-time pushall was 5 s ago
    assert state.wants_pushall(15.0)
    state.pushall_sent(15.0)
    assert not state.wants_pushall(16.0)
    state.apply(recorded.p1p_full()["print"])
    assert state.complete and not state.wants_pushall(100.0)


def test_wrong_types_keep_last_good_value() -> None:
    state = PrintState()
    state.apply(recorded.x1c_full()["print"])
    result = state.apply(
        {"command": "push_status", "msg": 1, "nozzle_temper": "hot", "mc_percent": "23", "hms": "x", "ams": 5}
    )
    assert result.failed and set(result.rejected_fields) == {"nozzle_temper", "hms", "ams"}
    assert state.data["nozzle_temper"] == 219.0 and state.data["mc_percent"] == "23"
    assert state.data["hms"] == [{"attr": 201327360, "code": 196615}]
    for bad in ("just a string", 7, None, ["list"]):
        assert state.apply(bad).kind == "rejected"
    assert state.data["nozzle_temper"] == 219.0


def test_command_echo_is_not_state() -> None:
    state = PrintState()
    state.apply(recorded.x1c_full()["print"])
    result = state.apply({"command": "gcode_line", "param": "M104 S0\n", "sequence_id": "50001", "result": "success"})
    assert result.kind == "ack" and "param" not in state.data


def test_to_number() -> None:
    assert to_number("22") == 22 and to_number(" 25.5 ") == 25.5 and to_number(3) == 3
    bad: object
    for bad in (True, float("nan"), float("inf"), "abc", "", None, [], "1e999"):
        assert to_number(bad) is None
    clean, rejected = sanitize_print({"mc_percent": "7", "gcode_state": 3, "unknown": {"kept": True}})
    assert clean == {"mc_percent": "7", "unknown": {"kept": True}} and rejected == ["gcode_state"]


def test_normalize_x1c_running() -> None:
    out = normalize.normalize_print(recorded.x1c_full()["print"])
    assert out["jobState"] == "RUNNING" and out["percent"] == 22 and out["remainingMinutes"] == 163
    assert (out["nozzleC"], out["nozzleTargetC"], out["bedC"], out["bedTargetC"]) == (219.0, 220.0, 60.0, 60.0)
    assert out["chamberC"] == 36.0 and out["light"] == "on"
    assert (out["layer"], out["totalLayers"]) == (2, 37)
    assert out["jobName"] == "CyberBrick Gridfinity Organizer Box"
    assert out["stage"] == "printing" and out["speedLevel"] == 2 and out["speedPercent"] == 100
    assert out["hms"] == [{"code": "HMS_0C00_0300_0003_0007", "severity": "common", "message": ""}]
    assert out["wifiSignal"] == -46 and out["printError"] is None
    (unit,) = out["ams"]
    assert unit["id"] == 128 and unit["humidity"] == 3 and unit["tempC"] == 29.6
    assert unit["trays"][0]["type"] == "PLA" and unit["trays"][0]["active"] is True  # tray_now "128"
    assert normalize.signing_required(recorded.x1c_full()["print"]) is None


def test_normalize_p1p_finished() -> None:
    out = normalize.normalize_print(recorded.p1p_full()["print"])
    assert out["jobState"] == "FINISH" and out["percent"] == 100 and out["remainingMinutes"] == 0
    assert out["nozzleC"] == 25.9 and out["chamberC"] == 5.0 and out["stage"] == "idle"
    assert out["jobName"] == "sensor_altanl\u00e5s_v2_v3" and out["ams"] == [] and out["hms"] == []


def test_packed_device_temperatures_win_over_legacy() -> None:
    p: dict[str, Any] = {
        "nozzle_temper": 0,
        "chamber_temper": 0,
        "device": {
            "bed": {"info": {"temp": 6553700}},
            "ctc": {"info": {"temp": (0 << 16) | 38}},
            "extruder": {
                "state": 0x10 | 2,
                "info": [{"id": 0, "temp": (220 << 16) | 30}, {"id": 1, "temp": (250 << 16) | 249}],
            },
        },
    }
    out = normalize.temperatures(p)
    assert (out["bedC"], out["bedTargetC"]) == (100.0, 100.0)
    assert out["chamberC"] == 38.0
    assert (out["nozzleC"], out["nozzleTargetC"]) == (249.0, 250.0)  # active extruder 1
    assert normalize.unpack_temp("junk") is None and normalize.unpack_temp(-1) is None
    p["device"]["bed"]["info"]["temp"] = "garbage"
    assert normalize.temperatures(p)["bedC"] is None


def test_unknown_and_odd_values() -> None:
    assert normalize.job_state("FLYING") == "UNKNOWN" and normalize.job_state(None) == "UNKNOWN"
    assert normalize.job_state("slicing") == "PREPARE"
    out = normalize.normalize_print(
        {
            "gcode_state": "WAT",
            "mc_percent": 250,
            "mc_remaining_time": -5,
            "spd_lvl": 9,
            "stg_cur": 99,
            "lights_report": "x",
        }
    )
    assert out["jobState"] == "UNKNOWN" and out["percent"] == 100 and out["remainingMinutes"] == 0
    assert out["speedLevel"] is None and out["stage"] == "stage 99" and out["light"] == "unknown"
    assert normalize.normalize_print({})["nozzleC"] is None
    assert normalize.signing_required({"fun": "3EC1AFFF9CFF"}) is True
    assert normalize.signing_required({"fun": "3EC18FFF9CFF"}) is False
    assert normalize.signing_required({"fun": "zz"}) is None


def test_hms_codes() -> None:
    assert hms.hms_code(50331904, 65543) == "HMS_0300_0100_0001_0007"  # ha-bambulab test_models.py
    items = [{"attr": 0x05000500, "code": 0x00010007}, {"attr": "bad"}, "junk", {"attr": 1, "code": 0x00040001}]
    decoded = hms.decode_hms(items)
    assert decoded[0]["code"] == "HMS_0500_0500_0001_0007" and decoded[0]["severity"] == "fatal"
    assert "Developer Mode" in decoded[0]["message"]
    assert decoded[1] == {"code": "HMS_0000_0001_0004_0001", "severity": "info", "message": ""}
    assert len(decoded) == 2 and hms.decode_hms("x") == []
    assert hms.print_error(50348044) == "0300_400C" and hms.print_error(0) is None and hms.print_error(-3) is None


def test_status_snapshot_shape_and_states() -> None:
    from services.control.bambu.status import PrinterStatus

    st = PrinterStatus("p1", name="Studio X1", host="10.0.0.5")
    first = st.snapshot(now_ms=1_768_767_300_000)
    assert first["state"] == "connecting" and not first["connected"] and not first["online"]
    assert set(first) == {
        "id", "name", "connected", "online", "state", "reason", "jobState", "percent", "remainingMinutes",
        "nozzleC", "nozzleTargetC", "bedC", "bedTargetC", "chamberC", "light", "layer", "totalLayers", "jobName",
        "stage", "speedLevel", "speedPercent", "hms", "printError", "ams", "wifiSignal", "lastUpdate", "lastSeen",
        "model", "firmware", "camera", "ts",
    }  # fmt: skip
    st.set_connection("online", connected=True)
    assert st.effective_state() == ("connecting", "connected; waiting for the first report")
    st.print_state.apply(recorded.x1c_full()["print"])
    st.last_seen_ms = st.last_report_ms = 1_768_767_300_000
    snap = st.snapshot()
    assert snap["state"] == "online" and snap["online"] and snap["lastUpdate"] == "2026-01-18T20:15:00Z"
    assert st.apply_info({"command": "get_version", "module": [{"name": "ota", "product_name": "X1C", "sw_ver": "1"}]})
    st.silent = True
    assert st.snapshot()["state"] == "offline" and not st.snapshot()["online"]
    st.silent = False
    st.print_state.apply({"command": "push_status", "msg": 1, "fun": "3EC1AFFF9CFF"})
    assert st.effective_state()[0] == "developer_mode_required" and st.snapshot()["online"]
    volatile = PrinterStatus.change_key(snap)
    assert "ts" not in volatile and "wifiSignal" not in volatile and "nozzleC" in volatile
    with pytest.raises(ValueError, match="unknown printer state"):
        st.set_connection("sleeping", connected=False)
