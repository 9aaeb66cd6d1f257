"""Answers ``{path, query}`` for one packager: status, headers and bytes; waits where LL-HLS says.

The async shell around :mod:`services.hls.packager` and :mod:`services.hls.blocking`:

* ``stream.m3u8`` / ``stream_ll.m3u8``: 200 with the playlist.  Before the first segment is
  complete the request is held (a stream that just went up gets its playlist as soon as it
  exists, instead of a 404 players give up on).  ``stream_ll.m3u8`` honours ``_HLS_msn`` /
  ``_HLS_part`` (blocking reload); 400 for malformed or too-far-ahead directives; 503 when the
  wait exceeds three target durations.  404 when LL-HLS is off.
* ``seg*.ts``, ``seg*.m4s``, ``part*.m4s``, ``init*.mp4``: 200 with the bytes.  The part named by
  ``EXT-X-PRELOAD-HINT`` and the open segment are waited for like a blocking playlist (404 if
  the part ends up not being produced because its segment closed first); anything else not kept
  is 404.
* Errors carry a JSON body ``{"ok": false, "error": ..., "status": ...}``.

Headers: ``Camhub-Status``, ``Content-Type``, ``Cache-Control`` (``no-cache`` for playlists and
``init.mp4``, ``max-age=3600, immutable`` for segments and parts, ``no-store`` for errors),
``Retry-After`` on 503.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from services.hls import names
from services.hls.blocking import DirectiveError, Directives, parse_directives, ready
from services.hls.mux import TS_CODECS
from services.hls.names import Resource, UnknownResource
from services.hls.packager import StreamPackager
from services.hls.playlist import MPEGURL
from services.hls.wire import H_STATUS

IMMUTABLE = "max-age=3600, immutable"


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer: HTTP ``status``, ``headers`` (str -> str) and the ``body`` bytes."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def bus_headers(self) -> dict[str, str]:
        return {H_STATUS: str(self.status), **self.headers}


def error_reply(status: int, message: str) -> Reply:
    """A JSON error reply (``{"ok": false, "error", "status"}``), never cached."""
    body = json.dumps({"ok": False, "error": message, "status": status}).encode()
    headers = {"Content-Type": "application/json", "Cache-Control": "no-store"}
    if status == 503:
        headers["Retry-After"] = "1"
    return Reply(status, body, headers)


class HlsEndpoint:
    """Serves one :class:`StreamPackager`.  Call :meth:`notify` after every update.

    ``max_wait``: upper bound (s) of any wait, so the answer (a 503 at worst) reaches the gateway
    before its own request timeout; the LL-HLS bound of three target durations applies below it.
    """

    def __init__(self, packager: StreamPackager, *, max_wait: float | None = None) -> None:
        self.packager = packager
        self.max_wait = max_wait
        self._changed = asyncio.Event()
        self.waiting = 0

    def notify(self) -> None:
        """Wake every waiting request (a segment, part or init became available)."""
        self._changed.set()
        self._changed = asyncio.Event()

    def budget(self) -> float:
        """How long a request may wait, in s: 3 x EXT-X-TARGETDURATION, capped by ``max_wait``."""
        wait = 3.0 * self.packager.target_duration
        return min(wait, self.max_wait) if self.max_wait is not None else wait

    async def handle(self, path: str, query: Mapping[str, object]) -> Reply:
        """Answer one request (never raises for bad input; see the module docstring)."""
        try:
            res = names.parse(path)
        except UnknownResource as exc:
            return error_reply(404, str(exc))
        if res.kind in ("playlist", "playlist_ll"):
            return await self._playlist(res.kind == "playlist_ll", query)
        return await self._media(res)

    async def _wait(self, deadline: float) -> bool:
        """Wait for the next change until ``deadline`` (loop time); False when time is up."""
        loop = asyncio.get_running_loop()
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        event = self._changed
        self.waiting += 1
        try:
            await asyncio.wait_for(event.wait(), remaining)
        except TimeoutError:
            return False
        finally:
            self.waiting -= 1
        return True

    async def _playlist(self, ll: bool, query: Mapping[str, object]) -> Reply:
        pk = self.packager
        if ll and not pk.config.low_latency:
            return error_reply(404, "LL-HLS is off (CAMHUB_HLS_LOW_LATENCY=0); use stream.m3u8")
        directives = Directives()
        if ll:
            try:
                directives = parse_directives(query)
            except DirectiveError as exc:
                return error_reply(400, str(exc))
        deadline = asyncio.get_running_loop().time() + self.budget()
        while True:
            text = pk.playlist(ll)
            if text is not None:
                try:
                    if ready(directives, pk, pk.part_target):
                        return Reply(200, text.encode(), {"Content-Type": MPEGURL, "Cache-Control": "no-cache"})
                except DirectiveError as exc:
                    return error_reply(400, str(exc))
            if not await self._wait(deadline):
                what = "the requested part" if directives.blocking else "the first segment"
                return error_reply(503, f"timed out waiting for {what} of stream {pk.stream}")

    def _may_appear(self, res: Resource) -> bool:
        """True for a resource that is being built now: the preload-hinted part, the open
        segment, or any init while the first one is not written yet."""
        pk = self.packager
        if res.kind == "init":
            fmp4 = pk.config.low_latency or pk.codec not in TS_CODECS
            return fmp4 and pk.window.latest_init is None and not pk.ended
        open_msn = pk.open_msn()
        if open_msn is None or res.msn != open_msn:
            return False
        if res.kind == "part":
            return res.part == pk.open_parts()
        return True

    async def _media(self, res: Resource) -> Reply:
        pk = self.packager
        deadline = asyncio.get_running_loop().time() + self.budget()
        while True:
            item = pk.lookup(res)
            if item is not None:
                cache = IMMUTABLE if item.immutable else "no-cache"
                return Reply(200, bytes(item.data), {"Content-Type": item.content_type, "Cache-Control": cache})
            if not self._may_appear(res):
                return error_reply(404, self._why_missing(res))
            if not await self._wait(deadline):
                return error_reply(503, f"timed out waiting for {res.kind} {res.msn} of stream {pk.stream}")

    def _why_missing(self, res: Resource) -> str:
        pk = self.packager
        if res.kind == "ts" and pk.codec not in (None, "h264"):
            return f"stream {pk.stream} is {pk.codec}: MPEG-TS segments exist for H.264 only; use the .m4s segments"
        first = pk.window.segments[0].msn if pk.window.segments else pk.open_msn()
        if first is not None and 0 <= res.msn < first:
            return f"segment {res.msn} is no longer kept (oldest kept: {first})"
        if res.kind == "part" and pk.window.find(res.msn) is not None:
            return f"part {res.part} of segment {res.msn} was not produced (the segment ended first)"
        return f"{res.kind} {res.msn} of stream {pk.stream} does not exist"
