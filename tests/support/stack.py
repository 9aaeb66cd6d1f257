"""A whole ``camhub up`` stack as a child process on free ports, for system tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from tests.support.nats import free_port
from tests.support.procs import ROOT


class UpStack:
    """``python -m services.cli up [args]`` with its own ports and data dir under ``tmp``."""

    def __init__(self, tmp: Path, *args: str, **env: str) -> None:
        self.dir = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.nats_port = free_port()
        self.http_port = free_port()
        self.env = dict(os.environ)
        self.env.pop("CAMHUB_NATS_URL", None)
        self.env.update(
            CAMHUB_NATS_PORT=str(self.nats_port),
            CAMHUB_NATS_MONITOR_PORT=str(free_port()),
            CAMHUB_HTTP_PORT=str(self.http_port),
            CAMHUB_DATA_DIR=str(tmp / "data"),
            CAMHUB_HEARTBEAT_SECONDS="0.5",
            PYTHONUNBUFFERED="1",
        )
        self.env.update(env)
        self.log_path = tmp / "up.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "up", *args],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    @property
    def url(self) -> str:
        """The NATS URL of the embedded server."""
        return f"nats://127.0.0.1:{self.nats_port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the gateway answers ``/readyz`` with 200.

        Raises:
            TimeoutError: with the tail of the stack's log.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if httpx.get(f"{self.http}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"stack not ready; log tail:\n{self.tail()}")

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> int:
        """SIGINT (as Ctrl-C) and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(25)
            except subprocess.TimeoutExpired:
                for child in self.descendants():
                    child.kill()
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return int(self.proc.returncode)
