"""Two replicas of hls and of control against a 3-node NATS cluster on loopback: when the
owner of a stream or printer dies (SIGKILL), the other replica takes over within 6 s
(DESIGN.md section 4; issue 9 part 4)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common import codec, subjects
from services.common.bus import Bus
from services.common.lease import lease_owner
from services.common.registry import Device, Registry
from services.common.settings import load_settings
from services.hls.client import hls_get
from tests.support.media import encode_h264
from tests.support.nats import NatsCluster, free_port
from tests.support.procs import ROOT, ServiceProcess, service_env, wait_services

pytestmark = pytest.mark.timeout(150)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    c = NatsCluster(tmp_path / "cluster")
    c.start()
    yield c
    c.stop()


async def _pusher(bus: Bus, stream: str, stop: asyncio.Event) -> None:
    """Push a real libx264 stream through ingest (``camhub.ingest.push.<stream>``) at 30 fps."""
    frames = encode_h264(60, width=320, height=240, gop=15)
    i = 0
    t0 = time.monotonic()
    while not stop.is_set():
        f = frames[i % len(frames)]
        pts = i * 3000
        headers = {"Content-Type": "video/h264", "Camhub-Pts": str(pts), "Camhub-Key": "1" if f.key else "0"}
        try:
            await bus.request(subjects.ingest_push(stream), f.data, headers=headers, timeout=2)
        except Exception:
            pass
        i += 1
        await asyncio.sleep(max(0.0, t0 + i / 30 - time.monotonic()))


def _owner_proc(procs: list[ServiceProcess], instance: str) -> ServiceProcess:
    return next(p for p in procs if p.env.get("CAMHUB_INSTANCE") == instance)


async def test_hls_and_control_replicas_take_over_within_6_s(cluster: NatsCluster, tmp_path: Path) -> None:
    url = cluster.url
    base = {"CAMHUB_KV_REPLICAS": "3", "CAMHUB_HLS_SEGMENT_SECONDS": "1"}
    procs: list[ServiceProcess] = []
    for name, n in (("ingest", 1), ("hls", 2), ("control", 2)):
        for i in range(n):
            env = service_env(url, tmp_path / f"{name}{i}", CAMHUB_INSTANCE=f"{name}-{i}", **base)
            procs.append(ServiceProcess(name, env, tmp_path / "logs", ).start())
    mqtt_port = free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "services.sim", "printer", "--port", str(mqtt_port), "--job-seconds", "600"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    bus = await Bus.connect(load_settings(nats_url=url, kv_replicas=3), "replica-test")
    stop = asyncio.Event()
    pusher: asyncio.Task[None] | None = None
    try:
        await wait_services(url, {"ingest", "hls", "control"}, 30)
        await Registry(bus).put(
            Device(id="p1", kind="bambu", host="127.0.0.1", serial="01S00C000000001", access_code="12345678",
                   mqtt_port=mqtt_port)
        )
        pusher = asyncio.create_task(_pusher(bus, "cam1", stop))

        async def serving() -> bool:
            status, _, _ = await hls_get(bus, "cam1", "stream.m3u8", {})
            return status == 200

        async def until(pred: object, timeout: float, what: str) -> float:
            t0 = time.monotonic()
            while time.monotonic() - t0 < timeout:
                try:
                    if await pred():  # type: ignore[operator]
                        return time.monotonic() - t0
                except Exception:
                    pass
                await asyncio.sleep(0.1)
            raise AssertionError(f"{what} not within {timeout} s")

        async def printer_online() -> bool:
            kv = await bus.kv(subjects.KV_STATUS)
            st = codec.unpack_map((await kv.get("p1")).value)
            return bool(st.get("online"))

        await until(serving, 30, "the playlist")
        await until(printer_online, 30, "the printer online")

        # --- hls: kill the owner of cam1 ---------------------------------------------------
        owner = await lease_owner(bus, "hls.cam1")
        assert owner in ("hls-0", "hls-1")
        seq_before = (await hls_get(bus, "cam1", "stream.m3u8", {}))[2]
        _owner_proc(procs, owner).kill()
        killed = time.monotonic()

        async def new_hls_owner() -> bool:
            return await lease_owner(bus, "hls.cam1") not in (None, owner)

        await until(new_hls_owner, 8, "a new hls owner")
        takeover = time.monotonic() - killed
        assert takeover <= 6.0, f"hls takeover took {takeover:.2f} s"
        await until(serving, 15, "the playlist from the new owner")
        _, _, body = await hls_get(bus, "cam1", "stream.m3u8", {})
        text = body.decode()
        old_seq = int(seq_before.decode().split("#EXT-X-MEDIA-SEQUENCE:")[1].split()[0])
        new_seq = int(text.split("#EXT-X-MEDIA-SEQUENCE:")[1].split()[0])
        assert new_seq >= old_seq, "the media sequence must continue, never restart at 0"

        # --- control: kill the owner of p1 -----------------------------------------------------
        owner = await lease_owner(bus, "control.p1")
        assert owner in ("control-0", "control-1")
        _owner_proc(procs, owner).kill()
        killed = time.monotonic()

        async def new_control_owner() -> bool:
            return await lease_owner(bus, "control.p1") not in (None, owner)

        await until(new_control_owner, 8, "a new control owner")
        takeover = time.monotonic() - killed
        assert takeover <= 6.0, f"control takeover took {takeover:.2f} s"

        async def command_acked() -> bool:
            reply = await bus.request_obj(subjects.device_cmd("p1"), {"type": "light", "on": True}, timeout=10)
            return reply.get("ok") is True

        reconnected = await until(command_acked, 20, "a command acknowledged through the new owner")
        assert takeover + reconnected <= 20
    finally:
        stop.set()
        if pusher:
            pusher.cancel()
        await bus.close()
        for p in procs:
            p.stop(5)
        sim.terminate()
        sim.wait(10)
