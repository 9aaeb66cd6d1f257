"""Health probes for camhub containers (compose healthchecks, Kubernetes exec probes).

    python /app/deploy/probe.py ready SERVICE   0 when this instance answers $SRV.PING.camhub-SERVICE
    python /app/deploy/probe.py live SERVICE    1 only when NATS answers and this instance does not
    python /app/deploy/probe.py http URL        0 when GET URL answers 2xx (the gateway's /readyz)

ingest, hls, control and egress serve no HTTP; every camhub process registers the NATS micro
service ``camhub-<service>`` (docs/bus.md "Services"), whose ``$SRV.PING`` replies carry
``metadata.instance``.  The probe connects with the service's own settings (``CAMHUB_NATS_URL``,
``CAMHUB_NATS_USER``, ``CAMHUB_NATS_PASSWORD``: the service users of deploy/nats/nats.conf may
publish ``$SRV.PING.camhub-<own service>``), pings, and looks for a reply from *this* container:

* ``CAMHUB_INSTANCE`` set (Kubernetes: the pod name): the reply whose instance equals it;
* otherwise (compose): an instance named ``<host name>-<pid>``, the default of
  ``Settings.instance_id()``, with this container's host name.

``ready`` fails when NATS cannot be reached (the service cannot work either).  ``live`` passes when
NATS cannot be reached: restarting a service does not bring NATS back, and the service reconnects
by itself; it fails only when NATS is up and the process does not answer (a wedged event loop, a
lost registration).  Exit codes: 0 healthy, 1 unhealthy, 2 usage error; one line on stdout says why.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import urllib.error
import urllib.request
from typing import Any

import nats
import nats.errors

from services.cli import SERVICE_NAMES
from services.common.ids import sanitize_token
from services.common.settings import Settings, SettingsError, load_settings

HEALTHY, UNHEALTHY, USAGE = 0, 1, 2


class NatsUnreachable(Exception):
    """No NATS server accepted the connection (refused, timed out, bad credentials)."""


def instance_matcher(settings: Settings) -> tuple[re.Pattern[str], str]:
    """The instance names that count as "this container" (see the module docstring), and how
    to say them in a message."""
    if settings.instance:
        name = settings.instance_id()
        return re.compile(re.escape(name)), name
    host = sanitize_token(os.uname().nodename)
    return re.compile(re.escape(host) + r"-\d+"), f"{host}-<pid>"


async def ping_instances(settings: Settings, service: str, timeout: float) -> list[dict[str, Any]]:
    """``$SRV.PING.camhub-<service>`` replies (JSON maps) collected for up to ``timeout`` s.

    Returns as soon as a reply from this container arrives.

    Raises:
        NatsUnreachable: no server accepted the connection within ``timeout`` s.
    """
    mine, _ = instance_matcher(settings)
    opts: dict[str, Any] = {
        "name": f"camhub-probe-{service}",
        "connect_timeout": max(0.5, timeout / 2),
        # Each server is tried at most twice, 0.1 s apart, then NoServersError.
        "max_reconnect_attempts": 1,
        "reconnect_time_wait": 0.1,
    }
    if settings.nats_user:
        opts["user"] = settings.nats_user
        opts["password"] = settings.nats_password

    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    try:
        nc = await asyncio.wait_for(nats.connect(settings.nats_servers, error_cb=on_error, **opts), timeout)
    except Exception as exc:
        # A refused login is the useful reason; the retry after it only sees the server hang up.
        auth = [e for e in errors if isinstance(e, nats.errors.AuthorizationError) or "authorization" in str(e).lower()]
        cause = auth[0] if auth else (errors[-1] if errors else exc)
        raise NatsUnreachable(f"{type(cause).__name__}: {cause}".rstrip(": ")) from None
    replies: list[dict[str, Any]] = []
    found = asyncio.Event()
    try:
        inbox = nc.new_inbox()

        async def on_reply(msg: Any) -> None:
            try:
                reply = json.loads(msg.data)
            except ValueError:
                return
            replies.append(reply)
            if mine.fullmatch(str(reply.get("metadata", {}).get("instance", ""))):
                found.set()

        await nc.subscribe(inbox, cb=on_reply)
        await nc.publish(f"$SRV.PING.camhub-{service}", b"", reply=inbox)
        await nc.flush(timeout=max(1, int(timeout)))
        try:
            await asyncio.wait_for(found.wait(), timeout)
        except TimeoutError:
            pass
    finally:
        await nc.close()
    return replies


async def check_service(mode: str, service: str, timeout: float) -> tuple[int, str]:
    """Run the ``ready`` or ``live`` check; returns (exit code, reason)."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        return UNHEALTHY, f"bad settings: {exc}"
    mine, shown = instance_matcher(settings)
    try:
        replies = await ping_instances(settings, service, timeout)
    except NatsUnreachable as exc:
        if mode == "live":
            return HEALTHY, f"NATS unreachable ({exc}); not judging liveness"
        return UNHEALTHY, f"NATS unreachable: {exc}"
    names = [str(r.get("metadata", {}).get("instance", "")) for r in replies]
    if any(mine.fullmatch(n) for n in names):
        return HEALTHY, f"camhub-{service} instance {shown} answers"
    others = ", ".join(sorted(names)) or "none"
    return UNHEALTHY, f"camhub-{service} instance {shown} does not answer $SRV.PING (answering: {others})"


def check_http(url: str, timeout: float) -> tuple[int, str]:
    """GET ``url``; healthy on 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return HEALTHY, f"{url}: HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return UNHEALTHY, f"{url}: HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return UNHEALTHY, f"{url}: {exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="probe.py", description="camhub container health probe")
    parser.add_argument("mode", choices=("ready", "live", "http"))
    parser.add_argument("target", help="a service name (ready, live) or a URL (http)")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds (default 2)")
    args = parser.parse_args(argv)
    if args.mode == "http":
        code, reason = check_http(args.target, args.timeout)
    elif args.target not in SERVICE_NAMES:
        print(f"unknown service {args.target!r}: one of {', '.join(SERVICE_NAMES)}")
        return USAGE
    else:
        code, reason = asyncio.run(check_service(args.mode, args.target, args.timeout))
    print(("healthy: " if code == HEALTHY else "unhealthy: ") + reason)
    return code


if __name__ == "__main__":
    sys.exit(main())
