"""Real peers for the gateway's end-to-end tests: aiortc publisher/viewer over HTTP, a paced
H.264 pusher, service processes, and a real JPEG from PyAV's MJPEG encoder."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack

from services.common.frames import Frame
from services.common.rtc import EncodedFrame, configure_aiortc
from tests.support.media import encode_h264
from tests.support.procs import ServiceProcess, service_env, wait_services


def jpeg(width: int = 160, height: int = 120, shade: int = 0) -> bytes:
    """One real JPEG image (PyAV ``mjpeg`` encoder)."""
    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuvj420p"
    ctx.time_base = fractions.Fraction(1, 30)
    img = np.full((height, width, 3), shade % 256, dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuvj420p")
    return b"".join(bytes(p) for p in ctx.encode(frame)) + b"".join(bytes(p) for p in ctx.encode(None))


@contextlib.asynccontextmanager
async def services(nats_url: str, tmp: Path, *names: str, **env: str) -> AsyncIterator[list[ServiceProcess]]:
    """Run ``python -m services.<name>`` for each name until the block ends."""
    procs = [ServiceProcess(n, service_env(nats_url, tmp / "data", **env), tmp).start() for n in names]
    try:
        await wait_services(nats_url, set(names), timeout=30)
        yield procs
    finally:
        for p in procs:
            await asyncio.to_thread(p.stop)


async def push_h264(
    api: httpx.AsyncClient, stream: str, frames: list[Frame], fps: float = 30.0, loops: int = 1
) -> list[int]:
    """POST each access unit to ``/ingest/{stream}`` at ``fps``, pts continuing across loops;
    returns the status codes."""
    codes = []
    span = frames[-1].pts + (frames[1].pts - frames[0].pts)
    t0 = time.monotonic()
    n = 0
    for loop in range(loops):
        for f in frames:
            headers = {"content-type": "video/h264", "camhub-pts": str(f.pts + loop * span)}
            codes.append((await api.post(f"/ingest/{stream}", content=f.data, headers=headers)).status_code)
            n += 1
            await asyncio.sleep(max(0.0, t0 + n / fps - time.monotonic()))
    return codes


class PatternTrack(VideoStreamTrack):
    """A moving test pattern; aiortc encodes it (H.264 or VP8) like a browser camera would."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        img = np.zeros((240, 320, 3), dtype=np.uint8)
        img[..., 0] = (np.arange(320)[None, :] + self.n * 4) % 256
        self.n += 1
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


class Peer:
    """An aiortc peer that talks WHIP/WHEP to the gateway over HTTP."""

    def __init__(self, direction: str) -> None:
        configure_aiortc("127.0.0.1")
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.received: list[EncodedFrame] = []
        self.location = ""
        self._tasks: list[asyncio.Task[Any]] = []
        if direction == "sendonly":
            self.pc.addTransceiver(PatternTrack(), direction="sendonly")
        else:
            self.pc.addTransceiver("video", direction="recvonly")

            @self.pc.on("track")
            def on_track(track: Any) -> None:
                self._tasks.append(asyncio.ensure_future(self._consume(track)))

    async def _consume(self, track: Any) -> None:
        with contextlib.suppress(Exception):
            while True:
                self.received.append(await track.recv())

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def post(self, api: httpx.AsyncClient, url: str, **headers: str) -> httpx.Response:
        r = await api.post(url, content=await self.offer(), headers={"content-type": "application/sdp", **headers})
        if r.status_code == 201:
            self.location = r.headers["location"]
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
        return r

    async def answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def wait_frames(self, n: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"received {len(self.received)} of {n} frames")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await self.pc.close()


__all__ = ["encode_h264"]
