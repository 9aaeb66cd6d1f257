"""deploy/probe.py, the health probe of the compose healthchecks and Kubernetes exec probes.

Run as the containers run it (``python /app/deploy/probe.py ...``, a fresh process each time)
against a real nats-server with deploy/nats/nats.conf and a real ``camhub hls`` process; the HTTP
mode against a real HTTP server on loopback.
"""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.ids import sanitize_token
from tests.deploy.support import DeployNats, Proc, password_var, random_passwords, run_check, wait_check

PROBE = ["python", "/app/deploy/probe.py"]


@pytest.fixture
def hls(tmp_path: Path) -> Iterator[tuple[DeployNats, dict[str, str], Proc]]:
    passwords = random_passwords()
    srv = DeployNats(tmp_path / "nats", passwords)
    srv.start()
    env = {
        "CAMHUB_NATS_URL": srv.url,
        "CAMHUB_NATS_USER": "hls",
        "CAMHUB_NATS_PASSWORD": passwords[password_var("hls")],
        "CAMHUB_DATA_DIR": str(tmp_path / "data"),
    }
    proc = Proc("hls", ["camhub", "hls"], env, tmp_path / "logs").start()
    try:
        yield srv, env, proc
    finally:
        proc.stop()
        srv.stop()


async def test_ready_and_live_follow_the_service_and_nats(hls: tuple[DeployNats, dict[str, str], Proc]) -> None:
    srv, env, proc = hls
    code, out = await wait_check([*PROBE, "ready", "hls"], env)
    assert code == 0, out + proc.log()
    # compose: no CAMHUB_INSTANCE, so "this container" is <host name>-<pid>.
    assert f"{sanitize_token(os.uname().nodename)}-<pid> answers" in out
    assert (await run_check([*PROBE, "live", "hls"], env))[0] == 0
    # Another service's name: nobody answers for this container.
    code, out = await run_check([*PROBE, "ready", "egress"], {**env, "CAMHUB_NATS_USER": "hls"})
    assert code == 1, out
    # The service stops: both fail (NATS is up, the process is gone).
    proc.stop()
    for mode in ("ready", "live"):
        code, out = await run_check([*PROBE, mode, "hls"], env)
        assert code == 1 and "does not answer" in out, (mode, out)
    # NATS stops: not ready, but liveness does not restart a service for NATS' outage.
    srv.stop()
    code, out = await run_check([*PROBE, "ready", "hls"], env)
    assert code == 1 and "NATS unreachable" in out, out
    code, out = await run_check([*PROBE, "live", "hls"], env)
    assert code == 0 and "not judging" in out, out


async def test_wrong_credentials_and_bad_input(hls: tuple[DeployNats, dict[str, str], Proc]) -> None:
    _, env, _ = hls
    code, out = await run_check([*PROBE, "ready", "hls"], {**env, "CAMHUB_NATS_PASSWORD": "wrong"})
    assert code == 1 and "authorization" in out.lower(), out
    # The password never appears in the probe's output (Docker keeps it in `docker inspect`).
    code, out = await run_check([*PROBE, "ready", "hls"], env)
    assert env["CAMHUB_NATS_PASSWORD"] not in out
    code, out = await run_check([*PROBE, "ready", "nosuch"], env)
    assert code == 2 and "unknown service" in out
    code, out = await run_check([*PROBE, "ready", "hls"], {**env, "CAMHUB_NATS_PORT": "abc"})
    assert code == 1 and "CAMHUB_NATS_PORT" in out


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 200 if self.path == "/readyz" else 503
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


async def test_http_mode() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert (await run_check([*PROBE, "http", f"{base}/readyz"], {}))[0] == 0
        code, out = await run_check([*PROBE, "http", f"{base}/other"], {})
        assert code == 1 and "HTTP 503" in out
    finally:
        server.shutdown()
        server.server_close()
    code, out = await run_check([*PROBE, "http", f"{base}/readyz"], {})
    assert code == 1 and "refused" in out.lower(), out
