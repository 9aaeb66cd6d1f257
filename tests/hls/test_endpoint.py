"""Request handling over a real packager (real libx264 frames fed by a task), no bus."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import m3u8
import pytest

from services.common.frames import Frame
from services.hls.endpoint import HlsEndpoint
from services.hls.packager import PackagerConfig, StreamPackager
from tests.hls.support import encoded, looped, x264


def setup(config: PackagerConfig | None = None, max_wait: float | None = None) -> tuple[StreamPackager, HlsEndpoint]:
    pk = StreamPackager("cam1", config)
    pk.set_source("h264", 320, 240)
    return pk, HlsEndpoint(pk, max_wait=max_wait)


async def feeder(pk: StreamPackager, ep: HlsEndpoint, frames: Sequence[Frame], fps: float = 300.0) -> None:
    """Push frames at ``fps`` (10x real time by default), waking the endpoint like the runner."""
    for f in frames:
        if pk.push(f).changed:
            ep.notify()
        await asyncio.sleep(1 / fps)


def error(body: bytes) -> str:
    doc = json.loads(body)
    assert doc["ok"] is False
    return str(doc["error"])


async def test_first_playlist_request_is_held_until_a_segment_exists() -> None:
    pk, ep = setup()
    frames = looped(x264(), 70)
    request = asyncio.create_task(ep.handle("stream.m3u8", {}))
    await asyncio.sleep(0.05)
    assert not request.done() and ep.waiting == 1
    await feeder(pk, ep, frames)
    reply = await asyncio.wait_for(request, 1.0)
    assert reply.status == 200
    assert reply.headers == {"Content-Type": "application/vnd.apple.mpegurl", "Cache-Control": "no-cache"}
    assert m3u8.loads(reply.body.decode()).segments[0].uri == "seg000000.ts"


async def test_blocking_reload_returns_when_the_part_exists() -> None:
    pk, ep = setup()
    frames = looped(x264(), 240)
    for f in frames[:100]:
        pk.push(f)
    assert (pk.open_msn(), pk.open_parts()) == (1, 3)
    feed = asyncio.create_task(feeder(pk, ep, frames[100:], fps=30))  # real time from here
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    reply = await ep.handle("stream_ll.m3u8", {"_HLS_msn": "1", "_HLS_part": "5"})
    waited = loop.time() - t0
    assert reply.status == 200
    pl = m3u8.loads(reply.body.decode())
    assert pl.segments[-1].parts[-1].uri == "part000001.5.m4s"  # exactly the part asked for
    assert 0.5 < waited < 1.5  # parts 3-5 take 1 s to arrive (the 6th part closes with frame 120)
    feed.cancel()
    reply = await asyncio.wait_for(ep.handle("stream_ll.m3u8", {"_HLS_msn": "1"}), 0.1)  # complete now
    assert reply.status == 200 and "seg000001.m4s" in reply.body.decode()


async def test_blocking_reload_503_after_three_target_durations() -> None:
    pk, ep = setup(PackagerConfig(segment_seconds=1.0, part_seconds=0.2))
    frames = looped(x264(), 40)
    for f in frames:
        pk.push(f)
    assert pk.target_duration == 1
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    reply = await ep.handle("stream_ll.m3u8", {"_HLS_msn": "2"})
    assert reply.status == 503 and reply.headers["Retry-After"] == "1"
    assert 2.9 < loop.time() - t0 < 3.6
    assert "timed out" in error(reply.body)


async def test_max_wait_caps_the_wait() -> None:
    _pk, ep = setup(max_wait=0.2)
    reply = await ep.handle("stream.m3u8", {})
    assert reply.status == 503 and "first segment" in error(reply.body)


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ({"_HLS_part": "1"}, "requires _HLS_msn"),
        ({"_HLS_msn": "x"}, "non-negative integer"),
        ({"_HLS_msn": "9"}, "more than two segments"),
        ({"_HLS_msn": "1", "_HLS_part": "40"}, "parts past the last part"),
    ],
)
async def test_bad_directives_are_400(query: dict[str, str], needle: str) -> None:
    pk, ep = setup()
    for f in looped(x264(), 70):
        pk.push(f)
    reply = await ep.handle("stream_ll.m3u8", query)
    assert reply.status == 400 and needle in error(reply.body)
    assert reply.headers["Content-Type"] == "application/json" and reply.headers["Cache-Control"] == "no-store"


async def test_media_replies_and_404s() -> None:
    pk, ep = setup(PackagerConfig(window=2, grace=1))
    for f in looped(x264(), 400):
        pk.push(f)
    ok = await ep.handle("seg000005.ts", {})
    assert ok.status == 200 and ok.headers["Content-Type"] == "video/mp2t"
    assert ok.headers["Cache-Control"] == "max-age=3600, immutable" and ok.body[0] == 0x47
    part = await ep.handle("part000005.0.m4s", {})
    assert part.status == 200 and part.body[4:8] == b"moof" and part.headers["Content-Type"] == "video/mp4"
    init = await ep.handle("init.mp4", {})
    assert init.status == 200 and init.headers["Cache-Control"] == "no-cache" and init.body[4:8] == b"ftyp"
    gone = await ep.handle("seg000001.ts", {})
    assert gone.status == 404 and "no longer kept" in error(gone.body)
    for path in ("nope.txt", "../../etc/passwd", "seg000099.ts", "init000007.mp4"):
        assert (await ep.handle(path, {})).status == 404


async def test_hinted_part_is_waited_for() -> None:
    pk, ep = setup()
    frames = looped(x264(), 100)
    for f in frames[:65]:
        pk.push(f)
    hint = pk.hint()
    assert hint == "part000001.0.m4s"
    request = asyncio.create_task(ep.handle(hint, {}))
    await asyncio.sleep(0.05)
    assert not request.done()
    await feeder(pk, ep, frames[65:75])
    reply = await asyncio.wait_for(request, 1.0)
    assert reply.status == 200 and reply.body[4:8] == b"moof"
    beyond = await ep.handle("part000001.5.m4s", {})  # not hinted: not waited for
    assert beyond.status == 404


async def test_hinted_part_of_an_ended_segment_is_404() -> None:
    pk, ep = setup()
    for f in looped(x264(), 65):
        pk.push(f)
    request = asyncio.create_task(ep.handle("part000001.1.m4s", {}))
    await asyncio.sleep(0.05)
    pk.end()  # the source left: segment 1 ends with one part
    ep.notify()
    reply = await asyncio.wait_for(request, 1.0)
    assert reply.status == 404 and "not produced" in error(reply.body)


async def test_ll_off_and_ts_for_h265_are_404_with_reasons() -> None:
    _pk, ep = setup(PackagerConfig(low_latency=False))
    assert "LL-HLS is off" in error((await ep.handle("stream_ll.m3u8", {})).body)
    pk2 = StreamPackager("cam2", PackagerConfig(segment_seconds=0.4))
    pk2.set_source("h265", 160, 128)
    ep2 = HlsEndpoint(pk2)
    for f in encoded("h265"):
        pk2.push(f)
    reply = await ep2.handle("seg000000.ts", {})
    assert reply.status == 404 and "H.264 only" in error(reply.body)
    assert (await ep2.handle("seg000000.m4s", {})).status == 200
