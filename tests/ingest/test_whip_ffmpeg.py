"""FFmpeg's WHIP muxer (the one bundled in the PyAV wheel, FFmpeg 8.1) publishing to ingest
through a minimal WHIP HTTP shim (``whip_shim.py``; the gateway is another engineer's piece).

The publisher runs as a child process (``ffmpeg_whip_publish.py``) so a stuck handshake is
killed after a bounded wait.  No encoder runs: the Big Buck Bunny clip's packets are remuxed.
"""

from __future__ import annotations

import asyncio
import sys

import pytest

from services.common.bus import Bus
from tests.ingest.conftest import ProbeIngest
from tests.ingest.test_publisher import Tap
from tests.ingest.whip_shim import whip_shim
from tests.support.media import decode_count
from tests.support.procs import ROOT


async def _publish(url: str, *args: str, timeout: float = 30.0) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.ingest.ffmpeg_whip_publish",
        url,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
    return out.decode(errors="replace")


async def test_ffmpeg_offer_is_accepted_with_its_main_profile(bus: Bus, ingest: ProbeIngest) -> None:
    """FFmpeg offers only H.264 Main (profile-level-id 4d001f); aiortc alone would refuse it (422),
    ingest registers Main/High for passthrough, so the offer is answered and a session starts."""
    tap = await Tap().start(bus, "ffcam")
    async with whip_shim(bus) as base:
        out = await _publish(f"{base}/whip/ffcam")
    assert "Server returned 4" not in out, out[-2000:]
    await tap.settle(bus)
    # the session was created (answered) and ended; whatever DTLS did, it left nothing behind
    assert tap.events and tap.events[-1]["type"] == "down"
    assert not ingest.whip.sessions


@pytest.mark.xfail(
    strict=True,
    reason=(
        "DTLS between FFmpeg 8.1's WHIP muxer and aiortc 1.16 fails (investigated ~20 min): with FFmpeg's "
        "default a=setup:passive, aiortc (DTLS client) logs 'x DTLS handling timeout' then 'x DTLS handshake "
        "failed (error [])'; with whip_flags=dtls_active aiortc (DTLS server) logs 'x DTLS handshake failed "
        "(error [])' at once; FFmpeg reports '[dtls] A TLS fatal alert has been received' and '[WHIP muxer] "
        "DTLS session failed' in both roles. ICE and the SDP exchange succeed."
    ),
)
async def test_ffmpeg_whip_muxer_publishes_frames(bus: Bus, ingest: ProbeIngest) -> None:
    tap = await Tap().start(bus, "ffcam2")
    async with whip_shim(bus) as base:
        out = await _publish(f"{base}/whip/ffcam2")
    assert out.strip().endswith("muxed 132"), out[-2000:]
    await tap.settle(bus)
    assert len(tap.frames) >= 120
    assert decode_count(tap.frames) == len(tap.frames)
