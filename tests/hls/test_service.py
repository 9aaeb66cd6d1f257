"""The hls service as a real child process on a real nats-server, read by real consumers:
Debian ffprobe (over HTTP through the shim and from the disk mirror), PyAV and ``m3u8``."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import av
import m3u8
import msgpack

from services.common import codec, subjects
from services.common.bus import Bus
from services.common.lease import lease_owner
from services.common.streams import StreamInfo, publish_event, publish_info
from services.hls.client import hls_get
from tests.hls.conftest import Starter
from tests.hls.support import HttpShim, looped, publish, run, x264
from tests.support.nats import NatsServer
from tests.support.procs import ServiceProcess, wait_services

INFO = StreamInfo(stream="cam1", codec="h264", width=320, height=240, fps=30.0, source="push", epoch=1)


async def wait_owner(bus: Bus, stream: str, timeout: float = 8.0, not_: str | None = None) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        owner = await lease_owner(bus, f"hls.{stream}")
        if owner and owner != not_:
            return owner
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no hls owner for {stream}")


async def wait_serving(bus: Bus, stream: str, timeout: float = 8.0, not_: str | None = None) -> str:
    """Wait until an hls instance (other than ``not_``) owns ``stream`` and answers for it."""
    owner = await wait_owner(bus, stream, timeout, not_)
    for _ in range(int(timeout * 10)):
        status, _, _ = await hls_get(bus, stream, "seg999999.ts")
        if status == 404:
            return owner
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{owner} does not answer for {stream}")


async def get_ready(bus: Bus, stream: str, path: str, **kw: object) -> tuple[int, dict[str, str], bytes]:
    """``hls_get``, retried while the new owner is still subscribing (503 "starting")."""
    for _ in range(50):
        status, headers, body = await hls_get(bus, stream, path, **kw)  # type: ignore[arg-type]
        if not (status == 503 and b"starting" in body):
            break
        await asyncio.sleep(0.1)
    return status, headers, body


async def get_until(bus: Bus, stream: str, path: str, needle: bytes) -> bytes:
    """The body of ``path`` once it contains ``needle`` (events and requests race on the bus)."""
    body = b""
    for _ in range(50):
        _, _, body = await hls_get(bus, stream, path)
        if needle in body:
            break
        await asyncio.sleep(0.1)
    return body


def ffprobe_frames(url: str) -> tuple[str, ...]:
    return (
        "ffprobe",
        "-v",
        "error",
        "-live_start_index",
        "0",
        "-m3u8_hold_counters",
        "2",
        "-count_frames",
        "-select_streams",
        "v",
        "-show_entries",
        "stream=nb_read_frames",
        "-of",
        "csv=p=0",
        url,
    )


async def test_first_playlist_soon_and_real_consumers_decode_everything(
    hls_service: ServiceProcess, bus: Bus, tmp_path: Path
) -> None:
    await publish_info(bus, INFO)
    await wait_serving(bus, "cam1")
    frames = looped(x264(), 180)  # 6 s at 30 fps, keyframe every second
    pub = asyncio.create_task(publish(bus, "cam1", frames, fps=30))
    status, _headers, body = await get_ready(bus, "cam1", "stream.m3u8")  # held until it exists
    replied = time.time()
    sent = await pub
    assert status == 200, body
    assert replied - sent[0] <= 2.0 + 0.5, "first playlist no later than one segment + 0.5 s after the IDR"
    await publish_event(bus, "cam1", "down", epoch=1, reason="test over")
    body = await get_until(bus, "cam1", "stream.m3u8", b"seg000002.ts")
    standard = m3u8.loads(body.decode())
    assert [s.uri for s in standard.segments] == ["seg000000.ts", "seg000001.ts", "seg000002.ts"]
    status, _, ll_body = await hls_get(bus, "cam1", "stream_ll.m3u8")
    ll = m3u8.loads(ll_body.decode())
    assert status == 200 and ll.server_control.can_block_reload == "YES" and ll.segments[-1].parts

    async with HttpShim(bus).running() as shim:
        base = f"{shim.base}/hls/cam1"
        results = await asyncio.gather(
            run(*ffprobe_frames(f"{base}/stream.m3u8")),
            run(*ffprobe_frames(f"{base}/stream_ll.m3u8")),
            run(*ffprobe_frames(str(tmp_path / "hls" / "cam1" / "stream.m3u8"))),
        )
        for rc, out, err in results:
            assert (rc, set(out.split()), err.strip()) == (0, {str(len(frames))}, "")
        assert any(r.startswith("seg000000.ts") for r in shim.requests)
        assert any(r.startswith("seg000000.m4s") for r in shim.requests)

    # PyAV reads a TS segment, and init + parts of a segment
    _, _, ts = await hls_get(bus, "cam1", "seg000001.ts")
    with av.open(io.BytesIO(ts), format="mpegts") as c:
        assert sum(1 for _ in c.decode(video=0)) == 60
    _, hdr, init = await hls_get(bus, "cam1", "init000000.mp4")
    assert hdr["Content-Type"] == "video/mp4"
    parts = [p.uri for p in ll.segments[1].parts]
    data = init + b"".join([(await hls_get(bus, "cam1", uri))[2] for uri in parts])
    with av.open(io.BytesIO(data)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 60
    mirror = sorted(p.name for p in (tmp_path / "hls" / "cam1").iterdir())
    assert {"stream.m3u8", "stream_ll.m3u8", "init000000.mp4", "seg000002.ts", "part000002.0.m4s"} <= set(mirror)
    assert not [n for n in mirror if n.endswith(".tmp")]


async def test_blocking_reload_bad_requests_and_viewers_over_the_bus(hls_service: ServiceProcess, bus: Bus) -> None:
    beats: list[dict[str, object]] = []

    async def on_beat(msg: object) -> None:
        beats.append(codec.unpack_map(msg.data))  # type: ignore[attr-defined]

    await bus.subscribe(subjects.heartbeat("hls", "hls-a"), on_beat)
    await publish_info(bus, INFO)
    await wait_serving(bus, "cam1")
    # garbage on the stream's subjects is counted and skipped, never fatal
    await bus.publish(subjects.media_frames("cam1"), b"no headers")
    await bus.publish(subjects.media_frames("cam1"), b"x", {"Camhub-Codec": "h264", "Camhub-Pts": "soon"})
    await bus.publish(subjects.media_events("cam1"), b"\xc1 not msgpack")
    await bus.publish(subjects.media_info("cam1"), msgpack.packb({"stream": 5}))
    pub = asyncio.create_task(publish(bus, "cam1", looped(x264(), 150), fps=30))
    status, _, body = await get_ready(bus, "cam1", "stream_ll.m3u8", client="viewer-1")
    assert status == 200
    pl = m3u8.loads(body.decode())
    last = pl.segments[-1]
    msn = pl.media_sequence + len(pl.segments) - 1
    want = (msn, len(last.parts)) if last.uri is None else (msn + 1, 0)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    status, _, body = await hls_get(
        bus, "cam1", "stream_ll.m3u8", {"_HLS_msn": str(want[0]), "_HLS_part": str(want[1])}, client="viewer-2"
    )
    assert status == 200 and loop.time() - t0 < 1.0  # the next part comes within a part duration or so
    assert f"part{want[0]:06d}.{want[1]}.m4s" in body.decode()
    status, _, body = await hls_get(bus, "cam1", "stream_ll.m3u8", {"_HLS_msn": "99"})
    assert status == 400 and b"more than two segments" in body
    status, _, body = await hls_get(bus, "cam1", "stream_ll.m3u8", {"_HLS_part": "1"})
    assert status == 400
    status, _, body = await hls_get(bus, "cam1", "../secret")
    assert status == 404
    # malformed request maps, straight on the subject
    for raw in (
        b"\xc1not msgpack",
        msgpack.packb({"path": 5}),
        msgpack.packb({"path": "stream.m3u8", "query": [1]}),
        msgpack.packb({"path": "seg000000.ts", "offset": -1}),
    ):
        msg = await bus.request(subjects.hls_get("cam1"), raw, timeout=3.0)
        assert msg.headers is not None and msg.headers["Camhub-Status"] == "400"
    await pub
    # two distinct clients within 10 s
    for _ in range(30):
        if any(b.get("viewers") == {"cam1": 2} for b in beats):
            break
        await asyncio.sleep(0.1)
    assert any(b.get("viewers") == {"cam1": 2} and b.get("muxers") == 1 for b in beats)
    assert hls_service.proc is not None and hls_service.proc.poll() is None


async def test_stream_down_stops_the_muxer_and_restart_continues_media_sequence(
    hls_procs: Starter, nats_server: NatsServer, bus: Bus
) -> None:
    hls_procs(CAMHUB_HLS_IDLE_SECONDS="1", CAMHUB_HLS_SEGMENT_SECONDS="1")
    await wait_services(nats_server.url, {"hls"})
    await publish_info(bus, INFO)
    await wait_serving(bus, "cam1")
    await publish(bus, "cam1", looped(x264(), 90), fps=60)
    await publish_info(bus, INFO.model_copy(update={"up": False}))
    await publish_event(bus, "cam1", "down", epoch=1, reason="gone")
    body = await get_until(bus, "cam1", "stream.m3u8", b"seg000002.ts")
    assert m3u8.loads(body.decode()).segments[-1].uri == "seg000002.ts"
    for _ in range(60):
        if await lease_owner(bus, "hls.cam1") is None:
            break
        await asyncio.sleep(0.1)
    assert await lease_owner(bus, "hls.cam1") is None, "muxer stopped and lease released after the idle time"
    status, _, body = await hls_get(bus, "cam1", "stream.m3u8")
    assert status == 404 and b"is down" in body
    # the source comes back: a new muxer continues after segment 2, with a discontinuity
    await publish_info(bus, INFO.model_copy(update={"epoch": 2}))
    await wait_serving(bus, "cam1")
    await publish(bus, "cam1", looped(x264(), 61), fps=60)
    status, _, body = await get_ready(bus, "cam1", "stream.m3u8")
    pl = m3u8.loads(body.decode())
    assert status == 200 and pl.media_sequence == 3 and pl.segments[0].discontinuity
    assert pl.discontinuity_sequence == 0
