"""One stream's feed inside an egress process: a single bus subscription shared by all its viewers.

A :class:`StreamFeed` subscribes ``camhub.media.<stream>.frames`` (reassembling chunked frames
with :class:`~services.common.frames.FrameAssembler`), ``.events`` and ``.info`` (docs/bus.md) while
the stream has viewers in this process (and for ``linger`` seconds after the last one leaves, so a
reloading page starts at once). Each access unit goes to the GOP cache and to every viewer; source
events become viewer state changes:

* ``down`` event, or info with ``up: false``: viewers pause (queues emptied, the GOP forgotten);
* ``up`` / ``discontinuity`` event, or info with a new ``epoch``: the GOP is forgotten and viewers
  re-time their RTP clock from the next frame (they keep playing: a returning source starts with
  an IDR);
* info with another codec: viewers that negotiated the old codec end (no renegotiation in WHEP);
* a gap in ``Camhub-Seq``: the GOP is forgotten and viewers skip to the next keyframe;
* while this process is behind (more than ``lag_seconds`` of frames waiting in the subscription,
  or a frame more than ``lag_seconds`` older than usual by ``Camhub-Ts``,
  :mod:`services.egress.lateness`) frames are not sent; viewers resume at the next keyframe that
  arrives in time, so an overloaded egress sheds frames instead of building delay.

It also sends ``keyframe-request`` events for its viewers (a new viewer, a PLI/FIR, a lagging
viewer), at most one per ``keyframe_request_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Protocol

from aiortc import sdp
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from services.common import codec as msgcodec
from services.common import subjects
from services.common.bus import Bus
from services.common.frames import Frame, FrameAssembler, FrameError
from services.common.streams import StreamInfo, publish_event
from services.egress import codecs
from services.egress.config import EgressConfig
from services.egress.gop import GopCache
from services.egress.lateness import LateDetector

log = logging.getLogger("camhub.egress.feed")


class Viewer(Protocol):
    """What a feed needs from a viewer session."""

    sid: str
    codec: str

    def on_frame(self, frame: Frame) -> None: ...
    def on_source_down(self) -> None: ...
    def on_source_restart(self) -> None: ...
    def on_loss(self) -> None: ...
    def on_codec_change(self, codec: str) -> None: ...


class StreamFeed:
    """The bus side of one stream, for every viewer of it in this process."""

    def __init__(self, bus: Bus, info: StreamInfo, cfg: EgressConfig, instance: str) -> None:
        self.bus = bus
        self.stream = info.stream
        self.codec = info.codec
        self.config = info.config
        self.epoch = info.epoch
        self.up = info.up
        self.cfg = cfg
        self.instance = instance
        self.gop = GopCache(int(cfg.gop_seconds * 90_000), cfg.gop_bytes)
        self.viewers: dict[str, Viewer] = {}
        #: sessions holding this feed (viewers plus offers being negotiated)
        self.users = 0
        self.down_since: float | None = None if info.up else time.monotonic()
        self._assembler = FrameAssembler()
        self._subs: list[Subscription] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_kf_request = float("-inf")
        self._started = asyncio.Event()
        self._start_lock = asyncio.Lock()
        self.linger_task: asyncio.Task[None] | None = None
        # counters
        self.frames = 0
        self.bad = 0
        self.wrong_codec = 0
        self.lost = 0
        self.keyframe_requests = 0
        self.late = 0
        #: age (now - Camhub-Ts, ns) of the last frame when it reached this feed
        self.last_age_ns = 0
        self._late = LateDetector(int(cfg.lag_seconds * 1e9))
        self._frames_sub: Subscription | None = None
        #: frames waiting in this subscription beyond which this process is ``lag_seconds`` behind
        self._max_backlog = max(8, int((info.fps or 30) * cfg.lag_seconds))
        self._skipping = False
        self._last_seq: int | None = None
        self._restarted_epoch = info.epoch
        self.last_frame_at: float | None = None

    async def start(self) -> None:
        """Subscribe the stream's frames, events and info (once; later calls wait for the first).

        Raises:
            BusError: NATS refused the subscriptions.
        """
        async with self._start_lock:
            if self._started.is_set():
                return
            self._frames_sub = await self.bus.subscribe(
                subjects.media_frames(self.stream),
                self._on_frame,
                pending_msgs=4096,
                pending_bytes=64 * 1024 * 1024,
            )
            self._subs.append(self._frames_sub)
            self._subs.append(await self.bus.subscribe(subjects.media_events(self.stream), self._on_event))
            self._subs.append(await self.bus.subscribe(subjects.media_info(self.stream), self._on_info))
            self._started.set()

    async def stop(self) -> None:
        """Unsubscribe and cancel pending event publishes."""
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs.clear()
        for task in list(self._tasks):
            task.cancel()
        if self.linger_task is not None and self.linger_task is not asyncio.current_task():
            self.linger_task.cancel()

    # --- viewers --------------------------------------------------------------------------

    def add(self, viewer: Viewer) -> None:
        self.viewers[viewer.sid] = viewer

    def remove(self, sid: str) -> None:
        self.viewers.pop(sid, None)

    def snapshot(self) -> list[Frame]:
        """The cached GOP for a starting viewer ([] while the source is down)."""
        return self.gop.snapshot() if self.up else []

    def h264_profile(self) -> sdp.H264Profile | None:
        """The stream's H.264 profile from its info ``config`` or its cached keyframe, or None."""
        profile = codecs.sps_profile(self.config) if self.config else None
        key = self.gop.keyframe
        if profile is None and key is not None:
            profile = codecs.sps_profile(key.data)
        return profile

    def request_keyframe(self, reason: str) -> bool:
        """Publish ``keyframe-request {by, reason}`` unless one went out within the rate limit.

        Returns True when an event was sent (asynchronously).
        """
        now = time.monotonic()
        if now - self._last_kf_request < self.cfg.keyframe_request_seconds:
            return False
        self._last_kf_request = now
        self.keyframe_requests += 1
        task = asyncio.ensure_future(
            publish_event(self.bus, self.stream, "keyframe-request", by=f"egress/{self.instance}", reason=reason)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    # --- bus handlers ---------------------------------------------------------------------

    async def _on_frame(self, msg: Msg) -> None:
        try:
            frame = self._assembler.push(msg.headers, msg.data)
        except FrameError as exc:
            self.bad += 1
            log.debug("bad frame on %s: %s", msg.subject, exc)
            return
        if frame is None:
            return
        if frame.codec != self.codec:
            self.wrong_codec += 1
            return
        if self._last_seq is not None and frame.seq > self._last_seq + 1:
            # a hole in the stream (this subscriber was too slow, or the ingest dropped): no
            # decoder can continue across it, so everyone resumes at the next keyframe
            self.lost += frame.seq - self._last_seq - 1
            self.gop.clear()
            if not frame.key:
                for viewer in list(self.viewers.values()):
                    viewer.on_loss()
                self.request_keyframe("loss")
        self._last_seq = frame.seq
        self.frames += 1
        self.last_frame_at = time.monotonic()
        backlog = self._frames_sub.pending_msgs if self._frames_sub is not None else 0
        self.last_age_ns = time.time_ns() - frame.ts_ns
        late = self._late.late(self.last_age_ns, self.last_frame_at)
        if late or backlog > self._max_backlog:
            # this process is behind: sending would only delay every viewer further; skip to
            # the next keyframe that arrives in time
            self.late += 1
            self.gop.push(frame)
            if not self._skipping:
                self._skipping = True
                log.warning("stream %s: frames arrive late; viewers skip to the next keyframe", self.stream)
                for viewer in list(self.viewers.values()):
                    viewer.on_loss()
            return
        self._skipping = False
        if not self.up:  # frames are proof the source is back, even if its event was missed
            self._source_up()
        self.gop.push(frame)
        for viewer in list(self.viewers.values()):
            viewer.on_frame(frame)

    async def _on_event(self, msg: Msg) -> None:
        try:
            body = msgcodec.unpack_map(msg.data)
        except msgcodec.PayloadError:
            self.bad += 1
            return
        kind = body.get("type")
        epoch = body.get("epoch")
        if kind == "down":
            self._source_down()
        elif kind in ("up", "discontinuity"):
            self._source_up()
            self._source_restart(epoch if isinstance(epoch, int) else None)

    async def _on_info(self, msg: Msg) -> None:
        try:
            info = StreamInfo.model_validate(msgcodec.unpack_map(msg.data))
        except Exception:
            self.bad += 1
            return
        if info.stream != self.stream:
            return
        if info.codec != self.codec:
            log.info("stream %s changed codec %s -> %s", self.stream, self.codec, info.codec)
            self.codec = info.codec
            self.gop.clear()
            self._last_seq = None
            for viewer in list(self.viewers.values()):
                viewer.on_codec_change(info.codec)
        self.config = info.config or self.config
        if not info.up:
            self._source_down()
        else:
            self._source_up()
            if info.epoch != self.epoch:
                self._source_restart(info.epoch)

    def _source_down(self) -> None:
        if self.up:
            log.info("stream %s source down; %d viewers paused", self.stream, len(self.viewers))
        self.up = False
        self.down_since = self.down_since or time.monotonic()
        self.gop.clear()
        self._last_seq = None
        self._assembler = FrameAssembler()
        for viewer in list(self.viewers.values()):
            viewer.on_source_down()

    def _source_up(self) -> None:
        self.up = True
        self.down_since = None

    def _source_restart(self, epoch: int | None) -> None:
        """Forget the GOP and re-time viewers, once per epoch (info and the up event both say it)."""
        if epoch is not None:
            if epoch == self._restarted_epoch:
                return
            self._restarted_epoch = epoch
            self.epoch = epoch
        self.gop.clear()
        self._last_seq = None
        for viewer in list(self.viewers.values()):
            viewer.on_source_restart()

    def figures(self) -> dict[str, Any]:
        """Counters for stats and logs."""
        return {
            "frames": self.frames,
            "bad": self.bad,
            "wrong_codec": self.wrong_codec,
            "lost": self.lost,
            "gop_frames": len(self.gop),
            "gop_bytes": self.gop.size,
            "gop_overflows": self.gop.overflows,
            "keyframe_requests": self.keyframe_requests,
            "late": self.late,
            "up": self.up,
            "epoch": self.epoch,
        }
