"""The simulated printer's MQTT broker: a Debian ``mosquitto`` child process.

Two listeners (``per_listener_settings true``):

* the printer's face, TLS on ``127.0.0.1:<port>``: user ``bblp`` / password = access code (a
  wrong code gets CONNACK "not authorized", as on a printer), ``max_connections`` = the
  printer's client limit (extra clients are cut off during the TLS handshake), an ACL that lets
  ``bblp`` read ``device/+/report`` and write ``device/+/request`` only (the limit is
  approximate: mosquitto 2.0.11 lets one extra client in after a connection that failed during
  the TLS handshake or authentication);
* the simulator's own back door, a Unix socket in a private temporary directory, through which
  :class:`~services.sim.printer_fleet.PrinterFleet` reads requests and publishes reports (it does
  not count against the client limit).

Mosquitto is much faster than an embedded Python broker (feasibility probe section 6: 2000 QoS 1
round trips in 0.12 s vs 0.50 s for amqtt), which matters for 200 simulated printers.  Its log
(connections, subscriptions) is kept in ``log_path`` for tests to read.  The child gets
``PR_SET_PDEATHSIG`` so it never outlives the simulator.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import hashlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from services.sim.printer_tls import SimCerts

MOSQUITTO = "mosquitto"
PBKDF2_ITERATIONS = 101


class BrokerError(RuntimeError):
    """Mosquitto is missing, could not start (port in use...) or died; the message has its log tail."""


def password_line(user: str, password: str) -> str:
    """A mosquitto 2.x password-file line: ``user:$7$<iterations>$<salt b64>$<PBKDF2-SHA512 b64>``
    (the format ``mosquitto_passwd`` writes), so no password appears on a command line."""
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    return f"{user}:$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}\n"


_PRCTL: Any = None
try:
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, not in the forked child
except (OSError, AttributeError):  # not Linux
    pass
PR_SET_PDEATHSIG = 1


def pdeathsig() -> None:
    """Ask the kernel to SIGTERM this (child) process when its parent dies (runs between fork
    and exec, so it only calls the already resolved ``prctl``)."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)


class MosquittoBroker:
    """Start/stop/restart one mosquitto for the simulator (see module docstring).

    ``max_clients`` <= 0 means unlimited.
    """

    def __init__(self, certs: SimCerts, port: int, access_code: str, max_clients: int = 4, host: str = "127.0.0.1"):
        self.certs = certs
        self.port = port
        self.host = host
        self.access_code = access_code
        self.max_clients = max_clients
        self.dir = Path(tempfile.mkdtemp(prefix="camhub-mqtt-"))
        os.chmod(self.dir, 0o700)
        self.socket_path = self.dir / "printer.sock"
        self.log_path = self.dir / "mosquitto.log"
        self.proc: asyncio.subprocess.Process | None = None

    def _write_config(self) -> Path:
        (self.dir / "passwd").write_text(password_line("bblp", self.access_code))
        (self.dir / "acl").write_text("user bblp\ntopic read device/+/report\ntopic write device/+/request\n")
        user = pwd.getpwuid(os.getuid()).pw_name
        conf = self.dir / "mosquitto.conf"
        conf.write_text(
            "\n".join(
                [
                    "per_listener_settings true",
                    "persistence false",
                    f"user {user}",
                    f"log_dest file {self.log_path}",
                    *(f"log_type {t}" for t in ("error", "warning", "notice", "information", "subscribe")),
                    "connection_messages true",
                    f"listener {self.port} {self.host}",
                    f"certfile {self.certs.cert_file}",
                    f"keyfile {self.certs.key_file}",
                    f"max_connections {self.max_clients if self.max_clients > 0 else -1}",
                    "allow_anonymous false",
                    f"password_file {self.dir / 'passwd'}",
                    f"acl_file {self.dir / 'acl'}",
                    f"listener 0 {self.socket_path}",
                    "allow_anonymous true",
                    "",
                ]
            )
        )
        return conf

    async def start(self, timeout: float = 10.0) -> None:
        """Start mosquitto and wait until both listeners accept connections.

        Raises:
            BrokerError: mosquitto is not installed, exited (e.g. the port is taken) or did not
                listen within ``timeout`` s.
        """
        if shutil.which(MOSQUITTO) is None:
            raise BrokerError("mosquitto is not installed (Debian: apt-get install mosquitto)")
        conf = self._write_config()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        log_start = len(self.log_text())
        self.proc = await asyncio.create_subprocess_exec(
            MOSQUITTO,
            "-c",
            str(conf),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=pdeathsig,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self.proc.returncode is not None:
                raise BrokerError(f"mosquitto exited with {self.proc.returncode}: {self.log_tail()}")
            # readiness from the log, not a TCP probe: mosquitto 2.0.11 miscounts a connection that
            # ends during the TLS handshake against max_connections
            if self.socket_path.exists() and " running" in self.log_text()[log_start:]:
                return
            if loop.time() > deadline:
                await self.stop()
                raise BrokerError(f"mosquitto did not listen on {self.host}:{self.port} within {timeout:g} s")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Stop mosquitto (SIGTERM, then SIGKILL after 3 s)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 3.0)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def restart(self, down_seconds: float = 0.0) -> None:
        """Stop, stay down ``down_seconds``, start again on the same port (clients see a lost
        connection and must reconnect)."""
        await self.stop()
        if down_seconds > 0:
            await asyncio.sleep(down_seconds)
        await self.start()

    def set_access_code(self, access_code: str) -> None:
        """Use a new access code from the next :meth:`start` / :meth:`restart` on."""
        self.access_code = access_code

    def log_text(self) -> str:
        """Mosquitto's log so far (connections, subscriptions, auth failures)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 5) -> str:
        return " | ".join(self.log_text().strip().splitlines()[-lines:])

    def cleanup(self) -> None:
        """Remove the temporary directory (call after :meth:`stop`)."""
        shutil.rmtree(self.dir, ignore_errors=True)
