"""``hls_get`` (the gateway's helper) against a real nats-server: reasons for 404/503/504,
and chunked replies when a segment is larger than the server's ``max_payload``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from nats.aio.msg import Msg

from services.common import subjects
from services.common.bus import Bus
from services.common.settings import load_settings
from services.common.streams import StreamInfo, publish_event, publish_info
from services.hls.client import hls_get
from tests.hls.support import looped, publish
from tests.support.media import BUNNY, clip_frames
from tests.support.nats import NatsServer
from tests.support.procs import ServiceProcess, service_env, wait_services


def reason(body: bytes) -> str:
    doc = json.loads(body)
    assert doc["ok"] is False
    return str(doc["error"])


async def test_reasons_when_nobody_packages_the_stream(bus: Bus) -> None:
    status, headers, body = await hls_get(bus, "Bad.Id", "stream.m3u8")
    assert status == 400 and "invalid" in reason(body)
    status, _, body = await hls_get(bus, "nosuch", "stream.m3u8")
    assert status == 404 and reason(body) == "no stream nosuch"
    await publish_info(bus, StreamInfo(stream="printer1", codec="jpeg", source="bambu-jpeg"))
    status, _, body = await hls_get(bus, "printer1", "stream.m3u8")
    assert status == 404 and "carries jpeg: HLS needs a video codec" in reason(body)
    await publish_info(bus, StreamInfo(stream="cam9", codec="h264", up=False))
    status, _, body = await hls_get(bus, "cam9", "stream.m3u8")
    assert status == 404 and "is down" in reason(body)
    await publish_info(bus, StreamInfo(stream="cam8", codec="h264"))
    status, headers, body = await hls_get(bus, "cam8", "stream.m3u8")
    assert status == 503 and headers["Retry-After"] == "1" and "starting" in reason(body)


async def test_owner_that_does_not_answer_is_504(bus: Bus) -> None:
    """A subscriber that swallows requests stands in for a hung owner (a real one answers)."""

    async def swallow(msg: Msg) -> None:
        return None

    await bus.subscribe(subjects.hls_get("cam7"), swallow)
    status, _, body = await hls_get(bus, "cam7", "stream.m3u8", timeout=0.3)
    assert status == 504 and "did not answer" in reason(body)


async def test_segments_larger_than_max_payload_arrive_whole(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats", extra_conf="max_payload: 65536")
    await server.astart()
    proc = ServiceProcess(
        "hls",
        service_env(server.url, tmp_path / "data", CAMHUB_HLS_DIR=str(tmp_path / "hls"), CAMHUB_INSTANCE="hls-a"),
        tmp_path,
    )
    bus = await Bus.connect(load_settings(nats_url=server.url), "camhub-test")
    try:
        proc.start()
        await wait_services(server.url, {"hls"})
        assert bus.max_payload == 65536
        await publish_info(bus, StreamInfo(stream="big", codec="h264", width=1280, height=720, fps=25.0))
        for _ in range(80):
            if (await hls_get(bus, "big", "seg999999.ts"))[0] == 404:
                break
            await asyncio.sleep(0.1)
        bunny = clip_frames(BUNNY)  # keyframe of 105 kB: frames are chunked on the bus too
        await publish(bus, "big", looped(bunny, len(bunny) + 1))
        await publish_event(bus, "big", "down", reason="test")
        status, headers, ts = await hls_get(bus, "big", "seg000000.ts")
        assert status == 200, ts
        assert headers["Content-Type"] == "video/mp2t" and len(ts) > 10 * 65536
        mirrored = tmp_path / "hls" / "big" / "seg000000.ts"
        for _ in range(50):
            if mirrored.exists():
                break
            await asyncio.sleep(0.1)
        assert ts == mirrored.read_bytes()
        status, _, m4s = await hls_get(bus, "big", "seg000000.m4s")
        assert status == 200 and m4s == (tmp_path / "hls" / "big" / "seg000000.m4s").read_bytes()
        assert "Camhub-Total" not in headers
    finally:
        await bus.close()
        proc.stop()
        server.stop()
