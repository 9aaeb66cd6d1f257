"""``hls_get``: what the gateway calls to answer ``GET /hls/<stream>/<path>?<query>``.

One request on ``camhub.hls.<stream>.get`` (docs/bus.md, "HLS"), answered by the hls instance
that owns the stream.  Returns ``(status, headers, body)`` ready for an HTTP response:

* 200 with the bytes and ``Content-Type`` / ``Cache-Control`` (``Retry-After`` on 503);
* the packager's own 400 / 404 / 503 with a JSON body ``{"ok": false, "error", "status"}``;
* 400 when ``stream`` is not a valid id (nothing is sent on the bus);
* 404 when nobody owns the stream because it does not exist, is down, or carries a codec HLS
  cannot package (JPEG, WebP, VP8, VP9), with the reason in the body;
* 503 (``Retry-After: 1``) when the stream is up but no packager answers yet (one is starting,
  or a replica is taking over after the owner died);
* 504 when the owner did not answer within ``timeout``.

Bodies larger than the NATS ``max_payload`` arrive in chunks (``Camhub-Total`` header); this
function fetches the rest and returns the whole body.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

from services.common import codec, subjects
from services.common.bus import Bus, BusError, BusTimeout, NoResponders
from services.common.ids import is_valid_id
from services.common.streams import get_info
from services.hls.wire import H_STATUS, H_TOTAL, PACKAGED_CODECS

PASSED_HEADERS = ("Content-Type", "Cache-Control", "Retry-After")


def _error(status: int, message: str) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json", "Cache-Control": "no-store"}
    if status == 503:
        headers["Retry-After"] = "1"
    return status, headers, json.dumps({"ok": False, "error": message, "status": status}).encode()


def default_timeout(bus: Bus) -> float:
    """3 x the target duration + 2 s (a blocking playlist request may take 3 x target)."""
    return 3 * math.ceil(bus.settings.hls_segment_seconds) + 2.0


async def _why_nobody(bus: Bus, stream: str) -> tuple[int, dict[str, str], bytes]:
    info = await get_info(bus, stream)
    if info is None:
        return _error(404, f"no stream {stream}")
    if info.codec not in PACKAGED_CODECS:
        return _error(
            404, f"stream {stream} carries {info.codec}: HLS needs a video codec ({', '.join(PACKAGED_CODECS)})"
        )
    if not info.up:
        return _error(404, f"stream {stream} is down")
    return _error(503, f"the HLS packager of stream {stream} is starting; retry")


async def hls_get(
    bus: Bus,
    stream: str,
    path: str,
    query: Mapping[str, str] | None = None,
    *,
    client: str | None = None,
    timeout: float | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """Fetch ``/hls/<stream>/<path>?<query>`` over the bus; see the module docstring.

    ``client``: an opaque viewer id for the hls viewer count (e.g. a hash of address and
    User-Agent).  ``timeout`` in s (default :func:`default_timeout`).  Never raises for bus
    trouble; it becomes 503/504.
    """
    if not is_valid_id(stream):
        return _error(400, f"stream id {stream[:80]!r} is invalid")
    subject = subjects.hls_get(stream)
    timeout = default_timeout(bus) if timeout is None else timeout
    req: dict[str, object] = {"path": path, "query": dict(query or {})}
    if client:
        req["client"] = client
    chunks: list[bytes] = []
    total = -1
    while True:
        try:
            msg = await bus.request(subject, codec.pack(req), timeout=timeout, headers=codec.HEADERS)
        except NoResponders:
            return await _why_nobody(bus, stream)
        except BusTimeout:
            return _error(504, f"the HLS packager of stream {stream} did not answer within {timeout:g} s")
        except BusError as exc:
            return _error(503, f"bus unavailable: {exc}")
        headers = dict(msg.headers or {})
        try:
            status = int(headers.get(H_STATUS, "502"))
        except ValueError:
            status = 502
        out = {k: headers[k] for k in PASSED_HEADERS if k in headers}
        if H_TOTAL not in headers or status != 200:
            if not chunks:
                return status, out, bytes(msg.data)
            return _error(502, "a chunked HLS reply broke off")
        chunks.append(bytes(msg.data))
        got = sum(len(c) for c in chunks)
        total = int(headers[H_TOTAL])
        if got >= total or not msg.data:
            return status, out, b"".join(chunks)[:total]
        req = {**req, "offset": got}
