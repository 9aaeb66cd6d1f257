"""Checks a WHEP viewer's SDP offer (RFC 8866, JSEP RFC 8829) before any peer connection exists.

:func:`plan_offer` answers "can this offer receive this stream without re-encoding?" and, if so,
which codec the answer must pick; otherwise it raises :class:`OfferError` with the status the
gateway returns (docs/bus.md "WHEP"):

* 400: not an SDP offer (empty, not ``v=0``, unparsable, too large, an m-line without ICE
  credentials, DTLS fingerprint or ``rtcp-mux``: what aiortc and RFC 8829 require);
* 422: a valid offer that cannot receive the stream: no video m-line, the first video m-line does
  not receive (``sendonly`` / ``inactive`` / port 0), or none of its codecs carries the stream's
  codec (H.264 needs ``packetization-mode=1``, RFC 6184 section 6.3, the only mode aiortc sends).

For H.264 the answer names the stream's SPS profile when offered, else the first offered profile
whose decoders decode it (H.264 Annex A: a Main stream -> High -> High 4:4:4 Predictive; Chromium
156 offers no High, so a High stream gets f4001f), else the nearest offered profile. Chromium
decodes the real bitstream whatever profile the answer names, even Constrained Baseline
(tests/egress/test_browser.py).

Parsing uses aiortc's SDP parser; the policy is camhub's. Pure: no sockets, no peer connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiortc import sdp
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters

from services.egress import codecs

MAX_SDP_BYTES = 64 * 1024


class OfferError(ValueError):
    """The offer cannot be answered; ``status`` is the HTTP status for the gateway (400 or 422)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class OfferPlan:
    """How to answer an offer.

    Attributes:
        codec: the camhub codec sent (``h264``, ``vp8``, ``av1``).
        payload_type: the offer's payload type for it.
        preferences: codec capabilities for ``RTCRtpTransceiver.setCodecPreferences`` (the chosen
            codec, then RTX when the offer has RTX for it).
        profile_match: H.264 only: the answer names the stream's profile or one whose decoders
            decode it (False: the offer had neither and another packetization-mode 1 format was
            chosen).
        offered: every codec name the video m-line offered, for logs and errors.
    """

    codec: str
    payload_type: int
    preferences: list[RTCRtpCodecCapability]
    profile_match: bool = True
    offered: list[str] = field(default_factory=list)


def parse_offer(text: object) -> sdp.SessionDescription:
    """Parse an offer's SDP text.

    Raises:
        OfferError: 400 when ``text`` is not a plausible SDP offer.
    """
    if not isinstance(text, str) or not text.strip():
        raise OfferError(400, "the request has no SDP offer (field 'sdp' must be a non-empty string)")
    if len(text.encode("utf-8", "replace")) > MAX_SDP_BYTES:
        raise OfferError(400, f"the SDP offer is larger than {MAX_SDP_BYTES} bytes")
    if not text.lstrip("\ufeff \t\r\n").startswith("v=0"):
        raise OfferError(400, "not an SDP offer: it must start with 'v=0' (RFC 8866 section 5)")
    try:
        desc = sdp.SessionDescription.parse(text)
    except Exception as exc:
        raise OfferError(400, f"the SDP offer cannot be parsed: {type(exc).__name__} {exc}".strip()) from None
    for media in desc.media:
        if media.kind not in ("audio", "video"):
            continue
        if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
            raise OfferError(400, f"the SDP offer's {media.kind} m-line has no a=ice-ufrag / a=ice-pwd")
        if media.dtls is None or not media.dtls.fingerprints:
            raise OfferError(400, f"the SDP offer's {media.kind} m-line has no a=fingerprint (DTLS-SRTP is required)")
        if not media.rtcp_mux:
            raise OfferError(400, f"the SDP offer's {media.kind} m-line has no a=rtcp-mux")
    return desc


def _receives(media: sdp.MediaDescription) -> bool:
    return media.port != 0 and (media.direction or "sendrecv") in ("recvonly", "sendrecv")


