"""``python -m services.gateway`` as a real child process: registration, serving, SIGTERM."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support.nats import NatsServer, free_port
from tests.support.procs import ServiceProcess, service_env, wait_services


async def test_process_serves_and_stops_cleanly_on_sigterm(nats_server: NatsServer, tmp_path: Path) -> None:
    port = free_port()
    proc = ServiceProcess(
        "gateway", service_env(nats_server.url, tmp_path / "data", CAMHUB_HTTP_PORT=str(port)), tmp_path
    ).start()
    url = f"http://127.0.0.1:{port}"
    try:
        replies = await wait_services(nats_server.url, {"gateway"})
        assert any(r.get("name") == "camhub-gateway" for r in replies)
        async with httpx.AsyncClient(base_url=url, timeout=10) as api:
            for _ in range(100):
                try:
                    if (await api.get("/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
            r = await api.post(
                "/api/printers",
                json={"id": "p1", "name": "P", "host": "10.0.0.9", "serial": "S", "accessCode": "12345678"},
            )
            assert r.status_code == 201
            async with (
                connect(f"ws://127.0.0.1:{port}/ws/cam1", open_timeout=5) as ws,
                api.stream("GET", "/api/printers/p1/status/stream") as sse,
            ):
                lines = sse.aiter_lines()
                assert (await asyncio.wait_for(anext(lines), 5)).startswith("event: status")
                t0 = time.monotonic()
                proc.proc.terminate()  # type: ignore[union-attr]
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 8)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
                rest = [line async for line in lines]  # the SSE response ends
                assert not any(line.startswith("event:") for line in rest[1:])
        code = await asyncio.to_thread(proc.proc.wait, 10)  # type: ignore[union-attr]
        assert code == 0, proc.log()[-2000:]
        assert time.monotonic() - t0 < 10
        assert "12345678" not in proc.log()
    finally:
        proc.stop()


async def test_a_busy_port_is_a_clear_start_error(nats_server: NatsServer, tmp_path: Path) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        proc = ServiceProcess(
            "gateway", service_env(nats_server.url, tmp_path / "d", CAMHUB_HTTP_PORT=str(port)), tmp_path
        ).start()
        code = await asyncio.to_thread(proc.proc.wait, 20)  # type: ignore[union-attr]
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in proc.log()
