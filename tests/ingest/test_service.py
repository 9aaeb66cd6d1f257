"""The ingest service as real child processes (``python -m services.ingest``): an RTSP camera from
the registry, health in heartbeats and on ``/metrics``, one owner across two replicas with
takeover after SIGKILL, and a clean SIGTERM."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.common import codec, subjects
from services.common.bus import Bus
from services.common.lease import lease_owner
from services.common.registry import Device, Registry
from services.common.settings import Settings
from tests.ingest.conftest import RtspServer, wait_for
from tests.ingest.test_publisher import Tap
from tests.support.nats import free_port
from tests.support.procs import ServiceProcess, service_env, wait_services


async def test_two_replicas_one_owner_takeover_metrics_and_sigterm(
    settings: Settings, bus: Bus, tmp_path: Path, rtsp_server: Callable[..., RtspServer]
) -> None:
    srv = rtsp_server("--fps", "30", "--shared")
    await Registry(bus).put(Device(id="lobby", kind="rtsp", rtsp_url=srv.url))
    tap = await Tap().start(bus, "lobby")
    beats: dict[str, dict[str, Any]] = {}

    async def on_beat(msg: Any) -> None:
        body = codec.unpack_map(msg.data)
        beats[body["instance"]] = body

    await bus.subscribe(subjects.HEARTBEAT_ALL, on_beat)
    ports = {"ing-a": free_port(), "ing-b": free_port()}
    procs = {
        name: ServiceProcess(
            "ingest",
            service_env(settings.nats_servers[0], tmp_path / name, CAMHUB_INSTANCE=name, CAMHUB_METRICS_PORT=str(port)),
            tmp_path / name,
        ).start()
        for name, port in ports.items()
    }
    try:
        await wait_services(settings.nats_servers[0], {"ingest"}, timeout=20)
        await wait_for(lambda: len(tap.frames) >= 30, 20)
        owner = await lease_owner(bus, "ingest.lobby")
        assert owner in procs
        other = next(n for n in procs if n != owner)
        assert {f.seq for f in tap.frames} == set(range(1, len(tap.frames) + 1))  # one publisher

        def owner_health() -> Any:
            s = beats.get(owner, {}).get("streams", {}).get("lobby")
            return s if s and s["fps"] > 20 else None

        health = await wait_for(owner_health, 10)
        assert health["state"] == "up" and health["codec"] == "h264" and health["bitrate"] > 0
        assert "lobby" not in beats.get(other, {}).get("streams", {})
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{ports[owner]}/metrics", timeout=5).read().decode()
        assert 'camhub_ingest_fps{stream="lobby"}' in metrics
        assert 'camhub_ingest_stream_up{source="rtsp",stream="lobby"} 1.0' in metrics

        # SIGKILL the owner: the other replica takes the lease and the stream comes back
        procs[owner].kill()
        killed = time.monotonic()
        n = len(tap.frames)
        await wait_for(lambda: len(tap.frames) > n + 10, 20)
        assert time.monotonic() - killed < 10
        assert await lease_owner(bus, "ingest.lobby") == other
        assert tap.infos[-1]["owner"] == other and tap.infos[-1]["epoch"] == 2
        assert any(e["type"] == "discontinuity" and e["epoch"] == 2 for e in tap.events)

        # SIGTERM: clean exit, the stream goes down, the lease is released
        assert procs[other].stop() == 0
        await tap.settle(bus)
        assert tap.events[-1]["type"] == "down"
        # released at once, or (if SIGTERM lands while a renewal is in flight, so the release's
        # compare-and-delete sees a newer revision) expired within the 4 s TTL
        released: dict[str, Any] = {}

        async def gone() -> None:
            released["owner"] = await lease_owner(bus, "ingest.lobby")

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            await gone()
            if released["owner"] is None:
                break
            await asyncio.sleep(0.2)
        assert released["owner"] is None
    finally:
        for p in procs.values():
            p.kill()
