"""Media over HTTP: the streams list, frame push (``POST /ingest/{stream}``) and the WebSocket relay.

* ``GET /api/streams`` / ``GET /api/streams/{stream}``: KV ``camhub-streams`` joined with the
  ingest's heartbeat figures and the viewers every service reports.
* ``POST /ingest/{stream}`` (briefs/frame-broker.md): one frame per request (JPEG, WebP, or one
  H.264/H.265 Annex B access unit), handed to ingest on ``camhub.ingest.push.<stream>``; 200 when
  at least one viewer watches the stream, 202 when none (ingest decides from heartbeats).
* ``GET /ws/{stream}`` and ``GET /stream/{stream}`` (WebSocket): the relay, message format in
  :mod:`services.gateway.wire`, queue policy in :mod:`services.gateway.fanout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from services.common import subjects
from services.common.bus import BusError
from services.common.ids import InvalidId, validate_id
from services.common.registry import Device
from services.common.streams import StreamInfo, get_info, list_infos
from services.gateway.errors import ApiError, bus_call, error_response, path_id, unavailable
from services.gateway.inputs import bearer, media_type, read_body
from services.gateway.models import ErrorBody, PushReply, StreamOut
from services.gateway.openapi import doc
from services.gateway.relay import Viewer
from services.gateway.state import Gateway, gateway

log = logging.getLogger("camhub.gateway.media")

PUSH_TYPES = ("image/jpeg", "image/jpg", "image/webp", "video/h264", "video/h265", "video/hevc")
CLOSE_TOO_SLOW = 4008
CLOSE_GOING_AWAY = 1001


def stream_out(gw: Gateway, info: StreamInfo) -> StreamOut:
    health = gw.board.health(info.stream)

    def num(key: str) -> float | None:
        v = health.get(key) if health else None
        return float(v) if isinstance(v, int | float) else None

    return StreamOut(
        stream=info.stream,
        codec=info.codec,
        width=info.width,
        height=info.height,
        fps=float(num("fps") or info.fps),
        source=info.source,
        owner=info.owner,
        up=info.up,
        epoch=info.epoch,
        started_at=info.started_at,
        bitrate=num("bitrate"),
        keyframe_interval=num("keyframe_interval"),
        last_frame_age=num("last_frame_age"),
        viewers=gw.board.viewers(info.stream),
        viewers_by_path=gw.board.viewers_by_service(info.stream),
        health=health,
    )


@doc(
    "List streams with codec, resolution, fps, bitrate, keyframe interval, viewers, health",
    "streams",
    responses={200: list[StreamOut]},
)
async def list_streams(request: Request) -> Response:
    gw = gateway(request)
    try:
        infos = await list_infos(gw.bus)
    except BusError:
        raise unavailable("the stream store (NATS KV)") from None
    return JSONResponse([stream_out(gw, i).model_dump(by_alias=True) for i in infos])


@doc("One stream", "streams", responses={200: StreamOut, 404: ErrorBody})
async def get_stream(request: Request) -> Response:
    gw = gateway(request)
    stream = path_id(request, "stream", "stream id")
    info = await get_info(gw.bus, stream)
    if info is None:
        raise ApiError(404, f"no stream {stream!r}")
    return JSONResponse(stream_out(gw, info).model_dump(by_alias=True))


def sniff(data: bytes) -> str:
    """The push media type of an untyped body: JPEG, WebP or Annex B H.264; "" if unknown."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:4] == b"\x00\x00\x00\x01" or data[:3] == b"\x00\x00\x01":
        return "video/h264"
    return ""


async def device_or_none(gw: Gateway, device_id: str) -> Device | None:
    try:
        return await gw.registry.get(device_id)
    except BusError:
        raise unavailable("the device registry (NATS KV)") from None
    except Exception:
        return None


async def check_publisher(gw: Gateway, stream: str, token: str) -> None:
    """Publish auth (WHIP, push, signaling): a stream with a registered ``publishToken`` needs that
    token (or the API token when API auth is on); other streams need the API token when API auth
    is on, nothing otherwise.  The token is also forwarded to ingest, which checks it again.

    Raises:
        ApiError: 401.
    """
    dev = await device_or_none(gw, stream)
    if dev is not None and dev.publish_token:
        if token and hmac.compare_digest(token.encode(), dev.publish_token.encode()):
            return
        if gw.auth.required and gw.auth.check(token):
            return
    elif gw.auth.check(token):
        return
    raise ApiError(
        401,
        "publishing needs the camera's publish token or the API token (Authorization: Bearer)",
        headers={"WWW-Authenticate": 'Bearer realm="camhub"'},
    )


def _header_int(request: Request, name: str) -> int | None:
    raw = request.headers.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer") from None
    if value < 0 or value >= 1 << 63:
        raise ApiError(400, f"{name} must be from 0 to 2^63-1")
    return value


