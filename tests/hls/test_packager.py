"""The sans-IO packager fed with real encoded frames (libx264, recorded clips, libx265)."""

from __future__ import annotations

import dataclasses
import io
import itertools

import av
import m3u8
import pytest

from services.common import h264
from services.common.frames import Frame
from services.hls import names
from services.hls.names import Resource
from services.hls.packager import PackagerConfig, Resume, StreamPackager
from tests.hls.support import encoded, feed, looped, x264
from tests.support.media import BIKES, BUNNY, clip_frames, encode_h264


def new(config: PackagerConfig | None = None, resume: Resume | None = None, codec: str = "h264") -> StreamPackager:
    pk = StreamPackager("cam1", config, resume=resume, wall=lambda: 1_700_000_000.0)
    pk.set_source(codec, 320, 240)
    return pk


def item(pk: StreamPackager, name: str) -> bytes:
    found = pk.lookup(names.parse(name))
    assert found is not None, name
    return bytes(found.data)


def first_packet(data: bytes, fmt: str | None = None) -> av.Packet:
    with av.open(io.BytesIO(data), format=fmt) as c:
        return next(p for p in c.demux(video=0) if p.size)


def listed_uris(text: str) -> list[str]:
    pl = m3u8.loads(text)
    uris = [s.uri for s in pl.segments if s.uri] + [p.uri for s in pl.segments for p in s.parts]
    uris += [s.init_section.uri for s in pl.segments if s.init_section is not None]
    return uris


def test_segments_start_with_an_idr_and_parts_are_independent_at_keyframes() -> None:
    pk = new()
    feed(pk, looped(x264(), 300))  # 10 s, GOP 1 s
    segs = pk.window.listed()
    assert [s.msn for s in segs] == [0, 1, 2, 3]
    for s in segs:
        assert s.seconds == pytest.approx(2.0)
        assert first_packet(item(pk, names.seg_ts(s.msn)), "mpegts").is_keyframe
        init = item(pk, names.init_mp4(s.generation or 0))
        assert first_packet(init + item(pk, names.seg_m4s(s.msn))).is_keyframe
        assert [p.independent for p in s.parts] == [True, False, False, True, False, False]
        assert sum(p.duration for p in s.parts) == s.duration
        assert b"".join(bytes(p.data) for p in s.parts) == s.m4s


def test_frames_before_the_first_keyframe_are_dropped() -> None:
    pk = new()
    frames = looped(x264(), 120)
    feed(pk, frames[5:])
    assert pk.dropped == {"before-keyframe": 25}
    assert pk.window.segments[0].start_dts == 0  # the keyframe at frame 30 starts the timeline
    assert pk.window.segments[0].frames == 60


def test_parameter_sets_from_stream_info_go_before_every_idr() -> None:
    """Keyframes without SPS/PPS (out-of-band config, as RTSP SDP gives it) get StreamInfo.config."""
    clip = clip_frames(BIKES, limit=80)
    config = h264.parameter_sets(clip[0].data)
    bare = []
    for f in clip:
        nals = [n for n in h264.iter_nals(f.data) if h264.nal_type(n) not in (h264.H264_SPS, h264.H264_PPS)]
        bare.append(dataclasses.replace(f, data=b"".join(h264.START + n for n in nals)))
    assert not h264.parameter_sets(bare[30].data)
    pk = StreamPackager("bikes", PackagerConfig(segment_seconds=1.0))
    pk.set_source("h264", 640, 272, config)
    feed(pk, bare)
    assert len(pk.window.segments) == 2  # keyframes at 0, 30 and 76: two complete segments
    for name in (names.seg_ts(0), names.seg_ts(1)):
        types = h264.nal_types(bytes(first_packet(item(pk, name), "mpegts")))
        assert types[:3] == [h264.H264_AUD, h264.H264_SPS, h264.H264_PPS]
    assert b"avcC" in item(pk, "init000000.mp4")


def test_keyframe_without_any_parameter_sets_cannot_start_a_stream() -> None:
    frames = looped(x264(), 40)
    nals = [n for n in h264.iter_nals(frames[0].data) if h264.nal_type(n) not in (7, 8)]
    bare = dataclasses.replace(frames[0], data=b"".join(h264.START + n for n in nals))
    pk = new()
    feed(pk, [bare, *frames[1:]])
    assert pk.dropped["no-parameter-sets"] == 1
    assert pk.frames == 10  # from the next keyframe (frame 30) on


