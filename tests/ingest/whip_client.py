"""aiortc as a WHIP publisher for the tests (a real WebRTC peer: ICE, DTLS, SRTP, RTCP).

``PacketTrack`` sends pre-encoded access units (aiortc packetizes them with ``Encoder.pack``, no
encoder runs); ``PatternTrack`` hands aiortc raw pictures so aiortc's own libx264/libvpx encoder
runs on the publisher side (a camera that honours PLI).  AV1 has no aiortc sender, so
:func:`enable_av1_sending` plugs the test packetizer (``av1_packetizer.py``) in as the
AV1 "encoder" of this process.
"""

from __future__ import annotations

import asyncio
import fractions
from collections.abc import Callable
from typing import Any

import aiortc.rtcrtpsender as rtcrtpsender
import av
import numpy as np
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.codecs.base import Encoder
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from services.common import subjects
from services.common.bus import Bus
from tests.ingest.av1_packetizer import packetize

TB = fractions.Fraction(1, 90000)


class PacketTrack(MediaStreamTrack):  # type: ignore[misc]
    """Yields ``av.Packet`` objects (pts in 90 kHz) paced at ``fps``; then holds the last one."""

    kind = "video"

    def __init__(self, units: list[tuple[bytes, int]], fps: float = 30.0) -> None:
        super().__init__()
        self.units = units
        self.fps = fps
        self.i = 0
        self.sent = 0
        self.done = asyncio.Event()
        self._t0: float | None = None

    async def recv(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._t0 is None:
            self._t0 = loop.time()
        if self.i >= len(self.units):
            self.done.set()
            await asyncio.sleep(3600)
            raise MediaStreamError
        wait = self._t0 + self.i / self.fps - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        data, pts = self.units[self.i]
        self.i += 1
        self.sent += 1
        pkt = av.Packet(data)
        pkt.pts = pts
        pkt.time_base = TB
        return pkt


class PatternTrack(MediaStreamTrack):  # type: ignore[misc]
    """Raw moving pictures at 30 fps; aiortc encodes them (publisher side)."""

    kind = "video"

    def __init__(self, width: int = 320, height: int = 240) -> None:
        super().__init__()
        self.width, self.height = width, height
        self.n = 0
        self._t0: float | None = None

    async def recv(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._t0 is None:
            self._t0 = loop.time()
        wait = self._t0 + self.n / 30 - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        img = np.zeros((self.height, self.width, 3), dtype=np.uint8)
        img[..., 0] = (np.arange(self.width) + self.n * 4) % 256
        img[..., 1] = self.n % 256
        vf = av.VideoFrame.from_ndarray(img, format="rgb24")
        vf.pts = self.n * 3000
        vf.time_base = TB
        self.n += 1
        return vf


class Av1PackEncoder(Encoder):  # type: ignore[misc]
    """aiortc Encoder whose ``pack`` uses the test AV1 RTP packetizer."""

    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        raise NotImplementedError("pre-encoded AV1 only")

    def pack(self, packet: Any) -> tuple[list[bytes], int]:
        data = bytes(packet)
        key = data[2:3] == b"\x0a"  # a sequence header OBU right after the temporal delimiter
        return packetize(data, mtu=1100, keyframe=key), int(packet.pts)


def enable_av1_sending() -> None:
    """Let aiortc in this process send AV1 (after ``services.ingest.rtc_receive.install``)."""
    if getattr(rtcrtpsender, "_camhub_av1", False):
        return
    original: Callable[[Any], Any] = rtcrtpsender.get_encoder  # type: ignore[attr-defined]

    def get_encoder(codec: Any) -> Any:
        if codec.mimeType.lower() == "video/av1":
            return Av1PackEncoder()
        return original(codec)

    rtcrtpsender.get_encoder = get_encoder  # type: ignore[attr-defined]
    rtcrtpsender._camhub_av1 = True  # type: ignore[attr-defined]


class Publisher:
    """One aiortc publishing peer talking to ``camhub.ingest.whip`` directly over the bus."""

    def __init__(self, bus: Bus, stream: str, track: MediaStreamTrack | None, codec: str = "H264") -> None:
        self.bus = bus
        self.stream = stream
        self.track = track
        self.codec = codec
        self.pc = RTCPeerConnection()
        self.reply: dict[str, Any] = {}
        self.channel: Any = None

    def add_channel(self, label: str = "control") -> Any:
        self.channel = self.pc.createDataChannel(label)
        return self.channel

    async def offer(self, token: str = "", audio_only: bool = False, apply_answer: bool = True) -> dict[str, Any]:
        if audio_only:
            self.pc.addTransceiver("audio", direction="sendonly")
        else:
            t = self.pc.addTransceiver(self.track, direction="sendonly")
            caps = RTCRtpSender.getCapabilities("video").codecs
            prefs = [c for c in caps if c.mimeType.lower() == f"video/{self.codec.lower()}"]
            t.setCodecPreferences(prefs)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self.reply = await self.bus.request_obj(
            subjects.INGEST_WHIP,
            {"stream": self.stream, "sdp": self.pc.localDescription.sdp, "token": token},
            timeout=10,
        )
        if self.reply.get("ok") and apply_answer:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=self.reply["sdp"], type="answer"))
        return self.reply

    @property
    def session(self) -> str:
        return str(self.reply["session"])

    async def session_request(self, op: str, timeout: float = 6.0) -> dict[str, Any]:
        return await self.bus.request_obj(subjects.webrtc_session(self.session, op), {}, timeout=timeout)

    async def close(self) -> None:
        await self.pc.close()
