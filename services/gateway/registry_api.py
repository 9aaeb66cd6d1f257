"""Printers and cameras REST (briefs/bambu-cam-hls.md s. 7, briefs/webrtc-camera-server.md).

Records live in KV ``camhub-devices`` through :class:`services.common.registry.Registry`
(printers are kind ``bambu``; cameras ``rtsp``/``webrtc``/``push``; one id space, and a device's
id is also its stream id).  Secrets are write-only (see :mod:`services.gateway.models`).
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.common.bus import BusError
from services.common.codec import PayloadError
from services.common.ids import is_valid_id, sanitize_token
from services.common.registry import Device, DeviceExists, redact_url, split_url_password
from services.gateway.errors import ApiError, path_id, unavailable
from services.gateway.inputs import read_model
from services.gateway.models import CameraIn, CameraOut, ErrorBody, PrinterIn, PrinterOut
from services.gateway.openapi import doc
from services.gateway.state import Gateway, gateway

CAMERA_KINDS = ("rtsp", "webrtc", "push")


def printer_out(dev: Device) -> dict[str, object]:
    return PrinterOut(
        id=dev.id,
        name=dev.name,
        host=dev.host,
        serial=dev.serial,
        access_code_set=bool(dev.access_code),
        rtsp_url=redact_url(dev.rtsp_url) if dev.rtsp_url else None,
        model=dev.model,
        mqtt_port=dev.mqtt_port,
        tls_ca_set=bool(dev.tls_ca),
        created_at=dev.created_at,
        updated_at=dev.updated_at,
    ).model_dump(by_alias=True)


def camera_out(dev: Device) -> dict[str, object]:
    return CameraOut(
        id=dev.id,
        name=dev.name or dev.id,
        kind=dev.kind,  # type: ignore[arg-type]
        rtsp_url=redact_url(dev.rtsp_url) if dev.rtsp_url else None,
        username=dev.username,
        password_set=bool(dev.password),
        publish_token_set=bool(dev.publish_token),
        created_at=dev.created_at,
        updated_at=dev.updated_at,
    ).model_dump(by_alias=True)


def keep_redacted_password(new: str | None, old: str) -> str:
    """``new`` with a ``****`` password (echoed from a GET) replaced by the one in ``old``."""
    if not new:
        return ""
    try:
        parts = urlsplit(new)
        if parts.password != "****":
            return new
    except ValueError:
        return new
    _, old_pw = split_url_password(old)
    user, host = parts.netloc.rsplit("@", 1)
    user = user.split(":", 1)[0]
    netloc = f"{user}:{quote(old_pw, safe='')}@{host}" if old_pw else f"{user}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


async def load(gw: Gateway, device_id: str, kinds: tuple[str, ...], what: str) -> Device:
    """The stored device of one of ``kinds``.

    Raises:
        ApiError: 404 when absent (or another kind), 503 bus down, 500 unreadable record.
    """
    try:
        dev = await gw.registry.get(device_id)
    except BusError:
        raise unavailable("the device registry (NATS KV)") from None
    except (ValueError, PayloadError) as exc:
        raise ApiError(500, f"the stored record of {device_id!r} cannot be read: {exc}") from None
    if dev is None or dev.kind not in kinds:
        raise ApiError(404, f"no {what} {device_id!r}")
    return dev


async def list_kind(gw: Gateway, kinds: tuple[str, ...]) -> list[Device]:
    try:
        return [d for d in await gw.registry.list() if d.kind in kinds]
    except BusError:
        raise unavailable("the device registry (NATS KV)") from None


async def unique_id(gw: Gateway, name: str, fallback: str) -> str:
    """A free id derived from ``name`` (``Studio X1`` -> ``studio-x1``, then ``-2``, ``-3``...)."""
    base = sanitize_token(name)[:56]
    if not is_valid_id(base) or base == "x":
        base = fallback
    taken = {d.id for d in await list_kind(gw, ("bambu", *CAMERA_KINDS))}
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


async def store_new(gw: Gateway, dev: Device) -> Device:
    try:
        return await gw.registry.create(dev)
    except DeviceExists:
        raise ApiError(409, f"a device with id {dev.id!r} already exists") from None
    except BusError:
        raise unavailable("the device registry (NATS KV)") from None


async def store(gw: Gateway, dev: Device) -> Device:
    try:
        return await gw.registry.put(dev)
    except BusError:
        raise unavailable("the device registry (NATS KV)") from None


# --- printers ---------------------------------------------------------------------------


@doc("List printers", "printers", responses={200: list[PrinterOut]})
async def list_printers(request: Request) -> Response:
    gw = gateway(request)
    return JSONResponse([printer_out(d) for d in await list_kind(gw, ("bambu",))])


@doc("Add a printer", "printers", body=PrinterIn, responses={201: PrinterOut, 409: ErrorBody, 422: ErrorBody})
async def create_printer(request: Request) -> Response:
    gw = gateway(request)
    body = await read_model(request, PrinterIn)
    if not body.access_code:
        raise ApiError(422, "accessCode is required when adding a printer")
    dev_id = body.id or await unique_id(gw, body.name, "printer")
    dev = Device.model_validate(
        {
            "id": dev_id,
            "kind": "bambu",
            "name": body.name.strip(),
            "host": body.host,
            "serial": body.serial,
            "access_code": body.access_code,
            "rtsp_url": body.rtsp_url or "",
            "model": body.model,
            "mqtt_port": body.mqtt_port,
            "tls_ca": body.tls_ca,
        }
    )
    dev = await store_new(gw, dev)
    return JSONResponse(printer_out(dev), status_code=201, headers={"Location": f"/api/printers/{dev.id}"})


@doc("Get a printer", "printers", responses={200: PrinterOut, 404: ErrorBody})
async def get_printer(request: Request) -> Response:
    gw = gateway(request)
    dev = await load(gw, path_id(request, "id", "printer id"), ("bambu",), "printer")
    return JSONResponse(printer_out(dev))


@doc(
    "Replace a printer (accessCode optional: absent keeps the stored one)",
    "printers",
    body=PrinterIn,
    responses={200: PrinterOut, 404: ErrorBody, 422: ErrorBody},
)
async def put_printer(request: Request) -> Response:
    gw = gateway(request)
    dev_id = path_id(request, "id", "printer id")
    body = await read_model(request, PrinterIn)
    old = await load(gw, dev_id, ("bambu",), "printer")
    if body.id is not None and body.id != dev_id:
        raise ApiError(400, f"the body's id {body.id!r} differs from the URL's {dev_id!r}; ids cannot change")
    dev = old.model_copy(
        update={
            "name": body.name.strip(),
            "host": body.host,
            "serial": body.serial,
            "access_code": body.access_code or old.access_code,
            "rtsp_url": keep_redacted_password(body.rtsp_url, old.rtsp_url),
            "model": body.model,
            "mqtt_port": body.mqtt_port,
            "tls_ca": body.tls_ca,
        }
    )
    return JSONResponse(printer_out(await store(gw, dev)))


@doc("Remove a printer", "printers", responses={204: None, 404: ErrorBody})
async def delete_printer(request: Request) -> Response:
    gw = gateway(request)
    dev_id = path_id(request, "id", "printer id")
    await load(gw, dev_id, ("bambu",), "printer")
    try:
        await gw.registry.delete(dev_id)
    except BusError:
        raise unavailable("the device registry (NATS KV)") from None
    return Response(status_code=204)


# --- cameras ----------------------------------------------------------------------------


@doc("List cameras", "cameras", responses={200: list[CameraOut]})
async def list_cameras(request: Request) -> Response:
    gw = gateway(request)
    return JSONResponse([camera_out(d) for d in await list_kind(gw, CAMERA_KINDS)])


def _camera_device(dev_id: str, body: CameraIn, old: Device | None) -> Device:
    password = body.password if body.password is not None else (old.password if old else "")
    token = body.publish_token if body.publish_token is not None else (old.publish_token if old else "")
    base = old or Device.model_validate({"id": dev_id, "kind": body.kind})
    return base.model_copy(
        update={
            "kind": body.kind,
            "name": body.name.strip(),
            "rtsp_url": keep_redacted_password(body.rtsp_url, old.rtsp_url if old else ""),
            "username": body.username,
            "password": password,
            "publish_token": token,
        }
    )


@doc("Add a camera", "cameras", body=CameraIn, responses={201: CameraOut, 409: ErrorBody, 422: ErrorBody})
async def create_camera(request: Request) -> Response:
    gw = gateway(request)
    body = await read_model(request, CameraIn)
    dev_id = body.id or await unique_id(gw, body.name, "camera")
    dev = await store_new(gw, _camera_device(dev_id, body, None))
    return JSONResponse(camera_out(dev), status_code=201, headers={"Location": f"/api/cameras/{dev.id}"})


@doc("Get a camera", "cameras", responses={200: CameraOut, 404: ErrorBody})
async def get_camera(request: Request) -> Response:
    gw = gateway(request)
    dev = await load(gw, path_id(request, "id", "camera id"), CAMERA_KINDS, "camera")
    return JSONResponse(camera_out(dev))


@doc(
    "Replace a camera (password/publishToken absent: kept; empty: cleared)",
    "cameras",
    body=CameraIn,
    responses={200: CameraOut, 404: ErrorBody, 422: ErrorBody},
)
async def put_camera(request: Request) -> Response:
    gw = gateway(request)
    dev_id = path_id(request, "id", "camera id")
    body = await read_model(request, CameraIn)
    old = await load(gw, dev_id, CAMERA_KINDS, "camera")
    if body.id is not None and body.id != dev_id:
        raise ApiError(400, f"the body's id {body.id!r} differs from the URL's {dev_id!r}; ids cannot change")
    return JSONResponse(camera_out(await store(gw, _camera_device(dev_id, body, old))))


@doc("Remove a camera", "cameras", responses={204: None, 404: ErrorBody})
async def delete_camera(request: Request) -> Response:
    gw = gateway(request)
    dev_id = path_id(request, "id", "camera id")
    await load(gw, dev_id, CAMERA_KINDS, "camera")
    try:
        await gw.registry.delete(dev_id)
    except BusError:
        raise unavailable("the device registry (NATS KV)") from None
    return Response(status_code=204)


routes = [
    Route("/api/printers", list_printers, methods=["GET"], name="list_printers"),
    Route("/api/printers", create_printer, methods=["POST"], name="create_printer"),
    Route("/api/printers/{id}", get_printer, methods=["GET"], name="get_printer"),
    Route("/api/printers/{id}", put_printer, methods=["PUT"], name="put_printer"),
    Route("/api/printers/{id}", delete_printer, methods=["DELETE"], name="delete_printer"),
    Route("/api/cameras", list_cameras, methods=["GET"], name="list_cameras"),
    Route("/api/cameras", create_camera, methods=["POST"], name="create_camera"),
    Route("/api/cameras/{id}", get_camera, methods=["GET"], name="get_camera"),
    Route("/api/cameras/{id}", put_camera, methods=["PUT"], name="put_camera"),
    Route("/api/cameras/{id}", delete_camera, methods=["DELETE"], name="delete_camera"),
]
