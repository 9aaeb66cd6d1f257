"""``python -m services.sim printer --register ...`` and ``python -m services.control`` as real
child processes on a real nats-server: the ``camhub up --demo`` path, end to end."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

from services.common.bus import Bus
from services.common.registry import Registry
from tests.control.conftest import command, wait_status
from tests.support.nats import NatsServer, free_port
from tests.support.procs import ROOT, ServiceProcess, service_env, wait_services


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


async def test_simulator_and_control_processes(nats_server: NatsServer, tmp_path: Path, bus: Bus) -> None:
    env = service_env(nats_server.url, tmp_path / "data", CAMHUB_CONTROL_BACKOFF_MIN_SECONDS="0.3")
    port = free_port()
    args = ["printer", "--register", "demo-printer", "--port", str(port), "--job-seconds", "30"]
    sim = ServiceProcess("sim", env, tmp_path / "logs", args).start()
    ctl = ServiceProcess("control", env, tmp_path / "logs").start()
    try:
        await wait_services(nats_server.url, {"control"})
        status = await wait_status(
            bus, "demo-printer", lambda s: s["state"] == "online" and s["jobState"] != "UNKNOWN", timeout=20
        )
        assert status["name"] == "Simulated printer" and status["model"] == "Bambu Lab X1 Carbon"
        assert status["camera"]["disabled"] is True
        dev = await Registry(bus).get("demo-printer")
        assert dev is not None and dev.tls_ca.startswith("-----BEGIN CERTIFICATE")  # verified TLS, SNI = serial
        assert await command(bus, "demo-printer", {"type": "light", "on": False}) == {"ok": True}
        await wait_status(bus, "demo-printer", lambda s: s["light"] == "off")
    finally:
        ctl_rc = ctl.stop()
        sim_rc = sim.stop()
    assert ctl_rc == 0, ctl.log()[-2000:]
    assert sim_rc == 0, sim.log()[-2000:]
    assert "READY mqtts://127.0.0.1:" in sim.log()
    logs = ctl.log() + sim.log()
    assert "12345678" not in logs and "Traceback" not in logs
    await asyncio.sleep(0.2)
    assert not _listening(port)  # mosquitto went with the simulator
    final = await wait_status(bus, "demo-printer", lambda s: s["state"] == "offline")
    assert "stopped watching" in final["reason"]


def test_sim_dispatcher_usage() -> None:
    run = [sys.executable, "-m", "services.sim"]
    listed = subprocess.run([*run, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=20)
    assert listed.returncode == 0 and "printer" in listed.stdout and "camera" in listed.stdout
    unknown = subprocess.run([*run, "toaster"], cwd=ROOT, capture_output=True, text=True, timeout=20)
    assert unknown.returncode == 2 and "unknown simulator 'toaster'" in unknown.stderr
    bad = subprocess.run(
        [*run, "printer", "--register", "Bad.Id"], cwd=ROOT, capture_output=True, text=True, timeout=20
    )
    assert bad.returncode == 2 and "is invalid" in bad.stderr
