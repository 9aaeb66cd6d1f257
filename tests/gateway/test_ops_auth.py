"""Ops routes, the web UI, CORS and API-token auth through real HTTP."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from services.common.bus import Bus
from services.common.settings import Settings
from services.gateway.auth import is_loopback, needs_token, resolve_auth
from services.gateway.state import GatewayOptions
from tests.gateway.conftest import RunningGateway, StartGateway


async def test_health_livez_readyz(api: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/health"):
        body = (await api.get(path)).json()
        assert body["status"] == "running" and body["service"] == "camhub-gateway" and body["nats"] is True
        assert {"version", "active_streams", "total_connections"} <= set(body)
    assert (await api.get("/livez")).json() == {"ok": True}
    assert (await api.get("/readyz")).status_code == 200


async def test_readyz_and_health_follow_nats(start_gateway: StartGateway, nats_server: object) -> None:
    gw = await start_gateway()
    nats_server.stop()  # type: ignore[attr-defined]
    await asyncio.sleep(0.5)
    r = await gw.client.get("/readyz")
    assert r.status_code == 503 and r.json()["ok"] is False
    assert (await gw.client.get("/livez")).status_code == 200
    body = (await gw.client.get("/health")).json()
    assert body["status"] == "degraded" and body["nats"] is False


async def test_metrics_and_openapi_and_docs(api: httpx.AsyncClient) -> None:
    r = await api.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert "camhub_viewers" in r.text or "camhub_frames_dropped_total" in r.text
    spec = (await api.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    assert {
        "/api/printers",
        "/api/printers/{id}",
        "/whip/{stream}",
        "/hls/{stream}/{path}",
        "/api/v1/webrtc/offer",
    } <= set(spec["paths"])
    assert spec["paths"]["/api/printers"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in spec["paths"]["/healthz"]["get"]
    page = await api.get("/docs")
    assert page.status_code == 200 and "/api/printers" in page.text


async def test_ui_served_with_client_route_fallback(start_gateway: StartGateway, tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html><title>camhub ui</title>")
    (tmp_path / "app.js").write_text("console.log(1)")
    gw = await start_gateway(GatewayOptions(web_dir=tmp_path))
    assert "camhub ui" in (await gw.client.get("/")).text
    assert (await gw.client.get("/app.js")).text == "console.log(1)"
    assert "camhub ui" in (await gw.client.get("/printers/x1")).text  # a client-side route
    assert (await gw.client.get("/missing.js")).status_code == 404
    r = await gw.client.get("/api/unknown")
    assert r.status_code == 404 and r.json()["ok"] is False


async def test_ui_not_built_page(start_gateway: StartGateway, tmp_path: Path) -> None:
    gw = await start_gateway(GatewayOptions(web_dir=tmp_path / "nothing"))
    r = await gw.client.get("/")
    assert r.status_code == 200 and "npm run build" in r.text


async def test_cors_when_configured(start_gateway: StartGateway) -> None:
    gw = await start_gateway(cors_origins="https://ui.example")
    r = await gw.client.options(
        "/whip/cam1",
        headers={
            "Origin": "https://ui.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://ui.example"
    r = await gw.client.get("/api/streams", headers={"Origin": "https://ui.example"})
    assert r.headers["access-control-allow-origin"] == "https://ui.example"
    assert "Location" in r.headers["access-control-expose-headers"]
    r = await gw.client.get("/api/streams", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers


async def test_unauthenticated_calls_are_refused_when_auth_is_on(start_gateway: StartGateway) -> None:
    gw = await start_gateway(api_token="t0ken-for-tests")
    api = gw.client
    good = {"authorization": "Bearer t0ken-for-tests"}
    for method, path in (
        ("GET", "/api/printers"),
        ("GET", "/api/streams"),
        ("POST", "/api/cameras/c/live"),
        ("POST", "/whep/cam1"),
        ("GET", "/api/printers/x/status/stream"),
    ):
        r = await api.request(method, path)
        assert r.status_code == 401, path
        assert r.json()["ok"] is False and r.headers["www-authenticate"].startswith("Bearer")
        assert (await api.request(method, path, headers={"authorization": "Bearer nope"})).status_code == 401
    assert (await api.get("/api/printers", headers=good)).status_code == 200
    assert (await api.get("/api/printers", params={"token": "t0ken-for-tests"})).status_code == 200
    for path in ("/healthz", "/livez", "/readyz", "/metrics", "/openapi.json", "/docs"):
        assert (await api.get(path)).status_code == 200, path
    assert (await api.get("/hls/ghost/stream.m3u8")).status_code == 404  # open, answered
    assert (await api.options("/whep/cam1")).status_code == 204  # preflight-style OPTIONS: no token
    # Publishing needs the API token when no publish token is registered.
    r = await api.post("/ingest/cam1", content=b"\xff\xd8\xff\x00", headers={"content-type": "image/jpeg"})
    assert r.status_code == 401
    r = await api.post("/ingest/cam1", content=b"\xff\xd8\xff\x00", headers={"content-type": "image/jpeg", **good})
    assert r.status_code == 503
    # WebSockets: refused without the token, accepted with ?token=.
    with pytest.raises(InvalidStatus) as info:
        async with connect(f"{gw.ws_url}/ws/cam1", open_timeout=5):
            pass
    assert info.value.response.status_code == 401
    async with connect(f"{gw.ws_url}/ws/cam1?token=t0ken-for-tests", open_timeout=5) as ws:
        assert ws.protocol.state.name == "OPEN"


def test_auth_policy() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert needs_token("/api/printers", "GET") and needs_token("/ws/cam1", "GET") and needs_token("/whep/c", "POST")
    assert not needs_token("/api/printers", "OPTIONS")
    for path in (
        "/healthz",
        "/hls/c/stream.m3u8",
        "/whip/c",
        "/ingest/c",
        "/api/v1/webrtc/offer",
        "/",
        "/api/signaling/offer",
    ):
        assert not needs_token(path, "GET"), path


async def test_secure_default_generates_one_token_shared_by_replicas(bus: Bus, settings: Settings) -> None:
    """Resolved for a non-loopback host without binding it (tests listen on loopback only)."""
    lan = settings.model_copy(update={"http_host": "0.0.0.0"})
    first, printed = await resolve_auth(bus, lan)
    second, printed_again = await resolve_auth(bus, lan)
    assert first.required and printed and printed_again == ""
    assert second.check(printed) and first.check(printed) and not second.check("guess")
    off, _ = await resolve_auth(bus, lan.model_copy(update={"auth": "none"}))
    assert not off.required
    local, _ = await resolve_auth(bus, settings)
    assert not local.required
    kv = await bus.kv("camhub-gateway")
    stored = (await kv.get("api-token-sha256")).value or b""
    assert printed.encode() not in stored  # only the digest is stored


async def test_secrets_never_reach_the_log(gateway: RunningGateway, caplog: pytest.LogCaptureFixture) -> None:
    body = {
        "name": "P",
        "host": "10.0.0.2",
        "serial": "S1",
        "accessCode": "AC-77889900",
        "rtspUrl": "rtsps://bblp:pw-445566@10.0.0.2/live",
    }
    with caplog.at_level("DEBUG"):
        r = await gateway.client.post("/api/printers", json=body)
        await gateway.client.put("/api/printers/p", json=body)
        await gateway.client.get("/api/printers")
    assert r.status_code == 201
    text = caplog.text + json.dumps([x.__dict__ for x in caplog.records], default=str)
    assert "AC-77889900" not in text and "pw-445566" not in text
