"""Stream descriptions, stream events and the heartbeat board (docs/bus.md).

* :class:`StreamInfo` is published by the ingest that owns a source on
  ``camhub.media.<stream>.info`` and kept in KV ``camhub-streams`` (key = stream id) whenever the
  source (re)connects or its parameters change.
* Events on ``camhub.media.<stream>.events`` are msgpack maps ``{"type": ..., "stream": ...,
  "ts": <ms>, ...}`` with type ``up``, ``down``, ``discontinuity`` or ``keyframe-request``.
* :class:`HeartbeatBoard` follows ``camhub.svc.*.*.heartbeat`` and answers "how many viewers
  does stream X have right now" and "what is its health" across every replica.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel

from services.common import codec, subjects
from services.common.bus import Bus

EventType = Literal["up", "down", "discontinuity", "keyframe-request"]
EVENT_TYPES = ("up", "down", "discontinuity", "keyframe-request")


class StreamInfo(BaseModel):
    """What a stream carries.

    ``config`` is the codec configuration in band form: H.264/H.265 parameter sets as Annex B
    (start code + SPS + PPS [+ VPS]), the AV1 sequence header OBU, empty when unknown.
    ``epoch`` grows by one on every source (re)connect, so consumers spot restarts.
    Times are ms since the epoch.
    """

    stream: str
    codec: str
    width: int = 0
    height: int = 0
    fps: float = 0.0
    config: bytes = b""
    source: str = ""
    owner: str = ""
    started_at: int = 0
    epoch: int = 0
    up: bool = True


async def publish_info(bus: Bus, info: StreamInfo) -> None:
    """Publish ``info`` on its subject and store it in KV ``camhub-streams``."""
    data = codec.pack(info.model_dump())
    kv = await bus.kv(subjects.KV_STREAMS)
    await kv.put(info.stream, data)
    await bus.publish(subjects.media_info(info.stream), data, headers=codec.HEADERS)


async def get_info(bus: Bus, stream: str) -> StreamInfo | None:
    """The stored info of ``stream``, or None."""
    kv = await bus.kv(subjects.KV_STREAMS)
    try:
        entry = await kv.get(stream)
    except Exception:
        return None
    if not entry.value:
        return None
    try:
        return StreamInfo.model_validate(codec.unpack_map(entry.value))
    except Exception:
        return None


async def list_infos(bus: Bus) -> list[StreamInfo]:
    """Every stored stream info, sorted by stream id."""
    kv = await bus.kv(subjects.KV_STREAMS)
    try:
        keys = await kv.keys()
    except Exception:
        return []
    out = []
    for key in sorted(keys):
        info = await get_info(bus, key)
        if info is not None:
            out.append(info)
    return out


async def publish_event(bus: Bus, stream: str, type_: EventType, **extra: Any) -> None:
    """Publish a stream event (``up``, ``down``, ``discontinuity``, ``keyframe-request``)."""
    body = {"type": type_, "stream": stream, "ts": int(time.time() * 1000), **extra}
    await bus.publish_obj(subjects.media_events(stream), body)


class HeartbeatBoard:
    """The latest heartbeat of every service instance; stale ones (3 intervals) are ignored.

    Heartbeat ``load`` conventions read here:
    ``viewers: {stream: count}`` (gateway WebSocket, egress WHEP, hls sessions) and
    ``streams: {stream: {fps, bitrate, keyframe_interval, frames, lost, last_frame_age, ...}}``
    (ingest).
    """

    def __init__(self) -> None:
        self.beats: dict[tuple[str, str], dict[str, Any]] = {}
        self._seen: dict[tuple[str, str], float] = {}

    async def start(self, bus: Bus) -> None:
        async def on_beat(msg: Any) -> None:
            try:
                body = codec.unpack_map(msg.data)
            except codec.PayloadError:
                return
            key = (str(body.get("service", "")), str(body.get("instance", "")))
            self.beats[key] = body
            self._seen[key] = time.monotonic()

        await bus.subscribe(subjects.HEARTBEAT_ALL, on_beat)

    def live(self) -> list[dict[str, Any]]:
        """Heartbeats younger than three of their intervals."""
        now = time.monotonic()
        out = []
        for key, body in self.beats.items():
            interval = float(body.get("interval", 2.0) or 2.0)
            if now - self._seen.get(key, 0) <= 3 * interval + 0.5:
                out.append(body)
        return out

    def viewers(self, stream: str) -> int:
        """Viewers of ``stream`` summed across every live instance and path."""
        total = 0
        for body in self.live():
            v = body.get("viewers")
            if isinstance(v, dict):
                n = v.get(stream, 0)
                total += int(n) if isinstance(n, int | float) else 0
        return total

    def viewers_by_service(self, stream: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for body in self.live():
            v = body.get("viewers")
            if isinstance(v, dict) and isinstance(v.get(stream), int | float):
                svc = str(body.get("service"))
                out[svc] = out.get(svc, 0) + int(v[stream])
        return out

    def health(self, stream: str) -> dict[str, Any] | None:
        """The ingest's health figures of ``stream`` (freshest instance), or None."""
        best: dict[str, Any] | None = None
        best_ts = -1
        for body in self.live():
            s = body.get("streams")
            if isinstance(s, dict) and isinstance(s.get(stream), dict):
                ts = int(body.get("ts", 0))
                if ts > best_ts:
                    best, best_ts = s[stream], ts
        return best

    def services(self) -> dict[str, int]:
        """Live instance count per service name."""
        out: dict[str, int] = {}
        for body in self.live():
            name = str(body.get("service"))
            out[name] = out.get(name, 0) + 1
        return out
