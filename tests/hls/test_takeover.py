"""Two real hls replicas: SIGKILL the owner, the other takes over within 6 s and the playlist
continues (media sequence after the old one, with a discontinuity, never back to 0)."""

from __future__ import annotations

import asyncio
import contextlib

import m3u8

from services.common.bus import Bus
from services.common.lease import lease_owner
from services.common.streams import publish_info
from services.hls.client import hls_get
from tests.hls.conftest import Starter
from tests.hls.support import looped, publish, x264
from tests.hls.test_service import INFO, get_ready, wait_serving
from tests.support.nats import NatsServer
from tests.support.procs import wait_services


async def test_replica_takes_over_and_continues_the_media_sequence(
    hls_procs: Starter, nats_server: NatsServer, bus: Bus
) -> None:
    procs = {"hls-a": hls_procs("hls-a"), "hls-b": hls_procs("hls-b")}
    await wait_services(nats_server.url, {"hls"})
    await publish_info(bus, INFO)
    owner = await wait_serving(bus, "cam1")
    other = "hls-b" if owner == "hls-a" else "hls-a"
    feed = asyncio.create_task(publish(bus, "cam1", looped(x264(), 30 * 40), fps=30))
    try:
        status, _, body = await get_ready(bus, "cam1", "stream_ll.m3u8")
        assert status == 200
        await asyncio.sleep(2.2)  # a second segment
        status, _, body = await hls_get(bus, "cam1", "stream_ll.m3u8")
        before = m3u8.loads(body.decode())
        last_msn = before.media_sequence + len(before.segments) - 1  # the open segment counts
        loop = asyncio.get_running_loop()
        procs[owner].kill()
        killed = loop.time()
        # while nobody owns the stream the gateway gets 503 + Retry-After, not 404
        status, headers, _ = await hls_get(bus, "cam1", "stream.m3u8", timeout=1.0)
        assert status in (503, 504) and (status == 504 or headers["Retry-After"] == "1")
        new_owner = await wait_serving(bus, "cam1", timeout=10.0, not_=owner)
        took = loop.time() - killed
        print(f"takeover {took:.2f} s")
        assert new_owner == other and took <= 6.0, f"takeover took {took:.1f} s"
        status, _, body = await get_ready(bus, "cam1", "stream_ll.m3u8")
        served = loop.time() - killed
        print(f"playlist again {served:.2f} s after the kill")
        assert status == 200
        after = m3u8.loads(body.decode())
        assert after.media_sequence > last_msn >= 1
        assert after.segments[0].discontinuity
        assert after.discontinuity_sequence == 0  # the tag on the first segment is discontinuity 1
        assert after.segments[0].init_section.uri == f"init{after.media_sequence:06d}.mp4"
        assert served <= took + 2.0 + 1.0 + 0.5  # a segment (2 s) after the next keyframe (1 s GOP)
        assert await lease_owner(bus, "hls.cam1") == other
    finally:
        feed.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feed
