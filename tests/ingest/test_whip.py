"""WHIP ingest with aiortc as the publisher (a real WebRTC peer in this process), against the real
ingest service running in-process on a real nats-server."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import av
import psutil
import pytest

from services.common import av1, h264, subjects
from services.common.bus import Bus, NoResponders
from services.common.lease import lease_owner
from services.common.registry import Device, Registry
from services.common.streams import publish_event
from tests.ingest.conftest import ProbeIngest, wait_for
from tests.ingest.media import big_keyframes, decode_av1, encode_av1
from tests.ingest.test_publisher import Tap
from tests.ingest.whip_client import PacketTrack, PatternTrack, Publisher, enable_av1_sending
from tests.support.media import decode_count, encode_h264


def udp_sockets() -> int:
    return len(psutil.Process().net_connections(kind="udp"))


def whip_tasks() -> list[str]:
    return [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("whip")]


async def test_h264_passthrough_then_delete_cleans_everything(bus: Bus, ingest: ProbeIngest) -> None:
    baseline_udp = udp_sockets()
    tap = await Tap().start(bus, "cam1")
    frames = encode_h264(45, gop=30, profile="high")
    pub = Publisher(bus, "cam1", PacketTrack([(f.data, f.pts) for f in frames]))
    reply = await pub.offer()
    assert reply["ok"] is True and reply["sdp"].startswith("v=0") and reply["session"]
    assert "a=sendonly" not in reply["sdp"] and "a=recvonly" in reply["sdp"]
    await wait_for(lambda: len(tap.frames) >= 44, 15)
    got = tap.frames
    # aiortc's jitter buffer completes a frame when the next one starts: the last one stays
    assert [list(h264.iter_nals(f.data)) for f in got[:44]] == [list(h264.iter_nals(f.data)) for f in frames[:44]]
    assert [i for i, f in enumerate(got) if f.key] == [0, 30]
    assert {b.pts - a.pts for a, b in itertools.pairwise(got)} == {3000}
    assert decode_count(got) == 44
    assert tap.infos[0]["source"] == "whip" and (tap.infos[-1]["width"], tap.infos[-1]["height"]) == (320, 240)
    assert await lease_owner(bus, "ingest.cam1") == "test"
    stats = await pub.session_request("stats")
    assert stats["ok"] and stats["stats"]["codec"] == "h264" and stats["stats"]["state"] == "connected"
    assert (await pub.session_request("patch"))["status"] == 422

    t0 = time.monotonic()
    assert await pub.session_request("delete") == {"ok": True}
    assert time.monotonic() - t0 < 5
    await pub.close()
    await tap.settle(bus)
    assert tap.events[-1]["type"] == "down" and tap.events[-1]["reason"] == "deleted by the publisher"
    assert tap.infos[-1]["up"] is False
    assert await lease_owner(bus, "ingest.cam1") is None
    assert not ingest.whip.sessions
    await wait_for(lambda: not whip_tasks(), 2)  # the delete task ends right after its reply
    await wait_for(lambda: udp_sockets() <= baseline_udp, 5)
    with pytest.raises(NoResponders):
        await pub.session_request("stats")


async def test_vp8_passthrough(bus: Bus, ingest: ProbeIngest) -> None:
    tap = await Tap().start(bus, "vp8cam")
    pub = Publisher(bus, "vp8cam", PatternTrack(), codec="VP8")  # aiortc's libvpx encodes (camera side)
    assert (await pub.offer())["ok"]
    try:
        await wait_for(lambda: len(tap.frames) >= 20, 15)
    finally:
        await pub.close()
    assert tap.frames[0].key and tap.frames[0].codec == "vp8"
    assert (tap.infos[-1]["width"], tap.infos[-1]["height"]) == (320, 240)
    dec = av.CodecContext.create("libvpx", "r")
    assert sum(len(dec.decode(av.Packet(f.data))) for f in tap.frames[:20]) == 20


async def test_av1_through_aiortc_with_the_av1_rtp_format(bus: Bus, ingest: ProbeIngest) -> None:
    enable_av1_sending()
    tus = encode_av1(30, keyint=10, noise_first=True)
    tap = await Tap().start(bus, "av1cam")
    pub = Publisher(bus, "av1cam", PacketTrack([(tu, i * 3000) for i, (tu, _) in enumerate(tus)]), codec="AV1")
    reply = await pub.offer()
    assert reply["ok"], reply
    assert "AV1/90000" in reply["sdp"]
    try:
        await wait_for(lambda: len(tap.frames) >= 29, 15)
    finally:
        await pub.close()
    got = tap.frames[:29]
    assert [f.key for f in got] == [k for _, k in tus[:29]]
    assert all(f.codec == "av1" for f in got)
    assert [[(o.type, o.payload) for o in av1.iter_obus(f.data) if o.type != 2] for f in got] == [
        [(o.type, o.payload) for o in av1.iter_obus(tu) if o.type != 2] for tu, _ in tus[:29]
    ]
    assert decode_av1([f.data for f in got]) == 29
    assert tap.infos[-1]["config"] == av1.sequence_header(tus[0][0])


async def test_keyframes_of_1_5_mb_arrive_intact(bus: Bus, ingest: ProbeIngest) -> None:
    kf = big_keyframes(4)
    assert all(len(f.data) > 1_500_000 for f in kf)
    tap = await Tap().start(bus, "bigcam")
    pub = Publisher(bus, "bigcam", PacketTrack([(f.data, f.pts) for f in kf], fps=5))
    assert (await pub.offer())["ok"]
    try:
        await wait_for(lambda: len(tap.frames) >= 3, 20)
    finally:
        await pub.close()
    for sent, got in zip(kf[:3], tap.frames[:3], strict=True):
        assert list(h264.iter_nals(got.data)) == list(h264.iter_nals(sent.data))
    assert decode_count(tap.frames[:3]) == 3


async def test_bad_offers_get_clear_errors(bus: Bus, ingest: ProbeIngest) -> None:
    reg = Registry(bus)
    await reg.put(Device(id="secure", kind="webrtc", publish_token="s3cret-token"))
    await reg.put(Device(id="ipcam", kind="rtsp", rtsp_url="rtsp://127.0.0.1:1/x"))

    async def ask(body: Any) -> dict[str, Any]:
        return await bus.request_obj(subjects.INGEST_WHIP, body, timeout=10)

    good = Publisher(bus, "secure", PacketTrack([(f.data, f.pts) for f in encode_h264(2)]))
    wrong = await good.offer(token="nope")
    assert (wrong["ok"], wrong["status"]) == (False, 401)
    await good.close()
    rtsp_owned = Publisher(bus, "ipcam", PacketTrack([(f.data, f.pts) for f in encode_h264(2)]))
    r = await rtsp_owned.offer()
    assert r["status"] == 409 and "rtsp" in r["error"]
    await rtsp_owned.close()
    audio = Publisher(bus, "cam9", None)
    r = await audio.offer(audio_only=True)
    assert (r["ok"], r["status"]) == (False, 422) and "no video" in r["error"]
    await audio.close()
    assert (await ask({"stream": "cam9", "sdp": "hello"}))["status"] == 400
    assert (await ask({"stream": "cam9", "sdp": "v=0\r\n" + "a=x\r\n" * 20000}))["status"] == 400
    assert (
        await ask(
            {
                "stream": "cam9",
                "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
                "a=rtpmap:96 H265/90000\r\n",
            }
        )
    )["status"] == 422
    # well-formed lines but nothing aiortc can use
    bogus = (
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\n"
    )
    assert (await ask({"stream": "cam9", "sdp": bogus}))["status"] == 400
    assert (await ask({"stream": "Bad.Id", "sdp": bogus}))["status"] == 400
    assert (await ask({"sdp": 5}))["status"] == 400
    msg = await bus.request(subjects.INGEST_WHIP, b"\xc1not msgpack", timeout=5)
    assert b"not msgpack" in msg.data
    assert await lease_owner(bus, "ingest.cam9") is None  # refused offers hold nothing
    assert not ingest.whip.sessions


async def test_second_publisher_for_a_live_stream_gets_409(bus: Bus, ingest: ProbeIngest) -> None:
    frames = encode_h264(30)
    first = Publisher(bus, "cam2", PacketTrack([(f.data, f.pts) for f in frames]))
    second = Publisher(bus, "cam2", PacketTrack([(f.data, f.pts) for f in frames]))
    try:
        assert (await first.offer())["ok"]
        r = await second.offer()
        assert (r["ok"], r["status"]) == (False, 409)
    finally:
        await first.close()
        await second.close()


async def test_ice_that_never_connects_is_cleaned_up(bus: Bus, ingest: ProbeIngest) -> None:
    tap = await Tap().start(bus, "cam3")
    pub = Publisher(bus, "cam3", PacketTrack([(f.data, f.pts) for f in encode_h264(2)]))
    reply = await pub.offer(apply_answer=False)  # the publisher never starts ICE
    assert reply["ok"]
    assert await lease_owner(bus, "ingest.cam3") == "test"
    t0 = time.monotonic()
    await wait_for(lambda: not ingest.whip.sessions, 10)
    assert time.monotonic() - t0 < 3.0 + 5.0  # connect timeout (3 s in these tests) + cleanup
    await pub.close()
    await tap.settle(bus)
    assert tap.events[-1]["type"] == "down" and "did not connect" in tap.events[-1]["reason"]
    assert await lease_owner(bus, "ingest.cam3") is None
    assert not whip_tasks()


async def test_publisher_that_goes_away_is_cleaned_within_5_s(bus: Bus, ingest: ProbeIngest) -> None:
    tap = await Tap().start(bus, "cam4")
    pub = Publisher(bus, "cam4", PatternTrack())
    assert (await pub.offer())["ok"]
    await wait_for(lambda: len(tap.frames) >= 5, 15)
    await pub.close()  # no DELETE: the peer just ends (RTCP BYE, DTLS close)
    t0 = time.monotonic()
    await wait_for(lambda: not ingest.whip.sessions, 8)
    assert time.monotonic() - t0 < 5.0
    await tap.settle(bus)
    assert tap.events[-1]["type"] == "down"
    assert await lease_owner(bus, "ingest.cam4") is None


async def test_keyframe_request_makes_the_publisher_send_an_idr(bus: Bus, ingest: ProbeIngest) -> None:
    """aiortc's encoder (libx264, GOP 250 = 8 s at 30 fps) only sends an early IDR on RTCP PLI."""
    tap = await Tap().start(bus, "cam5")
    pub = Publisher(bus, "cam5", PatternTrack())
    assert (await pub.offer())["ok"]
    try:
        await wait_for(lambda: len(tap.frames) >= 15, 15)
        assert [f.key for f in tap.frames[:15]].count(True) == 1
        n = len(tap.frames)
        await publish_event(bus, "cam5", "keyframe-request", by="test")
        await wait_for(lambda: any(f.key for f in tap.frames[n:]), 3)
        stats = await pub.session_request("stats")
        assert stats["stats"]["plis"] >= 1
    finally:
        await pub.close()


