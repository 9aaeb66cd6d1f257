"""WHIP publish (RFC 9725) behind ``camhub.ingest.whip``: aiortc peers in encoded passthrough.

:meth:`WhipIngest.offer` answers ``{stream, sdp, token}`` (the gateway's ``POST /whip/<stream>``):

1. :func:`~services.ingest.sdp_check.check_offer` (400 malformed or > 64 KiB, 422 no usable video);
2. the registry entry and bearer token (:func:`~services.ingest.access.check_publisher`: 401, 409);
3. the stream lease ``ingest.<stream>`` (409 while another source publishes the stream);
4. an aiortc ``RTCPeerConnection`` (host candidates on ``CAMHUB_WEBRTC_HOST``, no STUN) takes the
   offer; audio sections are answered ``inactive`` (camhub ingests video only); the answer is
   complete (aiortc gathers every candidate first, so trickle ICE / PATCH is refused with 422).

Reply ``{ok: true, sdp, session}``.  The session then lives in :class:`WhipSession`:

* video frames come out of aiortc's receiver as :class:`~services.common.rtc.EncodedFrame`
  (H.264 and VP8 via ``services.common.rtc``, AV1 via :mod:`services.ingest.rtc_receive`) and go to a
  :class:`~services.ingest.publisher.StreamPublisher` (``source: whip``) - nothing is decoded or
  encoded;
* ``keyframe-request`` events on ``camhub.media.<stream>.events`` and frames that could not be
  reassembled make it send RTCP PLI (RFC 4585 6.3.1) to the publisher, at most every 0.5 s;
* a data channel the camera opens carries camera commands (:mod:`services.ingest.cameras`);
* ``camhub.webrtc.session.<sid>.delete|stats|patch`` are answered by this instance.

It ends - peer closed, ``down`` published, lease released, subscriptions removed, within 5 s - on
DELETE, when ICE/DTLS fail (``connectionState`` ``failed``/``closed``), when ICE + DTLS do not
connect within ``CAMHUB_WHIP_CONNECT_TIMEOUT_SECONDS``, or when no video frame arrives for
``CAMHUB_WHIP_MEDIA_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from services.common import codec, subjects
from services.common.bus import Bus
from services.common.frames import Frame
from services.common.ids import InvalidId, validate_id
from services.common.lease import Lease
from services.common.registry import Registry
from services.common.rtc import configure_aiortc
from services.common.settings import Settings
from services.common.streams import publish_event
from services.ingest import rtc_receive
from services.ingest.access import check_publisher, claim_stream
from services.ingest.cameras import CameraControls
from services.ingest.publisher import StreamPublisher
from services.ingest.sdp_check import SdpError, check_offer

log = logging.getLogger("camhub.ingest.whip")

PLI_INTERVAL_S = 0.5
CLOSE_BUDGET_S = 4.0


def error(status: int, message: str) -> dict[str, Any]:
    return {"ok": False, "error": message, "status": status}


class WhipSession:
    """One publishing peer (see the module docstring)."""

    def __init__(self, owner: WhipIngest, sid: str, stream: str, pc: RTCPeerConnection, lease: Lease) -> None:
        self.owner = owner
        self.sid = sid
        self.stream = stream
        self.pc = pc
        self.lease: Lease | None = lease
        self.publisher = StreamPublisher(owner.bus, stream, "whip", owner.instance)
        self.created = time.monotonic()
        self.connected_at: float | None = None
        self.last_frame: float | None = None
        self.closed = False
        self.close_reason = ""
        self.codec = ""
        self._last_pli = 0.0
        self.plis = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._subs: list[Subscription] = []
        self._camera = False
        self._done = asyncio.Event()

    # --- set-up ----------------------------------------------------------------------------

    def spawn(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=f"{name}:{self.sid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def wire(self) -> None:
        """Attach the peer's event handlers (before the remote description is set)."""
        pc = self.pc

        @pc.on("track")  # type: ignore[untyped-decorator]
        def on_track(track: Any) -> None:
            if track.kind == "video":
                self.spawn(self._consume(track), "whip-video")

        @pc.on("connectionstatechange")  # type: ignore[untyped-decorator]
        async def on_state() -> None:
            state = pc.connectionState
            if state == "connected" and self.connected_at is None:
                self.connected_at = time.monotonic()
                log.info("whip %s (%s): connected", self.sid, self.stream)
            elif state in ("failed", "closed") and not self.closed:
                self.spawn(self.close(f"ICE/DTLS {state}"), "whip-close")

        @pc.on("datachannel")  # type: ignore[untyped-decorator]
        def on_datachannel(channel: Any) -> None:
            self.spawn(self._attach_camera(channel), "whip-datachannel")

    async def subscribe(self) -> None:
        bus = self.owner.bus

        async def on_session(msg: Msg) -> None:
            await self._on_session(msg)

        async def on_event(msg: Msg) -> None:
            try:
                ev = codec.unpack_map(msg.data)
            except codec.PayloadError:
                return
            if ev.get("type") == "keyframe-request":
                await self.request_keyframe()

        self._subs.append(await bus.subscribe(subjects.webrtc_session(self.sid, "*"), on_session, pending_msgs=64))
        self._subs.append(await bus.subscribe(subjects.media_events(self.stream), on_event, pending_msgs=256))
        self.spawn(self._watchdog(), "whip-watchdog")

    # --- media -----------------------------------------------------------------------------

    async def _consume(self, track: Any) -> None:
        pub = self.publisher
        while not self.closed:
            try:
                ef = await track.recv()
            except MediaStreamError:
                if not self.closed:
                    self.spawn(self.close("the publisher ended the video track"), "whip-close")
                return
            self.last_frame = time.monotonic()
            if not ef.data:
                pub.lost()
                await self.request_keyframe()
                continue
            if not pub.live:
                self.codec = ef.codec
                await pub.start(ef.codec, reason="publisher reconnected")
            ok = await pub.publish(Frame(ef.codec, int(ef.timestamp), int(ef.timestamp), bool(ef.keyframe), ef.data))
            if not ok and pub.health.frames == 0:
                await self.request_keyframe()  # still waiting for the first keyframe

    async def request_keyframe(self) -> None:
        """Send RTCP PLI for every active video SSRC (rate-limited to one per 0.5 s)."""
        now = time.monotonic()
        if self.closed or now - self._last_pli < PLI_INTERVAL_S:
            return
        self._last_pli = now
        for t in self.pc.getTransceivers():
            if t.kind != "video":
                continue
            receiver = t.receiver
            for src in receiver.getSynchronizationSources():
                with contextlib.suppress(Exception):
                    await receiver._send_rtcp_pli(src.source)
                    self.plis += 1

    async def _attach_camera(self, channel: Any) -> None:
        if self.closed:
            return
        ctl = await self.owner.cameras.acquire(self.stream)
        self._camera = True
        ctl.attach(channel)
        log.info("whip %s (%s): camera data channel %r", self.sid, self.stream, getattr(channel, "label", ""))

    async def _watchdog(self) -> None:
        s = self.owner.settings
        while not self.closed:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            if self.connected_at is None:
                if now - self.created > s.whip_connect_timeout_seconds:
                    reason = f"ICE/DTLS did not connect within {s.whip_connect_timeout_seconds:g} s"
                    self.spawn(self.close(reason), "whip-close")
                    return
                continue
            last = self.last_frame or self.connected_at
            if now - last > s.whip_media_timeout_seconds:
                self.spawn(self.close(f"no video for {s.whip_media_timeout_seconds:g} s"), "whip-close")
                return

    # --- session subjects ------------------------------------------------------------------

    async def _on_session(self, msg: Msg) -> None:
        op = msg.subject.rsplit(".", 1)[-1]
        if op == "delete":
            # close() removes this very subscription, which cancels this handler: tear down and
            # reply from a task of the manager instead
            self.owner.detach(self._delete_and_reply(msg.reply), f"whip-delete:{self.sid}")
            return
        if op == "stats":
            reply: dict[str, Any] = {"ok": True, "stats": await self.stats()}
        elif op == "patch":
            reply = error(422, "trickle ICE is not supported: the answer already holds every candidate")
        else:
            reply = error(400, f"unknown session operation {op[:20]!r}")
        if msg.reply:
            await self.owner.bus.publish(msg.reply, codec.pack(reply), headers=codec.HEADERS)

    async def _delete_and_reply(self, reply_to: str) -> None:
        await self.close("deleted by the publisher")
        if reply_to:
            await self.owner.bus.publish(reply_to, codec.pack({"ok": True}), headers=codec.HEADERS)

    async def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "session": self.sid,
            "stream": self.stream,
            "codec": self.codec,
            "state": self.pc.connectionState,
            "plis": self.plis,
            "health": self.publisher.health.snapshot(),
        }
        with contextlib.suppress(Exception):
            report = await self.pc.getStats()
            for st in report.values():
                if getattr(st, "type", "") == "inbound-rtp" and getattr(st, "kind", "") == "video":
                    out["packets_received"] = int(st.packetsReceived)
                    out["packets_lost"] = int(st.packetsLost)
                    out["jitter"] = float(st.jitter)
        return out

    # --- teardown --------------------------------------------------------------------------

    async def close(self, reason: str) -> None:
        """Tear everything down (idempotent; bounded by :data:`CLOSE_BUDGET_S`)."""
        if self.closed:
            await self._done.wait()
            return
        self.closed = True
        self.close_reason = reason
        log.info("whip %s (%s): closing: %s", self.sid, self.stream, reason)
        current = asyncio.current_task()
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(CLOSE_BUDGET_S):
                for sub in self._subs:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
                self._subs.clear()
                with contextlib.suppress(Exception):
                    await self.pc.close()
                for task in list(self._tasks):
                    if task is not current:
                        task.cancel()
                with contextlib.suppress(Exception):
                    await self.publisher.stop(reason, state="down")
                    if not self.publisher.info:  # never started: still say the source is gone
                        await publish_event(
                            self.owner.bus, self.stream, "down", epoch=self.publisher.epoch, reason=reason
                        )
                self.publisher.close()
                if self.lease is not None:
                    lease, self.lease = self.lease, None
                    await lease.stop()
        except TimeoutError:
            log.warning("whip %s: teardown exceeded %.0f s", self.sid, CLOSE_BUDGET_S)
        finally:
            if self._camera:
                self.owner.cameras.release(self.stream)
            self.owner.sessions.pop(self.sid, None)
            self._done.set()
            log.info("whip %s (%s): closed in %.2f s", self.sid, self.stream, time.monotonic() - t0)


