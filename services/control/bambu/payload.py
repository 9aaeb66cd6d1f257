"""Defensive decoding of ``device/<serial>/report`` payloads.

A report is one JSON object whose top-level keys are message classes (``print``, ``info``,
``system``, ``mc_print``, ...; research/bambu.md section 2.1).  Printers have been seen sending
invalid UTF-8 (OrcaSlicer ``sanitizeToUtf8``, ha-bambulab ``safe_json_loads``): such bytes are
replaced by U+FFFD and the report is kept, flagged ``repaired``.  Anything that is not a JSON
object, is larger than :data:`MAX_REPORT_BYTES` or nests deeper than :data:`MAX_DEPTH` raises
:class:`ReportError`, so a hostile or broken payload can never reach the merged state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_REPORT_BYTES = 1 << 20
MAX_DEPTH = 32


class ReportError(ValueError):
    """The payload is not a usable report; the message says why (for a person)."""


@dataclass(frozen=True)
class Report:
    """A decoded report: ``obj`` is the top-level JSON object, ``repaired`` True when invalid
    UTF-8 bytes were replaced."""

    obj: dict[str, Any]
    repaired: bool = False


def depth(obj: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of dicts/lists in ``obj`` (iterative; stops counting at ``limit + 1``)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        item, d = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        stack.extend((c, d + 1) for c in children if isinstance(c, dict | list))
    return deepest


def decode_report(data: bytes) -> Report:
    """Decode one MQTT report payload.

    Raises:
        ReportError: empty, larger than 1 MiB, not JSON, not a JSON object, or nested deeper
            than 32 levels.
    """
    if not data:
        raise ReportError("empty report")
    if len(data) > MAX_REPORT_BYTES:
        raise ReportError(f"report of {len(data)} bytes is larger than {MAX_REPORT_BYTES} bytes")
    repaired = False
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        repaired = True
    try:
        obj = json.loads(text)
    except RecursionError:
        raise ReportError("report nests too deeply") from None
    except ValueError as exc:
        raise ReportError(f"report is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ReportError(f"report is a JSON {type(obj).__name__}, expected an object")
    if depth(obj) > MAX_DEPTH:
        raise ReportError(f"report nests deeper than {MAX_DEPTH} levels")
    return Report(obj, repaired)