def _packetization(c: RTCRtpCodecParameters) -> int:
    try:
        return int(str(c.parameters.get("packetization-mode", "0")))
    except ValueError:
        return -1


def plan_offer(text: object, codec: str, h264_profile: sdp.H264Profile | None = None) -> OfferPlan:
    """Decide how to answer ``text`` (an SDP offer) for a stream of camhub ``codec``.

    ``h264_profile`` is the stream's profile from its SPS (None: unknown). Call
    :func:`services.egress.codecs.register_codecs` first.

    Raises:
        OfferError: 400 (not an offer) or 422 (cannot receive the stream), message for a person.
    """
    if codec not in codecs.MIME:
        raise OfferError(422, codecs.UNSENDABLE.get(codec, f"streams of codec {codec!r} cannot be sent over WebRTC"))
    desc = parse_offer(text)
    video = next((m for m in desc.media if m.kind == "video"), None)
    if video is None:
        raise OfferError(422, "the offer has no video m-line; a WHEP viewer must offer to receive video")
    if not _receives(video):
        direction = "rejected (port 0)" if video.port == 0 else (video.direction or "sendrecv")
        raise OfferError(
            422, f"the offer's video m-line is {direction}; a WHEP viewer must offer recvonly (or sendrecv)"
        )
    offered = [c.name for c in video.rtp.codecs if not codecs.is_rtx_name(c.name)]
    mime = codecs.MIME[codec].lower()
    candidates = [c for c in video.rtp.codecs if c.mimeType.lower() == mime]
    local = codecs.local_codecs(codec)
    chosen: tuple[RTCRtpCodecParameters, RTCRtpCodecParameters] | None = None
    profile_match = True
    if codec == "h264":
        usable = [c for c in candidates if _packetization(c) == 1]
        if candidates and not usable:
            raise OfferError(
                422,
                "the offer accepts H.264 only in packetization-mode 0; camhub sends packetization-mode 1 "
                "(RFC 6184 section 6.3)",
            )
        pairs: list[tuple[RTCRtpCodecParameters, RTCRtpCodecParameters, sdp.H264Profile]] = []
        for remote in usable:
            profile = codecs.h264_profile(str(remote.parameters.get("profile-level-id", "42e01f")))
            if profile is None:
                continue
            for mine in local:
                if codecs.h264_profile(str(mine.parameters.get("profile-level-id", ""))) == profile:
                    pairs.append((remote, mine, profile))
                    break
        # the stream's own profile, else the first profile whose decoders decode it, else the
        # nearest offered profile (lower first); the stream's profile unknown: the first offered
        ranked = codecs.H264_DECODABLE_BY.get(h264_profile, ()) if h264_profile is not None else ()
        for wanted in ranked:
            match = next(((r, m) for r, m, p in pairs if p == wanted), None)
            if match is not None:
                chosen = match
                break
        if chosen is None and pairs:
            if h264_profile is None:
                chosen = (pairs[0][0], pairs[0][1])
            else:
                rank = codecs.H264_RANK[h264_profile]

                def distance(pair: tuple[Any, Any, sdp.H264Profile]) -> tuple[int, bool]:
                    other = codecs.H264_RANK[pair[2]]
                    return abs(other - rank), other > rank

                r, m, _ = min(pairs, key=distance)
                chosen = (r, m)
                profile_match = False
    elif candidates and local:
        chosen = (candidates[0], local[0])
    if chosen is None:
        names = ", ".join(dict.fromkeys(offered)) or "none"
        raise OfferError(422, f"the offer cannot receive {codec.upper()} (the stream's codec); it offers: {names}")
    remote, mine = chosen
    prefs = [codecs.capability(mine)]
    has_rtx = any(
        codecs.is_rtx_name(c.name) and str(c.parameters.get("apt")) == str(remote.payloadType) for c in video.rtp.codecs
    )
    if has_rtx:
        prefs.append(codecs.RTX)
    return OfferPlan(
        codec=codec,
        payload_type=int(remote.payloadType or 0),
        preferences=prefs,
        profile_match=profile_match,
        offered=offered,
    )
