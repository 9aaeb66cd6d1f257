"""The whole stack on one machine, on real input, then faults (issue 9 part 4 and 5).

``camhub up --demo`` (embedded nats-server, the five services, the synthetic push camera and the
simulated printer over TLS MQTT) plus a GStreamer RTSP camera with digest auth and an aiortc WHIP
publisher. Viewers: PyAV and ffprobe on HLS/LL-HLS through the gateway, aiortc over WHEP. The
browser paths (hls.js, WHEP in Chromium) are covered on this same demo stack in ``tests/ui``.
Tests run in file order and share the stack: the fault tests come last.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time

import httpx
import pytest

from services.common import h264
from tests.e2e.conftest import RtspCamera, decode_segment, get_json, playlist, wait_for
from tests.support.media import encode_h264
from tests.support.procs import ping_services, wait_services
from tests.support.stack import UpStack
from tests.support.webrtc import WhepViewer, WhipPublisher

pytestmark = pytest.mark.timeout(120)
SERVICES = ("ingest", "hls", "control", "egress", "gateway")


def _stream(stack: UpStack, stream: str) -> dict[str, object]:
    return {s["stream"]: s for s in get_json(stack, "/api/streams")}[stream]  # type: ignore[no-any-return]


async def test_demo_camera_and_printer_are_live_within_15_s(stack: UpStack) -> None:
    def demo_live() -> bool:
        s = _stream(stack, "demo")
        return bool(s["up"]) and (s.get("fps") or 0) > 5  # type: ignore[operator]

    await wait_for(demo_live, 20, "the demo stream to be live")

    def printing() -> dict[str, object] | None:
        st = get_json(stack, "/api/printers/demo-printer/status")
        return st if st.get("online") and st.get("jobState") == "RUNNING" else None

    status = await wait_for(printing, 20, "the simulated printer to print")
    elapsed = time.monotonic() - stack.t0  # type: ignore[attr-defined]
    assert elapsed <= 15, f"demo took {elapsed:.1f} s to show video and a printing printer"
    assert isinstance(status["nozzleC"], int | float) and status["percent"] is not None
    playlist_ll = await wait_for(lambda: playlist(stack, "demo", "stream_ll.m3u8"), 10, "LL-HLS of the demo")
    assert "#EXT-X-PART:" in playlist_ll.raw


async def test_rtsp_camera_plays_over_hls_and_ll_hls(stack: UpStack, camera: RtspCamera) -> None:
    ts = await wait_for(lambda: playlist(stack, "garage").segments, 25, "TS segments of the RTSP camera")
    pictures = decode_segment(stack, "garage", ts[-1].uri)
    assert pictures >= 20  # 1 s segments at 25 fps, cut at IDRs
    ll = playlist(stack, "garage", "stream_ll.m3u8")
    init = httpx.get(f"{stack.http}/hls/garage/{ll.segment_map[0].uri}", timeout=10).content
    assert decode_segment(stack, "garage", ll.segments[-1].uri, init) >= 20
    info = _stream(stack, "garage")
    assert info["codec"] == "h264" and info["width"] == 640 and info["source"] == "rtsp"
    # the password never comes back from the API
    cams = get_json(stack, "/api/cameras")
    assert "s3cret-pass" not in json.dumps(cams)


async def test_whep_viewer_gets_the_rtsp_camera(stack: UpStack, camera: RtspCamera) -> None:
    await wait_for(lambda: _stream(stack, "garage")["up"], 25, "the RTSP camera to be up")
    viewer = WhepViewer(stack.http, "garage")
    try:
        assert await viewer.start() == 201, viewer.error
        await viewer.wait_frames(25, timeout=10)
        first = viewer.frames[0][1]
        assert first.keyframe and 7 in h264.nal_types(first.data), "a new viewer starts at an IDR with its SPS"
    finally:
        await viewer.close()


async def test_whip_publisher_reaches_a_whep_viewer_unchanged(stack: UpStack) -> None:
    frames = encode_h264(90, width=320, height=240, gop=30)
    pub = WhipPublisher(stack.http, "porch", frames)
    viewer: WhepViewer | None = None
    try:
        assert await pub.start() == 201
        await wait_for(lambda: _stream(stack, "porch")["up"], 15, "the WHIP stream to go up")
        viewer = WhepViewer(stack.http, "porch")
        assert await viewer.start() == 201, viewer.error
        await viewer.wait_frames(30, timeout=10)
        sent = {tuple(h264.iter_nals(f.data)) for f in frames}
        got = [tuple(h264.iter_nals(ef.data)) for _, ef in viewer.frames]
        matched = sum(1 for g in got if g in sent)
        assert matched >= 0.9 * len(got), f"only {matched}/{len(got)} access units arrived byte-exact"
    finally:
        if viewer:
            await viewer.close()
        await pub.close()


async def test_printer_status_streams_and_commands_round_trip(stack: UpStack) -> None:
    events: list[dict[str, object]] = []

    async def follow() -> None:
        while True:  # the demo printer registers itself a moment after the stack is up
            async with (
                httpx.AsyncClient(base_url=stack.http, timeout=None) as client,
                client.stream("GET", "/api/printers/demo-printer/status/stream") as r,
            ):
                if r.status_code != 200:
                    await asyncio.sleep(0.5)
                    continue
                event = ""
                async for line in r.aiter_lines():
                    if line.startswith("event:"):
                        event = line.split(":", 1)[1].strip()
                    elif line.startswith("data:") and event == "status":
                        events.append(json.loads(line[5:]))

    task = asyncio.create_task(follow())
    try:
        await wait_for(lambda: events or (task.done() and task.result()), 20, "the first SSE status")
        await wait_for(lambda: events[-1].get("jobState") == "RUNNING", 30, "the demo job to run")
        async with httpx.AsyncClient(base_url=stack.http, timeout=15) as client:
            r = await client.post("/api/printers/demo-printer/command", json={"type": "pause"})
            assert r.status_code == 200 and r.json() == {"ok": True}, r.text
            await wait_for(lambda: events[-1].get("jobState") == "PAUSE", 10, "PAUSE over SSE")
            r = await client.post("/api/printers/demo-printer/command", json={"type": "resume"})
            assert r.status_code == 200, r.text
            await wait_for(lambda: events[-1].get("jobState") == "RUNNING", 10, "RUNNING over SSE")
            r = await client.post("/api/printers/demo-printer/command", json={"type": "light", "on": False})
            assert r.status_code == 200, r.text
            await wait_for(lambda: events[-1].get("light") == "off", 10, "light off over SSE")
            r = await client.post("/api/printers/demo-printer/command", json={"type": "warp"})
            assert r.status_code in (400, 422) and r.json()["ok"] is False
    finally:
        task.cancel()


async def test_each_service_is_back_within_3_s_of_sigkill(stack: UpStack) -> None:
    before = playlist(stack, "demo").media_sequence
    for name in SERVICES:
        replies = await ping_services(stack.url, 0.3)
        pid = next(int(r["metadata"]["pid"]) for r in replies if r.get("name") == f"camhub-{name}")
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        while True:
            replies = await ping_services(stack.url, 0.2)
            pids = [int(r["metadata"]["pid"]) for r in replies if r.get("name") == f"camhub-{name}"]
            if pids and pid not in pids:
                break
            assert time.monotonic() - killed < 3.0, f"{name} was not back within 3 s"
    await wait_for(lambda: httpx.get(f"{stack.http}/readyz", timeout=2).status_code == 200, 10, "readyz")
    # viewers recover: the playlist moves on without restarting the media sequence
    after = await wait_for(
        lambda: (pl := playlist(stack, "demo")).media_sequence > before and pl, 20, "the demo playlist to advance"
    )
    assert after.media_sequence > before
    viewer = WhepViewer(stack.http, "demo")
    try:
        assert await viewer.start() == 201, viewer.error
        await viewer.wait_frames(10, timeout=10)
    finally:
        await viewer.close()


async def test_nats_server_restart_keeps_registry_and_streams(stack: UpStack) -> None:
    nats = [p for p in stack.descendants() if p.name() == "nats-server"]
    assert len(nats) == 1
    nats[0].kill()
    await asyncio.sleep(1)
    await wait_services(stack.url, set(SERVICES), 20)
    await wait_for(lambda: httpx.get(f"{stack.http}/readyz", timeout=2).status_code == 200, 20, "readyz")
    cams = {c["id"] for c in get_json(stack, "/api/cameras")}
    assert {"demo", "garage"} <= cams
    assert "demo-printer" in {p["id"] for p in get_json(stack, "/api/printers")}
    seq = playlist(stack, "demo").media_sequence
    await wait_for(lambda: playlist(stack, "demo").media_sequence > seq, 20, "HLS to advance after the restart")


async def test_camera_outage_of_20_s_resumes_with_a_discontinuity(stack: UpStack, camera: RtspCamera) -> None:
    await wait_for(lambda: playlist(stack, "garage").segments, 20, "garage segments")
    epoch = int(_stream(stack, "garage")["epoch"])  # type: ignore[call-overload]
    camera.stop()
    await wait_for(lambda: not _stream(stack, "garage")["up"], 20, "the garage stream to go down")
    await asyncio.sleep(20)
    camera.start()
    back = time.monotonic()
    await wait_for(lambda: _stream(stack, "garage")["up"], 40, "the garage stream to come back")
    reconnect = time.monotonic() - back
    assert int(_stream(stack, "garage")["epoch"]) > epoch  # type: ignore[call-overload]
    seq = playlist(stack, "garage").media_sequence

    def resumed() -> bool:
        pl = playlist(stack, "garage")
        return pl.media_sequence >= seq + 2 and "#EXT-X-DISCONTINUITY" in pl.raw  # type: ignore[attr-defined]

    await wait_for(resumed, 20, "new segments after a discontinuity")
    assert reconnect < 35, f"ingest took {reconnect:.1f} s to reconnect after the camera was back"


def test_stack_exits_cleanly_on_ctrl_c(stack: UpStack, camera: RtspCamera) -> None:
    pids = [p.pid for p in stack.descendants()]
    assert stack.stop() == 0, stack.tail()
    time.sleep(0.5)
    import psutil

    left = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert left == [], subprocess.run(["ps", "-fp", ",".join(map(str, left))], capture_output=True, text=True).stdout
