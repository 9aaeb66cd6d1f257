"""The control service against a real Mosquitto broker (TLS, user bblp / access code) that
replays the recorded printer payloads of research/bambu.md byte for byte.  No printer model
answers here: the test publishes as the printer, so every byte the service sees is a recorded
or deliberately broken payload."""

from __future__ import annotations

import asyncio
import json
import time

from services.common import subjects
from services.common.bus import Bus
from services.common.registry import Device
from services.control.bambu.commands import DEVELOPER_MODE_ERROR
from tests.control import recorded
from tests.control.conftest import MakeSim, StartControl, command, read_status, register, wait_for, wait_status
from tests.support.nats import free_port


async def test_recorded_full_state_then_p1_deltas(bus: Bus, make_sim: MakeSim, control: StartControl) -> None:
    sim = await make_sim(printer=False)
    await control()
    await register(bus, sim.device())
    first = await wait_status(bus, "p1", lambda s: s["state"] in ("connecting", "online"))
    assert first["id"] == "p1" and first["jobState"] == "UNKNOWN"
    await wait_for(lambda: bool(sim.requests("pushing", "pushall")), what="pushall on connect")
    (push,) = sim.requests("pushing", "pushall")
    assert push["user_id"] == "1" and isinstance(push["pushing"]["sequence_id"], str)
    assert sim.requests("info", "get_version")

    sim.fleet.publish(sim.serial, recorded.p1p_full())
    sim.fleet.publish(sim.serial, recorded.p1p_version())
    full = await wait_status(bus, "p1", lambda s: s["jobState"] == "FINISH" and s["model"] == "Bambu Lab P1P")
    assert full["state"] == "online" and full["connected"] and full["online"]
    assert full["percent"] == 100 and full["nozzleC"] == 25.9 and full["bedC"] == 23.1 and full["light"] == "on"
    assert full["camera"]["source"] == "bambu-jpeg" and full["camera"]["url"] == "tls://127.0.0.1:6000"
    assert full["firmware"] == "01.08.02.00" and full["lastUpdate"].endswith("Z")

    for raw in recorded.p1_deltas():
        sim.fleet.publish_raw(sim.serial, raw)
    merged = await wait_status(bus, "p1", lambda s: s["bedC"] == 22.5)
    assert merged["nozzleC"] == 28.0 and merged["wifiSignal"] == -46 and merged["jobState"] == "FINISH"

    # history for charts: the stream holds the statuses
    info = await bus.js.stream_info(subjects.STREAM_STATUS_HISTORY)
    assert info.state.messages >= 2 and info.config.max_age == 24 * 3600
    # never subscribed to the request topic (P1 printers drop such clients)
    subs = [line for line in sim.broker.log_text().splitlines() if " camhub-" in line and " device/" in line]
    assert subs and all(line.endswith(f" 0 device/{sim.serial}/report") for line in subs), subs


async def test_malformed_payloads_keep_last_good_status(bus: Bus, make_sim: MakeSim, control: StartControl) -> None:
    sim = await make_sim(printer=False)
    svc = await control()
    await register(bus, sim.device())
    await wait_for(lambda: bool(sim.requests("pushing", "pushall")), what="pushall on connect")
    sim.fleet.publish(sim.serial, recorded.x1c_full())
    good = await wait_status(bus, "p1", lambda s: s["jobState"] == "RUNNING")
    assert good["nozzleC"] == 219.0 and good["percent"] == 22

    bad: list[bytes] = [
        b"",
        b"\x00\xff\xfe garbage",
        b"{not json",
        b"[1, 2, 3]",
        b'"print"',
        b"[" * 100000,
        json.dumps({"print": "push_status"}).encode(),
        json.dumps({"print": ["a"]}).encode(),
        json.dumps(
            {"print": {"command": "push_status", "msg": 1, "nozzle_temper": "hot", "mc_percent": [], "hms": "x"}}
        ).encode(),
        json.dumps(
            {"print": {"command": "push_status", "msg": 1, "device": {"bed": {"info": {"temp": "zz"}}}}}
        ).encode(),
        json.dumps({"print": {"command": "push_status", "msg": 1, "ams": {"ams": "nope", "tray_now": {}}}}).encode(),
        json.dumps({"print": {"command": "push_status", "msg": 1, "lights_report": [{"node": 1}, "x"]}}).encode(),
        json.dumps({"info": {"command": "get_version", "module": "x"}, "system": 5}).encode(),
        b'{"print": {"command": "push_status", "msg": 1, "bed_temper": NaN}}',
    ]
    for raw in bad:
        sim.fleet.publish_raw(sim.serial, raw)
    # invalid UTF-8 inside an otherwise good delta is repaired, not dropped
    sim.fleet.publish_raw(
        sim.serial,
        b'{"print":{"subtask_name":"Gridfinity \xe5 box","mc_percent":"23","command":"push_status","msg":1}}',
    )
    after = await wait_status(bus, "p1", lambda s: s["percent"] == 23)
    assert after["jobName"] == "Gridfinity \ufffd box"
    assert after["nozzleC"] == 219.0 and after["bedC"] == 60.0 and after["hms"] == good["hms"]
    assert after["ams"] == good["ams"] and after["state"] == "online"
    # an unknown gcode_state is shown as UNKNOWN, not an error
    sim.fleet.publish(sim.serial, {"print": {"command": "push_status", "msg": 1, "gcode_state": "WARP_DRIVE"}})
    await wait_status(bus, "p1", lambda s: s["jobState"] == "UNKNOWN")
    # the failed merges asked for a fresh full state (rate limited: not once per bad payload)
    await wait_for(lambda: len(sim.requests("pushing", "pushall")) >= 2, timeout=3, what="pushall after bad reports")
    await asyncio.sleep(0.6)
    assert len(sim.requests("pushing", "pushall")) == 2
    assert svc.workers["p1"].link is not None and svc.workers["p1"].link.connects == 1


