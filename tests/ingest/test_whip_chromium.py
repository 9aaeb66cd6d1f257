"""Headless Chromium publishing its fake camera over WHIP, in H.264 and in AV1, through a minimal
WHIP HTTP shim (``whip_shim.py``) to the real ingest service; the page also answers camera
commands on a data channel.  Chromium encodes (it is the camera); ingest never decodes or encodes.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import av
import pytest

from services.common import av1, subjects
from services.common.bus import Bus
from services.common.streams import publish_event
from tests.ingest.conftest import ProbeIngest, wait_for
from tests.ingest.test_publisher import Tap
from tests.ingest.whip_shim import whip_shim
from tests.support.browser import CHROMIUM_ARGS, chromium_path

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(os.environ.get("CAMHUB_BROWSER_TESTS", "1") == "0", reason="CAMHUB_BROWSER_TESTS=0"),
]

#: The shared flags plus two for WebRTC on loopback: host candidates on 127.0.0.1 and no mDNS names
#: in place of addresses (aiortc cannot resolve ``.local`` candidates).
ARGS = [
    *CHROMIUM_ARGS,
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]

PAGE = """<!doctype html><html><body><script>
window.cmds = [];
window.publish = async (url, codec, width, height) => {
  const media = await navigator.mediaDevices.getUserMedia({video: {width, height, frameRate: 30}});
  const pc = new RTCPeerConnection();
  const tr = pc.addTransceiver(media.getVideoTracks()[0], {direction: 'sendonly'});
  const want = RTCRtpSender.getCapabilities('video').codecs
      .filter(c => c.mimeType.toLowerCase() === 'video/' + codec.toLowerCase());
  if (!want.length) throw new Error('no ' + codec + ' sender in this browser');
  tr.setCodecPreferences(want);
  const dc = pc.createDataChannel('control');
  dc.onmessage = (e) => {
    const cmd = JSON.parse(e.data);
    window.cmds.push(cmd);
    dc.send(JSON.stringify({id: cmd.id, ok: true}));
  };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((done) => {
    if (pc.iceGatheringState === 'complete') return done();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && done();
    setTimeout(done, 3000);
  });
  const resp = await fetch(url, {method: 'POST', headers: {'Content-Type': 'application/sdp'},
                                 body: pc.localDescription.sdp});
  if (resp.status !== 201) throw new Error('WHIP ' + resp.status + ': ' + await resp.text());
  window.whipLocation = resp.headers.get('Location');
  await pc.setRemoteDescription({type: 'answer', sdp: await resp.text()});
  window.pc = pc;
  return window.whipLocation;
};
window.state = () => window.pc ? window.pc.connectionState : 'none';
window.hangUp = async () => {
  await fetch(window.whipLocation, {method: 'DELETE'});
  window.pc.close();
};
</script></body></html>"""


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    pw = await async_playwright().start()
    b = None
    try:
        # chromium_path(): Chromium without CAP_SYS_NICE, so it never takes real-time priority
        b = await pw.chromium.launch(executable_path=chromium_path(), args=ARGS, headless=True, timeout=20_000)
        yield b
    finally:
        if b is not None:
            await b.close()
        await pw.stop()


@pytest.mark.parametrize(("codec", "width", "height"), [("H264", 640, 480), ("AV1", 320, 240)])
async def test_chromium_publishes_over_whip(
    bus: Bus, ingest: ProbeIngest, browser: Any, codec: str, width: int, height: int
) -> None:
    stream = f"chrome-{codec.lower()}"
    tap = await Tap().start(bus, stream)
    async with whip_shim(bus, PAGE) as base:
        page = await browser.new_page()
        page.set_default_timeout(15_000)
        try:
            await page.goto(f"{base}/page")
            location = await page.evaluate(
                "([u, c, w, h]) => window.publish(u, c, w, h)", [f"{base}/whip/{stream}", codec, width, height]
            )
            assert location.startswith(f"/whip/{stream}/")
            await wait_for(lambda: len(tap.frames) >= 30, 20)
            name = "h264" if codec == "H264" else "av1"
            assert all(f.codec == name for f in tap.frames)
            assert tap.frames[0].key

            # ask for a keyframe as a new viewer would: ingest sends PLI, Chromium answers with one
            n = len(tap.frames)
            await publish_event(bus, stream, "keyframe-request", by="test")
            await wait_for(lambda: any(f.key for f in tap.frames[n:]), 5)

            # a camera command over the data channel, acked by the page
            await wait_for(lambda: stream in ingest.cameras.controls and ingest.cameras.controls[stream].connected, 5)
            reply = await bus.request_obj(subjects.camera_cmd(stream), {"type": "config", "bitrate": 800}, timeout=5)
            assert reply["ok"] is True
            assert await page.evaluate("window.cmds") == [{"id": reply["ack"]["id"], "type": "config", "bitrate": 800}]

            await page.evaluate("window.hangUp()")
            await wait_for(lambda: not ingest.whip.sessions, 5)
        finally:
            await page.close()
    frames = tap.frames
    if codec == "H264":
        dec = av.CodecContext.create("h264", "r")
        info_cfg = tap.infos[-1]["config"]
        assert info_cfg.startswith(b"\x00\x00\x00\x01")
    else:
        dec = av.CodecContext.create("libdav1d", "r")
        assert all(bool(av1.sequence_header(f.data)) for f in frames if f.key)
    pictures = sum(len(dec.decode(av.Packet(f.data))) for f in frames) + len(dec.decode(None))
    assert pictures == len(frames)
    assert (tap.infos[-1]["width"], tap.infos[-1]["height"]) == (width, height)
    assert tap.events[-1]["type"] == "down"
