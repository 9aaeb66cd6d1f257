"""The Bambu P1/A1 port-6000 camera: protocol parser, the TLS client against the simulator
(real TLS, real MJPEG encoder), wrong access codes, junk and plain-TCP peers, and the printer
flow through the ingest service (registry + control's status -> JPEG frames on the bus)."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from services.common import codec, subjects
from services.common.bus import Bus
from services.common.registry import Device, Registry
from services.common.settings import Settings
from services.ingest.backoff import Backoff
from services.ingest.bambu_camera import BambuCameraSource
from services.ingest.bambu_proto import BambuProtocolError, FrameParser, auth_packet, frame_header, parse_auth
from services.sim.bambu_camera import CameraServer
from tests.ingest.conftest import running_ingest, wait_for
from tests.ingest.test_publisher import Tap
from tests.support.nats import free_port
from tests.support.procs import ROOT


def test_auth_packet_layout() -> None:
    pkt = auth_packet("12345678")
    assert len(pkt) == 80
    assert pkt[:16] == bytes.fromhex("40000000003000000000000000000000")
    assert pkt[16:20] == b"bblp" and pkt[20:48] == b"\x00" * 28
    assert pkt[48:56] == b"12345678" and pkt[56:] == b"\x00" * 24
    assert parse_auth(pkt) == ("bblp", "12345678")
    with pytest.raises(BambuProtocolError):
        parse_auth(b"\x00" * 80)
    with pytest.raises(ValueError):
        auth_packet("x" * 33)


def test_frame_parser_is_incremental_and_strict() -> None:
    jpeg = b"\xff\xd8\xff\xe0" + b"x" * 100 + b"\xff\xd9"
    stream = (frame_header(len(jpeg)) + jpeg) * 3
    parser = FrameParser()
    got = []
    for i in range(0, len(stream), 7):  # TLS records of any size
        got += parser.feed(stream[i : i + 7])
    assert got == [jpeg] * 3
    assert frame_header(10)[:12] == bytes.fromhex("0a0000000000000001000000")
    for junk in (
        frame_header(0),
        frame_header(64 * 1024 * 1024),
        frame_header(10) + b"GET / HTTP",
        frame_header(6) + b"\xff\xd8abcd",  # no EOI
    ):
        with pytest.raises(BambuProtocolError):
            FrameParser().feed(junk)


async def test_client_receives_jfif_frames_from_the_simulator(bus: Bus) -> None:
    cam = CameraServer("12345678", port=0, fps=10, width=640, height=360)
    port = await cam.start()
    tap = await Tap().start(bus, "p1s")
    src = BambuCameraSource(bus, "p1s", "127.0.0.1", port, "12345678", "ing")
    task = asyncio.create_task(src.run())
    try:
        await wait_for(lambda: len(tap.frames) >= 5, 15)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await cam.close()
    assert all(f.codec == "jpeg" and f.key and f.data.startswith(b"\xff\xd8\xff\xe0") for f in tap.frames)
    assert len({f.data for f in tap.frames}) == len(tap.frames)  # a moving picture
    assert (tap.infos[-1]["source"], tap.infos[-1]["width"], tap.infos[-1]["height"]) == ("bambu-jpeg", 640, 360)
    assert tap.events[-1]["type"] == "down"
    pts = [f.pts for f in tap.frames]
    assert pts == sorted(pts) and 0.05 * 90000 < (pts[-1] - pts[0]) / (len(pts) - 1) < 0.3 * 90000


async def test_wrong_access_code_is_reported_and_retried(bus: Bus) -> None:
    cam = CameraServer("12345678", port=0, fps=10)
    port = await cam.start()
    src = BambuCameraSource(bus, "p1p", "127.0.0.1", port, "00000000", "ing", backoff=Backoff(0.2, 0.2))
    task = asyncio.create_task(src.run())
    try:
        await wait_for(lambda: src.connects >= 2 and src.health.state == "error", 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await cam.close()
    assert "wrong access code" in src.health.error
    assert "00000000" not in src.health.error
    assert cam.sent == 0


async def _junk_server(tls: ssl.SSLContext | None, payload: bytes) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.read(80), 5)
            writer.write(payload)
            await writer.drain()
            await asyncio.sleep(2)
        except Exception:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    return server, int(server.sockets[0].getsockname()[1])


@pytest.mark.parametrize("junk", [os.urandom(4096), b"HTTP/1.1 400 Bad Request\r\n\r\n<html></html>" * 10])
async def test_a_peer_that_sends_junk_is_dropped_cleanly(bus: Bus, tls_cert: tuple[Path, Path], junk: bytes) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(tls_cert[0]), str(tls_cert[1]))
    server, port = await _junk_server(ctx, junk)
    src = BambuCameraSource(bus, "junk", "127.0.0.1", port, "12345678", "ing", backoff=Backoff(0.2, 0.2))
    task = asyncio.create_task(src.run())
    try:
        await wait_for(lambda: src.connects >= 2 and src.health.state == "error", 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        server.close()
    assert "does not speak the Bambu camera protocol" in src.health.error
    assert src.health.frames == 0


async def test_a_plain_tcp_peer_fails_the_tls_handshake(bus: Bus) -> None:
    server, port = await _junk_server(None, b"\x00" * 64)
    src = BambuCameraSource(bus, "plain", "127.0.0.1", port, "12345678", "ing", backoff=Backoff(5, 5))
    task = asyncio.create_task(src.run())
    try:
        await wait_for(lambda: src.health.state == "error", 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        server.close()
    assert f"127.0.0.1:{port}" in src.health.error


async def test_printer_camera_through_the_ingest_service(settings: Settings, bus: Bus, tmp_path: Path) -> None:
    """The simulator as its own process (``python -m services.sim.bambu_camera``), the printer in the
    registry, control's status saying ``bambu-jpeg``: frames reach the bus."""
    port = free_port()
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.sim.bambu_camera",
            "--port",
            str(port),
            "--access-code",
            "87654321",
            "--fps",
            "5",
            "--width",
            "320",
            "--height",
            "240",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        assert sim.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(sim.stdout.readline), 15)
        assert line.decode().startswith("READY")
        await Registry(bus).put(
            Device(
                id="a1mini", kind="bambu", host="127.0.0.1", serial="0300AA", access_code="87654321", camera_port=port
            )
        )
        tap = await Tap().start(bus, "a1mini")
        async with running_ingest(settings) as svc:
            status = await bus.kv(subjects.KV_STATUS)
            await status.put(
                "a1mini", codec.pack({"id": "a1mini", "camera": {"source": "bambu-jpeg", "url": "", "disabled": False}})
            )
            await wait_for(lambda: len(tap.frames) >= 3, 15)
            health = svc.load()["streams"]["a1mini"]
            assert health["source"] == "bambu-jpeg" and health["state"] == "up" and health["codec"] == "jpeg"
            await Registry(bus).delete("a1mini")
            await wait_for(lambda: not svc.sources.running, 10)
        assert tap.events[-1]["type"] == "down"
    finally:
        sim.terminate()
        sim.wait(5)
        if sim.stdout is not None:
            sim.stdout.close()
