"""AV1 OBU helpers and the RTP depacketizer, against real libsvtav1 temporal units.

The packets come from ``tests/ingest/av1_packetizer.py``, a sender written from the RTP payload
format spec separately from the depacketizer; the reassembled TUs must decode in libdav1d.
"""

from __future__ import annotations

import random

import pytest

from services.common import av1
from services.common.av1 import Av1Error
from services.ingest.av1_rtp import depacketize, frame_payload, split_payload, unframe_payloads
from tests.ingest.av1_packetizer import packetize, strip_sizes
from tests.ingest.media import decode_av1, encode_av1


@pytest.fixture(scope="module")
def tus() -> list[tuple[bytes, bool]]:
    return encode_av1(12, keyint=6, noise_first=True)


def test_leb128_round_trip() -> None:
    for v in (0, 1, 127, 128, 300, 2**21, 2**35 - 1):
        enc = av1.write_leb128(v)
        assert av1.read_leb128(enc + b"\xff", 0) == (v, len(enc))
    with pytest.raises(Av1Error):
        av1.read_leb128(b"\x80\x80", 0)
    with pytest.raises(Av1Error):
        av1.read_leb128(b"\xff" * 9, 0)


def test_depacketized_tus_match_the_encoder_and_decode(tus: list[tuple[bytes, bool]]) -> None:
    out = []
    seq = b""
    fragmented = 0
    for tu, key in tus:
        payloads = packetize(tu, mtu=1200, keyframe=key)
        fragmented += len(payloads) > 1
        got = depacketize(payloads, seq)
        seq = av1.sequence_header(got.data) or seq
        assert got.keyframe == key
        assert got.new_sequence == key
        assert got.data.startswith(av1.TEMPORAL_DELIMITER)
        # same OBUs (type + payload) as the encoder wrote, temporal delimiter restored once
        assert [(o.type, o.payload) for o in av1.iter_obus(got.data) if o.type != 2] == [
            (o.type, o.payload) for o in av1.iter_obus(tu) if o.type != 2
        ]
        out.append(got.data)
    assert fragmented >= 2  # the 80 kB keyframe and others span several packets
    assert decode_av1(out) == len(tus)


def test_keyframe_needs_a_sequence_header(tus: list[tuple[bytes, bool]]) -> None:
    key_tu = tus[0][0]
    assert av1.is_keyframe(key_tu)
    seq = av1.sequence_header(key_tu)
    without = b"".join(o.to_bytes() for o in av1.iter_obus(key_tu) if o.type != av1.OBU_SEQUENCE_HEADER)
    assert not av1.is_keyframe(without)
    assert av1.is_keyframe(without, seq)  # the publisher will insert the known one
    restored = av1.with_sequence_header(without, seq)
    assert av1.sequence_header(restored) == seq
    assert not av1.is_keyframe(tus[1][0], seq)


def test_one_obu_per_packet_with_length_fields(tus: list[tuple[bytes, bool]]) -> None:
    # a different packetization: every OBU alone in its packet, with a length field (W=0)
    for tu, key in tus[:6]:
        payloads = [
            bytes([0x08 if key and i == 0 else 0]) + av1.write_leb128(len(el)) + el
            for i, el in enumerate(strip_sizes(tu))
        ]
        got = depacketize(payloads)
        assert got.keyframe == key and got.new_sequence == key
        assert [(o.type, o.payload) for o in av1.iter_obus(got.data)] == [(2, b"")] + [
            (o.type, o.payload) for o in av1.iter_obus(tu) if o.type != 2
        ]


def test_lost_packets_reject_the_frame(tus: list[tuple[bytes, bool]]) -> None:
    # (a gap inside one fragment run cannot be seen in the payloads; aiortc's jitter buffer only
    # hands over frames of consecutive RTP sequence numbers, and checks first/last below)
    payloads = packetize(tus[0][0], mtu=1200, keyframe=True)
    assert len(payloads) > 3
    # losing a packet between one that ends an OBU (Y=0) and one that continues a fragment (Z=1),
    # or the other way round, breaks the Z/Y chain
    mixed = packetize(tus[1][0], mtu=400) + packetize(tus[2][0], mtu=400)
    hdrs = [split_payload(p)[0] for p in mixed]
    cut = next(i for i in range(1, len(mixed) - 1) if hdrs[i - 1].y != hdrs[i + 1].z)
    with pytest.raises(Av1Error, match="fragment"):
        depacketize(mixed[:cut] + mixed[cut + 1 :])
    with pytest.raises(Av1Error):
        depacketize(payloads[1:])  # the first packet lost
    with pytest.raises(Av1Error, match="incomplete"):
        depacketize(payloads[:-1])  # the last packet lost


def test_malformed_payloads_raise_av1error_only() -> None:
    for bad in (b"", b"\x00", b"\x10" + b"\x05ab", b"\x00\x00", b"\x30\x02\x0a"):
        with pytest.raises(Av1Error):
            depacketize([bad])
    rng = random.Random(7)
    ok = 0
    for _ in range(3000):
        n = rng.randint(0, 64)
        payload = bytes(rng.getrandbits(8) for _ in range(n))
        try:
            tu = depacketize([payload])
        except Av1Error:
            continue
        ok += 1
        list(av1.iter_obus(tu.data))  # whatever is accepted is a well-formed TU
    assert ok < 3000


def test_aggregation_header_and_framing() -> None:
    # Z=1 Y=1 W=1 N=1: one element, without a length field
    hdr, parts = split_payload(bytes([0b1101_1000]) + b"\x02abcd")
    assert (hdr.z, hdr.y, hdr.w, hdr.n) == (True, True, 1, True)
    assert parts == [b"\x02abcd"]
    # W=2: the first element has a length, the last takes the rest
    hdr, parts = split_payload(bytes([0b0010_0000]) + b"\x02ab" + b"cde")
    assert hdr.w == 2 and parts == [b"ab", b"cde"]
    with pytest.raises(Av1Error, match="says 3"):
        split_payload(bytes([0b0011_0000]) + b"\x02ab")
    framed = frame_payload(b"\x10\x12\x00") + frame_payload(b"\x00\x01\x02")
    assert unframe_payloads(framed) == [b"\x10\x12\x00", b"\x00\x01\x02"]
    with pytest.raises(Av1Error):
        unframe_payloads(framed[:-1])
    with pytest.raises(ValueError):
        frame_payload(b"\x00")
