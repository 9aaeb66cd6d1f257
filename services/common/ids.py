"""The id rule shared by streams, cameras and devices (DESIGN.md section 2).

An id is ``^[a-z0-9][a-z0-9_-]{0,62}$``: it can never carry a NATS subject token separator
(``.``) or wildcard (``*``, ``>``), nor white space, so it is safe to put into a subject.
"""

from __future__ import annotations

import re

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_ID_RE = re.compile(ID_PATTERN)
_UNSAFE = re.compile(r"[^a-z0-9_-]+")


class InvalidId(ValueError):
    """An id does not follow the id rule; the message says which rule it broke."""


def is_valid_id(value: object) -> bool:
    """True when ``value`` is a str that follows the id rule."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


def validate_id(value: object, what: str = "id") -> str:
    """Return ``value`` unchanged when it is a valid id.

    Raises:
        InvalidId: with a message such as ``stream id 'a.b' is invalid: ...``.
    """
    if is_valid_id(value):
        return value  # type: ignore[return-value]
    shown = repr(value)[:80]
    raise InvalidId(
        f"{what} {shown} is invalid: use 1-63 characters of a-z, 0-9, '_' or '-', starting with a letter or digit"
    )


def sanitize_token(value: str) -> str:
    """Turn any string (a host name, say) into a valid id, for instance names."""
    token = _UNSAFE.sub("-", value.lower()).strip("-_") or "x"
    return token[:63]
