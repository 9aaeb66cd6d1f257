"""The control service against the printer simulator (Mosquitto + the simulator's printer
model): commands acknowledged by the printer, Developer Mode refusal, P1 deltas, the silence
watchdog, reconnect after a broker restart, the client limit, wrong access codes, TLS trust
modes, live registry changes and the one-session-per-printer lease."""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from services.common import subjects
from services.common.bus import Bus, NoResponders
from services.common.registry import Registry
from services.control.bambu.camera import with_credentials
from services.control.bambu.commands import DEVELOPER_MODE_ERROR
from services.ingest.bambu_proto import FrameParser, auth_packet
from services.sim.printer_tls import generate
from tests.control.conftest import (
    ACCESS_CODE,
    MakeSim,
    StartControl,
    command,
    read_status,
    register,
    stop_control,
    wait_for,
    wait_status,
)


async def test_commands_are_acknowledged_by_the_printer(bus: Bus, make_sim: MakeSim, control: StartControl) -> None:
    sim = await make_sim(job_seconds=120)
    await control()
    await register(bus, sim.device())
    await wait_status(bus, "p1", lambda s: s["jobState"] == "RUNNING", timeout=15)
    assert await command(bus, "p1", {"type": "pause"}) == {"ok": True}
    await wait_status(bus, "p1", lambda s: s["jobState"] == "PAUSE" and s["stage"] == "paused by the user")
    assert await command(bus, "p1", {"type": "resume"}) == {"ok": True}
    assert await command(bus, "p1", {"type": "light", "on": False}) == {"ok": True}
    assert await command(bus, "p1", {"type": "speed", "level": 3}) == {"ok": True}
    assert await command(bus, "p1", {"type": "gcode", "line": "M140 S70"}) == {"ok": True}
    status = await wait_status(
        bus, "p1", lambda s: s["light"] == "off" and s["speedLevel"] == 3 and s["bedTargetC"] == 70.0
    )
    assert status["jobState"] == "RUNNING" and status["camera"]["disabled"] is True
    assert status["model"] == "Bambu Lab X1 Carbon" and status["state"] == "online"
    (gcode,) = sim.requests("print", "gcode_line")
    assert gcode["print"]["param"] == "M140 S70\n"
    seqs = [int(r[c]["sequence_id"]) for r in sim.requests() for c in ("print", "system") if c in r]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # monotonic per connection
    assert await command(bus, "p1", {"type": "stop"}) == {"ok": True}
    failed = await wait_status(bus, "p1", lambda s: s["jobState"] == "FAILED")
    assert failed["printError"] in ("0300_400C", None)
    refused = await command(bus, "p1", {"type": "pause"})
    assert refused == {"ok": False, "status": 502, "error": "the printer refused the command: no print job is running"}


async def test_developer_mode_required(bus: Bus, make_sim: MakeSim, control: StartControl) -> None:
    sim = await make_sim(require_signing=True)
    await control()
    await register(bus, sim.device())
    status = await wait_status(bus, "p1", lambda s: s["state"] == "developer_mode_required")
    assert status["reason"] == DEVELOPER_MODE_ERROR and status["online"] and status["connected"]
    await wait_status(bus, "p1", lambda s: s["jobState"] in ("PREPARE", "RUNNING"))
    reply = await command(bus, "p1", {"type": "pause"})
    assert reply == {"ok": False, "status": 403, "error": DEVELOPER_MODE_ERROR}
    assert await command(bus, "p1", {"type": "light", "on": False}) == {"ok": True}  # ledctrl needs no signature
    status = await wait_status(bus, "p1", lambda s: any(h["code"] == "HMS_0500_0500_0001_0007" for h in s["hms"]))
    assert status["jobState"] in ("PREPARE", "RUNNING") and status["light"] == "off"


async def test_p1_deltas_and_jpeg_camera(bus: Bus, make_sim: MakeSim, control: StartControl) -> None:
    sim = await make_sim(mode="p1", job_seconds=20)
    await control()
    await register(bus, sim.device())
    first = await wait_status(bus, "p1", lambda s: s["jobState"] == "RUNNING" and s["percent"] >= 1, timeout=15)
    later = await wait_status(bus, "p1", lambda s: s["percent"] >= first["percent"] + 5, timeout=10)
    assert later["chamberC"] == 5.0 and later["camera"]["source"] == "bambu-jpeg" and later["ams"] == []
    assert later["layer"] > first["layer"] and later["model"] == "Bambu Lab P1S"


async def test_silent_printer_gets_pushing_start(bus: Bus, make_sim: MakeSim, control: StartControl) -> None:
    sim = await make_sim(silent=True, job_seconds=60)
    await control(WATCHDOG_SECONDS="1.5")
    await register(bus, sim.device())
    await wait_status(bus, "p1", lambda s: s["state"] == "online")
    quiet = await wait_status(bus, "p1", lambda s: s["state"] == "offline" and s["connected"], timeout=5)
    assert "stopped sending" in quiet["reason"] and quiet["online"] is False
    await wait_for(lambda: bool(sim.requests("pushing", "start")), what="pushing.start")
    await wait_status(bus, "p1", lambda s: s["state"] == "online" and s["jobState"] == "RUNNING", timeout=10)


