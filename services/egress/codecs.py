"""The codecs the egress sends without re-encoding, as aiortc's SDP negotiation sees them.

aiortc 1.16 registers video codecs VP8 and H.264 constrained baseline / baseline only
(``profile-level-id`` 42e01f / 42001f, ``aiortc/codecs/__init__.py``). A passthrough sender
should answer with the profile the bitstream really has, so :func:`register_codecs` adds H.264
Main (4d001f), Constrained High (640c1f), High (64001f) and High 4:4:4 Predictive (f4001f)
entries, and AV1 (``video/AV1``, packed
by :mod:`services.egress.av1`), to aiortc's module-global codec table *in the egress process*.
High 4:4:4 Predictive (f4001f) is there because Chromium 156 offers it instead of High, and its
decoders decode High bitstreams (H.264 Annex A).
Only the SDP side changes: H.264 and VP8 access units still go through aiortc's own packetizers
(``H264Encoder.pack``: RFC 6184 single NAL / STAP-A / FU-A, packetization-mode 1;
``Vp8Encoder.pack``: RFC 7741), which never encode.

H.264 profiles follow ITU-T H.264 Annex A and RFC 6184 section 8.1 (``profile-level-id`` =
profile_idc, constraint flags, level_idc in hex).
"""

from __future__ import annotations

from typing import Any

import aiortc.codecs as aiortc_codecs
import aiortc.rtcrtpsender as rtcrtpsender
import aiortc.rtp as aiortc_rtp
from aiortc import sdp
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpCodecCapability, RTCRtpCodecParameters

from services.common import h264
from services.egress.av1 import Av1Packer

#: camhub codecs (``frames.md``) the egress can send, mapped to their RTP MIME type.
MIME = {"h264": "video/H264", "vp8": "video/VP8", "av1": "video/AV1"}
#: Why each other codec cannot go out over WHEP (the 422 reason).
UNSENDABLE = {
    "h265": "H.265 cannot be sent over WebRTC by camhub (aiortc has no H.265 payloader; browsers rarely receive it)",
    "vp9": "VP9 cannot be sent over WebRTC by camhub (aiortc has no VP9 payloader)",
    "jpeg": "a JPEG image stream cannot be sent over WebRTC without re-encoding; use the WebSocket relay",
    "webp": "a WebP image stream cannot be sent over WebRTC without re-encoding; use the WebSocket relay",
}
H264_EXTRA = ("4d001f", "640c1f", "64001f", "f4001f")

_P = sdp.H264Profile
#: For a stream of each H.264 profile, the profiles whose decoders can decode it, best first
#: (ITU-T H.264 Annex A.2: each later profile's decoders decode the earlier one's bitstreams).
H264_DECODABLE_BY: dict[sdp.H264Profile, tuple[sdp.H264Profile, ...]] = {
    _P.PROFILE_CONSTRAINED_BASELINE: (
        _P.PROFILE_CONSTRAINED_BASELINE,
        _P.PROFILE_BASELINE,
        _P.PROFILE_MAIN,
        _P.PROFILE_CONSTRAINED_HIGH,
        _P.PROFILE_HIGH,
        _P.PROFILE_PREDICTIVE_HIGH_444,
    ),
    _P.PROFILE_BASELINE: (_P.PROFILE_BASELINE,),
    _P.PROFILE_MAIN: (_P.PROFILE_MAIN, _P.PROFILE_HIGH, _P.PROFILE_PREDICTIVE_HIGH_444),
    _P.PROFILE_CONSTRAINED_HIGH: (_P.PROFILE_CONSTRAINED_HIGH, _P.PROFILE_HIGH, _P.PROFILE_PREDICTIVE_HIGH_444),
    _P.PROFILE_HIGH: (_P.PROFILE_HIGH, _P.PROFILE_PREDICTIVE_HIGH_444),
    _P.PROFILE_PREDICTIVE_HIGH_444: (_P.PROFILE_PREDICTIVE_HIGH_444,),
}
#: Position of each profile in the hierarchy, to pick the nearest one when none decodes the stream
#: (Baseline branches off the Constrained Baseline -> Main -> High line: FMO/ASO).
H264_RANK = {
    _P.PROFILE_BASELINE: -1,
    _P.PROFILE_CONSTRAINED_BASELINE: 0,
    _P.PROFILE_MAIN: 2,
    _P.PROFILE_CONSTRAINED_HIGH: 3,
    _P.PROFILE_HIGH: 4,
    _P.PROFILE_PREDICTIVE_HIGH_444: 5,
}
RTX = RTCRtpCodecCapability(mimeType="video/rtx", clockRate=90_000)
#: Payload types an answer may take over from the offer (RFC 5761 section 4 with rtcp-mux).
DYNAMIC_PAYLOAD_TYPES = frozenset(range(35, 64)) | frozenset(range(96, 128))

