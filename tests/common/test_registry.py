"""Registry in KV camhub-devices: secrets sealed at rest, live watch, bad records skipped."""

from __future__ import annotations

import asyncio

from services.common import codec
from services.common.bus import Bus
from services.common.registry import Device, Registry, redact_url, split_url_password
from services.common.settings import Settings, load_settings
from services.common.subjects import KV_DEVICES


async def test_secrets_are_encrypted_at_rest_and_round_trip(settings: Settings) -> None:
    sealed = load_settings(nats_url=settings.nats_url, secret_key="correct horse battery staple")
    bus = await Bus.connect(sealed, "reg")
    reg = Registry(bus)
    dev = Device(
        id="p1",
        kind="bambu",
        host="10.0.0.5",
        serial="00M1",
        access_code="12345678",
        rtsp_url="rtsps://bblp:s3cret@10.0.0.5:322/streaming/live/1",
    )
    await reg.put(dev)
    raw = (await (await bus.kv(KV_DEVICES)).get("p1")).value
    assert b"12345678" not in raw and b"s3cret" not in raw
    stored = codec.unpack_map(raw)
    assert stored["access_code"].startswith("enc:") and stored["rtsp_url"] == "rtsps://bblp@10.0.0.5:322/streaming/live/1"
    back = await reg.get("p1")
    assert back is not None and back.access_code == "12345678"
    assert back.rtsp_url == "rtsps://bblp:s3cret@10.0.0.5:322/streaming/live/1"
    assert back.created_at > 0
    await bus.close()


async def test_watch_sees_current_records_then_changes_and_deletes(bus: Bus) -> None:
    reg = Registry(bus)
    await reg.put(Device(id="cam1", kind="rtsp", rtsp_url="rtsp://127.0.0.1:8554/x"))
    kv = await bus.kv(KV_DEVICES)
    await kv.put("junk", b"\xc1not msgpack")  # a corrupt record must be skipped, not crash watchers
    seen: list[tuple[str, str | None]] = []

    async def follow() -> None:
        async for key, dev in reg.watch():
            seen.append((key, dev.kind if dev else None))
            if key == "cam2" and dev is None:
                return

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.3)
    await reg.put(Device(id="cam2", kind="push"))
    assert await reg.delete("cam2") is True
    assert await reg.delete("cam2") is False
    await asyncio.wait_for(task, 5)
    assert seen[0] == ("cam1", "rtsp") and ("cam2", "push") in seen and seen[-1] == ("cam2", None)
    assert [d.id for d in await reg.list()] == ["cam1"]


def test_url_password_helpers() -> None:
    assert split_url_password("rtsp://u:p%40ss@h:554/x") == ("rtsp://u@h:554/x", "p%40ss")
    assert split_url_password("rtsp://h/x") == ("rtsp://h/x", "")
    assert redact_url("rtsps://bblp:1234@h:322/live") == "rtsps://bblp:****@h:322/live"
