"""HLS delivery: ``GET /hls/{stream}/{file}`` answered by the stream's packager over the bus.

The request is made by :func:`services.hls.client.hls_get` (``camhub.hls.<stream>.get``,
docs/bus.md "HLS"; it reassembles bodies chunked above ``max_payload``), with ``query`` holding
only the LL-HLS delivery directives ``_HLS_msn``, ``_HLS_part``, ``_HLS_skip`` (RFC 8216bis
s. 6.2.5), validated here first (400).  A blocking playlist reload waits up to 3 x target
duration + 2 s (the packager answers 503 after 3 x target).  ``Content-Type`` and
``Cache-Control`` come from the packager; when it leaves them out, :func:`delivery_headers`
supplies them (playlists ``no-cache``, media segments and parts ``immutable``; errors
``no-store``).  ``client`` (a hash of address and User-Agent, never the address itself) lets
the packager count HLS viewers.

404 only for what never existed: no such stream, or one whose codec HLS cannot carry.  A
stream that is known but down (a camera reconnecting) or whose packager is starting gets 503 +
``Retry-After: 1``, so players retry rather than give up.  No API token is needed (hls.js and
native players cannot easily add headers; docs/http.md "Auth").
"""

from __future__ import annotations

import hashlib
import json
import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.common.streams import get_info
from services.gateway.errors import ApiError, path_id
from services.gateway.models import ErrorBody
from services.gateway.openapi import Query, doc
from services.gateway.state import gateway
from services.hls.client import hls_get
from services.hls.wire import PACKAGED_CODECS

FILE_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")
DIRECTIVES = ("_HLS_msn", "_HLS_part", "_HLS_skip")
IMMUTABLE = "public, max-age=31536000, immutable"
_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".aac": "audio/aac",
}


def delivery_headers(path: str) -> tuple[str, str]:
    """``(Content-Type, Cache-Control)`` of an HLS file by its name."""
    dot = path.rfind(".")
    ext = path[dot:].lower() if dot >= 0 else ""
    ctype = _TYPES.get(ext, "application/octet-stream")
    return ctype, ("no-cache" if ext == ".m3u8" else IMMUTABLE)


def directives(request: Request) -> dict[str, str]:
    """The LL-HLS query directives, validated.

    Raises:
        ApiError: 400 for a non-numeric ``_HLS_msn``/``_HLS_part``, ``_HLS_part`` without
        ``_HLS_msn`` (RFC 8216bis s. 6.2.5.2), or a ``_HLS_skip`` other than YES/v2.
    """
    out: dict[str, str] = {}
    for name in DIRECTIVES:
        value = request.query_params.get(name)
        if value is None:
            continue
        if name in ("_HLS_msn", "_HLS_part") and (not value.isdigit() or len(value) > 18):
            raise ApiError(400, f"{name} must be a non-negative integer")
        if name == "_HLS_skip" and value not in ("YES", "v2"):
            raise ApiError(400, "_HLS_skip must be YES or v2")
        out[name] = value
    if "_HLS_part" in out and "_HLS_msn" not in out:
        raise ApiError(400, "_HLS_part needs _HLS_msn")
    return out


def _error_text(data: bytes, status: int) -> str:
    try:
        body = json.loads(data)
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            return str(body["error"])
    except ValueError:
        pass
    text = data[:300].decode("utf-8", "replace").strip()
    return text or f"HLS request failed with status {status}"


def client_id(request: Request) -> str:
    """An opaque viewer id for the packager's viewer count (no address leaves the gateway)."""
    host = request.client.host if request.client else ""
    agent = request.headers.get("user-agent", "")
    return hashlib.sha256(f"{host}|{agent}".encode()).hexdigest()[:16]


async def _known_but_down(request: Request, stream: str) -> bool:
    info = await get_info(gateway(request).bus, stream)
    return info is not None and not info.up and info.codec in PACKAGED_CODECS


@doc(
    "HLS playlist, segment, part or init section",
    "hls",
    auth=False,
    query=[
        Query("_HLS_msn", {"type": "string", "pattern": "^[0-9]{1,18}$"}, "blocking reload: media sequence number"),
        Query("_HLS_part", {"type": "string", "pattern": "^[0-9]{1,18}$"}, "blocking reload: part index"),
        Query("_HLS_skip", {"type": "string", "enum": ["YES", "v2"]}, "playlist delta update"),
    ],
    path_schemas={"path": {"type": "string", "pattern": FILE_RE.pattern}},
    responses={200: "application/vnd.apple.mpegurl", 404: ErrorBody, 503: ErrorBody, 504: ErrorBody},
)
async def hls_file(request: Request) -> Response:
    gw = gateway(request)
    stream = path_id(request, "stream", "stream id")
    path = str(request.path_params.get("path", ""))
    if not FILE_RE.fullmatch(path) or ".." in path:
        raise ApiError(400, "an HLS file name is letters, digits, '_', '-' and '.', like stream.m3u8 or seg000001.ts")
    query = directives(request)
    status, headers, body = await hls_get(gw.bus, stream, path, query, client=client_id(request))
    if status == 404 and await _known_but_down(request, stream):
        status = 503
    if status != 200:
        extra = {"Retry-After": headers.get("Retry-After", "1")} if status == 503 else {}
        raise ApiError(
            status if 400 <= status <= 599 else 502,
            _error_text(body, status),
            headers={"Cache-Control": "no-store", **extra},
        )
    ctype, cache = delivery_headers(path)
    return Response(
        body,
        status_code=200,
        media_type=headers.get("Content-Type") or ctype,
        headers={"Cache-Control": headers.get("Cache-Control") or cache},
    )


routes = [Route("/hls/{stream}/{path:path}", hls_file, methods=["GET"], name="hls")]
