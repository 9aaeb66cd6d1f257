"""``camhub sim camera``: a synthetic H.264 camera that pushes frames to the gateway.

It encodes a moving test pattern with libx264 (PyAV; constrained baseline, 1 s GOP, no
B-frames, so every browser path can play it) and POSTs each access unit to
``POST /ingest/<stream>`` with ``Content-Type: video/h264`` - the same path any HTTP producer
uses, so ``camhub up --demo`` exercises the real push -> ingest -> bus chain. With
``--register`` it first adds itself to the registry as a ``push`` camera.

Encoding runs in a thread; the event loop only posts. Options: ``--stream``, ``--url`` (default
``http://127.0.0.1:$CAMHUB_HTTP_PORT``), ``--width``, ``--height``, ``--fps``, ``--seconds``
(0 = forever), ``--token`` (publish token / API token).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import queue
import signal
import threading
import time
from fractions import Fraction

import av
import httpx
import numpy as np

from services.common.ids import validate_id
from services.common.logs import setup_logging

log = logging.getLogger("camhub.sim.camera")


def _pattern(width: int, height: int, i: int, fps: int) -> np.ndarray:
    """Colour bars with a bouncing ball and a seconds bar (RGB, uint8)."""
    bars = np.array(
        [[192, 192, 192], [192, 192, 0], [0, 192, 192], [0, 192, 0], [192, 0, 192], [192, 0, 0], [0, 0, 192]],
        dtype=np.uint8,
    )
    img = np.repeat(bars, (width + 6) // 7, axis=0)[:width][None, :, :].repeat(height, axis=0).copy()
    r = max(8, height // 10)
    period = 4 * fps
    t = (i % period) / period
    cx = int(r + (width - 2 * r) * (2 * t if t < 0.5 else 2 - 2 * t))
    cy = int(height / 2 + (height / 3) * np.sin(2 * np.pi * i / (2 * fps)))
    yy, xx = np.ogrid[:height, :width]
    img[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = (255, 255, 255)
    bar_w = int(width * ((i % fps) + 1) / fps)
    img[height - 12 : height - 4, :bar_w] = (255, 80, 0)
    return img


def encoder_thread(out: queue.Queue[bytes | None], width: int, height: int, fps: int, stop: threading.Event) -> None:
    """Encode frames in real time into ``out`` (Annex B access units; None when done)."""
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = Fraction(1, fps)
    ctx.framerate = Fraction(fps, 1)
    ctx.bit_rate = 1_500_000
    ctx.options = {
        "preset": "veryfast",
        "tune": "zerolatency",
        "profile": "baseline",
        "x264-params": f"keyint={fps}:min-keyint={fps}:scenecut=0:repeat-headers=1:bframes=0",
    }
    i = 0
    skipping = False
    start = threading.Event()
    t0 = time.monotonic()  # the encoder thread paces itself (Event.wait), never the event loop
    while not stop.is_set():
        frame = av.VideoFrame.from_ndarray(_pattern(width, height, i, fps), format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        frame.pict_type = av.video.frame.PictureType.NONE
        for pkt in ctx.encode(frame):
            au = bytes(pkt)
            if skipping and not pkt.is_keyframe:
                continue  # dropping a P-frame breaks every frame up to the next IDR: skip to it
            try:
                out.put_nowait(au)
                skipping = False
            except queue.Full:
                skipping = True
        i += 1
        delay = t0 + i / fps - time.monotonic()
        if delay > 0:
            start.wait(delay)
    out.put(None)


async def run(args: argparse.Namespace) -> int:
    stream = validate_id(args.stream, "stream id")
    base = args.url or f"http://127.0.0.1:{os.environ.get('CAMHUB_HTTP_PORT', '8080')}"
    headers = {"Content-Type": "video/h264"}
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    stop = threading.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        if args.register:
            for attempt in range(120):
                try:
                    r = await client.post(
                        "/api/cameras",
                        json={"id": stream, "name": args.name or "Demo camera", "kind": "push"},
                        headers={k: v for k, v in headers.items() if k == "Authorization"},
                    )
                    if r.status_code in (200, 201, 409):
                        break
                    log.info("registering camera: HTTP %s %s", r.status_code, r.text[:200])
                except httpx.HTTPError as exc:
                    if attempt % 10 == 0:
                        log.info("waiting for the gateway at %s: %s", base, exc)
                await asyncio.sleep(0.5)
        frames: queue.Queue[bytes | None] = queue.Queue(maxsize=120)
        worker = threading.Thread(
            target=encoder_thread, args=(frames, args.width, args.height, args.fps, stop), daemon=True
        )
        worker.start()
        sent = 0
        failures = 0
        deadline = loop.time() + args.seconds if args.seconds else None
        while True:
            au = await asyncio.to_thread(frames.get)
            if au is None:
                break
            if deadline is not None and loop.time() > deadline:
                stop.set()
                continue
            try:
                r = await client.post(f"/ingest/{stream}", content=au, headers=headers)
                if r.status_code >= 400:
                    failures += 1
                    if failures % 100 == 1:
                        log.warning("push refused: HTTP %s %s", r.status_code, r.text[:200])
                else:
                    sent += 1
                    failures = 0
            except httpx.HTTPError as exc:
                failures += 1
                if failures % 100 == 1:
                    log.info("push failed (%s); retrying", exc)
        log.info("camera %s stopped after %d frames", stream, sent)
    return 0


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="camhub sim camera", description="synthetic H.264 camera (HTTP push)")
    p.add_argument("--stream", default="demo")
    p.add_argument("--name", default="")
    p.add_argument("--url", default="")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--seconds", type=float, default=0)
    p.add_argument("--token", default=os.environ.get("CAMHUB_API_TOKEN", ""))
    p.add_argument("--register", action="store_true", help="add the camera to the registry first")
    args = p.parse_args(argv)
    setup_logging("sim-camera", os.environ.get("CAMHUB_LOG_LEVEL", "INFO"))
    raise SystemExit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
