"""WHIP publishers and WHEP viewers over real HTTP (the gateway), built on aiortc.

The viewer uses camhub's passthrough decoder (``configure_aiortc``), so what it collects are the
access units exactly as they left the egress; the publisher sends pre-encoded ``av.Packet``s,
so aiortc packetizes without encoding (feasibility probe, section 4).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from typing import Any

import av
import httpx
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from services.common.frames import Frame
from services.common.rtc import EncodedFrame, configure_aiortc


async def _exchange(peer: RTCPeerConnection, base: str, path: str, token: str) -> tuple[int, str, str]:
    """POST our offer to ``base + path`` (WHIP/WHEP, RFC 9725); apply the answer on 201.

    Returns ``(status, location, body)``.
    """
    await peer.setLocalDescription(await peer.createOffer())
    headers = {"Content-Type": "application/sdp"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(base_url=base, timeout=15) as client:
        r = await client.post(path, content=peer.localDescription.sdp, headers=headers)
    if r.status_code != 201:
        return r.status_code, "", r.text
    await peer.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
    return r.status_code, r.headers["location"], r.text


async def _hang_up(peer: RTCPeerConnection, base: str, location: str) -> None:
    """DELETE the session URL (best effort) and close the peer."""
    if location:
        with contextlib.suppress(httpx.HTTPError):
            async with httpx.AsyncClient(base_url=base, timeout=5) as client:
                await client.delete(location)
    await peer.close()


class WhepViewer:
    """``POST /whep/<stream>``; collects :class:`EncodedFrame` as they arrive."""

    def __init__(self, base: str, stream: str, token: str = "") -> None:
        configure_aiortc("127.0.0.1")
        self.base, self.stream, self.token = base, stream, token
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver("video", direction="recvonly")
        self.frames: list[tuple[float, EncodedFrame]] = []
        self.location = ""
        self.status = 0
        self.error = ""
        self._task: asyncio.Task[None] | None = None

        @self.pc.on("track")
        def on_track(track: Any) -> None:
            self._task = asyncio.ensure_future(self._consume(track))

    async def _consume(self, track: Any) -> None:
        with contextlib.suppress(Exception):
            while True:
                self.frames.append((time.monotonic(), await track.recv()))

    async def start(self) -> int:
        self.status, self.location, body = await _exchange(self.pc, self.base, f"/whep/{self.stream}", self.token)
        if self.status != 201:
            self.error = body
        return self.status

    async def wait_frames(self, n: int, timeout: float = 10.0) -> None:
        """Raises TimeoutError saying how many arrived."""
        deadline = time.monotonic() + timeout
        start = len(self.frames)
        while len(self.frames) - start < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.frames) - start} of {n} frames in {timeout} s")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        await _hang_up(self.pc, self.base, self.location)
        if self._task:
            self._task.cancel()


class PacketTrack(MediaStreamTrack):  # type: ignore[misc]
    """A video track that replays pre-encoded frames as ``av.Packet`` in real time, looping."""

    kind = "video"

    def __init__(self, frames: list[Frame], fps: int = 30) -> None:
        super().__init__()
        self.source, self.fps = frames, fps
        self.i = 0
        self.t0 = 0.0

    async def recv(self) -> av.Packet:
        if not self.t0:
            self.t0 = time.monotonic()
        frame = self.source[self.i % len(self.source)]
        loops = self.i // len(self.source)
        due = self.t0 + self.i / self.fps
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        pkt = av.Packet(frame.data)
        pkt.pts = frame.pts + loops * (self.source[-1].pts + 90_000 // self.fps)
        pkt.time_base = fractions.Fraction(1, 90_000)
        self.i += 1
        return pkt


class WhipPublisher:
    """``POST /whip/<stream>`` with a :class:`PacketTrack` (H.264, no encoder in aiortc)."""

    def __init__(self, base: str, stream: str, frames: list[Frame], token: str = "") -> None:
        configure_aiortc("127.0.0.1")
        self.base, self.stream, self.token = base, stream, token
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        tr = self.pc.addTransceiver(PacketTrack(frames), direction="sendonly")
        from aiortc.rtcrtpsender import RTCRtpSender

        caps = RTCRtpSender.getCapabilities("video")
        tr.setCodecPreferences([c for c in caps.codecs if c.mimeType in ("video/H264", "video/rtx")])
        self.location = ""
        self.status = 0

    async def start(self) -> int:
        self.status, self.location, _ = await _exchange(self.pc, self.base, f"/whip/{self.stream}", self.token)
        return self.status

    async def close(self) -> None:
        await _hang_up(self.pc, self.base, self.location)
