"""The egress service: WHEP playback of bus frames, packetized by aiortc without re-encoding.

Endpoint ``camhub.egress.whep`` (micro, queue group ``camhub-egress``; docs/bus.md "WHEP"):
request ``{stream, sdp, expires_at?}`` (``expires_at``: ms since the epoch, optional session TTL,
e.g. the VMS live session's), reply ``{ok: true, sdp, session, stream, codec, expires_at}`` or
``{ok: false, status, error}``: 400 bad request / not an offer, 404 stream not up, 422 the offer
cannot receive the stream's codec (or the codec cannot go out over WebRTC: H.265, VP9, images),
503 this instance is full. The session then lives in this instance and answers
``camhub.webrtc.session.<sid>.*`` (:mod:`services.egress.session`).

Heartbeat load: ``viewers: {stream: n}`` and ``sessions: n`` (a heartbeat goes out at once when
they change). Tuning: ``CAMHUB_EGRESS_*`` (:mod:`services.egress.config`).

Modules: ``offer`` (SDP checks, codec choice), ``codecs`` (aiortc codec table additions), ``av1``
(AV1 RTP packetizer), ``feed`` (one bus subscription per stream), ``gop`` (GOP cache), ``queue`` +
``timeline`` (per-viewer frame queue and RTP clock), ``track`` (the ``MediaStreamTrack`` aiortc
sends from), ``session`` (one viewer), ``lateness`` (is this process behind?).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any

from nats.micro.request import Request

from services.common import codec as msgcodec
from services.common import metrics, subjects
from services.common.ids import InvalidId, validate_id
from services.common.rtc import configure_aiortc
from services.common.service import CamhubService, ServiceContext
from services.common.streams import StreamInfo, get_info
from services.egress import codecs
from services.egress.config import EgressConfig, load_egress_config
from services.egress.feed import StreamFeed
from services.egress.offer import OfferError, plan_offer
from services.egress.session import ViewerSession

log = logging.getLogger("camhub.egress")


#: WHEP offers negotiated at the same time by one instance; more wait their turn.
NEGOTIATIONS = 16


def _error(status: int, message: str) -> dict[str, Any]:
    return {"ok": False, "status": status, "error": message}


def new_session_id() -> str:
    """128 random bits as 32 hex digits: unguessable (RFC 9725 section 4.2) and a valid id."""
    return secrets.token_hex(16)


class EgressService(CamhubService):
    name = "egress"
    description = "camhub egress: WHEP playback of bus frames without re-encoding"

    def __init__(self, ctx: ServiceContext, cfg: EgressConfig | None = None) -> None:
        super().__init__(ctx)
        self.cfg = cfg or load_egress_config()
        self.sessions: dict[str, ViewerSession] = {}
        self.feeds: dict[str, StreamFeed] = {}
        self._stopping = False
        self._requests: set[asyncio.Task[None]] = set()
        self._negotiating = 0
        self._negotiations = asyncio.Semaphore(NEGOTIATIONS)

    async def start(self) -> None:
        configure_aiortc(self.settings.webrtc_host)
        codecs.register_codecs()
        await self.ctx.add_endpoint("whep", subjects.EGRESS_WHEP, self._on_whep)

    async def stop(self) -> None:
        self._stopping = True
        if self._requests:  # offers being negotiated: let them finish (they are bounded), then close
            await asyncio.wait(list(self._requests), timeout=3)
        sessions = list(self.sessions.values())
        if sessions:
            await asyncio.gather(*(s.close("egress stopping") for s in sessions), return_exceptions=True)
        for feed in list(self.feeds.values()):
            await feed.stop()
        self.feeds.clear()

    def load(self) -> dict[str, Any]:
        viewers: dict[str, int] = {}
        for s in self.sessions.values():
            viewers[s.stream] = viewers.get(s.stream, 0) + 1
        return {"viewers": viewers, "sessions": len(self.sessions)}

    # --- WHEP --------------------------------------------------------------------------------

    async def _on_whep(self, req: Request) -> None:
        # a micro endpoint's handler runs once at a time: answer each offer in its own task so
        # viewers arriving together negotiate concurrently (bounded by NEGOTIATIONS)
        task = asyncio.ensure_future(self._serve_whep(req))
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)

    async def _serve_whep(self, req: Request) -> None:
        try:
            async with self._negotiations:
                reply = await self.whep(req.data)
        except Exception as exc:
            log.exception("WHEP request failed")
            reply = _error(500, f"internal error: {type(exc).__name__}")
        with contextlib.suppress(Exception):
            await req.respond(msgcodec.pack(reply), headers=msgcodec.HEADERS)

    async def whep(self, data: bytes) -> dict[str, Any]:
        """Handle one ``camhub.egress.whep`` request body; returns the reply map."""
        try:
            body = msgcodec.unpack_map(data)
        except msgcodec.PayloadError as exc:
            return _error(400, f"the request is not a msgpack map: {exc}")
        try:
            stream = validate_id(body.get("stream"), "stream id")
        except InvalidId as exc:
            return _error(400, str(exc))
        expires_at = body.get("expires_at")
        if expires_at is not None and (not isinstance(expires_at, int) or isinstance(expires_at, bool)):
            return _error(400, "expires_at must be an integer (ms since the Unix epoch)")
        if isinstance(expires_at, int) and expires_at <= time.time() * 1000:
            return _error(400, "expires_at is in the past: the viewer session has already expired")
        if self._stopping:
            return _error(503, "this egress instance is stopping")
        if len(self.sessions) + self._negotiating >= self.cfg.max_sessions:
            return _error(503, f"this egress instance is full ({self.cfg.max_sessions} sessions)")
        info = await get_info(self.bus, stream)
        if info is None or not info.up:
            return _error(404, f"stream {stream!r} is not up")
        feed = self.feeds.get(stream)
        profile = feed.h264_profile() if feed is not None else None
        if profile is None and info.config:
            profile = codecs.sps_profile(info.config)
        try:
            plan = plan_offer(body.get("sdp"), info.codec, profile)
        except OfferError as exc:
            return _error(exc.status, exc.message)
        if not plan.profile_match:
            log.info("stream %s: the offer has no H.264 format with the stream's profile; answering %s", stream, plan)
        self._negotiating += 1
        try:
            feed = await self._acquire_feed(info)
            sid = new_session_id()
            session = ViewerSession(sid, feed, plan, self.cfg, self.bus, self._session_closed, expires_at)
            try:
                answer = await session.negotiate(str(body.get("sdp")))
            except OfferError as exc:
                await self._abandon(session)
                return _error(exc.status, exc.message)
            except Exception as exc:
                log.exception("WHEP negotiation for %s failed", stream)
                await self._abandon(session)
                return _error(500, f"the answer could not be created: {type(exc).__name__}")
        finally:
            self._negotiating -= 1
        self.sessions[sid] = session
        feed.add(session)
        metrics.VIEWERS.labels(stream, "whep").set(len(feed.viewers))
        try:
            await session.start()
        except Exception as exc:
            await session.close("start failed")
            return _error(503, f"the session could not be registered on the bus: {type(exc).__name__}")
        feed.request_keyframe("viewer")
        self.ctx.heartbeat_now()
        log.info("session %s: viewer of %s (%s, pt %d)", sid, stream, plan.codec, plan.payload_type)
        return {
            "ok": True,
            "sdp": answer,
            "session": sid,
            "stream": stream,
            "codec": plan.codec,
            "expires_at": expires_at,
        }

    async def _abandon(self, session: ViewerSession) -> None:
        """A session whose negotiation failed: close its peer connection, drop its feed hold."""
        session.closed = True
        session.track.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(session.pc.close(), 4.0)
        self._release_feed(session.feed)

    # --- feeds -------------------------------------------------------------------------------

    async def _acquire_feed(self, info: StreamInfo) -> StreamFeed:
        feed = self.feeds.get(info.stream)
        if feed is None:
            feed = StreamFeed(self.bus, info, self.cfg, self.ctx.instance)
            self.feeds[info.stream] = feed
        if feed.linger_task is not None:
            feed.linger_task.cancel()
            feed.linger_task = None
        feed.users += 1
        try:
            await feed.start()
        except Exception:
            self._release_feed(feed)
            raise
        return feed

    def _release_feed(self, feed: StreamFeed) -> None:
        feed.users -= 1
        if feed.users > 0 or self.feeds.get(feed.stream) is not feed:
            return
        if self._stopping:
            return
        feed.linger_task = asyncio.ensure_future(self._linger(feed))

    async def _linger(self, feed: StreamFeed) -> None:
        await asyncio.sleep(self.cfg.linger_seconds)
        if feed.users == 0 and self.feeds.get(feed.stream) is feed:
            del self.feeds[feed.stream]
            await feed.stop()

    def _session_closed(self, session: ViewerSession) -> None:
        if self.sessions.pop(session.sid, None) is None:
            return
        session.feed.remove(session.sid)
        metrics.VIEWERS.labels(session.stream, "whep").set(len(session.feed.viewers))
        self._release_feed(session.feed)
        self.ctx.heartbeat_now()
        log.info("session %s closed: %s", session.sid, session.close_reason)
