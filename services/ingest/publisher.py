"""The one publisher every ingest source uses: stream info, events and frames (docs/bus.md).

A :class:`StreamPublisher` lives as long as its source (an RTSP pull with all its reconnects, a
WHIP session, a pushed stream).  Per connection the source calls :meth:`~StreamPublisher.start`
(new ``epoch``: info, ``up``, and ``discontinuity`` from the second epoch on), then
:meth:`~StreamPublisher.publish` per access unit, then :meth:`~StreamPublisher.stop` (``down``,
info with ``up: false``).

What :meth:`~StreamPublisher.publish` guarantees on ``camhub.media.<stream>.frames``:

* each epoch starts at a keyframe (earlier frames are dropped and counted);
* H.264/H.265: parameter sets in band before every IDR (taken from ``config``; a change of the
  in-band SPS/PPS/VPS updates ``config`` and republishes info); AV1: the sequence header OBU before
  every keyframe;
* DTS strictly increasing and PTS >= DTS within an epoch (90 kHz ticks); a jump back of more than
  1 s or forward of more than 60 s is a timestamp restart: new epoch + ``discontinuity``;
* ``Camhub-Seq`` increases by one per published frame for the publisher's life, so consumers
  count gaps;
* malformed access units (:func:`services.ingest.bitstream.check_access_unit`) are dropped;
* a frame is never waited on: a bus that refuses it (disconnected with a full buffer) drops it.

Info carries an extra ``health`` map (the heartbeat figures, :mod:`services.ingest.health`); the
KV copy is refreshed by :meth:`~StreamPublisher.refresh_info` without a new info message.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import av

from services.common import av1, h264, metrics, subjects
from services.common import codec as msgcodec
from services.common.bus import Bus
from services.common.frames import CLOCK_HZ, Frame, encode
from services.common.streams import StreamInfo, get_info, publish_event
from services.ingest import bitstream
from services.ingest.health import BOARD, StreamHealth

log = logging.getLogger("camhub.ingest.publisher")

MAX_BACKWARD_TICKS = CLOCK_HZ  # 1 s
MAX_FORWARD_TICKS = 60 * CLOCK_HZ  # 60 s
_PARSERS = {"h264": "h264", "h265": "hevc", "av1": "av1"}
_PS_TYPES = {
    "h264": (h264.H264_SPS, h264.H264_PPS),
    "h265": (h264.H265_VPS, h264.H265_SPS, h264.H265_PPS),
}


class PublisherStopped(RuntimeError):
    """:meth:`StreamPublisher.publish` was called outside start/stop."""


def frame_dimensions(codec: str, data: bytes) -> tuple[int, int]:
    """Width and height from a keyframe's headers, via FFmpeg's bitstream parser (no decoder):
    H.264 SPS, H.265 SPS, AV1 sequence header; VP8 from the key frame header (RFC 6386 9.1); JPEG
    from its SOFn segment.
    (0, 0) when unknown."""
    if codec == "jpeg":
        return bitstream.jpeg_dimensions(data)
    if codec == "vp8":
        if len(data) >= 10 and data[0] & 0x01 == 0 and data[3:6] == b"\x9d\x01\x2a":
            return int.from_bytes(data[6:8], "little") & 0x3FFF, int.from_bytes(data[8:10], "little") & 0x3FFF
        return 0, 0
    name = _PARSERS.get(codec)
    if name is None:
        return 0, 0
    try:
        ctx: Any = av.CodecContext.create(name, "r")
        ctx.parse(data)
        ctx.parse(b"")
        return int(ctx.width or 0), int(ctx.height or 0)
    except Exception:
        return 0, 0


class StreamPublisher:
    """Publishes one stream's info, events and frames.  Not thread-safe: use from the loop.

    Args:
        bus: the connected bus.
        stream: the stream id (validated by the subject builders; raises ``InvalidId``).
        source: ``rtsp``, ``whip``, ``push``, ``bambu-jpeg`` or ``demo``.
        owner: this ingest instance id.
    """

    def __init__(self, bus: Bus, stream: str, source: str, owner: str) -> None:
        self.bus = bus
        self.stream = stream
        self.source = source
        self.owner = owner
        self.subject = subjects.media_frames(stream)
        self.health = StreamHealth(stream, source)
        self.info: StreamInfo | None = None
        self.epoch = 0
        self.seq = 0
        self.live = False
        self._last_dts: int | None = None
        self._waiting_key = True
        self._m_in = metrics.FRAMES_IN.labels(stream)
        self._m_bytes = metrics.BYTES_IN.labels(stream)
        self._m_out = metrics.FRAMES_OUT.labels(stream)
        BOARD.add(self.health)

    # --- lifecycle -----------------------------------------------------------------------

    async def start(
        self,
        codec: str,
        *,
        width: int = 0,
        height: int = 0,
        fps: float = 0.0,
        config: bytes = b"",
        reason: str = "source connected",
    ) -> int:
        """Begin an epoch: read the stored epoch (so it grows across restarts), publish info,
        ``up`` and (epoch > 1) ``discontinuity``.  Returns the new epoch."""
        prev = await get_info(self.bus, self.stream)
        self.epoch = max(prev.epoch if prev else 0, self.epoch) + 1
        self.info = StreamInfo(
            stream=self.stream,
            codec=codec,
            width=width,
            height=height,
            fps=float(fps),
            config=config,
            source=self.source,
            owner=self.owner,
            started_at=int(time.time() * 1000),
            epoch=self.epoch,
            up=True,
        )
        self.health.codec, self.health.width, self.health.height = codec, width, height
        self._last_dts = None
        self._waiting_key = True
        self.live = True
        self.health.set_state("up")
        metrics.STREAM_UP.labels(self.stream).set(1)
        await self._put_info(announce=True)
        await publish_event(self.bus, self.stream, "up", epoch=self.epoch)
        if self.epoch > 1:
            await publish_event(self.bus, self.stream, "discontinuity", epoch=self.epoch, reason=reason)
        log.info("stream %s up (epoch %d, %s, %s)", self.stream, self.epoch, self.source, codec)
        return self.epoch

    async def restart(self, reason: str, codec: str | None = None) -> None:
        """New epoch inside a connection (timestamps restarted, codec changed): info +
        ``discontinuity``."""
        if self.info is None:
            return
        self.epoch += 1
        update: dict[str, Any] = {"epoch": self.epoch, "started_at": int(time.time() * 1000)}
        if codec is not None and codec != self.info.codec:
            update.update(codec=codec, config=b"", width=0, height=0)
            self.health.codec = codec
            self._waiting_key = True
        self.info = self.info.model_copy(update=update)
        self._last_dts = None
        await self._put_info(announce=True)
        await publish_event(self.bus, self.stream, "discontinuity", epoch=self.epoch, reason=reason)
        log.info("stream %s epoch %d: %s", self.stream, self.epoch, reason)

    async def stop(self, reason: str, state: str = "down") -> None:
        """End the epoch: ``down`` event and info with ``up: false``.  ``state`` is what the
        health shows afterwards (``down``, ``connecting`` or ``error``)."""
        self.health.set_state(state, reason if state == "error" else self.health.error)
        if not self.live:
            return
        self.live = False
        metrics.STREAM_UP.labels(self.stream).set(0)
        try:
            await publish_event(self.bus, self.stream, "down", epoch=self.epoch, reason=reason)
            if self.info is not None:
                self.info = self.info.model_copy(update={"up": False})
                await self._put_info(announce=True)
        except Exception as exc:
            log.warning("stream %s: down not published: %s", self.stream, exc)
        log.info("stream %s down: %s", self.stream, reason)

    def close(self) -> None:
        """Forget the stream's health (the source is gone for good)."""
        BOARD.remove(self.health)

    # --- info ------------------------------------------------------------------------------

    def _info_payload(self) -> bytes:
        assert self.info is not None
        body = self.info.model_dump()
        body["health"] = self.health.snapshot()
        return msgcodec.pack(body)

    async def _put_info(self, announce: bool) -> None:
        if self.info is None:
            return
        data = self._info_payload()
        try:
            kv = await self.bus.kv(subjects.KV_STREAMS)
            await kv.put(self.stream, data)
        except Exception as exc:
            log.warning("stream %s: info not stored: %s", self.stream, exc)
        if announce:
            await self.bus.publish(subjects.media_info(self.stream), data, headers=msgcodec.HEADERS)

    async def refresh_info(self) -> None:
        """Store the current figures (fps, health) in KV without announcing a new info."""
        if self.live and self.info is not None:
            fps = round(self.health.fps(), 2)
            if fps:
                self.info = self.info.model_copy(update={"fps": fps})
            await self._put_info(announce=False)

    async def _set_config(self, config: bytes, data: bytes, key: bool) -> None:
        assert self.info is not None
        update: dict[str, Any] = {"config": config}
        if key:
            w, h = frame_dimensions(self.info.codec, data)
            if w and h:
                update.update(width=w, height=h)
                self.health.width, self.health.height = w, h
        self.info = self.info.model_copy(update=update)
        await self._put_info(announce=True)

    # --- frames ----------------------------------------------------------------------------

    def drop(self, reason: str, n: int = 1) -> None:
        """Count ``n`` frames dropped by ingest for ``reason`` (health + Prometheus)."""
        self.health.on_dropped(n)
        metrics.FRAMES_DROPPED.labels("ingest", reason).inc(n)

    def lost(self, n: int = 1) -> None:
        """Count ``n`` frames the source lost before ingest saw them."""
        self.health.on_lost(n)

    async def publish(self, frame: Frame) -> bool:
        """Publish one access unit (``frame.seq`` is ignored and set here).  Returns True when it
        went to the bus, False when it was dropped (and counted).

        Raises:
            PublisherStopped: called before :meth:`start` or after :meth:`stop`.
        """
        if not self.live or self.info is None:
            raise PublisherStopped(f"stream {self.stream} is not started")
        self._m_in.inc()
        self._m_bytes.inc(len(frame.data))
        if frame.codec != self.info.codec:
            await self.restart(f"codec changed from {self.info.codec} to {frame.codec}", codec=frame.codec)
        codec = self.info.codec
        data = frame.data
        nals = list(h264.iter_nals(data)) if codec in ("h264", "h265") else None  # one pass over the AU
        problem = (
            bitstream.check_h26x(data, codec, nals) if nals is not None else bitstream.check_access_unit(codec, data)
        )
        if problem is not None:
            log.debug("stream %s: dropped malformed %s access unit: %s", self.stream, codec, problem)
            self.drop("malformed")
            return False
        key = frame.key
        if nals is not None:
            wanted = _PS_TYPES[codec]
            ps_nals = [n for n in nals if h264.nal_type(n, codec) in wanted]
            if ps_nals:
                ps = b"".join(h264.START + n for n in ps_nals)
                if ps != self.info.config:
                    await self._set_config(ps, data, key)
            sps = h264.H265_SPS if codec == "h265" else h264.H264_SPS
            if key and self.info.config and not any(h264.nal_type(n, codec) == sps for n in ps_nals):
                data = self.info.config + data
        elif codec == "av1":
            seq = av1.sequence_header(data)
            if seq and seq != self.info.config:
                await self._set_config(seq, data, key)
            elif key and not seq:
                data = av1.with_sequence_header(data, self.info.config)
        elif codec in ("vp8", "jpeg") and key and not self.info.width:
            w, h = frame_dimensions(codec, data)
            if w and h:
                self.info = self.info.model_copy(update={"width": w, "height": h})
                self.health.width, self.health.height = w, h
                await self._put_info(announce=True)
        if self._waiting_key:
            if not key:
                self.drop("waiting for keyframe")
                return False
            self._waiting_key = False
        pts, dts = int(frame.pts), int(frame.dts)
        if self._last_dts is not None:
            delta = dts - self._last_dts
            if delta < -MAX_BACKWARD_TICKS or delta > MAX_FORWARD_TICKS:
                await self.restart(f"timestamps restarted (DTS jumped {delta / CLOCK_HZ:+.1f} s)")
            elif delta <= 0:
                dts = self._last_dts + 1
        pts = max(pts, dts)
        self._last_dts = dts
        self.seq += 1
        out = Frame(codec, pts, dts, key, data, self.seq, frame.ts_ns)
        try:
            for headers, body in encode(out, self.bus.max_payload):
                await self.bus.publish(self.subject, body, headers)
        except Exception as exc:
            log.warning("stream %s: frame not published: %s", self.stream, exc)
            self.drop("bus")
            return False
        self.health.on_frame(len(data), key, pts)
        self._m_out.inc()
        return True
