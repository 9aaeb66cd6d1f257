"""The Starlette application: routing table, middleware and error handlers (docs/http.md).

Middleware, outermost first: CORS (only when ``CAMHUB_CORS_ORIGINS`` is set: ``*`` or a comma
list of origins; preflights are answered before auth, as RFC 9725 s. 4.5 wants), then
:class:`~services.gateway.auth.AuthMiddleware`.  The UI catch-all is last.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute

from services import __version__
from services.gateway import hls_api, media_api, ops_api, registry_api, status_api, webrtc_api
from services.gateway.auth import AuthMiddleware
from services.gateway.errors import exception_handlers
from services.gateway.models import ErrorBody
from services.gateway.openapi import build_spec
from services.gateway.state import Gateway

CORS_HEADERS = ["Authorization", "Content-Type", "If-Match", "Camhub-Pts", "Camhub-Key"]
CORS_EXPOSE = ["Location", "ETag", "Link", "Accept-Post", "Retry-After"]


def cors_origins(value: str) -> list[str]:
    """``CAMHUB_CORS_ORIGINS`` as a list ("" -> no CORS)."""
    return [o.strip() for o in value.split(",") if o.strip()]


def all_routes(web_dir: Path) -> list[BaseRoute]:
    """The routing table; ``web_dir`` is the built UI (catch-all, last)."""
    return [
        *ops_api.routes,
        *registry_api.routes,
        *status_api.routes,
        *media_api.routes,
        *webrtc_api.routes,
        *hls_api.routes,
        *ops_api.ui_routes(web_dir),
    ]


def openapi_document(routes: list[BaseRoute] | None = None) -> dict[str, Any]:
    """The OpenAPI document of ``routes`` (default: the whole routing table)."""
    return build_spec(routes if routes is not None else all_routes(Path("/nonexistent")), __version__, ErrorBody)


def build_app(gw: Gateway) -> Starlette:
    """The ASGI app serving ``gw``."""
    middleware = []
    origins = cors_origins(gw.settings.cors_origins)
    if origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=origins,
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
                allow_headers=CORS_HEADERS,
                expose_headers=CORS_EXPOSE,
                max_age=600,
            )
        )
    middleware.append(Middleware(AuthMiddleware, auth=gw.auth))
    routes = all_routes(gw.options.web_dir)
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=exception_handlers())
    app.state.gateway = gw
    app.state.openapi = openapi_document(routes)
    app.state.stream_registry = ops_api.stream_registry(gw)
    return app
