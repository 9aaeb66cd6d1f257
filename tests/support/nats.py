"""A real nats-server for tests: random free ports, its own store, start/stop/restart."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from pathlib import Path

from services.common.natsserver import start_nats_server, wait_healthy, write_config


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer:
    """One nats-server with JetStream on loopback; ``url`` is its client URL."""

    def __init__(self, root: Path, extra_conf: str = "") -> None:
        self.root = root
        self.port = free_port()
        self.monitor_port = free_port()
        self.extra_conf = extra_conf
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        conf = write_config(self.root, self.port, self.monitor_port, self.extra_conf)
        self.proc = start_nats_server(conf, conf.parent / "nats-server.log")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                asyncio.run(wait_healthy(self.monitor_port, timeout=0.5))
                return
            except (TimeoutError, RuntimeError):
                if self.proc.poll() is not None:
                    raise RuntimeError("nats-server exited at start") from None
        raise RuntimeError("nats-server did not become healthy")

    async def astart(self) -> None:
        conf = write_config(self.root, self.port, self.monitor_port, self.extra_conf)
        self.proc = start_nats_server(conf, conf.parent / "nats-server.log")
        await wait_healthy(self.monitor_port, timeout=15)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
