"""The bus against a real nats-server: restarts, request errors, KV buckets."""

from __future__ import annotations

import asyncio

import pytest

from services.common.bus import Bus, BusTimeout, NoResponders
from services.common.settings import Settings
from tests.support.nats import NatsServer


async def test_bus_survives_a_nats_server_restart(nats_server: NatsServer, settings: Settings) -> None:
    pub = await Bus.connect(settings, "pub")
    sub = await Bus.connect(settings, "sub")
    got: list[bytes] = []

    async def on_msg(msg: object) -> None:
        got.append(msg.data)  # type: ignore[attr-defined]

    await sub.subscribe("camhub.test.restart", on_msg)
    await pub.publish("camhub.test.restart", b"before")
    await pub.nc.flush()
    await asyncio.sleep(0.2)
    assert got == [b"before"]

    nats_server.kill()
    await asyncio.sleep(0.5)
    await nats_server.astart()  # same ports, same store
    deadline = asyncio.get_running_loop().time() + 15
    while not (pub.connected and sub.connected):
        assert asyncio.get_running_loop().time() < deadline, "bus did not reconnect"
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)  # subscriptions are replayed on reconnect
    await pub.publish("camhub.test.restart", b"after")
    await pub.nc.flush()
    for _ in range(50):
        if b"after" in got:
            break
        await asyncio.sleep(0.1)
    assert b"after" in got
    assert pub.reconnects >= 1 and sub.reconnects >= 1
    await pub.close()
    await sub.close()


async def test_request_without_responder_raises_no_responders(bus: Bus) -> None:
    with pytest.raises(NoResponders):
        await bus.request("camhub.nobody.home", b"", timeout=1)


async def test_request_to_a_silent_responder_times_out(bus: Bus) -> None:
    async def silent(msg: object) -> None:
        return None

    await bus.subscribe("camhub.silent", silent)
    with pytest.raises(BusTimeout):
        await bus.request("camhub.silent", b"", timeout=0.3)


async def test_request_obj_round_trip_and_handler_errors_do_not_end_subscriptions(bus: Bus) -> None:
    calls = 0

    async def echo(msg: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")  # logged; the subscription lives on
        from services.common import codec

        await msg.respond(codec.pack({"ok": True, "echo": codec.unpack(msg.data)}))  # type: ignore[attr-defined]

    await bus.subscribe("camhub.echo", echo)
    with pytest.raises(BusTimeout):
        await bus.request_obj("camhub.echo", {"n": 1}, timeout=0.3)
    reply = await bus.request_obj("camhub.echo", {"n": 2}, timeout=2)
    assert reply == {"ok": True, "echo": {"n": 2}}


async def test_kv_bucket_is_created_once_and_shared(bus: Bus) -> None:
    kv1, kv2 = await asyncio.gather(bus.kv("camhub-test"), bus.kv("camhub-test"))
    assert kv1 is kv2
    await kv1.put("k", b"v")
    assert (await kv2.get("k")).value == b"v"
