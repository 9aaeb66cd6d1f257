"""RTSP ingest: CPU per 1080p30 4 Mbit/s stream and streams per ingest process without loss (issue #3).

Real peers: a nats-server with JetStream, GStreamer's RTSP server (``services/sim/rtsp_server.py``
with the system Python) serving one pre-encoded 1080p30 ~4 Mbit/s H.264 MP4 (libx264 over the Big
Buck Bunny clip scaled to 1920x1080, an IDR per second; the server only payloads it, in real time),
one server process per ``--per-server`` (10) sessions sharing one pipeline; the cameras are added
to the registry 0.2 s apart, because gst-rtsp-server answers some of ten simultaneous connects to
one shared media with garbage (``Invalid data``) - real cameras are separate servers anyway),
and ``python -m services.ingest`` as a child process pulling N registry cameras (N separate RTSP
sessions over TCP).  The bench subscribes to ``camhub.media.*.frames`` and counts, per stream,
frames and ``Camhub-Seq`` gaps.

Per step of N streams (fresh server and ingest each step): wait until every stream delivers,
then measure ``--seconds``: frames per stream, media seconds delivered per wall second
(1.00 = the stream keeps up), seq gaps, frames ingest dropped (its heartbeat health), and CPU
(% of one core, from /proc via psutil) of the ingest, the RTSP server and nats-server.
"No loss" = no seq gap, nothing dropped and every stream >= 95 % of 30 fps.

    .venv/bin/python -m benchmarks.bench_ingest [--streams 1,10,20,30,40,50,60,70,80,100]
        [--seconds 8] [--per-server 10]

Bounded: encoding the clip ~30-45 s (cached in the temp dir), each step ``--seconds`` + ~8 s +
0.2 s per stream (about 5 minutes for the default steps);
it stops at the first step with loss.  The RTSP server and the bench's own subscriber share the
two cores with the ingest, so the capacity figure is a lower bound for a dedicated ingest host.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import psutil

from services.common import codec, subjects
from services.common.bus import Bus
from services.common.frames import H_PTS, H_SEQ
from services.common.registry import Device, Registry
from services.common.settings import load_settings
from tests.support.media import BUNNY
from tests.support.nats import NatsServer, free_port
from tests.support.procs import ROOT, ServiceProcess, service_env, wait_services

FPS = 30
WIDTH, HEIGHT = 1920, 1080
CACHE = Path(tempfile.gettempdir()) / "camhub-bench-ingest"
SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_SERVER = ROOT / "services" / "sim" / "rtsp_server.py"


def make_clip(seconds: int) -> Path:
    """A 1080p30 ~4 Mbit/s H.264 MP4 of ``seconds`` (cached)."""
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"bunny_1080p30_4M_{seconds}s.mp4"
    if path.exists():
        return path
    with av.open(str(BUNNY)) as cont:
        pictures = [f.reformat(width=WIDTH, height=HEIGHT, format="yuv420p") for f in cont.decode(video=0)]
    tmp = path.with_suffix(".tmp.mp4")
    with av.open(str(tmp), "w") as out:
        st = out.add_stream("libx264", rate=FPS)
        st.width, st.height, st.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        st.bit_rate = 4_000_000
        st.codec_context.gop_size = FPS
        st.codec_context.options = {
            "preset": "superfast",
            "x264-params": f"keyint={FPS}:min-keyint={FPS}:scenecut=0:bframes=0:vbv-maxrate=4000:vbv-bufsize=4000",
        }
        for i in range(seconds * FPS):
            vf = pictures[i % len(pictures)]
            frame = av.VideoFrame.from_ndarray(vf.to_ndarray(), format="yuv420p")
            frame.pts = i
            frame.time_base = Fraction(1, FPS)
            for pkt in st.encode(frame):
                out.mux(pkt)
        for pkt in st.encode(None):
            out.mux(pkt)
    tmp.rename(path)
    return path


class Counter:
    """Per-stream frame counts and Camhub-Seq gaps from one wildcard subscription."""

    def __init__(self) -> None:
        self.frames: dict[str, int] = {}
        self.gaps: dict[str, int] = {}
        self.last: dict[str, int] = {}
        self.pts: dict[str, int] = {}
        self.bytes = 0

    async def on_msg(self, msg: Any) -> None:
        stream = msg.subject.split(".")[2]
        seq = int((msg.headers or {}).get(H_SEQ, "0"))
        prev = self.last.get(stream)
        if prev is not None and seq != prev + 1 and seq != prev:
            self.gaps[stream] = self.gaps.get(stream, 0) + max(0, seq - prev - 1)
        self.last[stream] = seq
        self.frames[stream] = self.frames.get(stream, 0) + 1
        self.pts[stream] = int((msg.headers or {}).get(H_PTS, "0"))
        self.bytes += len(msg.data)


def cpu_s(proc: psutil.Process) -> float:
    try:
        t = proc.cpu_times()
        total = t.user + t.system
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                c = child.cpu_times()
                total += c.user + c.system
        return float(total)
    except psutil.Error:
        return 0.0


async def run_step(n: int, seconds: float, clip: Path, root: Path, per_server: int) -> dict[str, Any]:
    nats = NatsServer(root / f"nats-{n}")
    await nats.astart()
    settings = load_settings(nats_url=nats.url, instance="bench-client")
    bus = await Bus.connect(settings, "bench-ingest")
    servers: list[subprocess.Popen[bytes]] = []
    ingest: ServiceProcess | None = None
    try:
        urls = []
        for _ in range((n + per_server - 1) // per_server):
            cmd = [SYSTEM_PYTHON, str(RTSP_SERVER), "--port", str(free_port()), "--file", str(clip), "--shared"]
            srv = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
            servers.append(srv)
            assert srv.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(srv.stdout.readline), 15)
            urls.append(line.decode().split(" ", 1)[1].strip())
        reg = Registry(bus)
        streams = [f"cam{i:03d}" for i in range(n)]
        counter = Counter()
        await bus.subscribe(subjects.MEDIA_FRAMES_ALL, counter.on_msg)
        health: dict[str, Any] = {}

        async def on_beat(msg: Any) -> None:
            body = codec.unpack_map(msg.data)
            if body.get("service") == "ingest":
                health.update(body.get("streams", {}))

        await bus.subscribe(subjects.HEARTBEAT_ALL, on_beat)
        ingest = ServiceProcess(
            "ingest", service_env(nats.url, root / f"ingest-{n}", CAMHUB_INSTANCE="bench"), root / f"ingest-{n}"
        ).start()
        await wait_services(nats.url, {"ingest"}, timeout=20)
        started = time.monotonic()
        for i, s in enumerate(streams):  # cameras added 0.2 s apart (see the docstring)
            await reg.put(Device(id=s, kind="rtsp", rtsp_url=urls[i // per_server]))
            await asyncio.sleep(0.2)
        deadline = started + 20 + n * 0.5
        while time.monotonic() < deadline and len(counter.frames) < n:
            await asyncio.sleep(0.2)
        ramp = time.monotonic() - started
        await asyncio.sleep(5.0)  # every session past its first GOP and the start-up burst
        assert ingest.proc is not None
        procs: dict[str, list[psutil.Process]] = {
            "ingest": [psutil.Process(ingest.proc.pid)],
            "rtsp": [psutil.Process(srv.pid) for srv in servers],
            "nats": [psutil.Process(nats.proc.pid)] if nats.proc else [],
        }
        f0, p0, g0 = dict(counter.frames), dict(counter.pts), dict(counter.gaps)
        d0 = {s: int(health.get(s, {}).get("dropped", 0)) for s in streams}
        c0 = {k: sum(cpu_s(p) for p in ps) for k, ps in procs.items()}
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        dt = time.monotonic() - t0
        c1 = {k: sum(cpu_s(p) for p in ps) for k, ps in procs.items()}
        f1, g1, p1 = dict(counter.frames), dict(counter.gaps), dict(counter.pts)
        await asyncio.sleep(1.2)  # one more heartbeat (for the dropped counts)
        per_stream = [f1.get(s, 0) - f0.get(s, 0) for s in streams]
        gaps = sum(g1.get(s, 0) - g0.get(s, 0) for s in streams)
        dropped = sum(int(health.get(s, {}).get("dropped", 0)) - d0[s] for s in streams)
        fps = [c / dt for c in per_stream]
        media_s = [(p1.get(s, 0) - p0.get(s, 0)) / 90000 for s in streams]
        ok = gaps == 0 and dropped == 0 and min(fps) >= 0.95 * FPS
        if not ok:
            notes = [ln for ln in ingest.log().splitlines() if '"WARNING"' in ln or '"ERROR"' in ln]
            for ln in notes[:8]:
                print("  ingest:", ln[:300])
        return {
            "n": n,
            "fps_min": min(fps),
            "fps_avg": sum(fps) / n,
            "media": sum(media_s) / n / dt,
            "ramp": ramp,
            "gaps": gaps,
            "dropped": dropped,
            "cpu": {k: 100.0 * (c1[k] - c0[k]) / dt for k in procs},
            "ok": ok,
        }
    finally:
        if ingest is not None:
            ingest.stop()
        for srv in servers:
            srv.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                srv.wait(5)
            if srv.poll() is None:
                srv.kill()
            if srv.stdout is not None:
                srv.stdout.close()
        await bus.close()
        nats.stop()


async def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--streams", default="1,10,20,30,40,50,60,70,80,100")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--per-server", type=int, default=10, help="RTSP sessions per GStreamer server process")
    a = ap.parse_args(argv)
    steps = [int(x) for x in a.streams.split(",") if x.strip()]
    clip_s = int(a.seconds + 28 + max(steps) * 0.5)  # the longest ramp-up + warm-up + window
    t = time.monotonic()
    clip = make_clip(clip_s)
    print(
        f"clip: {clip.name} ({clip.stat().st_size * 8 / clip_s / 1e6:.1f} Mbit/s) ready in {time.monotonic() - t:.0f} s"
    )
    print(f"load average before: {' '.join(f'{x:.2f}' for x in psutil.getloadavg())}")
    header = (
        f"{'streams':>7} {'ramp s':>6} {'fps min':>7} {'fps avg':>7} {'media s/s':>9} {'seq gaps':>8} "
        f"{'dropped':>7} {'ingest %cpu':>11} {'%/stream':>8} {'rtsp srv %':>10} {'nats %':>6}  loss-free"
    )
    print(header)
    with tempfile.TemporaryDirectory(prefix="camhub-bench-ingest-") as tmp:
        for n in steps:
            r = await run_step(n, a.seconds, clip, Path(tmp), a.per_server)
            cpu = r["cpu"]
            print(
                f"{r['n']:>7} {r['ramp']:>6.1f} {r['fps_min']:>7.1f} {r['fps_avg']:>7.1f} {r['media']:>9.3f} "
                f"{r['gaps']:>8} {r['dropped']:>7} {cpu['ingest']:>11.1f} {cpu['ingest'] / n:>8.2f} "
                f"{cpu['rtsp']:>10.1f} {cpu['nats']:>6.1f}  {'yes' if r['ok'] else 'NO'}",
                flush=True,
            )
            if not r["ok"]:
                break
    print(f"load average after: {' '.join(f'{x:.2f}' for x in psutil.getloadavg())}")


if __name__ == "__main__":
    asyncio.run(main())
