"""The ``camhub`` command.

camhub up [--demo] [--nats-url URL]   the whole stack (embedded NATS unless a URL is given)
camhub ingest|hls|control|egress|gateway   one service in the foreground
camhub tap SUBJECT [--count N]        print bus traffic: headers, msgpack decoded
camhub ping                           list running services ($SRV.PING)
camhub sim printer|camera ...         the printer simulator / synthetic camera
camhub version
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
from typing import Any

from services import __version__
from services.common.settings import SettingsError, load_settings

SERVICE_NAMES = ("ingest", "hls", "control", "egress", "gateway")


def _printable(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return f"<{len(obj)} bytes>"
    if isinstance(obj, dict):
        return {str(k): _printable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_printable(v) for v in obj]
    return obj


async def _tap(subject: str, count: int) -> int:
    from services.common import codec
    from services.common.bus import Bus

    settings = load_settings()
    bus = await Bus.connect(settings, "camhub-tap", connect_timeout=5)
    seen = 0
    done = asyncio.Event()

    async def on_msg(msg: Any) -> None:
        nonlocal seen
        headers = dict(msg.headers or {})
        body: Any
        if headers.get("Content-Type") == codec.CONTENT_TYPE:
            try:
                body = _printable(codec.unpack(msg.data))
            except codec.PayloadError as exc:
                body = f"<bad msgpack: {exc}>"
        else:
            body = f"<{len(msg.data)} bytes>"
        print(json.dumps({"subject": msg.subject, "headers": headers, "body": body}, default=str), flush=True)
        seen += 1
        if count and seen >= count:
            done.set()

    await bus.subscribe(subject, on_msg)
    try:
        await done.wait()
    finally:
        await bus.close()
    return 0


async def _ping() -> int:

    from services.common.bus import Bus

    settings = load_settings()
    bus = await Bus.connect(settings, "camhub-ping", connect_timeout=5)
    inbox = bus.nc.new_inbox()
    replies: list[dict[str, Any]] = []

    async def on_msg(msg: Any) -> None:
        replies.append(json.loads(msg.data))

    await bus.nc.subscribe(inbox, cb=on_msg)
    await bus.nc.publish("$SRV.PING", b"", reply=inbox)
    await asyncio.sleep(0.5)
    for r in sorted(replies, key=lambda r: r.get("name", "")):
        if str(r.get("name", "")).startswith("camhub-"):
            print(f"{r['name']:<16} {r.get('version', '?'):<8} {r.get('id', '')}  {r.get('metadata', {})}")
    await bus.close()
    return 0 if replies else 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="camhub", description="camhub: live camera video and device hub")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_up = sub.add_parser("up", help="run the whole stack")
    p_up.add_argument("--demo", action="store_true", help="add a synthetic camera and a simulated printer")
    p_up.add_argument("--nats-url", default=None, help="join this NATS instead of starting one")
    for name in SERVICE_NAMES:
        sub.add_parser(name, help=f"run the {name} service")
    p_tap = sub.add_parser("tap", help="print messages on a subject")
    p_tap.add_argument("subject")
    p_tap.add_argument("--count", type=int, default=0, help="stop after N messages")
    sub.add_parser("ping", help="list running camhub services")
    sub.add_parser("version", help="print the version")
    p_sim = sub.add_parser("sim", help="simulators (printer, camera)")
    p_sim.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    if args.cmd == "version":
        print(f"camhub {__version__}")
        return
    if args.cmd == "sim":
        from services.sim.__main__ import main as sim_main

        sim_main(args.rest)
        return
    if args.cmd == "up" and args.nats_url:
        os.environ["CAMHUB_NATS_URL"] = args.nats_url
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"camhub {args.cmd}: {exc}", file=sys.stderr)
        sys.exit(2)
    if args.cmd == "up":
        from services.common.logs import setup_logging
        from services.up.supervisor import up

        setup_logging("up", settings.log_level)
        sys.exit(up(settings, demo=args.demo))
    if args.cmd in SERVICE_NAMES:
        mod = importlib.import_module(f"services.{args.cmd}.__main__")
        mod.main()
        return
    if args.cmd == "tap":
        try:
            sys.exit(asyncio.run(_tap(args.subject, args.count)))
        except KeyboardInterrupt:
            sys.exit(0)
    if args.cmd == "ping":
        sys.exit(asyncio.run(_ping()))


if __name__ == "__main__":
    main()
