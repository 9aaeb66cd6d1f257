"""The AV1 RTP packetizer (services/egress/av1.py) against an independent depacketizer: FFmpeg's
(PyAV's bundled libavformat ``rtpdec`` AV1 handler) reading the RTP packets from a UDP socket and
libdav1d decoding them. Input: real SVT-AV1 temporal units. Chromium decoding AV1 from the egress
is in test_browser.py."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import av
import pytest
from aiortc.rtp import RtpPacket

from services.egress import av1
from tests.egress.helpers import encode_av1
from tests.support.nats import free_udp_port


def _obus(data: bytes) -> list[tuple[int, bytes]]:
    drop = (av1.OBU_TEMPORAL_DELIMITER, av1.OBU_TILE_LIST, av1.OBU_PADDING)
    return [(o.type, o.payload) for o in av1.parse_obus(data) if o.type not in drop]


def _ffmpeg_read(sdp_path: Path, want: int) -> dict[str, Any]:
    out: dict[str, Any] = {"units": [], "decoded": 0}
    opts = {"protocol_whitelist": "file,udp,rtp", "reorder_queue_size": "0"}
    with av.open(str(sdp_path), format="sdp", options=opts, timeout=5) as cont:
        stream = cont.streams.video[0]
        out["codec"] = stream.codec_context.name
        for pkt in cont.demux(stream):
            if pkt.size == 0:
                continue
            out["units"].append(bytes(pkt))
            out["decoded"] += len(pkt.decode())
            if len(out["units"]) >= want:
                break
    return out


@pytest.mark.parametrize("size", [(320, 240), (1280, 720)])
async def test_ffmpeg_depacketizes_what_we_packetize(tmp_path: Path, size: tuple[int, int]) -> None:
    frames = encode_av1(20, width=size[0], height=size[1], gop=10)
    port = free_udp_port()
    sdp = tmp_path / "av1.sdp"
    sdp.write_text(
        f"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=video {port} RTP/AVP 96\r\na=rtpmap:96 AV1/90000\r\n"
    )
    reader = asyncio.ensure_future(asyncio.to_thread(_ffmpeg_read, sdp, len(frames) - 1))
    await asyncio.sleep(1.0)  # FFmpeg binds the port while opening
    fragmented = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        seq = 0
        for f in frames:
            payloads = av1.packetize(f.data)
            assert all(len(p) <= av1.PACKET_MAX for p in payloads)
            assert bool(payloads[0][0] & 0x08) == f.key  # N bit: new coded video sequence
            fragmented += sum(1 for p in payloads if p[0] & 0x40)
            for i, payload in enumerate(payloads):
                last = int(i == len(payloads) - 1)
                pkt = RtpPacket(payload_type=96, sequence_number=seq, timestamp=f.pts, marker=last)
                pkt.ssrc = 0x1234
                pkt.payload = payload
                sock.sendto(pkt.serialize(), ("127.0.0.1", port))
                seq += 1
            await asyncio.sleep(0.005)
    result = await asyncio.wait_for(reader, 20)
    assert result["codec"] == "libdav1d"
    assert fragmented > 0  # keyframes span several packets (Y/Z continuation)
    assert len(result["units"]) == len(frames) - 1  # FFmpeg holds the last TU until the next one
    for got, sent in zip(result["units"], frames, strict=False):
        assert _obus(got) == _obus(sent.data)
    assert result["decoded"] >= len(frames) - 4


def test_packetize_rules() -> None:
    frames = encode_av1(2)
    key = frames[0].data
    assert av1.parse_obus(key)[0].type == av1.OBU_TEMPORAL_DELIMITER
    payloads = av1.packetize(key, max_size=200)
    assert all(len(p) <= 200 for p in payloads)
    assert payloads[0][0] & 0x08 and not any(p[0] & 0x08 for p in payloads[1:])  # N on the first only
    assert not payloads[0][0] & 0x80 and payloads[1][0] & 0x80  # Z: continues a fragment
    assert not payloads[-1][0] & 0x40  # Y clear on the last packet
    assert all(p[0] & 0x30 == 0 for p in payloads)  # W = 0: every element carries its length
    # a temporal delimiter alone gives no packets; sizes are stripped from the OBU headers
    assert av1.packetize(bytes([0x12, 0x00])) == []
    elem = av1.packetize(frames[1].data)[0]
    length, pos = av1.read_leb128(elem, 1)
    assert not elem[pos] & 0x02 and length == len(elem) - pos


@pytest.mark.parametrize(
    "data",
    [bytes([0x92, 0x00]), bytes([0x32, 0x10, 0x01]), bytes([0x32]), bytes([0x32, 0xFF, 0xFF])],
    ids=["forbidden-bit", "size-past-end", "no-size", "truncated-leb128"],
)
def test_malformed_temporal_units(data: bytes) -> None:
    with pytest.raises(av1.Av1Error):
        av1.packetize(data)
    packet = av.Packet(data)
    packet.pts = 3000
    assert av1.Av1Packer().pack(packet) == ([], 3000)  # skipped, the sender keeps running


def test_leb128_round_trip() -> None:
    for value in (0, 1, 127, 128, 300, 16383, 16384, 2**32 - 1):
        enc = av1.leb128(value)
        assert av1.read_leb128(enc, 0) == (value, len(enc))
