"""Container bytes from PyAV's muxers, checked by real demuxers (PyAV, Debian ffprobe)."""

from __future__ import annotations

import io
import itertools
import json
import subprocess
from pathlib import Path

import av
import pytest

from services.common import h264
from services.common.frames import Frame
from services.hls.mux import Fmp4Writer, MuxError, TsSegmentWriter, probe_dimensions
from tests.hls.support import encoded, looped, x264
from tests.support.media import BIKES, BUNNY, clip_frames

TS_PACKET = 188


def ts_pids(data: bytes) -> list[int]:
    assert len(data) % TS_PACKET == 0 and data[0] == 0x47
    return [int.from_bytes(data[i + 1 : i + 3], "big") & 0x1FFF for i in range(0, len(data), TS_PACKET)]


def ts_segments(frames: list[Frame], offset: int = 0) -> list[bytes]:
    """One TS segment per GOP."""
    starts = [i for i, f in enumerate(frames) if f.key] + [len(frames)]
    out = []
    for a, b in itertools.pairwise(starts):
        w = TsSegmentWriter()
        for f in frames[a:b]:
            w.add(f.data, f.pts + offset, f.dts + offset, f.key, 3600)
        out.append(w.finish())
    return out


def ffprobe_packets(path: Path) -> list[dict[str, str]]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_packets", "-select_streams", "v", "-of", "json", str(path)],
        capture_output=True,
        timeout=20,
        check=True,
    )
    packets: list[dict[str, str]] = json.loads(out.stdout)["packets"]
    return packets


def test_ts_segment_starts_with_pat_pmt_and_has_aud_sps_pps_before_idr() -> None:
    frames = list(x264())
    for data in ts_segments(frames):
        pids = ts_pids(data)
        first_pes = pids.index(0x100)
        assert 0 in pids[:first_pes], "PAT before the first PES"
        assert 0x1000 in pids[:first_pes], "PMT before the first PES"
        with av.open(io.BytesIO(data), format="mpegts") as c:
            packets = [p for p in c.demux(video=0) if p.size]
        assert packets[0].is_keyframe
        types = h264.nal_types(bytes(packets[0]))
        assert types[0] == h264.H264_AUD and types.index(h264.H264_SPS) < types.index(h264.H264_IDR)
        assert types.index(h264.H264_PPS) < types.index(h264.H264_IDR)
        assert all(h264.nal_types(bytes(p))[0] == h264.H264_AUD for p in packets)


def test_ts_timestamps_continue_across_segments_with_bframes(tmp_path: Path) -> None:
    """BIKES has B-frames: PTS/DTS come out of the segments as they went in (plus the muxer's
    constant lead), continuing over segment boundaries, read by Debian's ffprobe."""
    frames = clip_frames(BIKES)
    offset = 900_000
    path = tmp_path / "all.ts"
    segs = ts_segments(frames, offset)
    assert len(segs) == 6
    path.write_bytes(b"".join(segs))
    packets = ffprobe_packets(path)
    assert len(packets) == len(frames)
    lead = int(packets[0]["dts"]) - (frames[0].dts + offset)
    assert 0 <= lead <= 2 * 90_000
    for p, f in zip(packets, frames, strict=True):
        assert int(p["pts"]) - lead - offset == f.pts
        assert int(p["dts"]) - lead - offset == f.dts
    dts = [int(p["dts"]) for p in packets]
    assert all(b > a for a, b in itertools.pairwise(dts))


def test_fmp4_init_plus_fragments_decode_with_bframes() -> None:
    frames = clip_frames(BIKES, limit=100)
    w = Fmp4Writer("h264", 640, 272)
    chunks = [w.add(f.data, f.pts + 7200, f.dts + 7200, f.key, 3600) for f in frames]
    chunks.append(w.close())
    assert w.init is not None and w.init[4:8] == b"ftyp" and b"moov" in w.init and b"avcC" in w.init
    assert chunks[0] == b""  # the first frame's fragment is written when the second arrives
    assert all(c[4:8] == b"moof" for c in chunks[1:])
    body = b"".join(chunks)
    assert b"mfra" not in body
    with av.open(io.BytesIO(w.init + body)) as c:
        packets = [p for p in c.demux(video=0) if p.size]
        c.seek(0)
        decoded = sum(1 for _ in c.decode(video=0))
    assert len(packets) == decoded == 100
    shift = packets[0].dts - (frames[0].dts + 7200)
    assert [p.pts - shift for p in packets] == [f.pts + 7200 for f in frames]  # B-frame order kept
    # a suffix that starts at a keyframe decodes alone after the init segment
    k = [i for i, f in enumerate(frames) if f.key][1]
    with av.open(io.BytesIO(w.init + b"".join(chunks[k + 1 :]))) as c:
        assert sum(1 for _ in c.decode(video=0)) == len(frames) - k


@pytest.mark.parametrize(("codec", "decoder"), [("h265", "hevc"), ("av1", "libdav1d")])
def test_fmp4_carries_h265_and_av1(codec: str, decoder: str) -> None:
    frames = encoded(codec)
    w = Fmp4Writer(codec, 160, 128)
    body = b"".join(w.add(f.data, f.pts, f.dts, f.key, 3000) for f in frames) + w.close()
    assert w.init is not None
    with av.open(io.BytesIO(w.init + body)) as c:
        st = c.streams.video[0]
        assert st.codec_context.name == decoder
        assert (st.codec_context.width, st.codec_context.height) == (160, 128)
        assert sum(1 for _ in c.decode(video=0)) == len(frames)


def test_probe_dimensions() -> None:
    assert probe_dimensions("h264", clip_frames(BUNNY, limit=1)[0].data) == (1280, 720)
    assert probe_dimensions("h265", encoded("h265")[0].data) == (160, 128)
    assert probe_dimensions("h264", b"\x00\x00\x00\x01\x65garbage") == (0, 0)
    assert probe_dimensions("vp8", b"x") == (0, 0)


def test_mux_errors_are_typed() -> None:
    with pytest.raises(MuxError):
        TsSegmentWriter("h265")
    with pytest.raises(MuxError):
        Fmp4Writer("vp8", 320, 240)
    with pytest.raises(MuxError):
        Fmp4Writer("h264", 0, 0)
    frames = looped(x264(), 3)
    w = Fmp4Writer("h264", 320, 240)
    w.add(frames[0].data, 0, 0, True, 3000)
    w.add(frames[1].data, 3000, 3000, False, 3000)
    with pytest.raises(MuxError):
        w.add(frames[2].data, 3000, 3000, False, 3000)  # DTS did not increase
    t = TsSegmentWriter()
    t.add(frames[0].data, 6000, 6000, True, 3000)
    with pytest.raises(MuxError):
        t.add(frames[1].data, 0, 0, False, 3000)
