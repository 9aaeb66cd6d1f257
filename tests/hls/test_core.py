"""Pure core: resource names, the output timeline and the segmenter (with hypothesis)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.hls import names
from services.hls.names import Resource, UnknownResource
from services.hls.segmenter import Segmenter
from services.hls.timeline import Timeline

TARGET = 180_000  # 2 s
PART = 29_970  # 0.333 s


def test_names_round_trip() -> None:
    assert names.parse(names.seg_ts(123)) == Resource("ts", 123)
    assert names.parse(names.seg_m4s(7)) == Resource("m4s", 7)
    assert names.parse(names.part_m4s(1234567, 3)) == Resource("part", 1234567, 3)
    assert names.parse(names.init_mp4(120)) == Resource("init", 120)
    assert names.parse("init.mp4") == Resource("init", -1)
    assert names.parse("stream.m3u8").kind == "playlist"
    assert names.parse("stream_ll.m3u8").kind == "playlist_ll"
    assert names.seg_ts(5) == "seg000005.ts"


@pytest.mark.parametrize(
    "path", ["", "../etc/passwd", "seg.ts", "seg-1.ts", "seg1.mp4", "part1.m4s", "stream.m3u", "x" * 500, "seg1.ts/x"]
)
def test_names_reject_everything_else(path: str) -> None:
    with pytest.raises(UnknownResource):
        names.parse(path)


def test_timeline_continues_and_keeps_bframe_offsets() -> None:
    tl = Timeline(base=1000)
    a = tl.map(pts=5000 + 3000, dts=5000)
    b = tl.map(pts=8000 + 6000, dts=8000)
    assert (a.dts, a.pts, b.dts, b.pts) == (1000, 4000, 4000, 10000)
    assert not a.jump and not b.jump


def test_timeline_rebases_backwards_and_large_jumps() -> None:
    tl = Timeline(max_jump=90_000 * 5)
    tl.map(0, 0)
    tl.map(3000, 3000)
    back = tl.map(0, 0)  # source restarted its clock
    assert back.dts == 6000 and back.jump is False  # backwards by less than max_jump: silent fix
    big = tl.map(10 * 90_000, 10 * 90_000)  # jumps 10 s ahead
    assert big.dts == 9000 and big.jump
    behind = tl.map(0, 0)  # 10 s back
    assert behind.dts == 12000 and behind.jump
    tl.restart()
    again = tl.map(777, 777)
    assert again.dts == 15000 and again.jump
    assert tl.rebases == 3


def test_timeline_clamps_pts_before_dts() -> None:
    tl = Timeline()
    m = tl.map(pts=100, dts=3000)
    assert m.pts == m.dts


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-200_000, 900_000), st.integers(0, 5000)), min_size=1, max_size=300))
def test_timeline_output_dts_strictly_increases(steps: list[tuple[int, int]]) -> None:
    tl = Timeline()
    dts, last = 0, None
    for delta, reorder in steps:
        dts += delta
        m = tl.map(dts + reorder, dts)
        assert last is None or m.dts > last
        assert m.pts >= m.dts
        last = m.dts


def test_segmenter_cuts_only_at_keyframes_after_target() -> None:
    s = Segmenter(TARGET, PART)
    assert s.place(0, False, 3000) is None  # nothing before the first keyframe
    first = s.place(0, True, 3000)
    assert first is not None and first.segment
    cuts = [s.place(i * 3000, i % 30 == 0, 3000) for i in range(1, 121)]
    segment_starts = [i for i, c in enumerate(cuts, 1) if c is not None and c.segment]
    assert segment_starts == [60, 120]  # keyframes every 30 frames, target 60 frames
    part_starts = [i for i, c in enumerate(cuts, 1) if c is not None and c.part]
    assert part_starts == list(range(10, 121, 10))  # 10 frames = 0.333 s
    s.close()
    assert s.place(121 * 3000, False, 3000) is None


def test_segmenter_force_cuts_at_next_keyframe() -> None:
    s = Segmenter(TARGET)
    s.place(0, True, 3000)
    forced = s.place(3000, True, 3000, force=True)
    assert forced is not None and forced.segment
    not_key = s.place(6000, False, 3000, force=True)
    assert not_key is not None and not not_key.segment


frame_steps = st.lists(
    st.tuples(st.integers(1000, 9000), st.booleans()),  # (DTS step in ticks, keyframe?)
    min_size=1,
    max_size=400,
)


@settings(max_examples=300, deadline=None)
@given(frame_steps, st.sampled_from([90_000, 180_000, 360_000]), st.sampled_from([None, 29_970, 45_000]))
def test_segmenter_property_segments_start_with_idr_and_last_target_to_target_plus_gop(
    steps: list[tuple[int, bool]], target: int, part: int | None
) -> None:
    """Any frame sequence: every segment starts with a keyframe, and every segment but the last
    lasts at least the target (minus half a frame) and less than the target plus the longest
    keyframe interval; parts last less than the part target plus one frame step."""
    s = Segmenter(target, part)
    dts = 0
    placed: list[tuple[int, bool, bool, bool]] = []  # (dts, key, new segment, new part)
    for step, key in steps:
        cut = s.place(dts, key, step)
        if cut is None:
            assert not placed and not key  # only frames before the first keyframe are refused
        else:
            placed.append((dts, key, cut.segment, cut.part))
        dts += step
    if not placed:
        return
    assert placed[0][2] and placed[0][1]
    keys = [d for d, k, _, _ in placed if k]
    gop = max((b - a for a, b in itertools.pairwise(keys)), default=0)
    starts = [d for d, k, seg, _ in placed if seg]
    assert all(k for _, k, seg, _ in placed if seg)
    max_step = max(step for step, _ in steps)
    for a, b in itertools.pairwise(starts):
        assert target - max_step // 2 <= b - a < target + gop
    if part is not None:
        part_starts = [d for d, _, _, p in placed if p]
        for a, b in itertools.pairwise(part_starts):
            assert b - a < part + max_step