async def test_reconnects_after_broker_restart(bus: Bus, make_sim: MakeSim, control: StartControl) -> None:
    sim = await make_sim()
    svc = await control()
    await register(bus, sim.device())
    await wait_status(bus, "p1", lambda s: s["state"] == "online" and s["lastUpdate"] is not None)
    await sim.broker.restart(down_seconds=1.0)
    down = await wait_status(bus, "p1", lambda s: not s["connected"])
    assert down["state"] == "offline" and down["jobState"] != "UNKNOWN"  # last known printer state kept
    await wait_status(bus, "p1", lambda s: s["state"] == "online", timeout=10)
    await wait_for(lambda: sim.fleet.connects == 2, what="the printer side back on the broker")
    link = svc.workers["p1"].link
    assert link is not None and link.connects == 2
    assert await command(bus, "p1", {"type": "light", "on": True}) == {"ok": True}


async def test_wrong_access_code_backs_off_until_fixed(bus: Bus, make_sim: MakeSim, control: StartControl) -> None:
    sim = await make_sim()
    await control()
    await register(bus, sim.device(access_code="00000000"))
    status = await wait_status(bus, "p1", lambda s: s["state"] == "auth_failed")
    assert "access code" in status["reason"] and not status["connected"]
    assert "00000000" not in str(status)
    await asyncio.sleep(2.0)  # backoff min is 0.3 s here: an unguarded client would have retried ~5 times
    assert sim.broker.log_text().count("not authorised") == 1
    await register(bus, sim.device(access_code=ACCESS_CODE))  # the user fixes the code: retried at once
    await wait_status(bus, "p1", lambda s: s["state"] == "online", timeout=5)


async def test_client_limit(bus: Bus, make_sim: MakeSim, control: StartControl) -> None:
    sim = await make_sim(max_clients=1)
    other = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"studio-{uuid.uuid4().hex[:6]}")
    other.username_pw_set("bblp", ACCESS_CODE)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    other.tls_set_context(ctx)
    other.tls_insecure_set(True)
    await asyncio.to_thread(other.connect, "127.0.0.1", sim.port, 30)
    other.loop_start()
    try:
        await control()
        await register(bus, sim.device())
        status = await wait_status(bus, "p1", lambda s: s["state"] == "offline")
        assert "too many clients" in status["reason"]
    finally:
        other.disconnect()
        await asyncio.to_thread(other.loop_stop)
    await wait_status(bus, "p1", lambda s: s["state"] == "online", timeout=8)


async def test_tls_ca_mode_verifies_with_sni_serial(
    tmp_path: Path, bus: Bus, make_sim: MakeSim, control: StartControl
) -> None:
    sim = await make_sim()
    await control()
    await register(bus, sim.device(tls_ca=sim.certs.ca_pem))
    await wait_status(bus, "p1", lambda s: s["state"] == "online")
    await register(bus, sim.device("p2", tls_ca=str(sim.certs.ca_file), serial="01S00C0000WRONG"))
    wrong_name = await wait_status(bus, "p2", lambda s: s["state"] == "offline")
    assert "TLS certificate rejected" in wrong_name["reason"] and "01S00C0000WRONG" in wrong_name["reason"]
    other = generate(tmp_path / "other-ca", [sim.serial])
    await register(bus, sim.device("p3", tls_ca=other.ca_pem))
    wrong_ca = await wait_status(bus, "p3", lambda s: s["state"] == "offline")
    assert wrong_ca["reason"].startswith("TLS certificate rejected: ")  # another CA of the same name


async def test_follows_registry_changes_live(bus: Bus, make_sim: MakeSim, control: StartControl) -> None:
    sim = await make_sim()
    svc = await control()
    registry = Registry(bus)
    await registry.put(sim.device(name="before"))
    await wait_status(bus, "p1", lambda s: s["state"] == "online" and s["name"] == "before")
    await registry.put(sim.device(name="after"))  # a rename needs no new session
    await wait_status(bus, "p1", lambda s: s["name"] == "after")
    assert sim.connections() == 1
    await registry.put(sim.device(name="after", mqtt_port=1))
    await wait_status(bus, "p1", lambda s: s["state"] == "offline")
    await registry.put(sim.device(name="after"))
    await wait_status(bus, "p1", lambda s: s["state"] == "online")
    assert sim.connections() == 2
    await registry.delete("p1")
    await wait_for(lambda: "p1" not in svc.workers, what="worker removed")
    await wait_for(lambda: sim.broker.log_text().count("disconnected") + sim.broker.log_text().count("closed its") >= 2)
    for _ in range(100):  # the KV delete follows the session's end
        if await read_status(bus, "p1") is None:
            break
        await asyncio.sleep(0.05)
    assert await read_status(bus, "p1") is None
    with pytest.raises(NoResponders):  # a deleted printer no longer answers commands
        await bus.request(subjects.device_cmd("p1"), b"", timeout=1)
    await registry.put(sim.device("cam", kind="rtsp", rtsp_url="rtsp://x/y"))  # not a printer: ignored
    await asyncio.sleep(0.3)
    assert "cam" not in svc.workers


