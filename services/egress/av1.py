"""RTP packetizer for AV1 temporal units ("RTP Payload Format For AV1", AOMedia, v1.0.0).

aiortc 1.16 has no AV1 payloader, so this module provides one with the same ``pack()`` contract
as aiortc's ``H264Encoder.pack`` (an ``av.Packet`` in, RTP payloads and a 90 kHz timestamp out);
``codecs.register_codecs`` hands it to aiortc's ``RTCRtpSender`` for ``video/AV1``. It never
encodes: it only re-frames the OBUs of the temporal unit.

Format (spec section 4): each RTP payload starts with the aggregation header
``Z|Y|W W|N|0|0|0``: Z = the first OBU element continues a fragment from the previous packet,
Y = the last OBU element continues in the next packet, W = 0 (every OBU element is preceded by
its LEB128 length), N = first packet of a coded video sequence (a temporal unit carrying a
sequence header, i.e. a keyframe; receivers such as libwebrtc treat it as the keyframe flag).
OBU elements are the OBUs of the temporal unit with ``obu_has_size_field`` cleared and the size
removed (section 5: SHOULD); temporal delimiter and tile list OBUs are dropped (MUST) and padding
OBUs too. The RTP marker bit (set by aiortc on the last payload) ends the temporal unit.

Written here because no Python library packetizes AV1; the OBU syntax is AV1 spec section 5.3.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiortc.codecs.base import Encoder
from aiortc.mediastreams import VIDEO_TIME_BASE, convert_timebase

#: Largest RTP payload, bytes (aiortc's H.264 packetizer uses the same budget).
PACKET_MAX = 1300

OBU_SEQUENCE_HEADER = 1
OBU_TEMPORAL_DELIMITER = 2
OBU_TILE_LIST = 8
OBU_PADDING = 15

_Z = 0x80
_Y = 0x40
_N = 0x08


class Av1Error(ValueError):
    """The temporal unit is not a valid sequence of AV1 OBUs (truncated header or size)."""


@dataclass(slots=True)
class Obu:
    """One OBU: ``type`` (AV1 spec 6.2.2), its header bytes (1 or 2, size flag cleared), payload."""

    type: int
    header: bytes
    payload: bytes

    @property
    def element(self) -> bytes:
        """The OBU as an RTP OBU element: header without size field + payload."""
        return self.header + self.payload


def leb128(value: int) -> bytes:
    """Unsigned LEB128 encoding (AV1 spec 4.10.5)."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_leb128(data: bytes, pos: int) -> tuple[int, int]:
    """Decode LEB128 at ``data[pos:]``; returns (value, next position).

    Raises:
        Av1Error: the value runs past the end or is longer than 8 bytes.
    """
    value = 0
    for i in range(8):
        if pos + i >= len(data):
            raise Av1Error("truncated LEB128 value")
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos + i + 1
    raise Av1Error("LEB128 value longer than 8 bytes")


def parse_obus(data: bytes) -> list[Obu]:
    """Split a temporal unit (low-overhead bitstream format, AV1 spec 5.2) into OBUs.

    An OBU without ``obu_has_size_field`` runs to the end of ``data`` (allowed for the last one).

    Raises:
        Av1Error: a header or size runs past the end of ``data``, or the forbidden bit is set.
    """
    obus: list[Obu] = []
    pos = 0
    n = len(data)
    while pos < n:
        first = data[pos]
        if first & 0x80:
            raise Av1Error(f"OBU forbidden bit set at byte {pos}")
        obu_type = (first >> 3) & 0x0F
        has_ext = bool(first & 0x04)
        has_size = bool(first & 0x02)
        header_len = 2 if has_ext else 1
        if pos + header_len > n:
            raise Av1Error("truncated OBU header")
        header = bytes([first & ~0x02 & 0xFF]) + (data[pos + 1 : pos + 2] if has_ext else b"")
        pos += header_len
        if has_size:
            size, pos = read_leb128(data, pos)
            if pos + size > n:
                raise Av1Error(f"OBU size {size} runs past the end of the temporal unit")
        else:
            size = n - pos
        obus.append(Obu(obu_type, header, data[pos : pos + size]))
        pos += size
    return obus


def packetize(data: bytes, max_size: int = PACKET_MAX) -> list[bytes]:
    """RTP payloads (aggregation header + OBU elements) for one temporal unit.

    Raises:
        Av1Error: ``data`` is not a valid OBU sequence.
    """
    obus = [o for o in parse_obus(data) if o.type not in (OBU_TEMPORAL_DELIMITER, OBU_TILE_LIST, OBU_PADDING)]
    if not obus:
        return []
    new_sequence = any(o.type == OBU_SEQUENCE_HEADER for o in obus)
    payloads: list[bytes] = []
    body = bytearray()
    continues = False  # the current packet starts with the rest of a fragmented element
    room = max_size - 1
    for obu in obus:
        element = obu.element
        while element:
            free = room - len(body)
            need = len(leb128(len(element))) + len(element)
            if need <= free:
                body += leb128(len(element)) + element
                element = b""
                continue
            # an element that fits a packet of its own is not fragmented; a larger one fills
            # this packet and continues in the next
            take = free - len(leb128(free))
            if take < 1 or (body and need <= room):
                payloads.append(_packet(body, continues, False, new_sequence and not payloads))
                body = bytearray()
                continues = False
                continue
            body += leb128(take) + element[:take]
            element = element[take:]
            payloads.append(_packet(body, continues, True, new_sequence and not payloads))
            body = bytearray()
            continues = True
    if body:
        payloads.append(_packet(body, continues, False, new_sequence and not payloads))
    return payloads


def _packet(body: bytearray, z: bool, y: bool, n: bool) -> bytes:
    header = (_Z if z else 0) | (_Y if y else 0) | (_N if n else 0)
    return bytes([header]) + bytes(body)


class Av1Packer(Encoder):  # type: ignore[misc]
    """aiortc ``Encoder`` for pre-encoded AV1: :meth:`pack` only; :meth:`encode` refuses to run."""

    def encode(self, frame: object, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        raise NotImplementedError("camhub's AV1 sender only packetizes pre-encoded temporal units")

    def pack(self, packet: object) -> tuple[list[bytes], int]:
        """``packet`` is an ``av.Packet`` holding one temporal unit, ``pts`` in ``time_base``.

        Returns the RTP payloads and the 90 kHz RTP timestamp. A malformed temporal unit gives
        no payloads (aiortc then skips the frame) rather than ending the sender.
        """
        pts = int(getattr(packet, "pts", 0) or 0)
        time_base = getattr(packet, "time_base", None) or VIDEO_TIME_BASE
        try:
            payloads = packetize(bytes(packet))  # type: ignore[call-overload]
        except Av1Error:
            payloads = []
        return payloads, convert_timebase(pts, time_base, VIDEO_TIME_BASE)
