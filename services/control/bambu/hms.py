"""HMS (health management system) entries and ``print_error`` codes.

A report's ``print.hms`` is a list of ``{"attr": int, "code": int}`` (32-bit each).  The code
string is ``HMS_{attr>>16:04X}_{attr&0xFFFF:04X}_{code>>16:04X}_{code&0xFFFF:04X}``; the severity
is ``code >> 16``: 1 fatal, 2 serious, 3 common, 4 info (ha-bambulab ``HMSNotification``,
research/bambu.md section 2.2).  ``print.print_error`` is a 32-bit code shown as ``%04X_%04X``
(``50348044`` -> ``0300_400C``, sent when a print is cancelled).
"""

from __future__ import annotations

from typing import Any

from services.control.bambu.fields import to_number

SEVERITY = {1: "fatal", 2: "serious", 3: "common", 4: "info"}

#: Messages for the few codes camhub itself explains; others carry an empty message (the
#: Bambu wiki page ``https://wiki.bambulab.com/en/hms/...`` explains each code).
MESSAGES = {
    # ha-bambulab issues #1250, #1280: raised when an unsigned print.* command is refused.
    "HMS_0500_0500_0001_0007": "MQTT command verification failed: the printer requires LAN-only + Developer Mode "
    "for third-party control",
}

_U32 = 0xFFFFFFFF


def _u32(value: Any) -> int | None:
    num = to_number(value)
    if isinstance(num, float):
        if not num.is_integer():
            return None
        num = int(num)
    if num is None or num < 0 or num > _U32:
        return None
    return num


def hms_code(attr: int, code: int) -> str:
    """``HMS_AAAA_BBBB_CCCC_DDDD`` for 32-bit ``attr`` and ``code``."""
    return f"HMS_{attr >> 16:04X}_{attr & 0xFFFF:04X}_{code >> 16:04X}_{code & 0xFFFF:04X}"


def decode_hms(items: Any) -> list[dict[str, str]]:
    """``[{code, severity, message}]`` for a ``print.hms`` list; malformed entries are skipped,
    duplicates dropped, order kept.  ``severity`` is ``fatal``, ``serious``, ``common``, ``info``
    or ``unknown``."""
    if not isinstance(items, list):
        return []
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for item in items[:64]:
        if not isinstance(item, dict):
            continue
        attr, code = _u32(item.get("attr")), _u32(item.get("code"))
        if attr is None or code is None:
            continue
        text = hms_code(attr, code)
        if text in seen:
            continue
        seen.add(text)
        out.append({"code": text, "severity": SEVERITY.get(code >> 16, "unknown"), "message": MESSAGES.get(text, "")})
    return out


def print_error(value: Any) -> str | None:
    """``print.print_error`` as ``XXXX_XXXX`` (None for 0 or a malformed value)."""
    num = _u32(value)
    if not num:
        return None
    return f"{num >> 16:04X}_{num & 0xFFFF:04X}"
