"""The live grid in real Chromium against a real ``camhub up --demo`` (synthetic H.264 camera ``demo``).

Each playback path is proven by the video itself: the ``<video>`` element's ``currentTime``
advances (LL-HLS through hls.js, WHEP through WebRTC), or the WebCodecs canvas counts drawn
frames. Network records prove which path carried it (``stream_ll.m3u8`` requested, WHEP 201).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, Request, Response

from tests.ui.support import PHONE, ConsoleLog, Stack, horizontal_overflow, poll, publish_browser_camera

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STREAM = "demo"
TILE = f"[data-stream='{STREAM}']"
LATENCY_RE = re.compile(r"Latency\s+(\d+ ms|\d+\.\d s)")


def open_live(stack: Stack, page: Page, tile: str = TILE) -> None:
    page.goto(f"{stack.base_url}/#/live")
    page.locator(tile).wait_for(timeout=25_000)
    poll(
        lambda: page.locator(f"{tile} [data-testid='stream-health']").inner_text() == "Live",
        20,
        what=f"{tile} health 'Live'",
    )


def player_state(page: Page, tile: str = TILE) -> tuple[str, str]:
    el = page.locator(f"{tile} .player")
    return el.get_attribute("data-path") or "", el.get_attribute("data-state") or ""


def video_time(page: Page, tile: str = TILE) -> float:
    return float(page.locator(f"{tile} video").evaluate("v => v.currentTime"))


def assert_video_advances(page: Page, seconds: float = 1.5, timeout: float = 15, tile: str = TILE) -> None:
    start = video_time(page, tile)
    poll(lambda: video_time(page, tile) >= start + seconds, timeout, what=f"video currentTime to advance {seconds} s")


def choose_path(page: Page, path: str, tile: str = TILE) -> None:
    page.locator(f"{tile} button[data-path='{path}']").click()
    poll(lambda: player_state(page, tile) == (path, "playing"), 20, what=f"{path} playing")


def drawn_frames(page: Page, tile: str) -> int:
    return int(page.locator(f"{tile} canvas").get_attribute("data-frames") or 0)


def test_grid_shows_demo_stream_with_health(stack: Stack, page: Page, console: ConsoleLog) -> None:
    open_live(stack, page)
    tile = page.locator(TILE)
    assert tile.locator(".card-title").inner_text() == STREAM
    assert "H264" in tile.locator(".card-sub").inner_text()
    poll(lambda: tile.locator("[data-testid='stat-fps']").inner_text().endswith("fps"), 15, what="fps shown")
    poll(lambda: "bit/s" in tile.locator("[data-testid='stat-bitrate']").inner_text(), 15, what="bitrate shown")
    assert re.fullmatch(r"\d+(\.\d)? s", tile.locator("[data-testid='stat-age']").inner_text())
    console.assert_clean()


def test_llhls_video_plays_through_hlsjs(stack: Stack, page: Page, console: ConsoleLog) -> None:
    playlists: list[str] = []

    def on_request(req: Request) -> None:
        if f"/hls/{STREAM}/" in req.url and ".m3u8" in req.url:
            playlists.append(req.url)

    page.on("request", on_request)
    open_live(stack, page)
    choose_path(page, "ll-hls")
    assert_video_advances(page)
    assert any("/stream_ll.m3u8" in u for u in playlists), playlists
    assert not any("/stream.m3u8" in u for u in playlists), "fell back to stream.m3u8"
    latency = poll(
        lambda: LATENCY_RE.search(page.locator(f"{TILE} [data-testid='latency']").inner_text()),
        10,
        what="LL-HLS latency shown",
    )
    assert latency
    console.assert_clean()


def test_whep_video_plays_over_webrtc(stack: Stack, page: Page, console: ConsoleLog, artifacts: Path) -> None:
    whep: list[int] = []

    def on_response(resp: Response) -> None:
        if resp.request.method == "POST" and resp.url.endswith(f"/whep/{STREAM}"):
            whep.append(resp.status)

    page.on("response", on_response)
    open_live(stack, page)
    choose_path(page, "whep")
    assert_video_advances(page)
    assert whep and whep[-1] == 201, whep
    text = poll(lambda: page.locator(f"{TILE} [data-testid='latency']").inner_text(), 10, what="latency text")
    poll(
        lambda: "jitter buffer" in page.locator(f"{TILE} [data-testid='latency']").inner_text(),
        10,
        what=f"WHEP latency measured (was {text!r})",
    )
    page.screenshot(path=str(artifacts / "ui-dashboard.png"), full_page=True)
    console.assert_clean()


def test_webcodecs_relay_draws_frames(stack: Stack, page: Page, console: ConsoleLog) -> None:
    open_live(stack, page)
    choose_path(page, "webcodecs")
    start = drawn_frames(page, TILE)
    poll(lambda: drawn_frames(page, TILE) >= start + 10, 15, what="10 more frames drawn from the WebSocket relay")
    assert page.locator(f"{TILE} canvas").evaluate("c => c.width") > 0
    console.assert_clean()


def test_av1_camera_plays_by_webcodecs_and_whep(stack: Stack, page: Page, console: ConsoleLog, artifacts: Path) -> None:
    """The camera brief's case: an AV1 WebRTC camera (a second Chromium page encoding its fake
    capture device as AV1 over WHIP). Its tile offers no HLS (AV1), plays over the WebSocket
    relay into WebCodecs, and over WHEP."""
    camera = publish_browser_camera(stack, page, "av1-cam", "video/AV1")
    tile = "[data-stream='av1-cam']"
    open_live(stack, page, tile)
    assert "AV1" in page.locator(f"{tile} .card-sub").inner_text()
    for path in ("ll-hls", "hls"):
        assert page.locator(f"{tile} button[data-path='{path}']").is_disabled()
    choose_path(page, "webcodecs", tile)
    start = drawn_frames(page, tile)
    poll(lambda: drawn_frames(page, tile) >= start + 10, 15, what="10 AV1 frames decoded and drawn")
    poll(
        lambda: "receive → draw" in page.locator(f"{tile} [data-testid='latency']").inner_text(),
        10,
        what="WebCodecs latency shown",
    )
    page.locator(tile).screenshot(path=str(artifacts / "ui-av1-webcodecs.png"))
    choose_path(page, "whep", tile)
    assert_video_advances(page, tile=tile)
    camera.evaluate("window.cameraPc.close()")
    console.assert_clean()


def test_path_switch_by_keyboard_is_remembered(stack: Stack, page: Page, console: ConsoleLog) -> None:
    open_live(stack, page)
    target = page.locator(f"{TILE} button[data-path='hls']")
    page.locator("body").focus()
    for _ in range(40):  # Tab through the page until the HLS button has the focus
        page.keyboard.press("Tab")
        if target.evaluate("b => b === document.activeElement"):
            break
    else:
        pytest.fail("the HLS path button cannot be reached with Tab")
    page.keyboard.press("Enter")
    poll(lambda: player_state(page) == ("hls", "playing"), 20, what="hls playing")
    assert target.get_attribute("aria-pressed") == "true"
    assert_video_advances(page, 1.0)
    page.reload()
    page.locator(TILE).wait_for()
    poll(lambda: player_state(page)[0] == "hls", 10, what="the chosen path kept after reload")
    console.assert_clean()


def test_phone_width_layout(stack: Stack, page: Page, console: ConsoleLog, artifacts: Path) -> None:
    page.set_viewport_size(PHONE)
    open_live(stack, page)
    poll(lambda: player_state(page)[1] == "playing", 20, what="player playing at phone width")
    overflow = horizontal_overflow(page)
    assert overflow <= 0, f"page is {overflow} px wider than a phone screen"
    box = page.locator(TILE).bounding_box()
    assert box is not None and box["width"] <= 390
    time.sleep(0.5)
    page.screenshot(path=str(artifacts / "ui-dashboard-phone.png"), full_page=True)
    console.assert_clean()
