"""Reading request input safely: bounded bodies, JSON into pydantic models, bearer tokens.

Limits (docs/http.md "Limits"): JSON bodies 1 MiB, SDP bodies 64 KiB, pushed frames
``CAMHUB_PUSH_MAX_BYTES`` (capped by the bus ``max_payload``).  A body over its limit is refused
with 413 as soon as ``Content-Length`` says so, or while reading; nothing unbounded is buffered.
"""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request

from services.gateway.errors import ApiError

JSON_LIMIT = 1024 * 1024
SDP_LIMIT = 64 * 1024

M = TypeVar("M", bound=BaseModel)


def media_type(request: Request) -> str:
    """The request's media type, lower case, without parameters ("" when absent)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, at most ``limit`` bytes.

    Raises:
        ApiError: 413 when longer, 400 for a bad ``Content-Length`` or a client that left.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(400, "Content-Length is not a number") from None
        if size > limit:
            raise ApiError(413, f"body of {size} bytes is over the limit of {limit} bytes")
    chunks: list[bytes] = []
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise ApiError(413, f"body is over the limit of {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ApiError(400, "the client closed the connection before the body was complete") from None
    return b"".join(chunks)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{loc}: {err['msg']}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


async def read_json(request: Request, *, optional: bool = False) -> object:
    """The JSON body (<= 1 MiB).  ``optional``: an empty body reads as ``{}``.

    Raises:
        ApiError: 415 (a Content-Type that is not JSON), 413, 400 (not JSON / empty).
    """
    kind = media_type(request)
    if kind and kind != "application/json" and not kind.endswith("+json"):
        raise ApiError(415, f"expected Content-Type application/json, got {kind!r}")
    body = await read_body(request, JSON_LIMIT)
    if not body.strip():
        if optional:
            return {}
        raise ApiError(400, "the request needs a JSON body")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None


def parse_model(model: type[M], data: object) -> M:
    """Validate ``data`` (decoded JSON) as ``model``.

    Raises:
        ApiError: 400 when ``data`` is not an object, 422 naming the bad fields.
    """
    if not isinstance(data, dict):
        raise ApiError(400, f"expected a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, _describe(exc)) from None


async def read_model(request: Request, model: type[M], *, optional: bool = False) -> M:
    """:func:`read_json` then :func:`parse_model`."""
    return parse_model(model, await read_json(request, optional=optional))


def bearer(request_headers: object, query: object = None) -> str:
    """The bearer token of a request: ``Authorization: Bearer <t>``, else ``?token=<t>``; "" if none.

    ``request_headers``/``query`` are Starlette ``Headers``/``QueryParams`` (any mapping works).
    """
    get = getattr(request_headers, "get", None)
    auth = str(get("authorization", "") or "") if get else ""
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    qget = getattr(query, "get", None)
    if qget:
        token = qget("token")
        if isinstance(token, str):
            return token
    return ""
