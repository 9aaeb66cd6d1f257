"""Headless Chromium plays WHEP streams from the egress: the video element plays and
``getStats()`` shows ``framesDecoded`` rising.

Streams are published on the bus by the test with the bytes the ingest would publish (the ingest
engineer's RTSP and WHIP pieces may not be ready): an RTSP camera's H.264 High profile (libx264),
a browser WHIP publisher's VP8 (libvpx), an AV1 camera (SVT-AV1). The lead runs the full chain.

Findings (Chromium 156, Debian, this machine): Chromium's offer lists H.264 42001f, 42e01f, 4d001f
and f4001f (High 4:4:4 Predictive, payload type 41) but not High (64001f); the egress answers a
High stream with f4001f (whose decoders decode High, H.264 Annex A) and Chromium plays it. This
needed payload types below 96 kept in the answer: aiortc renumbers them (see
``services/egress/codecs.py``), and Chromium then drops every packet. Chromium also plays a High
bitstream under a Constrained Baseline (42e01f) answer, which is what an offer limited to aiortc's
own table gets (``test_chromium_plays_high_profile_under_a_baseline_answer``).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import pytest

from services.common.bus import Bus
from tests.egress.browser import WhepShim, chromium
from tests.egress.helpers import FramePublisher, encode_av1, encode_h264_high, encode_vp8

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(os.environ.get("CAMHUB_BROWSER_TESTS", "1") == "0", reason="CAMHUB_BROWSER_TESTS=0"),
]


async def play_and_watch(bus: Bus, stream: str, seconds: float = 2.0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Open the page, WHEP-play ``stream``; returns (play result, reports sampled over time)."""
    async with WhepShim(bus) as shim, chromium() as browser:
        page = await browser.new_page()
        await page.goto(shim.url, timeout=10_000)
        started = time.monotonic()
        result = await asyncio.wait_for(page.evaluate("(s) => window.play(s)", stream), 15)
        assert result["status"] == 201, result
        assert result["location"].startswith(f"/whep/{stream}/")
        reports: list[dict[str, Any]] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # first decoded frame
            rep = await page.evaluate("() => window.report()")
            if rep.get("framesDecoded", 0) > 0:
                rep["after"] = time.monotonic() - started
                reports.append(rep)
                break
            await asyncio.sleep(0.1)
        assert reports, f"no frame decoded within 10 s: {rep}"
        await asyncio.sleep(seconds)
        reports.append(await page.evaluate("() => window.report()"))
        result["offer"] = await page.evaluate("() => window.offer")
        await page.close()
        return result, reports


def assert_playing(reports: list[dict[str, Any]], width: int, height: int) -> None:
    first, last = reports[0], reports[-1]
    assert last["connection"] == "connected", last
    assert last["framesDecoded"] > first["framesDecoded"] + 20, reports  # ~30 fps for 2 s
    assert last["readyState"] >= 2 and last["currentTime"] > first["currentTime"], reports
    assert (last["videoWidth"], last["videoHeight"]) == (width, height), last


async def test_chromium_plays_rtsp_style_h264_high(bus: Bus, egress: Any) -> None:
    pub = FramePublisher(bus, "cam1", encode_h264_high(60, width=640, height=360), 30, width=640, height=360)
    await pub.start()
    try:
        result, reports = await play_and_watch(bus, "cam1")
    finally:
        await pub.stop()
    assert_playing(reports, 640, 360)
    # Chromium 156 offers no High (64001f) but High 4:4:4 Predictive, whose decoders decode High
    assert "profile-level-id=64001f" not in result["offer"] and "profile-level-id=f4001f" in result["offer"]
    assert "profile-level-id=f4001f" in result["answer"]
    assert "a=rtpmap:41 H264/90000" in result["offer"] and "a=rtpmap:41 H264/90000" in result["answer"]
    assert reports[-1]["codec"].startswith("video/H264")
    assert reports[0]["after"] < 3.0, reports[0]


async def test_chromium_plays_high_profile_under_a_baseline_answer(bus: Bus, egress: Any) -> None:
    """The aiortc-only case: an offer listing only Constrained Baseline gets a 42e01f answer for a
    High stream; Chromium decodes the High bitstream anyway (packetization-mode 1 matches)."""
    pub = FramePublisher(bus, "cam2", encode_h264_high(60), 30)
    await pub.start()
    try:
        async with WhepShim(bus) as shim, chromium() as browser:
            page = await browser.new_page()
            await page.goto(shim.url, timeout=10_000)
            # keep only the constrained-baseline H.264 format in the offer
            await page.evaluate(
                """() => {
                  const orig = RTCPeerConnection.prototype.addTransceiver;
                  RTCPeerConnection.prototype.addTransceiver = function (k, o) {
                    const t = orig.call(this, k, o);
                    const caps = RTCRtpReceiver.getCapabilities('video').codecs.filter(
                      (c) => c.mimeType === 'video/H264' && /profile-level-id=42e01f/.test(c.sdpFmtpLine || '')
                        && /packetization-mode=1/.test(c.sdpFmtpLine || ''));
                    t.setCodecPreferences(caps);
                    return t;
                  };
                }"""
            )
            result = await asyncio.wait_for(page.evaluate("() => window.play('cam2')"), 15)
            assert result["status"] == 201, result
            assert "profile-level-id=42e01f" in result["answer"] and "64001f" not in result["answer"]
            deadline = time.monotonic() + 10
            first: dict[str, Any] = {}
            while time.monotonic() < deadline and not first.get("framesDecoded"):
                first = await page.evaluate("() => window.report()")
                await asyncio.sleep(0.1)
            await asyncio.sleep(2)
            last = await page.evaluate("() => window.report()")
    finally:
        await pub.stop()
    assert_playing([first, last], 320, 240)


async def test_chromium_plays_whip_style_vp8(bus: Bus, egress: Any) -> None:
    pub = FramePublisher(bus, "whip1", encode_vp8(60, width=640, height=360), 30, source="whip", width=640, height=360)
    await pub.start()
    try:
        _, reports = await play_and_watch(bus, "whip1")
    finally:
        await pub.stop()
    assert_playing(reports, 640, 360)
    assert reports[-1]["codec"].startswith("video/VP8")


async def test_chromium_plays_av1(bus: Bus, egress: Any) -> None:
    """AV1 through camhub's own RTP packetizer (services/egress/av1.py), decoded by Chromium."""
    pub = FramePublisher(bus, "av1cam", encode_av1(60), 30)
    await pub.start()
    try:
        result, reports = await play_and_watch(bus, "av1cam")
    finally:
        await pub.stop()
    assert "AV1/90000" in result["answer"]
    assert_playing(reports, 320, 240)
    assert reports[-1]["codec"].startswith("video/AV1")