@doc(
    "Push one frame (JPEG, WebP, or an H.264/H.265 Annex B access unit)",
    "streams",
    body="application/octet-stream",
    auth=False,
    description="Content-Type image/jpeg, image/webp, video/h264 or video/h265 (application/octet-stream or none: "
    "sniffed). Optional headers Camhub-Pts (90 kHz) and Camhub-Key (1/0). 200 when a viewer watches the "
    "stream, 202 when none.",
    responses={200: PushReply, 202: PushReply, 401: ErrorBody, 413: ErrorBody, 415: ErrorBody, 503: ErrorBody},
)
async def push_frame(request: Request) -> Response:
    gw = gateway(request)
    stream = path_id(request, "stream", "stream id")
    kind = media_type(request)
    if kind and kind not in PUSH_TYPES and kind != "application/octet-stream":
        raise ApiError(415, f"push accepts {', '.join(PUSH_TYPES)} (or application/octet-stream), not {kind!r}")
    limit = max(1024, min(gw.settings.push_max_bytes, gw.bus.max_payload - 4096))
    pts = _header_int(request, "camhub-pts")
    key = request.headers.get("camhub-key")
    if key is not None and key not in ("0", "1"):
        raise ApiError(400, "Camhub-Key must be 1 or 0")
    body = await read_body(request, limit)
    if not body:
        raise ApiError(400, "the body is empty; POST one frame")
    if kind in ("", "application/octet-stream"):
        kind = sniff(body)
        if not kind:
            raise ApiError(
                415, "cannot tell the frame's format; send Content-Type image/jpeg, image/webp or video/h264"
            )
    token = bearer(request.headers, request.query_params)
    await check_publisher(gw, stream, token)
    headers = {"Content-Type": kind, "Camhub-Token": token}
    if pts is not None:
        headers["Camhub-Pts"] = str(pts)
    if key is not None:
        headers["Camhub-Key"] = key
    reply = await bus_call(
        gw.bus, subjects.ingest_push(stream), None, what="the ingest service", raw=body, headers=headers
    )
    status = 200 if reply.get("status", 200) == 200 else 202
    viewers = reply.get("viewers", 0)
    return JSONResponse({"ok": True, "viewers": viewers if isinstance(viewers, int) else 0}, status_code=status)


# --- WebSocket relay ---------------------------------------------------------------------


async def _deny(websocket: WebSocket, status: int, message: str) -> None:
    """Refuse the handshake with an HTTP error when the server supports it, else close 1008."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(error_response(status, message))
    else:
        await websocket.close(code=1008, reason=message[:120])


async def _send_loop(websocket: WebSocket, viewer: Viewer) -> None:
    while not viewer.closed.is_set():
        item = viewer.queue.pop()
        if item is None:
            viewer.wake.clear()
            await viewer.wake.wait()
            continue
        if isinstance(item, str):
            await websocket.send_text(item)
        else:
            await websocket.send_bytes(item)
            viewer.sent += 1


async def _receive_loop(websocket: WebSocket) -> None:
    """Read (and ignore) client messages until the client closes."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


async def ws_relay(websocket: WebSocket) -> None:
    """``/ws/{stream}``, ``/stream/{stream}``: binary frames + ``info`` text messages."""
    gw = gateway(websocket)
    try:
        stream = validate_id(websocket.path_params.get("stream"), "stream id")
    except InvalidId as exc:
        await _deny(websocket, 400, str(exc))
        return
    if gw.shutdown.is_set():
        await _deny(websocket, 503, "the gateway is shutting down")
        return
    await websocket.accept()
    viewer = gw.hub.viewer(stream)
    try:
        await gw.hub.join(viewer)
    except BusError:
        await websocket.close(code=1011, reason="bus unavailable")
        return
    tasks: list[asyncio.Task[Any]] = [
        asyncio.create_task(_send_loop(websocket, viewer)),
        asyncio.create_task(_receive_loop(websocket)),
        asyncio.create_task(viewer.closed.wait()),
    ]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.debug("viewer of %s ended: %r", stream, task.exception())
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        await gw.hub.leave(viewer)
    if viewer.close_reason:
        code = CLOSE_TOO_SLOW if viewer.close_reason == "too slow" else CLOSE_GOING_AWAY
        log.info("closing viewer of %s: %s", stream, viewer.close_reason)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(websocket.close(code=code, reason=viewer.close_reason), 2.0)


routes = [
    Route("/api/streams", list_streams, methods=["GET"], name="list_streams"),
    Route("/api/streams/{stream}", get_stream, methods=["GET"], name="get_stream"),
    Route("/ingest/{stream}", push_frame, methods=["POST"], name="push_frame"),
    WebSocketRoute("/ws/{stream}", ws_relay, name="ws_relay"),
    WebSocketRoute("/stream/{stream}", ws_relay, name="ws_stream"),
]
