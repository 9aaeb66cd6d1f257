"""Status and commands: printers (control service) and cameras (ingest data channel).

* ``GET /api/printers/{id}/status``: the latest normalized status from KV ``camhub-status``
  (docs/bus.md "Device status"), or a placeholder ``{"connected": false, "state": "unknown"}``
  before control has reported one.
* ``GET /api/printers/{id}/status/stream``: SSE (WHATWG HTML "Server-sent events"): ``event:
  status`` with the current status first, then each update of ``camhub.device.<id>.status``;
  ``: ping`` keep-alive comments every 15 s; a client that leaves is unsubscribed at once.
* ``GET /api/printers/{id}/status/history?minutes=60&points=500``: chart points.
* ``POST /api/printers/{id}/command`` -> ``camhub.device.<id>.cmd`` -> ``{"ok": true}``.
* ``GET /api/cameras/{id}/status`` and ``POST /api/cameras/{id}/start|stop|config`` ->
  ``camhub.camera.<id>.cmd`` (the ingest holding the camera's data channel) -> ``{ok, ack}``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.common import codec, subjects
from services.common.bus import BusError
from services.common.streams import get_info
from services.gateway import history
from services.gateway.errors import ApiError, bus_call, path_id, unavailable
from services.gateway.inputs import read_model
from services.gateway.media_api import stream_out
from services.gateway.models import CameraConfig, CameraStatus, CommandReply, ErrorBody, History, Ok, PrinterCommand
from services.gateway.openapi import Query, doc
from services.gateway.registry_api import CAMERA_KINDS, load
from services.gateway.state import Gateway, gateway

STATUS_QUEUE = 16


def offer(queue: asyncio.Queue[dict[str, Any] | None], item: dict[str, Any] | None) -> None:
    """Put without waiting; a full queue loses its oldest status (a slow SSE client gets the
    newest statuses, never a growing backlog)."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(item)


