"""Pure tests of the relay's message format and per-viewer queue policy (no sockets).

The frames are real libx264 output, so the keyframe flags come from a real encoder.
"""

from __future__ import annotations

import base64
import json

import pytest

from services.common import h264
from services.common.streams import StreamInfo
from services.gateway.fanout import Offer, ViewerQueue
from services.gateway.wire import HEADER_SIZE, WireError, info_message, pack_frame, unpack_frame
from tests.support.media import encode_h264


def test_header_layout_is_the_documented_16_bytes() -> None:
    msg = pack_frame("h264", 0x0102030405060708, True, b"\x00\x00\x00\x01\x65")
    assert HEADER_SIZE == 16
    assert msg[:2] == b"CH" and msg[2] == 1 and msg[3] == 1 and msg[4] == 1
    assert msg[5:8] == b"\x00\x00\x00"
    assert msg[8:16] == bytes([1, 2, 3, 4, 5, 6, 7, 8])
    assert msg[16:] == b"\x00\x00\x00\x01\x65"


@pytest.mark.parametrize(
    "codec,cid", [("h264", 1), ("h265", 2), ("vp8", 3), ("vp9", 4), ("av1", 5), ("jpeg", 6), ("webp", 7)]
)
def test_codec_ids_round_trip(codec: str, cid: int) -> None:
    msg = pack_frame(codec, 90_000, False, b"x")
    assert msg[4] == cid and msg[3] == 0
    back = unpack_frame(msg)
    assert (back.codec, back.pts, back.key, back.data) == (codec, 90_000, False, b"x")


def test_bad_messages_raise() -> None:
    with pytest.raises(WireError):
        pack_frame("mjpeg2000", 0, True, b"")
    with pytest.raises(WireError):
        unpack_frame(b"CH\x01")
    with pytest.raises(WireError):
        unpack_frame(b"XX" + bytes(14))
    with pytest.raises(WireError):
        unpack_frame(b"CH\x01\x00\x63" + bytes(11))


def test_info_from_stream_info_and_from_a_keyframe() -> None:
    frames = encode_h264(2)
    config = h264.parameter_sets(frames[0].data)
    info = StreamInfo(stream="cam1", codec="h264", width=320, height=240, fps=30, config=config, epoch=3)
    body = json.loads(info_message("cam1", info))
    assert body == {
        "type": "info",
        "stream": "cam1",
        "codec": "h264",
        "width": 320,
        "height": 240,
        "fps": 30.0,
        "epoch": 3,
        "config": base64.b64encode(config).decode(),
    }
    guessed = json.loads(info_message("cam1", None, frames[0]))
    assert guessed["codec"] == "h264" and base64.b64decode(guessed["config"]) == config


def test_viewer_starts_at_a_keyframe() -> None:
    q = ViewerQueue(max_frames=8)
    assert q.offer(b"p", key=False, now=0) is Offer.SKIPPED
    assert q.offer(b"k", key=True, now=0) is Offer.QUEUED
    assert q.offer(b"p", key=False, now=0) is Offer.QUEUED
    assert [q.pop(), q.pop(), q.pop()] == [b"k", b"p", None]


def test_full_queue_drops_until_the_next_keyframe_which_flushes_stale_frames() -> None:
    q = ViewerQueue(max_frames=3, max_behind_s=10)
    q.control("info")
    for m, k in ((b"k1", True), (b"p1", False)):
        assert q.offer(m, k, 0) is Offer.QUEUED
    assert q.offer(b"p2", False, 0) is Offer.DROPPED  # full: 3 items
    assert q.offer(b"p3", False, 0) is Offer.SKIPPED  # after a gap, wait for a keyframe
    assert q.offer(b"k2", True, 1) is Offer.DROPPED  # flushes k1, p1; keeps the info text
    assert [q.pop(), q.pop(), q.pop()] == ["info", b"k2", None]
    assert q.dropped == 3


def test_byte_limit_bounds_the_queue() -> None:
    q = ViewerQueue(max_frames=100, max_bytes=1000)
    assert q.offer(b"k" * 600, True, 0) is Offer.QUEUED
    assert q.offer(b"p" * 600, False, 0) is Offer.DROPPED
    assert q.queued_bytes == 600


def test_a_viewer_that_stays_behind_is_too_slow_and_one_that_catches_up_is_not() -> None:
    stuck = ViewerQueue(max_frames=2, max_behind_s=1.0)
    stuck.offer(b"k", True, 0.0)
    stuck.offer(b"p", False, 0.0)
    assert stuck.offer(b"p", False, 0.1) is Offer.DROPPED
    assert stuck.offer(b"p", False, 0.5) is Offer.SKIPPED
    assert stuck.offer(b"p", False, 1.2) is Offer.TOO_SLOW  # still full after max_behind_s

    hiccup = ViewerQueue(max_frames=2, max_behind_s=1.0)
    hiccup.offer(b"k", True, 0.0)
    hiccup.offer(b"p", False, 0.0)
    assert hiccup.offer(b"p", False, 0.1) is Offer.DROPPED
    hiccup.pop(), hiccup.pop()  # the viewer reads again
    assert hiccup.offer(b"k", True, 0.5) is Offer.QUEUED
    hiccup.pop()
    assert hiccup.offer(b"k", True, 0.9) is Offer.QUEUED  # a whole GOP without a drop: caught up
    assert hiccup.behind_since is None
    hiccup.pop()
    assert hiccup.offer(b"p", False, 5.0) is Offer.QUEUED


def test_real_gop_through_a_slow_viewer_stays_keyframe_aligned() -> None:
    frames = encode_h264(90, gop=30)
    q = ViewerQueue(max_frames=10, max_behind_s=60)
    out: list[bool] = []
    for i, f in enumerate(frames):
        q.offer(f.data, f.key, i / 30)
        if i % 3 == 0:  # reads one message per three frames
            item = q.pop()
            if isinstance(item, bytes):
                out.append(h264.is_keyframe(item))
    assert out[0] is True
    assert q.dropped > 0
