"""Helpers of the browser tests: the running stack, the console log, bounded polling."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
from playwright.sync_api import ConsoleMessage, Error, Page, ViewportSize

T = TypeVar("T")
STOP_TIMEOUT_S = 25.0


@dataclass
class Stack:
    """A running ``camhub up --demo``: its base URL, data dir and log file."""

    base_url: str
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes]

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def api(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        """One HTTP request to the gateway (5 s timeout)."""
        with httpx.Client(base_url=self.base_url, timeout=5.0) as client:
            return client.request(method, path, **kwargs)  # type: ignore[arg-type]


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@dataclass
class ConsoleLog:
    """Console errors and uncaught exceptions of one page.

    ``allow(pattern)`` admits errors a test provokes on purpose (e.g. the browser's own
    "Failed to load resource: ... 409" line for a form the server refuses).
    """

    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def on_console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error":
            self.errors.append(f"console.error: {msg.text} ({msg.location.get('url', '')})")

    def on_page_error(self, err: Error) -> None:
        self.errors.append(f"uncaught: {err.message}")

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]

    def assert_clean(self) -> None:
        bad = self.unexpected()
        assert not bad, "console errors:\n" + "\n".join(bad)


def poll(fn: Callable[[], T], timeout: float, interval: float = 0.25, what: str = "condition") -> T:
    """Call ``fn()`` until it returns a truthy value (returned) or ``timeout`` s pass.

    Raises:
        AssertionError: naming ``what`` and the last value.
    """
    deadline = time.monotonic() + timeout
    last = fn()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:.0f} s (last: {last!r})")
        time.sleep(interval)
        last = fn()
    return last


PHONE: ViewportSize = {"width": 390, "height": 844}


def horizontal_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than its viewport (0 when it fits)."""
    return int(page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth"))


# A WebRTC camera played by a second Chromium page: the fake capture device publishes over WHIP
# and a data channel answers camhub's camera commands like a camera would (the camera brief's
# {"id", "ok", "error"} acks). It refuses bitrates above 8000 kbit/s, so both answers are seen.
CAMERA_JS = """
async ([whipUrl, mime]) => {
  const media = await navigator.mediaDevices.getUserMedia({video: {width: 320, height: 240, frameRate: 15}});
  const pc = new RTCPeerConnection();
  const tr = pc.addTransceiver(media.getVideoTracks()[0], {direction: "sendonly"});
  // one codec, as a camera sends (H.264 or AV1)
  tr.setCodecPreferences(RTCRtpSender.getCapabilities("video").codecs.filter((c) => c.mimeType === mime));
  const dc = pc.createDataChannel("camhub-control");
  window.cameraCommands = [];
  dc.onmessage = (ev) => {
    const cmd = JSON.parse(ev.data);
    window.cameraCommands.push(cmd);
    const refuse = cmd.type === "config" && cmd.bitrate > 8000;
    dc.send(JSON.stringify(refuse ? {id: cmd.id, ok: false, error: "bitrate above 8000 kbit/s"}
                                  : {id: cmd.id, ok: true, applied: cmd.type}));
  };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && resolve();
    setTimeout(resolve, 3000);
  });
  const resp = await fetch(whipUrl, {method: "POST", headers: {"Content-Type": "application/sdp"},
                                     body: pc.localDescription.sdp});
  if (resp.status !== 201) throw new Error(`WHIP answered ${resp.status}: ${await resp.text()}`);
  await pc.setRemoteDescription({type: "answer", sdp: await resp.text()});
  window.cameraPc = pc;
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("data channel did not open")), 10000);
    if (dc.readyState === "open") { clearTimeout(timer); resolve(); }
    dc.onopen = () => { clearTimeout(timer); resolve(); };
  });
  return dc.readyState;
}
"""


def publish_browser_camera(stack: Stack, page: Page, camera_id: str, mime: str = "video/H264") -> Page:
    """Register a WebRTC camera and publish it over WHIP from a second page of ``page``'s
    browser context (Chromium's fake capture device, encoded as ``mime``); returns that page,
    whose ``window.cameraCommands`` lists the commands it received."""
    body = {"id": camera_id, "name": f"Browser camera {camera_id}", "kind": "webrtc"}
    stack.api("POST", "/api/cameras", json=body).raise_for_status()
    camera = page.context.new_page()
    camera.goto(f"{stack.base_url}/health")
    assert camera.evaluate(CAMERA_JS, [f"/whip/{camera_id}", mime]) == "open"
    return camera
