"""``/openapi.json``: the OpenAPI 3.1 document of the gateway's HTTP routes, built from the routes.

Each endpoint is annotated with :func:`doc` (summary, body model or media type, responses,
query parameters, whether it needs the API token); :func:`build_spec` walks the Starlette routes
so the document cannot drift from the routing table.  JSON Schemas come from pydantic
(``models_json_schema``).  Starlette has no OpenAPI generator of its own for typed bodies, and
FastAPI would replace the whole app, hence this small builder.  WebSocket routes are not part
of OpenAPI; docs/http.md describes them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar, get_args, get_origin

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute, Mount, Route

from services.common.ids import ID_PATTERN

F = TypeVar("F", bound=Callable[..., Any])
ID_SCHEMA = {"type": "string", "pattern": ID_PATTERN}
_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::[a-z]+)?}")


@dataclass(frozen=True)
class Query:
    name: str
    schema: dict[str, Any]
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Doc:
    summary: str
    tag: str
    body: type[BaseModel] | str | None = None
    body_required: bool = True
    responses: dict[int, Any] = field(default_factory=dict)
    query: tuple[Query, ...] = ()
    auth: bool = True
    description: str = ""
    path_schemas: dict[str, dict[str, Any]] = field(default_factory=dict)


def doc(
    summary: str,
    tag: str,
    *,
    body: type[BaseModel] | str | None = None,
    body_required: bool = True,
    responses: dict[int, Any] | None = None,
    query: Iterable[Query] = (),
    auth: bool = True,
    description: str = "",
    path_schemas: dict[str, dict[str, Any]] | None = None,
) -> Callable[[F], F]:
    """Attach OpenAPI metadata to an endpoint.  ``body``/``responses`` values are a pydantic
    model (JSON), ``list[Model]`` (a JSON array), a media type string (``application/sdp``), or
    None (no body)."""

    def mark(fn: F) -> F:
        fn.__openapi__ = Doc(  # type: ignore[attr-defined]
            summary,
            tag,
            body,
            body_required,
            dict(responses or {}),
            tuple(query),
            auth,
            description,
            dict(path_schemas or {}),
        )
        return fn

    return mark


def _model_of(spec: Any) -> type[BaseModel] | None:
    """The model of ``Model`` or ``list[Model]``."""
    if get_origin(spec) is list:
        spec = get_args(spec)[0]
    return spec if isinstance(spec, type) and issubclass(spec, BaseModel) else None


def _content(spec: Any, refs: dict[type[BaseModel], str]) -> dict[str, Any] | None:
    if spec is None:
        return None
    if get_origin(spec) is list:
        return {"application/json": {"schema": {"type": "array", "items": {"$ref": refs[get_args(spec)[0]]}}}}
    if isinstance(spec, str):
        schema: dict[str, Any] = (
            {"type": "string"} if not spec.startswith("application/octet") else {"type": "string", "format": "binary"}
        )
        if spec in ("image/jpeg", "image/webp", "video/h264", "video/h265", "video/mp2t", "video/mp4"):
            schema = {"type": "string", "format": "binary"}
        return {spec: {"schema": schema}}
    return {"application/json": {"schema": {"$ref": refs[spec]}}}


_REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    410: "Gone",
    413: "Body too large",
    415: "Unsupported media type",
    422: "Unprocessable",
    502: "Bad gateway",
    503: "Service unavailable (Retry-After)",
    504: "Gateway timeout",
}


def _walk(routes: Iterable[BaseRoute]) -> Iterable[Route]:
    for route in routes:
        if isinstance(route, Route):
            yield route
        elif isinstance(route, Mount) and route.routes:
            yield from _walk(route.routes)


def build_spec(routes: Iterable[BaseRoute], version: str, error_model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI document for every documented :class:`Route` in ``routes``."""
    entries: list[tuple[Route, str, Doc]] = []
    for route in _walk(routes):
        d = getattr(route.endpoint, "__openapi__", None)
        if not isinstance(d, Doc):
            continue
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                entries.append((route, method.lower(), d))
    models: set[type[BaseModel]] = {error_model}
    for _, _, d in entries:
        for spec in (d.body, *d.responses.values()):
            m = _model_of(spec)
            if m is not None:
                models.add(m)
    ordered = sorted(models, key=lambda m: m.__name__)
    keyed, defs = models_json_schema(
        [(m, "serialization") for m in ordered], ref_template="#/components/schemas/{model}"
    )
    refs = {m: keyed[(m, "serialization")]["$ref"] for m in ordered}
    paths: dict[str, dict[str, Any]] = {}
    for route, method, d in entries:
        path = _PARAM.sub(r"{\1}", route.path)
        params: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": d.path_schemas.get(name, ID_SCHEMA)}
            for name in _PARAM.findall(route.path)
        ]
        params += [
            {"name": q.name, "in": "query", "required": q.required, "schema": q.schema, "description": q.description}
            for q in d.query
        ]
        op: dict[str, Any] = {
            "summary": d.summary,
            "tags": [d.tag],
            "operationId": f"{method}_{route.name}",
            "parameters": params,
            "responses": {},
        }
        if d.description:
            op["description"] = d.description
        if d.auth:
            op["security"] = [{"bearer": []}]
        body = _content(d.body, refs)
        if body is not None:
            op["requestBody"] = {"required": d.body_required, "content": body}
        for status, spec in sorted({**d.responses, 400: error_model, 500: error_model}.items()):
            entry: dict[str, Any] = {"description": _REASONS.get(status, "Response")}
            content = _content(spec, refs)
            if content is not None:
                entry["content"] = content
            op["responses"][str(status)] = entry
        if d.auth:
            op["responses"].setdefault("401", {"description": _REASONS[401], "content": _content(error_model, refs)})
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "camhub gateway",
            "version": version,
            "description": "camhub's HTTP API. The full contract, with WebSocket and SSE details, is docs/http.md.",
        },
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
