"""Fixtures for the whole-stack tests: ``camhub up --demo`` plus a GStreamer RTSP camera."""

from __future__ import annotations

import asyncio
import io
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import m3u8
import pytest

from tests.support.nats import free_port
from tests.support.procs import ROOT
from tests.support.stack import UpStack

RTSP_USER, RTSP_PASSWORD = "viewer", "s3cret-pass"


class RtspCamera:
    """services/sim/rtsp_server.py (GStreamer, system Python) with digest auth on a fixed port."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.log_path = log_dir / "rtsp.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/live"

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", str(ROOT / "services/sim/rtsp_server.py"), "--port", str(self.port),
             "--mount", "/live", "--user", RTSP_USER, "--password", RTSP_PASSWORD, "--width", "640",
             "--height", "360", "--fps", "25", "--keyint", "25"],
            stdout=subprocess.PIPE, stderr=log, cwd=ROOT,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline().decode()
            if line.startswith("READY"):
                return
            if not line and self.proc.poll() is not None:
                break
        raise RuntimeError(f"RTSP server did not start: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    s = UpStack(tmp_path_factory.mktemp("e2e"), "--demo", CAMHUB_HLS_SEGMENT_SECONDS="1")
    s.t0 = time.monotonic()  # type: ignore[attr-defined]
    try:
        s.wait_ready(40)
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def camera(stack: UpStack) -> Iterator[RtspCamera]:
    cam = RtspCamera(stack.dir)
    cam.start()
    r = httpx.post(
        f"{stack.http}/api/cameras",
        json={"id": "garage", "name": "Garage", "kind": "rtsp", "rtspUrl": cam.url,
              "username": RTSP_USER, "password": RTSP_PASSWORD},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    yield cam
    cam.stop()


async def wait_for(pred: Callable[[], Any], timeout: float, what: str, step: float = 0.25) -> Any:
    """Poll ``pred`` (sync or async) until truthy; raises AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if asyncio.iscoroutine(last):
                last = await last
            if last:
                return last
        except (httpx.HTTPError, KeyError, ValueError, IndexError):
            pass
        await asyncio.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def get_json(stack: UpStack, path: str) -> Any:
    r = httpx.get(f"{stack.http}{path}", timeout=10)
    r.raise_for_status()
    return r.json()


def playlist(stack: UpStack, stream: str, name: str = "stream.m3u8") -> m3u8.M3U8:
    r = httpx.get(f"{stack.http}/hls/{stream}/{name}", timeout=15)
    if r.status_code != 200:
        raise ValueError(f"{name}: HTTP {r.status_code}")
    pl = m3u8.loads(r.text)
    pl.raw = r.text  # type: ignore[attr-defined]
    return pl


def decode_segment(stack: UpStack, stream: str, uri: str, init: bytes = b"") -> int:
    """Fetch one segment through the gateway and decode it with PyAV; returns pictures decoded."""
    r = httpx.get(f"{stack.http}/hls/{stream}/{uri}", timeout=15)
    r.raise_for_status()
    n = 0
    with av.open(io.BytesIO(init + r.content)) as cont:
        for packet in cont.demux(video=0):
            for _ in packet.decode():
                n += 1
    return n
