"""deploy/nats/cluster.conf as a real 3-node JetStream cluster on loopback, as Kubernetes runs it.

Each node runs the committed cluster.conf (which includes the committed nats.conf) with its own
POD_NAME; the test wrapper replaces only what cannot work outside Kubernetes: the route URLs
(``nats-N.nats-headless`` DNS names -> loopback ports), the listen address, the store and the pid
file.  The camhub services then use KV buckets with 3 replicas (CAMHUB_KV_REPLICAS=3,
deploy/k8s/config.yaml) under their own users, and keep working when one node is killed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common import subjects
from services.common.bus import Bus
from services.common.settings import Settings, load_settings
from tests.deploy.support import DeployNats, password_var, random_passwords
from tests.support.nats import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[list[DeployNats], dict[str, str]]]:
    passwords = random_passwords()
    route_ports = [free_port() for _ in range(3)]
    routes = ", ".join(f"nats://127.0.0.1:{p}" for p in route_ports)
    nodes = []
    for i, port in enumerate(route_ports):
        root = tmp_path / f"nats-{i}"
        extra = (
            f'pid_file: "{root / "nats.pid"}"\n'
            f"cluster {{ name: camhub, listen: 127.0.0.1:{port}, routes: [{routes}], connect_retries: 120 }}\n"
        )
        nodes.append(DeployNats(root, passwords, conf="cluster.conf", extra=extra, env={"POD_NAME": f"nats-{i}"}))
    try:
        for node in nodes:
            node.start(wait=False)
        for node in nodes:
            node.wait_healthy(timeout=30)
        yield nodes, passwords
    finally:
        for node in nodes:
            node.stop()


async def test_r3_kv_survives_a_node_loss_under_service_users(
    cluster: tuple[list[DeployNats], dict[str, str]], tmp_path: Path
) -> None:
    nodes, passwords = cluster
    url = ",".join(n.url for n in nodes)

    def settings(user: str) -> Settings:
        return load_settings(
            nats_url=url,
            nats_user=user,
            nats_password=passwords[password_var(user)],
            kv_replicas=3,
            data_dir=tmp_path,
            instance="t1",
        )

    ingest = await Bus.connect(settings("ingest"), "r3-ingest", connect_timeout=10)
    gateway = await Bus.connect(settings("gateway"), "r3-gateway", connect_timeout=10)
    try:
        kv = await asyncio.wait_for(ingest.kv(subjects.KV_STREAMS), 30)
        status = await kv.status()
        assert status.stream_info.config.num_replicas == 3
        assert status.stream_info.cluster is not None and len(status.stream_info.cluster.replicas or []) == 2
        await kv.put("cam1", b"v1")
        read = await asyncio.wait_for(gateway.kv(subjects.KV_STREAMS), 30)
        assert (await read.get("cam1")).value == b"v1"
        # One node down: R3 keeps quorum (2 of 3), both services carry on.
        leader = status.stream_info.cluster.leader
        victim = next(n for i, n in enumerate(nodes) if f"nats-{i}" == leader)
        assert victim.proc is not None
        victim.proc.kill()
        victim.proc.wait()
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            try:
                await kv.put("cam1", b"v2")
                if (await read.get("cam1")).value == b"v2":
                    break
            except Exception:
                if asyncio.get_running_loop().time() > deadline:
                    raise
            await asyncio.sleep(0.25)
    finally:
        await ingest.close()
        await gateway.close()
