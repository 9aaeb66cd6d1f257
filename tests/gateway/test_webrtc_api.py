"""WHIP/WHEP HTTP, camera signaling and the VMS token flow through real HTTP.

With no ingest/egress running, creating a session is 503 + Retry-After (RFC 9725 s. 4.7): that
is real behaviour, tested here.  The successful offer/answer paths run real aiortc peers
against the real ingest/egress services in ``test_e2e.py``.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import jwt
from aiortc import RTCPeerConnection

from services.gateway.state import GatewayOptions
from tests.gateway.conftest import RunningGateway, StartGateway

SDP_HEADERS = {"content-type": "application/sdp"}


async def real_offer(direction: str = "recvonly") -> str:
    """A real SDP offer from aiortc (video m-line)."""
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction=direction)
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


async def test_whip_and_whep_create_errors(api: httpx.AsyncClient) -> None:
    offer = await real_offer("sendonly")
    for path in ("/whip/cam1", "/whep/cam1"):
        r = await api.post(path, content=offer, headers=SDP_HEADERS)
        assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
        assert r.json()["ok"] is False
        r = await api.post(path, content=offer, headers={"content-type": "application/json"})
        assert r.status_code == 415
        r = await api.post(path, content="hello", headers=SDP_HEADERS)
        assert r.status_code == 400 and "SDP" in r.json()["error"]
        r = await api.post(path, content=b"\xff\xfe", headers=SDP_HEADERS)
        assert r.status_code == 400
        r = await api.post(path, content="v=0\r\n" + "a=x\r\n" * 20000, headers=SDP_HEADERS)
        assert r.status_code == 413
        assert (await api.post(path.replace("cam1", "Cam.1"), content=offer, headers=SDP_HEADERS)).status_code == 400


async def test_options_advertise_accept_post(api: httpx.AsyncClient) -> None:
    for path in ("/whip/cam1", "/whep/cam1"):
        r = await api.options(path)
        assert r.status_code == 204 and r.headers["accept-post"] == "application/sdp"
        assert "POST" in r.headers["allow"]
    r = await api.options("/whip/cam1/sess1")
    assert r.status_code == 204 and "DELETE" in r.headers["allow"]


async def test_session_delete_and_patch_without_an_owner(api: httpx.AsyncClient) -> None:
    for base in ("/whip/cam1/abc123", "/whep/cam1/abc123"):
        r = await api.delete(base)
        assert r.status_code == 404 and r.json() == {"ok": False, "error": "no WebRTC session 'abc123'"}
        r = await api.patch(
            base,
            content="a=candidate:1 1 udp 1 127.0.0.1 9 typ host",
            headers={"content-type": "application/trickle-ice-sdpfrag"},
        )
        assert r.status_code == 404
        r = await api.patch(base, content="x", headers={"content-type": "text/plain"})
        assert r.status_code == 415
        assert (await api.delete(base.replace("abc123", "a.b"))).status_code == 400


async def test_signaling_routes(api: httpx.AsyncClient) -> None:
    offer = await real_offer("sendonly")
    r = await api.post("/api/signaling/offer", json={"camera_id": "cam1", "sdp": offer, "type": "offer"})
    assert r.status_code == 503
    r = await api.post("/api/signaling/offer", json={"camera_id": "cam1", "sdp": offer, "type": "answer"})
    assert r.status_code == 400
    r = await api.post("/api/signaling/offer", json={"camera_id": "cam1", "sdp": "nope", "type": "offer"})
    assert r.status_code == 400
    r = await api.post("/api/signaling/offer", json={"camera_id": "a.b", "sdp": offer})
    assert r.status_code == 422
    r = await api.post("/api/signaling/answer", json={"camera_id": "cam1", "sdp": offer, "type": "answer"})
    assert r.status_code == 400 and "/api/signaling/offer" in r.json()["error"]


async def test_vms_live_session_token_flow_errors(gateway: RunningGateway, start_gateway: StartGateway) -> None:
    api = gateway.client
    assert (await api.post("/api/cameras/ghost/live")).status_code == 404
    assert (await api.post("/api/cameras", json={"id": "cam1", "kind": "webrtc"})).status_code == 201
    assert (await api.post("/api/cameras", json={"id": "cam2", "kind": "webrtc"})).status_code == 201
    r = await api.post("/api/cameras/cam1/live", json={"user_id": "alice"})
    assert r.status_code == 200, r.text
    live = r.json()
    assert live["offer_url"] == "/api/v1/webrtc/offer" and 0 < live["expires_at"] - time.time() <= 60
    claims = jwt.decode(live["session_token"], options={"verify_signature": False})
    assert claims["scope"] == "webrtc_offer" and claims["camera_id"] == "cam1" and claims["user_id"] == "alice"
    assert claims["live_session_id"] == live["live_session_id"]

    offer = await real_offer()
    url = "/api/v1/webrtc/offer"

    async def code(body: object, status: int, client: httpx.AsyncClient = api) -> str:
        r = await client.post(url, json=body)
        assert r.status_code == status, r.text
        b = r.json()
        assert b["ok"] is False and b["error"] and b["message"] == b["error"]
        return str(b["code"])

    good = {"camera_id": "cam1", "sdp": offer, "sdp_type": "offer", "session_token": live["session_token"]}
    assert await code({**good, "session_token": "garbage"}, 401) == "SESSION_TOKEN_INVALID"
    assert await code({k: v for k, v in good.items() if k != "session_token"}, 401) == "SESSION_TOKEN_INVALID"
    assert await code({**good, "camera_id": "cam2"}, 403) == "CAMERA_MISMATCH"
    assert await code({**good, "sdp": "not sdp"}, 400) == "SDP_OFFER_INVALID"
    assert await code({**good, "sdp_type": "answer"}, 400) == "SDP_OFFER_INVALID"
    # A replica accepts a token another one issued (shared signing key); no egress here -> 503.
    other = await start_gateway()
    assert await code(good, 503, other.client) == "SERVICE_UNAVAILABLE"
    # Single use: the same token again is refused, on any replica.
    assert await code(good, 401) == "SESSION_TOKEN_INVALID"


async def test_vms_expired_token(start_gateway: StartGateway) -> None:
    gw = await start_gateway(GatewayOptions(session_ttl_s=1))
    assert (await gw.client.post("/api/cameras", json={"id": "cam1", "kind": "webrtc"})).status_code == 201
    token = (await gw.client.post("/api/cameras/cam1/live")).json()["session_token"]
    deadline = jwt.decode(token, options={"verify_signature": False})["exp"]
    await asyncio.sleep(max(0.0, deadline + 1 - time.time()))
    r = await gw.client.post(
        "/api/v1/webrtc/offer", json={"camera_id": "cam1", "sdp": await real_offer(), "session_token": token}
    )
    assert r.status_code == 401 and r.json()["code"] == "SESSION_EXPIRED"
