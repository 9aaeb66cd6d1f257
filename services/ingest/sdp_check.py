"""First look at a WHIP offer before aiortc sees it: size, shape, video codecs (no I/O).

RFC 9725 (WHIP) section 4.2: the body is an SDP offer (RFC 8866).  :func:`check_offer` refuses,
with the status the gateway answers:

* 400 - not a string, larger than :data:`MAX_SDP_BYTES`, not starting with ``v=0``, no ``m=``
  line, or NUL / non-text bytes;
* 422 - no ``m=video`` section, or no video codec camhub passes through (H.264, VP8, AV1: the
  ``a=rtpmap`` names of the video sections).

It returns the video codec names offered (upper case, in offer order).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_SDP_BYTES = 64 * 1024
PASSTHROUGH = ("H264", "VP8", "AV1")


class SdpError(ValueError):
    """The offer is refused; ``status`` is 400 or 422."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class OfferSummary:
    video_codecs: list[str]
    has_audio: bool
    has_data: bool

    @property
    def usable_codecs(self) -> list[str]:
        return [c for c in self.video_codecs if c in PASSTHROUGH]


def check_offer(sdp: object) -> OfferSummary:
    """Validate an SDP offer's shape and video codecs.

    Raises:
        SdpError: 400 malformed or too large, 422 no usable video.
    """
    if not isinstance(sdp, str):
        raise SdpError(400, "the offer must be SDP text")
    if len(sdp.encode("utf-8", errors="replace")) > MAX_SDP_BYTES:
        raise SdpError(400, f"the SDP offer is larger than {MAX_SDP_BYTES // 1024} KiB")
    if "\x00" in sdp:
        raise SdpError(400, "the SDP offer contains NUL bytes")
    lines = [ln.strip() for ln in sdp.replace("\r\n", "\n").split("\n") if ln.strip()]
    if not lines or lines[0] != "v=0":
        raise SdpError(400, "not an SDP offer (it must start with v=0)")
    kind = ""
    video_pts: list[str] = []
    names: dict[str, str] = {}
    has_audio = has_data = saw_media = False
    for ln in lines:
        if len(ln) < 2 or ln[1] != "=":
            raise SdpError(400, f"malformed SDP line {ln[:40]!r}")
        if ln.startswith("m="):
            saw_media = True
            parts = ln[2:].split()
            if len(parts) < 3:
                raise SdpError(400, f"malformed SDP media line {ln[:60]!r}")
            kind = parts[0]
            if kind == "video":
                video_pts.extend(parts[3:])
            has_audio |= kind == "audio"
            has_data |= kind == "application"
        elif kind == "video" and ln.startswith("a=rtpmap:"):
            pt, _, rest = ln[len("a=rtpmap:") :].partition(" ")
            names[pt] = rest.split("/", 1)[0].upper()
    if not saw_media:
        raise SdpError(400, "the SDP offer has no media section")
    if not video_pts:
        raise SdpError(422, "the offer has no video: camhub ingests video (H.264, VP8 or AV1)")
    codecs: list[str] = []
    for pt in video_pts:
        name = names.get(pt)
        if name and name not in codecs:
            codecs.append(name)
    summary = OfferSummary(codecs, has_audio, has_data)
    if not summary.usable_codecs:
        offered = ", ".join(c for c in codecs if c not in ("RTX", "RED", "ULPFEC", "FLEXFEC-03")) or "none"
        raise SdpError(422, f"no video codec camhub can pass through (H.264, VP8, AV1) in the offer ({offered})")
    return summary
