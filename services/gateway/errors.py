"""HTTP errors of the gateway and the one mapping from bus outcomes to HTTP statuses.

Every 4xx/5xx the gateway sends is JSON ``{"ok": false, "error": "<a sentence>"}`` (some routes
add fields, e.g. the VMS ``code``).  Handlers raise :class:`ApiError`; the exception handlers
installed by :func:`exception_handlers` turn it, Starlette's ``HTTPException`` (unknown route ->
404, wrong method -> 405) and any unexpected exception (500, logged, no details leaked) into that
body.

:func:`bus_call` is the single place where bus results become HTTP (docs/http.md "Errors"):

* ``NoResponders`` (nobody subscribes the subject) -> 503 + ``Retry-After: 1``;
* ``BusTimeout`` -> 504;
* ``BusError`` (connection closed or draining) -> 503 + ``Retry-After: 1``;
* a reply that is not a msgpack map -> 502;
* a reply ``{ok: false, status, error}`` -> ``status`` (400-599, else 502) with ``error``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.common import codec
from services.common.bus import Bus, BusError, BusTimeout, NoResponders
from services.common.ids import InvalidId, validate_id

log = logging.getLogger("camhub.gateway")


class ApiError(Exception):
    """An HTTP error answer: ``status`` with body ``{"ok": false, "error": message, **extra}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, headers=self.headers, extra=self.extra)


def error_response(
    status: int, message: str, *, headers: Mapping[str, str] | None = None, extra: Mapping[str, Any] | None = None
) -> JSONResponse:
    """The JSON error body every gateway route uses."""
    body: dict[str, Any] = {"ok": False, "error": message}
    body.update(extra or {})
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def path_id(request: Request, name: str, what: str) -> str:
    """The path parameter ``name`` validated with the id rule.

    Raises:
        ApiError: 400 naming the rule.
    """
    try:
        return validate_id(request.path_params.get(name), what)
    except InvalidId as exc:
        raise ApiError(400, str(exc)) from None


RETRY_AFTER = {"Retry-After": "1"}


def unavailable(what: str) -> ApiError:
    """503 + ``Retry-After: 1``: the service behind a route is not running."""
    return ApiError(503, f"{what} is not available right now; retry shortly", headers=RETRY_AFTER)


def reply_error(reply: Mapping[str, Any], default_status: int = 502) -> ApiError:
    """An :class:`ApiError` from a ``{ok: false, status, error}`` bus reply."""
    status = reply.get("status")
    if not isinstance(status, int) or not 400 <= status <= 599:
        status = default_status
    message = reply.get("error")
    if not isinstance(message, str) or not message:
        message = "the service refused the request"
    headers = RETRY_AFTER if status == 503 else None
    return ApiError(status, message, headers=headers)


async def bus_call(
    bus: Bus,
    subject: str,
    payload: Any,
    *,
    what: str,
    timeout: float = 5.0,
    no_responders: ApiError | None = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Request ``subject`` and return the ``ok: true`` reply map.

    ``payload`` is sent as msgpack unless ``raw`` bytes (with ``headers``) are given.
    ``what`` names the service in error messages ("the control service").
    ``no_responders`` replaces the default 503 (e.g. 404 for a session no instance holds).

    Raises:
        ApiError: as the module docstring lists.
    """
    try:
        if raw is not None:
            msg = await bus.request(subject, raw, timeout=timeout, headers=headers)
            reply = codec.unpack_map(msg.data)
        else:
            reply = await bus.request_obj(subject, payload, timeout=timeout)
    except NoResponders:
        raise (no_responders or unavailable(what)) from None
    except BusTimeout:
        raise ApiError(504, f"{what} did not answer within {timeout:g} s") from None
    except BusError as exc:
        log.warning("bus unavailable for %s: %s", subject, exc)
        raise unavailable(what) from None
    except codec.PayloadError:
        raise ApiError(502, f"{what} sent a reply camhub cannot read") from None
    if reply.get("ok") is not True:
        raise reply_error(reply)
    return reply


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {404: "no such route", 405: "method not allowed on this route"}.get(exc.status_code, str(exc.detail))
    return error_response(exc.status_code, message, headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s: %s", request.method, request.url.path, type(exc).__name__, exc_info=exc)
    return error_response(500, f"internal error ({type(exc).__name__})")


def exception_handlers() -> dict[Any, Any]:
    """The handlers for ``Starlette(exception_handlers=...)``."""
    return {ApiError: _api_error, HTTPException: _http_error, Exception: _unexpected}
