"""A minimal WHIP HTTP endpoint (RFC 9725) for the tests, in front of ``camhub.ingest.whip``.

The gateway (another engineer's piece) serves the real one; FFmpeg's WHIP muxer and Chromium
need *some* HTTP endpoint, so this shim translates: ``POST /whip/<stream>`` (``application/sdp``,
``Authorization: Bearer``) -> bus request -> ``201 Created`` + ``Location`` + answer;
``DELETE /whip/<stream>/<session>`` -> ``camhub.webrtc.session.<session>.delete``.  It also
serves the static test page for Chromium at ``/page``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from services.common import subjects
from services.common.bus import Bus
from tests.support.nats import free_port


def make_app(bus: Bus, page: str = "") -> Starlette:
    async def post(request: Request) -> Response:
        stream = request.path_params["stream"]
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        sdp = (await request.body()).decode(errors="replace")
        reply = await bus.request_obj(subjects.INGEST_WHIP, {"stream": stream, "sdp": sdp, "token": token}, timeout=15)
        if not reply.get("ok"):
            return JSONResponse({"ok": False, "error": reply.get("error")}, status_code=int(reply.get("status", 500)))
        return Response(
            reply["sdp"],
            status_code=201,
            media_type="application/sdp",
            headers={"Location": f"/whip/{stream}/{reply['session']}"},
        )

    async def delete(request: Request) -> Response:
        sid = request.path_params["session"]
        try:
            reply = await bus.request_obj(subjects.webrtc_session(sid, "delete"), {}, timeout=6)
        except Exception:
            return JSONResponse({"ok": False, "error": "no such session"}, status_code=404)
        return JSONResponse(reply)

    async def patch(request: Request) -> Response:
        return JSONResponse({"ok": False, "error": "trickle ICE is not supported"}, status_code=422)

    async def page_route(request: Request) -> Response:
        return HTMLResponse(page)

    return Starlette(
        routes=[
            Route("/whip/{stream}", post, methods=["POST"]),
            Route("/whip/{stream}/{session}", delete, methods=["DELETE"]),
            Route("/whip/{stream}/{session}", patch, methods=["PATCH"]),
            Route("/page", page_route, methods=["GET"]),
        ]
    )


@contextlib.asynccontextmanager
async def whip_shim(bus: Bus, page: str = "") -> AsyncIterator[str]:
    """Serve the shim on 127.0.0.1:<free port>; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(make_app(bus, page), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)
