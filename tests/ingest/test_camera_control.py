"""Camera commands over the WHIP peer's data channel: the camera is an aiortc peer that answers
JSON acks on a real SCTP data channel; requests go over the real bus to the in-process ingest."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.common import subjects
from services.common.bus import Bus, NoResponders
from services.common.settings import Settings
from tests.ingest.conftest import ProbeIngest, running_ingest, wait_for
from tests.ingest.whip_client import PatternTrack, Publisher


class Camera:
    """A publishing camera with a ``control`` data channel that acks commands."""

    def __init__(self, bus: Bus, stream: str, refuse: set[str] | None = None, silent: set[str] | None = None) -> None:
        self.pub = Publisher(bus, stream, PatternTrack(160, 120))
        self.got: list[dict[str, Any]] = []
        self.refuse = refuse or set()
        self.silent = silent or set()
        ch = self.pub.add_channel("control")
        self.open = asyncio.Event()

        @ch.on("open")  # type: ignore[untyped-decorator]
        def on_open() -> None:
            self.open.set()

        @ch.on("message")  # type: ignore[untyped-decorator]
        def on_message(text: Any) -> None:
            cmd = json.loads(text)
            self.got.append(cmd)
            if cmd["type"] in self.silent:
                return
            if cmd["type"] in self.refuse:
                ch.send(json.dumps({"id": cmd["id"], "ok": False, "error": f"{cmd['type']} not possible now"}))
            else:
                ch.send(json.dumps({"id": cmd["id"], "ok": True}))

    async def connect(self, ingest: ProbeIngest) -> Camera:
        assert (await self.pub.offer())["ok"]
        await asyncio.wait_for(self.open.wait(), 10)
        stream = self.pub.stream
        await wait_for(lambda: stream in ingest.cameras.controls and ingest.cameras.controls[stream].connected, 5)
        return self

    async def close(self) -> None:
        await self.pub.close()


async def cmd(bus: Bus, camera: str, body: Any, timeout: float = 10) -> dict[str, Any]:
    return await bus.request_obj(subjects.camera_cmd(camera), body, timeout=timeout)


async def test_commands_are_acked_refused_timed_out_and_validated(bus: Bus, ingest: ProbeIngest) -> None:
    with pytest.raises(NoResponders):  # no camera peer held anywhere
        await cmd(bus, "cam1", {"type": "start"})
    cam = await Camera(bus, "cam1", refuse={"stop"}, silent={"config"}).connect(ingest)
    try:
        r = await cmd(bus, "cam1", {"type": "start"})
        assert r["ok"] is True and r["ack"]["ok"] is True
        assert cam.got[-1] == {"id": r["ack"]["id"], "type": "start"}
        r = await cmd(bus, "cam1", {"type": "stop"})
        assert (r["ok"], r["status"], r["error"]) == (False, 502, "stop not possible now")
        r = await cmd(bus, "cam1", {"type": "config", "bitrate": 2500, "fps": 15})
        assert (r["ok"], r["status"]) == (False, 504) and "did not acknowledge" in r["error"]
        assert cam.got[-1]["bitrate"] == 2500 and cam.got[-1]["fps"] == 15
        for bad in (
            {"type": "reboot"},
            {"type": "config"},
            {"type": "config", "fps": "30"},
            {"type": "config", "bitrate": -1},
            {"type": "config", "width": 640},
            {"type": "start", "x": 1},
        ):
            r = await cmd(bus, "cam1", bad)
            assert (r["ok"], r["status"]) == (False, 400), bad
        msg = await bus.request(subjects.camera_cmd("cam1"), b"\xc1", timeout=5)
        assert b"not msgpack" in msg.data
        assert [c["id"] for c in cam.got] == [1, 2, 3]  # refused inputs never reached the camera
    finally:
        await cam.close()


@pytest.fixture
async def patient_ingest(settings: Settings) -> AsyncIterator[ProbeIngest]:
    async with running_ingest(settings.model_copy(update={"command_timeout_seconds": 6.0})) as svc:
        yield svc


async def test_commands_wait_while_the_camera_reconnects(bus: Bus, patient_ingest: ProbeIngest) -> None:
    first = await Camera(bus, "cam2").connect(patient_ingest)
    assert (await cmd(bus, "cam2", {"type": "start"}))["ok"]
    await first.close()
    await wait_for(lambda: not patient_ingest.whip.sessions, 5)
    # the camera is gone: 16 commands queue, the 17th is refused at once
    waiting = [asyncio.create_task(cmd(bus, "cam2", {"type": "config", "bitrate": 100 + i})) for i in range(16)]
    await wait_for(lambda: patient_ingest.cameras.controls["cam2"].waiting == 16, 5)
    r = await cmd(bus, "cam2", {"type": "stop"})
    assert (r["ok"], r["status"]) == (False, 503)
    second = Camera(bus, "cam2")
    assert (await second.pub.offer())["ok"]
    try:
        replies = await asyncio.gather(*waiting)
        assert all(r["ok"] for r in replies)
        assert [c["bitrate"] for c in second.got] == [100 + i for i in range(16)]  # in order
    finally:
        await second.close()
