"""Blocking playlist reload rules (RFC 8216bis 6.2.5.2), against a real packager's window."""

from __future__ import annotations

import pytest

from services.hls.blocking import DirectiveError, Directives, advance_part_limit, parse_directives, ready
from services.hls.packager import StreamPackager
from tests.hls.support import feed, looped, x264


@pytest.fixture(scope="module")
def packager() -> StreamPackager:
    """150 frames at 30 fps, GOP 30: segments 0 and 1 complete (6 parts each), segment 2 open
    with 2 complete parts (frames 120-139) and part 2 being built."""
    pk = StreamPackager("cam1")
    pk.set_source("h264", 320, 240)
    feed(pk, looped(x264(), 150))
    assert (pk.last_complete_msn(), pk.open_msn(), pk.open_parts()) == (1, 2, 2)
    return pk


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, Directives()),
        ({"_HLS_msn": "5"}, Directives(5)),
        ({"_HLS_msn": "5", "_HLS_part": "0"}, Directives(5, 0)),
        ({"_HLS_msn": "5", "_HLS_skip": "YES"}, Directives(5)),
    ],
)
def test_parse_directives(query: dict[str, str], expected: Directives) -> None:
    assert parse_directives(query) == expected


@pytest.mark.parametrize(
    "query",
    [
        {"_HLS_part": "1"},  # part without msn
        {"_HLS_msn": "-1"},
        {"_HLS_msn": "abc"},
        {"_HLS_msn": "1.5"},
        {"_HLS_msn": ""},
        {"_HLS_msn": "9" * 40},
        {"_HLS_msn": "1", "_HLS_part": "x"},
    ],
)
def test_parse_directives_rejects_malformed(query: dict[str, str]) -> None:
    with pytest.raises(DirectiveError) as err:
        parse_directives(query)
    assert err.value.status == 400


def test_advance_part_limit() -> None:
    assert advance_part_limit(1 / 3) == pytest.approx(9)
    assert advance_part_limit(1.0) == 3


def test_ready_for_complete_and_open(packager: StreamPackager) -> None:
    pt = packager.part_target
    assert ready(Directives(), packager, pt)
    assert ready(Directives(1), packager, pt)  # segment 1 complete
    assert not ready(Directives(2), packager, pt)  # segment 2 still open
    assert ready(Directives(2, 1), packager, pt)  # part 2.1 exists
    assert not ready(Directives(2, 2), packager, pt)  # the part being built
    assert not ready(Directives(3, 0), packager, pt)


def test_part_index_past_a_complete_segment_means_the_next_segment(packager: StreamPackager) -> None:
    pt = packager.part_target
    assert ready(Directives(1, 6), packager, pt)  # = (2, 0), exists
    assert ready(Directives(1, 7), packager, pt)  # = (2, 1)
    assert not ready(Directives(1, 8), packager, pt)  # = (2, 2), being built


def test_old_segments_are_ready(packager: StreamPackager) -> None:
    assert ready(Directives(0, 3), packager, packager.part_target)
    assert ready(Directives(0), packager, packager.part_target)


@pytest.mark.parametrize("d", [Directives(4), Directives(2, 11), Directives(3, 9)])
def test_too_far_ahead_is_400(packager: StreamPackager, d: Directives) -> None:
    with pytest.raises(DirectiveError):
        ready(d, packager, packager.part_target)


def test_within_limits_is_not_an_error(packager: StreamPackager) -> None:
    assert not ready(Directives(3), packager, packager.part_target)  # last + 2
    assert not ready(Directives(2, 10), packager, packager.part_target)  # 9 parts ahead
    assert not ready(Directives(3, 8), packager, packager.part_target)
