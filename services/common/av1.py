"""AV1 OBU helpers: LEB128, OBU headers, temporal units in low-overhead format, keyframes.

Sources: AV1 Bitstream & Decoding Process Specification (AOM, 2019) section 4.10.5 (leb128),
5.3.1-5.3.3 (OBU syntax and header), 5.5.1 (sequence header: ``seq_profile``, ``still_picture``,
``reduced_still_picture_header``), 5.9.2 (uncompressed header: ``show_existing_frame``,
``frame_type``), 6.2.2 (OBU types).  PyAV/FFmpeg have no API to inspect OBUs without decoding,
and camhub needs only the first bits of two headers, so they are read here.

A *temporal unit* (TU) here is in the low-overhead bitstream format (spec section 5.2): a
sequence of OBUs, each with ``obu_has_size_field = 1``, starting with a temporal delimiter.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

OBU_SEQUENCE_HEADER = 1
OBU_TEMPORAL_DELIMITER = 2
OBU_FRAME_HEADER = 3
OBU_TILE_GROUP = 4
OBU_METADATA = 5
OBU_FRAME = 6
OBU_REDUNDANT_FRAME_HEADER = 7
OBU_TILE_LIST = 8
OBU_PADDING = 15
VALID_TYPES = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 15})

#: The temporal delimiter OBU with an empty payload (header 0x12 = type 2, has_size; size 0).
TEMPORAL_DELIMITER = b"\x12\x00"
MAX_OBU_SIZE = 64 * 1024 * 1024


class Av1Error(ValueError):
    """Bytes that are not valid AV1 OBU syntax (the message says what broke)."""


def read_leb128(data: bytes, pos: int) -> tuple[int, int]:
    """Read an unsigned LEB128 at ``pos``; returns ``(value, new_pos)`` (spec 4.10.5, <= 8 bytes).

    Raises:
        Av1Error: truncated or longer than 8 bytes.
    """
    value = 0
    for i in range(8):
        if pos >= len(data):
            raise Av1Error("truncated leb128")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos
    raise Av1Error("leb128 longer than 8 bytes")


def write_leb128(value: int) -> bytes:
    """Encode ``value`` (>= 0) as unsigned LEB128."""
    if value < 0:
        raise ValueError("leb128 of a negative number")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


@dataclass(slots=True)
class Obu:
    """One OBU: ``type`` (6.2.2), optional extension byte, and its payload (without size field)."""

    type: int
    extension: int | None
    payload: bytes

    def element(self) -> bytes:
        """The OBU without ``obu_size`` (``obu_has_size_field = 0``): an RTP OBU element."""
        header = (self.type << 3) | (0x04 if self.extension is not None else 0)
        ext = bytes([self.extension]) if self.extension is not None else b""
        return bytes([header]) + ext + self.payload

    def to_bytes(self) -> bytes:
        """The OBU in low-overhead format (``obu_has_size_field = 1``)."""
        header = (self.type << 3) | 0x02 | (0x04 if self.extension is not None else 0)
        ext = bytes([self.extension]) if self.extension is not None else b""
        return bytes([header]) + ext + write_leb128(len(self.payload)) + self.payload


def parse_obu_element(element: bytes) -> Obu:
    """Parse one OBU whose extent is known (an RTP OBU element): header, optional size, payload.

    An element may or may not carry ``obu_size``; when it does, the size must fit the element.

    Raises:
        Av1Error: empty, forbidden bit set, unknown type, bad size.
    """
    if not element:
        raise Av1Error("empty OBU element")
    h = element[0]
    if h & 0x80:
        raise Av1Error("OBU forbidden bit set")
    obu_type = (h >> 3) & 0x0F
    if obu_type not in VALID_TYPES:
        raise Av1Error(f"reserved OBU type {obu_type}")
    pos = 1
    ext: int | None = None
    if h & 0x04:
        if len(element) < 2:
            raise Av1Error("truncated OBU extension header")
        ext = element[1]
        pos = 2
    if h & 0x02:
        size, pos = read_leb128(element, pos)
        if pos + size > len(element):
            raise Av1Error(f"OBU size {size} runs past the element ({len(element) - pos} bytes)")
        payload = element[pos : pos + size]
    else:
        payload = element[pos:]
    return Obu(obu_type, ext, bytes(payload))


def iter_obus(tu: bytes) -> Iterator[Obu]:
    """Yield the OBUs of a low-overhead temporal unit (every OBU has a size field).

    Raises:
        Av1Error: an OBU without size field, a size past the end, bad header.
    """
    pos, n = 0, len(tu)
    while pos < n:
        h = tu[pos]
        if h & 0x80:
            raise Av1Error("OBU forbidden bit set")
        if not h & 0x02:
            raise Av1Error("OBU without obu_size in a low-overhead temporal unit")
        obu_type = (h >> 3) & 0x0F
        if obu_type not in VALID_TYPES:
            raise Av1Error(f"reserved OBU type {obu_type}")
        p = pos + 1
        ext: int | None = None
        if h & 0x04:
            if p >= n:
                raise Av1Error("truncated OBU extension header")
            ext = tu[p]
            p += 1
        size, p = read_leb128(tu, p)
        if p + size > n:
            raise Av1Error(f"OBU size {size} runs past the temporal unit")
        yield Obu(obu_type, ext, bytes(tu[p : p + size]))
        pos = p + size


def reduced_still_picture_header(seq_payload: bytes) -> bool:
    """``reduced_still_picture_header`` of a sequence header payload (spec 5.5.1: 3+1+1 bits)."""
    if not seq_payload:
        raise Av1Error("empty sequence header")
    return bool(seq_payload[0] & 0x08)


def is_key_frame_header(frame_payload: bytes, reduced_still: bool) -> bool:
    """True when a frame header / frame OBU payload starts a KEY_FRAME (spec 5.9.2).

    With ``reduced_still_picture_header`` every frame is a key frame; otherwise the first bits are
    ``show_existing_frame`` (1) then ``frame_type`` (2; 0 = KEY_FRAME).
    """
    if reduced_still:
        return True
    if not frame_payload:
        return False
    b = frame_payload[0]
    if b & 0x80:  # show_existing_frame: shows an already decoded frame, starts nothing
        return False
    return ((b >> 5) & 0x03) == 0


def sequence_header(tu: bytes) -> bytes:
    """The first sequence header OBU of ``tu`` as bytes (low-overhead form), or b""."""
    try:
        for obu in iter_obus(tu):
            if obu.type == OBU_SEQUENCE_HEADER:
                return obu.to_bytes()
    except Av1Error:
        return b""
    return b""


def is_keyframe(tu: bytes, seq_header: bytes = b"") -> bool:
    """True when ``tu`` holds a sequence header and a KEY_FRAME (a decoder can start here).

    ``seq_header`` (a known sequence header OBU) is used when ``tu`` has none, for
    ``reduced_still_picture_header``; the TU still needs its own sequence header to be a
    random access point (camhub inserts it: see the publisher).
    """
    reduced: bool | None = None
    has_seq = False
    try:
        for obu in iter_obus(tu):
            if obu.type == OBU_SEQUENCE_HEADER:
                has_seq = True
                reduced = reduced_still_picture_header(obu.payload)
            elif obu.type in (OBU_FRAME_HEADER, OBU_FRAME):
                if reduced is None and seq_header:
                    known = next(iter_obus(seq_header), None)
                    reduced = bool(known and known.payload and reduced_still_picture_header(known.payload))
                return is_key_frame_header(obu.payload, bool(reduced)) and (has_seq or bool(seq_header))
    except Av1Error:
        return False
    return False


def with_sequence_header(tu: bytes, seq_header: bytes) -> bytes:
    """Insert ``seq_header`` after the temporal delimiter of a keyframe TU that lacks one."""
    if not seq_header or sequence_header(tu):
        return tu
    if tu.startswith(TEMPORAL_DELIMITER):
        return TEMPORAL_DELIMITER + seq_header + tu[len(TEMPORAL_DELIMITER) :]
    return seq_header + tu
