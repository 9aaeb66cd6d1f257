"""RTSP/RTSPS pull against GStreamer's RTSP server (gst-rtsp-server, a peer no one here wrote):
digest auth, TLS with a self-signed certificate, H.264 and H.265, file passthrough, reconnects,
bad credentials and a URL that answers with HTML."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import pytest

from services.common import codec, h264, subjects
from services.common.bus import Bus
from services.common.registry import Device, Registry
from services.common.settings import Settings
from services.ingest.backoff import Backoff
from services.ingest.rtsp import RtspSource, with_credentials
from tests.ingest.conftest import RtspServer, running_ingest, wait_for
from tests.ingest.test_publisher import Tap
from tests.support.media import BUNNY, clip_frames, decode_count
from tests.support.nats import free_port


async def _run(src: RtspSource) -> asyncio.Task[None]:
    return asyncio.create_task(src.run())


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_digest_auth_h264_frames_match_and_decode(bus: Bus, rtsp_server: Callable[..., RtspServer]) -> None:
    srv = rtsp_server("--user", "cam", "--password", "p@ss w:rd", "--num-buffers", "90", "--keyint", "30")
    tap = await Tap().start(bus, "cam1")
    src = RtspSource(bus, "cam1", with_credentials(srv.url, "cam", "p@ss w:rd"), "ing", timeout_s=5)
    task = await _run(src)
    try:
        await wait_for(lambda: any(e["type"] == "down" for e in tap.events), 20)
    finally:
        await _cancel(task)
    assert tap.events[0]["type"] == "up"
    frames = tap.frames
    # The server encoded 90 frames and GStreamer's own rtspsrc receives all 90; FFmpeg's RTSP
    # demuxer reports end-of-stream without the last live frame when the server ends the session
    # (measured), so 89 reach ingest: every frame but the last, none lost in between, none split
    # (each IDR is two slices with SPS/PPS before each, which FFmpeg hands over as two packets).
    assert len(frames) == 89
    assert [f.seq for f in frames] == list(range(1, 90))
    assert [f.pts for f in frames] == [i * 3000 for i in range(89)]
    assert [i for i, f in enumerate(frames) if f.key] == [0, 30, 60]
    assert all({7, 8, 5} <= set(h264.nal_types(f.data)) for f in frames if f.key)
    assert decode_count(frames) == 89
    info = tap.infos[0]
    assert (info["codec"], info["width"], info["height"], info["source"]) == ("h264", 640, 480, "rtsp")


async def test_recorded_file_is_passed_through_byte_for_byte(bus: Bus, rtsp_server: Callable[..., RtspServer]) -> None:
    """No encoder anywhere: the server sends the clip's samples, the bus must carry the same NAL
    units (ingest never re-encodes)."""
    srv = rtsp_server("--file", str(BUNNY))
    tap = await Tap().start(bus, "clip")
    src = RtspSource(bus, "clip", srv.url, "ing")
    task = await _run(src)
    try:
        await wait_for(lambda: any(e["type"] == "down" for e in tap.events), 20)
    finally:
        await _cancel(task)
    ref = clip_frames(BUNNY)

    def vcl(data: bytes) -> list[bytes]:
        return [n for n in h264.iter_nals(data) if h264.nal_type(n) in (1, 5)]

    assert len(tap.frames) == len(ref) == 132
    assert [vcl(f.data) for f in tap.frames] == [vcl(f.data) for f in ref]
    assert decode_count(tap.frames) == 132


async def test_h265_source(bus: Bus, rtsp_server: Callable[..., RtspServer]) -> None:
    srv = rtsp_server("--codec", "h265", "--num-buffers", "45", "--keyint", "15", "--width", "320", "--height", "240")
    tap = await Tap().start(bus, "hevc")
    task = await _run(RtspSource(bus, "hevc", srv.url, "ing"))
    try:
        await wait_for(lambda: any(e["type"] == "down" for e in tap.events), 20)
    finally:
        await _cancel(task)
    assert tap.infos[0]["codec"] == "h265"
    assert {h264.H265_VPS, h264.H265_SPS, h264.H265_PPS} <= set(h264.nal_types(tap.infos[-1]["config"], "h265"))
    frames = tap.frames
    assert len(frames) == 44  # 45 encoded; the last is lost at end-of-stream (see the H.264 test)
    assert [f.pts for f in frames] == [i * 3000 for i in range(44)]
    assert [i for i, f in enumerate(frames) if f.key] == [0, 15, 30]
    dec = av.CodecContext.create("hevc", "r")
    assert sum(len(dec.decode(av.Packet(f.data))) for f in frames) + len(dec.decode(None)) == 44


async def test_wrong_password_gives_a_clear_error_without_the_secret(
    bus: Bus, rtsp_server: Callable[..., RtspServer], caplog: pytest.LogCaptureFixture
) -> None:
    srv = rtsp_server("--user", "cam", "--password", "right")
    src = RtspSource(bus, "cam2", with_credentials(srv.url, "cam", "Wr0ngSecret"), "ing", backoff=Backoff(5, 5))
    caplog.set_level(logging.INFO)
    task = await _run(src)
    try:
        await wait_for(lambda: src.health.state == "error", 15)
    finally:
        await _cancel(task)
    assert "401" in src.health.error and "authentication failed" in src.health.error
    assert f"rtsp://cam:****@127.0.0.1:{srv.port}/live" in src.health.error
    assert "Wr0ngSecret" not in src.health.error and "Wr0ngSecret" not in caplog.text


async def test_reconnects_forever_from_a_failed_first_connect_and_after_a_restart(
    bus: Bus, rtsp_server: Callable[..., RtspServer]
) -> None:
    port = free_port()
    tap = await Tap().start(bus, "cam3")
    src = RtspSource(bus, "cam3", f"rtsp://127.0.0.1:{port}/live", "ing", timeout_s=3)
    task = await _run(src)
    try:
        await wait_for(lambda: src.health.state == "error" and src.connects >= 2, 10)  # refused, retried
        assert "refused" in src.health.error.lower()
        srv = rtsp_server("--fps", "30", port=port)
        await wait_for(lambda: len(tap.frames) > 10, 15)
        assert [e["type"] for e in tap.events] == ["up"]
        srv.stop()
        await wait_for(lambda: any(e["type"] == "down" for e in tap.events), 10)
        await asyncio.sleep(1.5)
        n = len(tap.frames)
        rtsp_server("--fps", "30", port=port)
        back = asyncio.get_running_loop().time()
        await wait_for(lambda: len(tap.frames) > n, 15)
        assert asyncio.get_running_loop().time() - back < 5.0
    finally:
        await _cancel(task)
    kinds = [(e["type"], e["epoch"]) for e in tap.events]
    assert kinds[:4] == [("up", 1), ("down", 1), ("up", 2), ("discontinuity", 2)]
    first_epoch2 = next(f for f in tap.frames[n:])
    assert first_epoch2.key  # the new epoch starts at a keyframe


async def test_a_stalled_server_times_out_and_the_pull_recovers(
    bus: Bus, rtsp_server: Callable[..., RtspServer]
) -> None:
    """SIGSTOP freezes the server mid-stream (TCP stays open, nothing is sent): FFmpeg's
    ``timeout`` (3 s here) ends the read - measured: after about twice the timeout, FFmpeg waits
    once more while ending the session - and the pull reconnects to a new server."""
    srv = rtsp_server("--fps", "30")
    tap = await Tap().start(bus, "cam5")
    src = RtspSource(bus, "cam5", srv.url, "ing", timeout_s=3, backoff=Backoff(0.5, 0.5))
    task = await _run(src)
    assert srv.proc is not None
    try:
        await wait_for(lambda: len(tap.frames) > 10, 15)
        os.kill(srv.proc.pid, signal.SIGSTOP)
        stopped = asyncio.get_running_loop().time()
        await wait_for(lambda: any(e["type"] == "down" for e in tap.events), 10)
        assert asyncio.get_running_loop().time() - stopped < 2 * 3 + 2
        assert "timed out" in src.health.error
        # the frozen server is replaced (after SIGCONT gst-rtsp-server answers the connections
        # queued while it was stopped with garbage for a while): the pull comes back
        port = srv.port
        srv.proc.kill()
        srv.stop()
        n = len(tap.frames)
        rtsp_server("--fps", "30", port=port)
        await wait_for(lambda: len(tap.frames) > n + 10, 20)
    finally:
        if srv.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(srv.proc.pid, signal.SIGCONT)
        await _cancel(task)
    assert [e["type"] for e in tap.events][:3] == ["up", "down", "up"]


async def _html_server() -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.read(4096), 5)
            body = b"<html><body><h1>Router login</h1></body></html>"
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1])


async def test_registry_camera_answering_html_errors_and_ingest_keeps_serving(settings: Settings, bus: Bus) -> None:
    html, port = await _html_server()
    try:
        beats: list[dict[str, Any]] = []

        async def on_beat(msg: Any) -> None:
            beats.append(codec.unpack_map(msg.data))

        await bus.subscribe(subjects.heartbeat("ingest", "test"), on_beat)
        await Registry(bus).put(Device(id="router", kind="rtsp", rtsp_url=f"rtsp://admin:hunter2@127.0.0.1:{port}/x"))
        async with running_ingest(settings):

            def failed() -> Any:
                for b in reversed(beats):
                    s = b.get("streams", {}).get("router")
                    if s and s["state"] == "error":
                        return s
                return None

            health = await wait_for(failed, 15)
            assert "hunter2" not in str(health)
            assert health["source"] == "rtsp"
            assert "did not answer as an RTSP server" in health["error"]
            assert f"rtsp://admin:****@127.0.0.1:{port}/x" in health["error"]
            reply = await bus.request_obj(subjects.INGEST_WHIP, {"stream": "x", "sdp": "not sdp"}, timeout=5)
            assert reply["ok"] is False and reply["status"] == 400  # still answering
    finally:
        html.close()


async def test_rtsps_printer_camera_from_status_with_self_signed_certificate(
    settings: Settings, bus: Bus, rtsp_server: Callable[..., RtspServer], tls_cert: tuple[Path, Path]
) -> None:
    cert, key = tls_cert
    srv = rtsp_server(
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        "--user",
        "bblp",
        "--password",
        "12345678",
        "--mount",
        "/streaming/live/1",
    )
    assert srv.url.startswith("rtsps://")
    await Registry(bus).put(Device(id="x1c", kind="bambu", host="127.0.0.1", serial="00M00A", access_code="12345678"))
    status_kv = await bus.kv(subjects.KV_STATUS)
    tap = await Tap().start(bus, "x1c")
    async with running_ingest(settings) as svc:
        await status_kv.put(
            "x1c", codec.pack({"id": "x1c", "camera": {"source": "rtsp", "url": srv.url, "disabled": False}})
        )
        await wait_for(lambda: len(tap.frames) >= 30, 20)
        assert tap.infos[0]["source"] == "rtsp" and tap.infos[0]["owner"] == "test"
        assert decode_count(tap.frames[:30]) == 30
        assert "x1c" in svc.load()["streams"]
        # the camera is switched off in the printer: the pull stops
        await status_kv.put(
            "x1c", codec.pack({"id": "x1c", "camera": {"source": "rtsp", "url": srv.url, "disabled": True}})
        )
        await wait_for(lambda: any(e["type"] == "down" for e in tap.events), 10)
        assert not svc.sources.running
