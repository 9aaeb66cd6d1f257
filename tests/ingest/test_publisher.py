"""StreamPublisher on a real nats-server: info/KV, events, epochs, parameter sets, timestamps,
chunking, drops."""

from __future__ import annotations

import asyncio
from typing import Any

from services.common import av1, codec, h264, subjects
from services.common.bus import Bus
from services.common.frames import Frame, FrameAssembler
from services.common.streams import get_info
from services.ingest.publisher import StreamPublisher
from tests.ingest.media import big_keyframes, encode_av1
from tests.support.media import encode_h264


class Tap:
    """Collects frames (reassembled), events and info messages of one stream."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.events: list[dict[str, Any]] = []
        self.infos: list[dict[str, Any]] = []
        self.asm = FrameAssembler()

    async def start(self, bus: Bus, stream: str) -> Tap:
        async def on_frame(msg: Any) -> None:
            f = self.asm.push(dict(msg.headers or {}), msg.data)
            if f is not None:
                self.frames.append(f)

        async def on_event(msg: Any) -> None:
            self.events.append(codec.unpack_map(msg.data))

        async def on_info(msg: Any) -> None:
            self.infos.append(codec.unpack_map(msg.data))

        await bus.subscribe(subjects.media_frames(stream), on_frame)
        await bus.subscribe(subjects.media_events(stream), on_event)
        await bus.subscribe(subjects.media_info(stream), on_info)
        await bus.nc.flush()
        return self

    async def settle(self, bus: Bus) -> None:
        await bus.nc.flush()
        await asyncio.sleep(0.2)


async def test_epochs_grow_across_publishers_and_events_follow(bus: Bus) -> None:
    tap = await Tap().start(bus, "cam1")
    p1 = StreamPublisher(bus, "cam1", "rtsp", "ing-a")
    assert await p1.start("h264", width=320, height=240, fps=30) == 1
    await p1.stop("source lost")
    p1.close()
    p2 = StreamPublisher(bus, "cam1", "rtsp", "ing-b")  # e.g. after an ingest restart
    assert await p2.start("h264") == 2
    await tap.settle(bus)
    assert [(e["type"], e["epoch"]) for e in tap.events] == [("up", 1), ("down", 1), ("up", 2), ("discontinuity", 2)]
    assert tap.events[1]["reason"] == "source lost"
    assert [i["up"] for i in tap.infos] == [True, False, True]
    info = await get_info(bus, "cam1")
    assert info is not None and info.epoch == 2 and info.owner == "ing-b" and info.up
    assert tap.infos[-1]["health"]["state"] == "up"
    p2.close()


async def test_frames_start_at_a_keyframe_get_parameter_sets_and_seq(bus: Bus) -> None:
    tap = await Tap().start(bus, "cam2")
    frames = encode_h264(40, gop=20)
    config = h264.parameter_sets(frames[0].data)
    pub = StreamPublisher(bus, "cam2", "whip", "ing")
    await pub.start("h264", config=config)
    # drop the in-band SPS/PPS from every IDR: the publisher must put its config back
    stripped = []
    for f in frames:
        data = b"".join(h264.START + n for n in h264.iter_nals(f.data) if h264.nal_type(n) not in (7, 8))
        stripped.append(Frame("h264", f.pts, f.dts, f.key, data))
    assert not await pub.publish(stripped[1])  # not a keyframe: dropped until the first IDR
    for f in stripped:
        await pub.publish(f)
    await tap.settle(bus)
    got = tap.frames
    assert len(got) == 40
    assert [f.seq for f in got] == list(range(1, 41))
    for f in got:
        if f.key:
            assert h264.nal_types(f.data)[:2] == [7, 8]
    assert pub.health.dropped == 1 and pub.health.frames == 40
    snap = pub.health.snapshot()
    assert snap["keyframe_interval"] == round(20 * 3000 / 90000, 3)
    assert snap["fps"] > 0 and snap["bitrate"] > 0 and snap["state"] == "up"
    pub.close()


async def test_in_band_parameter_set_change_updates_info(bus: Bus) -> None:
    tap = await Tap().start(bus, "cam3")
    pub = StreamPublisher(bus, "cam3", "push", "ing")
    await pub.start("h264")
    small = encode_h264(2, width=320, height=240)
    big = encode_h264(2, width=640, height=480)
    await pub.publish(small[0])
    await pub.publish(Frame("h264", 9000, 9000, True, big[0].data))
    await tap.settle(bus)
    dims = [(i["width"], i["height"]) for i in tap.infos]
    assert dims[-2:] == [(320, 240), (640, 480)]
    assert tap.infos[-1]["config"] == h264.parameter_sets(big[0].data)
    pub.close()


async def test_timestamps_are_made_monotonic_and_restarts_open_an_epoch(bus: Bus) -> None:
    tap = await Tap().start(bus, "cam4")
    frames = encode_h264(6, gop=3)
    pub = StreamPublisher(bus, "cam4", "rtsp", "ing")
    await pub.start("h264")
    t = 900_000  # 10 s
    await pub.publish(Frame("h264", t, t, True, frames[0].data))
    await pub.publish(Frame("h264", t, t, False, frames[1].data))  # same DTS
    await pub.publish(Frame("h264", t - 500, t - 100, False, frames[2].data))  # small step back
    await pub.publish(Frame("h264", 10, 10, True, frames[3].data))  # 10 s back: camera rebooted
    await tap.settle(bus)
    assert [(f.pts, f.dts) for f in tap.frames] == [(t, t), (t + 1, t + 1), (t + 2, t + 2), (10, 10)]
    assert tap.events[-1]["type"] == "discontinuity" and tap.events[-1]["epoch"] == pub.epoch == 2
    pub.close()


async def test_malformed_access_units_are_dropped(bus: Bus) -> None:
    tap = await Tap().start(bus, "cam5")
    frames = encode_h264(2)
    pub = StreamPublisher(bus, "cam5", "whip", "ing")
    await pub.start("h264")
    assert await pub.publish(frames[0])
    for junk in (b"\x00\x00\x00\x01\xff\xff\xff", b"garbage", b"\x00\x00\x00\x01\x06\x05\x01\x00"):
        assert not await pub.publish(Frame("h264", 3000, 3000, False, junk))
    await tap.settle(bus)
    assert len(tap.frames) == 1 and pub.health.dropped == 3
    pub.close()


async def test_frames_above_max_payload_are_chunked_and_reassembled(bus: Bus) -> None:
    tap = await Tap().start(bus, "cam6")
    kf = big_keyframes(5)
    au = b"".join(f.data for f in kf)  # ~9 MB: above the 8 MiB max_payload
    assert len(au) > bus.max_payload
    pub = StreamPublisher(bus, "cam6", "rtsp", "ing")
    await pub.start("h264")
    assert await pub.publish(Frame("h264", 0, 0, True, au))
    await tap.settle(bus)
    assert len(tap.frames) == 1 and tap.frames[0].data == au
    pub.close()


async def test_av1_keyframes_carry_the_sequence_header(bus: Bus) -> None:
    tap = await Tap().start(bus, "cam7")
    tus = encode_av1(8, keyint=4)
    seq = av1.sequence_header(tus[0][0])
    pub = StreamPublisher(bus, "cam7", "whip", "ing")
    await pub.start("av1")
    for i, (tu, key) in enumerate(tus):
        if i > 0 and key:  # strip the sequence header from later keyframes
            tu = b"".join(o.to_bytes() for o in av1.iter_obus(tu) if o.type != av1.OBU_SEQUENCE_HEADER)
        await pub.publish(Frame("av1", i * 3000, i * 3000, key, tu))
    await tap.settle(bus)
    assert len(tap.frames) == 8
    assert pub.info is not None and pub.info.config == seq and (pub.info.width, pub.info.height) == (352, 288)
    for f in tap.frames:
        assert bool(av1.sequence_header(f.data)) == f.key
    pub.close()
