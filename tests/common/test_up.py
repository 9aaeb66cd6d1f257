"""``camhub up``: two stacks side by side, all services on $SRV.PING, restarts, clean exit."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.support.nats import free_port
from tests.support.procs import ROOT, ping_services, wait_services
from tests.support.stack import UpStack

SERVICES = {"ingest", "hls", "control", "egress", "gateway"}


def _pid_of(replies: list[dict[str, object]], name: str) -> int:
    for r in replies:
        if r.get("name") == f"camhub-{name}":
            return int(r["metadata"]["pid"])  # type: ignore[index]
    raise AssertionError(f"camhub-{name} not in PING replies")


@pytest.mark.timeout(90)
async def test_two_stacks_run_side_by_side_restart_children_and_exit_clean(tmp_path: Path) -> None:
    a, b = UpStack(tmp_path / "a"), UpStack(tmp_path / "b")
    try:
        t0 = time.monotonic()
        replies_a, replies_b = await asyncio.gather(
            wait_services(a.url, SERVICES, 15), wait_services(b.url, SERVICES, 15)
        )
        assert time.monotonic() - t0 < 15
        # each stack's services are its own
        assert {_pid_of(replies_a, s) for s in SERVICES}.isdisjoint({_pid_of(replies_b, s) for s in SERVICES})

        victim = _pid_of(replies_a, "hls")
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        while True:
            replies = await ping_services(a.url, 0.2)
            pids = [int(r["metadata"]["pid"]) for r in replies if r.get("name") == "camhub-hls"]
            if pids and victim not in pids:
                break
            assert time.monotonic() - killed < 3.0, "hls was not back within 3 s"
        everyone = [p.pid for p in a.descendants()]
        assert len(everyone) >= 6  # nats-server + five services
    finally:
        code_a = a.stop()
        code_b = b.stop()
    assert code_a == 0 and code_b == 0
    time.sleep(0.5)
    left = [pid for pid in everyone if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert left == [], f"processes left behind: {left}"
    log = (tmp_path / "a" / "up.log").read_text()
    assert "restart" in log and "camhub stopped" in log


def test_a_port_in_use_gives_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        env = dict(os.environ)
        env.pop("CAMHUB_NATS_URL", None)
        env.update(
            CAMHUB_NATS_PORT=str(free_port()),
            CAMHUB_NATS_MONITOR_PORT=str(free_port()),
            CAMHUB_HTTP_PORT=str(busy),
            CAMHUB_DATA_DIR=str(tmp_path),
        )
        out = subprocess.run(
            [sys.executable, "-m", "services.cli", "up"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
        )
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"port {busy}" in lines[0] and "CAMHUB_HTTP_PORT" in lines[0]


def test_a_bad_setting_names_the_variable(tmp_path: Path) -> None:
    env = dict(os.environ, CAMHUB_HTTP_PORT="eighty")
    out = subprocess.run(
        [sys.executable, "-m", "services.cli", "up"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 2
    assert "CAMHUB_HTTP_PORT" in out.stderr and "Traceback" not in out.stderr


def test_version_command() -> None:
    out = subprocess.run([sys.executable, "-m", "services.cli", "version"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("camhub 0.")
