"""hls.js (from the npm registry) in headless Chromium plays ``stream_ll.m3u8`` in
``lowLatencyMode``: it loads parts, sends blocking reloads, and the video's currentTime advances."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from services.common.bus import Bus
from services.common.streams import publish_info
from tests.hls.support import HttpShim, looped, publish, x264
from tests.hls.test_service import INFO, get_ready, wait_serving
from tests.support.browser import chromium_path
from tests.support.procs import ROOT, ServiceProcess

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(os.environ.get("CAMHUB_BROWSER_TESTS", "1") == "0", reason="CAMHUB_BROWSER_TESTS=0"),
]

PAGE = """<!doctype html><html><body><video id="v" muted autoplay playsinline></video>
<script src="/static/hls.min.js"></script><script>
window.errors = [];
const video = document.getElementById('v');
const hls = new Hls({lowLatencyMode: true, debug: false});
window.hls = hls;
hls.on(Hls.Events.ERROR, (_, d) => window.errors.push([d.type, d.details, d.fatal]));
hls.loadSource('/hls/cam1/stream_ll.m3u8');
hls.attachMedia(video);
hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(e => window.errors.push(['play', String(e), false])));
</script></body></html>"""


def hlsjs_file() -> Path:
    """``hls.min.js``: the web UI's npm install if present, else ``npm install hls.js`` into a cache."""
    local = ROOT / "web" / "node_modules" / "hls.js" / "dist" / "hls.min.js"
    if local.exists():
        return local
    cache = Path(tempfile.gettempdir()) / "camhub-test-npm"
    found = cache / "node_modules" / "hls.js" / "dist" / "hls.min.js"
    if not found.exists():
        if shutil.which("npm") is None:
            pytest.skip("npm is not installed: cannot fetch hls.js")
        cache.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run(
                ["npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(cache), "hls.js@1"],
                check=True,
                capture_output=True,
                timeout=90,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            pytest.skip(f"npm install hls.js failed: {exc}")
    return found


async def test_hlsjs_plays_ll_hls_in_chromium(hls_service: ServiceProcess, bus: Bus, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    page_file = tmp_path / "player.html"
    page_file.write_text(PAGE)
    await publish_info(bus, INFO)
    await wait_serving(bus, "cam1")
    feed = asyncio.create_task(publish(bus, "cam1", looped(x264(), 30 * 25), fps=30))
    shim = HttpShim(bus, {"player.html": page_file, "hls.min.js": hlsjs_file()})
    try:
        status, _, _ = await get_ready(bus, "cam1", "stream_ll.m3u8")
        assert status == 200
        async with shim.running(), async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path=chromium_path(),
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--autoplay-policy=no-user-gesture-required",
                ],
            )
            try:
                page = await browser.new_page()
                await page.goto(f"{shim.base}/static/player.html", timeout=10_000)
                start: float | None = None
                now = 0.0
                for _ in range(100):  # at most 10 s
                    now = float(await page.evaluate("document.getElementById('v').currentTime"))
                    if start is None and now > 0:
                        start = now
                    if start is not None and now - start >= 2.0:
                        break
                    await asyncio.sleep(0.1)
                errors = await page.evaluate("window.errors")
                state = await page.evaluate(
                    "({ll: hls.lowLatencyMode, block: hls.latestLevelDetails?.canBlockReload,"
                    " parts: hls.latestLevelDetails?.partList?.length || 0, latency: hls.latency})"
                )
            finally:
                await browser.close()
        assert start is not None, f"video never started; hls.js errors: {errors}"
        assert now - start >= 2.0, f"currentTime advanced only {now - start:.2f} s; errors: {errors}"
        assert not [e for e in errors if e[2]], f"fatal hls.js errors: {errors}"
        assert state["ll"] and state["block"] and state["parts"] > 0, state
        assert any(".m4s?" in r and r.startswith("part") for r in shim.requests), "hls.js loaded parts"
        assert any("_HLS_msn=" in r for r in shim.requests), "hls.js used blocking playlist reload"
        print(f"hls.js latency {state['latency']:.2f} s, currentTime advanced {now - start:.2f} s")
    finally:
        feed.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feed
