"""Annex B helpers for H.264 and H.265 access units (ITU-T H.264 7.3.1, H.265 7.3.1.2).

camhub's core needs to look inside access units without decoding them: find NAL unit types
(IDR? parameter sets?), convert AVCC/hvcC length-prefixed data and extradata to Annex B, and put
parameter sets in front of an IDR.  PyAV has no API for this (its bitstream filters work on
whole streams), so the few lines are written here.
"""

from __future__ import annotations

from collections.abc import Iterator

START = b"\x00\x00\x00\x01"

# H.264 nal_unit_type (Table 7-1)
H264_SLICE = 1
H264_IDR = 5
H264_SEI = 6
H264_SPS = 7
H264_PPS = 8
H264_AUD = 9
# H.265 nal_unit_type (Table 7-1)
H265_IDR_W_RADL = 19
H265_IDR_N_LP = 20
H265_CRA = 21
H265_VPS = 32
H265_SPS = 33
H265_PPS = 34
H265_AUD = 35


def iter_nals(data: bytes) -> Iterator[bytes]:
    """Yield each NAL unit (without its start code) of an Annex B byte string."""
    n = len(data)
    i = data.find(b"\x00\x00\x01")
    while 0 <= i < n:
        start = i + 3
        j = data.find(b"\x00\x00\x01", start)
        if j < 0:
            nal = data[start:]
            if nal:
                yield nal
            return
        end = j - 1 if j > 0 and data[j - 1] == 0 else j
        nal = data[start:end]
        if nal:
            yield nal
        i = j


def nal_type(nal: bytes, codec: str = "h264") -> int:
    """The nal_unit_type of one NAL unit (H.264: 5 bits; H.265: 6 bits after the F bit)."""
    if not nal:
        return -1
    return (nal[0] >> 1) & 0x3F if codec == "h265" else nal[0] & 0x1F


def nal_types(data: bytes, codec: str = "h264") -> list[int]:
    """The NAL unit types in an Annex B access unit, in order."""
    return [nal_type(n, codec) for n in iter_nals(data)]


def is_keyframe(data: bytes, codec: str = "h264") -> bool:
    """True when the access unit holds an IDR (H.265: IDR or CRA) slice."""
    types = nal_types(data, codec)
    if codec == "h265":
        return any(t in (H265_IDR_W_RADL, H265_IDR_N_LP, H265_CRA) for t in types)
    return H264_IDR in types


def parameter_sets(data: bytes, codec: str = "h264") -> bytes:
    """The parameter-set NAL units (VPS/SPS/PPS) of ``data`` as Annex B, or b""."""
    wanted = (H265_VPS, H265_SPS, H265_PPS) if codec == "h265" else (H264_SPS, H264_PPS)
    return b"".join(START + n for n in iter_nals(data) if nal_type(n, codec) in wanted)


def with_parameter_sets(data: bytes, config: bytes, codec: str = "h264") -> bytes:
    """Prefix a keyframe access unit with ``config`` (Annex B parameter sets) when it lacks them."""
    if not config:
        return data
    types = nal_types(data, codec)
    need = H265_SPS if codec == "h265" else H264_SPS
    if need in types:
        return data
    return config + data


def length_prefixed_to_annexb(data: bytes, length_size: int = 4) -> bytes:
    """AVCC/hvcC sample data (big-endian NAL lengths) -> Annex B.

    Raises:
        ValueError: a length runs past the end of the data (truncated NAL unit).
    """
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        if i + length_size > n:
            raise ValueError("truncated NAL length")
        size = int.from_bytes(data[i : i + length_size], "big")
        i += length_size
        if size == 0 or i + size > n:
            raise ValueError(f"NAL length {size} runs past the end of the access unit")
        out += START + data[i : i + size]
        i += size
    return bytes(out)


def is_annexb(data: bytes) -> bool:
    """True when ``data`` starts with an Annex B start code."""
    return data.startswith(b"\x00\x00\x01") or data.startswith(b"\x00\x00\x00\x01")


def _copy_nal_units(extra: bytes, i: int, count: int, out: bytearray, record: str) -> int:
    """Append ``count`` 16-bit-length-prefixed NAL units at ``extra[i:]`` to ``out`` as Annex B;
    returns the position after them.

    Raises:
        ValueError: a length runs past the end of the record.
    """
    for _ in range(count):
        if i + 2 > len(extra):
            raise ValueError(f"truncated {record} record")
        size = int.from_bytes(extra[i : i + 2], "big")
        i += 2
        if i + size > len(extra):
            raise ValueError(f"truncated {record} record")
        out += START + extra[i : i + size]
        i += size
    return i


def avcc_extradata_to_annexb(extra: bytes) -> tuple[bytes, int]:
    """An ``avcC`` record (ISO/IEC 14496-15 5.3.3.1) -> (Annex B SPS+PPS, NAL length size).

    Extradata that is already Annex B comes back as is with length size 4.

    Raises:
        ValueError: the record is truncated.
    """
    if not extra:
        return b"", 4
    if is_annexb(extra):
        return extra, 4
    if len(extra) < 7 or extra[0] != 1:
        raise ValueError("not an avcC record")
    length_size = (extra[4] & 0x03) + 1
    out = bytearray()
    i = 5
    for count_mask in (0x1F, 0xFF):
        if i >= len(extra):
            raise ValueError("truncated avcC record")
        count = extra[i] & count_mask
        i += 1
        i = _copy_nal_units(extra, i, count, out, "avcC")
    return bytes(out), length_size


def hvcc_extradata_to_annexb(extra: bytes) -> tuple[bytes, int]:
    """An ``hvcC`` record (ISO/IEC 14496-15 8.3.3.1) -> (Annex B VPS+SPS+PPS, NAL length size).

    Raises:
        ValueError: the record is truncated.
    """
    if not extra:
        return b"", 4
    if is_annexb(extra):
        return extra, 4
    if len(extra) < 23:
        raise ValueError("not an hvcC record")
    length_size = (extra[21] & 0x03) + 1
    arrays = extra[22]
    i = 23
    out = bytearray()
    for _ in range(arrays):
        if i + 3 > len(extra):
            raise ValueError("truncated hvcC record")
        count = int.from_bytes(extra[i + 1 : i + 3], "big")
        i += 3
        i = _copy_nal_units(extra, i, count, out, "hvcC")
    return bytes(out), length_size
