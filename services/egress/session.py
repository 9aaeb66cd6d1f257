"""One WHEP viewer: an aiortc peer connection whose only sender is a :class:`~services.egress.track.BusTrack`.

Lifecycle (docs/bus.md "Sessions"):

* :meth:`ViewerSession.negotiate` answers the offer (sendonly video, the codec chosen by
  :func:`services.egress.offer.plan_offer`; aiortc gathers every ICE candidate first, so the answer
  is complete and trickle ICE is not needed);
* :meth:`ViewerSession.start` subscribes ``camhub.webrtc.session.<sid>.*`` (``delete``, ``stats``,
  ``patch`` -> 422; a request body ``{stream}`` naming another stream -> 404) in this instance
  only, and starts a watchdog that closes the session when the peer connection is
  ``failed``/``closed``, the handshake has not completed after ``handshake_seconds``, nothing has
  arrived from the viewer for ``idle_seconds`` while media flows to it (a killed browser says no
  goodbye), the source has been down for ``pause_seconds``, or ``expires_at`` (ms since the
  epoch, VMS session TTL) has passed;
* a viewer that lags skips to the next keyframe and asks for one (``keyframe-request``, reason
  ``lag``);
* RTCP PLI and FIR from the viewer (RFC 4585 6.3.1, RFC 5104 4.3.1) restart it from the cached GOP
  and ask the source for an IDR (``keyframe-request``). aiortc's sender turns both into a call of
  ``RTCRtpSender._send_keyframe()``, which only sets a flag its ``pack()`` path ignores, so that
  one method is replaced on this session's sender instance (the single hook point in
  ``aiortc/rtcrtpsender.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription, sdp
from aiortc.rtcrtpsender import RTCRtpSender
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from services.common import codec as msgcodec
from services.common import subjects
from services.common.bus import Bus
from services.common.frames import Frame
from services.egress.config import EgressConfig
from services.egress.feed import StreamFeed
from services.egress.offer import OfferError, OfferPlan
from services.egress.queue import ViewerQueue
from services.egress.track import BusTrack

log = logging.getLogger("camhub.egress.session")

WATCH_INTERVAL_S = 0.5
#: PLI/FIR restarts of one viewer at most this often (a browser repeats PLI until it decodes)
RESTART_INTERVAL_S = 1.0
CLOSE_TIMEOUT_S = 4.0


class ViewerSession:
    """A WHEP viewer of one stream, held by the egress instance that answered its offer.

    Args:
        sid: session id (valid under the id rule).
        feed: the stream's feed (frames, GOP cache, keyframe requests).
        plan: how to answer the offer.
        on_closed: called once, after the session has closed, with the session.
        expires_at: ms since the epoch after which the session is closed, or None.
    """

    def __init__(
        self,
        sid: str,
        feed: StreamFeed,
        plan: OfferPlan,
        cfg: EgressConfig,
        bus: Bus,
        on_closed: Callable[[ViewerSession], None],
        expires_at: int | None = None,
    ) -> None:
        self.sid = sid
        self.stream = feed.stream
        self.codec = plan.codec
        self.feed = feed
        self.plan = plan
        self.cfg = cfg
        self.bus = bus
        self.expires_at = expires_at
        self._on_closed = on_closed
        self.queue = ViewerQueue(int(cfg.lag_seconds * 90_000))
        self.track = BusTrack(self.queue, feed.snapshot, cfg.catchup_bitrate)
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.sender: RTCRtpSender | None = None
        self.created_at_ms = int(time.time() * 1000)
        self._created = time.monotonic()
        self.connected_at_ms: int | None = None
        self._disconnected_since: float | None = None
        self._rx_packets = -1
        self._rx_at = time.monotonic()
        self._last_restart = float("-inf")
        self._sub: Subscription | None = None
        self._watch: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closed = False
        self.close_reason = ""
        self.plis = 0

    # --- negotiation ----------------------------------------------------------------------

    async def negotiate(self, offer_sdp: str) -> str:
        """Apply the offer and return the complete answer SDP.

        Raises:
            OfferError: aiortc rejected the offer (400) or the answer would not send the stream's
                codec (422).
        """
        transceiver = self.pc.addTransceiver(self.track, direction="sendonly")
        transceiver.setCodecPreferences(self.plan.preferences)
        self.sender = transceiver.sender
        setattr(self.sender, "_send_keyframe", self._on_keyframe_request)  # noqa: B010 (see module doc)
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except Exception as exc:
            status = 422 if type(exc).__name__ == "OperationError" else 400
            detail = str(exc) or type(exc).__name__
            raise OfferError(status, f"the offer was refused by the WebRTC stack: {detail}") from None
        answer = await self.pc.createAnswer()
        await self.pc.setLocalDescription(answer)
        local = self.pc.localDescription.sdp
        desc = sdp.SessionDescription.parse(local)
        video = next((m for m in desc.media if m.kind == "video" and m.rtp.muxId == transceiver.mid), None)
        if video is None or video.direction != "sendonly" or not video.rtp.codecs:
            raise OfferError(422, f"the offer cannot receive this stream's {self.codec.upper()} video")
        self.pc.on("connectionstatechange", self._on_state)
        return str(local)

    def _on_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and self.connected_at_ms is None:
            self.connected_at_ms = int(time.time() * 1000)
            self._rx_at = time.monotonic()
        log.debug("session %s connection %s", self.sid, state)

    # --- running --------------------------------------------------------------------------

    async def start(self) -> None:
        """Answer ``camhub.webrtc.session.<sid>.*`` and start the watchdog."""
        self._sub = await self.bus.subscribe(subjects.webrtc_session(self.sid, "*"), self._on_op)
        self._watch = asyncio.ensure_future(self._watchdog())

    @property
    def state(self) -> str:
        """``new``, ``connecting``, ``connected``, ``paused`` (source down), ``failed`` or ``closed``."""
        if self.closed:
            return "closed"
        state = str(self.pc.connectionState)
        if state == "connected" and not self.feed.up:
            return "paused"
        return state

    def on_frame(self, frame: Frame) -> None:
        lags = self.queue.lags
        self.track.push(frame)
        if self.queue.lags != lags:  # this viewer fell behind and now waits for a keyframe
            log.info("session %s (%s) lagged; skipping to the next keyframe", self.sid, self.stream)
            self.feed.request_keyframe("lag")

    def on_source_down(self) -> None:
        self.track.pause()

    def on_source_restart(self) -> None:
        self.queue.reanchor()

    def on_loss(self) -> None:
        self.queue.skip_to_keyframe()

    def on_codec_change(self, codec: str) -> None:
        if codec != self.codec:
            self._spawn(self.close(f"the stream's codec changed to {codec}"))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_keyframe_request(self) -> None:
        """aiortc received PLI or FIR from the viewer."""
        self.plis += 1
        now = time.monotonic()
        if now - self._last_restart >= RESTART_INTERVAL_S:
            self._last_restart = now
            self.track.restart(self.feed.snapshot())
        self.feed.request_keyframe("pli")

    async def _watchdog(self) -> None:
        cfg = self.cfg
        while not self.closed:
            await asyncio.sleep(WATCH_INTERVAL_S)
            reason = await self._check(cfg)
            if reason:
                log.info("closing session %s (%s): %s", self.sid, self.stream, reason)
                await self.close(reason)
                return

    async def _check(self, cfg: EgressConfig) -> str:
        now = time.monotonic()
        state = self.pc.connectionState
        if state in ("failed", "closed"):
            return f"peer connection {state}"
        if self.expires_at is not None and time.time() * 1000 >= self.expires_at:
            return "session expired"
        if self.connected_at_ms is None:
            if now - self._created > cfg.handshake_seconds:
                return f"ICE/DTLS handshake not completed within {cfg.handshake_seconds:g} s"
            return ""
        if state == "disconnected":
            self._disconnected_since = self._disconnected_since or now
            if now - self._disconnected_since > cfg.idle_seconds:
                return "peer connection disconnected"
        else:
            self._disconnected_since = None
        rx = await self._rx_count()
        if rx != self._rx_packets:
            self._rx_packets, self._rx_at = rx, now
        track = self.track
        flowing = track.last_sent_at is not None and now - track.last_sent_at < cfg.idle_seconds
        since = max(self._rx_at, track.sending_since or now)
        if flowing and now - since > cfg.idle_seconds:
            return f"nothing received from the viewer for {now - self._rx_at:.1f} s"
        down = self.feed.down_since
        if down is not None and now - down > cfg.pause_seconds:
            return f"the stream's source has been down for {cfg.pause_seconds:g} s"
        last = track.last_sent_at or track.started_at or now
        if now - last > cfg.pause_seconds:
            return f"no media for the viewer for {cfg.pause_seconds:g} s"
        return ""

    async def _rx_count(self) -> int:
        """Datagrams received from the viewer on the DTLS transport (RTCP, DTLS), from getStats."""
        if self.sender is None:
            return 0
        with contextlib.suppress(Exception):
            report = await self.sender.getStats()
            for stat in report.values():
                if getattr(stat, "type", "") == "transport":
                    return int(getattr(stat, "packetsReceived", 0) or 0)
        return 0

    # --- session ops ------------------------------------------------------------------------

    async def _on_op(self, msg: Msg) -> None:
        op = msg.subject.rsplit(".", 1)[-1]
        reply: dict[str, Any]
        body: Any = {}
        if msg.data:
            with contextlib.suppress(msgcodec.PayloadError):
                body = msgcodec.unpack(msg.data)
        stream = body.get("stream") if isinstance(body, dict) else None
        if stream is not None and stream != self.stream:
            # the gateway passes the stream of the URL: /whep/<other>/<sid> must not reach this one
            reply = {"ok": False, "status": 404, "error": f"no WebRTC session {self.sid!r} for stream {stream!r}"}
        elif op == "delete":
            # close in its own task: unsubscribing inside this subscription's callback would
            # cancel the callback (nats-py) before the reply goes out
            self._spawn(self.close("deleted by the viewer"))
            reply = {"ok": True}
        elif op == "stats":
            reply = {"ok": True, "stats": await self.stats()}
        elif op == "patch":
            reply = {
                "ok": False,
                "status": 422,
                "error": "trickle ICE is not supported: the answer already holds every candidate (aiortc gathers "
                "them all before answering)",
            }
        else:
            reply = {"ok": False, "status": 400, "error": f"unknown session operation {op!r} (delete, stats, patch)"}
        if msg.reply:
            with contextlib.suppress(Exception):
                await msg.respond(msgcodec.pack(reply))

    async def stats(self) -> dict[str, Any]:
        """``{session, stream, codec, state, connection, created_at, connected_at, expires_at,
        frames_sent, keyframes_sent, bytes_sent (AU bytes), rtp_bytes_sent, packets_sent,
        packets_lost, rtt_ms, frames_dropped, frames_skipped, lags, restarts, plis, source_lost
        (frames the stream's feed in this process missed: ``Camhub-Seq`` gaps), source_late (frames
        it skipped because it was more than ``lag_seconds`` behind), source_age_ms (age of the
        last frame, by ``Camhub-Ts``, when it reached this instance), queued (AUs waiting for this
        viewer), latency_ms:
        {n, p50, p99, max}}``; times in ms since the epoch."""
        out: dict[str, Any] = {
            "session": self.sid,
            "stream": self.stream,
            "codec": self.codec,
            "state": self.state,
            "connection": str(self.pc.connectionState),
            "created_at": self.created_at_ms,
            "connected_at": self.connected_at_ms,
            "expires_at": self.expires_at,
            "frames_sent": self.track.frames_sent,
            "keyframes_sent": self.track.keyframes_sent,
            "bytes_sent": self.track.bytes_sent,
            "rtp_bytes_sent": 0,
            "packets_sent": 0,
            "packets_lost": 0,
            "rtt_ms": None,
            "frames_dropped": self.queue.dropped,
            "frames_skipped": self.queue.skipped,
            "lags": self.queue.lags,
            "restarts": self.queue.restarts,
            "plis": self.plis,
            "source_lost": self.feed.lost,
            "source_late": self.feed.late,
            "source_age_ms": round(self.feed.last_age_ns / 1e6, 3),
            "queued": len(self.queue),
            "latency_ms": self.track.latency.summary(),
        }
        if self.sender is not None and not self.closed:
            with contextlib.suppress(Exception):
                for stat in (await self.sender.getStats()).values():
                    kind = getattr(stat, "type", "")
                    if kind == "outbound-rtp":
                        out["rtp_bytes_sent"] = int(stat.bytesSent)
                        out["packets_sent"] = int(stat.packetsSent)
                    elif kind == "remote-inbound-rtp":
                        out["packets_lost"] = int(stat.packetsLost)
                        rtt = getattr(stat, "roundTripTime", None)
                        out["rtt_ms"] = round(rtt * 1000, 3) if rtt is not None else None
        return out

    async def close(self, reason: str) -> None:
        """Close the peer connection and stop answering session ops; idempotent, bounded (~4 s)."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self.track.stop()
        if self._watch is not None and self._watch is not asyncio.current_task():
            self._watch.cancel()
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.pc.close(), CLOSE_TIMEOUT_S)
        self._on_closed(self)
