"""Helpers for the hls tests: looping real clips, publishing frames as ingest does, an HTTP shim.

The HTTP shim is a few lines of Starlette in front of :func:`services.hls.client.hls_get`, so
real HTTP consumers (ffprobe, hls.js in Chromium) can read what the hls service serves over the
bus; the real gateway is another engineer's piece.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from services.common import subjects
from services.common.bus import Bus
from services.common.frames import Frame, encode
from services.hls.client import hls_get
from services.hls.packager import StreamPackager, Update
from tests.support.media import encode_h264
from tests.support.nats import free_port


@lru_cache(maxsize=8)
def x264(count: int = 60, gop: int = 30, fps: int = 30, bframes: int = 0) -> tuple[Frame, ...]:
    """Real libx264 frames (320x240), cached per process (encoding costs ~0.3 s)."""
    profile = "main" if bframes else "baseline"
    return tuple(encode_h264(count, gop=gop, fps=fps, bframes=bframes, profile=profile))


def looped(clip: Sequence[Frame], count: int, *, start_pts: int = 0, first_seq: int = 0) -> list[Frame]:
    """``count`` frames cycling through ``clip`` with timestamps that keep growing.

    The clip must start with a keyframe; its period is its last DTS plus one frame.
    """
    step = clip[1].dts - clip[0].dts if len(clip) > 1 else 3000
    period = clip[-1].dts - clip[0].dts + step
    out = []
    for i in range(count):
        f = clip[i % len(clip)]
        shift = (i // len(clip)) * period + start_pts - clip[0].dts
        out.append(dataclasses.replace(f, pts=f.pts + shift, dts=f.dts + shift, seq=first_seq + i))
    return out


def feed(packager: StreamPackager, frames: Iterable[Frame]) -> list[Update]:
    return [packager.push(f) for f in frames]


async def publish(bus: Bus, stream: str, frames: Iterable[Frame], fps: float | None = None) -> list[float]:
    """Publish frames on ``camhub.media.<stream>.frames`` as ingest does; paced at ``fps``
    (None: as fast as possible).  Returns each frame's publish time (``time.time()``)."""
    subject = subjects.media_frames(stream)
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent: list[float] = []
    for i, f in enumerate(frames):
        if fps:
            delay = start + i / fps - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        now = time.time()
        frame = dataclasses.replace(f, ts_ns=int(now * 1e9))
        for headers, body in encode(frame, bus.max_payload):
            await bus.publish(subject, body, headers)
        sent.append(now)
    await bus.nc.flush()
    return sent


class HttpShim:
    """``GET /hls/<stream>/<path>`` -> :func:`hls_get`; ``/static/<name>`` serves test files."""

    def __init__(self, bus: Bus, static: dict[str, Path] | None = None) -> None:
        self.bus = bus
        self.static = static or {}
        self.port = free_port()
        self.requests: list[str] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _hls(self, request: Request) -> Response:
        stream, path = request.path_params["stream"], request.path_params["path"]
        self.requests.append(f"{path}?{request.url.query}")
        status, headers, body = await hls_get(self.bus, stream, path, dict(request.query_params))
        headers = {**headers, "Access-Control-Allow-Origin": "*"}
        return Response(body, status, headers=headers)

    async def _static(self, request: Request) -> Response:
        path = self.static.get(request.path_params["name"])
        if path is None:
            return Response(b"not found", 404)
        return FileResponse(path)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[HttpShim]:
        app = Starlette(
            routes=[
                Route("/hls/{stream}/{path:path}", self._hls),
                Route("/static/{name}", self._static),
            ]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        try:
            for _ in range(100):
                if server.started:
                    break
                await asyncio.sleep(0.05)
            yield self
        finally:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 5.0)


async def run(*cmd: str, timeout: float = 30.0) -> tuple[int, str, str]:
    """Run a command without blocking the event loop (the HTTP shim lives on it)."""
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


@lru_cache(maxsize=4)
def encoded(codec: str, count: int = 30, gop: int = 15) -> tuple[Frame, ...]:
    """Real H.265 (libx265) or AV1 (libsvtav1) frames, 160x128 at 30 fps, cached per process."""
    import av
    import numpy as np

    from services.common import h264

    os.environ.setdefault("SVT_LOG", "1")  # errors only
    name, opts = {
        "h265": (
            "libx265",
            {
                "preset": "ultrafast",
                "x265-params": f"keyint={gop}:min-keyint={gop}:bframes=0:repeat-headers=1:log-level=error",
            },
        ),
        "av1": ("libsvtav1", {"preset": "12", "svtav1-params": f"keyint={gop}"}),
    }[codec]
    ctx = av.CodecContext.create(name, "w")
    assert isinstance(ctx, av.VideoCodecContext)
    ctx.width, ctx.height, ctx.pix_fmt = 160, 128, "yuv420p"
    ctx.time_base = Fraction(1, 30)
    ctx.framerate = Fraction(30, 1)
    ctx.gop_size = gop
    ctx.options = opts
    packets = []
    for i in range(count):
        img = np.zeros((128, 160, 3), np.uint8)
        img[..., 0] = (np.arange(160) * 2 + i * 8) % 256
        img[..., 1] = i * 7 % 256
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        packets += list(ctx.encode(frame))
    packets += list(ctx.encode(None))
    out = []
    for seq, p in enumerate(packets):
        data = bytes(p)
        key = h264.is_keyframe(data, "h265") if codec == "h265" else bool(p.is_keyframe)
        pts = int(p.pts or 0) * 3000
        out.append(Frame(codec, pts, int(p.dts if p.dts is not None else p.pts or 0) * 3000, key, data, seq))
    return tuple(out)
