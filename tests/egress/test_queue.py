"""The egress's frame-routing core without sockets: GOP cache, per-viewer RTP timeline and queue,
catch-up pacing. Frames are real libx264 output and the recorded B-frame clip."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from services.egress.gop import GopCache
from services.egress.queue import ViewerQueue
from services.egress.timeline import CATCHUP_STEP_TICKS, START_TICKS, Timeline
from services.egress.track import LatencyWindow, Pacer
from tests.egress.helpers import encode_h264_high
from tests.support.media import BIKES, clip_frames

FRAMES = encode_h264_high(70, gop=30)  # IDR at 0, 30, 60; 30 fps = 3000 ticks


def deltas(values: list[int]) -> list[int]:
    return [b - a for a, b in itertools.pairwise(values)]


def test_gop_cache_holds_the_current_gop() -> None:
    assert [i for i, f in enumerate(FRAMES) if f.key] == [0, 30, 60]
    gop = GopCache(max_ticks=10 * 90_000, max_bytes=8 << 20)
    for f in FRAMES[:45]:
        gop.push(f)
    snap = gop.snapshot()
    assert snap[0] is FRAMES[30] and snap[-1] is FRAMES[44] and len(gop) == 15
    assert gop.span_ticks == 14 * 3000 and gop.size == sum(len(f.data) for f in FRAMES[30:45])
    late = GopCache(10 * 90_000, 8 << 20)
    for f in FRAMES[5:12]:  # joined mid-GOP: nothing decodable to keep
        late.push(f)
    assert late.snapshot() == [] and late.keyframe is None


@pytest.mark.parametrize("bound", ["ticks", "bytes"])
def test_gop_cache_overflow_waits_for_the_next_keyframe(bound: str) -> None:
    gop = GopCache(10 * 3000, 8 << 20) if bound == "ticks" else GopCache(90_000, sum(len(f.data) for f in FRAMES[:5]))
    for f in FRAMES[:29]:
        gop.push(f)
    assert gop.snapshot() == [] and gop.overflows == 1  # never a GOP cut at its head
    gop.push(FRAMES[30])
    assert gop.snapshot() == [FRAMES[30]]


def test_timeline_keeps_live_spacing_and_survives_a_source_restart() -> None:
    tl = Timeline()
    out = [tl.live(f) for f in FRAMES[:10]]
    assert out[0] == START_TICKS and set(deltas(out)) == {3000}
    # the source reconnects: timestamps restart at 0; 2 s of wall clock passed
    now = 1_000_000
    tl2 = Timeline()
    first = [tl2.live(f, now + i * 3000) for i, f in enumerate(FRAMES[:10])]
    again = [tl2.live(f, now + 9 * 3000 + 180_000 + i * 3000) for i, f in enumerate(FRAMES[:5])]
    assert again[0] - first[-1] == 180_000 and set(deltas(again)) == {3000}
    # without a wall clock: one frame interval
    assert tl.live(FRAMES[0]) - out[-1] == 3000


def test_timeline_catch_up_is_compressed_then_live_continues() -> None:
    tl = Timeline()
    run = tl.catch_up(FRAMES[30:45])
    assert set(deltas(run)) == {CATCHUP_STEP_TICKS}
    assert tl.live(FRAMES[45]) - run[-1] == 3000
    # a restart (PLI) later: the new run starts after everything sent, never goes back
    later = tl.catch_up(FRAMES[30:47])
    assert later[0] > run[-1] + 3000 - 1


def test_timeline_never_repeats_a_timestamp_and_keeps_bframe_pts_order() -> None:
    tl = Timeline()
    a = tl.live(FRAMES[0])
    dup = replace(FRAMES[1], pts=FRAMES[0].pts, dts=FRAMES[0].dts)
    assert tl.live(dup) == a + 1
    bikes = clip_frames(BIKES, limit=40)
    tb = Timeline()
    out = [tb.live(f) for f in bikes]
    assert deltas(out) == deltas([f.pts for f in bikes])  # presentation order, as the source


def test_queue_starts_from_the_gop_then_goes_live() -> None:
    q = ViewerQueue(lag_ticks=90_000)
    assert q.push(FRAMES[40]) is False and len(q) == 0  # not started: ignored, not counted
    q.start(FRAMES[30:41])
    assert q.push(FRAMES[41])
    items = [q.pop() for _ in range(12)]
    assert [i.frame for i in items if i] == FRAMES[30:42]
    assert [i.catch_up for i in items if i] == [True] * 11 + [False]
    assert q.pop() is None and q.dropped == 0 and q.skipped == 0


def test_queue_without_gop_waits_for_a_keyframe() -> None:
    q = ViewerQueue(lag_ticks=90_000)
    q.start([])
    for f in FRAMES[10:30]:
        assert not q.push(f)
    assert q.skipped == 20 and q.push(FRAMES[30]) and q.pop().frame is FRAMES[30]  # type: ignore[union-attr]


def test_lagging_viewer_skips_to_the_next_keyframe() -> None:
    q = ViewerQueue(lag_ticks=10 * 3000)
    q.start(FRAMES[0:1])
    q.pop()  # the sender took the keyframe, then stalls
    queued = [q.push(f) for f in FRAMES[1:20]]
    # 11 frames span 10 intervals = the lag bound; the 12th is one too many
    assert queued[:11] == [True] * 11 and not any(queued[11:])
    assert q.lags == 1 and len(q) == 0 and q.waiting_key
    assert q.dropped == 12 and q.skipped == 7  # the queued 11 + the 12th; then waiting for an IDR
    assert q.push(FRAMES[30]) and q.pop().frame is FRAMES[30]  # type: ignore[union-attr]


def test_pause_empties_and_resumes_at_a_keyframe() -> None:
    q = ViewerQueue(lag_ticks=90_000)
    q.start(FRAMES[0:3])
    q.pause()
    assert len(q) == 0 and not q.push(FRAMES[5]) and q.push(FRAMES[30])


def test_pacer_and_latency_window() -> None:
    p = Pacer(8_000_000)  # 1 MB/s
    assert p.delay(100_000, 10.0) == 0
    assert p.delay(100_000, 10.0) == pytest.approx(0.1)
    assert p.delay(100_000, 10.05) == pytest.approx(0.15)
    p.reset()
    assert p.delay(1, 20.0) == 0
    w = LatencyWindow()
    assert w.summary() == {"n": 0, "p50": 0.0, "p99": 0.0, "max": 0.0}
    for ms in range(1, 101):
        w.add(float(ms))
    s = w.summary()
    assert s["n"] == 100 and s["p50"] == 51.0 and s["p99"] == 99.0 and s["max"] == 100.0


def test_loss_upstream_skips_to_the_next_keyframe() -> None:
    q = ViewerQueue(lag_ticks=90_000)
    q.start(FRAMES[0:3])
    q.skip_to_keyframe()
    assert len(q) == 3  # what was queued before the hole still goes out
    assert not q.push(FRAMES[5]) and q.push(FRAMES[30])


def test_late_detector_judges_age_against_the_recent_minimum() -> None:
    from services.egress.lateness import LateDetector

    d = LateDetector(max_late_ns=1_000_000_000, window_s=2.0)
    skew = 3_600_000_000_000  # the ingest's clock is an hour off: ages are huge, not late
    assert not d.late(skew + 2_000_000, 0.0)
    assert not d.late(skew + 900_000_000, 0.1)
    assert d.late(skew + 1_500_000_000, 0.2)  # 1.5 s behind the baseline
    # the ingest's clock steps back 10 s (ages grow by 10 s): late until the old baseline has
    # aged out of both windows (<= 2 x 2 s), then normal again
    step = 10_000_000_000
    assert d.late(skew + step, 1.0)
    assert d.late(skew + step, 2.5)  # a new window; the previous one still holds the old ages
    assert d.late(skew + step, 4.1)
    assert not d.late(skew + step, 4.6)  # the old ages are gone
    assert not d.late(skew + step + 500_000_000, 4.7)


def test_lag_is_judged_by_waiting_time_when_a_clock_is_given() -> None:
    """A source that repeats timestamps (or restarts them) cannot hide a lagging viewer: with the
    caller's clock the queue measures how long its oldest live frame has waited."""
    q = ViewerQueue(lag_ticks=90_000)
    q.start(FRAMES[0:1])
    q.pop()
    stuck = [replace(f, pts=0, dts=0) for f in FRAMES[1:30]]
    assert all(q.push(f, now=i * 3000) for i, f in enumerate(stuck[:20]))  # 19 x 33 ms waited
    assert not q.push(stuck[20], now=100_000)  # the first one has waited > 1 s
    assert q.lags == 1 and q.waiting_key
