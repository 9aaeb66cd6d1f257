"""Run camhub services (or ``camhub up``) as real child processes in tests."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nats

ROOT = Path(__file__).resolve().parents[2]


def service_env(nats_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a camhub child: the given NATS, data dir, fast heartbeats."""
    env = dict(os.environ)
    env.update(
        {
            "CAMHUB_NATS_URL": nats_url,
            "CAMHUB_DATA_DIR": str(data_dir),
            "CAMHUB_HEARTBEAT_SECONDS": "0.5",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


class ServiceProcess:
    """``python -m services.<name>`` with output in ``<log_dir>/<name>.log``."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path, args: list[str] | None = None) -> None:
        self.name = name
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.args = args or []
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"services.{self.name}", *self.args],
            env=self.env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        return self

    def stop(self, timeout: float = 12.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


async def ping_services(nats_url: str, wait: float = 0.4) -> list[dict[str, Any]]:
    """Every reply to ``$SRV.PING`` within ``wait`` seconds."""
    nc = await nats.connect(nats_url.split(","), connect_timeout=2, max_reconnect_attempts=0)
    replies: list[dict[str, Any]] = []
    inbox = nc.new_inbox()

    async def on_msg(msg: Any) -> None:
        if msg.data:  # status-only messages (no responders) carry no body
            replies.append(json.loads(msg.data))

    await nc.subscribe(inbox, cb=on_msg)
    await nc.publish("$SRV.PING", b"", reply=inbox)
    await asyncio.sleep(wait)
    await nc.close()
    return replies


async def wait_services(nats_url: str, names: set[str], timeout: float = 15.0) -> list[dict[str, Any]]:
    """Wait until ``camhub-<name>`` for every name answers ``$SRV.PING``.

    Raises:
        TimeoutError: naming the services that did not answer.
    """
    deadline = time.monotonic() + timeout
    missing = set(names)
    replies: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            replies = await ping_services(nats_url, 0.3)
        except Exception:
            await asyncio.sleep(0.2)
            continue
        missing = {n for n in names if f"camhub-{n}" not in {r.get("name") for r in replies}}
        if not missing:
            return replies
    raise TimeoutError(f"services not answering $SRV.PING: {sorted(missing)}")
