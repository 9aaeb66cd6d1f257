"""Printer status, SSE, history and commands; camera status and commands.

Status updates are written the way control writes them (KV ``camhub-status`` + a publish on
``camhub.device.<id>.status``, history in JetStream ``CAMHUB_STATUS_HISTORY``): the test plays
control's part on the documented bus contract so the gateway side can be checked without a
printer.  The command routes are tested with no control/ingest running (503 + Retry-After is the
real behaviour then) and with a real control service driving the printer simulator.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
from nats.js.api import StreamConfig

from services.common import codec, subjects
from services.common.bus import Bus
from tests.gateway.conftest import RunningGateway, wait_for

PRINTER = {"id": "x1", "name": "X1", "host": "127.0.0.1", "serial": "00M1", "accessCode": "12345678"}


async def publish_status(bus: Bus, device: str, status: dict[str, Any]) -> None:
    """What control does on every report (docs/bus.md "Device status")."""
    kv = await bus.kv(subjects.KV_STATUS)
    await kv.put(device, codec.pack(status))
    await bus.publish_obj(subjects.device_status(device), status)


async def test_status_placeholder_then_latest(api: httpx.AsyncClient, bus: Bus) -> None:
    assert (await api.post("/api/printers", json=PRINTER)).status_code == 201
    r = await api.get("/api/printers/x1/status")
    assert r.status_code == 200
    assert r.json()["connected"] is False and r.json()["jobState"] == "UNKNOWN"
    await publish_status(
        bus,
        "x1",
        {"id": "x1", "connected": True, "jobState": "RUNNING", "percent": 42, "lastUpdate": "2026-01-18T20:15:00Z"},
    )
    body = (await api.get("/api/printers/x1/status")).json()
    assert body["jobState"] == "RUNNING" and body["percent"] == 42
    assert (await api.get("/api/printers/nope/status")).status_code == 404
    assert (await api.get("/api/printers/No!/status")).status_code == 400


async def _read_events(resp: httpx.Response, out: list[tuple[str, str]], comments: list[str]) -> None:
    event = ""
    async for line in resp.aiter_lines():
        if line.startswith(":"):
            comments.append(line)
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            out.append((event, line[5:].strip()))


async def test_sse_two_clients_current_first_updates_keepalive_and_clean_close(
    gateway: RunningGateway, bus: Bus
) -> None:
    api = gateway.client
    assert (await api.post("/api/printers", json=PRINTER)).status_code == 201
    await publish_status(bus, "x1", {"id": "x1", "connected": True, "percent": 1})
    events: list[list[tuple[str, str]]] = [[], []]
    comments: list[list[str]] = [[], []]
    async with (
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as c1,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as c2,
        c1.stream("GET", "/api/printers/x1/status/stream") as r1,
        c2.stream("GET", "/api/printers/x1/status/stream") as r2,
    ):
        assert r1.status_code == 200 and r1.headers["content-type"].startswith("text/event-stream")
        readers = [asyncio.create_task(_read_events(r, events[i], comments[i])) for i, r in enumerate((r1, r2))]

        async def both_have(n: int) -> bool:
            return all(len(e) >= n for e in events)

        await wait_for(lambda: both_have(1))
        for e in events:  # the current status comes first
            assert e[0][0] == "status" and json.loads(e[0][1])["percent"] == 1
        health = (await api.get("/health")).json()
        assert health["total_connections"] == 2
        for pct in (2, 3):
            await publish_status(bus, "x1", {"id": "x1", "connected": True, "percent": pct})
        await wait_for(lambda: both_have(3))
        assert [json.loads(d)["percent"] for _, d in events[0]] == [1, 2, 3]
        assert [json.loads(d)["percent"] for _, d in events[1]] == [1, 2, 3]
        await wait_for(lambda: asyncio.sleep(0, all(comments)), timeout=3)  # ping every 0.5 s here
        readers[0].cancel()
        await asyncio.gather(readers[0], return_exceptions=True)
        await r1.aclose()

        async def one_left() -> bool:
            return bool((await api.get("/health")).json()["total_connections"] == 1)

        await wait_for(one_left)
        await publish_status(bus, "x1", {"id": "x1", "connected": True, "percent": 4})
        await wait_for(lambda: asyncio.sleep(0, len(events[1]) >= 4))
        readers[1].cancel()
        await asyncio.gather(readers[1], return_exceptions=True)
    assert (await api.get("/api/printers/ghost/status/stream")).status_code == 404


async def test_sse_ends_when_the_gateway_stops(gateway: RunningGateway) -> None:
    assert (await gateway.client.post("/api/printers", json=PRINTER)).status_code == 201
    got: list[tuple[str, str]] = []
    async with (
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as c,
        c.stream("GET", "/api/printers/x1/status/stream") as r,
    ):
        reader = asyncio.create_task(_read_events(r, got, []))
        await wait_for(lambda: asyncio.sleep(0, bool(got)))
        t0 = time.monotonic()
        assert await gateway.stop() == 0
        await asyncio.wait_for(reader, 5)  # the stream ended, the reader returned
        assert time.monotonic() - t0 < 5


async def test_history_is_read_from_jetstream_and_downsampled(api: httpx.AsyncClient, bus: Bus) -> None:
    assert (await api.post("/api/printers", json=PRINTER)).status_code == 201
    r = await api.get("/api/printers/x1/status/history")
    assert r.status_code == 200 and r.json()["points"] == []  # no stream yet: empty, not an error
    await bus.js.add_stream(
        StreamConfig(name=subjects.STREAM_STATUS_HISTORY, subjects=[subjects.DEVICE_STATUS_ALL], max_age=24 * 3600)
    )
    for i in range(120):
        await bus.js.publish(
            subjects.device_status("x1"), codec.pack({"id": "x1", "nozzleC": 200.0 + i, "jobState": "RUNNING"})
        )
    await bus.js.publish(subjects.device_status("other"), codec.pack({"id": "other", "nozzleC": 1.0}))
    r = await api.get("/api/printers/x1/status/history", params={"minutes": 5, "points": 10})
    body = r.json()
    assert r.status_code == 200 and body["ok"] is True and body["minutes"] == 5
    points = body["points"]
    assert 1 <= len(points) <= 10
    assert all(200.0 <= p["nozzleC"] <= 319.0 for p in points) and points[-1]["jobState"] == "RUNNING"
    for bad in ({"minutes": "x"}, {"minutes": 0}, {"minutes": 99999}, {"points": 1}):
        r = await api.get("/api/printers/x1/status/history", params=bad)
        assert r.status_code == 400 and r.json()["ok"] is False


async def test_commands_without_control_are_503_with_retry_after(api: httpx.AsyncClient) -> None:
    assert (await api.post("/api/printers", json=PRINTER)).status_code == 201
    r = await api.post("/api/printers/x1/command", json={"type": "pause"})
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json() == {"ok": False, "error": "the control service is not available right now; retry shortly"}
    for bad in ({"type": "explode"}, {"type": "light"}, {"type": "speed", "level": 9}, {}):
        r = await api.post("/api/printers/x1/command", json=bad)
        assert r.status_code == 422, (bad, r.text)
    assert (await api.post("/api/printers/ghost/command", json={"type": "pause"})).status_code == 404


async def test_command_reply_mapping_from_a_bus_responder(api: httpx.AsyncClient, bus: Bus) -> None:
    """A responder on ``camhub.device.x1.cmd`` stands in for control's session owner here, to pin the
    reply -> HTTP mapping (ok, refused with a status, unreadable); the real control service is
    exercised in tests/control."""
    assert (await api.post("/api/printers", json=PRINTER)).status_code == 201
    seen: list[dict[str, Any]] = []
    replies = iter(
        [
            {"ok": True},
            {"ok": False, "status": 403, "error": "the printer requires LAN-only + Developer Mode for control"},
            {"ok": False, "status": 999},
        ]
    )

    async def handler(msg: Any) -> None:
        seen.append(codec.unpack_map(msg.data))
        await msg.respond(codec.pack(next(replies)))

    await bus.subscribe(subjects.device_cmd("x1"), handler)
    r = await api.post("/api/printers/x1/command", json={"type": "light", "on": False})
    assert r.status_code == 200 and r.json() == {"ok": True}
    assert seen[0] == {"type": "light", "on": False}
    r = await api.post("/api/printers/x1/command", json={"type": "stop"})
    assert r.status_code == 403 and "Developer Mode" in r.json()["error"]
    r = await api.post("/api/printers/x1/command", json={"type": "stop"})
    assert r.status_code == 502


async def test_camera_status_and_commands(api: httpx.AsyncClient, bus: Bus) -> None:
    assert (await api.post("/api/cameras", json={"id": "cam1", "kind": "webrtc"})).status_code == 201
    r = await api.get("/api/cameras/cam1/status")
    assert r.status_code == 200 and r.json()["connected"] is False and r.json()["stream"] is None
    for action in ("start", "stop"):
        r = await api.post(f"/api/cameras/cam1/{action}")
        assert r.status_code == 503 and "not connected" in r.json()["error"]
    r = await api.post("/api/cameras/cam1/config", json={"bitrate": 1500, "fps": 15})
    assert r.status_code == 503
    assert (await api.post("/api/cameras/cam1/config", json={})).status_code == 422
    assert (await api.post("/api/cameras/cam1/config", json={"bitrate": -5})).status_code == 422
    assert (await api.post("/api/cameras/ghost/start")).status_code == 404
