"""schemathesis against the gateway's OpenAPI document, calling a real gateway process on a real
nats-server.

Every documented operation is called with generated input.  The checks: no 5xx except 503
carrying ``Retry-After`` (the documented answer when the service behind a route, e.g. control
or ingest, is not running, as in this test), and every 4xx/5xx body is ``{"ok": false, "error":
"<text>"}``.  The document is the one the process serves at ``/openapi.json`` (asserted equal
below); it is built in-process at import so pytest can parametrize over its operations.  The
SSE route is not in the document (it never ends) and WebSockets are not OpenAPI; both have their
own tests.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from services.gateway.app import openapi_document
from tests.support.nats import NatsServer, free_port
from tests.support.procs import ServiceProcess, service_env

for text_type in ("application/sdp", "application/trickle-ice-sdpfrag"):
    schemathesis.serializer.alias(text_type, "text/plain")

DOCUMENT = openapi_document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("schemathesis")
    server = NatsServer(root / "nats")
    server.start()
    port = free_port()
    gw = ServiceProcess("gateway", service_env(server.url, root / "data", CAMHUB_HTTP_PORT=str(port)), root).start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise TimeoutError(f"gateway did not start:\n{gw.log()[-2000:]}")
        yield url
    finally:
        gw.stop()
        server.stop()


def test_the_process_serves_this_document(base_url: str) -> None:
    served = httpx.get(f"{base_url}/openapi.json", timeout=5).json()
    assert served == DOCUMENT
    assert "/api/printers/{id}/status/stream" not in served["paths"]


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors_and_errors_are_json(case: Any, base_url: str) -> None:
    response = case.call(base_url=base_url, timeout=15)
    status = response.status_code
    if status >= 500:
        retry = response.headers.get("retry-after")
        retry = retry[0] if isinstance(retry, list) else retry  # schemathesis keeps header values as lists
        assert status == 503 and retry == "1", (
            f"{case.method} {case.formatted_path} -> {status}: {response.text[:300]}"
        )
    if status >= 400:
        body = response.json()
        assert body["ok"] is False and isinstance(body["error"], str) and body["error"], body