async def test_one_session_per_printer_across_replicas(bus: Bus, make_sim: MakeSim, control: StartControl) -> None:
    sim = await make_sim()
    a = await control("ctl-a")
    b = await control("ctl-b")
    await register(bus, sim.device())
    await wait_status(bus, "p1", lambda s: s["state"] == "online")
    await asyncio.sleep(1.0)
    assert sim.connections() == 1
    owner, spare = (a, b) if a.workers["p1"].owner else (b, a)
    assert not spare.workers["p1"].owner
    await stop_control(owner)  # releases the lease: the spare takes over
    await wait_for(lambda: spare.workers["p1"].owner, timeout=6, what="takeover")
    await wait_status(bus, "p1", lambda s: s["state"] == "online" and s["connected"])
    assert sim.connections() == 2
    assert await command(bus, "p1", {"type": "light", "on": False}) == {"ok": True}


async def test_rtsps_camera_bootstrap_is_playable(bus: Bus, make_sim: MakeSim, control: StartControl) -> None:
    """The camera URL control derives from ``ipcam.rtsp_url`` (wrong host replaced, credentials
    added by :func:`with_credentials`) opens in ffprobe against the simulator's GStreamer
    RTSPS camera (digest auth bblp / access code, as on an X1)."""
    sim = await make_sim(camera=True)
    await control()
    await register(bus, sim.device())
    status = await wait_status(bus, "p1", lambda s: s["camera"]["source"] == "rtsp" and bool(s["camera"]["url"]))
    cam = status["camera"]
    assert cam["url"].startswith("rtsps://127.0.0.1:") and cam["url"].endswith("/streaming/live/1")
    assert "@" not in cam["url"] and not cam["disabled"]
    url = with_credentials(cam["url"], ACCESS_CODE)
    probe = await asyncio.create_subprocess_exec(
        "ffprobe",
        "-v",
        "error",
        "-rtsp_transport",
        "tcp",
        "-show_entries",
        "stream=codec_name,width,height",
        "-of",
        "json",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(probe.communicate(), 25)
    assert probe.returncode == 0, err.decode()
    (stream,) = json.loads(out)["streams"]
    assert stream == {"codec_name": "h264", "width": 640, "height": 360}


async def test_stop_while_a_printer_is_being_removed(bus: Bus, make_sim: MakeSim, control: StartControl) -> None:
    """Stopping the service in the middle of a registry change ends promptly (a cancellation
    swallowed while a worker stops must not leave the registry watch running)."""
    sim = await make_sim()
    svc = await control()
    registry = Registry(bus)
    await registry.put(sim.device())
    await registry.put(sim.device("p2"))
    await wait_status(bus, "p2", lambda s: s["state"] == "online")
    await registry.delete("p1")
    await wait_for(lambda: "p1" not in svc.workers, timeout=5, what="removal started")
    await asyncio.wait_for(stop_control(svc), 8.0)
    assert svc._watch_task is not None and svc._watch_task.done()
    final = await wait_status(bus, "p2", lambda s: s["state"] == "offline")
    assert "stopped watching" in final["reason"]


async def test_p1_jpeg_camera_bootstrap_reaches_the_camera(bus: Bus, make_sim: MakeSim, control: StartControl) -> None:
    """A P1 reports no ``rtsp_url``: the status points at the port-6000 JPEG camera
    (``tls://host:camera_port``), and the simulator's camera there speaks the Bambu protocol
    (80-byte auth, 16-byte header + JFIF JPEG; ingest's parser reads it) with TLS verifiable
    against the simulator's CA with the serial as name."""
    sim = await make_sim(mode="p1", jpeg_camera=True)
    await control()
    await register(bus, sim.device())
    status = await wait_status(bus, "p1", lambda s: s["camera"]["source"] == "bambu-jpeg")
    cam = status["camera"]
    assert cam["url"] == f"tls://127.0.0.1:{sim.camera_port}" and cam["port"] == sim.camera_port
    ctx = ssl.create_default_context(cafile=str(sim.certs.ca_file))

    async def first_frame(code: str) -> bytes:
        reader, writer = await asyncio.open_connection(cam["host"], cam["port"], ssl=ctx, server_hostname=sim.serial)
        try:
            writer.write(auth_packet(code))
            await writer.drain()
            parser = FrameParser()
            while True:
                data = await asyncio.wait_for(reader.read(65536), 10)
                if not data:
                    return b""
                frames = parser.feed(data)
                if frames:
                    return frames[0]
        finally:
            writer.close()

    jpeg = await first_frame(ACCESS_CODE)
    assert jpeg.startswith(b"\xff\xd8\xff\xe0") and jpeg.endswith(b"\xff\xd9")
    assert await first_frame("wrong-code") == b""  # the printer closes the stream on a bad code
