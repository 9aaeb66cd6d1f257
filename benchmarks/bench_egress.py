"""WHEP egress: server-added latency and viewers per egress process at 1080p30 (issue #7).

Real peers: a nats-server with JetStream, ``python -m services.egress`` as a child process, and
aiortc WHEP viewers (camhub's passthrough decoder) in worker processes. The bench publishes
1920x1080 H.264 at 30 fps on ``camhub.media.bench.frames`` as the ingest would (libx264 over the
recorded Big Buck Bunny clip scaled to 1080p, ~6 Mbit/s, an IDR each second, looped with growing
timestamps; ``Camhub-Ts`` = the publish wall clock).

* Latency: one viewer; the egress's own figure ``latency_ms`` (``Camhub-Ts`` -> the access unit's
  last RTP packet handed to the socket, i.e. bus hop + routing + packetization + SRTP + send) from
  ``camhub.webrtc.session.<sid>.stats``. Goal: p99 <= 20 ms.
* Capacity: steps of N viewers (fresh sessions per step, split over two worker processes); per
  step the AUs each session sent vs. the AUs published, AUs dropped by the lag policy, AUs the
  egress's subscription missed or skipped as late, RTP packets lost on the way to the viewers
  (sequence gaps), the egress's output rate and latency, and CPU (% of one core) of the egress,
  the viewers and nats-server. Viewers are "light" by default: aiortc completes ICE + DTLS and
  decrypts SRTP, then only counts the RTP packets (``--full-viewers``: aiortc's whole receive
  path), so the two cores go to the process under test. "Viewers before frames are dropped" =
  the largest step with nothing dropped, missed, skipped or lost.

    .venv/bin/python -m benchmarks.bench_egress [--viewers 1,16,32,48,64,80,96] [--seconds 8] [--full-viewers]

Bounded: encoding ~10-30 s, latency phase ``--seconds`` + 3 s, each step ``--seconds`` + ~4 s;
it stops at the first step that drops. The viewers share the VM's two cores with the egress, so
the capacity figure is a lower bound for a dedicated egress host.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import psutil

from services.common import h264, subjects
from services.common.bus import Bus
from services.common.frames import Frame
from services.common.settings import load_settings
from tests.egress.helpers import AiortcViewer, FramePublisher
from tests.support.media import BUNNY
from tests.support.nats import NatsServer
from tests.support.procs import ROOT, ServiceProcess, service_env, wait_services

STREAM = "bench"
FPS = 30
WIDTH, HEIGHT = 1920, 1080


def encode_1080p(count: int) -> list[Frame]:
    """``count`` 1080p30 H.264 access units: Big Buck Bunny scaled up, libx264 superfast, 6 Mbit/s."""
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    enc.time_base = Fraction(1, FPS)
    enc.framerate = Fraction(FPS, 1)
    enc.bit_rate = 6_000_000
    enc.gop_size = FPS
    enc.options = {
        "preset": "superfast",
        "tune": "zerolatency",
        "x264-params": f"keyint={FPS}:min-keyint={FPS}:scenecut=0:repeat-headers=1:bframes=0"
        ":vbv-maxrate=6000:vbv-bufsize=3000",
    }
    ticks = 90_000 // FPS
    out: list[Frame] = []
    with av.open(str(BUNNY)) as cont:
        pictures = [f.reformat(width=WIDTH, height=HEIGHT, format="yuv420p") for f in cont.decode(video=0)]

    def add(pkt: Any) -> None:
        data = bytes(pkt)
        pts = int(pkt.pts or 0) * ticks
        out.append(Frame("h264", pts, pts, h264.is_keyframe(data), data, len(out)))

    for i in range(count):
        vf = pictures[i % len(pictures)]
        vf.pts = i
        vf.time_base = enc.time_base
        vf.pict_type = av.video.frame.PictureType.NONE
        for pkt in enc.encode(vf):
            add(pkt)
    for pkt in enc.encode(None):
        add(pkt)
    return out[:count]


# --- worker: N aiortc viewers in their own process ---------------------------------------------

_rx = {"packets": 0, "bytes": 0, "lost": 0}
_seq: dict[bytes, int] = {}


def _light_receive() -> None:
    """Light viewers: DTLS-SRTP decryption as usual, then the RTP packet is only counted (no
    parsing, jitter buffer, depacketizing), so the VM's cores go to the egress under test; losses
    are counted from RTP sequence-number gaps per SSRC. Such a viewer sends no RTCP receiver
    reports, so the bench runs the egress with a long idle timeout."""
    from aiortc.rtcdtlstransport import RTCDtlsTransport

    async def count(self: Any, data: bytes, arrival_time_ms: int) -> None:
        _rx["packets"] += 1
        _rx["bytes"] += len(data)
        ssrc, seq = data[8:12], int.from_bytes(data[2:4], "big")
        last = _seq.get(ssrc)
        if last is not None:
            gap = (seq - last) % 65536
            if 1 < gap < 32768:
                _rx["lost"] += gap - 1
        _seq[ssrc] = seq

    RTCDtlsTransport._handle_rtp_data = count  # type: ignore[method-assign]


async def worker(nats_url: str, count: int, seconds: float, light: bool) -> None:
    """Connect ``count`` viewers; print ``{"sessions": [...]}``, then ``{"packets", "bytes",
    "aus"}`` received so far each second, until ``seconds`` pass or stdin closes."""
    if light:
        _light_receive()
    bus = await Bus.connect(load_settings(nats_url=nats_url), "bench-viewers", connect_timeout=5)
    viewers = [AiortcViewer() for _ in range(count)]
    replies = await asyncio.gather(*(v.connect(bus, STREAM, timeout=20) for v in viewers))
    errors = [r for r in replies if not r.get("ok")]
    print(json.dumps({"sessions": [r.get("session") for r in replies], "errors": errors}), flush=True)
    deadline = time.monotonic() + seconds
    stdin_closed = asyncio.ensure_future(asyncio.to_thread(sys.stdin.read))
    while time.monotonic() < deadline and not stdin_closed.done():
        await asyncio.sleep(0.5)
        print(json.dumps({**_rx, "aus": sum(len(v.received) for v in viewers)}), flush=True)
    await asyncio.gather(*(v.close() for v in viewers), return_exceptions=True)
    await bus.close()


class Workers:
    """Viewer worker processes for one step; :attr:`received` holds each one's latest counts."""

    def __init__(self, nats_url: str, counts: list[int], seconds: float, light: bool) -> None:
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115 (the workers' stderr; closed in stop())
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-m", "benchmarks.bench_egress", "--worker", nats_url, str(n), str(seconds)]
                + (["light"] if light else []),
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.errors,
            )
            for n in counts
            if n > 0
        ]
        self.received: list[dict[str, int]] = [{"packets": 0, "bytes": 0, "aus": 0, "lost": 0} for _ in self.procs]
        self._readers: list[asyncio.Future[None]] = []

    def _read(self, i: int) -> None:
        out = self.procs[i].stdout
        assert out is not None
        for line in out:
            with contextlib.suppress(ValueError):
                self.received[i] = json.loads(line)

    async def sessions(self, timeout: float = 60) -> list[str]:
        out: list[str] = []
        for p in self.procs:
            assert p.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(p.stdout.readline), timeout)
            if not line:
                self.errors.seek(0)
                raise RuntimeError("a viewer worker died: " + self.errors.read().decode(errors="replace")[-2000:])
            body = json.loads(line)
            if body["errors"]:
                raise RuntimeError(f"WHEP failed: {body['errors'][:1]}")
            out += body["sessions"]
        self._readers = [asyncio.ensure_future(asyncio.to_thread(self._read, i)) for i in range(len(self.procs))]
        return out

    def totals(self) -> dict[str, int]:
        return {k: sum(r.get(k, 0) for r in self.received) for k in ("packets", "bytes", "aus", "lost")}

    def cpu(self) -> list[psutil.Process]:
        return [psutil.Process(p.pid) for p in self.procs]

    async def stop(self) -> None:
        for p in self.procs:
            with contextlib.suppress(Exception):
                assert p.stdin is not None
                p.stdin.close()
        for p in self.procs:
            try:
                await asyncio.to_thread(p.wait, 10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for r in self._readers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(r, 5)
        self.errors.close()


async def stats(bus: Bus, sids: list[str]) -> list[dict[str, Any]]:
    replies = await asyncio.gather(
        *(bus.request_obj(subjects.webrtc_session(s, "stats"), {}, timeout=5) for s in sids), return_exceptions=True
    )
    return [r["stats"] for r in replies if isinstance(r, dict) and r.get("ok")]


async def measure(
    bus: Bus,
    pub: FramePublisher,
    procs: dict[str, list[psutil.Process]],
    workers: Workers,
    sids: list[str],
    seconds: float,
    light: bool,
) -> dict[str, Any]:
    """Counters over ``seconds``: session stats deltas, packets the viewers got, CPU per process group."""
    before = {s["session"]: s for s in await stats(bus, sids)}
    rx0 = workers.totals()
    published0 = len(pub.sent)
    for group in procs.values():
        for p in group:
            p.cpu_percent(None)
    await asyncio.sleep(seconds)
    cpu = {name: sum(p.cpu_percent(None) for p in group) for name, group in procs.items()}
    published = len(pub.sent) - published0
    after = [a for a in await stats(bus, sids) if a["session"] in before]
    rx = workers.totals()

    def delta(key: str) -> list[int]:
        return [int(a[key]) - int(before[a["session"]][key]) for a in after]

    sent = delta("frames_sent")
    lat = [a["latency_ms"] for a in after]
    rtp_lost = rx["lost"] - rx0["lost"] if light else sum(int(a["packets_lost"]) for a in after)
    return {
        "viewers": len(sids),
        "alive": len(after),
        "published": published,
        "sent_min": min(sent, default=0),
        "sent_avg": sum(sent) / len(sent) if sent else 0.0,
        "dropped": sum(delta("frames_dropped")),
        "lags": sum(delta("lags")),
        "source_lost": max(delta("source_lost"), default=0),
        "source_late": max(delta("source_late"), default=0),
        "packets_sent": sum(delta("packets_sent")),
        "rtp_lost": rtp_lost,
        "mbit": sum(delta("rtp_bytes_sent")) * 8 / seconds / 1e6,
        "p50": max((x["p50"] for x in lat), default=0.0),
        "p99": max((x["p99"] for x in lat), default=0.0),
        "max": max((x["max"] for x in lat), default=0.0),
        "cpu": cpu,
        "age": max((float(a["source_age_ms"]) for a in after), default=0.0),
        "queued": max((int(a["queued"]) for a in after), default=0),
        "load": os.getloadavg()[0],
    }


def _row(n: int | str, r: dict[str, Any]) -> str:
    cells = [
        n,
        r["published"],
        f"{r['sent_min']} / {r['sent_avg']:.1f}",
        f"{r['dropped']} ({r['lags']})",
        f"{r['source_lost']} / {r['source_late']}",
        f"{r['packets_sent']} / {r['rtp_lost']}",
        f"{r['mbit']:.0f}",
        f"{r['p50']:.1f} / {r['p99']:.1f} / {r['max']:.1f}",
        f"{r['cpu']['egress']:.0f} / {r['cpu']['viewers']:.0f} / {r['cpu']['nats']:.0f}",
        f"{r['load']:.1f}",
        f"{r['age']:.0f} / {r['queued']}",
    ]
    return "| " + " | ".join(str(c) for c in cells) + " |"


HEADER = (
    "| viewers | AUs published | AUs sent per viewer min / avg | dropped (lags) | bus lost / late "
    "| RTP packets sent / lost | Mbit/s out | latency p50 / p99 / max ms "
    "| CPU % egress / viewers / nats | load avg | age at egress ms / queued AUs (end) |"
    "\n|---|---|---|---|---|---|---|---|---|---|---|"
)


async def main(args: argparse.Namespace) -> None:
    logging.getLogger("nats").setLevel(logging.CRITICAL)  # $SRV.PING's no-responders replies
    t0 = time.monotonic()
    frames = encode_1080p(90)
    keys = [len(f.data) for f in frames if f.key]
    others = [len(f.data) for f in frames if not f.key]
    avg_kbit = sum(len(f.data) for f in frames) * 8 / (len(frames) / FPS) / 1000
    print(
        f"1080p30 H.264: {len(frames)} AUs encoded in {time.monotonic() - t0:.1f} s, {avg_kbit:.0f} kbit/s, "
        f"IDR {sum(keys) / len(keys) / 1000:.0f} kB, P {sum(others) / max(1, len(others)) / 1000:.1f} kB; "
        f"viewers: {'aiortc, full receive path' if args.full_viewers else 'aiortc, light (RTP counted, not parsed)'}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-egress-") as tmp:
        nats = NatsServer(Path(tmp) / "nats")
        await nats.astart()
        env = service_env(
            nats.url,
            Path(tmp) / "data",
            CAMHUB_INSTANCE="bench-egress",
            # light viewers send no RTCP; keep them (and slow full ones) from being dropped as idle
            CAMHUB_EGRESS_IDLE_SECONDS="600",
            CAMHUB_EGRESS_HANDSHAKE_SECONDS="30",
            CAMHUB_LOG_LEVEL="WARNING",
        )
        proc = ServiceProcess("egress", env, Path(tmp) / "logs").start()
        bus = await Bus.connect(load_settings(nats_url=nats.url), "bench")
        pub = FramePublisher(bus, STREAM, frames, FPS, width=WIDTH, height=HEIGHT)
        light = not args.full_viewers
        try:
            await wait_services(nats.url, {"egress"}, timeout=30)
            assert proc.proc is not None and nats.proc is not None
            base = {"egress": [psutil.Process(proc.proc.pid)], "nats": [psutil.Process(nats.proc.pid)]}
            await pub.start()

            async def step(n: int) -> dict[str, Any]:
                workers = Workers(nats.url, [n - n // 2, n // 2], args.seconds + 60, light)
                try:
                    sids = await workers.sessions()
                    await asyncio.sleep(3)  # handshakes done, catch-up runs sent
                    procs = {**base, "viewers": workers.cpu()}
                    return await measure(bus, pub, procs, workers, sids, args.seconds, light)
                finally:
                    await workers.stop()

            lat = await step(1)
            print("\n## Server-added latency, 1 viewer (Camhub-Ts -> last RTP packet of the AU sent)\n")
            print("| AUs | p50 ms | p99 ms | max ms | CPU % egress | load avg |\n|---|---|---|---|---|---|")
            print(
                f"| {lat['sent_avg']:.0f} | {lat['p50']:.2f} | {lat['p99']:.2f} | {lat['max']:.2f} "
                f"| {lat['cpu']['egress']:.0f} | {lat['load']:.1f} |"
            )
            print("\n## Viewers per egress process, 1080p30\n")
            print(HEADER)
            best = 0
            for n in [int(x) for x in args.viewers.split(",")]:
                await asyncio.sleep(1.5)  # the previous step's sessions close
                row = await step(n)
                print(_row(n, row), flush=True)
                if row["alive"] < n or row["dropped"] or row["source_lost"] or row["source_late"] or row["rtp_lost"]:
                    break
                best = n
            print(f"\nviewers at 1080p30 with nothing dropped: {best} (steps {args.viewers}, {args.seconds:g} s each)")
            print(f"total {time.monotonic() - t0:.0f} s")
        finally:
            await pub.stop()
            await bus.close()
            proc.stop()
            nats.stop()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        asyncio.run(worker(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), "light" in sys.argv[5:]))
    else:
        ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
        ap.add_argument("--viewers", default="1,16,32,48,64,80,96")
        ap.add_argument("--seconds", type=float, default=8.0)
        ap.add_argument("--full-viewers", action="store_true", help="viewers parse and depacketize RTP (costlier)")
        asyncio.run(main(ap.parse_args()))
