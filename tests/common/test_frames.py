"""The frame envelope: headers, chunking above max_payload, reassembly, malformed input."""

from __future__ import annotations

import pytest

from services.common.frames import H_CHUNK, Frame, FrameAssembler, FrameError, decode, encode


def test_single_message_round_trip() -> None:
    f = Frame("h264", 9000, 6000, True, b"\x00\x00\x00\x01\x65abc", seq=7, ts_ns=123)
    msgs = list(encode(f, 1024 * 1024))
    assert len(msgs) == 1
    headers, body = msgs[0]
    assert headers["Camhub-Codec"] == "h264" and headers["Camhub-Pts"] == "9000" and headers["Camhub-Key"] == "1"
    assert decode(headers, body) == f


def test_large_frame_is_chunked_and_reassembled() -> None:
    data = bytes(range(256)) * 20_000  # 5.12 MB
    f = Frame("h264", 1, 1, True, data, seq=3)
    msgs = list(encode(f, 1024 * 1024))
    assert len(msgs) == 5 and all(len(b) <= 1024 * 1024 - 4096 for _, b in msgs)
    asm = FrameAssembler()
    out = [asm.push(h, b) for h, b in msgs]
    assert out[:-1] == [None] * 4
    assert out[-1] is not None and out[-1].data == data and asm.dropped == 0


def test_interrupted_chunk_run_is_dropped_and_counted() -> None:
    big = Frame("h264", 1, 1, True, b"x" * 3_000_000, seq=1)
    small = Frame("h264", 2, 2, False, b"y" * 10, seq=2)
    msgs = list(encode(big, 1024 * 1024))
    asm = FrameAssembler()
    assert asm.push(*msgs[0]) is None
    got = asm.push(*next(iter(encode(small, 1024 * 1024))))  # chunk run interrupted
    assert got is not None and got.data == b"y" * 10
    assert asm.dropped == 1
    assert asm.push(*msgs[2]) is None  # a stray later chunk is ignored, never delivered


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        {"Camhub-Codec": "mpeg2", "Camhub-Pts": "1"},
        {"Camhub-Codec": "h264"},
        {"Camhub-Codec": "h264", "Camhub-Pts": "abc"},
        {"Camhub-Codec": "h264", "Camhub-Pts": "1", H_CHUNK: "x/y", "Camhub-Seq": "1"},
        {"Camhub-Codec": "h264", "Camhub-Pts": "1", H_CHUNK: "5/2", "Camhub-Seq": "1"},
    ],
)
def test_malformed_frames_raise_frame_error(headers: dict[str, str] | None) -> None:
    with pytest.raises(FrameError):
        FrameAssembler().push(headers, b"data")


def test_empty_body_is_rejected() -> None:
    with pytest.raises(FrameError, match="empty"):
        decode({"Camhub-Codec": "jpeg", "Camhub-Pts": "1"}, b"")
