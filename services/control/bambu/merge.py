"""Keeping a true copy of a printer's state from full pushes and ``msg: 1`` deltas.

Rules (research/bambu.md section 2.3, OrcaSlicer ``json_diff.cpp``):

* ``print.msg == 0`` is the full state: it replaces the stored state.
* ``print.msg == 1`` is a delta: JSON objects merge recursively; any other value, arrays
  included, replaces the stored value whole.
* no ``msg`` (X1 on LAN): merged like a delta; a ``push_status`` carrying ``gcode_state`` counts
  as complete state.
* a delta before any full state, a ``print`` that is not an object, or fields of the wrong type
  are *failed merges*: the good part is kept and a ``pushing.pushall`` is wanted, at most once
  per ``pushall_min_seconds`` (Orca rate-limits pushall to 3-15 s; P1 firmware lags when asked
  too often).
* ``print`` objects echoing commands (``command`` other than ``push_status``) are acks, not
  state, and are left alone.

This is camhub's core status logic, so it is written here rather than taken from a library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.control.bambu.fields import sanitize_print, to_number


def deep_merge(base: dict[str, Any], delta: dict[str, Any]) -> None:
    """Merge ``delta`` into ``base`` in place: objects recursively, everything else replaced.

    ``delta`` must be acyclic with bounded depth (:func:`services.control.bambu.payload.decode_report`
    guarantees 32 levels), so this cannot fail half way.
    """
    for key, value in delta.items():
        current = base.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            deep_merge(current, value)
        else:
            base[key] = value


@dataclass(frozen=True)
class MergeResult:
    """What :meth:`PrintState.apply` did: ``kind`` is ``full``, ``delta``, ``ack`` (a command echo,
    not state) or ``rejected``; ``failed`` is True for a failed merge; ``rejected_fields`` names
    fields dropped for a wrong type."""

    kind: str
    failed: bool = False
    rejected_fields: tuple[str, ...] = ()
    error: str = ""


@dataclass
class PrintState:
    """The merged ``print`` object of one printer, plus merge bookkeeping.

    ``pushall_min_seconds`` bounds how often :meth:`wants_pushall` says yes (seconds on the
    caller's monotonic clock).
    """

    pushall_min_seconds: float = 15.0
    data: dict[str, Any] = field(default_factory=dict)
    complete: bool = False
    merges: int = 0
    failed_merges: int = 0
    _pending_pushall: bool = False
    _last_pushall: float | None = None

    def apply(self, print_obj: Any) -> MergeResult:
        """Apply the value of a report's ``print`` key.  Never raises."""
        if not isinstance(print_obj, dict):
            return self._fail(MergeResult("rejected", True, error=f"print is a {type(print_obj).__name__}"))
        command = print_obj.get("command", "push_status")
        if command != "push_status":
            return MergeResult("ack")
        clean, rejected = sanitize_print(print_obj)
        msg = to_number(clean.get("msg"))
        kind = "full" if msg == 0 else "delta"
        if kind == "full":
            self.data = clean
            self.complete = True
        else:
            deep_merge(self.data, clean)
            if msg is None and "gcode_state" in clean:
                self.complete = True
        self.merges += 1
        result = MergeResult(kind, bool(rejected) or not self.complete, tuple(rejected))
        if result.failed:
            why = f"fields of the wrong type: {', '.join(rejected)}" if rejected else "delta before any full state"
            return self._fail(MergeResult(kind, True, tuple(rejected), why))
        return result

    def _fail(self, result: MergeResult) -> MergeResult:
        self.failed_merges += 1
        self._pending_pushall = True
        return result

    def note_failure(self) -> None:
        """Count a report that could not even be decoded as a failed merge."""
        self.failed_merges += 1
        self._pending_pushall = True

    def wants_pushall(self, now: float) -> bool:
        """True when a failed merge is waiting for a ``pushall`` and the rate limit allows one
        now; the caller then sends it and calls :meth:`pushall_sent`."""
        if not self._pending_pushall:
            return False
        return self._last_pushall is None or now - self._last_pushall >= self.pushall_min_seconds

    def pushall_wait(self, now: float) -> float | None:
        """Seconds until a waiting ``pushall`` is allowed (0: now), None when none is waiting."""
        if not self._pending_pushall:
            return None
        if self._last_pushall is None:
            return 0.0
        return max(0.0, self._last_pushall + self.pushall_min_seconds - now)

    def pushall_sent(self, now: float) -> None:
        """Record that a ``pushall`` was requested at ``now`` (also on every (re)connect)."""
        self._last_pushall = now
        self._pending_pushall = False
