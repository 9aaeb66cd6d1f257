"""aiortc receive-side hooks for ingest: AV1 support and depayloading that never stalls.

aiortc 1.16 knows only VP8 and constrained-baseline H.264 for video.  :func:`install`
(idempotent, call after :func:`services.common.rtc.configure_aiortc`) adds:

* H.264 Main, High and constrained High (:data:`H264_EXTRA_PROFILES`) to the codec list;

* ``video/AV1`` (clock rate 90 kHz, NACK + PLI feedback, with an RTX entry) to
  ``aiortc.codecs.CODECS["video"]``, so answers accept AV1 offers (payload type taken from the
  offer, as for every codec);
* a per-packet hook in front of ``aiortc.rtcrtpreceiver.depayload``: AV1 payloads are kept
  whole and length-prefixed (:func:`~services.ingest.av1_rtp.frame_payload`) so aiortc's
  jitter buffer, which groups packets by RTP timestamp, hands over a frame's payloads in order;
* the same hook makes a payload that cannot be parsed (garbage, an unsupported H.264 NAL type)
  an empty one instead of aiortc's ``ValueError``: aiortc then skips the packet *before* its
  jitter buffer, whose frames need consecutive sequence numbers, so one bad packet would stall
  the video until the buffer overflows (thousands of packets).  An empty part yields a frame
  with the rest (an empty frame when it was alone), which the WHIP session counts as lost;
* a decoder hook in front of ``aiortc.rtcrtpreceiver.get_decoder``: for AV1 an
  :class:`Av1PassthroughDecoder` runs :func:`~services.ingest.av1_rtp.depacketize` and yields an
  :class:`~services.common.rtc.EncodedFrame` with the temporal unit (no decoder runs).  A frame
  that cannot be reassembled yields an ``EncodedFrame`` with empty ``data``, which the WHIP
  session counts as lost (and answers with a PLI).

Source: RTP Payload Format for AV1 (AOMedia), section 7.2 (SDP: ``a=rtpmap:<pt> AV1/90000``).
"""

from __future__ import annotations

import logging
from typing import Any

import aiortc.codecs as aiortc_codecs
import aiortc.rtcrtpreceiver as rtcrtpreceiver
from aiortc.codecs.base import Decoder
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpCodecParameters

from services.common import av1
from services.common.av1 import Av1Error
from services.common.rtc import EncodedFrame
from services.ingest.av1_rtp import depacketize, frame_payload, unframe_payloads

log = logging.getLogger("camhub.ingest.rtc")

AV1_MIME = "video/AV1"
#: H.264 profiles accepted besides aiortc's constrained baseline (42001f, 42e01f): Main, High,
#: constrained High.  Passthrough never decodes, so any profile is fine; aiortc matches offers
#: by profile (RFC 6184 8.1 ``profile-level-id``) and would refuse a Main-only offer (FFmpeg's).
H264_EXTRA_PROFILES = ("4d001f", "64001f", "640c1f")
_state: dict[str, Any] = {}


class Av1PassthroughDecoder(Decoder):  # type: ignore[misc]
    """Turns a jitter-buffer frame (length-prefixed AV1 RTP payloads) into a temporal unit."""

    def __init__(self) -> None:
        self.seq_header = b""
        self.errors = 0

    def decode(self, encoded_frame: Any) -> list[Any]:
        ts = int(encoded_frame.timestamp)
        try:
            tu = depacketize(unframe_payloads(bytes(encoded_frame.data)), self.seq_header)
        except Av1Error as exc:
            self.errors += 1
            log.debug("AV1 frame dropped: %s", exc)
            return [EncodedFrame("av1", b"", ts, False)]
        except Exception as exc:  # never let the receiver's decoder thread die
            self.errors += 1
            log.warning("AV1 depacketizer failed: %s", exc)
            return [EncodedFrame("av1", b"", ts, False)]
        seq = av1.sequence_header(tu.data)
        if seq:
            self.seq_header = seq
        return [EncodedFrame("av1", tu.data, ts, tu.keyframe)]


def _feedback() -> list[RTCRtcpFeedback]:
    return [
        RTCRtcpFeedback(type="nack"),
        RTCRtcpFeedback(type="nack", parameter="pli"),
        RTCRtcpFeedback(type="goog-remb"),
    ]


def _next_payload_types() -> tuple[int, int]:
    used = {c.payloadType for kind in aiortc_codecs.CODECS.values() for c in kind}
    pt = 97
    while pt in used or pt + 1 in used:
        pt += 1
    return pt, pt + 1


def install() -> None:
    """Register AV1 in aiortc (codec list, depayload and decoder hooks); idempotent."""
    if _state.get("installed"):
        return
    video = aiortc_codecs.CODECS["video"]
    have = {str(c.parameters.get("profile-level-id", "")).lower() for c in video if c.mimeType.lower() == "video/h264"}
    for plid in H264_EXTRA_PROFILES:
        if plid not in have:
            pt, rtx_pt = _next_payload_types()
            video.append(
                RTCRtpCodecParameters(
                    mimeType="video/H264",
                    clockRate=90000,
                    payloadType=pt,
                    rtcpFeedback=_feedback(),
                    parameters={"level-asymmetry-allowed": "1", "packetization-mode": "1", "profile-level-id": plid},
                )
            )
            video.append(
                RTCRtpCodecParameters(mimeType="video/rtx", clockRate=90000, payloadType=rtx_pt, parameters={"apt": pt})
            )
    if not any(c.mimeType.lower() == AV1_MIME.lower() for c in video):
        pt, rtx_pt = _next_payload_types()
        video.append(
            RTCRtpCodecParameters(
                mimeType=AV1_MIME,
                clockRate=90000,
                payloadType=pt,
                rtcpFeedback=_feedback(),
            )
        )
        video.append(
            RTCRtpCodecParameters(mimeType="video/rtx", clockRate=90000, payloadType=rtx_pt, parameters={"apt": pt})
        )

    original_depayload = getattr(rtcrtpreceiver, "depayload")  # noqa: B009 (not re-exported)
    original_get_decoder = getattr(rtcrtpreceiver, "get_decoder")  # noqa: B009

    def depayload(codec: RTCRtpCodecParameters, payload: bytes) -> bytes:
        try:
            if codec.mimeType.lower() == "video/av1":
                return frame_payload(payload)
            return original_depayload(codec, payload)  # type: ignore[no-any-return]
        except (ValueError, IndexError) as exc:
            if not codec.mimeType.lower().startswith("video/"):
                raise
            log.debug("unparsable %s RTP payload replaced by an empty one: %s", codec.mimeType, exc)
            return b""

    def get_decoder(codec: RTCRtpCodecParameters) -> Any:
        if codec.mimeType.lower() == "video/av1":
            return Av1PassthroughDecoder()
        return original_get_decoder(codec)

    setattr(rtcrtpreceiver, "depayload", depayload)  # noqa: B010 (module global hook)
    setattr(rtcrtpreceiver, "get_decoder", get_decoder)  # noqa: B010
    _state["installed"] = True