class WhipIngest:
    """The WHIP endpoint and the live sessions of this instance."""

    def __init__(self, bus: Bus, settings: Settings, instance: str, cameras: CameraControls) -> None:
        self.bus = bus
        self.settings = settings
        self.instance = instance
        self.cameras = cameras
        self.registry = Registry(bus)
        self.sessions: dict[str, WhipSession] = {}
        self._detached: set[asyncio.Task[None]] = set()
        configure_aiortc(settings.webrtc_host)
        rtc_receive.install()

    def detach(self, coro: Any, name: str) -> None:
        """Run ``coro`` in a task no session owns (it survives the session's teardown)."""
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._detached.add(task)
        task.add_done_callback(self._detached.discard)

    async def offer(self, req: Any) -> dict[str, Any]:
        """Answer one WHIP request map ``{stream, sdp, token}`` (never raises for bad input)."""
        if not isinstance(req, dict):
            return error(400, "a WHIP request is a map {stream, sdp, token}")
        stream = req.get("stream")
        try:
            validate_id(stream, "stream id")
        except InvalidId as exc:
            return error(400, str(exc))
        assert isinstance(stream, str)
        try:
            check_offer(req.get("sdp"))
        except SdpError as exc:
            return error(exc.status, str(exc))
        sdp: str = req["sdp"]
        token = req.get("token") or ""
        if not isinstance(token, str):
            return error(400, "token must be a string")
        try:
            device = await self.registry.get(stream)
        except Exception as exc:
            log.warning("whip %s: registry unavailable: %s", stream, exc)
            return error(503, "the device registry is unavailable")
        denied = check_publisher(device, "webrtc", token)
        if denied is not None:
            return error(*denied)
        session: WhipSession | None = None

        async def lost() -> None:
            if session is not None:
                session.lease = None
                session.spawn(session.close("stream lease lost"), "whip-close")

        lease = await claim_stream(self.bus, stream, self.instance, on_lost=lost)
        if lease is None:
            return error(409, f"stream {stream} is already being published")
        sid = secrets.token_hex(8)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        session = WhipSession(self, sid, stream, pc, lease)
        session.wire()
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            for t in pc.getTransceivers():
                if t.kind != "video":
                    t.direction = "inactive"
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except Exception as exc:
            with contextlib.suppress(Exception):
                await pc.close()
            session.publisher.close()
            session.closed = True
            await lease.stop()
            status = 422 if "description send parameters" in str(exc) else 400
            log.info("whip %s: offer refused: %s", stream, exc)
            return error(status, f"the offer cannot be used: {str(exc)[:200] or type(exc).__name__}")
        self.sessions[sid] = session
        await session.subscribe()
        log.info("whip %s (%s): answered", sid, stream)
        return {"ok": True, "sdp": pc.localDescription.sdp, "session": sid}

    async def handle(self, data: bytes) -> dict[str, Any]:
        """Decode a ``camhub.ingest.whip`` request body and answer it."""
        try:
            req = codec.unpack_map(data)
        except codec.PayloadError as exc:
            return error(400, str(exc))
        return await self.offer(req)

    async def close(self) -> None:
        sessions = list(self.sessions.values())
        await asyncio.gather(*(s.close("ingest stopping") for s in sessions), return_exceptions=True)