_state: dict[str, Any] = {}


def _feedback() -> list[RTCRtcpFeedback]:
    return [
        RTCRtcpFeedback(type="nack"),
        RTCRtcpFeedback(type="nack", parameter="pli"),
        RTCRtcpFeedback(type="ccm", parameter="fir"),
        RTCRtcpFeedback(type="goog-remb"),
    ]


def register_codecs() -> None:
    """Add H.264 Main/High and AV1 to aiortc's codec table and its sender's encoder lookup.

    Idempotent; call once per process before creating peer connections (after
    :func:`services.common.rtc.configure_aiortc`).
    """
    if _state.get("done"):
        return
    video: list[RTCRtpCodecParameters] = aiortc_codecs.CODECS["video"]
    used = {c.payloadType for kind in aiortc_codecs.CODECS.values() for c in kind}
    free = iter(pt for pt in range(96, 128) if pt not in used)

    def add(mime: str, parameters: dict[str, str | int | None]) -> None:
        pt = next(free)
        video.append(
            RTCRtpCodecParameters(
                mimeType=mime, clockRate=90_000, payloadType=pt, rtcpFeedback=_feedback(), parameters=parameters
            )
        )
        rtx_pt = next(free)
        video.append(
            RTCRtpCodecParameters(mimeType="video/rtx", clockRate=90_000, payloadType=rtx_pt, parameters={"apt": pt})
        )

    for plid in H264_EXTRA:
        add("video/H264", {"level-asymmetry-allowed": "1", "packetization-mode": "1", "profile-level-id": plid})
    add("video/AV1", {})
    # aiortc keeps an offered payload type only if it is in 96-127 (aiortc.rtp.DYNAMIC_PAYLOAD_TYPES)
    # and otherwise answers with its own number, which the offerer does not expect (RFC 3264 6.1).
    # With rtcp-mux, 35-63 are dynamic too (RFC 5761 4, JSEP RFC 8829 5.1.4): Chromium offers AV1
    # and H.264 High 4:4:4 there (45, 41).
    setattr(aiortc_rtp, "DYNAMIC_PAYLOAD_TYPES", DYNAMIC_PAYLOAD_TYPES)  # noqa: B010

    original = getattr(rtcrtpsender, "get_encoder")  # noqa: B009 (imported name, not re-exported)

    def get_encoder(codec: RTCRtpCodecParameters) -> Any:
        if codec.mimeType.lower() == "video/av1":
            return Av1Packer()
        return original(codec)

    setattr(rtcrtpsender, "get_encoder", get_encoder)  # noqa: B010 (module global looked up per sender)
    _state["done"] = True


def capability(params: RTCRtpCodecParameters) -> RTCRtpCodecCapability:
    """The capability aiortc's ``setCodecPreferences`` compares against for a registered codec."""
    return RTCRtpCodecCapability(mimeType=params.mimeType, clockRate=params.clockRate, parameters=params.parameters)


def is_rtx_name(name: str) -> bool:
    """True for the RTX retransmission format (RFC 4588)."""
    return name.lower() == "rtx"


def local_codecs(codec: str) -> list[RTCRtpCodecParameters]:
    """The registered (non-RTX) aiortc codecs that carry camhub ``codec``."""
    mime = MIME.get(codec, "").lower()
    return [c for c in aiortc_codecs.CODECS["video"] if c.mimeType.lower() == mime]


def h264_profile(plid: str) -> sdp.H264Profile | None:
    """The H.264 profile of a ``profile-level-id`` (6 hex digits; the level is ignored), or None."""
    try:
        return sdp.parse_h264_profile_level_id(plid[:4] + "1f")[0]
    except ValueError:
        return None


def sps_profile_level_id(data: bytes) -> str | None:
    """``profile-level-id`` (RFC 6184 section 8.1) of the first SPS in Annex B ``data``, or None."""
    for nal in h264.iter_nals(data):
        if h264.nal_type(nal) == h264.H264_SPS and len(nal) >= 4:
            return nal[1:4].hex()
    return None


def sps_profile(data: bytes) -> sdp.H264Profile | None:
    """The H.264 profile of the first SPS in ``data`` (parameter sets or a keyframe), or None."""
    plid = sps_profile_level_id(data)
    if plid is None:
        return None
    profile = h264_profile(plid)
    if profile is not None:
        return profile
    # constraint flags outside aiortc's table: classify by profile_idc alone
    return {
        0x42: sdp.H264Profile.PROFILE_BASELINE,
        0x4D: sdp.H264Profile.PROFILE_MAIN,
        0x64: sdp.H264Profile.PROFILE_HIGH,
    }.get(int(plid[:2], 16))
