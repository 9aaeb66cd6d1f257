"""The service runner: micro registration with endpoints, heartbeats, settings, log scrubbing,
and a real service process that stops within 10 s of SIGTERM."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from services.common import codec, subjects
from services.common.bus import Bus
from services.common.logs import JsonFormatter, scrub
from services.common.service import CamhubService, run_service
from services.common.settings import Settings, SettingsError, load_settings
from services.common.streams import HeartbeatBoard
from tests.support.procs import ServiceProcess, service_env, wait_services


class EchoService(CamhubService):
    name = "echo"
    description = "test service"

    async def start(self) -> None:
        async def echo(req: Any) -> None:
            await req.respond(codec.pack({"ok": True, "got": codec.unpack(req.data)}))

        await self.ctx.add_endpoint("echo", "camhub.test.echo", echo)

    def load(self) -> dict[str, Any]:
        return {"viewers": {"cam1": 2}}


async def test_micro_registration_heartbeats_and_endpoint(settings: Settings, bus: Bus) -> None:
    board = HeartbeatBoard()
    await board.start(bus)
    stop = asyncio.Event()
    task = asyncio.create_task(run_service(EchoService, settings, stop))
    try:
        for _ in range(50):
            if board.viewers("cam1"):
                break
            await asyncio.sleep(0.1)
        assert board.viewers("cam1") == 2 and board.services() == {"echo": 1}
        reply = await bus.request_obj("camhub.test.echo", {"x": 1}, timeout=2)
        assert reply == {"ok": True, "got": {"x": 1}}
        info = json.loads((await bus.request("$SRV.INFO.camhub-echo", b"", timeout=2)).data)
        assert info["name"] == "camhub-echo"
        assert [e["subject"] for e in info["endpoints"]] == ["camhub.test.echo"]
        assert info["endpoints"][0]["queue_group"] == "camhub-echo"
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 12) == 0


async def test_a_service_process_stops_within_10_s_of_sigterm(settings: Settings, tmp_path: Path) -> None:
    proc = ServiceProcess("hls", service_env(settings.nats_servers[0], tmp_path), tmp_path).start()
    try:
        await wait_services(settings.nats_servers[0], {"hls"}, 15)
        t0 = time.monotonic()
        code = await asyncio.to_thread(proc.stop, 12)
        assert time.monotonic() - t0 < 10 and code == 0, proc.log()
        assert "camhub-hls stopped" in proc.log()
    finally:
        proc.kill()


def test_settings_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMHUB_NATS_PORT", "99999")
    with pytest.raises(SettingsError, match="CAMHUB_NATS_PORT"):
        load_settings()
    monkeypatch.setenv("CAMHUB_NATS_PORT", "4223")
    monkeypatch.setenv("CAMHUB_NATS_URL", "nats://a:1, nats://b:2")
    s = load_settings()
    assert s.nats_port == 4223 and s.nats_servers == ["nats://a:1", "nats://b:2"]


@pytest.mark.parametrize(
    ("raw", "secret"),
    [
        ("pulling rtsps://bblp:12345678@10.0.0.5:322/streaming/live/1", "12345678"),
        ("Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
        ("{'access_code': 'hunter22', 'host': 'x'}", "hunter22"),
        ('{"accessCode": "77778888"}', "77778888"),
        ("password=pa55word retry", "pa55word"),
    ],
)
def test_secrets_are_scrubbed_from_logs(raw: str, secret: str) -> None:
    assert secret not in scrub(raw)
    record = logging.makeLogRecord({"msg": "%s", "args": (raw,), "levelname": "INFO", "name": "t"})
    line = JsonFormatter("test").format(record)
    assert secret not in line and json.loads(line)["service"] == "test"


def test_heartbeat_subject_reads_well() -> None:
    assert subjects.heartbeat("egress", "node-1") == "camhub.svc.egress.node-1.heartbeat"
