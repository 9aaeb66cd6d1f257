"""Control service at scale: N simulated printers (default 200) on ONE control instance.

Measures (issue #5):

* report -> status: time from publishing an MQTT report (a ``msg: 1`` delta with a unique
  nozzle temperature, as the printer) to the normalized status carrying it arriving on
  ``camhub.device.<id>.status``.  Every printer reports once per second (a real P1 pushes every
  1-2 s), spread evenly; goal p99 <= 50 ms.
* command round trip: ``camhub.device.<id>.cmd`` ``{type: light}`` -> the printer's ack ->
  the reply, with ``--concurrency`` requests in flight.
* connect: time from registering N printers to all of them ``online``.

Peers are real: nats-server (JetStream), Mosquitto with TLS (one broker for all printers, each
its own serial), the control service as a child process (``python -m services.control``), the
simulator's printer model answering ``pushall``/``get_version``/commands.  Send and receive
times are taken in this process (one monotonic clock).

    .venv/bin/python -m benchmarks.bench_control [--printers 200] [--seconds 10] [--commands 400]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from services.common import codec, subjects
from services.common.bus import Bus
from services.common.natsserver import start_nats_server, wait_healthy, write_config
from services.common.registry import Device, Registry
from services.common.settings import load_settings
from services.sim.printer_broker import MosquittoBroker
from services.sim.printer_fleet import PrinterFleet
from services.sim.printer_model import PrinterModel, PrinterOptions
from services.sim.printer_tls import generate

ROOT = Path(__file__).resolve().parent.parent
ACCESS_CODE = "12345678"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def row(name: str, values_ms: list[float], goal: str) -> str:
    if not values_ms:
        return f"| {name} | 0 | - | - | - | - | {goal} |"
    return (
        f"| {name} | {len(values_ms)} | {statistics.median(values_ms):.1f} | {pct(values_ms, 90):.1f} | "
        f"{pct(values_ms, 99):.1f} | {max(values_ms):.1f} | {goal} |"
    )


def scrape(port: int) -> list[str]:
    """Mean times from the control process's own histograms (where the time goes)."""
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith("camhub_control_report") and ("_sum " in line or "_count " in line):
            key, value = line.split()
            values[key] = float(value)
    out = []
    for name, what in (
        ("camhub_control_report_queue_seconds", "wait from paho's thread to the event loop"),
        ("camhub_control_report_seconds", "decode + merge + normalize one report"),
    ):
        count = values.get(f"{name}_count", 0.0)
        if count:
            out.append(f"control: {what}: mean {values[f'{name}_sum'] / count * 1000:.2f} ms over {count:.0f}")
    return out


