"""AV1 RTP depacketizer: RTP payloads of one frame -> one temporal unit (low-overhead format).

Source: "RTP Payload Format For AV1" (AOMedia, v1.0.0, https://aomediacodec.github.io/av1-rtp-spec/)
section 4.4 (aggregation header ``|Z|Y|W W|N|-|-|-|``), 4.5 (payload structure: OBU elements,
each preceded by a LEB128 length except the last when ``W`` > 0) and 7.1/7.2 (reassembly:
temporal delimiters are not transmitted; a receiver writing a low-overhead bitstream sets
``obu_has_size_field`` and restores ``obu_size``).

* ``Z`` = 1: the first OBU element continues an OBU fragment from the previous packet;
* ``Y`` = 1: the last OBU element continues in the next packet;
* ``W``: the number of OBU elements (0 = every element has a length field);
* ``N`` = 1: the packet starts a new coded video sequence.

No Python library implements this format (aiortc supports only VP8/H.264), and it is camhub's
frame routing core, so it is written here, separate from any socket: :func:`depacketize` takes the
payloads of one RTP timestamp in sequence order.  A frame with a lost fragment is rejected
(:class:`~services.common.av1.Av1Error`), never published half.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common import av1
from services.common.av1 import Av1Error

_DROP_TYPES = (av1.OBU_TEMPORAL_DELIMITER, av1.OBU_TILE_LIST, av1.OBU_PADDING)


@dataclass(slots=True)
class AggregationHeader:
    z: bool
    y: bool
    w: int
    n: bool


def parse_aggregation_header(byte: int) -> AggregationHeader:
    return AggregationHeader(bool(byte & 0x80), bool(byte & 0x40), (byte >> 4) & 0x03, bool(byte & 0x08))


def split_payload(payload: bytes) -> tuple[AggregationHeader, list[bytes]]:
    """The aggregation header and the OBU elements (or fragments) of one RTP payload.

    Raises:
        Av1Error: empty payload, a length past the end, an empty element, too few elements for W.
    """
    if len(payload) < 2:
        raise Av1Error("AV1 RTP payload shorter than 2 bytes")
    hdr = parse_aggregation_header(payload[0])
    elements: list[bytes] = []
    pos, n = 1, len(payload)
    while pos < n:
        last_without_length = hdr.w != 0 and len(elements) == hdr.w - 1
        if last_without_length:
            elements.append(payload[pos:])
            pos = n
            break
        size, pos = av1.read_leb128(payload, pos)
        if size == 0:
            raise Av1Error("zero-length OBU element")
        if pos + size > n:
            raise Av1Error(f"OBU element length {size} runs past the RTP payload")
        elements.append(payload[pos : pos + size])
        pos += size
    if not elements:
        raise Av1Error("AV1 RTP payload without OBU elements")
    if hdr.w and len(elements) != hdr.w:
        raise Av1Error(f"aggregation header says {hdr.w} OBU elements, payload has {len(elements)}")
    return hdr, elements


@dataclass(slots=True)
class TemporalUnit:
    """A depacketized temporal unit: ``data`` (TD + OBUs with size fields), ``keyframe``,
    ``new_sequence`` (the N bit of the first packet)."""

    data: bytes
    keyframe: bool
    new_sequence: bool


def depacketize(payloads: list[bytes], seq_header: bytes = b"") -> TemporalUnit:
    """Join the RTP payloads of one frame (same RTP timestamp, sequence order) into a TU.

    ``seq_header``: the last sequence header OBU seen on the stream, for keyframe detection when
    a keyframe TU lacks one.

    Raises:
        Av1Error: malformed payload, an OBU fragment whose start or end is missing, bad OBU.
    """
    if not payloads:
        raise Av1Error("no RTP payloads")
    elements: list[bytes] = []
    frag: bytearray | None = None
    new_sequence = False
    for i, payload in enumerate(payloads):
        hdr, parts = split_payload(payload)
        if i == 0:
            new_sequence = hdr.n
            if hdr.z:
                raise Av1Error("the frame's first packet continues a fragment (earlier packet lost)")
        if hdr.z != (frag is not None):
            raise Av1Error("OBU fragment continuation mismatch (packet lost)")
        for j, part in enumerate(parts):
            first, last = j == 0, j == len(parts) - 1
            if first and hdr.z:
                assert frag is not None
                frag += part
                if len(frag) > av1.MAX_OBU_SIZE:
                    raise Av1Error("OBU fragment larger than 64 MiB")
                if last and hdr.y:
                    continue
                elements.append(bytes(frag))
                frag = None
            elif last and hdr.y:
                frag = bytearray(part)
            else:
                elements.append(part)
    if frag is not None:
        raise Av1Error("the frame's last OBU fragment is incomplete (later packet lost)")
    out = bytearray(av1.TEMPORAL_DELIMITER)
    for element in elements:
        obu = av1.parse_obu_element(element)
        if obu.type in _DROP_TYPES:
            continue
        out += obu.to_bytes()
    data = bytes(out)
    if len(data) == len(av1.TEMPORAL_DELIMITER):
        raise Av1Error("temporal unit without OBUs")
    return TemporalUnit(data, av1.is_keyframe(data, seq_header), new_sequence)


FRAME_PREFIX = 4


def frame_payload(payload: bytes) -> bytes:
    """One RTP payload, length-prefixed (4 bytes, big-endian), so the payloads of a frame can be
    concatenated by aiortc's jitter buffer and split again by :func:`unframe_payloads`.

    Raises:
        ValueError: shorter than an aggregation header + one byte (aiortc skips the packet).
    """
    if len(payload) < 2:
        raise ValueError("AV1 RTP payload shorter than 2 bytes")
    return len(payload).to_bytes(FRAME_PREFIX, "big") + payload


def unframe_payloads(data: bytes) -> list[bytes]:
    """Inverse of :func:`frame_payload` over a concatenation.

    Raises:
        Av1Error: a length past the end.
    """
    out: list[bytes] = []
    pos, n = 0, len(data)
    while pos < n:
        if pos + FRAME_PREFIX > n:
            raise Av1Error("truncated payload frame")
        size = int.from_bytes(data[pos : pos + FRAME_PREFIX], "big")
        pos += FRAME_PREFIX
        if pos + size > n:
            raise Av1Error("payload frame runs past the end")
        out.append(data[pos : pos + size])
        pos += size
    return out
