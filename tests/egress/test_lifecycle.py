"""Session lifecycle with the real egress (child process): crashed viewers, a source that stays
away, session expiry (the VMS flow of shared/briefs/vms-webrtc-offer.md)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from services.common import subjects
from services.common.bus import Bus, NoResponders
from services.common.streams import HeartbeatBoard
from tests.egress.conftest import egress_process
from tests.egress.helpers import AiortcViewer, FramePublisher, encode_h264_high, encode_vp8
from tests.egress.test_whep import wait_for
from tests.support.nats import NatsServer
from tests.support.procs import ROOT, wait_services


async def test_killed_viewer_is_cleaned_up_within_5_s(bus: Bus, egress: Any, nats_server: NatsServer) -> None:
    """A viewer process SIGKILLed mid-stream (no DTLS close, no RTCP BYE) is dropped by the idle
    check (nothing received from it for CAMHUB_EGRESS_IDLE_SECONDS = 3 s) within 5 s."""
    board = HeartbeatBoard()
    await board.start(bus)
    pub = FramePublisher(bus, "cam1", encode_h264_high(60), 30)
    await pub.start()
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.egress.viewer_child", nats_server.url, "cam1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert child.stdout is not None
        line = (await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 20)).decode()
        assert line.startswith("PLAYING "), line
        sid = line.split()[1]
        await wait_for(lambda: board.viewers("cam1") == 1, 3, "viewer counted")
        child.kill()
        child.wait(5)
        killed = time.monotonic()
        await wait_for(lambda: board.viewers("cam1") == 0, 8, "killed viewer cleaned up")
        assert time.monotonic() - killed < 5.0
        with pytest.raises(NoResponders):
            await bus.request_obj(subjects.webrtc_session(sid, "stats"), {}, timeout=2)
        await wait_for(lambda: "nothing received from the viewer" in egress.log(), 3, "close reason logged")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)
        await pub.stop()


async def test_session_ends_when_the_source_stays_down(bus: Bus, nats_server: NatsServer, tmp_path: Path) -> None:
    """With CAMHUB_EGRESS_PAUSE_SECONDS=1.5 a paused session (source down) is closed, cleanly:
    the viewer sees its peer connection closed."""
    proc = egress_process(nats_server, tmp_path, CAMHUB_EGRESS_PAUSE_SECONDS="1.5").start()
    pub = FramePublisher(bus, "cam1", encode_h264_high(60), 30)
    viewer = AiortcViewer()
    try:
        await wait_services(nats_server.url, {"egress"}, timeout=20)
        await pub.start()
        assert (await viewer.connect(bus, "cam1"))["ok"]
        await viewer.wait_frames(5)
        await pub.go_down()
        down = time.monotonic()
        await wait_for(lambda: viewer.pc.connectionState == "closed", 6, "viewer closed by the egress")
        assert time.monotonic() - down >= 1.5
        await wait_for(lambda: "source has been down" in proc.log(), 5, "close reason logged")
    finally:
        await viewer.close()
        await pub.stop()
        proc.stop()


async def test_vms_session_expires_at(bus: Bus, egress: Any) -> None:
    """The VMS offer path: ``expires_at`` (ms) rides the WHEP request, comes back in the reply
    and the session is closed once it passes."""
    pub = FramePublisher(bus, "cam1", encode_h264_high(60), 30)
    await pub.start()
    viewer = AiortcViewer()
    try:
        expires = int(time.time() * 1000) + 2500
        reply = await viewer.connect(bus, "cam1", expires_at=expires)
        assert reply["ok"] and reply["expires_at"] == expires
        await viewer.wait_frames(5)
        stats = (await bus.request_obj(subjects.webrtc_session(viewer.session, "stats"), {}))["stats"]
        assert stats["expires_at"] == expires and stats["state"] == "connected"
        await wait_for(lambda: viewer.pc.connectionState == "closed", 6, "expired session closed")
        assert time.time() * 1000 >= expires
    finally:
        await viewer.close()
        await pub.stop()


async def test_codec_change_ends_viewers_of_the_old_codec(bus: Bus, egress: Any) -> None:
    """A WHIP publisher reconnects with VP8 instead of H.264: WHEP cannot renegotiate, so the
    H.264 viewer's session ends cleanly and a new viewer gets VP8."""
    vp8 = encode_vp8(60)  # before any viewer: encoding blocks this loop, the viewer's RTCP too
    pub = FramePublisher(bus, "whip1", encode_h264_high(60), 30, source="whip")
    await pub.start()
    viewer, again = AiortcViewer(), AiortcViewer()
    try:
        assert (await viewer.connect(bus, "whip1"))["codec"] == "h264"
        await viewer.wait_frames(5)
        await pub.go_down()
        pub = FramePublisher(bus, "whip1", vp8, 30, source="whip")
        pub.epoch = 1
        await pub.start(restart_pts=True)
        await wait_for(lambda: viewer.pc.connectionState == "closed", 5, "the H.264 session closed")
        assert (await again.connect(bus, "whip1"))["codec"] == "vp8"
        await again.wait_frames(5)
    finally:
        await viewer.close()
        await again.close()
        await pub.stop()
    # the egress logs the reason once its side of the close is done
    try:
        await wait_for(lambda: "codec changed to vp8" in egress.log(), 5, "close reason logged")
    except TimeoutError:
        raise AssertionError(egress.log()[-3000:]) from None
