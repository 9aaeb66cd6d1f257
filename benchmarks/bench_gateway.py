"""Gateway benchmarks: WebSocket fan-out delay with slow clients, and HLS requests per second.

    .venv/bin/python -m benchmarks.bench_gateway [--viewers 50,200,500] [--seconds 10]
        [--fps 30] [--kbytes 50] [--slow 0.1] [--clients 2] [--hls-seconds 5] [--skip-hls]

Fan-out: one gateway process (``python -m services.gateway``) on a real nats-server; this
process publishes frames on ``camhub.media.bench.frames`` as ingest would (``--fps`` x
``--kbytes``, a keyframe every second, the publish wall clock in ns inside the payload);
``--clients`` worker processes hold the viewers (a minimal RFC 6455 reader): fast viewers read
everything and record delivery delay (receive wall clock - publish wall clock), slow viewers
(``--slow`` share) stall: they stop reading after the handshake.  Printed per viewer count: frames published,
share of frames the fast viewers got, delay p50/p99/max (ms), stalled viewers the gateway closed as too slow,
gateway CPU (% of one core).

HLS: ingest + hls + gateway processes; H.264 frames pushed through ``POST /ingest/bench``;
then ``--hls-concurrency`` clients GET the playlist and the newest segment for
``--hls-seconds``: requests/s and latency percentiles.

Bounded: every phase has a fixed duration; all child processes are stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing as mp
import os
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from services.common import frames, subjects
from services.common.bus import Bus
from services.common.frames import Frame
from services.common.settings import load_settings
from tests.support.nats import NatsServer, free_port
from tests.support.procs import ServiceProcess, service_env, wait_services

STREAM = "bench"
MP = mp.get_context("spawn")  # the parent runs an event loop; forked children would inherit it


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


# --- viewer worker process --------------------------------------------------------------


class ViewerProtocol(asyncio.Protocol):
    """A minimal RFC 6455 client for measuring: it parses server frames (unmasked) in place,
    reads the publish timestamp out of each binary message and skips the rest without copying,
    answers pings, and notes a close frame.  (The ``websockets`` library costs far more CPU per
    50 kB message than the gateway does to send it, which would measure the clients.)  A stalled
    viewer stops reading right after the handshake."""

    def __init__(self, path: str, port: int, stalled: bool, delays: list[float]) -> None:
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.stalled = stalled
        self.delays = delays
        self.buf = bytearray()
        self.handshake = False
        self.skip = 0
        self.closed = asyncio.get_running_loop().create_future()
        self.opened = asyncio.get_running_loop().create_future()
        self.frames = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self.skip:
            if len(data) <= self.skip:
                self.skip -= len(data)
                return
            data = data[self.skip :]
            self.skip = 0
        self.buf += data
        if not self.handshake:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.buf.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(RuntimeError(bytes(self.buf[:80]).decode(errors="replace")))
                self.transport.close()
                return
            self.handshake = True
            del self.buf[: end + 4]
            self.opened.set_result(None)
            if self.stalled:
                self.transport.pause_reading()  # type: ignore[attr-defined]
                return
        self._frames()

    def _frames(self) -> None:
        buf = self.buf
        while len(buf) >= 2:
            op, n = buf[0] & 0x0F, buf[1] & 0x7F
            head = 2
            if n == 126:
                if len(buf) < 4:
                    return
                n, head = struct.unpack_from(">H", buf, 2)[0], 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n, head = struct.unpack_from(">Q", buf, 2)[0], 10
            if op == 2:
                if len(buf) < head + 28:
                    return
                sent_ns = struct.unpack_from(">Q", buf, head + 16 + 4)[0]
                self.delays.append((time.time_ns() - sent_ns) / 1e6)
                self.frames += 1
            elif len(buf) < head + n:
                return
            elif op == 9:  # ping -> masked pong with the same payload
                payload = bytes(buf[head : head + n])
                self.transport.write(bytes([0x8A, 0x80 | n]) + b"\x00\x00\x00\x00" + payload)  # type: ignore
            elif op == 8 and not self.closed.done():
                self.closed.set_result(struct.unpack_from(">H", buf, head)[0] if n >= 2 else 1005)
            have = len(buf) - head
            if have >= n:
                del buf[: head + n]
            else:
                self.skip = n - have
                buf.clear()
                return

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(1006)
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed before the handshake"))


async def _viewers(port: int, fast: int, stalled: int, seconds: float, out: Any) -> None:
    loop = asyncio.get_running_loop()
    delays: list[float] = []
    protos: list[ViewerProtocol] = []
    errors = 0
    for i in range(fast + stalled):
        try:
            _, proto = await loop.create_connection(
                lambda i=i: ViewerProtocol(f"/ws/{STREAM}", port, i >= fast, delays), "127.0.0.1", port
            )
            await asyncio.wait_for(proto.opened, 30)
            protos.append(proto)
        except Exception:
            errors += 1
    out.send({"ready": len(protos)})
    await asyncio.sleep(seconds)
    received = sum(p.frames for p in protos if not p.stalled)
    for p in protos:
        p.transport.close()
    out.send({"delays": delays, "received": received, "errors": errors})


def _viewer_proc(port: int, fast: int, stalled: int, seconds: float, out: Any) -> None:
    asyncio.run(_viewers(port, fast, stalled, seconds, out))


# --- fan-out phase ------------------------------------------------------------------------


async def _publish(bus: Bus, fps: int, size: int, seconds: float) -> int:
    noise = os.urandom(size)
    period = 1.0 / fps
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < seconds:
        pts = n * (90_000 // fps)
        data = b"\x00\x00\x00\x01" + struct.pack(">Q", time.time_ns()) + noise
        frame = Frame("h264", pts, pts, n % fps == 0, data, seq=n)
        for headers, body in frames.encode(frame, bus.max_payload):
            await bus.publish(subjects.media_frames(STREAM), body, headers=headers)
        n += 1
        await asyncio.sleep(max(0.0, t0 + n * period - time.monotonic()))
    return n


async def _closed_too_slow(http: str) -> int:
    async with httpx.AsyncClient(timeout=5) as c:
        text = (await c.get(f"{http}/metrics")).text
    for line in text.splitlines():
        if line.startswith('camhub_gateway_viewers_closed_total{reason="too slow"}'):
            return int(float(line.split()[-1]))
    return 0


async def _viewer_count(http: str) -> int:
    async with httpx.AsyncClient(timeout=5) as c:
        return int((await c.get(f"{http}/health")).json()["total_connections"])


async def fanout(args: argparse.Namespace, nats: NatsServer, root: Path) -> list[dict[str, Any]]:
    port = free_port()
    env = service_env(nats.url, root / "data", CAMHUB_HTTP_PORT=str(port), CAMHUB_LOG_LEVEL="WARNING")
    gw = ServiceProcess("gateway", env, root).start()
    http = f"http://127.0.0.1:{port}"
    settings = load_settings(nats_url=nats.url, data_dir=root / "bench")
    bus = await Bus.connect(settings, "camhub-bench")
    rows = []
    try:
        await wait_services(nats.url, {"gateway"}, timeout=30)
        proc = psutil.Process(gw.proc.pid)  # type: ignore[union-attr]
        for total in args.viewers:
            slow = round(total * args.slow)
            fast = total - slow
            pipes, workers = [], []
            for i in range(args.clients):
                f = fast // args.clients + (1 if i < fast % args.clients else 0)
                s = slow // args.clients + (1 if i < slow % args.clients else 0)
                parent, child = MP.Pipe(duplex=False)
                w = MP.Process(target=_viewer_proc, args=(port, f, s, args.seconds + 3, child))
                w.start()
                pipes.append(parent)
                workers.append(w)
            for p in pipes:
                await asyncio.to_thread(p.recv)  # every viewer of that worker is connected
            connected = await _viewer_count(http)
            closed_before = await _closed_too_slow(http)
            proc.cpu_percent(None)
            sent = await _publish(bus, args.fps, args.kbytes * 1024, args.seconds)
            cpu = proc.cpu_percent(None)
            closed = await _closed_too_slow(http) - closed_before
            results = [await asyncio.to_thread(p.recv) for p in pipes]
            for w in workers:
                w.join(10)
            delays = [d for r in results for d in r["delays"]]
            got = sum(r["received"] for r in results)
            rows.append(
                {
                    "viewers": total,
                    "connected": connected,
                    "fast": fast,
                    "slow": slow,
                    "sent": sent,
                    "fast_got_pct": 100.0 * got / max(1, sent * fast),
                    "p50_ms": pct(delays, 0.5),
                    "p99_ms": pct(delays, 0.99),
                    "max_ms": max(delays, default=float("nan")),
                    "closed_too_slow": closed,
                    "errors": sum(r["errors"] for r in results),
                    "gateway_cpu_pct": cpu,
                }
            )
            while await _viewer_count(http) > 0:
                await asyncio.sleep(0.2)
    finally:
        await bus.close()
        gw.stop()
    return rows


# --- HLS phase ----------------------------------------------------------------------------


async def hls(args: argparse.Namespace, nats: NatsServer, root: Path) -> list[dict[str, Any]]:
    from tests.support.media import encode_h264

    port = free_port()
    env = service_env(
        nats.url, root / "data", CAMHUB_HTTP_PORT=str(port), CAMHUB_LOG_LEVEL="WARNING", CAMHUB_HLS_SEGMENT_SECONDS="1"
    )
    procs = [ServiceProcess(n, env, root).start() for n in ("ingest", "hls", "gateway")]
    http = f"http://127.0.0.1:{port}"
    clip = encode_h264(60, gop=30, width=640, height=360)
    stop = asyncio.Event()

    async def pusher(api: httpx.AsyncClient) -> None:
        n = 0
        t0 = time.monotonic()
        while not stop.is_set():
            f = clip[n % len(clip)]
            pts = n * 3000
            await api.post(
                f"/ingest/{STREAM}", content=f.data, headers={"content-type": "video/h264", "camhub-pts": str(pts)}
            )
            n += 1
            await asyncio.sleep(max(0.0, t0 + n / 30 - time.monotonic()))

    rows = []
    try:
        await wait_services(nats.url, {"ingest", "hls", "gateway"}, timeout=30)
        async with httpx.AsyncClient(
            base_url=http, timeout=10, limits=httpx.Limits(max_connections=args.hls_concurrency + 4)
        ) as api:
            push = asyncio.create_task(pusher(api))
            deadline = time.monotonic() + 30
            segment = ""
            while time.monotonic() < deadline:
                r = await api.get(f"/hls/{STREAM}/stream.m3u8")
                uris = (
                    [ln for ln in r.text.splitlines() if ln and not ln.startswith("#")] if r.status_code == 200 else []
                )
                if len(uris) >= 2:
                    segment = uris[-1]
                    break
                await asyncio.sleep(0.25)
            if not segment:
                raise RuntimeError("no HLS playlist appeared")
            for label, path in (("playlist", "stream.m3u8"), ("segment", segment)):
                lat: list[float] = []
                codes: dict[int, int] = {}
                end = time.monotonic() + args.hls_seconds

                async def client(
                    path: str = path, lat: list[float] = lat, codes: dict[int, int] = codes, end: float = end
                ) -> None:
                    while time.monotonic() < end:
                        t = time.perf_counter()
                        r = await api.get(f"/hls/{STREAM}/{path}")
                        lat.append((time.perf_counter() - t) * 1000)
                        codes[r.status_code] = codes.get(r.status_code, 0) + 1

                t0 = time.monotonic()
                await asyncio.gather(*(client() for _ in range(args.hls_concurrency)))
                elapsed = time.monotonic() - t0
                rows.append(
                    {
                        "what": label,
                        "requests": len(lat),
                        "rps": len(lat) / elapsed,
                        "p50_ms": pct(lat, 0.5),
                        "p99_ms": pct(lat, 0.99),
                        "statuses": codes,
                    }
                )
            stop.set()
            await asyncio.wait_for(push, 5)
    finally:
        stop.set()
        for p in procs:
            p.stop()
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no rows)"
    keys = list(rows[0])

    def fmt(v: Any) -> str:
        return f"{v:.1f}" if isinstance(v, float) else json.dumps(v) if isinstance(v, dict) else str(v)

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="camhub-bench-") as tmp:
        root = Path(tmp)
        nats = NatsServer(root / "nats")
        try:
            await nats.astart()
            print(
                f"WebSocket fan-out: {args.fps} fps x {args.kbytes} kB, {args.slow:.0%} slow viewers, "
                f"{args.seconds:g} s per row, {args.clients} viewer processes, {os.cpu_count()} CPUs"
            )
            print(table(await fanout(args, nats, root)), flush=True)
            if not args.skip_hls:
                print(
                    f"\nHLS through the gateway: {args.hls_concurrency} concurrent clients, {args.hls_seconds:g} s each"
                )
                print(table(await hls(args, nats, root)), flush=True)
        finally:
            nats.stop()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--viewers", type=lambda s: [int(x) for x in s.split(",")], default=[50, 200, 500])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--kbytes", type=int, default=50)
    p.add_argument("--slow", type=float, default=0.1)
    p.add_argument("--clients", type=int, default=2)
    p.add_argument("--hls-seconds", type=float, default=5.0)
    p.add_argument("--hls-concurrency", type=int, default=16)
    p.add_argument("--skip-hls", action="store_true")
    a = p.parse_args(argv)
    a.seconds = min(a.seconds, 60.0)
    a.hls_seconds = min(a.hls_seconds, 30.0)
    return a


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parse(sys.argv[1:])))
