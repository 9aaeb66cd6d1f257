"""Playlist text (RFC 8216 / 8216bis tags), checked by hand and with the ``m3u8`` parser."""

from __future__ import annotations

import m3u8
import pytest

from services.hls.playlist import program_date_time, render_ll, render_standard
from services.hls.window import Part, Segment

T0 = 1_700_000_000.0


def seg(
    msn: int,
    *,
    dur: float = 2.0,
    dis: bool = False,
    dsn: int = 0,
    gen: int | None = 0,
    ts: bool = True,
    parts: int = 6,
    complete: bool = True,
) -> Segment:
    ticks = round(dur * 90_000)
    per = ticks // max(1, parts)
    s = Segment(msn, msn * ticks, T0 + msn * dur, dis, dsn, gen)
    s.parts = [Part(i, per, i == 0, b"x") for i in range(parts)]
    s.duration, s.complete = ticks, complete
    s.ts = b"ts" if ts else None
    return s


def test_program_date_time_is_iso8601_utc_with_ms() -> None:
    assert program_date_time(0.0) == "1970-01-01T00:00:00.000Z"
    assert program_date_time(1_700_000_000.1234) == "2023-11-14T22:13:20.123Z"


def test_standard_playlist_v3_ts() -> None:
    segs = [seg(10, dsn=2), seg(11, dis=True, dsn=3, dur=1.5), seg(12, dsn=3)]
    text = render_standard(segs, 2)
    lines = text.splitlines()
    assert lines[:5] == [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        "#EXT-X-TARGETDURATION:2",
        "#EXT-X-MEDIA-SEQUENCE:10",
        "#EXT-X-DISCONTINUITY-SEQUENCE:2",
    ]
    assert "#EXT-X-MAP" not in text and "PART" not in text
    pl = m3u8.loads(text)
    assert [s.uri for s in pl.segments] == ["seg000010.ts", "seg000011.ts", "seg000012.ts"]
    assert [s.duration for s in pl.segments] == [2.0, 1.5, 2.0]
    assert [s.discontinuity for s in pl.segments] == [False, True, False]
    assert all(s.program_date_time is not None for s in pl.segments)
    assert pl.media_sequence == 10 and pl.target_duration == 2 and pl.discontinuity_sequence == 2


def test_discontinuity_on_first_listed_segment_counts_from_the_one_before() -> None:
    text = render_standard([seg(40, dis=True, dsn=5)], 2)
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:4" in text
    assert text.index("#EXT-X-DISCONTINUITY\n") < text.index("seg000040.ts")


def test_standard_playlist_fmp4_for_codecs_without_ts() -> None:
    segs = [seg(0, ts=False, gen=0), seg(1, ts=False, gen=0), seg(2, ts=False, gen=2, dis=True, dsn=1)]
    text = render_standard(segs, 2)
    assert "#EXT-X-VERSION:6" in text
    pl = m3u8.loads(text)
    assert [s.uri for s in pl.segments] == ["seg000000.m4s", "seg000001.m4s", "seg000002.m4s"]
    assert [s.init_section.uri for s in pl.segments] == ["init000000.mp4", "init000000.mp4", "init000002.mp4"]
    assert text.count("#EXT-X-MAP") == 2


def test_ll_playlist_tags_parts_and_hint() -> None:
    segs = [seg(i) for i in range(7)]
    open_seg = seg(7, parts=2, complete=False)
    text = render_ll(segs, open_seg, 2, 0.33333, "part000007.2.m4s")
    assert "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.000" in text
    assert "#EXT-X-PART-INF:PART-TARGET=0.33333" in text
    assert text.rstrip().endswith('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part000007.2.m4s"')
    pl = m3u8.loads(text)
    assert pl.server_control.can_block_reload == "YES"
    assert pl.part_inf.part_target == pytest.approx(0.33333)
    assert pl.preload_hint.uri == "part000007.2.m4s"
    with_parts = [s.uri for s in pl.segments if s.parts]
    # parts only for segments ending within 3 target durations (6 s) of the live edge; the open
    # segment holds 2 s of parts, so segment 4 (ending 6 s back) has none
    assert with_parts == ["seg000005.m4s", "seg000006.m4s", None]
    last = pl.segments[-1]
    assert [p.uri for p in last.parts] == ["part000007.0.m4s", "part000007.1.m4s"]
    assert last.parts[0].independent == "YES" and last.parts[1].independent is None
    assert text.count("#EXT-X-MAP") == 1


def test_ll_open_segment_without_parts_is_not_listed() -> None:
    text = render_ll([seg(0)], seg(1, parts=0, complete=False), 2, 0.333, "part000001.0.m4s")
    assert text.count("#EXT-X-PROGRAM-DATE-TIME") == 1
    assert "part000001.0.m4s" in text.splitlines()[-1]


def test_empty_playlists_are_refused() -> None:
    with pytest.raises(ValueError):
        render_standard([], 2)
    with pytest.raises(ValueError):
        render_ll([], None, 2, 0.333, None)
