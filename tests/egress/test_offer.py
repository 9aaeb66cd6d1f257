"""Offer planning (services/egress/offer.py) on a real Chromium 156 offer, recorded from
/usr/bin/chromium on this machine (tests/egress/data/chromium156_offer.sdp), and on aiortc offers."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, sdp

from services.egress import codecs
from services.egress.offer import OfferError, plan_offer
from tests.egress.helpers import encode_h264_high
from tests.support.media import BUNNY, clip_frames, encode_h264

CHROMIUM = (Path(__file__).parent / "data" / "chromium156_offer.sdp").read_text()
P = sdp.H264Profile


@pytest.fixture(autouse=True)
def _registered() -> None:
    codecs.register_codecs()


def plid(plan: object) -> str:
    return str(plan.preferences[0].parameters.get("profile-level-id"))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("profile", "pt", "want", "match"),
    [
        (P.PROFILE_HIGH, 41, "f4001f", True),  # no High offered: High 4:4:4 decoders decode High
        (P.PROFILE_MAIN, 116, "4d001f", True),
        (P.PROFILE_CONSTRAINED_BASELINE, 108, "42e01f", True),
        (P.PROFILE_CONSTRAINED_HIGH, 41, "f4001f", True),
        (None, 102, "42001f", True),  # unknown profile: the browser's first packetization-mode 1
    ],
)
def test_chromium_h264_profile_choice(profile: P | None, pt: int, want: str, match: bool) -> None:
    plan = plan_offer(CHROMIUM, "h264", profile)
    assert (plan.codec, plan.payload_type, plid(plan), plan.profile_match) == ("h264", pt, want, match)
    assert plan.preferences[-1] == codecs.RTX  # Chromium offers RTX for it


def test_stream_profiles_from_real_bitstreams() -> None:
    assert codecs.sps_profile(encode_h264_high(1)[0].data) == P.PROFILE_HIGH
    assert codecs.sps_profile(encode_h264(1)[0].data) == P.PROFILE_CONSTRAINED_BASELINE  # x264 ultrafast
    assert codecs.sps_profile(clip_frames(BUNNY, limit=1)[0].data) == P.PROFILE_MAIN
    assert codecs.sps_profile(b"\x00\x00\x00\x01\x65\x88") is None


def test_chromium_vp8_and_av1() -> None:
    assert plan_offer(CHROMIUM, "vp8").payload_type == 96
    av1 = plan_offer(CHROMIUM, "av1")
    assert av1.payload_type == 45 and av1.preferences[0].mimeType == "video/AV1"


@pytest.mark.parametrize(
    ("codec_name", "needle"), [("h265", "H.265"), ("vp9", "VP9"), ("jpeg", "JPEG"), ("xyz", "xyz")]
)
def test_unsendable_codecs_are_422(codec_name: str, needle: str) -> None:
    with pytest.raises(OfferError) as err:
        plan_offer(CHROMIUM, codec_name)
    assert err.value.status == 422 and needle in err.value.message


def test_direction_and_codec_rules() -> None:
    recv = CHROMIUM
    assert plan_offer(recv.replace("a=recvonly", "a=sendrecv"), "h264").codec == "h264"
    assert plan_offer(recv.replace("a=recvonly\r\n", ""), "h264").codec == "h264"  # default sendrecv
    for text, needle in [
        (recv.replace("a=recvonly", "a=sendonly"), "sendonly"),
        (recv.replace("m=video 9 ", "m=video 0 ").replace("m=video 33230 ", "m=video 0 "), "port 0"),
        (recv.replace("packetization-mode=1", "packetization-mode=0"), "packetization-mode 0"),
        (recv.replace("H264/90000", "X264/90000"), "cannot receive H264"),
    ]:
        with pytest.raises(OfferError) as err:
            plan_offer(text, "h264")
        assert err.value.status == 422 and needle in err.value.message, err.value.message


async def test_aiortc_offer_without_extra_profiles() -> None:
    """An offer from stock aiortc lists constrained baseline / baseline only (aiortc's table; the
    egress's additions are in this process too, so they are stripped from the offer here)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    text = pc.localDescription.sdp
    await pc.close()
    lines = text.split("\r\n")
    extra = {"103", "104", "105", "106", "107", "108", "109", "110", "111", "112"}
    prefixes = tuple(f"a={k}:{pt} " for k in ("rtpmap", "fmtp", "rtcp-fb") for pt in extra)
    kept = [x for x in lines if not x.startswith(prefixes)]
    plan = plan_offer("\r\n".join(kept), "h264", P.PROFILE_HIGH)
    assert plid(plan) == "42e01f" and plan.profile_match is False  # nearest offered profile


@pytest.mark.parametrize(
    ("text", "needle"),
    [("", "no SDP offer"), (None, "no SDP offer"), ("m=video", "v=0"), ("v=0\r\nm=video x\r\n", "cannot be parsed")],
)
def test_not_an_offer_is_400(text: object, needle: str) -> None:
    with pytest.raises(OfferError) as err:
        plan_offer(text, "h264")
    assert err.value.status == 400 and needle in err.value.message
