"""End to end through the gateway with the real services as child processes on a real nats-server:
push -> ingest -> WebSocket viewer; H.264 push -> ingest -> hls -> HLS over HTTP (ffprobe decodes a
segment); WHIP from an aiortc publisher -> ingest -> WebSocket viewer; WHEP and the VMS offer ->
egress -> an aiortc viewer that receives frames; printer commands -> control -> the printer
simulator.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import m3u8
import pytest
from websockets.asyncio.client import connect

from services.common.h264 import is_keyframe
from services.gateway.wire import unpack_frame
from tests.gateway.conftest import RunningGateway, wait_for
from tests.gateway.peers import Peer, jpeg, push_h264, services
from tests.support.media import encode_h264
from tests.support.nats import NatsServer, free_port

pytestmark = pytest.mark.slow


async def test_push_reaches_a_websocket_viewer_via_ingest(
    gateway: RunningGateway, nats_server: NatsServer, tmp_path: Path
) -> None:
    api = gateway.client
    async with services(nats_server.url, tmp_path, "ingest"):
        image = jpeg(shade=10)
        r = await api.post("/ingest/cam1", content=image, headers={"content-type": "image/jpeg"})
        assert r.status_code == 202 and r.json() == {"ok": True, "viewers": 0}
        async with connect(f"{gateway.ws_url}/ws/cam1", open_timeout=5, max_queue=None) as ws:

            async def delivered() -> bool:
                r = await api.post("/ingest/cam1", content=image, headers={"content-type": "image/jpeg"})
                return r.status_code == 200 and r.json()["viewers"] >= 1

            await wait_for(delivered, timeout=10, step=0.2)
            got = None
            deadline = time.monotonic() + 5
            while got is None and time.monotonic() < deadline:
                msg = await asyncio.wait_for(ws.recv(), 5)
                if isinstance(msg, bytes):
                    got = unpack_frame(msg)
                else:
                    assert json.loads(msg)["codec"] == "jpeg"
            assert got is not None and got.codec == "jpeg" and got.key and got.data == image
        streams = (await api.get("/api/streams")).json()
        assert [s["stream"] for s in streams] == ["cam1"] and streams[0]["codec"] == "jpeg"


async def test_hls_through_ingest_and_the_hls_service(
    gateway: RunningGateway, nats_server: NatsServer, tmp_path: Path
) -> None:
    api = gateway.client
    clip = encode_h264(60, gop=30)
    async with services(nats_server.url, tmp_path, "ingest", "hls", CAMHUB_HLS_SEGMENT_SECONDS="1"):
        pusher = asyncio.create_task(push_h264(api, "cam1", clip, loops=8))
        try:

            async def playlist_ready() -> bool:
                r = await api.get("/hls/cam1/stream.m3u8")
                return r.status_code == 200 and "#EXTINF" in r.text

            await wait_for(playlist_ready, timeout=20, step=0.25)
            r = await api.get("/hls/cam1/stream.m3u8")
            assert r.headers["content-type"].startswith(("application/vnd.apple.mpegurl", "audio/mpegurl"))
            assert "no-cache" in r.headers["cache-control"]
            playlist = m3u8.loads(r.text)
            seg = await api.get(f"/hls/cam1/{playlist.segments[0].uri}")
            assert seg.status_code == 200 and seg.headers["content-type"] == "video/mp2t"
            assert "immutable" in seg.headers["cache-control"]
            path = tmp_path / "seg.ts"
            path.write_bytes(seg.content)
            probe = subprocess.run(
                [
                    "ffprobe",
                    "-v",
                    "error",
                    "-count_frames",
                    "-select_streams",
                    "v:0",
                    "-show_entries",
                    "stream=codec_name,nb_read_frames",
                    "-of",
                    "json",
                    str(path),
                ],
                capture_output=True,
                text=True,
                timeout=20,
                check=True,
            )
            stream = json.loads(probe.stdout)["streams"][0]
            assert stream["codec_name"] == "h264" and int(stream["nb_read_frames"]) > 0
            missing = await api.get("/hls/cam1/seg999999.ts")
            assert missing.status_code in (404, 410) and missing.json()["ok"] is False
        finally:
            pusher.cancel()
            await asyncio.gather(pusher, return_exceptions=True)


async def test_whip_publisher_reaches_a_websocket_viewer(
    gateway: RunningGateway, nats_server: NatsServer, tmp_path: Path
) -> None:
    api = gateway.client
    async with (
        services(nats_server.url, tmp_path, "ingest"),
        connect(f"{gateway.ws_url}/ws/cam1", open_timeout=5, max_queue=None, max_size=None) as ws,
    ):
        publisher = Peer("sendonly")
        try:
            r = await publisher.post(api, "/whip/cam1")
            assert r.status_code == 201, r.text
            assert r.headers["content-type"].startswith("application/sdp")
            assert r.headers["location"].startswith("/whip/cam1/")
            frames = []
            deadline = time.monotonic() + 20
            while len(frames) < 10 and time.monotonic() < deadline:
                msg = await asyncio.wait_for(ws.recv(), 20)
                if isinstance(msg, bytes):
                    frames.append(unpack_frame(msg))
            assert len(frames) == 10 and frames[0].key
            assert frames[0].codec in ("h264", "vp8")
            if frames[0].codec == "h264":
                assert is_keyframe(frames[0].data)
            r = await api.patch(
                publisher.location,
                content="a=candidate:1 1 udp 1 127.0.0.1 9 typ host",
                headers={"content-type": "application/trickle-ice-sdpfrag"},
            )
            assert r.status_code == 422
        finally:
            await publisher.close()


async def test_whip_session_delete(gateway: RunningGateway, nats_server: NatsServer, tmp_path: Path) -> None:
    api = gateway.client
    async with services(nats_server.url, tmp_path, "ingest"):
        publisher = Peer("sendonly")
        try:
            r = await publisher.post(api, "/whip/cam1")
            assert r.status_code == 201, r.text
            assert (await api.delete(publisher.location)).status_code == 200
            assert (await api.delete(publisher.location)).status_code == 404
        finally:
            await publisher.close()


async def test_whep_and_vms_offer_through_egress(
    gateway: RunningGateway, nats_server: NatsServer, tmp_path: Path
) -> None:
    api = gateway.client
    clip = encode_h264(60, gop=30, profile="baseline")
    async with services(nats_server.url, tmp_path, "ingest", "egress"):
        pusher = asyncio.create_task(push_h264(api, "cam1", clip, loops=20))
        viewer, vms = Peer("recvonly"), Peer("recvonly")
        try:
            await wait_for(lambda: _stream_up(api, "cam1"), timeout=10, step=0.2)
            r = await viewer.post(api, "/whep/cam1")
            assert r.status_code == 201, r.text
            assert r.headers["location"].startswith("/whep/cam1/")
            await viewer.wait_frames(5)
            assert any(f.keyframe for f in viewer.received)

            assert (await api.post("/api/cameras", json={"id": "cam1", "kind": "push"})).status_code == 201
            live = (await api.post("/api/cameras/cam1/live", json={"user_id": "u1"})).json()
            r = await api.post(
                live["offer_url"],
                json={
                    "camera_id": "cam1",
                    "sdp": await vms.offer(),
                    "sdp_type": "offer",
                    "session_token": live["session_token"],
                },
            )
            assert r.status_code == 200, r.text
            answer = r.json()
            assert answer["sdp_type"] == "answer" and answer["peer_id"] and answer["expires_at"] == live["expires_at"]
            await vms.answer(answer["sdp"])
            await vms.wait_frames(5)
            assert (await api.delete(viewer.location)).status_code == 200
            assert (await api.delete(f"/whep/cam1/{answer['peer_id']}")).status_code == 200
            assert (
                await api.post(
                    "/whep/ghost", content=await Peer("recvonly").offer(), headers={"content-type": "application/sdp"}
                )
            ).status_code == 404
        finally:
            pusher.cancel()
            await asyncio.gather(pusher, return_exceptions=True)
            await viewer.close()
            await vms.close()


async def _stream_up(api: httpx.AsyncClient, stream: str) -> bool:
    r = await api.get(f"/api/streams/{stream}")
    return r.status_code == 200 and bool(r.json()["up"])


async def test_printer_commands_and_status_through_control_and_the_simulator(
    gateway: RunningGateway, nats_server: NatsServer, tmp_path: Path
) -> None:
    api = gateway.client
    port = free_port()
    sim = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.sim",
        "printer",
        "--port",
        str(port),
        "--job-seconds",
        "120",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    try:
        assert sim.stdout is not None
        line = b""
        while b"READY" not in line:
            line = await asyncio.wait_for(sim.stdout.readline(), 20)
            assert line, "printer simulator exited"
        serial = line.decode().split("serials=")[1].split()[0].split(",")[0]
        drain = asyncio.create_task(sim.stdout.read())  # keep the pipe from filling up
        async with services(nats_server.url, tmp_path, "control"):
            r = await api.post(
                "/api/printers",
                json={
                    "id": "p1",
                    "name": "Sim",
                    "host": "127.0.0.1",
                    "serial": serial,
                    "accessCode": "12345678",
                    "mqttPort": port,
                },
            )
            assert r.status_code == 201

            async def online() -> bool:
                return bool((await api.get("/api/printers/p1/status")).json().get("connected"))

            await wait_for(online, timeout=20, step=0.25)
            r = await api.post("/api/printers/p1/command", json={"type": "light", "on": False})
            assert r.status_code == 200 and r.json() == {"ok": True}

            async def light_off() -> bool:
                return (await api.get("/api/printers/p1/status")).json().get("light") == "off"

            await wait_for(light_off, timeout=10, step=0.25)
    finally:
        sim.terminate()
        await asyncio.wait_for(sim.wait(), 10)
        if "drain" in locals():
            drain.cancel()