async def test_delta_before_full_state_requests_pushall(bus: Bus, make_sim: MakeSim, control: StartControl) -> None:
    sim = await make_sim(printer=False)
    await control(PUSHALL_MIN_SECONDS="0.2")
    await register(bus, sim.device())
    await wait_for(lambda: len(sim.requests("pushing", "pushall")) == 1, what="connect pushall")
    await asyncio.sleep(0.25)  # let the pushall rate limit pass
    sim.fleet.publish_raw(sim.serial, recorded.p1_deltas()[0])
    await wait_for(lambda: len(sim.requests("pushing", "pushall")) == 2, what="pushall after a failed merge")
    status = await wait_status(bus, "p1", lambda s: s["bedC"] == 25.6)
    assert status["camera"]["source"] == "none"  # no full report yet


async def test_commands_time_out_and_bad_commands_are_rejected(
    bus: Bus, make_sim: MakeSim, control: StartControl
) -> None:
    sim = await make_sim(printer=False)
    await control(command_timeout=1.0)
    await register(bus, sim.device())
    await wait_status(bus, "p1", lambda s: s["connected"])
    await wait_for(lambda: bool(sim.requests("pushing", "pushall")), what="pushall")
    started = time.monotonic()
    reply = await command(bus, "p1", {"type": "light", "on": True})
    assert reply == {"ok": False, "status": 504, "error": "the printer did not acknowledge the command within 1 s"}
    assert 0.9 <= time.monotonic() - started < 3
    (sent,) = sim.requests("system", "ledctrl")
    assert sent["user_id"] == "1" and sent["system"]["led_mode"] == "on" and int(sent["system"]["sequence_id"]) > 50000
    for body, match in (
        ({"type": "fly"}, "unknown command type"),
        ({"type": "speed", "level": 9}, "level"),
        ({"type": "gcode"}, "line"),
    ):
        reply = await command(bus, "p1", body)
        assert reply["ok"] is False and reply["status"] == 400 and match in reply["error"]
    raw = await bus.request(subjects.device_cmd("p1"), b"\xc1 not msgpack", timeout=3)
    assert b"not msgpack" in raw.data
    # a late or foreign ack never confuses later commands: answer the timed-out one now, then a new one
    sim.fleet.publish(sim.serial, {"system": {**sent["system"], "result": "success"}})
    seqs: list[str] = []

    def ack(serial: str, obj: dict[str, object]) -> None:
        inner = obj.get("system")
        if isinstance(inner, dict):
            seqs.append(str(inner["sequence_id"]))
            sim.fleet.publish(serial, {"system": {**inner, "result": "failed", "reason": "mqtt message verify failed"}})

    sim.fleet.on_request = ack
    reply = await command(bus, "p1", {"type": "light", "on": False})
    assert reply == {"ok": False, "status": 403, "error": DEVELOPER_MODE_ERROR}
    assert seqs and int(seqs[0]) > int(sent["system"]["sequence_id"])


async def test_not_connected_is_409_and_backoff_grows(bus: Bus, control: StartControl) -> None:
    svc = await control(BACKOFF_MIN_SECONDS="1", BACKOFF_MAX_SECONDS="30")
    closed_port = free_port()
    await register(
        bus,
        Device(
            id="gone",
            kind="bambu",
            host="127.0.0.1",
            serial="X1",
            access_code="a",
            mqtt_port=closed_port,
            camera_port=6000,
        ),
    )
    status = await wait_status(bus, "gone", lambda s: s["state"] == "offline")
    assert status["connected"] is False and "refused" in status["reason"]
    reply = await command(bus, "gone", {"type": "pause"})
    assert reply["status"] == 409 and "not connected" in reply["error"] and "refused" in reply["error"]
    started = time.monotonic()
    link = svc.workers["gone"].link
    assert link is not None
    base = link.attempts
    await wait_for(lambda: link.attempts >= base + 2, timeout=8, what="two more attempts")
    # 1 s, 2 s, 4 s ... : two more attempts take at least 1 + 2 s minus the time already waited
    assert time.monotonic() - started >= 1.5
    assert await read_status(bus, "nobody") is None
