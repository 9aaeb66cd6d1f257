"""No encoder ever runs in the egress: aiortc's sender only packetizes (``pack``) the bus AUs.

The egress runs inside the test's event loop here (``egress_inproc``: the real service via
``run_service``) so the test can count calls on aiortc's codec classes in the same process, as
the feasibility probe did; the viewer is an aiortc peer with the passthrough decoder.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiortc.codecs.h264 import H264Decoder, H264Encoder
from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder

from services.common.bus import Bus
from tests.egress.helpers import AiortcViewer, FramePublisher, encode_h264_high, encode_vp8, nal_payloads


@pytest.mark.parametrize("codec_name", ["h264", "vp8"])
async def test_sender_packs_and_never_encodes(
    bus: Bus, egress_inproc: Any, monkeypatch: pytest.MonkeyPatch, codec_name: str
) -> None:
    calls = {"encode": 0, "pack": 0, "decode": 0}
    enc_cls = H264Encoder if codec_name == "h264" else Vp8Encoder
    dec_cls = H264Decoder if codec_name == "h264" else Vp8Decoder
    real_pack = enc_cls.pack

    def pack(self: Any, packet: Any) -> Any:
        calls["pack"] += 1
        return real_pack(self, packet)

    def encode(self: Any, frame: Any, force_keyframe: bool = False) -> Any:
        calls["encode"] += 1
        raise AssertionError("the egress must never encode")

    def decode(self: Any, encoded: Any) -> Any:
        calls["decode"] += 1
        raise AssertionError("nothing may decode")

    monkeypatch.setattr(enc_cls, "pack", pack)
    monkeypatch.setattr(enc_cls, "encode", encode)
    monkeypatch.setattr(dec_cls, "decode", decode)
    frames = encode_h264_high(60) if codec_name == "h264" else encode_vp8(60)
    pub = FramePublisher(bus, "cam1", frames, 30)
    await pub.start()
    viewer = AiortcViewer()
    try:
        reply = await viewer.connect(bus, "cam1")
        assert reply["ok"] and reply["codec"] == codec_name
        if codec_name == "h264":
            # in this process the egress registered H.264 High, and the aiortc viewer offers it
            # too: the answer names the stream's real profile
            assert "profile-level-id=64001f" in reply["sdp"]
        await viewer.wait_frames(20)
        assert calls["encode"] == 0 and calls["decode"] == 0
        assert calls["pack"] >= 20
        sent = {nal_payloads(p.frame.data) if codec_name == "h264" else p.frame.data for p in pub.sent}
        for r in viewer.received:
            assert (nal_payloads(r.frame.data) if codec_name == "h264" else r.frame.data) in sent
    finally:
        await viewer.close()
        await pub.stop()