async def test_garbage_payloads_are_dropped_and_the_session_survives(bus: Bus, ingest: ProbeIngest) -> None:
    frames = encode_h264(40, gop=10)
    units: list[tuple[bytes, int]] = []
    junk = [
        b"\x00\x00\x00\x01\x1e" + bytes(range(256)) * 4,  # reserved NAL type 30
        b"\x00\x00\x00\x01\x06\x05\x10" + b"\xaa" * 100,  # SEI only: no coded slice
        b"\x00\x00\x00\x01\x0c" + b"\xff" * 50,  # filler data only
    ]
    pts = 0
    for i, f in enumerate(frames):
        units.append((f.data, pts))
        pts += 3000
        if i % 4 == 2:
            units.append((junk[i % 3], pts))
            pts += 3000
    tap = await Tap().start(bus, "cam6")
    pub = Publisher(bus, "cam6", PacketTrack(units))
    assert (await pub.offer())["ok"]
    try:
        await wait_for(lambda: len(tap.frames) >= 39, 15)
        stats = await pub.session_request("stats")
        assert stats["stats"]["state"] == "connected"
    finally:
        await pub.close()
    assert [list(h264.iter_nals(f.data)) for f in tap.frames[:39]] == [
        list(h264.iter_nals(f.data)) for f in frames[:39]
    ]
    health = stats["stats"]["health"]
    assert health["dropped"] >= 5  # SEI-only and filler-only "frames": no coded slice
    assert health["lost"] >= 2  # reserved NAL type: aiortc cannot depayload it, the frame is empty
