"""The WebSocket relay's bus side: one frames subscription per watched stream, fanned out to viewers.

:class:`RelayHub` subscribes ``camhub.media.<stream>.frames`` (and ``.info``) when the first
viewer of a stream joins and unsubscribes when the last leaves, so a gateway replica only
receives the streams its own viewers watch.  Each frame is framed once (:mod:`wire`) and offered
to every viewer's :class:`~services.gateway.fanout.ViewerQueue`; the subscription callback never
awaits a viewer, so one slow viewer cannot delay another.  Each viewer's own sender task (in
:mod:`services.gateway.media_api`) drains its queue into its socket.

A joining viewer triggers a ``keyframe-request`` event (docs/bus.md; at most one per stream per
second) so a WHIP publisher sends an IDR soon; pull sources ignore it and the viewer waits for
the next keyframe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nats.aio.subscription import Subscription
from prometheus_client import Counter

from services.common import codec, metrics, subjects
from services.common.bus import Bus
from services.common.frames import FrameAssembler, FrameError
from services.common.streams import StreamInfo, get_info, publish_event
from services.gateway.fanout import Offer, ViewerQueue
from services.gateway.wire import WireError, info_message, pack_frame

log = logging.getLogger("camhub.gateway.relay")

KEYFRAME_ASK_S = 1.0
VIEWERS_CLOSED = Counter("camhub_gateway_viewers_closed_total", "WebSocket viewers closed by the gateway", ["reason"])


@dataclass(frozen=True)
class RelayOptions:
    """Per-viewer limits: queue length (messages), queued bytes, and how long a viewer may stay
    behind before it is closed (s)."""

    max_frames: int = 32
    max_bytes: int = 8 * 1024 * 1024
    max_behind_s: float = 5.0


class Viewer:
    """One WebSocket viewer: its queue, a wake-up event for its sender, and its close reason."""

    def __init__(self, stream: str, options: RelayOptions) -> None:
        self.stream = stream
        self.queue = ViewerQueue(options.max_frames, options.max_bytes, options.max_behind_s)
        self.wake = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_reason = ""
        self.info_sent = False
        self.sent = 0

    def close(self, reason: str) -> None:
        if not self.closed.is_set():
            self.close_reason = reason
            self.closed.set()
            self.wake.set()

    def send_info(self, text: str) -> None:
        self.queue.control(text)
        self.info_sent = True
        self.wake.set()


def _info_key(info: StreamInfo) -> tuple[Any, ...]:
    return (info.codec, info.width, info.height, info.config, info.epoch)


class StreamRelay:
    """The subscriptions and viewers of one stream."""

    def __init__(self, bus: Bus, stream: str) -> None:
        self.bus = bus
        self.stream = stream
        self.viewers: set[Viewer] = set()
        self.info: StreamInfo | None = None
        self._assembler = FrameAssembler()
        self._subs: list[Subscription] = []
        self.frames = 0
        self.bad = 0

    async def start(self) -> None:
        self.info = await get_info(self.bus, self.stream)
        self._subs.append(
            await self.bus.subscribe(
                subjects.media_frames(self.stream), self._on_frame, pending_msgs=4096, pending_bytes=128 * 1024 * 1024
            )
        )
        self._subs.append(await self.bus.subscribe(subjects.media_info(self.stream), self._on_info))
        with contextlib.suppress(Exception):  # the server has our SUBs once this returns
            await self.bus.nc.flush(timeout=2)

    async def stop(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs.clear()

    def add(self, viewer: Viewer) -> None:
        self.viewers.add(viewer)
        if self.info is not None and self.info.up:
            viewer.send_info(info_message(self.stream, self.info))

    async def _on_frame(self, msg: Any) -> None:
        try:
            frame = self._assembler.push(msg.headers, msg.data)
        except FrameError as exc:
            self.bad += 1
            metrics.FRAMES_DROPPED.labels("gateway", "malformed").inc()
            log.debug("stream %s: bad frame message: %s", self.stream, exc)
            return
        if frame is None:
            return
        self.frames += 1
        try:
            message = pack_frame(frame.codec, frame.pts, frame.key, frame.data)
        except WireError:
            self.bad += 1
            return
        now = time.monotonic()
        for viewer in list(self.viewers):
            if viewer.closed.is_set():
                continue
            if not viewer.info_sent:
                if not frame.key:
                    continue
                viewer.send_info(info_message(self.stream, self.info, frame))
            outcome = viewer.queue.offer(message, frame.key, now)
            if outcome is Offer.QUEUED:
                viewer.wake.set()
            elif outcome is Offer.DROPPED:
                metrics.FRAMES_DROPPED.labels("gateway", "slow-viewer").inc()
                viewer.wake.set()
            elif outcome is Offer.TOO_SLOW:
                viewer.close("too slow")
                VIEWERS_CLOSED.labels("too slow").inc()
        # nats-py hands a burst of buffered messages to this callback without yielding; let the
        # viewers' senders run between frames so a burst is not mistaken for a slow viewer.
        await asyncio.sleep(0)

    async def _on_info(self, msg: Any) -> None:
        try:
            info = StreamInfo.model_validate(codec.unpack_map(msg.data))
        except Exception:
            return
        changed = self.info is None or _info_key(self.info) != _info_key(info)
        self.info = info
        if changed and info.up:
            text = info_message(self.stream, info)
            for viewer in list(self.viewers):
                viewer.send_info(text)


class RelayHub:
    """All relays of this gateway; ``on_change`` runs whenever a viewer count changes."""

    def __init__(self, bus: Bus, options: RelayOptions, on_change: Callable[[], None] = lambda: None) -> None:
        self.bus = bus
        self.options = options
        self.on_change = on_change
        self.relays: dict[str, StreamRelay] = {}
        self._lock = asyncio.Lock()
        self._asked: dict[str, float] = {}

    def viewer(self, stream: str) -> Viewer:
        return Viewer(stream, self.options)

    async def join(self, viewer: Viewer) -> StreamRelay:
        """Add ``viewer`` to its stream's relay (subscribing on first use).

        Raises:
            BusError: the subscription could not be made.
        """
        async with self._lock:
            relay = self.relays.get(viewer.stream)
            if relay is None:
                relay = StreamRelay(self.bus, viewer.stream)
                await relay.start()
                self.relays[viewer.stream] = relay
            relay.add(viewer)
        self._changed(viewer.stream)
        now = time.monotonic()
        if now - self._asked.get(viewer.stream, -KEYFRAME_ASK_S) >= KEYFRAME_ASK_S:  # one ask per second
            self._asked[viewer.stream] = now
            with contextlib.suppress(Exception):
                await publish_event(self.bus, viewer.stream, "keyframe-request", by="gateway")
        return relay

    async def leave(self, viewer: Viewer) -> None:
        """Remove ``viewer``; the last one out unsubscribes the stream."""
        async with self._lock:
            relay = self.relays.get(viewer.stream)
            if relay is None or viewer not in relay.viewers:
                return
            relay.viewers.discard(viewer)
            if not relay.viewers:
                del self.relays[viewer.stream]
                self._asked.pop(viewer.stream, None)
                await relay.stop()
        self._changed(viewer.stream)

    def counts(self) -> dict[str, int]:
        """Viewers per stream on this replica."""
        return {s: len(r.viewers) for s, r in self.relays.items() if r.viewers}

    def total(self) -> int:
        return sum(len(r.viewers) for r in self.relays.values())

    def close_all(self, reason: str) -> None:
        for relay in self.relays.values():
            for viewer in relay.viewers:
                viewer.close(reason)

    def _changed(self, stream: str) -> None:
        relay = self.relays.get(stream)
        metrics.VIEWERS.labels(stream, "ws").set(len(relay.viewers) if relay else 0)
        self.on_change()
