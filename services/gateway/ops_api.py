"""Operations routes and the web UI.

* ``/healthz``, ``/health``: JSON ``{ok, status: running|degraded, service, version, instance,
  active_streams, total_connections, nats, services}`` (the frame broker's health shape plus
  camhub's fields); 200 even when degraded, so it doubles as a status page.
* ``/livez``: 200 while the process serves HTTP.  ``/readyz``: 200 when NATS and JetStream KV
  answer, else 503.
* ``/metrics``: Prometheus text (prometheus-client), the process's own metrics plus per-stream
  gauges built from heartbeats at scrape time (``camhub_stream_fps``, ``..._bitrate_bps``,
  ``..._viewers``, ``..._up``).
* ``/openapi.json`` and ``/docs`` (an HTML index of the operations, no external assets).
* ``/``: the built web UI from ``web/dist`` (``index.html`` for client-side routes), or a page
  saying how to build it.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from services import __version__
from services.common import subjects
from services.common.streams import list_infos
from services.gateway.errors import error_response
from services.gateway.models import ErrorBody, Health, Ok
from services.gateway.openapi import doc
from services.gateway.state import Gateway, gateway

#: Bound of each bus probe made by /health and /readyz (s): they answer promptly even while
#: NATS is unreachable.
PROBE_S = 2.0


async def health_body(gw: Gateway) -> dict[str, Any]:
    try:
        if not gw.bus.connected:
            raise ConnectionError("NATS is not connected")
        active = sum(1 for i in await asyncio.wait_for(list_infos(gw.bus), PROBE_S) if i.up)
        kv_ok = True
    except Exception:
        active, kv_ok = 0, False
    running = gw.bus.connected and kv_ok
    return Health(
        ok=running,
        status="running" if running else "degraded",
        service="camhub-gateway",
        version=__version__,
        instance=gw.instance,
        active_streams=active,
        total_connections=gw.connections(),
        nats=gw.bus.connected,
        services=gw.board.services(),
    ).model_dump()


@doc("Health (status, version, active streams, connections)", "ops", auth=False, responses={200: Health})
async def health(request: Request) -> Response:
    return JSONResponse(await health_body(gateway(request)))


@doc("Liveness", "ops", auth=False, responses={200: Ok})
async def livez(request: Request) -> Response:
    return JSONResponse({"ok": True})


@doc("Readiness: NATS and JetStream KV reachable", "ops", auth=False, responses={200: Ok, 503: ErrorBody})
async def readyz(request: Request) -> Response:
    gw = gateway(request)
    try:
        if not gw.bus.connected:
            raise ConnectionError
        await asyncio.wait_for(gw.bus.nc.flush(), PROBE_S)
    except Exception:
        return error_response(503, "NATS is not connected", headers={"Retry-After": "1"})
    try:
        kv = await asyncio.wait_for(gw.bus.kv(subjects.KV_DEVICES, history=5), PROBE_S)
        await asyncio.wait_for(kv.status(), PROBE_S)
    except Exception:
        return error_response(503, "JetStream KV is not reachable", headers={"Retry-After": "1"})
    return JSONResponse({"ok": True, "services": gw.board.services()})


class StreamCollector(Collector):
    """Per-stream gauges from the heartbeat board, computed at scrape time."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def collect(self) -> Iterator[GaugeMetricFamily]:
        fps = GaugeMetricFamily("camhub_stream_fps", "Frames per second (ingest heartbeat)", labels=["stream"])
        bitrate = GaugeMetricFamily(
            "camhub_stream_bitrate_bps", "Bitrate in bit/s (ingest heartbeat)", labels=["stream"]
        )
        viewers = GaugeMetricFamily("camhub_stream_viewers", "Viewers across all services", labels=["stream"])
        streams: set[str] = set()
        for beat in self.gw.board.live():
            s = beat.get("streams")
            if isinstance(s, dict):
                streams.update(str(k) for k in s)
            v = beat.get("viewers")
            if isinstance(v, dict):
                streams.update(str(k) for k in v)
        for stream in sorted(streams):
            h = self.gw.board.health(stream) or {}
            if isinstance(h.get("fps"), int | float):
                fps.add_metric([stream], float(h["fps"]))
            if isinstance(h.get("bitrate"), int | float):
                bitrate.add_metric([stream], float(h["bitrate"]))
            viewers.add_metric([stream], float(self.gw.board.viewers(stream)))
        yield fps
        yield bitrate
        yield viewers


