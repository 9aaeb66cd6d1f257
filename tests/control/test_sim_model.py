"""The printer simulator's behaviour model (pure, stepped with explicit times), and that the
control service's merge of its ``msg: 1`` deltas reproduces the simulator's full state."""

from __future__ import annotations

import json

from services.control.bambu import commands
from services.control.bambu.merge import PrintState
from services.control.bambu.normalize import normalize_print
from services.sim.printer_model import PrinterModel, PrinterOptions


def _req(request: commands.Request) -> bytes:
    return json.dumps(request.payload).encode()


def _run_until(model: PrinterModel, start: float, phase: str, limit: float = 600) -> float:
    t = start
    while model.phase != phase and t < start + limit:
        t += 1.0
        model.periodic(t)
    assert model.phase == phase, f"stuck in {model.phase}"
    return t


def test_job_heats_progresses_and_finishes() -> None:
    model = PrinterModel(PrinterOptions(job_seconds=60, idle_seconds=5, heat_tau=2), 0.0)
    t = _run_until(model, 0.0, "PREPARE")
    t = _run_until(model, t, "RUNNING")
    state = model.state()
    assert state["bed_temper"] > 55 and state["nozzle_temper"] > 215 and state["stg_cur"] == 0
    t += 30
    model.periodic(t)
    mid = model.state()
    assert 40 <= mid["mc_percent"] <= 60 and 0 < mid["layer_num"] < 120 and mid["mc_remaining_time"] == 1
    t = _run_until(model, t, "FINISH")
    assert model.state()["bed_target_temper"] == 0
    _run_until(model, t, "PREPARE")  # the demo job loops


def test_x1_full_pushes_and_p1_deltas_merge_back() -> None:
    x1 = PrinterModel(PrinterOptions(mode="x1"), 0.0)
    (push,) = x1.periodic(1.0)
    assert "msg" not in push["print"] and push["print"]["gcode_state"] == "IDLE" and "fun" in push["print"]
    p1 = PrinterModel(PrinterOptions(mode="p1", job_seconds=30), 0.0)
    state = PrintState()
    state.apply(p1.full_report()["print"])
    for t in range(1, 80):
        for report in p1.periodic(float(t)):
            assert report["print"]["msg"] == 1
            assert not state.apply(report["print"]).failed
        expected = p1.state()
        got = {k: v for k, v in state.data.items() if k not in ("command", "msg", "sequence_id")}
        assert got == expected, t
    assert normalize_print(state.data)["jobState"] in ("RUNNING", "FINISH")


def test_commands_are_acked_with_sequence_id_and_change_state() -> None:
    model = PrinterModel(PrinterOptions(heat_tau=1), 0.0)
    (ack,) = model.handle(_req(commands.build_command({"type": "pause"}, "50001")), 0.5)
    assert ack["print"]["result"] == "failed" and ack["print"]["sequence_id"] == "50001"  # nothing to pause
    t = _run_until(model, 0.0, "RUNNING")
    (ack,) = model.handle(_req(commands.build_command({"type": "pause"}, "50002")), t)
    assert ack["print"]["result"] == "success"
    assert ack["print"]["command"] == "pause" and ack["print"]["param"] == "" and model.phase == "PAUSE"
    assert commands.interpret_ack(ack["print"]).ok
    model.handle(_req(commands.build_command({"type": "resume"}, "50003")), t)
    assert model.phase == "RUNNING"
    model.handle(_req(commands.build_command({"type": "speed", "level": 4}, "50004")), t)
    model.handle(_req(commands.build_command({"type": "light", "on": False}, "50005")), t)
    model.handle(_req(commands.build_command({"type": "gcode", "line": "M140 S70\nM104 S230"}, "50006")), t)
    state = model.state()
    assert state["spd_lvl"] == 4 and state["lights_report"][0]["mode"] == "off"
    assert (state["bed_target_temper"], state["nozzle_target_temper"]) == (70.0, 230.0)
    (ack,) = model.handle(_req(commands.build_command({"type": "stop"}, "50007")), t)
    assert ack["print"]["result"] == "success" and model.state()["gcode_state"] == "FAILED"
    assert model.state()["print_error"] == 50348044
    model.periodic(t + 3)
    assert model.state()["print_error"] == 0
    # firmware drops commands without sequence_id (bambulabs_api #183)
    assert model.handle(b'{"print": {"command": "resume", "param": ""}}', t) == []
    assert model.handle(b"not json", t) == [] and model.handle(b"[1]", t) == []
    (full,) = model.handle(_req(commands.pushall("50008")), t)
    assert full["print"]["msg"] == 0
    (version,) = model.handle(_req(commands.get_version("50009")), t)
    assert version["info"]["module"][0]["product_name"] == "Bambu Lab X1 Carbon"


def test_signing_required_refuses_print_commands_but_not_light() -> None:
    model = PrinterModel(PrinterOptions(require_signing=True, heat_tau=1), 0.0)
    _run_until(model, 0.0, "RUNNING")
    (ack,) = model.handle(_req(commands.build_command({"type": "pause"}, "50001")), 100)
    assert ack["print"]["err_code"] == 84033543 and ack["print"]["reason"] == "mqtt message verify failed"
    assert commands.interpret_ack(ack["print"]).developer_mode and model.phase == "RUNNING"
    assert model.state()["hms"] == [{"attr": 0x05000500, "code": 0x00010007}] and model.state()["fun"] == "3EC1AFFF9CFF"
    (ack,) = model.handle(_req(commands.build_command({"type": "light", "on": False}, "50002")), 100)
    assert ack["system"]["result"] == "success"


def test_silent_and_no_ack_modes() -> None:
    model = PrinterModel(PrinterOptions(silent=True, no_ack=True), 0.0)
    assert model.periodic(1.0) == []
    assert model.handle(_req(commands.build_command({"type": "light", "on": True}, "1")), 1.0) == []
    model.handle(_req(commands.start_pushing("2")), 1.0)
    assert len(model.periodic(2.0)) == 1
