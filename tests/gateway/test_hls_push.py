"""HLS proxy and frame push edge behaviour through real HTTP, with no hls/ingest running.

The successful paths (a real hls muxer, a real ingest) are in ``test_e2e.py``.
"""

from __future__ import annotations

import httpx

from services.common.bus import Bus
from services.common.streams import StreamInfo, publish_info
from services.gateway.hls_api import delivery_headers
from tests.gateway.conftest import RunningGateway

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


async def test_hls_404_only_for_streams_that_never_existed(api: httpx.AsyncClient, bus: Bus) -> None:
    r = await api.get("/hls/ghost/stream.m3u8")
    assert r.status_code == 404 and r.json()["ok"] is False and r.headers["cache-control"] == "no-store"
    await publish_info(bus, StreamInfo(stream="cam1", codec="h264", source="push"))
    r = await api.get("/hls/cam1/stream.m3u8")
    assert r.status_code == 503 and r.headers["retry-after"] == "1"


async def test_hls_bad_names_and_directives(api: httpx.AsyncClient) -> None:
    for path in ("/hls/cam1/a/b.ts", "/hls/cam1/.hidden", "/hls/cam1/%2e%2e%2fsecret", "/hls/Bad.Id/stream.m3u8"):
        assert (await api.get(path)).status_code == 400, path
    for q in ({"_HLS_msn": "x"}, {"_HLS_part": "1"}, {"_HLS_msn": "-1"}, {"_HLS_skip": "NO"}):
        r = await api.get("/hls/cam1/stream_ll.m3u8", params=q)
        assert r.status_code == 400, q


def test_delivery_headers_by_file_kind() -> None:
    assert delivery_headers("stream.m3u8") == ("application/vnd.apple.mpegurl", "no-cache")
    assert delivery_headers("seg000001.ts")[0] == "video/mp2t"
    assert delivery_headers("part000001.2.m4s") == ("video/iso.segment", "public, max-age=31536000, immutable")
    assert delivery_headers("init.mp4")[0] == "video/mp4"


async def test_push_errors_without_ingest(gateway: RunningGateway) -> None:
    api = gateway.client
    r = await api.post("/ingest/cam1", content=JPEG, headers={"content-type": "image/jpeg"})
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    # Untyped bodies are sniffed (the frame-broker producer posts raw WebP).
    webp = b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 16
    assert (await api.post("/ingest/cam1", content=webp)).status_code == 503
    r = await api.post("/ingest/cam1", content=b"hello")
    assert r.status_code == 415
    r = await api.post("/ingest/cam1", content=JPEG, headers={"content-type": "text/html"})
    assert r.status_code == 415
    r = await api.post("/ingest/cam1", content=b"", headers={"content-type": "image/jpeg"})
    assert r.status_code == 400
    big = b"\xff\xd8\xff" + b"\x00" * gateway.settings.push_max_bytes
    r = await api.post("/ingest/cam1", content=big, headers={"content-type": "image/jpeg"})
    assert r.status_code == 413
    r = await api.post("/ingest/cam1", content=JPEG, headers={"content-type": "image/jpeg", "camhub-pts": "soon"})
    assert r.status_code == 400
    r = await api.post("/ingest/cam1", content=JPEG, headers={"content-type": "image/jpeg", "camhub-key": "maybe"})
    assert r.status_code == 400
    assert (await api.post("/ingest/no.pe", content=JPEG)).status_code == 400


async def test_push_to_a_camera_with_a_publish_token(api: httpx.AsyncClient) -> None:
    r = await api.post("/api/cameras", json={"id": "pc", "kind": "push", "publishToken": "s3cret-token"})
    assert r.status_code == 201
    r = await api.post("/ingest/pc", content=JPEG, headers={"content-type": "image/jpeg"})
    assert r.status_code == 401 and "publish token" in r.json()["error"]
    r = await api.post(
        "/ingest/pc", content=JPEG, headers={"content-type": "image/jpeg", "authorization": "Bearer wrong"}
    )
    assert r.status_code == 401
    r = await api.post(
        "/ingest/pc", content=JPEG, headers={"content-type": "image/jpeg", "authorization": "Bearer s3cret-token"}
    )
    assert r.status_code == 503  # accepted by the gateway; no ingest to hand it to
