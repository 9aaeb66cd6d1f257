"""Real peers for the egress tests: a bus publisher that plays the ingest's part, and aiortc viewers.

:class:`FramePublisher` publishes real encoded access units (libx264 / libvpx / SVT-AV1 output,
or a recorded clip) on ``camhub.media.<stream>.frames`` exactly as the ingest does (the frame
envelope of ``services.common.frames``, StreamInfo in KV, ``up``/``down`` events), paced in real
time, looping with continuous timestamps. The ingest service is another engineer's piece; these
are the same bytes and subjects it publishes (docs/bus.md, docs/frames.md).

:class:`AiortcViewer` is a WHEP viewer made of a real aiortc peer connection with camhub's
passthrough decoder (``services.common.rtc``), so it yields the access units it received.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from services.common import h264, subjects
from services.common.bus import Bus
from services.common.frames import Frame, encode
from services.common.rtc import EncodedFrame, configure_aiortc
from services.common.streams import StreamInfo, publish_event, publish_info


def nal_payloads(data: bytes) -> tuple[bytes, ...]:
    """The NAL units of an Annex B access unit without start codes (3- vs 4-byte codes differ)."""
    return tuple(h264.iter_nals(data))


def encode_h264_high(
    count: int = 60, *, width: int = 320, height: int = 240, fps: int = 30, gop: int = 30
) -> list[Frame]:
    """``count`` H.264 High-profile frames from libx264 (CABAC, 8x8 transform; no B-frames), SPS/PPS
    before every IDR, as an RTSP camera streams them. (``tests.support.media.encode_h264`` uses
    preset ultrafast, which x264 always turns into Constrained Baseline.)"""
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = Fraction(1, fps)
    ctx.framerate = Fraction(fps, 1)
    ctx.gop_size = gop
    ctx.max_b_frames = 0
    ctx.options = {
        "preset": "veryfast",
        "tune": "zerolatency",
        "profile": "high",
        "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:repeat-headers=1:bframes=0",
    }
    return _encode(ctx, "h264", count, width, height, fps)


def encode_vp8(count: int = 60, *, width: int = 320, height: int = 240, fps: int = 30, gop: int = 30) -> list[Frame]:
    """``count`` VP8 frames from libvpx (what a browser WHIP publisher sends by default)."""
    ctx = av.CodecContext.create("libvpx", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = Fraction(1, fps)
    ctx.framerate = Fraction(fps, 1)
    ctx.gop_size = gop
    ctx.bit_rate = 500_000
    ctx.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "kf-max-dist": str(gop)}
    return _encode(ctx, "vp8", count, width, height, fps)


def encode_av1(count: int = 60, *, width: int = 320, height: int = 240, fps: int = 30, gop: int = 30) -> list[Frame]:
    """``count`` AV1 temporal units from SVT-AV1 (low-delay, keyframe every ``gop``)."""
    ctx = av.CodecContext.create("libsvtav1", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = Fraction(1, fps)
    ctx.framerate = Fraction(fps, 1)
    ctx.gop_size = gop
    ctx.options = {"preset": "12", "svtav1-params": f"pred-struct=1:keyint={gop}:irefresh-type=2:lp=1"}
    return _encode(ctx, "av1", count, width, height, fps)


def _encode(ctx: Any, codec: str, count: int, width: int, height: int, fps: int) -> list[Frame]:
    ticks = 90_000 // fps
    out: list[Frame] = []
    yy, xx = np.mgrid[0:height, 0:width]

    def add(pkt: Any) -> None:
        data = bytes(pkt)
        key = h264.is_keyframe(data) if codec == "h264" else bool(pkt.is_keyframe)
        pts = int(pkt.pts or 0)
        dts = int(pkt.dts) if pkt.dts is not None else pts
        out.append(Frame(codec, pts * ticks, dts * ticks, key, data, len(out)))

    for i in range(count):
        img = np.zeros((height, width, 3), dtype=np.uint8)
        img[..., 0] = (xx + i * 4) % 256
        img[..., 1] = (yy + i * 2) % 256
        img[..., 2] = ((xx // 16 + yy // 16 + i) % 2) * 255
        vf = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        vf.pts = i
        for pkt in ctx.encode(vf):
            add(pkt)
    for pkt in ctx.encode(None):
        add(pkt)
    return out


@dataclass
class Published:
    """One frame as it went out: the frame (final pts/seq/ts) and the monotonic time it was sent."""

    frame: Frame
    at: float


class FramePublisher:
    """Plays the ingest: StreamInfo + ``up`` event, then ``frames`` paced at ``fps``, looping.

    ``frames`` are played in order; on each loop pts/dts continue (shifted by the clip length).
    """

    def __init__(
        self,
        bus: Bus,
        stream: str,
        frames: Sequence[Frame],
        fps: float,
        *,
        source: str = "rtsp",
        loop: bool = True,
        width: int = 320,
        height: int = 240,
    ) -> None:
        self.bus = bus
        self.stream = stream
        self.frames = list(frames)
        self.fps = fps
        self.source = source
        self.loop = loop
        self.width, self.height = width, height
        self.codec = self.frames[0].codec
        self.epoch = 0
        self.seq = 0
        self.sent: list[Published] = []
        #: added to ``Camhub-Ts`` (ns): a negative value makes frames look late
        self.ts_offset_ns = 0
        self._task: asyncio.Task[None] | None = None
        self._pts_base = 0

    def info(self, up: bool = True) -> StreamInfo:
        config = h264.parameter_sets(self.frames[0].data) if self.codec == "h264" else b""
        return StreamInfo(
            stream=self.stream,
            codec=self.codec,
            width=self.width,
            height=self.height,
            fps=self.fps,
            config=config,
            source=self.source,
            owner="test-ingest",
            started_at=int(time.time() * 1000),
            epoch=self.epoch,
            up=up,
        )

    async def announce(self) -> None:
        """A source (re)connects: new epoch, info in KV, ``up`` event."""
        self.epoch += 1
        await publish_info(self.bus, self.info())
        await publish_event(self.bus, self.stream, "up", epoch=self.epoch)

    async def start(self, *, restart_pts: bool = False) -> None:
        """Announce and start publishing (``restart_pts``: timestamps restart at 0, as after a reconnect)."""
        await self.announce()
        if restart_pts:
            self._pts_base = 0
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def go_down(self) -> None:
        """The source leaves: frames stop, info ``up: false``, ``down`` event."""
        await self.stop()
        await publish_info(self.bus, self.info(up=False))
        await publish_event(self.bus, self.stream, "down", epoch=self.epoch, reason="publisher left")

    async def _run(self) -> None:
        period = 1.0 / self.fps
        span = (self.frames[-1].dts - self.frames[0].dts) + int(90_000 / self.fps) if len(self.frames) > 1 else 3000
        next_at = time.monotonic()
        subject = subjects.media_frames(self.stream)
        while True:
            for f in self.frames:
                frame = Frame(
                    f.codec,
                    f.pts + self._pts_base,
                    f.dts + self._pts_base,
                    f.key,
                    f.data,
                    self.seq,
                    time.time_ns() + self.ts_offset_ns,
                )
                self.seq += 1
                for headers, body in encode(frame, self.bus.max_payload):
                    await self.bus.publish(subject, body, headers=headers)
                self.sent.append(Published(frame, time.monotonic()))
                next_at += period
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            self._pts_base += span
            if not self.loop:
                return


@dataclass
class Received:
    frame: EncodedFrame
    at: float


@dataclass
class AiortcViewer:
    """A WHEP viewer: aiortc peer connection, recvonly video, passthrough decoder."""

    pc: RTCPeerConnection = field(default_factory=lambda: RTCPeerConnection(RTCConfiguration(iceServers=[])))
    received: list[Received] = field(default_factory=list)
    reply: dict[str, Any] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None
    _got: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        configure_aiortc("127.0.0.1")
        self.pc.addTransceiver("video", direction="recvonly")

        @self.pc.on("track")
        def on_track(track: Any) -> None:
            self._task = asyncio.ensure_future(self._consume(track))

    async def _consume(self, track: Any) -> None:
        with contextlib.suppress(Exception):
            while True:
                ef = await track.recv()
                self.received.append(Received(ef, time.monotonic()))
                self._got.set()

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def connect(self, bus: Bus, stream: str, timeout: float = 10.0, **extra: Any) -> dict[str, Any]:
        """Offer, ask ``camhub.egress.whep``, apply the answer; returns the reply."""
        sdp = await self.offer()
        body = {"stream": stream, "sdp": sdp, **extra}
        self.reply = await bus.request_obj(subjects.EGRESS_WHEP, body, timeout=timeout)
        if self.reply.get("ok"):
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=self.reply["sdp"], type="answer"))
        return self.reply

    @property
    def session(self) -> str:
        return str(self.reply["session"])

    async def wait_frames(self, n: int, timeout: float = 10.0) -> list[Received]:
        """Wait until ``n`` access units arrived. Raises TimeoutError naming how many did."""
        deadline = time.monotonic() + timeout
        while len(self.received) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"received {len(self.received)} of {n} access units within {timeout} s")
            self._got.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._got.wait(), left)
        return self.received

    async def close(self) -> None:
        await self.pc.close()
        if self._task is not None:
            self._task.cancel()
