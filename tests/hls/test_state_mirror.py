"""KV ``camhub-hls`` positions (real nats-server), the disk mirror (real files) and viewers."""

from __future__ import annotations

import time
from pathlib import Path

from services.common import codec
from services.common.bus import Bus
from services.common.subjects import KV_HLS
from services.hls.mirror import DiskMirror
from services.hls.packager import PackagerConfig, Resume, StreamPackager
from services.hls.state import StateWriter, load_resume, resume_from
from services.hls.viewers import ViewerCounter
from tests.hls.support import looped, x264


def test_resume_from_moves_the_timeline_past_the_old_owner() -> None:
    now = 1_000_000_000
    r = resume_from({"msn": 12, "dsn": 2, "dts": 900_000, "ts": now - 3000}, now)
    assert r == Resume(12, 2, 900_000 + 4 * 90_000)  # 3 s elapsed + 1 s margin
    assert resume_from({"msn": 12, "dsn": 2, "dts": 900_000, "ts": now - 3_600_000}, now) == Resume(12, 2, 0)
    for bad in ({}, {"msn": "x", "dsn": 0, "dts": 0, "ts": 0}, {"msn": -1, "dsn": 0, "dts": 0, "ts": 0}):
        assert resume_from(bad, now) is None  # type: ignore[arg-type]


async def test_state_round_trip_in_kv(bus: Bus) -> None:
    assert await load_resume(bus, "cam1") is None
    writer = StateWriter(bus, "cam1", "hls-a")
    for msn in range(5):
        writer.save(Resume(msn + 1, 0, msn * 180_000))
    await writer.close()
    kv = await bus.kv(KV_HLS)
    stored = codec.unpack_map((await kv.get("cam1")).value)
    assert stored["msn"] == 5 and stored["instance"] == "hls-a"
    resumed = await load_resume(bus, "cam1")
    assert resumed is not None and resumed.msn == 5 and resumed.dts > 4 * 180_000
    await kv.put("cam2", b"\xc1 garbage")
    assert await load_resume(bus, "cam2") is None


async def test_disk_mirror_writes_listed_files_and_removes_evicted(tmp_path: Path) -> None:
    root = tmp_path / "cam1"
    root.mkdir()
    (root / "seg000099.ts").write_bytes(b"stale")  # a previous run's file
    (root / "notes.txt").write_text("not ours")
    pk = StreamPackager("cam1", PackagerConfig(window=2, grace=1))
    pk.set_source("h264", 320, 240)
    mirror = DiskMirror(root)
    mirror.start()
    for f in looped(x264(), 330):
        mirror.apply(pk, pk.push(f))
    await mirror.close()
    files = {p.name for p in root.iterdir()}
    assert "notes.txt" in files and "seg000099.ts" not in files and not [n for n in files if n.endswith(".tmp")]
    assert {"stream.m3u8", "stream_ll.m3u8", "init.mp4", "init000000.mp4", "seg000004.ts", "seg000002.m4s"} <= files
    assert "seg000001.ts" not in files and "part000001.0.m4s" not in files  # evicted (kept: 2 + 1)
    text = (root / "stream.m3u8").read_text()
    assert text == pk.playlist(False)
    for line in text.splitlines():
        if not line.startswith("#"):
            assert (root / line).read_bytes() == pk.window.find(int(line[3:9])).ts  # type: ignore[union-attr]
    assert mirror.dropped == 0 and mirror.errors == 0


def test_viewer_counter_forgets_after_the_window() -> None:
    now = [0.0]
    v = ViewerCounter(10.0, clock=lambda: now[0])
    v.seen("a")
    v.seen("b")
    v.seen(None)
    v.seen("")
    assert v.count() == 3
    now[0] = 5.0
    v.seen("a")
    now[0] = 12.0
    assert v.count() == 1
    now[0] = time.monotonic() + 100
    assert v.count() == 0
