"""Camera commands over the WHIP peer's data channel (docs/bus.md "Cameras").

A request on ``camhub.camera.<id>.cmd`` - ``{type: "start"|"stop"|"config", bitrate?: kbit/s,
fps?, width?, height?}`` - becomes the JSON text ``{"id": <n>, "type": ..., ...}`` on the
camera's data channel; the camera answers ``{"id": <n>, "ok": true|false, "error"?: ...}``.

:class:`CameraControl` (one per camera) numbers the commands, matches acks by ``id``, and while
the camera has no open channel (reconnecting) keeps up to :data:`QUEUE_SIZE` commands and sends
them, in order, when a channel opens.  Replies: ``{ok: true, ack}``; ``{ok: false, ack, error,
status: 502}`` when the camera refuses; 504 when no ack arrives within the timeout (5 s; a
queued command that times out is withdrawn); 503 when the queue is full; 400 for a bad command.
:func:`validate_command` holds the rules for the fields.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from typing import Any

log = logging.getLogger("camhub.ingest.camera")

QUEUE_SIZE = 16
TIMEOUT_S = 5.0
TYPES = ("start", "stop", "config")
_LIMITS = {"bitrate": (16, 200_000), "fps": (1, 240), "width": (16, 8192), "height": (16, 8192)}


class CommandError(ValueError):
    """A camera command is refused before it reaches the camera (``status`` 400)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def validate_command(req: Any) -> dict[str, Any]:
    """The command to send: ``type`` plus the known numeric fields present.

    Raises:
        CommandError: not a map, unknown type, non-integer or out-of-range field, unknown field.
    """
    if not isinstance(req, dict):
        raise CommandError("a camera command is a map {type, bitrate?, fps?, width?, height?}")
    kind = req.get("type")
    if kind not in TYPES:
        raise CommandError(f"unknown camera command type {str(kind)[:30]!r}: use start, stop or config")
    out: dict[str, Any] = {"type": kind}
    for key, value in req.items():
        if key == "type":
            continue
        if key not in _LIMITS:
            raise CommandError(f"unknown field {str(key)[:30]!r} (bitrate, fps, width, height)")
        if isinstance(value, bool) or not isinstance(value, int):
            raise CommandError(f"{key} must be an integer")
        lo, hi = _LIMITS[key]
        if not lo <= value <= hi:
            raise CommandError(f"{key} must be between {lo} and {hi}")
        out[key] = value
    if kind == "config" and len(out) == 1:
        raise CommandError("config needs at least one of bitrate (kbit/s), fps, width, height")
    if ("width" in out) != ("height" in out):
        raise CommandError("width and height go together")
    return out


class CameraControl:
    """Commands and acks for one camera; attach/detach its data channel as it comes and goes."""

    def __init__(self, camera: str, *, queue_size: int = QUEUE_SIZE, timeout: float = TIMEOUT_S) -> None:
        self.camera = camera
        self.queue_size = queue_size
        self.timeout = timeout
        self._channel: Any = None
        self._next_id = 1
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._queue: deque[tuple[int, str]] = deque()

    @property
    def connected(self) -> bool:
        ch = self._channel
        return ch is not None and getattr(ch, "readyState", "") == "open"

    def attach(self, channel: Any) -> None:
        """Use ``channel`` (an aiortc RTCDataChannel) from now on; queued commands go out."""
        self._channel = channel

        @channel.on("message")  # type: ignore[untyped-decorator]
        def on_message(message: Any) -> None:
            self.on_message(message)

        @channel.on("open")  # type: ignore[untyped-decorator]
        def on_open() -> None:
            self._flush()

        @channel.on("close")  # type: ignore[untyped-decorator]
        def on_close() -> None:
            self.detach(channel)

        self._flush()

    def detach(self, channel: Any) -> None:
        if self._channel is channel:
            self._channel = None

    def _flush(self) -> None:
        while self._queue and self.connected:
            cid, text = self._queue.popleft()
            if cid in self._pending:
                self._send(text)

    def _send(self, text: str) -> None:
        try:
            self._channel.send(text)
        except Exception as exc:
            log.warning("camera %s: data channel send failed: %s", self.camera, exc)

    def on_message(self, message: Any) -> None:
        """An ack from the camera (str or bytes JSON); unknown or malformed ones are ignored."""
        try:
            text = message.decode() if isinstance(message, bytes) else str(message)
            ack = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            log.info("camera %s sent a non-JSON data channel message", self.camera)
            return
        if not isinstance(ack, dict) or not isinstance(ack.get("id"), int) or isinstance(ack.get("id"), bool):
            return
        fut = self._pending.get(ack["id"])
        if fut is not None and not fut.done():
            fut.set_result(ack)

    async def command(self, req: Any) -> dict[str, Any]:
        """Send one command and wait for its ack; returns the bus reply map (never raises)."""
        try:
            body = validate_command(req)
        except CommandError as exc:
            return {"ok": False, "error": str(exc), "status": exc.status}
        cid = self._next_id
        self._next_id += 1
        text = json.dumps({"id": cid, **body}, separators=(",", ":"))
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[cid] = fut
        try:
            if self.connected and not self._queue:
                self._send(text)
            elif len(self._queue) >= self.queue_size:
                return {
                    "ok": False,
                    "error": f"camera {self.camera} is reconnecting and {self.queue_size} commands already wait",
                    "status": 503,
                }
            else:
                self._queue.append((cid, text))
                self._flush()
            try:
                ack = await asyncio.wait_for(fut, self.timeout)
            except TimeoutError:
                self._queue = deque(item for item in self._queue if item[0] != cid)
                state = "did not acknowledge" if self.connected else "did not reconnect"
                return {
                    "ok": False,
                    "error": f"camera {self.camera} {state} within {self.timeout:g} s",
                    "status": 504,
                }
        finally:
            self._pending.pop(cid, None)
        if ack.get("ok") is True:
            return {"ok": True, "ack": ack}
        error = ack.get("error")
        return {
            "ok": False,
            "ack": ack,
            "error": str(error)[:300] if error else "the camera refused the command",
            "status": 502,
        }

    @property
    def waiting(self) -> int:
        return len(self._queue)
