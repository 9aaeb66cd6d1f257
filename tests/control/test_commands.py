"""Command builders, acknowledgement reading and the camera URL bootstrap (pure functions),
checked against the exact shapes in research/bambu.md sections 3-4."""

from __future__ import annotations

import pytest

from services.control.bambu import camera, commands


def test_command_shapes() -> None:
    seq = commands.SequenceCounter()
    ids = [seq.next() for _ in range(3)]
    assert ids == ["50001", "50002", "50003"] and all(isinstance(i, str) for i in ids)
    pause = commands.build_command({"type": "pause"}, "50001")
    assert pause.payload == {"user_id": "1", "print": {"sequence_id": "50001", "command": "pause", "param": ""}}
    assert pause.qos == 1 and pause.cls == "print"
    for kind in ("resume", "stop"):
        assert commands.build_command({"type": kind}, "7").payload["print"] == {
            "sequence_id": "7",
            "command": kind,
            "param": "",
        }
    light = commands.build_command({"type": "light", "on": False}, "8")
    assert light.payload == {
        "user_id": "1",
        "system": {
            "sequence_id": "8",
            "command": "ledctrl",
            "led_node": "chamber_light",
            "led_mode": "off",
            "led_on_time": 500,
            "led_off_time": 500,
            "loop_times": 0,
            "interval_time": 0,
        },
    }
    assert commands.build_command({"type": "speed", "level": 3}, "9").payload["print"]["param"] == "3"
    assert commands.build_command({"type": "speed", "level": "ludicrous"}, "9").payload["print"]["param"] == "4"
    gcode = commands.build_command({"type": "gcode", "line": "M104 S220"}, "10")
    assert gcode.payload["print"] == {"sequence_id": "10", "command": "gcode_line", "param": "M104 S220\n"}
    assert commands.pushall("1").payload["pushing"] == {
        "sequence_id": "1",
        "command": "pushall",
        "version": 1,
        "push_target": 1,
    }
    assert commands.start_pushing("2").payload["pushing"] == {"sequence_id": "2", "command": "start"}
    assert commands.get_version("3").payload["info"] == {"sequence_id": "3", "command": "get_version"}


@pytest.mark.parametrize(
    ("req", "match"),
    [
        ("pause", "map"),
        ({}, "unknown command type"),
        ({"type": "explode"}, "unknown command type"),
        ({"type": "light"}, "'on'"),
        ({"type": "light", "on": "yes"}, "'on'"),
        ({"type": "speed", "level": 5}, "'level'"),
        ({"type": "speed", "level": 2.5}, "'level'"),
        ({"type": "speed"}, "'level'"),
        ({"type": "gcode", "line": ""}, "non-empty"),
        ({"type": "gcode", "line": 5}, "non-empty"),
        ({"type": "gcode", "line": "G28\x00"}, "control characters"),
        ({"type": "gcode", "line": "M117 caf\u00e9"}, "ASCII"),
        ({"type": "gcode", "line": "G1 X1\n" * 1000}, "longer"),
    ],
)
def test_bad_commands(req: object, match: str) -> None:
    with pytest.raises(commands.CommandError, match=match) as info:
        commands.build_command(req, "1")
    assert info.value.status == 400


def test_acks() -> None:
    ok = commands.interpret_ack({"command": "gcode_line", "result": "SUCCESS", "reason": "SUCCESS", "err_code": 0})
    assert ok.ok
    assert commands.interpret_ack({"command": "ledctrl", "result": "success"}).ok
    verify = commands.interpret_ack(
        {"command": "gcode_line", "result": "failed", "reason": "mqtt message verify failed", "err_code": 84033543}
    )
    assert not verify.ok and verify.status == 403 and verify.developer_mode
    assert verify.error == "the printer requires LAN-only + Developer Mode for control"
    # node-bambu #4: no result at all, only the err_code
    assert commands.interpret_ack({"sequence_id": "2008", "command": "resume", "err_code": 84033543}).developer_mode
    refused = commands.interpret_ack({"command": "pause", "result": "fail", "reason": "no print job is running"})
    assert not refused.ok and refused.status == 502 and "no print job is running" in refused.error
    coded = commands.interpret_ack({"command": "pause", "result": "failed", "err_code": 12})
    assert "0x0000000c" in coded.error
    report = {
        "print": {"command": "push_status", "sequence_id": "50001"},
        "system": {"command": "ledctrl", "sequence_id": 50002, "result": "success"},
        "info": {"command": "get_version", "sequence_id": True},
        "junk": "x",
    }
    assert [(c, cmd, s) for c, cmd, s, _ in commands.find_acks(report)] == [("system", "ledctrl", "50002")]


def test_camera_bootstrap() -> None:
    info = camera.camera_info({"rtsp_url": "rtsps://192.168.178.140:322/streaming/live/1"}, host="10.0.0.5")
    assert info == {
        "source": "rtsp",
        "url": "rtsps://10.0.0.5:322/streaming/live/1",
        "host": "10.0.0.5",
        "port": 322,
        "disabled": False,
        "reason": "",
    }
    old = camera.camera_info({"rtsp_url": "rtsps://192.168.1.64/streaming/live/1"}, host="printer.lan")
    assert old["url"] == "rtsps://printer.lan:322/streaming/live/1"  # port added, wrong host replaced
    disabled = camera.camera_info({"rtsp_url": "disable"}, host="10.0.0.5")
    assert disabled["disabled"] and "LAN Only Liveview" in disabled["reason"] and disabled["url"] == ""
    p1 = camera.camera_info({"ipcam_dev": "1"}, host="10.0.0.6", complete=True)
    assert p1["source"] == "bambu-jpeg" and p1["url"] == "tls://10.0.0.6:6000" and p1["port"] == 6000
    assert camera.camera_info(None, host="h", model="Bambu Lab P1S")["source"] == "bambu-jpeg"
    assert camera.camera_info(None, host="h")["source"] == "none"
    assert "no camera" in camera.camera_info(None, host="h", complete=True)["reason"]
    assert (
        camera.camera_info({"rtsp_url": "http://x/y"}, host="h")["reason"]
        == "the printer reported an unusable camera URL"
    )
    override = camera.camera_info(
        {"rtsp_url": "disable"}, host="10.0.0.5", override_url="rtsps://bblp:secret@cam.lan:8322/live"
    )
    assert override["url"] == "rtsps://cam.lan:8322/live" and "secret" not in str(override)
    v6 = camera.camera_info({"rtsp_url": "rtsps://1.2.3.4/streaming/live/1"}, host="fd00::5")
    assert v6["url"] == "rtsps://[fd00::5]:322/streaming/live/1"
    creds = camera.with_credentials("rtsps://10.0.0.5:322/streaming/live/1", "ab:c/d@")
    assert creds == "rtsps://bblp:ab%3Ac%2Fd%40@10.0.0.5:322/streaming/live/1"
