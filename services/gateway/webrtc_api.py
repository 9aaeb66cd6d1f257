"""WebRTC over HTTP: WHIP (RFC 9725), WHEP (draft-ietf-wish-whep), camera signaling, the VMS offer.

WHIP ``POST /whip/{stream}`` and WHEP ``POST /whep/{stream}``: body ``application/sdp`` (the
offer, <= 64 KiB) -> ``201 Created``, ``Content-Type: application/sdp`` (the answer, complete:
aiortc gathers every candidate before answering, so no trickle is needed), ``Location:
/whip/{stream}/{session}``.  ``DELETE`` on the session URL ends it (200; 404 when no instance
holds it).  ``PATCH`` (trickle ICE / ICE restart, RFC 9725 s. 4.3) is answered 422 by the
session owner (or 404).  ``OPTIONS`` answers 204 with ``Accept-Post: application/sdp``.  A
missing ingest/egress is 503 + ``Retry-After: 1`` (RFC 9725 s. 4.7 load/overload).

``POST /api/signaling/offer`` (briefs/webrtc-camera-server.md): the JSON form of WHIP,
``{camera_id, sdp, type: "offer"}`` -> ``{type: "answer", sdp, session_id, camera_id}``.
``POST /api/signaling/answer`` is refused with 400: camhub never sends offers to cameras; the
camera's offer is answered directly by ``/api/signaling/offer``.

VMS (briefs/vms-webrtc-offer.md): ``POST /api/cameras/{id}/live`` -> a signed session token;
``POST /api/v1/webrtc/offer`` ``{camera_id, sdp, sdp_type, session_token}`` -> ``{sdp, sdp_type:
"answer", peer_id, expires_at}`` through egress.  Errors carry the brief's ``code`` and
``message`` as well as ``ok: false, error``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.common import subjects
from services.common.ids import InvalidId, validate_id
from services.common.streams import get_info
from services.gateway.errors import ApiError, bus_call, path_id
from services.gateway.inputs import SDP_LIMIT, bearer, media_type, parse_model, read_body, read_json, read_model
from services.gateway.media_api import check_publisher, device_or_none
from services.gateway.models import (
    ErrorBody,
    LiveRequest,
    LiveSession,
    SignalingAnswer,
    SignalingOffer,
    WebRtcAnswer,
    WebRtcOfferRequest,
)
from services.gateway.openapi import doc
from services.gateway.session_token import TokenError, mark_used
from services.gateway.state import Gateway, gateway

SDP = "application/sdp"
TRICKLE = "application/trickle-ice-sdpfrag"
EXPOSE = {"Access-Control-Expose-Headers": "Location, ETag, Link, Accept-Post"}
SESSION_SCHEMA = {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_-]{0,62}$"}


def check_offer(sdp: str) -> str:
    """``sdp`` when it looks like an SDP session description (RFC 8866: starts ``v=0``).

    Raises:
        ApiError: 400.
    """
    if not sdp.lstrip().startswith("v=0") or "\nm=" not in sdp.replace("\r\n", "\n"):
        raise ApiError(400, "the body is not an SDP offer (RFC 8866: it must start with v=0 and have an m= line)")
    return sdp


async def read_sdp(request: Request) -> str:
    """The ``application/sdp`` body.

    Raises:
        ApiError: 415 other media type, 413 over 64 KiB, 400 not UTF-8 / not an offer.
    """
    if media_type(request) != SDP:
        raise ApiError(415, f"expected Content-Type {SDP}")
    body = await read_body(request, SDP_LIMIT)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "the SDP is not UTF-8") from None
    return check_offer(text)


def _answer(reply: dict[str, Any], what: str) -> tuple[str, str]:
    sdp, session = reply.get("sdp"), reply.get("session")
    if not isinstance(sdp, str) or not isinstance(session, str):
        raise ApiError(502, f"{what} sent an answer without sdp/session")
    try:
        return sdp, validate_id(session, "session id")
    except InvalidId:
        raise ApiError(502, f"{what} sent an invalid session id") from None


async def _whip(gw: Gateway, stream: str, sdp: str, token: str) -> tuple[str, str]:
    await check_publisher(gw, stream, token)
    reply = await bus_call(
        gw.bus,
        subjects.INGEST_WHIP,
        {"stream": stream, "sdp": sdp, "token": token},
        what="the ingest service",
        timeout=gw.options.webrtc_timeout_s,
    )
    return _answer(reply, "the ingest service")


async def _whep(gw: Gateway, stream: str, sdp: str) -> tuple[str, str]:
    reply = await bus_call(
        gw.bus,
        subjects.EGRESS_WHEP,
        {"stream": stream, "sdp": sdp},
        what="the egress service",
        timeout=gw.options.webrtc_timeout_s,
    )
    return _answer(reply, "the egress service")


_CREATE: dict[int, type[BaseModel] | str | None] = {
    201: SDP,
    401: ErrorBody,
    404: ErrorBody,
    409: ErrorBody,
    413: ErrorBody,
    415: ErrorBody,
    422: ErrorBody,
    503: ErrorBody,
    504: ErrorBody,
}


@doc(
    "WHIP: publish a stream (RFC 9725)",
    "webrtc",
    body=SDP,
    responses=_CREATE,
    auth=False,
    description="Authorization: Bearer <publish token or API token>. 201 + Location: /whip/{stream}/{session}.",
)
async def whip_post(request: Request) -> Response:
    gw = gateway(request)
    stream = path_id(request, "stream", "stream id")
    sdp = await read_sdp(request)
    answer, session = await _whip(gw, stream, sdp, bearer(request.headers, request.query_params))
    return Response(
        answer, status_code=201, media_type=SDP, headers={"Location": f"/whip/{stream}/{session}", **EXPOSE}
    )


@doc("WHEP: play a stream (draft-ietf-wish-whep)", "webrtc", body=SDP, responses=_CREATE)
async def whep_post(request: Request) -> Response:
    gw = gateway(request)
    stream = path_id(request, "stream", "stream id")
    sdp = await read_sdp(request)
    answer, session = await _whep(gw, stream, sdp)
    return Response(
        answer, status_code=201, media_type=SDP, headers={"Location": f"/whep/{stream}/{session}", **EXPOSE}
    )


def _options(methods: str) -> Response:
    return Response(status_code=204, headers={"Accept-Post": SDP, "Allow": methods, **EXPOSE})


@doc("WHIP endpoint OPTIONS (Accept-Post)", "webrtc", responses={204: None}, auth=False)
async def whip_options(request: Request) -> Response:
    path_id(request, "stream", "stream id")
    return _options("OPTIONS, POST")


@doc("WHEP endpoint OPTIONS (Accept-Post)", "webrtc", responses={204: None}, auth=False)
async def whep_options(request: Request) -> Response:
    path_id(request, "stream", "stream id")
    return _options("OPTIONS, POST")


async def _session_op(request: Request, op: str, body: dict[str, Any]) -> dict[str, Any]:
    gw = gateway(request)
    stream = path_id(request, "stream", "stream id")
    session = path_id(request, "session", "session id")
    if request.url.path.startswith("/whip/"):  # /whep/ is covered by the API-token middleware
        await check_publisher(gw, stream, bearer(request.headers, request.query_params))
    return await bus_call(
        gw.bus,
        subjects.webrtc_session(session, op),
        {"stream": stream, **body},
        what="the WebRTC session",
        timeout=6.0,
        no_responders=ApiError(404, f"no WebRTC session {session!r}"),
    )


_SESSION_PATHS = {"session": SESSION_SCHEMA}


@doc("End a WHIP/WHEP session", "webrtc", responses={200: None, 404: ErrorBody}, path_schemas=_SESSION_PATHS)
async def session_delete(request: Request) -> Response:
    await _session_op(request, "delete", {})
    return Response(status_code=200)


@doc(
    "Trickle ICE / ICE restart (answered 422: not supported, the answer is complete)",
    "webrtc",
    body=TRICKLE,
    responses={204: None, 404: ErrorBody, 415: ErrorBody, 422: ErrorBody},
    path_schemas=_SESSION_PATHS,
)
async def session_patch(request: Request) -> Response:
    if media_type(request) != TRICKLE:
        raise ApiError(415, f"expected Content-Type {TRICKLE} (RFC 8840)")
    body = await read_body(request, SDP_LIMIT)
    await _session_op(
        request, "patch", {"sdpfrag": body.decode("utf-8", "replace"), "if_match": request.headers.get("if-match", "")}
    )
    return Response(status_code=204)


@doc("WHIP session OPTIONS", "webrtc", responses={204: None}, auth=False, path_schemas=_SESSION_PATHS)
async def session_options(request: Request) -> Response:
    path_id(request, "stream", "stream id")
    path_id(request, "session", "session id")
    return Response(status_code=204, headers={"Allow": "OPTIONS, PATCH, DELETE", **EXPOSE})


# --- camera signaling (briefs/webrtc-camera-server.md) ---------------------------------------


@doc(
    "Camera offer -> answer (JSON WHIP)",
    "signaling",
    body=SignalingOffer,
    auth=False,
    responses={200: SignalingAnswer, 401: ErrorBody, 409: ErrorBody, 422: ErrorBody, 503: ErrorBody},
)
async def signaling_offer(request: Request) -> Response:
    gw = gateway(request)
    offer = await read_model(request, SignalingOffer)
    if offer.type != "offer":
        raise ApiError(400, f"type must be 'offer', got {offer.type!r}")
    check_offer(offer.sdp)
    token = offer.token or bearer(request.headers, request.query_params)
    answer, session = await _whip(gw, offer.camera_id, offer.sdp, token)
    return JSONResponse(SignalingAnswer(sdp=answer, session_id=session, camera_id=offer.camera_id).model_dump())


@doc("Not used: camhub answers camera offers itself (always 400)", "signaling", responses={400: ErrorBody})
async def signaling_answer(request: Request) -> Response:
    raise ApiError(
        400,
        "camhub does not send offers to cameras, so there is no answer to post: the camera POSTs its offer to "
        "/api/signaling/offer and gets the answer in the response",
    )


# --- VMS flow (briefs/vms-webrtc-offer.md) ----------------------------------------------------


def vms_error(status: int, code: str, message: str) -> ApiError:
    return ApiError(status, message, extra={"code": code, "message": message})


@doc(
    "Start a live session: a signed token (<= 60 s) for /api/v1/webrtc/offer",
    "vms",
    body=LiveRequest,
    body_required=False,
    responses={200: LiveSession, 404: ErrorBody},
)
async def camera_live(request: Request) -> Response:
    gw = gateway(request)
    camera = path_id(request, "id", "camera id")
    body = await read_model(request, LiveRequest, optional=True)
    if await device_or_none(gw, camera) is None and await get_info(gw.bus, camera) is None:
        raise ApiError(404, f"no camera or stream {camera!r}")
    assert gw.signer is not None
    token, claims = gw.signer.issue(camera, body.user_id)
    return JSONResponse(
        LiveSession(
            session_token=token,
            offer_url="/api/v1/webrtc/offer",
            expires_at=claims.exp,
            live_session_id=claims.live_session_id,
        ).model_dump()
    )


_EGRESS_CODES = {
    400: "SDP_OFFER_INVALID",
    404: "STREAM_NOT_FOUND",
    422: "SDP_OFFER_INVALID",
    503: "SERVICE_UNAVAILABLE",
    504: "TIMEOUT",
}


@doc(
    "VMS viewer offer with a session token -> answer",
    "vms",
    body=WebRtcOfferRequest,
    auth=False,
    responses={200: WebRtcAnswer, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 503: ErrorBody},
)
async def vms_offer(request: Request) -> Response:
    gw = gateway(request)
    data = await read_json(request)
    if not isinstance(data, dict):
        raise vms_error(400, "REQUEST_INVALID", "expected a JSON object")
    if not isinstance(data.get("session_token"), str) or not data.get("session_token"):
        raise vms_error(401, "SESSION_TOKEN_INVALID", "session_token is missing")
    try:
        req = parse_model(WebRtcOfferRequest, data)
    except ApiError as exc:
        code = "SDP_OFFER_INVALID" if "sdp" in exc.message else "REQUEST_INVALID"
        raise vms_error(400, code, exc.message) from None
    assert gw.signer is not None
    try:
        claims = gw.signer.verify(req.session_token)
    except TokenError as exc:
        raise vms_error(exc.status, exc.code, exc.message) from None
    if claims.camera_id != req.camera_id:
        raise vms_error(403, "CAMERA_MISMATCH", "the session token does not belong to this camera")
    if req.sdp_type != "offer":
        raise vms_error(400, "SDP_OFFER_INVALID", f"sdp_type must be 'offer', got {req.sdp_type!r}")
    try:
        check_offer(req.sdp)
        stream = validate_id(req.camera_id, "camera id")
    except (ApiError, InvalidId) as exc:
        raise vms_error(
            400, "SDP_OFFER_INVALID" if isinstance(exc, ApiError) else "REQUEST_INVALID", str(exc)
        ) from None
    if not await mark_used(gw.bus, claims):
        raise vms_error(401, "SESSION_TOKEN_INVALID", "the session token was already used; ask for a new one")
    try:
        answer, session = await _whep(gw, stream, req.sdp)
    except ApiError as exc:
        raise ApiError(
            exc.status,
            exc.message,
            headers=exc.headers,
            extra={"code": _EGRESS_CODES.get(exc.status, "WEBRTC_FAILED"), "message": exc.message},
        ) from None
    return JSONResponse(WebRtcAnswer(sdp=answer, peer_id=session, expires_at=claims.exp).model_dump())


routes = [
    Route("/whip/{stream}", whip_post, methods=["POST"], name="whip"),
    Route("/whip/{stream}", whip_options, methods=["OPTIONS"], name="whip_options"),
    Route("/whip/{stream}/{session}", session_delete, methods=["DELETE"], name="whip_delete"),
    Route("/whip/{stream}/{session}", session_patch, methods=["PATCH"], name="whip_patch"),
    Route("/whip/{stream}/{session}", session_options, methods=["OPTIONS"], name="whip_session_options"),
    Route("/whep/{stream}", whep_post, methods=["POST"], name="whep"),
    Route("/whep/{stream}", whep_options, methods=["OPTIONS"], name="whep_options"),
    Route("/whep/{stream}/{session}", session_delete, methods=["DELETE"], name="whep_delete"),
    Route("/whep/{stream}/{session}", session_patch, methods=["PATCH"], name="whep_patch"),
    Route("/whep/{stream}/{session}", session_options, methods=["OPTIONS"], name="whep_session_options"),
    Route("/api/signaling/offer", signaling_offer, methods=["POST"], name="signaling_offer"),
    Route("/api/signaling/answer", signaling_answer, methods=["POST"], name="signaling_answer"),
    Route("/api/cameras/{id}/live", camera_live, methods=["POST"], name="camera_live"),
    Route("/api/v1/webrtc/offer", vms_offer, methods=["POST"], name="vms_offer"),
]
