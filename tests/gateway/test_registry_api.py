"""Printers and cameras REST through real HTTP against a gateway on a real nats-server (KV)."""

from __future__ import annotations

import httpx

from services.common.bus import Bus
from services.common.registry import Registry
from tests.gateway.conftest import RunningGateway, StartGateway

PRINTER = {
    "name": "Studio X1",
    "host": "192.168.1.10",
    "serial": "00M1234ABC",
    "accessCode": "12345678",
    "rtspUrl": None,
}


async def test_printer_crud_follows_the_brief_contract(api: httpx.AsyncClient, bus: Bus) -> None:
    assert (await api.get("/api/printers")).json() == []
    r = await api.post("/api/printers", json=PRINTER)
    assert r.status_code == 201, r.text
    p = r.json()
    assert p["id"] == "studio-x1" and r.headers["location"] == "/api/printers/studio-x1"
    assert p["accessCodeSet"] is True and "accessCode" not in p and "12345678" not in r.text
    assert {"id", "name", "host", "serial", "rtspUrl", "model", "mqttPort"} <= set(p)

    # Same name again: a unique id is derived.
    assert (await api.post("/api/printers", json=PRINTER)).json()["id"] == "studio-x1-2"
    listed = (await api.get("/api/printers")).json()
    assert [x["id"] for x in listed] == ["studio-x1", "studio-x1-2"]

    # PUT without accessCode keeps the stored one.
    r = await api.put("/api/printers/studio-x1", json={**PRINTER, "name": "Renamed", "accessCode": None})
    assert r.status_code == 200 and r.json()["name"] == "Renamed"
    stored = await Registry(bus).get("studio-x1")
    assert stored is not None and stored.access_code == "12345678" and stored.kind == "bambu"
    r = await api.put("/api/printers/studio-x1", json={**PRINTER, "accessCode": "87654321"})
    stored = await Registry(bus).get("studio-x1")
    assert stored is not None and stored.access_code == "87654321"

    assert (await api.get("/api/printers/studio-x1")).json()["name"] == "Studio X1"
    r = await api.delete("/api/printers/studio-x1")
    assert r.status_code == 204 and r.content == b""
    r = await api.get("/api/printers/studio-x1")
    assert r.status_code == 404 and r.json() == {"ok": False, "error": "no printer 'studio-x1'"}


async def test_rtsp_password_is_redacted_and_an_echoed_redaction_keeps_it(api: httpx.AsyncClient, bus: Bus) -> None:
    body = {**PRINTER, "id": "p1", "rtspUrl": "rtsps://bblp:s3cret@192.168.1.10:322/streaming/live/1"}
    r = await api.post("/api/printers", json=body)
    assert r.status_code == 201
    assert r.json()["rtspUrl"] == "rtsps://bblp:****@192.168.1.10:322/streaming/live/1"
    assert "s3cret" not in r.text
    got = (await api.get("/api/printers/p1")).json()
    r = await api.put("/api/printers/p1", json={**PRINTER, "rtspUrl": got["rtspUrl"]})
    assert r.status_code == 200 and "s3cret" not in r.text
    stored = await Registry(bus).get("p1")
    assert stored is not None and stored.rtsp_url == "rtsps://bblp:s3cret@192.168.1.10:322/streaming/live/1"


async def test_printer_errors(api: httpx.AsyncClient) -> None:
    async def err(r: httpx.Response, status: int) -> str:
        assert r.status_code == status, r.text
        body = r.json()
        assert body["ok"] is False and isinstance(body["error"], str) and body["error"]
        return str(body["error"])

    assert "accessCode" in await err(await api.post("/api/printers", json={**PRINTER, "accessCode": None}), 422)
    assert "host" in await err(await api.post("/api/printers", json={**PRINTER, "host": "a b"}), 422)
    assert "rtspUrl" in await err(await api.post("/api/printers", json={**PRINTER, "rtspUrl": "http://x/"}), 422)
    assert "id" in await err(await api.post("/api/printers", json={**PRINTER, "id": "Bad.Id"}), 422)
    await err(await api.post("/api/printers", content=b"{nope", headers={"content-type": "application/json"}), 400)
    await err(await api.post("/api/printers", json=[1, 2]), 400)
    await err(await api.post("/api/printers", content=b"x", headers={"content-type": "text/plain"}), 415)
    await err(
        await api.post("/api/printers", content=b" " * (1024 * 1024 + 1), headers={"content-type": "application/json"}),
        413,
    )
    assert "invalid" in await err(await api.get("/api/printers/a.b"), 400)
    await err(await api.get("/api/printers/ghost"), 404)
    await err(await api.put("/api/printers/ghost", json=PRINTER), 404)
    await err(await api.delete("/api/printers/ghost"), 404)
    assert (await api.post("/api/printers", json={**PRINTER, "id": "dup"})).status_code == 201
    await err(await api.post("/api/printers", json={**PRINTER, "id": "dup"}), 409)
    await err(await api.put("/api/printers/dup", json={**PRINTER, "id": "other"}), 400)
    await err(await api.patch("/api/printers/dup", json=PRINTER), 405)
    await err(await api.get("/api/nothing-here"), 404)


async def test_camera_crud_with_write_only_secrets(api: httpx.AsyncClient, bus: Bus) -> None:
    r = await api.post(
        "/api/cameras",
        json={
            "name": "Door",
            "kind": "rtsp",
            "rtspUrl": "rtsp://cam.local/live",
            "username": "admin",
            "password": "hunter2",
        },
    )
    assert r.status_code == 201, r.text
    cam = r.json()
    assert cam["id"] == "door" and cam["passwordSet"] is True and "hunter2" not in r.text
    r = await api.post("/api/cameras", json={"id": "pushcam", "kind": "push", "publishToken": "tok-123"})
    assert r.status_code == 201 and r.json()["publishTokenSet"] is True and "tok-123" not in r.text
    assert [c["id"] for c in (await api.get("/api/cameras")).json()] == ["door", "pushcam"]
    # Cameras and printers are separate lists over one id space.
    assert (await api.get("/api/printers")).json() == []
    assert (await api.get("/api/printers/door")).status_code == 404
    assert (await api.post("/api/printers", json={**PRINTER, "id": "door"})).status_code == 409

    # PUT: absent password keeps it, "" clears it.
    r = await api.put("/api/cameras/door", json={"name": "Front door", "kind": "rtsp", "rtspUrl": "rtsp://cam.local/2"})
    assert r.status_code == 200 and r.json()["passwordSet"] is True
    r = await api.put("/api/cameras/door", json={"kind": "rtsp", "rtspUrl": "rtsp://cam.local/2", "password": ""})
    assert r.json()["passwordSet"] is False
    assert (await api.post("/api/cameras", json={"kind": "rtsp"})).status_code == 422
    assert (await api.post("/api/cameras", json={"kind": "smoke-signal"})).status_code == 422
    assert (await api.delete("/api/cameras/door")).status_code == 204
    assert (await api.get("/api/cameras/door")).status_code == 404


async def test_two_replicas_share_the_registry(gateway: RunningGateway, start_gateway: StartGateway) -> None:
    other = await start_gateway()
    assert (await gateway.client.post("/api/printers", json={**PRINTER, "id": "shared"})).status_code == 201
    got = await other.client.get("/api/printers/shared")
    assert got.status_code == 200 and got.json()["serial"] == PRINTER["serial"]
