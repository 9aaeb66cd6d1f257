"""Pushed frames (``camhub.ingest.push.<stream>``) through the real ingest service: JPEG, WebP and
H.264 from real encoders, every refusal, viewers from heartbeats, idle end, and two ingest
replicas sharing one pushed stream."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.common import codec, subjects
from services.common.bus import Bus
from services.common.frames import CLOCK_HZ
from services.common.registry import Device, Registry
from services.common.settings import Settings
from services.ingest.push import PushError, parse_push
from tests.ingest.conftest import ProbeIngest, running_ingest, wait_for
from tests.ingest.media import encode_image
from tests.ingest.test_publisher import Tap
from tests.support.media import encode_h264


async def push(bus: Bus, stream: str, body: bytes, **headers: str) -> dict[str, Any]:
    h = {k.replace("_", "-"): v for k, v in headers.items()}
    msg = await bus.request(f"camhub.ingest.push.{stream}", body, headers=h, timeout=5)
    return codec.unpack_map(msg.data)


@pytest.fixture
async def push_ingest(settings: Settings) -> AsyncIterator[ProbeIngest]:
    fast = settings.model_copy(update={"push_idle_seconds": 1.0, "push_max_bytes": 256 * 1024})
    async with running_ingest(fast) as svc:
        yield svc


async def test_images_and_h264_are_published_and_viewers_decide_200_or_202(bus: Bus, push_ingest: ProbeIngest) -> None:
    tap = await Tap().start(bus, "cam1")
    jpeg = encode_image("mjpeg", 320, 240)
    before = time.time_ns() * CLOCK_HZ // 1_000_000_000
    assert await push(bus, "cam1", jpeg, Content_Type="image/jpeg") == {"ok": True, "viewers": 0, "status": 202}
    await tap.settle(bus)
    f = tap.frames[0]
    assert (f.codec, f.key, f.data) == ("jpeg", True, jpeg)
    assert before <= f.pts <= before + CLOCK_HZ  # wall clock, 90 kHz
    assert (tap.infos[-1]["source"], tap.infos[-1]["width"], tap.infos[-1]["height"]) == ("push", 320, 240)

    # a viewer appears: the gateway's heartbeat says so (stand-in for the gateway, which another
    # engineer builds: the board only reads heartbeats, so a heartbeat message is the real input)
    beat = {
        "service": "gateway",
        "instance": "gw1",
        "ts": int(time.time() * 1000),
        "interval": 2.0,
        "viewers": {"cam1": 2},
    }
    await bus.publish_obj(subjects.heartbeat("gateway", "gw1"), beat)
    await bus.nc.flush()
    await wait_for(lambda: push_ingest.board.viewers("cam1") == 2, 5)
    assert await push(bus, "cam1", encode_image("mjpeg", 320, 240, 1), Content_Type="image/jpeg; q=1") == {
        "ok": True,
        "viewers": 2,
        "status": 200,
    }

    webp = encode_image("libwebp", 160, 120)
    assert (await push(bus, "web1", webp, Content_Type="image/webp"))["ok"]
    tap2 = await Tap().start(bus, "h264cam")
    frames = encode_h264(3, gop=3)
    for i, fr in enumerate(frames):
        r = await push(bus, "h264cam", fr.data, Content_Type="video/h264", Camhub_Pts=str(1000 + i * 3000))
        assert r["ok"]
    await tap2.settle(bus)
    assert [(x.codec, x.pts, x.key) for x in tap2.frames] == [
        ("h264", 1000, True),
        ("h264", 4000, False),
        ("h264", 7000, False),
    ]


async def test_refusals(bus: Bus, push_ingest: ProbeIngest) -> None:
    reg = Registry(bus)
    await reg.put(Device(id="locked", kind="push", publish_token="tok-123"))
    await reg.put(Device(id="ipcam", kind="rtsp", rtsp_url="rtsp://127.0.0.1:1/x"))
    await wait_for(lambda: push_ingest.devices.get("locked") and push_ingest.devices.get("ipcam"), 5)
    jpeg = encode_image()
    cases = [
        (("cam2", b"hello", {"Content_Type": "text/plain"}), 415),
        (("cam2", jpeg, {}), 415),
        (("cam2", b"\xff\xd8\xff\xe0 truncated", {"Content_Type": "image/jpeg"}), 400),
        (("cam2", b"RIFF\x00\x00\x00\x00WEBX", {"Content_Type": "image/webp"}), 400),
        (("cam2", b"\x00\x00\x00\x01\x06\x05\x01\x00", {"Content_Type": "video/h264"}), 400),  # SEI only
        (("cam2", b"", {"Content_Type": "image/jpeg"}), 400),
        (("cam2", b"\xff\xd8" + b"\x00" * 300_000 + b"\xff\xd9", {"Content_Type": "image/jpeg"}), 413),
        (("cam2", jpeg, {"Content_Type": "image/jpeg", "Camhub_Pts": "soon"}), 400),
        (("cam2", jpeg, {"Content_Type": "image/jpeg", "Camhub_Key": "yes"}), 400),
        (("locked", jpeg, {"Content_Type": "image/jpeg"}), 401),
        (("locked", jpeg, {"Content_Type": "image/jpeg", "Camhub_Token": "wrong"}), 401),
        (("ipcam", jpeg, {"Content_Type": "image/jpeg"}), 409),
        (("Bad", jpeg, {"Content_Type": "image/jpeg"}), 400),
    ]
    for (stream, body, headers), status in cases:
        r = await push(bus, stream, body, **headers)
        assert (r["ok"], r["status"]) == (False, status), (stream, headers, r)
        assert r["error"]
    r = await push(bus, "locked", jpeg, Content_Type="image/jpeg", Camhub_Token="tok-123")
    assert r["ok"]
    assert "cam2" not in push_ingest.push.streams  # nothing was started by refused pushes


async def test_idle_push_stream_ends(bus: Bus, push_ingest: ProbeIngest) -> None:
    tap = await Tap().start(bus, "cam3")
    assert (await push(bus, "cam3", encode_image(), Content_Type="image/jpeg"))["ok"]
    await wait_for(lambda: any(e["type"] == "down" for e in tap.events), 5)
    assert "cam3" not in push_ingest.push.streams
    assert "no frame pushed" in tap.events[-1]["reason"]
    again = await push(bus, "cam3", encode_image(i=2), Content_Type="image/jpeg")
    assert again["ok"], again
    await wait_for(lambda: [e["type"] for e in tap.events][-2:] == ["up", "discontinuity"], 5)


async def test_two_replicas_number_one_pushed_stream_together(settings: Settings, bus: Bus) -> None:
    """The queue group spreads pushes over both replicas; the one without the stream's lease
    forwards to the owner, so the stream has one publisher: one epoch, seq 1..N without gaps."""
    tap = await Tap().start(bus, "shared")
    a = settings.model_copy(update={"instance": "ing-a"})
    b = settings.model_copy(update={"instance": "ing-b"})
    async with running_ingest(a) as ing_a, running_ingest(b) as ing_b:
        images = [encode_image(i=i) for i in range(30)]
        for img in images:
            assert (await push(bus, "shared", img, Content_Type="image/jpeg"))["ok"]
        await tap.settle(bus)
        assert ing_a is not ing_b
        assert ing_a.push.forwarded + ing_b.push.forwarded > 0  # both replicas got pushes
    assert [f.seq for f in tap.frames] == list(range(1, 31))
    assert [f.data for f in tap.frames] == images
    assert [e["type"] for e in tap.events].count("up") == 1


def test_parse_push_defaults() -> None:
    frames = encode_h264(2, gop=2)
    f = parse_push({"content-type": "video/h264"}, frames[0].data, 1 << 20, now_ns=10**18)
    assert f.key and f.pts == 10**9 * CLOCK_HZ
    f = parse_push({"Content-Type": "video/h264"}, frames[1].data, 1 << 20)
    assert not f.key
    with pytest.raises(PushError) as err:
        parse_push({"Content-Type": "video/h265"}, frames[0].data, 1 << 20)
    assert err.value.status == 400  # H.264 bytes read as H.265: reserved NAL types
