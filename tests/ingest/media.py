"""Real encoded media for the ingest tests: AV1 from libsvtav1, H.265 from libx265, big H.264
keyframes, all through PyAV (no canned bytes)."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from services.common import h264
from services.common.frames import Frame

_ROOT = Path(__file__).resolve().parents[2]


def _pattern(i: int, width: int, height: int, noise: bool = False) -> av.VideoFrame:
    if noise:
        img = np.random.default_rng(i).integers(0, 256, (height, width, 3), dtype=np.uint8)
    else:
        yy, xx = np.mgrid[0:height, 0:width]
        img = np.zeros((height, width, 3), dtype=np.uint8)
        img[..., 0] = (xx + i * 4) % 256
        img[..., 1] = (yy + i * 2) % 256
        img[..., 2] = ((xx // 16 + yy // 16 + i) % 2) * 255
    vf = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
    vf.pts = i
    return vf


def _encode_av1_here(count: int, width: int, height: int, keyint: int, noise_first: bool) -> list[tuple[bytes, bool]]:
    ctx = av.CodecContext.create("libsvtav1", "w")
    ctx.width, ctx.height = width, height
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = Fraction(1, 30)
    ctx.framerate = Fraction(30, 1)
    ctx.options = {"preset": "10", "svtav1-params": f"keyint={keyint}:pred-struct=1:lp=1"}
    out: list[tuple[bytes, bool]] = []
    for i in range(count):
        for pkt in ctx.encode(_pattern(i, width, height, noise=noise_first and i == 0)):
            out.append((bytes(pkt), bool(pkt.is_keyframe)))
    for pkt in ctx.encode(None):
        out.append((bytes(pkt), bool(pkt.is_keyframe)))
    return out


@functools.lru_cache(maxsize=16)
def _encode_av1_cached(count: int, width: int, height: int, keyint: int, noise_first: bool) -> bytes:
    args = json.dumps([count, width, height, keyint, noise_first])
    cmd = [sys.executable, "-m", "tests.ingest.media", args]
    setpriv = shutil.which("setpriv")
    if setpriv:  # no CAP_SYS_NICE: SVT-AV1's request for SCHED_FIFO 99 is refused by the kernel
        cmd = [setpriv, "--bounding-set", "-sys_nice", *cmd]
    proc = subprocess.run(cmd, cwd=_ROOT, capture_output=True, timeout=60, check=True)
    return proc.stdout


def encode_av1(
    count: int = 12, width: int = 352, height: int = 288, keyint: int = 6, noise_first: bool = False
) -> list[tuple[bytes, bool]]:
    """``(temporal unit, is_keyframe)`` pairs from libsvtav1 (low-delay, no B-frames).

    The encoder runs in a child process without CAP_SYS_NICE: run as root, SVT-AV1 gives its
    threads SCHED_FIFO 99, and that policy would spread from the test process to every service,
    nats-server and browser it starts afterwards (on 2 cores that wedges the machine).
    """
    data = _encode_av1_cached(count, width, height, keyint, noise_first)
    return [(bytes.fromhex(tu), bool(key)) for tu, key in json.loads(data)]


def decode_av1(tus: list[bytes]) -> int:
    """Pictures libdav1d decodes from ``tus``."""
    dec = av.CodecContext.create("libdav1d", "r")
    n = 0
    for tu in tus:
        n += len(dec.decode(av.Packet(tu)))
    n += len(dec.decode(None))
    return n


def encode_h265(count: int = 20, width: int = 320, height: int = 240, gop: int = 10) -> list[Frame]:
    """Annex B H.265 frames from libx265 (parameter sets before each IRAP)."""
    ctx = av.CodecContext.create("libx265", "w")
    ctx.width, ctx.height = width, height
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = Fraction(1, 30)
    ctx.framerate = Fraction(30, 1)
    ctx.options = {
        "preset": "ultrafast",
        "x265-params": f"keyint={gop}:min-keyint={gop}:bframes=0:repeat-headers=1:log-level=error",
    }
    out: list[Frame] = []
    for i in range(count):
        for pkt in ctx.encode(_pattern(i, width, height)):
            data = bytes(pkt)
            out.append(Frame("h265", int(pkt.pts) * 3000, int(pkt.dts) * 3000, h264.is_keyframe(data, "h265"), data))
    for pkt in ctx.encode(None):
        data = bytes(pkt)
        out.append(Frame("h265", int(pkt.pts) * 3000, int(pkt.dts) * 3000, h264.is_keyframe(data, "h265"), data))
    return out


def big_keyframes(count: int = 3, width: int = 1280, height: int = 720, qp: int = 4) -> list[Frame]:
    """H.264 frames of random noise at a low QP: every frame an IDR of ~1.5 MB (720p)."""
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height = width, height
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = Fraction(1, 30)
    ctx.framerate = Fraction(30, 1)
    ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "x264-params": f"keyint=1:qp={qp}:repeat-headers=1"}
    out: list[Frame] = []
    for i in range(count):
        for pkt in ctx.encode(_pattern(i, width, height, noise=True)):
            data = bytes(pkt)
            out.append(Frame("h264", int(pkt.pts) * 3000, int(pkt.pts) * 3000, True, data))
    for pkt in ctx.encode(None):
        data = bytes(pkt)
        out.append(Frame("h264", int(pkt.pts) * 3000, int(pkt.pts) * 3000, True, data))
    return out


def nal_payloads(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B AU (start-code length differences ignored)."""
    return list(h264.iter_nals(data))


def encode_image(codec: str = "mjpeg", width: int = 320, height: int = 240, i: int = 0) -> bytes:
    """One JPEG (FFmpeg ``mjpeg``, JFIF) or WebP (``libwebp``) picture."""
    ctx = av.CodecContext.create(codec, "w")
    ctx.width, ctx.height = width, height
    ctx.time_base = Fraction(1, 30)
    if codec == "mjpeg":
        ctx.pix_fmt = "yuvj420p"
        ctx.sample_aspect_ratio = Fraction(1, 1)
    else:
        ctx.pix_fmt = "yuv420p"
    vf = _pattern(i, width, height).reformat(format=ctx.pix_fmt)
    vf.pts = 0
    return b"".join(bytes(p) for p in [*ctx.encode(vf), *ctx.encode(None)])


if __name__ == "__main__":  # the AV1 encoder child of encode_av1: JSON [[hex TU, key], ...] on stdout
    count, width, height, keyint, noise_first = json.loads(sys.argv[1])
    tus = _encode_av1_here(count, width, height, keyint, noise_first)
    sys.stdout.write(json.dumps([[tu.hex(), key] for tu, key in tus]))
