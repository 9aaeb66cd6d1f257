"""Session tokens of the VMS flow: real HS256 JWTs (PyJWT) signed and checked; no network."""

from __future__ import annotations

import time

import jwt
import pytest

from services.gateway.session_token import MAX_TTL_S, SessionSigner, TokenError

KEY = b"k" * 32


def test_issue_then_verify_gives_the_brief_claims() -> None:
    signer = SessionSigner(KEY)
    token, claims = signer.issue("cam1", "alice")
    got = signer.verify(token)
    assert got == claims
    assert got.scope == "webrtc_offer" and got.camera_id == "cam1" and got.user_id == "alice"
    assert 0 < got.exp - time.time() <= MAX_TTL_S


def test_ttl_is_capped_at_60_s() -> None:
    assert SessionSigner(KEY, ttl=3600).ttl == 60


def _code(signer: SessionSigner, token: str) -> str:
    with pytest.raises(TokenError) as info:
        signer.verify(token)
    assert info.value.status == 401
    return info.value.code


def test_expired_token_is_session_expired() -> None:
    signer = SessionSigner(KEY)
    token, _ = signer.issue("cam1", "a", now=time.time() - 120)
    assert _code(signer, token) == "SESSION_EXPIRED"


def test_tampered_foreign_and_malformed_tokens_are_invalid() -> None:
    signer = SessionSigner(KEY)
    token, _ = signer.issue("cam1", "a")
    head, body, sig = token.split(".")
    assert _code(signer, f"{head}.{body}.{sig[::-1]}") == "SESSION_TOKEN_INVALID"
    assert _code(SessionSigner(b"x" * 32), token) == "SESSION_TOKEN_INVALID"
    assert _code(signer, "not-a-token") == "SESSION_TOKEN_INVALID"
    assert _code(signer, "") == "SESSION_TOKEN_INVALID"


def test_wrong_scope_or_too_long_life_is_invalid() -> None:
    signer = SessionSigner(KEY)
    now = int(time.time())
    base = {"live_session_id": "s", "camera_id": "cam1", "user_id": "u", "jti": "s", "iat": now}
    other_scope = jwt.encode({**base, "scope": "admin", "exp": now + 30}, KEY, algorithm="HS256")
    assert _code(signer, other_scope) == "SESSION_TOKEN_INVALID"
    long_life = jwt.encode({**base, "scope": "webrtc_offer", "exp": now + 3600}, KEY, algorithm="HS256")
    assert _code(signer, long_life) == "SESSION_TOKEN_INVALID"
    none_alg = jwt.encode({**base, "scope": "webrtc_offer", "exp": now + 30}, "", algorithm="none")
    assert _code(signer, none_alg) == "SESSION_TOKEN_INVALID"


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        SessionSigner(b"short")
