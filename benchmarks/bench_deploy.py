"""What the deployment files cost: probe latency/CPU and the idle footprint of each service.

    .venv/bin/python -m benchmarks.bench_deploy [--probes 10] [--idle 10]

Runs nats-server with deploy/nats/nats.conf and the five services under their NATS users, as
docker-compose.yml runs them (tests/deploy/support.py maps the container paths onto this
checkout), then measures:

* ``deploy/probe.py ready|live <service>`` and ``http`` (the gateway's /readyz): wall time and
  CPU time (user + sys of the probe process) per run; this is what every Kubernetes exec probe and
  compose healthcheck costs;
* each service's RSS and CPU share while idle (no streams, no viewers) over ``--idle`` seconds:
  the floor for the Kubernetes resource requests in deploy/k8s.

Bounded: ``--probes`` runs per probe kind (default 10, at most 50), ``--idle`` seconds (default 10,
at most 60); everything it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from tests.deploy.support import SERVICE_USERS, DeployNats, Proc, password_var, random_passwords, wait_check
from tests.support.nats import free_port


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def _probe_runs(argv: list[str], env: dict[str, str], n: int) -> tuple[list[float], list[float], int]:
    from tests.deploy.support import run_check

    walls, cpus, failures = [], [], 0
    for _ in range(n):
        cpu0, t0 = _child_cpu(), time.perf_counter()
        code, _ = await run_check(argv, env)
        walls.append((time.perf_counter() - t0) * 1000)
        cpus.append((_child_cpu() - cpu0) * 1000)
        failures += code != 0
    return walls, cpus, failures


async def main(probes: int, idle: float) -> None:
    with tempfile.TemporaryDirectory(prefix="camhub-bench-deploy-") as tmp_name:
        tmp = Path(tmp_name)
        passwords = random_passwords()
        nats = DeployNats(tmp / "nats", passwords)
        await nats.astart()
        http_port = free_port()
        procs: dict[str, Proc] = {}
        envs: dict[str, dict[str, str]] = {}
        try:
            for name in SERVICE_USERS:
                env = {
                    "CAMHUB_NATS_URL": nats.url,
                    "CAMHUB_NATS_USER": name,
                    "CAMHUB_NATS_PASSWORD": passwords[password_var(name)],
                    "CAMHUB_DATA_DIR": str(tmp / "data" / name),
                    "CAMHUB_SECRET_KEY": "bench-secret",
                    "CAMHUB_API_TOKEN": "bench-token",
                    "CAMHUB_HTTP_PORT": str(http_port),
                }
                envs[name] = env
                procs[name] = Proc(name, ["camhub", name], env, tmp / "logs").start()
            for name in SERVICE_USERS:
                argv = (
                    ["python", "/app/deploy/probe.py", "http", f"http://127.0.0.1:{http_port}/readyz"]
                    if name == "gateway"
                    else ["python", "/app/deploy/probe.py", "ready", name]
                )
                code, out = await wait_check(argv, envs[name], timeout=30)
                if code != 0:
                    raise SystemExit(f"{name} did not become healthy: {out}")

            print(f"## deploy/probe.py ({probes} runs each; 2-core VM, {time.strftime('%Y-%m-%d')})")
            print("| probe | wall p50 ms | wall max ms | CPU p50 ms | failures |")
            print("|---|---|---|---|---|")
            kinds = [
                ("ready hls", ["python", "/app/deploy/probe.py", "ready", "hls"], envs["hls"]),
                ("live ingest", ["python", "/app/deploy/probe.py", "live", "ingest"], envs["ingest"]),
                (
                    "http gateway /readyz",
                    ["python", "/app/deploy/probe.py", "http", f"http://127.0.0.1:{http_port}/readyz"],
                    envs["gateway"],
                ),
            ]
            for label, argv, env in kinds:
                walls, cpus, failures = await _probe_runs(argv, env, probes)
                print(
                    f"| {label} | {statistics.median(walls):.0f} | {max(walls):.0f} | "
                    f"{statistics.median(cpus):.0f} | {failures} |"
                )

            ps = {name: psutil.Process(p.proc.pid) for name, p in procs.items() if p.proc}
            assert nats.proc is not None
            ps["nats-server"] = psutil.Process(nats.proc.pid)
            for p in ps.values():
                p.cpu_percent(None)
            await asyncio.sleep(idle)
            print()
            print(f"## idle footprint over {idle:g} s (no streams, no viewers)")
            print("| process | RSS MiB | CPU % of one core |")
            print("|---|---|---|")
            for name, p in ps.items():
                print(f"| {name} | {p.memory_info().rss / 2**20:.0f} | {p.cpu_percent(None):.1f} |")
        finally:
            for proc in procs.values():
                proc.stop()
            nats.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probes", type=int, default=10)
    parser.add_argument("--idle", type=float, default=10.0)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main(min(max(args.probes, 1), 50), min(max(args.idle, 1.0), 60.0)))