def test_pts_jump_rebases_with_a_discontinuity() -> None:
    pk = new()
    frames = looped(x264(), 150)
    jumped = looped(x264(), 150, start_pts=frames[-1].dts + 100 * 90_000)  # 100 s later
    feed(pk, frames)
    feed(pk, jumped)
    back = looped(x264(), 90, start_pts=0)  # and back to 0
    feed(pk, back)
    segs = list(pk.window.segments)
    dis = [s.msn for s in segs if s.discontinuity]
    assert len(dis) == 2
    for a, b in itertools.pairwise(segs):
        assert b.start_dts == a.start_dts + a.duration  # the output timeline never jumps
    assert [s.dsn for s in segs if s.discontinuity] == [1, 2]
    assert all(s.generation == s.msn for s in segs if s.discontinuity)  # new init each time
    text = pk.playlist(False)
    assert text is not None and text.count("#EXT-X-DISCONTINUITY\n") == 2


def test_discontinuity_event_waits_for_a_keyframe() -> None:
    pk = new()
    feed(pk, looped(x264(), 75))  # segment 0 complete (60 frames), 15 in segment 1
    pk.discontinuity()
    restart = looped(x264(), 60, start_pts=0)
    feed(pk, restart[10:])  # the new source starts mid-GOP: 20 frames dropped
    assert pk.dropped == {"await-keyframe": 20}
    seg1, seg2 = pk.window.segments[1], pk.window.open
    assert seg1.frames == 15 and seg2 is not None and seg2.discontinuity and seg2.dsn == 1


def test_end_completes_the_open_segment() -> None:
    pk = new()
    feed(pk, looped(x264(), 100))
    up = pk.end()
    assert up.completed == [1] and pk.window.open is None and pk.hint() is None
    last = pk.window.segments[-1]
    assert last.frames == 40 and last.seconds == pytest.approx(40 / 30)
    with av.open(io.BytesIO(item(pk, "init000000.mp4") + item(pk, "seg000001.m4s"))) as c:
        assert sum(1 for _ in c.decode(video=0)) == 40
    feed(pk, looped(x264(), 30, start_pts=0))
    assert pk.window.open is not None and pk.window.open.discontinuity


def test_codec_change_starts_a_new_generation() -> None:
    pk = new()
    feed(pk, looped(x264(), 90))
    feed(pk, encoded("h265"))
    pk.end()
    segs = list(pk.window.segments)
    h265 = [s for s in segs if s.ts is None]
    assert h265 and h265[0].discontinuity and all(s.ts is not None for s in segs if s not in h265)
    init = item(pk, names.init_mp4(h265[0].generation or 0))
    assert b"hvcC" in init
    text = pk.playlist(False)
    assert text is not None and "seg000000.ts" in text and names.seg_m4s(h265[0].msn) in text
    assert f'#EXT-X-MAP:URI="{names.init_mp4(h265[0].generation or 0)}"' in text


@pytest.mark.parametrize(("codec", "box"), [("h265", b"hvcC"), ("av1", b"av1C")])
def test_h265_and_av1_are_packaged_in_fmp4(codec: str, box: bytes) -> None:
    pk = StreamPackager("cam1", PackagerConfig(segment_seconds=0.5, part_seconds=0.1))
    pk.set_source(codec, 160, 128)
    feed(pk, encoded(codec))
    pk.end()
    segs = list(pk.window.segments)
    assert [s.frames for s in segs] == [15, 15] and all(s.ts is None for s in segs)
    init = item(pk, "init000000.mp4")
    assert box in init
    with av.open(io.BytesIO(init + b"".join(s.m4s or b"" for s in segs))) as c:
        assert sum(1 for _ in c.decode(video=0)) == 30
    ll = pk.playlist(True)
    assert ll is not None and "#EXT-X-PART:" in ll and pk.playlist(False) is not None


def test_parameter_set_change_gets_a_new_init_segment() -> None:
    pk = new()
    feed(pk, looped(x264(), 90))
    bigger = encode_h264(60, width=352, height=288, gop=30)
    pk.set_source("h264", 352, 288)
    feed(pk, looped(bigger, 60, start_pts=90 * 3000))
    pk.end()
    gens = sorted(pk.window.inits)
    assert len(gens) == 2
    with av.open(io.BytesIO(pk.window.inits[gens[1]] + item(pk, names.seg_m4s(gens[1])))) as c:
        assert (c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height) == (352, 288)


def test_images_and_unsupported_codecs_are_not_packaged() -> None:
    pk = new()
    for i in range(5):
        pk.push(Frame("jpeg", i * 3000, i * 3000, True, b"\xff\xd8\xff\xe0fake", i))
        pk.push(Frame("vp8", i * 3000, i * 3000, True, b"\x10\x02\x00", i))
    assert pk.dropped == {"codec": 10} and pk.playlist(False) is None and pk.frames == 0


