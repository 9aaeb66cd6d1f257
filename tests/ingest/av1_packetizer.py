"""A test-only AV1 RTP packetizer (RTP Payload Format for AV1, sections 4.4-4.5, 5).

Written independently of ``services.ingest.av1_rtp`` (it works from the spec's sender rules)
so the depacketizer is checked against a second reading of the format: temporal delimiters and
tile lists are not sent, ``obu_has_size_field`` is cleared, OBUs are aggregated (W = element count
when <= 3, else length fields on every element) and fragmented across packets (Z/Y), and N marks
the first packet of a keyframe temporal unit that carries a sequence header.
"""

from __future__ import annotations

from services.common.av1 import iter_obus, write_leb128


def strip_sizes(tu: bytes) -> list[bytes]:
    """The OBUs of a low-overhead TU without temporal delimiters, size fields cleared."""
    out = []
    for obu in iter_obus(tu):
        if obu.type in (2, 8):
            continue
        header = (obu.type << 3) | (0x04 if obu.extension is not None else 0)
        ext = bytes([obu.extension]) if obu.extension is not None else b""
        out.append(bytes([header]) + ext + obu.payload)
    return out


def packetize(tu: bytes, mtu: int = 1200, keyframe: bool = False) -> list[bytes]:
    """RTP payloads (aggregation header + OBU elements) for one temporal unit."""
    obus = strip_sizes(tu)
    packets: list[bytes] = []
    cur: list[bytes] = []  # elements of the packet being built
    z = False
    room = mtu - 1

    def flush(y: bool) -> None:
        nonlocal cur, z
        if not cur:
            return
        w = len(cur) if len(cur) <= 3 else 0
        body = bytearray()
        for i, el in enumerate(cur):
            if w and i == len(cur) - 1:
                body += el
            else:
                body += write_leb128(len(el)) + el
        hdr = (0x80 if z else 0) | (0x40 if y else 0) | (w << 4)
        if keyframe and not packets:
            hdr |= 0x08
        packets.append(bytes([hdr]) + bytes(body))
        cur = []
        z = y

    used = 0
    for obu in obus:
        data = obu
        while data:
            space = room - used - 2  # keep room for a length field
            if space < 16:
                flush(False)
                used = 0
                space = room - 2
            if len(data) <= space:
                cur.append(data)
                used += len(data) + len(write_leb128(len(data)))
                data = b""
            else:
                cur.append(data[:space])
                data = data[space:]
                flush(True)
                used = 0
    flush(False)
    return packets
