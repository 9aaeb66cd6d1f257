"""``camhub sim printer``: a simulated Bambu Lab printer (or many) for tests, demos and users
without a printer.

It is a TLS MQTT broker (Mosquitto, :mod:`services.sim.printer_broker`) that behaves like a
printer (:mod:`services.sim.printer_model`): user ``bblp`` / the access code, reports on
``device/<serial>/report``, requests on ``device/<serial>/request``, a looping print job that
heats and progresses, acknowledgements echoing ``sequence_id`` and ``result``.

Options (defaults work with no flag at all, as ``camhub up --demo`` runs it)::

    --port 18883            MQTT over TLS port (a real printer uses 8883)
    --serial 01S00C000000001   (with --count N: <serial>001 ... <serial>NNN)
    --access-code 12345678
    --mode x1|p1            x1: full pushes, RTSPS camera; p1: msg:1 deltas, port-6000 camera
    --silent                periodic pushes off until a client sends pushing.start
    --require-signing       Developer Mode off: print.* commands fail "mqtt message verify failed"
    --no-ack                never answer print/system commands
    --max-clients 4         the printer's MQTT client limit (0: unlimited)
    --camera-port 0         x1: serve RTSPS (GStreamer, bblp/<access code>) on this port;
                            p1: the port-6000-style JPEG camera (services/sim/bambu_camera.py);
                            0: no camera (x1 reports rtsp_url "disable")
    --count 1               simulate N printers on one broker
    --job-seconds 300       length of the simulated print at standard speed
    --register ID [--name N]  write the printer(s) into the registry (CAMHUB_NATS_URL) with the
                            simulator's CA inline as tls_ca, so control verifies TLS with
                            SNI = serial

It prints ``READY mqtts://127.0.0.1:<port> serials=...`` once it listens (never the access
code), and stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import logging
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from services.common.ids import InvalidId, validate_id
from services.common.logs import setup_logging
from services.sim.printer_broker import BrokerError, MosquittoBroker, pdeathsig
from services.sim.printer_fleet import PrinterFleet
from services.sim.printer_model import PrinterModel, PrinterOptions
from services.sim.printer_tls import SimCerts, generate

log = logging.getLogger("camhub.sim.printer")

DEFAULT_PORT = 18883
DEFAULT_ACCESS_CODE = "12345678"
DEFAULT_SERIAL = "01S00C000000001"
RTSP_SERVER = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="camhub sim printer", description="Simulated Bambu Lab printer (MQTT over TLS)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback by default)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--serial", default=DEFAULT_SERIAL)
    p.add_argument("--access-code", default=DEFAULT_ACCESS_CODE)
    p.add_argument("--mode", choices=("x1", "p1"), default="x1")
    p.add_argument("--silent", action="store_true")
    p.add_argument("--require-signing", action="store_true")
    p.add_argument("--no-ack", action="store_true")
    p.add_argument("--max-clients", type=int, default=4)
    p.add_argument("--camera-port", type=int, default=0)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--job-seconds", type=float, default=300.0)
    p.add_argument("--heat-seconds", type=float, default=3.0, help="heating time constant (demo: 1)")
    p.add_argument("--push-interval", type=float, default=1.0, help="seconds between periodic pushes")
    p.add_argument("--register", default="", metavar="ID", help="registry id of the (first) printer")
    p.add_argument("--name", default="", help="registry name (default: 'Simulated printer')")
    args = p.parse_args(argv)
    if not 1 <= args.count <= 1000:
        p.error("--count must be 1..1000")
    if args.register:
        try:
            validate_id(args.register, "--register id")
        except InvalidId as exc:
            p.error(str(exc))
    return args


def serials_for(args: argparse.Namespace) -> list[str]:
    if args.count == 1:
        return [args.serial]
    return [f"{args.serial}{i:03d}" for i in range(1, args.count + 1)]


async def start_rtsp_camera(certs: SimCerts, port: int, access_code: str) -> tuple[asyncio.subprocess.Process, str]:
    """Run the GStreamer RTSPS server as the printer's camera (``/streaming/live/1``, digest
    auth ``bblp``/access code, the simulator's certificate); returns ``(process, url)``.

    Raises:
        RuntimeError: it did not print READY within 20 s.
    """
    cmd = [
        SYSTEM_PYTHON,
        str(RTSP_SERVER),
        "--port",
        str(port),
        "--mount",
        "/streaming/live/1",
        "--user",
        "bblp",
        "--password",
        access_code,
        "--tls-cert",
        str(certs.cert_file),
        "--tls-key",
        str(certs.key_file),
        "--width",
        "640",
        "--height",
        "360",
        "--fps",
        "15",
        "--bitrate",
        "500",
        "--keyint",
        "30",
    ]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, preexec_fn=pdeathsig
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 20.0)
    except TimeoutError:
        line = b""
    if not line.startswith(b"READY "):
        await stop_process(proc)
        raise RuntimeError("the RTSPS camera server did not start")
    return proc, line.split()[1].decode()


async def start_jpeg_camera(certs: SimCerts, host: str, port: int, access_code: str) -> Any:
    """Run the port-6000 JPEG camera of P1/A1 printers (:mod:`services.sim.bambu_camera`, TLS
    with the simulator's certificate, auth ``bblp``/access code) in this process; None when that
    module is missing (the camera is then off)."""
    if importlib.util.find_spec("services.sim.bambu_camera") is None:
        log.warning("camera off: the port-6000 JPEG camera simulator (services/sim/bambu_camera.py) is missing")
        return None
    from services.sim.bambu_camera import CameraServer

    server = CameraServer(access_code, host=host, port=port, cert=certs.cert_file, key=certs.key_file)
    await server.start()
    return server


async def stop_process(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL after 3 s."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 3.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def register(args: argparse.Namespace, serials: list[str], certs: SimCerts) -> None:
    """Write the simulated printer(s) into the registry on ``CAMHUB_NATS_URL``."""
    from services.common.bus import Bus
    from services.common.registry import Device, Registry
    from services.common.settings import load_settings

    bus = await Bus.connect(load_settings(), "camhub-sim-printer")
    try:
        registry = Registry(bus)
        for i, serial in enumerate(serials, start=1):
            dev_id = args.register if len(serials) == 1 else f"{args.register}-{i}"[:63]
            name = args.name or "Simulated printer"
            await registry.put(
                Device(
                    id=dev_id,
                    kind="bambu",
                    name=name if len(serials) == 1 else f"{name} {i}",
                    host="127.0.0.1",
                    serial=serial,
                    access_code=args.access_code,
                    mqtt_port=args.port,
                    camera_port=args.camera_port or 6000,
                    tls_ca=certs.ca_pem,
                    model="X1C" if args.mode == "x1" else "P1S",
                )
            )
            log.info("registered simulated printer %s (serial %s)", dev_id, serial)
    finally:
        await bus.close()


async def run(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    serials = serials_for(args)
    tmp = Path(tempfile.mkdtemp(prefix="camhub-sim-printer-"))
    certs = generate(tmp, serials)
    broker = MosquittoBroker(certs, args.port, args.access_code, args.max_clients, host=args.host)
    camera: asyncio.subprocess.Process | None = None
    jpeg_camera: Any = None
    fleet: PrinterFleet | None = None
    try:
        try:
            await broker.start()
        except BrokerError as exc:
            print(f"camhub sim printer: {exc}", file=sys.stderr, flush=True)
            return 2
        rtsp_url = "disable"
        if args.camera_port and args.mode == "x1":
            try:
                camera, rtsp_url = await start_rtsp_camera(certs, args.camera_port, args.access_code)
            except (RuntimeError, OSError) as exc:
                log.warning("camera off: %s", exc)
        elif args.camera_port:
            jpeg_camera = await start_jpeg_camera(certs, args.host, args.camera_port, args.access_code)
        now = time.monotonic()
        models = [
            PrinterModel(
                PrinterOptions(
                    serial=s,
                    mode=args.mode,
                    require_signing=args.require_signing,
                    silent=args.silent,
                    no_ack=args.no_ack,
                    rtsp_url=rtsp_url,
                    job_seconds=args.job_seconds,
                    heat_tau=args.heat_seconds,
                    seed=i,
                ),
                now,
            )
            for i, s in enumerate(serials)
        ]
        fleet = PrinterFleet(str(broker.socket_path), models, args.push_interval)
        await fleet.start()
        if args.register:
            await register(args, serials, certs)
        shown = ",".join(serials[:3]) + ("..." if len(serials) > 3 else "")
        print(f"READY mqtts://{args.host}:{args.port} serials={shown}", flush=True)
        await stop.wait()
        return 0
    finally:
        if fleet is not None:
            await fleet.stop()
        await broker.stop()
        broker.cleanup()
        if camera is not None:
            await stop_process(camera)
        if jpeg_camera is not None:
            await jpeg_camera.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``camhub sim printer`` / ``python -m services.sim printer``."""
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    setup_logging("sim-printer")
    try:
        code = asyncio.run(run(args))
    except KeyboardInterrupt:
        code = 0
    sys.exit(code)
