"""The Bambu Lab P1/A1 camera protocol on TLS port 6000 (no I/O here).

Source: ``shared/research/bambu.md`` section 4.2 (OpenBambuAPI ``video.md`` "A1 and P1",
ha-bambulab ``ChamberImageThread``, bambulabs_api ``camera_client.py``).  All integers
little-endian.

* The client writes one 80-byte auth packet: ``u32 0x40`` (payload length 64), ``u32 0x3000``
  (type), ``u32 0``, ``u32 0``, user ``"bblp"`` NUL-padded to 32 bytes, access code NUL-padded to
  32 bytes.  There is no reply; a wrong code makes the printer close the connection.
* The printer then sends, per frame, a 16-byte header - ``u32 payload size``, ``u32 0``
  ("itrack"), ``u32 1`` (flags), ``u32 0`` - followed by that many bytes of JPEG
  (``FF D8`` ... ``FF D9``), about one frame per 1-2 s at 1280x720.

:class:`FrameParser` is incremental (feed it whatever TLS records arrive) and strict: a size of 0
or above :data:`MAX_FRAME` bytes, or a payload that is not a JPEG, raises
:class:`BambuProtocolError` (the client then drops the connection and reconnects).
"""

from __future__ import annotations

import struct

AUTH_SIZE = 80
HEADER_SIZE = 16
AUTH_TYPE = 0x3000
MAX_FRAME = 16 * 1024 * 1024
USER = "bblp"


class BambuProtocolError(ValueError):
    """The peer does not speak the port-6000 camera protocol (or sent a bad frame)."""


def auth_packet(access_code: str, user: str = USER) -> bytes:
    """The 80-byte auth packet.

    Raises:
        ValueError: user or access code longer than 32 bytes.
    """
    u, c = user.encode(), access_code.encode()
    if len(u) > 32 or len(c) > 32:
        raise ValueError("user and access code are at most 32 bytes")
    return struct.pack("<IIII32s32s", 0x40, AUTH_TYPE, 0, 0, u, c)


def parse_auth(packet: bytes) -> tuple[str, str]:
    """``(user, access_code)`` of an auth packet (the simulator's side).

    Raises:
        BambuProtocolError: wrong size, length or type field.
    """
    if len(packet) != AUTH_SIZE:
        raise BambuProtocolError(f"auth packet is {len(packet)} bytes, expected {AUTH_SIZE}")
    length, kind, _, _, user, code = struct.unpack("<IIII32s32s", packet)
    if length != 0x40 or kind != AUTH_TYPE:
        raise BambuProtocolError(f"bad auth packet header (length {length:#x}, type {kind:#x})")
    return user.rstrip(b"\x00").decode(errors="replace"), code.rstrip(b"\x00").decode(errors="replace")


def frame_header(size: int) -> bytes:
    """The 16-byte header announcing a JPEG of ``size`` bytes."""
    return struct.pack("<IIII", size, 0, 1, 0)


class FrameParser:
    """Incremental parser: :meth:`feed` bytes, get complete JPEG frames back."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._need: int | None = None

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the JPEGs completed by them.

        Raises:
            BambuProtocolError: a size of 0 or above ``max_frame``, or a payload that is not a
                JPEG (``FF D8`` ... ``FF D9``).
        """
        self._buf += data
        out: list[bytes] = []
        while True:
            if self._need is None:
                if len(self._buf) < HEADER_SIZE:
                    return out
                size = int.from_bytes(self._buf[0:4], "little")
                if size == 0 or size > self.max_frame:
                    raise BambuProtocolError(f"frame header announces {size} bytes (not a Bambu camera stream?)")
                del self._buf[:HEADER_SIZE]
                self._need = size
            if len(self._buf) < self._need:
                if len(self._buf) >= 2 and self._buf[:2] != b"\xff\xd8":
                    raise BambuProtocolError("frame payload is not a JPEG (no FF D8)")
                return out
            jpeg = bytes(self._buf[: self._need])
            del self._buf[: self._need]
            self._need = None
            if not jpeg.startswith(b"\xff\xd8") or not jpeg.endswith(b"\xff\xd9"):
                raise BambuProtocolError("frame payload is not a whole JPEG (FF D8 ... FF D9)")
            out.append(jpeg)
