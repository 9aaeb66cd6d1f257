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


class NatsCluster:
    """Three nats-servers clustered on loopback (JetStream R3 capable); ``url`` lists all three."""

    def __init__(self, root: Path, size: int = 3) -> None:
        self.root = root
        self.cluster_ports = [free_port() for _ in range(size)]
        self.nodes = [NatsServer(root / f"n{i}") for i in range(size)]
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in self.cluster_ports)
        for i, node in enumerate(self.nodes):
            node.extra_conf = (
                f"cluster {{\n  name: camhub-test\n  listen: 127.0.0.1:{self.cluster_ports[i]}\n"
                f"  routes: [{routes}]\n}}\n"
            )

    @property
    def url(self) -> str:
        return ",".join(n.url for n in self.nodes)

    def start(self) -> None:
        for node in self.nodes:
            conf = write_config(node.root, node.port, node.monitor_port, node.extra_conf)
            text = conf.read_text().replace("server_name: camhub", f"server_name: camhub-{node.root.name}")
            conf.write_text(text)
            node.proc = start_nats_server(conf, conf.parent / "nats-server.log")
        deadline = time.monotonic() + 30
        for node in self.nodes:
            while True:
                try:
                    asyncio.run(wait_healthy(node.monitor_port, timeout=0.5))
                    break
                except (TimeoutError, RuntimeError):
                    if time.monotonic() > deadline:
                        raise RuntimeError("cluster did not become healthy") from None

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
