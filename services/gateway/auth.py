"""API-token authentication (DESIGN.md section 6, docs/http.md "Auth").

Modes, decided once at start by :func:`resolve_auth`:

* ``CAMHUB_AUTH=none``: no API token anywhere (deployments behind Zero Trust).
* ``CAMHUB_API_TOKEN`` set: that token is required.
* neither, and the gateway binds a loopback address: no token (a local, single-user hub).
* neither, and a non-loopback address: the secure default.  The first replica generates a
  token, prints it once to stdout (never to the JSON log) and stores only its SHA-256 in KV
  ``camhub-gateway`` (key ``api-token-sha256``, create-if-absent) so every replica accepts it.

Which requests need it (:func:`needs_token`): ``/api/*``, ``/whep/*``, ``/ws/*``, ``/stream/*``.
Exempt: CORS preflights, health/ops routes, ``/hls/*`` (hls.js cannot easily add headers, so
playback stays open; ``?token=`` is still accepted), the static UI, and the publish routes
(``/whip/*``, ``/ingest/*``, ``/api/signaling/offer``: they check the camera's publish token,
falling back to the API token) and ``/api/v1/webrtc/offer`` (its signed session token is the
credential).  Tokens come from ``Authorization: Bearer <t>`` (RFC 6750) or ``?token=<t>``
(browsers cannot set WebSocket headers).  Comparison is constant-time on SHA-256 digests.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass

from starlette.datastructures import Headers, QueryParams
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from services.common import subjects
from services.common.bus import Bus
from services.common.settings import Settings
from services.gateway.inputs import bearer

TOKEN_KEY = "api-token-sha256"

_EXEMPT_PREFIXES = ("/api/v1/webrtc/offer", "/api/signaling/offer")
_PROTECTED_PREFIXES = ("/api/", "/whep/", "/ws/", "/stream/")


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IPs (127.0.0.0/8, ::1)."""
    if host.strip().lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Auth:
    """The resolved mode: ``required`` False means every request passes."""

    required: bool
    token_sha256: bytes = b""

    def check(self, token: str) -> bool:
        """True when auth is off, or ``token`` is the API token."""
        if not self.required:
            return True
        return bool(token) and hmac.compare_digest(digest(token), self.token_sha256)


def needs_token(path: str, method: str) -> bool:
    """Whether a request for ``path`` must carry the API token (when auth is on)."""
    if method == "OPTIONS":
        return False
    if path.startswith(_EXEMPT_PREFIXES):
        return False
    return path.startswith(_PROTECTED_PREFIXES)


async def resolve_auth(bus: Bus, settings: Settings) -> tuple[Auth, str]:
    """Decide the mode (module docstring); returns ``(auth, generated)`` where ``generated`` is a
    new clear token this replica created and must print once, else "".

    Raises:
        BusError: KV ``camhub-gateway`` unreachable (secure default only).
    """
    if settings.auth.strip().lower() == "none":
        return Auth(required=False), ""
    if settings.api_token:
        return Auth(required=True, token_sha256=digest(settings.api_token)), ""
    if is_loopback(settings.http_host):
        return Auth(required=False), ""
    kv = await bus.kv(subjects.KV_GATEWAY)
    token = secrets.token_urlsafe(32)
    try:
        await kv.create(TOKEN_KEY, digest(token))
        return Auth(required=True, token_sha256=digest(token)), token
    except Exception:
        entry = await kv.get(TOKEN_KEY)
        return Auth(required=True, token_sha256=bytes(entry.value or b"")), ""


def unauthorized(message: str = "this route needs the API token (Authorization: Bearer <token>)") -> JSONResponse:
    return JSONResponse(
        {"ok": False, "error": message}, status_code=401, headers={"WWW-Authenticate": 'Bearer realm="camhub"'}
    )


class AuthMiddleware:
    """ASGI middleware enforcing :func:`needs_token` for HTTP and WebSocket requests.

    A refused WebSocket gets an HTTP 401 denial response when the server supports the
    ``websocket.http.response`` extension (uvicorn does), else a close with code 1008.
    """

    def __init__(self, app: ASGIApp, auth: Auth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.auth.required:
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET") if scope["type"] == "http" else "GET"
        if not needs_token(scope["path"], method):
            await self.app(scope, receive, send)
            return
        token = bearer(Headers(scope=scope), QueryParams(scope.get("query_string", b"")))
        if self.auth.check(token):
            await self.app(scope, receive, send)
            return
        response = unauthorized()
        if scope["type"] == "http":
            await response(scope, receive, send)
            return
        if "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": 401, "headers": response.raw_headers})
            await send({"type": "websocket.http.response.body", "body": response.body})
        else:
            await send({"type": "websocket.close", "code": 1008, "reason": "unauthorized"})