@doc("Prometheus metrics", "ops", auth=False, responses={200: "text/plain"})
async def metrics(request: Request) -> Response:
    body = generate_latest(REGISTRY) + generate_latest(request.app.state.stream_registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def stream_registry(gw: Gateway) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StreamCollector(gw))
    return reg


@doc("This OpenAPI document", "ops", auth=False, responses={200: None})
async def openapi_json(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)


@doc("API docs page", "ops", auth=False, responses={200: "text/html"})
async def docs_page(request: Request) -> Response:
    spec = request.app.state.openapi
    rows = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            lock = "&#128274;" if op.get("security") else ""
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(op.get('summary', ''))}</td><td>{lock}</td></tr>"
            )
    page = (
        "<!doctype html><html><head><meta charset=utf-8><title>camhub API</title><style>"
        "body{font:14px system-ui,sans-serif;margin:2em}td{padding:2px 10px;border-bottom:1px solid #ddd}"
        "</style></head><body><h1>camhub gateway API</h1><p>Machine-readable: <a href=/openapi.json>/openapi.json"
        "</a>. &#128274; = needs the API token when auth is on. WebSocket and SSE details: docs/http.md.</p>"
        f"<table><tr><th>method</th><th>path</th><th>what</th><th></th></tr>{''.join(rows)}</table></body></html>"
    )
    return HTMLResponse(page)


NOT_BUILT = """<!doctype html><html><head><meta charset=utf-8><title>camhub</title></head>
<body style="font:15px system-ui,sans-serif;margin:3em;max-width:40em">
<h1>camhub is running</h1>
<p>The web UI has not been built. Build it once with:</p>
<pre>cd web &amp;&amp; npm ci &amp;&amp; npm run build</pre>
<p>and reload. Meanwhile: <a href="/docs">API docs</a>, <a href="/health">health</a>,
<a href="/api/streams">streams</a>.</p></body></html>"""

_API_PREFIXES = ("/api/", "/hls/", "/ws/", "/stream/", "/whip/", "/whep/", "/ingest/")


class SpaFiles(StaticFiles):
    """``StaticFiles`` that answers ``index.html`` for client-side routes (paths without a dot)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            return await super().get_response(path, scope)
        except HTTPException as exc:
            full = scope.get("path", "")
            if exc.status_code == 404 and "." not in path.rsplit("/", 1)[-1] and not full.startswith(_API_PREFIXES):
                return await super().get_response("index.html", scope)
            raise


async def not_built(request: Request) -> Response:
    return HTMLResponse(NOT_BUILT)


def ui_routes(web_dir: Path) -> list[BaseRoute]:
    """The catch-all UI mount (last in the routing table)."""
    if (web_dir / "index.html").is_file():
        return [Mount("/", app=SpaFiles(directory=web_dir, html=True), name="ui")]
    return [Route("/", not_built, methods=["GET"], name="ui")]


routes = [
    Route("/healthz", health, methods=["GET"], name="healthz"),
    Route("/health", health, methods=["GET"], name="health"),
    Route("/livez", livez, methods=["GET"], name="livez"),
    Route("/readyz", readyz, methods=["GET"], name="readyz"),
    Route("/metrics", metrics, methods=["GET"], name="metrics"),
    Route("/openapi.json", openapi_json, methods=["GET"], name="openapi"),
    Route("/docs", docs_page, methods=["GET"], name="docs"),
]