def test_bad_keyframe_is_dropped_and_packaging_continues() -> None:
    pk = new()
    pk.set_source("h264")  # no size known: the packager probes the keyframe
    pk._width = pk._height = 0
    garbage = Frame("h264", 0, 0, True, h264.START + b"\x67garbage" + h264.START + b"\x68x" + h264.START + b"\x65x")
    pk.push(garbage)
    assert pk.dropped.get("mux-error") == 1
    feed(pk, looped(x264(), 90, start_pts=3000))
    assert pk.window.segments and pk.window.segments[0].frames == 60


def test_resume_continues_media_sequence_with_a_discontinuity() -> None:
    pk = new(resume=Resume(msn=41, dsn=3, dts=5_000_000))
    feed(pk, looped(x264(), 90))
    s = pk.window.segments[0]
    assert (s.msn, s.discontinuity, s.dsn, s.start_dts) == (41, True, 4, 5_000_000)
    assert pk.resume_state() == Resume(43, 4, 5_000_000 + 60 * 3000)
    text = pk.playlist(True)
    assert text is not None
    pl = m3u8.loads(text)
    assert pl.media_sequence == 41 and pl.discontinuity_sequence == 3
    assert "init000041.mp4" in text


def test_window_slides_and_listed_uris_always_resolve() -> None:
    cfg = PackagerConfig(window=3, grace=2)
    pk = new(cfg)
    frames = looped(x264(), 600)
    evicted: list[str] = []
    for i, f in enumerate(frames):
        up = pk.push(f)
        evicted += up.evicted
        if i % 7 == 0:
            for ll in (False, True):
                text = pk.playlist(ll)
                for uri in listed_uris(text) if text else []:
                    assert pk.lookup(names.parse(uri)) is not None, uri
    assert [s.msn for s in pk.window.listed()] == [6, 7, 8]  # 9 is open
    assert len(pk.window.segments) == 5
    assert "seg000000.ts" in evicted and "part000000.0.m4s" in evicted and "seg000003.m4s" in evicted
    assert pk.lookup(Resource("ts", 3)) is None and pk.lookup(Resource("ts", 4)) is not None
    text = pk.playlist(False)
    assert text is not None and m3u8.loads(text).media_sequence == 6


def test_target_duration_follows_a_long_gop_up_and_never_down() -> None:
    pk = new()
    bunny = clip_frames(BUNNY)  # one GOP of 5.28 s
    feed(pk, looped(bunny, len(bunny) * 2 + 1))
    assert pk.window.segments[0].seconds == pytest.approx(5.28)
    assert pk.target_duration == 6
    feed(pk, looped(x264(), 300, start_pts=bunny[-1].dts * 3))
    assert pk.target_duration == 6
    text = pk.playlist(False)
    assert text is not None and "#EXT-X-TARGETDURATION:6" in text


def test_first_playlist_once_the_first_segment_is_complete() -> None:
    pk = new()
    frames = looped(x264(), 61)
    feed(pk, frames[:60])
    assert pk.playlist(False) is None and pk.playlist(True) is None
    pk.push(frames[60])  # the keyframe 2 s after the first: segment 0 complete
    assert pk.playlist(False) is not None and pk.playlist(True) is not None


def test_low_latency_off() -> None:
    pk = new(PackagerConfig(low_latency=False))
    feed(pk, looped(x264(), 150))
    assert pk.playlist(True) is None and not pk.window.inits
    assert pk.window.segments[0].generation is None and pk.playlist(False) is not None
    h265 = new(PackagerConfig(low_latency=False, segment_seconds=0.5), codec="h265")
    h265.set_source("h265", 160, 128)
    feed(h265, encoded("h265"))
    text = h265.playlist(False)
    assert text is not None and "#EXT-X-MAP" in text and ".m4s" in text
    assert all(len(s.parts) == 1 for s in h265.window.segments)


def test_program_date_time_follows_media_time() -> None:
    pk = new()
    frames = [dataclasses.replace(f, ts_ns=1_800_000_000 * 10**9 + i) for i, f in enumerate(looped(x264(), 200))]
    feed(pk, frames)
    pdts = [s.pdt for s in pk.window.segments]
    assert pdts[0] == pytest.approx(1_800_000_000.0)
    assert [round(b - a, 6) for a, b in itertools.pairwise(pdts)] == [2.0, 2.0]
