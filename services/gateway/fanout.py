"""Per-viewer queue policy of the WebSocket relay: bounded, keyframe-aligned, never blocking.

This is camhub's core frame routing (the fan-out rule), so it is written here as a pure class;
:mod:`services.gateway.relay` does the I/O.  Rules:

* A viewer starts at a keyframe: non-key frames are skipped until the first keyframe.
* The queue holds at most ``max_frames`` messages and ``max_bytes`` bytes.  The producer (the
  bus subscription) never waits: :meth:`ViewerQueue.offer` returns at once.
* When full, a non-key frame is dropped and the viewer waits for the next keyframe (a decoder
  cannot use frames after a gap); a keyframe instead flushes the queued, now stale, frames and
  is queued, so a lagging viewer jumps ahead to live.
* A viewer is "behind" from its first drop until a whole keyframe interval (GOP) reaches its
  queue without a drop.  One still behind ``max_behind_s`` after its first drop (at a keyframe,
  or while its queue stays full) is reported :attr:`Offer.TOO_SLOW`; the relay closes it.  So a
  momentary stall costs a GOP, a viewer that cannot keep up is closed, and the others never wait.
* Text messages (stream ``info``) are never dropped, and after one the next frame must be a
  keyframe (new codec configuration).
"""

from __future__ import annotations

import enum
from collections import deque


class Offer(enum.Enum):
    QUEUED = "queued"
    SKIPPED = "skipped"  # waiting for a keyframe
    DROPPED = "dropped"  # queue full: this frame (or stale queued ones) dropped
    TOO_SLOW = "too-slow"  # behind for longer than max_behind_s: close the viewer


class ViewerQueue:
    """The queue of one viewer.  ``now`` arguments are monotonic seconds."""

    def __init__(self, max_frames: int = 32, max_bytes: int = 8 * 1024 * 1024, max_behind_s: float = 5.0) -> None:
        self.max_frames = max(1, max_frames)
        self.max_bytes = max(1, max_bytes)
        self.max_behind_s = max_behind_s
        self._items: deque[bytes | str] = deque()
        self._bytes = 0
        self.waiting_key = True
        self.behind_since: float | None = None
        self._gop_dropped = False
        self.dropped = 0
        self.skipped = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    def _full(self, size: int) -> bool:
        binary = self._bytes > 0
        return len(self._items) >= self.max_frames or (binary and self._bytes + size > self.max_bytes)

    def offer(self, message: bytes, key: bool, now: float) -> Offer:
        """Offer one binary frame message; see the module docstring for the outcome."""
        since = self.behind_since
        behind = since is not None
        if self.waiting_key and not key:
            self.skipped += 1
            if since is not None and self._full(0) and now - since > self.max_behind_s:
                return Offer.TOO_SLOW
            return Offer.SKIPPED
        if key:
            if behind and not self._gop_dropped:
                self.behind_since = None  # a whole GOP went through: caught up
            self._gop_dropped = False
        if not self._full(len(message)):
            self._append(message)
            if key:
                self.waiting_key = False
            return Offer.QUEUED
        self._gop_dropped = True
        if self.behind_since is None:
            self.behind_since = now
        elif now - self.behind_since > self.max_behind_s:
            return Offer.TOO_SLOW
        if not key:
            self.dropped += 1
            self.waiting_key = True
            return Offer.DROPPED
        kept: deque[bytes | str] = deque(m for m in self._items if isinstance(m, str))
        self.dropped += len(self._items) - len(kept)
        self._items = kept
        self._bytes = 0
        self._append(message)
        self.waiting_key = False
        return Offer.DROPPED

    def control(self, text: str) -> None:
        """Queue a text message (never dropped); the next frame must be a keyframe."""
        self._items.append(text)
        self.waiting_key = True

    def pop(self) -> bytes | str | None:
        """The next message to send, or None when empty."""
        if not self._items:
            return None
        item = self._items.popleft()
        if isinstance(item, bytes):
            self._bytes -= len(item)
        return item

    def _append(self, message: bytes) -> None:
        self._items.append(message)
        self._bytes += len(message)