def jsonable(obj: Any) -> Any:
    """``obj`` with bytes as base64 and map keys as strings, so it always serializes to JSON."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, bytes):
        return base64.b64encode(obj).decode()
    if isinstance(obj, float) and obj != obj:  # NaN is not JSON
        return None
    return obj


def placeholder(device_id: str) -> dict[str, Any]:
    """The status before control has published one."""
    return {
        "id": device_id,
        "connected": False,
        "online": False,
        "state": "unknown",
        "jobState": "UNKNOWN",
        "lastUpdate": None,
    }


async def current_status(gw: Gateway, device_id: str) -> dict[str, Any]:
    """The stored status of ``device_id`` (or the placeholder).

    Raises:
        ApiError: 503 when KV is unreachable.
    """
    try:
        kv = await gw.bus.kv(subjects.KV_STATUS)
    except BusError:
        raise unavailable("the status store (NATS KV)") from None
    try:
        entry = await kv.get(device_id)
    except Exception:
        return placeholder(device_id)
    if not entry.value:
        return placeholder(device_id)
    try:
        status = codec.unpack_map(entry.value)
    except codec.PayloadError:
        return placeholder(device_id)
    return jsonable(status)  # type: ignore[no-any-return]


@doc("Latest printer status", "printers", responses={200: None, 404: ErrorBody})
async def printer_status(request: Request) -> Response:
    gw = gateway(request)
    dev_id = path_id(request, "id", "printer id")
    await load(gw, dev_id, ("bambu",), "printer")
    return JSONResponse(await current_status(gw, dev_id))


async def status_stream(request: Request) -> Response:
    """SSE; not in OpenAPI's fuzzable set (it never ends), described in docs/http.md."""
    gw = gateway(request)
    dev_id = path_id(request, "id", "printer id")
    await load(gw, dev_id, ("bambu",), "printer")
    updates: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(STATUS_QUEUE)

    async def on_status(msg: Any) -> None:
        try:
            status = jsonable(codec.unpack_map(msg.data))
        except codec.PayloadError:
            return
        offer(updates, status)

    await current_status(gw, dev_id)  # 503 now, as an HTTP status, if KV is down

    async def events() -> AsyncIterator[dict[str, str]]:
        gw.sse_queues.add(updates)
        sub = None
        try:
            # Subscribe before reading the current status, so no update falls between the two.
            sub = await gw.bus.subscribe(subjects.device_status(dev_id), on_status)
            yield {"event": "status", "data": json.dumps(await current_status(gw, dev_id))}
            while not gw.shutdown.is_set():
                status = await updates.get()
                if status is None:  # the gateway is stopping
                    break
                yield {"event": "status", "data": json.dumps(status)}
        except (BusError, ApiError):
            return
        finally:
            gw.sse_queues.discard(updates)
            if sub is not None:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()

    return EventSourceResponse(
        events(), ping=gw.options.sse_ping_s, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


def _int_query(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer from {lo} to {hi}") from None
    if not lo <= value <= hi:
        raise ApiError(400, f"{name} must be from {lo} to {hi}")
    return value


@doc(
    "Printer status history for charts (downsampled)",
    "printers",
    query=[
        Query("minutes", {"type": "integer", "minimum": 1, "maximum": 1440}, "how far back (default 60)"),
        Query("points", {"type": "integer", "minimum": 10, "maximum": 2000}, "at most this many points (default 500)"),
    ],
    responses={200: History, 404: ErrorBody, 503: ErrorBody},
)
async def status_history(request: Request) -> Response:
    gw = gateway(request)
    dev_id = path_id(request, "id", "printer id")
    minutes = _int_query(request, "minutes", 60, 1, 1440)
    points = _int_query(request, "points", 500, 10, 2000)
    await load(gw, dev_id, ("bambu",), "printer")
    now_ms = int(time.time() * 1000)
    try:
        samples = await history.read_history(gw.bus, dev_id, minutes)
    except Exception as exc:
        raise ApiError(503, f"status history unavailable: {type(exc).__name__}", headers={"Retry-After": "1"}) from None
    pts = history.downsample(samples, points, now_ms - minutes * 60_000, now_ms)
    return JSONResponse({"ok": True, "id": dev_id, "minutes": minutes, "points": jsonable(pts)})


@doc(
    "Send a printer command (pause, resume, stop, light, speed, gcode)",
    "printers",
    body=PrinterCommand,
    responses={200: Ok, 404: ErrorBody, 409: ErrorBody, 422: ErrorBody, 502: ErrorBody, 503: ErrorBody, 504: ErrorBody},
)
async def printer_command(request: Request) -> Response:
    gw = gateway(request)
    dev_id = path_id(request, "id", "printer id")
    cmd = await read_model(request, PrinterCommand)
    await load(gw, dev_id, ("bambu",), "printer")
    await bus_call(
        gw.bus,
        subjects.device_cmd(dev_id),
        cmd.to_bus(),
        what="the control service",
        timeout=gw.settings.command_timeout_seconds + 1.0,
    )
    return JSONResponse({"ok": True})


@doc("Camera status (registry + stream + health)", "cameras", responses={200: CameraStatus, 404: ErrorBody})
async def camera_status(request: Request) -> Response:
    gw = gateway(request)
    dev_id = path_id(request, "id", "camera id")
    dev = await load(gw, dev_id, CAMERA_KINDS, "camera")
    info = await get_info(gw.bus, dev_id)
    stream = stream_out(gw, info) if info is not None else None
    body = CameraStatus(
        id=dev.id,
        kind=dev.kind,
        name=dev.name or dev.id,
        connected=bool(info is not None and info.up),
        stream=stream,
        viewers=gw.board.viewers(dev_id),
    )
    return JSONResponse(jsonable(body.model_dump(by_alias=True)))


async def _camera_cmd(request: Request, payload: dict[str, Any]) -> Response:
    gw = gateway(request)
    dev_id = path_id(request, "id", "camera id")
    await load(gw, dev_id, CAMERA_KINDS, "camera")
    reply = await bus_call(
        gw.bus,
        subjects.camera_cmd(dev_id),
        payload,
        what=f"camera {dev_id}",
        timeout=gw.settings.command_timeout_seconds + 1.0,
        no_responders=ApiError(
            503, f"camera {dev_id!r} is not connected to any ingest right now", headers={"Retry-After": "1"}
        ),
    )
    ack = reply.get("ack")
    return JSONResponse({"ok": True, "ack": jsonable(ack) if isinstance(ack, dict) else None})


_CAM_RESPONSES: dict[int, Any] = {200: CommandReply, 404: ErrorBody, 503: ErrorBody, 504: ErrorBody}


@doc("Start the camera's stream (data-channel command)", "cameras", responses=_CAM_RESPONSES)
async def camera_start(request: Request) -> Response:
    return await _camera_cmd(request, {"type": "start"})


@doc("Stop the camera's stream (data-channel command)", "cameras", responses=_CAM_RESPONSES)
async def camera_stop(request: Request) -> Response:
    return await _camera_cmd(request, {"type": "stop"})


@doc(
    "Change bitrate (kbit/s), fps or resolution",
    "cameras",
    body=CameraConfig,
    responses={**_CAM_RESPONSES, 422: ErrorBody},
)
async def camera_config(request: Request) -> Response:
    cfg = await read_model(request, CameraConfig)
    return await _camera_cmd(request, {"type": "config", **cfg.model_dump(exclude_none=True)})


routes = [
    Route("/api/printers/{id}/status", printer_status, methods=["GET"], name="printer_status"),
    Route("/api/printers/{id}/status/stream", status_stream, methods=["GET"], name="printer_status_stream"),
    Route("/api/printers/{id}/status/history", status_history, methods=["GET"], name="printer_status_history"),
    Route("/api/printers/{id}/command", printer_command, methods=["POST"], name="printer_command"),
    Route("/api/cameras/{id}/status", camera_status, methods=["GET"], name="camera_status"),
    Route("/api/cameras/{id}/start", camera_start, methods=["POST"], name="camera_start"),
    Route("/api/cameras/{id}/stop", camera_stop, methods=["POST"], name="camera_stop"),
    Route("/api/cameras/{id}/config", camera_config, methods=["POST"], name="camera_config"),
]
