"""WHEP end to end: the real egress (child process), a real nats-server, aiortc viewers.

Frames are published on the bus by the test as the ingest would (tests/egress/helpers.py:
libx264 / libvpx output, the recorded B-frame clip); the viewers are aiortc peer connections
whose passthrough decoder hands over the depacketized access units, so the tests compare bytes.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from typing import Any

from services.common import codec, subjects
from services.common.bus import Bus
from services.common.frames import Frame
from services.common.streams import HeartbeatBoard
from tests.egress.helpers import (
    AiortcViewer,
    FramePublisher,
    encode_h264_high,
    encode_vp8,
    nal_payloads,
)
from tests.support.media import BIKES, clip_frames


def _content(codec_name: str, data: bytes) -> Any:
    return nal_payloads(data) if codec_name == "h264" else data


def assert_contiguous_run(published: list[Frame], received: list[bytes], codec_name: str) -> int:
    """``received`` equals ``published[j:j+n]`` byte for byte (NAL payloads for H.264) for some j;
    returns j. The clip loops, so several j may fit; any one proves the bytes went through as is."""
    want = [_content(codec_name, d) for d in received]
    have = [_content(codec_name, f.data) for f in published]
    n = len(want)
    for j in range(len(have) - n + 1):
        if have[j] == want[0] and have[j : j + n] == want:
            return j
    for i, w in enumerate(want):  # say which AU differs, for the failure message
        if w not in have:
            raise AssertionError(f"received AU {i} ({len(received[i])} B) was never published")
    raise AssertionError("received AUs are not a contiguous run of the published ones (reordered or skipped)")


def rtp_deltas(viewer: AiortcViewer) -> list[int]:
    ts = [r.frame.timestamp for r in viewer.received]
    return [(b - a) % (1 << 32) for a, b in itertools.pairwise(ts)]


async def wait_for(cond: Any, timeout: float, what: str, interval: float = 0.1) -> float:
    """Poll ``cond()`` (sync or async) until true; returns the seconds it took. Raises TimeoutError."""
    start = time.monotonic()
    while True:
        value = cond()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what} not within {timeout} s")
        await asyncio.sleep(interval)


async def session_op(bus: Bus, sid: str, op: str) -> dict[str, Any]:
    return await bus.request_obj(subjects.webrtc_session(sid, op), {}, timeout=3)


async def test_h264_viewer_gets_the_published_access_units_byte_exact(bus: Bus, egress: Any) -> None:
    """A High-profile H.264 stream (as an RTSP camera sends it) reaches an aiortc viewer unchanged:
    keyframe first, every AU byte-exact (NAL payloads) and in order, RTP timestamps = PTS spacing."""
    pub = FramePublisher(bus, "cam1", encode_h264_high(60), 30)
    await pub.start()
    viewer = AiortcViewer()
    try:
        reply = await viewer.connect(bus, "cam1")
        assert reply["ok"], reply
        assert reply["codec"] == "h264" and re.fullmatch(r"[0-9a-f]{32}", reply["session"])
        assert "a=sendonly" in reply["sdp"] and "a=end-of-candidates" in reply["sdp"]
        await viewer.wait_frames(40, timeout=10)
        got = [r.frame for r in viewer.received]
        assert got[0].keyframe
        assert_contiguous_run([p.frame for p in pub.sent], [f.data for f in got], "h264")
        # first viewer of the stream: no GOP was cached, so no catch-up run; live spacing = 1/30 s
        assert set(rtp_deltas(viewer)) == {3000}
        stats = (await session_op(bus, viewer.session, "stats"))["stats"]
        assert stats["state"] == "connected" and stats["frames_sent"] >= 40 and stats["packets_sent"] > 40
        assert stats["frames_dropped"] == 0 and stats["latency_ms"]["n"] > 0
    finally:
        await viewer.close()
        await pub.stop()


async def test_vp8_viewer_gets_the_published_frames_byte_exact(bus: Bus, egress: Any) -> None:
    """A VP8 stream (what a browser WHIP publisher sends) goes out as is."""
    pub = FramePublisher(bus, "whip1", encode_vp8(60), 30, source="whip")
    await pub.start()
    viewer = AiortcViewer()
    try:
        reply = await viewer.connect(bus, "whip1")
        assert reply["ok"] and reply["codec"] == "vp8", reply
        assert "VP8/90000" in reply["sdp"] and "H264" not in reply["sdp"]
        await viewer.wait_frames(30, timeout=10)
        got = [r.frame for r in viewer.received]
        assert got[0].keyframe
        assert_contiguous_run([p.frame for p in pub.sent], [f.data for f in got], "vp8")
    finally:
        await viewer.close()
        await pub.stop()


async def test_bframe_clip_goes_out_in_decode_order_with_pts_timestamps(bus: Bus, egress: Any) -> None:
    """The recorded clip with B-frames: AUs in decode order, byte-exact; RTP timestamps follow PTS
    (RFC 6184: the sampling instant), so they are not monotonic, as in the source."""
    frames = clip_frames(BIKES, limit=75)
    pub = FramePublisher(bus, "bikes", frames, 25, width=640, height=272)
    await pub.start()
    viewer = AiortcViewer()
    try:
        assert (await viewer.connect(bus, "bikes"))["ok"]
        await viewer.wait_frames(30, timeout=10)
        got = [r.frame for r in viewer.received]
        j = assert_contiguous_run([p.frame for p in pub.sent], [f.data for f in got], "h264")
        sent = [p.frame for p in pub.sent][j : j + len(got)]
        want = [(b.pts - a.pts) % (1 << 32) for a, b in itertools.pairwise(sent)]
        assert rtp_deltas(viewer) == want
    finally:
        await viewer.close()
        await pub.stop()


async def test_new_viewer_starts_from_the_cached_gop_within_a_second(bus: Bus, egress: Any) -> None:
    """Instant start: a viewer joining mid-GOP is sent the cached GOP (IDR first, compressed to
    1 ms RTP spacing) and has video in < 1 s, and a keyframe-request event goes out for it."""
    pub = FramePublisher(bus, "cam2", encode_h264_high(120, gop=60), 30)  # one IDR every 2 s
    await pub.start()
    events: list[dict[str, Any]] = []

    async def on_event(msg: Any) -> None:
        events.append(codec.unpack_map(msg.data))

    await bus.subscribe(subjects.media_events("cam2"), on_event)
    first, second = AiortcViewer(), AiortcViewer()
    try:
        assert (await first.connect(bus, "cam2"))["ok"]
        await first.wait_frames(1, timeout=10)
        # join in the middle of a GOP: 20..40 frames after the last IDR
        await wait_for(lambda: 20 <= (len(pub.sent) % 60) <= 40, 5, "mid-GOP")
        last_key = next(p.frame for p in reversed(pub.sent) if p.frame.key)
        behind = len(pub.sent) - next(i for i in range(len(pub.sent) - 1, -1, -1) if pub.sent[i].frame.key)
        t0 = time.monotonic()
        assert (await second.connect(bus, "cam2"))["ok"]
        await second.wait_frames(1, timeout=5)
        took = second.received[0].at - t0
        assert took < 1.0, f"first AU after {took:.2f} s"
        assert second.received[0].frame.keyframe
        assert nal_payloads(second.received[0].frame.data) == nal_payloads(last_key.data)
        await second.wait_frames(behind + 5, timeout=5)
        deltas = rtp_deltas(second)
        assert deltas[: behind - 2] == [90] * (behind - 2), deltas[:behind]  # the catch-up run
        assert deltas[-3:] == [3000] * 3  # then live at the stream's pace
        kf = [e for e in events if e["type"] == "keyframe-request"]
        assert kf and kf[-1]["by"].startswith("egress/") and kf[-1]["reason"] == "viewer"
        stats = (await session_op(bus, second.session, "stats"))["stats"]
        assert stats["restarts"] == 1 and stats["frames_skipped"] == 0
    finally:
        await first.close()
        await second.close()
        await pub.stop()


async def test_viewer_pli_restarts_it_from_the_gop_and_requests_a_keyframe(bus: Bus, egress: Any) -> None:
    """RTCP PLI from the viewer (aiortc's own PLI sender): the egress re-sends the cached GOP
    (another keyframe arrives before the stream's next IDR) and publishes keyframe-request."""
    pub = FramePublisher(bus, "cam3", encode_h264_high(180, gop=180), 30)  # one IDR per 6 s
    await pub.start()
    events: list[dict[str, Any]] = []

    async def on_event(msg: Any) -> None:
        events.append(codec.unpack_map(msg.data))

    await bus.subscribe(subjects.media_events("cam3"), on_event)
    viewer = AiortcViewer()
    try:
        reply = await viewer.connect(bus, "cam3")
        await viewer.wait_frames(10, timeout=10)  # started at the first IDR
        await asyncio.sleep(1.2)  # past the per-stream keyframe-request rate limit
        assert sum(r.frame.keyframe for r in viewer.received) == 1
        ssrc = int(re.search(r"a=ssrc:(\d+) ", reply["sdp"]).group(1))  # type: ignore[union-attr]
        receiver = viewer.pc.getReceivers()[0]
        n = len(viewer.received)
        await receiver._send_rtcp_pli(ssrc)
        await viewer.wait_frames(n + 5, timeout=5)
        after = [r.frame for r in viewer.received[n:]]
        assert any(f.keyframe for f in after), "no keyframe after the PLI"
        await wait_for(lambda: any(e.get("reason") == "pli" for e in events), 3, "keyframe-request (pli)")
        stats = (await session_op(bus, viewer.session, "stats"))["stats"]
        assert stats["plis"] == 1 and stats["restarts"] == 2
        ts = [r.frame.timestamp for r in viewer.received]
        assert all(0 < (b - a) % (1 << 32) < (1 << 31) for a, b in itertools.pairwise(ts))
    finally:
        await viewer.close()
        await pub.stop()


async def test_viewer_counts_in_heartbeats_and_cleanup_on_close_and_delete(bus: Bus, egress: Any) -> None:
    """``viewers: {stream: n}`` / ``sessions`` in heartbeats; a viewer that closes its peer and one
    deleted over ``camhub.webrtc.session.<sid>.delete`` are gone within 5 s; ``patch`` is 422."""
    board = HeartbeatBoard()
    await board.start(bus)
    pub = FramePublisher(bus, "cam4", encode_h264_high(60), 30)
    await pub.start()
    v1, v2 = AiortcViewer(), AiortcViewer()
    try:
        assert (await v1.connect(bus, "cam4"))["ok"] and (await v2.connect(bus, "cam4"))["ok"]
        await v1.wait_frames(3)
        await v2.wait_frames(3)
        await wait_for(lambda: board.viewers("cam4") == 2, 3, "2 viewers in heartbeats")
        beat = next(b for b in board.live() if b["service"] == "egress")
        assert beat["sessions"] == 2 and beat["viewers"] == {"cam4": 2}
        patch = await session_op(bus, v1.session, "patch")
        assert patch["ok"] is False and patch["status"] == 422 and "trickle" in patch["error"]
        other = await bus.request_obj(subjects.webrtc_session(v1.session, "delete"), {"stream": "cam9"}, timeout=3)
        assert other["ok"] is False and other["status"] == 404  # /whep/cam9/<sid of cam4>: refused
        odd = await bus.request_obj(f"camhub.webrtc.session.{v1.session}.restart", {}, timeout=3)
        assert odd["ok"] is False and odd["status"] == 400

        await v1.close()
        took = await wait_for(lambda: board.viewers("cam4") == 1, 5, "viewer 1 cleaned up")
        assert took < 5
        try:
            await session_op(bus, v1.session, "stats")
            raise AssertionError("closed session still answers")
        except Exception as exc:
            assert type(exc).__name__ == "NoResponders"

        assert await session_op(bus, v2.session, "delete") == {"ok": True}
        await wait_for(lambda: board.viewers("cam4") == 0, 5, "deleted viewer cleaned up")
        await wait_for(lambda: v2.pc.connectionState == "closed", 5, "viewer 2 sees its peer closed")
    finally:
        await v1.close()
        await v2.close()
        await pub.stop()


async def test_publisher_down_pauses_viewers_and_they_resume_when_it_returns(bus: Bus, egress: Any) -> None:
    """Source down: the session reports ``paused`` and stays up; the source comes back with a new
    epoch and timestamps restarted at 0: the viewer resumes at its IDR, RTP time moves forward by
    about the wall-clock pause."""
    pub = FramePublisher(bus, "cam5", encode_h264_high(60), 30, source="whip")
    await pub.start()
    viewer = AiortcViewer()
    try:
        assert (await viewer.connect(bus, "cam5"))["ok"]
        await viewer.wait_frames(15)
        await pub.go_down()

        async def paused() -> bool:
            return bool((await session_op(bus, viewer.session, "stats"))["stats"]["state"] == "paused")

        await wait_for(paused, 3, "session paused")
        n = len(viewer.received)
        await asyncio.sleep(1.5)
        assert len(viewer.received) <= n + 1  # the jitter buffer may still release the last AU
        n = len(viewer.received)
        await pub.start(restart_pts=True)
        await viewer.wait_frames(n + 15, timeout=6)
        # aiortc's jitter buffer releases the last pre-pause AU only when the next one arrives, so
        # the resumed run starts at the one big RTP jump: about the 1.5 s+ of wall-clock pause
        deltas = rtp_deltas(viewer)
        k = next(i + 1 for i, d in enumerate(deltas) if d > 3000)
        assert k >= n - 1 and set(deltas[: k - 1]) == {3000}
        assert viewer.received[k].frame.keyframe
        assert 1.5 * 90_000 < deltas[k - 1] < 10 * 90_000, deltas[k - 1]
        assert set(deltas[k:]) == {3000}
        stats = (await session_op(bus, viewer.session, "stats"))["stats"]
        assert stats["state"] == "connected"
    finally:
        await viewer.close()
        await pub.stop()


async def test_frames_arriving_late_are_skipped_to_the_next_keyframe(bus: Bus, egress: Any) -> None:
    """Frames whose Camhub-Ts is 3 s older than usual (the egress is behind) are not sent; the
    viewer resumes at the next keyframe that arrives in time."""
    pub = FramePublisher(bus, "cam6", encode_h264_high(60, gop=30), 30)
    await pub.start()
    viewer = AiortcViewer()
    try:
        assert (await viewer.connect(bus, "cam6"))["ok"]
        await viewer.wait_frames(10)
        await wait_for(lambda: len(pub.sent) % 30 == 5, 3, "just after an IDR")
        first_late = len(pub.sent)
        pub.ts_offset_ns = -3_000_000_000
        await wait_for(lambda: len(pub.sent) >= first_late + 10, 3, "10 late frames")
        pub.ts_offset_ns = 0
        n_late = len(pub.sent) - first_late
        await wait_for(lambda: len(pub.sent) > first_late + 40, 4, "the next IDR and more")
        stats = (await session_op(bus, viewer.session, "stats"))["stats"]
        assert n_late - 1 <= stats["source_late"] <= n_late + 1
        deltas = rtp_deltas(viewer)
        k = next(i for i, d in enumerate(deltas) if d > 3000)  # the hole the skip left
        assert viewer.received[k + 1].frame.keyframe
        assert deltas[k] >= (n_late + 1) * 3000
    finally:
        await viewer.close()
        await pub.stop()
