"""Bad WHEP requests get a clear ``{ok: false, status, error}`` and never hurt the egress.

The offers are real ones made by aiortc peer connections (audio-only, sendonly, VP8-only), or
broken on purpose; the egress is the real service as a child process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.rtcrtpsender import RTCRtpSender

from services.common import codec, subjects
from services.common.bus import Bus, NoResponders
from services.common.streams import HeartbeatBoard, StreamInfo, publish_info
from tests.egress.helpers import AiortcViewer, FramePublisher, encode_h264_high
from tests.egress.test_whep import wait_for


async def whep(bus: Bus, body: Any) -> dict[str, Any]:
    return await bus.request_obj(subjects.EGRESS_WHEP, body, timeout=10)


async def make_offer(*transceivers: tuple[str, str], codecs: list[str] | None = None) -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        for kind, direction in transceivers:
            t = pc.addTransceiver(kind, direction=direction)
            if codecs is not None and kind == "video":
                caps = RTCRtpSender.getCapabilities("video").codecs
                t.setCodecPreferences([c for c in caps if c.mimeType in codecs])
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()


@pytest.fixture
async def stream(bus: Bus) -> Any:
    pub = FramePublisher(bus, "cam1", encode_h264_high(30), 30)
    await pub.start()
    yield pub
    await pub.stop()


async def test_malformed_requests_and_offers_are_400(bus: Bus, egress: Any, stream: Any) -> None:
    good = await make_offer(("video", "recvonly"))
    no_fingerprint = "\r\n".join(x for x in good.split("\r\n") if "fingerprint" not in x)
    raw = await bus.request(subjects.EGRESS_WHEP, b"\xc1 not msgpack", timeout=5)
    reply = codec.unpack_map(raw.data)
    assert reply["ok"] is False and reply["status"] == 400 and "msgpack" in reply["error"]
    cases: list[tuple[Any, str]] = [
        ([1, 2], "msgpack map"),
        ({"sdp": good}, "stream id"),
        ({"stream": "Cam.1", "sdp": good}, "stream id"),
        ({"stream": "cam1*", "sdp": good}, "stream id"),
        ({"stream": "cam1"}, "no SDP offer"),
        ({"stream": "cam1", "sdp": 42}, "no SDP offer"),
        ({"stream": "cam1", "sdp": "hello"}, "v=0"),
        ({"stream": "cam1", "sdp": "v=0\r\n" + "a=x\r\n" * 20000}, "larger than"),
        ({"stream": "cam1", "sdp": good.replace("a=ice-ufrag", "a=x-ufrag")}, "ice-ufrag"),
        ({"stream": "cam1", "sdp": no_fingerprint}, "fingerprint"),
        ({"stream": "cam1", "sdp": good.replace("a=rtcp-mux\r\n", "")}, "rtcp-mux"),
        ({"stream": "cam1", "sdp": good, "expires_at": "soon"}, "expires_at"),
        ({"stream": "cam1", "sdp": good, "expires_at": int(time.time() * 1000) - 1}, "expired"),
    ]
    for body, needle in cases:
        reply = await whep(bus, body)
        assert reply["ok"] is False and reply["status"] == 400, (needle, reply)
        assert needle in reply["error"], (needle, reply["error"])


async def test_offers_that_cannot_receive_the_stream_are_422(bus: Bus, egress: Any, stream: Any) -> None:
    cases = [
        (await make_offer(("audio", "recvonly")), "no video m-line"),
        (await make_offer(("video", "sendonly")), "sendonly"),
        (await make_offer(("video", "inactive")), "inactive"),
        (await make_offer(("video", "recvonly"), codecs=["video/VP8", "video/rtx"]), "cannot receive H264"),
    ]
    h264_mode0 = (await make_offer(("video", "recvonly"))).replace("packetization-mode=1", "packetization-mode=0")
    cases.append((h264_mode0, "packetization-mode 0"))
    for sdp, needle in cases:
        reply = await whep(bus, {"stream": "cam1", "sdp": sdp})
        assert reply["ok"] is False and reply["status"] == 422, reply
        assert needle in reply["error"], (needle, reply["error"])


async def test_unknown_down_and_unsendable_streams(bus: Bus, egress: Any) -> None:
    offer = await make_offer(("video", "recvonly"))
    reply = await whep(bus, {"stream": "nosuch", "sdp": offer})
    assert reply == {"ok": False, "status": 404, "error": "stream 'nosuch' is not up"}
    await publish_info(bus, StreamInfo(stream="gone", codec="h264", up=False))
    assert (await whep(bus, {"stream": "gone", "sdp": offer}))["status"] == 404
    for name, codec_name, needle in [
        ("hevc", "h265", "H.265"),
        ("snap", "jpeg", "JPEG"),
        ("vp9cam", "vp9", "VP9"),
    ]:
        await publish_info(bus, StreamInfo(stream=name, codec=codec_name))
        reply = await whep(bus, {"stream": name, "sdp": offer})
        assert reply["ok"] is False and reply["status"] == 422 and needle in reply["error"], reply


async def test_viewer_that_vanishes_mid_handshake_is_cleaned_up(bus: Bus, egress: Any, stream: Any) -> None:
    """The viewer gets its answer but never connects (its tab closed): the session is dropped
    after CAMHUB_EGRESS_HANDSHAKE_SECONDS (3 s here), then a good viewer still plays."""
    board = HeartbeatBoard()
    await board.start(bus)
    ghost = AiortcViewer()
    sdp = await ghost.offer()
    await ghost.pc.close()  # gone before the answer arrives
    reply = await whep(bus, {"stream": "cam1", "sdp": sdp})
    assert reply["ok"], reply
    await wait_for(lambda: board.viewers("cam1") == 1, 3, "the pending viewer counted")
    await wait_for(lambda: board.viewers("cam1") == 0, 6, "the vanished viewer cleaned up")
    with pytest.raises(NoResponders):
        await bus.request_obj(subjects.webrtc_session(reply["session"], "stats"), {}, timeout=2)
    viewer = AiortcViewer()
    try:
        assert (await viewer.connect(bus, "cam1"))["ok"]
        await viewer.wait_frames(5)
    finally:
        await viewer.close()


def test_bad_egress_setting_is_one_clear_line(tmp_path: Any) -> None:
    """A bad CAMHUB_EGRESS_* value stops the process at start with exit 2 and one line."""
    env = {**os.environ, "CAMHUB_EGRESS_IDLE_SECONDS": "soon", "CAMHUB_NATS_URL": "nats://127.0.0.1:1"}
    out = subprocess.run(
        [sys.executable, "-m", "services.egress"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "camhub egress: CAMHUB_EGRESS_IDLE_SECONDS: Input should be a valid number, unable to parse string as a number"
    ]
