"""msgpack encoding of every control and status payload on the bus.

Payloads are msgpack maps with string keys; bytes stay bytes.  Messages carry the header
``Content-Type: application/msgpack`` so ``camhub tap`` (and people) know how to read them.
"""

from __future__ import annotations

from typing import Any

import msgpack

CONTENT_TYPE = "application/msgpack"
HEADERS = {"Content-Type": CONTENT_TYPE}


class PayloadError(ValueError):
    """A bus payload is not msgpack, or not the map that was expected."""


def pack(obj: Any) -> bytes:
    """Encode ``obj`` (dicts, lists, str, bytes, numbers, None) as msgpack bytes."""
    return msgpack.packb(obj, use_bin_type=True, datetime=False)  # type: ignore[no-any-return]


def unpack(data: bytes) -> Any:
    """Decode msgpack bytes.

    Raises:
        PayloadError: the bytes are not one complete msgpack object.
    """
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:
        raise PayloadError(f"payload is not msgpack: {exc}") from None


def unpack_map(data: bytes) -> dict[str, Any]:
    """Decode msgpack bytes that must hold a map.

    Raises:
        PayloadError: not msgpack, or not a map.
    """
    obj = unpack(data)
    if not isinstance(obj, dict):
        raise PayloadError(f"payload is a {type(obj).__name__}, expected a map")
    return obj
