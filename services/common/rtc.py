"""aiortc set-up shared by ingest (WHIP) and egress (WHEP): encoded passthrough, no transcoding.

Call :func:`configure_aiortc` once per process before creating peer connections. It applies the
fixes proven in ``shared/research/feasibility_probe.md`` section 4:

* receive side: ``aiortc.rtcrtpreceiver.get_decoder`` is replaced by a factory that returns a
  :class:`PassthroughDecoder` for video, so ``track.recv()`` yields :class:`EncodedFrame`
  (the depacketized access unit and its 90 kHz RTP timestamp) and no decoder ever runs;
* ``aioice.turn.UDP_SOCKET_BUFFER_SIZE`` = 4 MiB, so a burst of a 600 kB keyframe is not dropped
  by the kernel;
* the video jitter buffer holds 4096 packets (aiortc: 512, which truncates AUs > ~650 kB), so
  1.5 MB keyframes arrive whole;
* ICE gathers host candidates on ``CAMHUB_WEBRTC_HOST`` only (default 127.0.0.1; aioice skips
  loopback by default) - set it to the LAN address for real cameras and browsers.

Protocol facts: RTP video clock 90 kHz (RFC 6184 section 8.1 for H.264, RFC 7741 for VP8).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import aioice.ice
import aioice.turn
import aiortc.codecs as aiortc_codecs
import aiortc.rtcrtpreceiver as rtcrtpreceiver
from aiortc.codecs.base import Decoder
from aiortc.jitterbuffer import JitterBuffer

from services.common import h264

_configured: dict[str, Any] = {}


@dataclass(slots=True)
class EncodedFrame:
    """A depacketized access unit from aiortc's receiver.

    ``codec`` is the lower-case camhub codec name (``h264``, ``vp8``, ``av1``); ``timestamp`` is
    the RTP timestamp (90 kHz, rebased by aiortc to start near 0); ``keyframe`` is detected from
    the bitstream (H.264 IDR NAL; VP8 frame tag bit P=0; AV1 by the depacketizer).
    """

    codec: str
    data: bytes
    timestamp: int
    keyframe: bool


def vp8_is_keyframe(data: bytes) -> bool:
    """VP8 frame tag: bit 0 of the first byte is 0 on a key frame (RFC 6386 section 9.1)."""
    return bool(data) and (data[0] & 0x01) == 0


class PassthroughDecoder(Decoder):  # type: ignore[misc]
    """A 'decoder' that returns the encoded access unit as it came out of the jitter buffer."""

    def __init__(self, mime: str) -> None:
        self.codec = mime.split("/")[-1].lower()

    def decode(self, encoded_frame: Any) -> list[Any]:
        data = bytes(encoded_frame.data)
        if self.codec == "h264":
            key = h264.is_keyframe(data)
        elif self.codec == "vp8":
            key = vp8_is_keyframe(data)
        else:
            key = bool(getattr(encoded_frame, "keyframe", False))
        return [EncodedFrame(self.codec, data, int(encoded_frame.timestamp), key)]


class _BigJitterBuffer(JitterBuffer):  # type: ignore[misc]
    def __init__(self, capacity: int, prefetch: int = 0, is_video: bool = False) -> None:
        super().__init__(capacity=4096 if is_video else capacity, prefetch=prefetch, is_video=is_video)


def configure_aiortc(host: str = "127.0.0.1") -> None:
    """Install the passthrough decoder, the socket and jitter-buffer fixes and the ICE host.

    Idempotent; ``host`` is the address ICE host candidates are gathered on (``0.0.0.0`` or
    empty: every interface address aioice finds, loopback excluded).
    """
    if _configured.get("host") == host:
        return
    original = _configured.setdefault("get_decoder", aiortc_codecs.get_decoder)

    def get_decoder(codec: Any) -> Any:
        if codec.mimeType.lower().startswith("video/"):
            return PassthroughDecoder(codec.mimeType)
        return original(codec)

    setattr(rtcrtpreceiver, "get_decoder", get_decoder)  # noqa: B010 (module global hook)
    setattr(rtcrtpreceiver, "JitterBuffer", _BigJitterBuffer)  # noqa: B010
    aioice.turn.UDP_SOCKET_BUFFER_SIZE = 4 * 1024 * 1024
    orig_hosts = _configured.setdefault("get_host_addresses", aioice.ice.get_host_addresses)
    if host and host not in ("0.0.0.0", "::"):
        ipaddress.ip_address(host)  # ValueError on a bad CAMHUB_WEBRTC_HOST

        def only_host(use_ipv4: bool, use_ipv6: bool) -> list[str]:
            return [host]

        aioice.ice.get_host_addresses = only_host
    else:
        aioice.ice.get_host_addresses = orig_hosts
    _configured["host"] = host
