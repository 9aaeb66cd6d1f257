"""Short-lived signed viewer tokens of the VMS flow (briefs/vms-webrtc-offer.md s. 3).

``POST /api/cameras/{id}/live`` issues a JWT (RFC 7519, HS256 = HMAC-SHA256, via PyJWT) with
the brief's claims ``{live_session_id, camera_id, user_id, scope: "webrtc_offer", exp}`` (plus
``iat`` and ``jti`` = ``live_session_id``), ``exp`` at most 60 s ahead.  ``POST
/api/v1/webrtc/offer`` verifies it; :class:`TokenError` carries the brief's error code and the
HTTP status.  Tokens are single use: :func:`mark_used` records the ``jti`` in KV
``camhub-tokens`` (create-if-absent, bucket TTL 120 s > the token lifetime) so a replayed token
fails on every replica.

The signing key (:func:`signing_key`): ``CAMHUB_SESSION_KEY``, else derived from
``CAMHUB_SECRET_KEY`` (HMAC-SHA256 with a fixed label), else 32 random bytes created once per
cluster in KV ``camhub-gateway`` (key ``session-key``), so all replicas accept each other's tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass

import jwt

from services.common import subjects
from services.common.bus import Bus
from services.common.settings import Settings

SCOPE = "webrtc_offer"
MAX_TTL_S = 60
USED_TTL_S = 120
KEY_NAME = "session-key"


class TokenError(Exception):
    """A session token was refused; ``code`` and ``status`` as the VMS brief defines them."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message


def invalid(message: str) -> TokenError:
    return TokenError("SESSION_TOKEN_INVALID", 401, message)


@dataclass(frozen=True)
class Claims:
    """Verified token claims; ``exp`` in s since the Unix epoch."""

    live_session_id: str
    camera_id: str
    user_id: str
    scope: str
    exp: int


class SessionSigner:
    """Issue and verify session tokens with one HMAC key; ``ttl`` is clamped to 1..60 s."""

    def __init__(self, key: bytes, ttl: int = MAX_TTL_S) -> None:
        if len(key) < 16:
            raise ValueError("session signing key must be at least 16 bytes")
        self._key = key
        self.ttl = max(1, min(MAX_TTL_S, ttl))

    def issue(self, camera_id: str, user_id: str, *, now: float | None = None) -> tuple[str, Claims]:
        """A new token for ``camera_id``; returns ``(token, claims)``."""
        issued = int(now if now is not None else time.time())
        claims = Claims(uuid.uuid4().hex, camera_id, user_id, SCOPE, issued + self.ttl)
        payload = {
            "live_session_id": claims.live_session_id,
            "camera_id": camera_id,
            "user_id": user_id,
            "scope": SCOPE,
            "exp": claims.exp,
            "iat": issued,
            "jti": claims.live_session_id,
        }
        return jwt.encode(payload, self._key, algorithm="HS256"), claims

    def verify(self, token: str) -> Claims:
        """The claims of a valid, unexpired ``webrtc_offer`` token.

        Raises:
            TokenError: ``SESSION_EXPIRED`` (401) past ``exp``; ``SESSION_TOKEN_INVALID`` (401)
            for a bad signature, malformed token, wrong scope, missing claim or ``exp`` more
            than 60 s after ``iat``.
        """
        if not token:
            raise invalid("session_token is missing")
        try:
            payload = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                options={"require": ["exp", "iat", "jti", "scope", "camera_id", "live_session_id"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("SESSION_EXPIRED", 401, "the session token has expired; ask for a new one") from None
        except jwt.PyJWTError as exc:
            raise invalid(f"the session token is not valid: {exc}") from None
        if payload.get("scope") != SCOPE:
            raise invalid(f"the session token's scope is not {SCOPE!r}")
        try:
            exp, iat = int(payload["exp"]), int(payload["iat"])
        except (TypeError, ValueError):
            raise invalid("the session token's times are not numbers") from None
        if exp - iat > MAX_TTL_S:
            raise invalid("the session token lives longer than 60 s")
        fields = ("live_session_id", "camera_id", "user_id")
        values = [payload.get(f, "") for f in fields]
        if not all(isinstance(v, str) for v in values):
            raise invalid("the session token's claims are malformed")
        return Claims(values[0], values[1], values[2], SCOPE, exp)


async def signing_key(bus: Bus, settings: Settings) -> bytes:
    """The cluster's token signing key (module docstring).

    Raises:
        BusError: KV ``camhub-gateway`` unreachable (only when no key is configured).
    """
    if settings.session_key:
        return hashlib.sha256(settings.session_key.encode()).digest()
    if settings.secret_key:
        return hmac.new(settings.secret_key.encode(), b"camhub vms session tokens", hashlib.sha256).digest()
    kv = await bus.kv(subjects.KV_GATEWAY)
    try:
        await kv.create(KEY_NAME, secrets.token_bytes(32))
    except Exception:
        pass
    entry = await kv.get(KEY_NAME)
    return bytes(entry.value or b"")


async def mark_used(bus: Bus, claims: Claims) -> bool:
    """Record the token as used; False when it was used before (on any replica).

    Raises:
        BusError: KV ``camhub-tokens`` unreachable.
    """
    kv = await bus.kv(subjects.KV_TOKENS, ttl=USED_TTL_S)
    try:
        await kv.create(claims.live_session_id, str(claims.exp).encode())
    except Exception as exc:
        if "wrong last sequence" in str(exc).lower() or "exists" in str(exc).lower():
            return False
        raise
    return True
