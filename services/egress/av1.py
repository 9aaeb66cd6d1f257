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

from aiortc.codecs.base import Encoder
from aiortc.mediastreams import VIDEO_TIME_BASE, convert_timebase

from services.common.av1 import (
    OBU_PADDING,
    OBU_SEQUENCE_HEADER,
    OBU_TEMPORAL_DELIMITER,
    OBU_TILE_LIST,
    Av1Error,
    Obu,
    iter_obus,
    read_leb128,
    write_leb128,
)

__all__ = ["PACKET_MAX", "Av1Error", "Av1Packer", "leb128", "packetize", "parse_obus", "read_leb128"]
leb128 = write_leb128

#: Largest RTP payload, bytes (aiortc's H.264 packetizer uses the same budget).
PACKET_MAX = 1300

_Z = 0x80
_Y = 0x40
_N = 0x08


def parse_obus(data: bytes) -> list[Obu]:
    """The OBUs of a low-overhead temporal unit (``services.common.av1.iter_obus``), as a list."""
    return list(iter_obus(data))


def packetize(data: bytes, max_size: int = PACKET_MAX) -> list[bytes]:
    """RTP payloads (aggregation header + OBU elements) for one temporal unit.

    Raises:
        Av1Error: ``data`` is not a valid OBU sequence.
    """
    obus = [o for o in iter_obus(data) if o.type not in (OBU_TEMPORAL_DELIMITER, OBU_TILE_LIST, OBU_PADDING)]
    if not obus:
        return []
    new_sequence = any(o.type == OBU_SEQUENCE_HEADER for o in obus)
    payloads: list[bytes] = []
    body = bytearray()
    continues = False  # the current packet starts with the rest of a fragmented element
    room = max_size - 1
    for obu in obus:
        element = obu.element()
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
