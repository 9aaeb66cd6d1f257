"""``camhub up``: run nats-server and every service as child processes, and keep them running.

* Starts the embedded nats-server (unless ``CAMHUB_NATS_URL`` / ``--nats-url`` names one), waits
  for ``/healthz``, then starts ``ingest``, ``hls``, ``control``, ``egress``, ``gateway`` (and,
  with ``--demo``, the synthetic camera and simulated printer) as ``python -m ...`` children.
* A child that exits is restarted after a backoff (0.2 s, doubling to 10 s, reset after 30 s of
  uptime), logged with its exit code.  nats-server is restarted the same way.
* SIGINT/SIGTERM stops the children (SIGTERM, then SIGKILL after 10 s) and nats-server last.
  Children get ``PR_SET_PDEATHSIG`` so even a SIGKILLed supervisor leaves no process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from services.common.natsserver import (
    PortInUse,
    check_port_free,
    start_nats_server,
    wait_healthy,
    write_config,
)
from services.common.settings import Settings

log = logging.getLogger("camhub.up")

SERVICES = ("ingest", "hls", "control", "egress", "gateway")


def free_port() -> int:
    """A loopback TCP port that is free now (for the demo simulators)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _has_gstreamer() -> bool:
    """True when the system Python has GStreamer's RTSP server (the demo printer's camera)."""
    try:
        return (
            subprocess.run(
                ["/usr/bin/python3", "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
                capture_output=True,
                timeout=10,
            ).returncode
            == 0
        )
    except (OSError, subprocess.SubprocessError):
        return False


def _pdeathsig() -> None:
    """Child pre-exec: die with SIGTERM when the supervisor dies (Linux prctl)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    """One supervised process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started: float = 0.0
    backoff: float = 0.2
    log_file: Path | None = None
    pending: asyncio.Task[None] | None = field(default=None, repr=False)

    def start(self) -> None:
        out = open(self.log_file, "ab") if self.log_file else None  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            preexec_fn=_pdeathsig,
            start_new_session=True,  # the supervisor alone forwards signals, in order
        )
        self.started = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.proc.pid)


class Supervisor:
    """Owns the children; :meth:`run` returns when stopped."""

    def __init__(self, settings: Settings, *, demo: bool = False, services: tuple[str, ...] = SERVICES) -> None:
        self.settings = settings
        self.demo = demo
        self.services = services
        self.children: list[Child] = []
        self.nats: Child | None = None
        self.stopping = asyncio.Event()

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["CAMHUB_NATS_URL"] = ",".join(self.settings.nats_servers)
        env["CAMHUB_DATA_DIR"] = str(self.settings.data_dir.resolve())
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def preflight(self) -> None:
        """Check ports before anything starts.

        Raises:
            PortInUse: a port is taken (the message names the setting to change).
        """
        if not self.settings.nats_url:
            check_port_free(self.settings.nats_port, "CAMHUB_NATS_PORT")
            check_port_free(self.settings.nats_monitor_port, "CAMHUB_NATS_MONITOR_PORT")
        if "gateway" in self.services:
            host = self.settings.http_host if self.settings.http_host not in ("0.0.0.0", "::") else "0.0.0.0"
            check_port_free(self.settings.http_port, "CAMHUB_HTTP_PORT", host)

    async def _start_nats(self) -> None:
        conf = write_config(self.settings.data_dir, self.settings.nats_port, self.settings.nats_monitor_port)
        logf = conf.parent / "nats-server.log"
        proc = start_nats_server(conf, logf)
        self.nats = Child("nats-server", [], {}, proc=proc, started=time.monotonic())
        log.info("nats-server on 127.0.0.1:%d (pid %d, log %s)", self.settings.nats_port, proc.pid, logf)
        await wait_healthy(self.settings.nats_monitor_port)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        if not self.settings.nats_url:
            await self._start_nats()
        env = self._env()
        py = sys.executable
        for name in self.services:
            self.children.append(Child(name, [py, "-m", f"services.{name}"], env))
        if self.demo:
            printer = [py, "-m", "services.sim", "printer", "--register", "demo-printer", "--name", "Demo printer"]
            printer += ["--port", str(free_port()), "--heat-seconds", "1", "--job-seconds", "600"]
            if _has_gstreamer():
                printer += ["--camera-port", str(free_port())]  # an X1-style RTSPS camera
            self.children.append(Child("sim-printer", printer, env))
            self.children.append(
                Child("sim-camera", [py, "-m", "services.sim", "camera", "--stream", "demo", "--register"], env)
            )
        for child in self.children:
            child.start()
        host = self.settings.http_host
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        print(f"camhub is up: http://{shown}:{self.settings.http_port}/  (Ctrl-C stops)", flush=True)
        while not self.stopping.is_set():
            self._reap()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), 0.1)
        await self.shutdown()
        return 0

    def _reap(self) -> None:
        now = time.monotonic()
        if self.nats is not None and self.nats.proc is not None and self.nats.proc.poll() is not None:
            log.error("nats-server exited with %s; restarting", self.nats.proc.returncode)
            conf = self.settings.data_dir.resolve() / "nats" / "nats.conf"
            self.nats.proc = start_nats_server(conf, conf.parent / "nats-server.log")
            self.nats.restarts += 1
        for child in self.children:
            if child.proc is None or child.pending is not None:
                continue
            code = child.proc.poll()
            if code is None:
                if now - child.started > 30:
                    child.backoff = 0.2
                continue
            delay = child.backoff
            child.backoff = min(10.0, child.backoff * 2)
            child.restarts += 1
            log.warning("%s exited with %s; restart %d in %.1f s", child.name, code, child.restarts, delay)
            child.pending = asyncio.create_task(self._restart(child, delay))

    async def _restart(self, child: Child, delay: float) -> None:
        await asyncio.sleep(delay)
        child.pending = None
        if not self.stopping.is_set():
            child.start()

    async def shutdown(self) -> None:
        """SIGTERM every child, wait up to 10 s, SIGKILL what is left, then nats-server."""
        log.info("stopping")
        for child in self.children:
            if child.pending:
                child.pending.cancel()
            if child.proc and child.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for child in self.children:
            if child.proc is None:
                continue
            while child.proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if child.proc.poll() is None:
                log.warning("%s did not stop; killing", child.name)
                child.proc.kill()
                child.proc.wait()
        if self.nats and self.nats.proc and self.nats.proc.poll() is None:
            self.nats.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.nats.proc.wait, 10)
            except subprocess.TimeoutExpired:
                self.nats.proc.kill()
                self.nats.proc.wait()
        print("camhub stopped", flush=True)


def up(settings: Settings, demo: bool = False) -> int:
    """Run the stack in the foreground; returns the exit code (2 on a port in use)."""
    sup = Supervisor(settings, demo=demo)
    try:
        sup.preflight()
    except PortInUse as exc:
        print(f"camhub up: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(sup.run())