async def run(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="camhub-bench-control-"))
    nats_port, mon_port = free_port(), free_port()
    nats_proc = start_nats_server(write_config(tmp, nats_port, mon_port), tmp / "nats.log")
    broker: MosquittoBroker | None = None
    fleet: PrinterFleet | None = None
    ctl: subprocess.Popen[bytes] | None = None
    logs: list[Any] = []
    try:
        await wait_healthy(mon_port, timeout=15)
        url = f"nats://127.0.0.1:{nats_port}"
        settings = load_settings(nats_url=url, data_dir=tmp / "data", instance="bench")
        bus = await Bus.connect(settings, "camhub-bench")
        serials = [f"BENCH{i:010d}" for i in range(args.printers)]
        certs = generate(tmp / "certs", serials)
        broker = MosquittoBroker(certs, free_port(), ACCESS_CODE, max_clients=0)
        await broker.start()
        now = time.monotonic()
        models = [PrinterModel(PrinterOptions(serial=s, mode="p1", seed=i), now) for i, s in enumerate(serials)]
        fleet = PrinterFleet(str(broker.socket_path), models)
        await fleet.start(ticking=False)

        metrics_port = free_port()
        env = dict(
            os.environ,
            CAMHUB_NATS_URL=url,
            CAMHUB_DATA_DIR=str(tmp / "data"),
            CAMHUB_LOG_LEVEL="WARNING",
            CAMHUB_METRICS_PORT=str(metrics_port),
        )
        log = open(tmp / "control.log", "wb")  # noqa: SIM115 - closed in finally
        logs.append(log)
        ctl = subprocess.Popen([sys.executable, "-m", "services.control"], cwd=ROOT, env=env, stdout=log, stderr=log)

        ids = {s: f"bench-{i:04d}" for i, s in enumerate(serials)}
        serial_of = {v: k for k, v in ids.items()}
        online: set[str] = set()
        sent: dict[tuple[str, float], float] = {}
        report_ms: list[float] = []
        all_online = asyncio.Event()

        async def on_status(msg: Any) -> None:
            got = time.monotonic()
            status = codec.unpack_map(msg.data)
            dev = status.get("id", "")
            if status.get("state") == "online":
                online.add(dev)
                if len(online) == len(serials):
                    all_online.set()
            t0 = sent.pop((serial_of.get(dev, ""), float(status.get("nozzleC") or 0.0)), None)
            if t0 is not None:
                report_ms.append((got - t0) * 1000)

        await bus.subscribe(subjects.DEVICE_STATUS_ALL, on_status)
        registry = Registry(bus)
        t_reg = time.monotonic()
        for serial, dev_id in ids.items():
            await registry.put(
                Device(
                    id=dev_id,
                    kind="bambu",
                    host="127.0.0.1",
                    serial=serial,
                    access_code=ACCESS_CODE,
                    mqtt_port=broker.port,
                    camera_port=6000,
                    tls_ca=certs.ca_pem,
                )
            )
        await asyncio.wait_for(all_online.wait(), 120)
        connect_s = time.monotonic() - t_reg
        await asyncio.sleep(2.0)  # let the pushall answers settle

        # report -> status
        interval = 1.0 / len(serials)
        t_start = time.monotonic()
        k = 0
        while time.monotonic() - t_start < args.seconds:
            for i, serial in enumerate(serials):
                value = round(150.0 + (k % 500) * 0.1, 1)
                due = t_start + (k * len(serials) + i) * interval
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent[(serial, value)] = time.monotonic()
                fleet.publish(serial, {"print": {"nozzle_temper": value, "command": "push_status", "msg": 1}})
            k += 1
        await asyncio.sleep(1.0)
        published = k * len(serials)

        # command round trips
        cmd_ms: list[float] = []
        errors = 0
        sem = asyncio.Semaphore(args.concurrency)

        async def one(n: int) -> None:
            nonlocal errors
            dev_id = ids[serials[n % len(serials)]]
            async with sem:
                t0 = time.monotonic()
                reply = await bus.request_obj(
                    subjects.device_cmd(dev_id), {"type": "light", "on": n % 2 == 0}, timeout=10
                )
                if reply.get("ok"):
                    cmd_ms.append((time.monotonic() - t0) * 1000)
                else:
                    errors += 1

        await asyncio.gather(*(one(n) for n in range(args.commands)), return_exceptions=False)

        print(f"\ncamhub control benchmark: {len(serials)} printers, one control instance, {os.cpu_count()} CPUs")
        print(f"connect: all {len(serials)} printers online {connect_s:.1f} s after registering them\n")
        print("| measure | count | p50 ms | p90 ms | p99 ms | max ms | goal |")
        print("|---|---|---|---|---|---|---|")
        print(row("MQTT report -> status on the bus", report_ms, "p99 <= 50 ms"))
        print(row(f"command round trip ({args.concurrency} in flight)", cmd_ms, "-"))
        print(
            f"\nreports published {published}, statuses matched {len(report_ms)}, lost {len(sent)}; "
            f"command errors {errors}"
        )
        for line in scrape(metrics_port):
            print(line)
        await bus.close()
        return 0
    finally:
        if ctl is not None:
            ctl.terminate()
            try:
                ctl.wait(15)
            except subprocess.TimeoutExpired:
                ctl.kill()
                ctl.wait()
        if fleet is not None:
            await fleet.stop()
        if broker is not None:
            await broker.stop()
            broker.cleanup()
        for f in logs:
            f.close()
        nats_proc.terminate()
        nats_proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--printers", type=int, default=200)
    p.add_argument("--seconds", type=float, default=10.0, help="length of the report phase")
    p.add_argument("--commands", type=int, default=400)
    p.add_argument("--concurrency", type=int, default=20)
    args = p.parse_args()
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
