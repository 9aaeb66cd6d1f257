"""Headless Chromium as a WHEP viewer, through a minimal WHEP HTTP shim in the test.

The real gateway (``POST /whep/{stream}``) is another engineer's piece, so :class:`WhepShim` is
the smallest stand-in that lets a browser reach the egress: a Starlette app on 127.0.0.1 that
serves one HTML page and turns ``POST /whep/<stream>`` (``application/sdp``) into a request on
``camhub.egress.whep``, answering 201 + ``Location`` + the SDP answer, or the error status.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from playwright.async_api import Browser, async_playwright
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from services.common import subjects
from services.common.bus import Bus
from tests.support.browser import chromium_path
from tests.support.nats import free_port

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--autoplay-policy=no-user-gesture-required",
    # the egress gathers ICE on 127.0.0.1 only: let Chromium use loopback and plain host
    # candidates (it hides them behind mDNS names by default, which aioice cannot resolve here)
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]

PAGE = """<!doctype html>
<html><body>
<video id="v" autoplay muted playsinline></video>
<script>
window.play = async (stream) => {
  const pc = new RTCPeerConnection();
  window.pc = pc;
  pc.addTransceiver('video', {direction: 'recvonly'});
  const video = document.getElementById('v');
  pc.ontrack = (e) => { video.srcObject = new MediaStream([e.track]); };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((ok) => {
    if (pc.iceGatheringState === 'complete') return ok();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && ok();
    setTimeout(ok, 2000);
  });
  window.offer = pc.localDescription.sdp;
  const res = await fetch('/whep/' + stream, {
    method: 'POST', headers: {'Content-Type': 'application/sdp'}, body: pc.localDescription.sdp});
  const text = await res.text();
  if (res.status !== 201) return {status: res.status, error: text};
  await pc.setRemoteDescription({type: 'answer', sdp: text});
  return {status: res.status, location: res.headers.get('Location'), answer: text};
};
window.report = async () => {
  const video = document.getElementById('v');
  const out = {readyState: video.readyState, currentTime: video.currentTime,
               videoWidth: video.videoWidth, videoHeight: video.videoHeight,
               connection: window.pc ? window.pc.connectionState : 'none'};
  if (window.pc) {
    const stats = await window.pc.getStats();
    const codecs = {};
    stats.forEach((s) => { if (s.type === 'codec') codecs[s.id] = s; });
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        out.framesDecoded = s.framesDecoded || 0;
        out.keyFramesDecoded = s.keyFramesDecoded || 0;
        out.framesDropped = s.framesDropped || 0;
        out.packetsLost = s.packetsLost || 0;
        out.pliCount = s.pliCount || 0;
        out.packetsReceived = s.packetsReceived || 0;
        out.framesReceived = s.framesReceived || 0;
        out.decoder = s.decoderImplementation || '';
        const c = codecs[s.codecId];
        out.codec = c ? c.mimeType + ' ' + (c.sdpFmtpLine || '') : '';
      }
    });
  }
  return out;
};
</script>
</body></html>
"""


class WhepShim:
    """The test's WHEP HTTP stand-in (see the module docstring); ``url`` once started."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.port = free_port()
        self.replies: list[dict[str, Any]] = []
        app = Starlette(
            routes=[
                Route("/", lambda _req: HTMLResponse(PAGE)),
                Route("/whep/{stream}", self._whep, methods=["POST"]),
            ]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    async def _whep(self, request: Request) -> Response:
        sdp = (await request.body()).decode("utf-8", "replace")
        stream = request.path_params["stream"]
        reply = await self.bus.request_obj(subjects.EGRESS_WHEP, {"stream": stream, "sdp": sdp}, timeout=10)
        self.replies.append(reply)
        if not reply.get("ok"):
            return JSONResponse({"ok": False, "error": reply.get("error")}, status_code=int(reply.get("status", 500)))
        return Response(
            reply["sdp"],
            status_code=201,
            media_type="application/sdp",
            headers={"Location": f"/whep/{stream}/{reply['session']}"},
        )

    async def __aenter__(self) -> WhepShim:
        self._task = asyncio.ensure_future(self.server.serve())
        for _ in range(100):
            if self.server.started:
                return self
            await asyncio.sleep(0.05)
        raise RuntimeError("the WHEP shim did not start")

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 5)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Headless Debian Chromium via Playwright, always closed."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True, timeout=30_000
        )
        try:
            yield browser
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(browser.close(), 10)
