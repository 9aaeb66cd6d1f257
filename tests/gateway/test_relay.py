"""The WebSocket relay through real sockets (``websockets`` client, uvicorn server, nats-server).

Frames enter the bus the way ingest publishes them (``services.common.frames.encode`` on
``camhub.media.<stream>.frames``); the test plays ingest's part so it controls frame timing
exactly.  The end-to-end path through the real ingest is in ``test_push.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import time
from typing import Any

import av
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from services.common import codec, frames, subjects
from services.common.bus import Bus
from services.common.frames import Frame
from services.common.h264 import parameter_sets
from services.common.streams import StreamInfo, publish_info
from services.gateway.relay import RelayOptions
from services.gateway.state import GatewayOptions
from services.gateway.wire import unpack_frame
from tests.gateway.conftest import RunningGateway, StartGateway, wait_for
from tests.support.media import encode_h264


async def publish(bus: Bus, frame: Frame, stream: str = "cam1") -> None:
    """Publish ``frame`` as ingest does (docs/frames.md)."""
    for headers, body in frames.encode(frame, bus.max_payload):
        await bus.publish(subjects.media_frames(stream), body, headers=headers)


def viewer(url: str) -> Any:
    """A WebSocket viewer client.  No client-side queue limit: with one, ``websockets`` stops
    reading while unread messages pile up, so a test that stops reading early would wait for the
    close handshake until the close timeout."""
    return connect(url, max_queue=None, max_size=None, open_timeout=5)


async def viewers(gw: RunningGateway) -> int:
    return int((await gw.client.get("/health")).json()["total_connections"])


async def test_viewer_gets_info_then_decodable_frames_from_a_keyframe(gateway: RunningGateway, bus: Bus) -> None:
    clip = encode_h264(75, gop=30)
    await publish_info(
        bus,
        StreamInfo(
            stream="cam1",
            codec="h264",
            width=320,
            height=240,
            fps=30,
            config=parameter_sets(clip[0].data),
            source="push",
            up=True,
            epoch=1,
        ),
    )
    async with connect(f"{gateway.ws_url}/ws/cam1", open_timeout=5) as ws:
        info = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert info["type"] == "info" and info["codec"] == "h264" and info["width"] == 320
        await wait_for(lambda: _count_is(gateway, 1))
        for f in clip[5:]:  # join mid-GOP: frames 5..29 must be skipped
            await publish(bus, f)
        got = []
        while len(got) < 45:
            got.append(unpack_frame(await asyncio.wait_for(ws.recv(), 5)))
    assert got[0].key and got[0].pts == clip[30].pts
    assert [g.pts for g in got] == [f.pts for f in clip[30:75]]
    assert [g.key for g in got] == [f.key for f in clip[30:75]]
    dec = av.CodecContext.create("h264", "r")
    pictures = sum(len(dec.decode(av.Packet(g.data))) for g in got) + len(dec.decode(None))
    assert pictures == 45


async def test_the_stream_path_alias_and_info_from_the_first_keyframe(gateway: RunningGateway, bus: Bus) -> None:
    clip = encode_h264(31, gop=30)
    async with viewer(f"{gateway.ws_url}/stream/cam1") as ws:
        await wait_for(lambda: _count_is(gateway, 1))
        for f in clip:
            await publish(bus, f)
        info = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert info["type"] == "info" and info["codec"] == "h264" and info["config"]
        first = unpack_frame(await asyncio.wait_for(ws.recv(), 5))
        assert first.key and first.pts == clip[0].pts


async def _count_is(gw: RunningGateway, n: int) -> bool:
    return await viewers(gw) == n


async def test_a_viewer_that_never_reads_does_not_slow_a_fast_one(start_gateway: StartGateway, bus: Bus) -> None:
    gw = await start_gateway(GatewayOptions(relay=RelayOptions(max_frames=8, max_behind_s=1.0)))
    frame_bytes = 256 * 1024
    count = 150
    stamps: dict[int, float] = {}
    got: list[tuple[int, float]] = []
    async with (
        connect(f"{gw.ws_url}/ws/cam1", max_queue=1, max_size=None) as slow,
        connect(f"{gw.ws_url}/ws/cam1", max_size=None) as fast,
    ):
        await wait_for(lambda: _count_is(gw, 2))

        async def read_fast() -> None:
            async for message in fast:
                if isinstance(message, bytes):
                    f = unpack_frame(message)
                    got.append((f.pts, time.monotonic()))
                    if len(got) == count:
                        return

        reader = asyncio.create_task(read_fast())
        noise = os.urandom(frame_bytes)
        for i in range(count):
            pts = i * 3000
            stamps[pts] = time.monotonic()
            data = b"\x00\x00\x00\x01" + struct.pack(">I", i) + noise
            await publish(bus, Frame("h264", pts, pts, i % 10 == 0, data, seq=i))
            await asyncio.sleep(1 / 60)
        await asyncio.wait_for(reader, 10)
        # The fast viewer got every frame, in order.
        assert [p for p, _ in got] == [i * 3000 for i in range(count)]
        delays = sorted(t - stamps[p] for p, t in got)
        assert delays[int(0.95 * len(delays))] < 1.0, delays[-5:]
        # The slow one fell behind and was closed by the gateway; the fast one is still served.
        await wait_for(lambda: _count_is(gw, 1), timeout=10)
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(slow.recv(), 10)
    metrics = (await gw.client.get("/metrics")).text
    line = next(x for x in metrics.splitlines() if x.startswith('camhub_frames_dropped_total{reason="slow-viewer"'))
    assert float(line.split()[-1]) > 0


async def test_bad_stream_id_is_refused_at_the_handshake(gateway: RunningGateway) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with connect(f"{gateway.ws_url}/ws/Bad.Stream", open_timeout=5):
            pass
    assert info.value.response.status_code == 400
    assert json.loads(info.value.response.body or b"{}")["ok"] is False


async def test_viewer_counts_reach_the_heartbeat(gateway: RunningGateway, bus: Bus) -> None:
    beats: list[dict[str, Any]] = []

    async def on_beat(msg: Any) -> None:
        body = codec.unpack_map(msg.data)
        if body.get("service") == "gateway":
            beats.append(body)

    await bus.subscribe(subjects.HEARTBEAT_ALL, on_beat)
    async with connect(f"{gateway.ws_url}/ws/cam9", open_timeout=5), connect(f"{gateway.ws_url}/ws/cam9"):
        await wait_for(lambda: asyncio.sleep(0, any(b["viewers"].get("cam9") == 2 for b in beats)))
    beats.clear()
    await wait_for(lambda: asyncio.sleep(0, bool(beats) and beats[-1]["viewers"] == {}))


async def test_info_change_is_announced_and_followed_by_a_keyframe(gateway: RunningGateway, bus: Bus) -> None:
    clip = encode_h264(40, gop=20)
    info = StreamInfo(
        stream="cam1", codec="h264", width=320, height=240, config=parameter_sets(clip[0].data), up=True, epoch=1
    )
    await publish_info(bus, info)
    async with viewer(f"{gateway.ws_url}/ws/cam1") as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["epoch"] == 1
        await wait_for(lambda: _count_is(gateway, 1))
        for f in clip[:5]:
            await publish(bus, f)
        for _ in range(5):
            await asyncio.wait_for(ws.recv(), 5)
        await publish_info(bus, info.model_copy(update={"epoch": 2}))
        msg = await asyncio.wait_for(ws.recv(), 5)
        assert json.loads(msg)["epoch"] == 2
        for f in clip[5:]:
            await publish(bus, f)
        nxt = unpack_frame(await asyncio.wait_for(ws.recv(), 5))
        assert nxt.key and nxt.pts == clip[20].pts


async def test_viewers_are_closed_1001_when_the_gateway_stops(gateway: RunningGateway) -> None:
    async with connect(f"{gateway.ws_url}/ws/cam1", open_timeout=5) as ws:
        await wait_for(lambda: _count_is(gateway, 1))
        stopping = asyncio.create_task(gateway.stop())
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        assert await stopping == 0
