"""deploy/nats/nats.conf against a real nats-server: users, subject permissions, JetStream, micro.

The expected permissions below are written from docs/bus.md (who publishes, who answers), not
read from nats.conf, so a wrong line in the config fails a test.  Every check is two-sided: the
server's own ``Permissions Violation`` error for the refused action *and* the observable effect
(an admin subscriber on ``>`` never sees a refused publish; a refused subscription receives
nothing), and the allowed actions must succeed.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import EndpointConfig

from services.common import subjects
from services.common.bus import Bus
from services.common.natsserver import MAX_PAYLOAD, nats_server_binary
from services.common.settings import load_settings
from tests.deploy.support import (
    CLUSTER_CONF,
    NATS_CONF,
    SERVICE_USERS,
    Conn,
    DeployNats,
    bin_env,
    conf_variables,
    connect,
    nats_server_env,
    password_var,
    random_passwords,
    request_retry,
)

ALL = set(SERVICE_USERS)

#: subject -> the service users allowed to publish on it (docs/bus.md "Subjects").
PUBLISH: dict[str, set[str]] = {
    "camhub.media.s1.frames": {"ingest"},
    "camhub.media.s1.info": {"ingest"},
    # keyframe-request from hls, egress and the gateway's WebSocket relay
    "camhub.media.s1.events": {"ingest", "hls", "egress", "gateway"},
    "camhub.device.p1.status": {"control"},
    "camhub.device.p1.cmd": {"gateway"},
    "camhub.camera.c1.cmd": {"gateway"},
    "camhub.ingest.whip": {"gateway"},
    "camhub.ingest.push.s1": {"gateway"},
    "camhub.ingest.forward.i1": {"ingest"},
    "camhub.egress.whep": {"gateway"},
    "camhub.hls.s1.get": {"gateway"},
    "camhub.webrtc.session.x1.delete": {"gateway"},
    "$SRV.PING": {"gateway"},
    # Replies go only to requests a user received (allow_responses), never to any inbox.
    "_INBOX.forged.reply": set(),
    "camhub.unlisted.subject": set(),
    **{f"camhub.svc.{u}.i1.heartbeat": {u} for u in SERVICE_USERS},
    **{f"$SRV.PING.camhub-{u}": {u, "gateway"} for u in SERVICE_USERS},
}

#: subscription -> the service users allowed to make it.
SUBSCRIBE: dict[str, set[str]] = {
    "camhub.device.*.cmd": {"control"},
    "camhub.media.*.frames": {"hls", "egress", "gateway"},
    "camhub.media.*.info": {"hls", "egress", "gateway"},
    "camhub.media.*.events": {"ingest", "hls", "egress", "gateway"},
    "camhub.media.s1.*": {"hls", "egress", "gateway"},
    "camhub.ingest.whip": {"ingest"},
    "camhub.ingest.push.*": {"ingest"},
    "camhub.ingest.forward.*": {"ingest"},
    "camhub.egress.whep": {"egress"},
    "camhub.hls.*.get": {"hls"},
    "camhub.camera.*.cmd": {"ingest"},
    "camhub.webrtc.session.*.*": {"ingest", "egress"},
    "camhub.device.*.status": {"ingest", "gateway"},
    "camhub.svc.*.*.heartbeat": ALL,
    ">": set(),
}

#: responder user -> a request subject it answers (requested by the gateway).
RESPONDERS: dict[str, str] = {
    "ingest": "camhub.ingest.whip",
    "hls": "camhub.hls.s1.get",
    "control": "camhub.device.p1.cmd",
    "egress": "camhub.egress.whep",
}
#: responder user -> the micro endpoint subject that serves RESPONDERS[user].
ENDPOINTS: dict[str, str] = {
    "ingest": "camhub.ingest.whip",
    "hls": "camhub.hls.*.get",
    "control": "camhub.device.*.cmd",
    "egress": "camhub.egress.whep",
}

KV_BUCKETS = sorted(v for k, v in vars(subjects).items() if k.startswith("KV_") and isinstance(v, str))


@pytest.fixture(scope="module")
def passwords() -> dict[str, str]:
    return random_passwords()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, passwords: dict[str, str]) -> Iterator[DeployNats]:
    srv = DeployNats(tmp_path_factory.mktemp("nats"), passwords)
    srv.start()
    yield srv
    srv.stop()


async def login(server: DeployNats, passwords: dict[str, str], user: str) -> Conn:
    return await connect(server.url, user, passwords[password_var(user)])


class Recorder:
    """An admin subscription on ``>``: every (subject, payload) the server delivered."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, bytes]] = set()

    async def on_msg(self, msg: Any) -> None:
        self.seen.add((msg.subject, msg.data))

    async def wait_for(self, expected: set[tuple[str, bytes]], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not expected <= self.seen and time.monotonic() < deadline:
            await asyncio.sleep(0.02)


@pytest.fixture
async def admin(server: DeployNats, passwords: dict[str, str]) -> AsyncIterator[tuple[Conn, Recorder]]:
    conn = await login(server, passwords, "admin")
    rec = Recorder()
    await conn.nc.subscribe(">", cb=rec.on_msg)
    await conn.nc.flush()
    yield conn, rec
    await conn.close()


def _concrete(subject: str) -> str:
    return "camhub.anything.here" if subject == ">" else subject.replace("*", "x1")


# --- the file itself ------------------------------------------------------------------------


def test_config_check_passes_and_names_every_password_variable(passwords: dict[str, str]) -> None:
    """``nats-server -t`` accepts both committed files; their variables are exactly the passwords."""
    assert conf_variables(NATS_CONF) == {password_var(u) for u in (*SERVICE_USERS, "admin")}
    assert conf_variables(CLUSTER_CONF) == {"POD_NAME"}
    for conf in (NATS_CONF, CLUSTER_CONF):
        out = subprocess.run(
            [nats_server_binary(), "-t", "-c", str(conf)],
            env=bin_env({**nats_server_env(passwords), "POD_NAME": "nats-0"}),
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert out.returncode == 0, out.stderr
        assert "is valid" in out.stdout + out.stderr


def test_unquoted_password_is_misread_which_is_why_deploy_quotes_it(passwords: dict[str, str]) -> None:
    """The hazard behind the quoting in docker-compose.yml and deploy/k8s/nats.yaml, shown for real."""
    for bare in ("-1abc", "true"):
        env = {**nats_server_env(passwords), "CAMHUB_NATS_PASSWORD_HLS": bare}
        out = subprocess.run(
            [nats_server_binary(), "-t", "-c", str(NATS_CONF)],
            env=bin_env(env),
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert out.returncode != 0, bare


def test_missing_password_variable_stops_the_server(passwords: dict[str, str]) -> None:
    """No committed default password: without its variable nats-server refuses to start, naming it."""
    partial = nats_server_env(passwords)
    del partial["CAMHUB_NATS_PASSWORD_GATEWAY"]
    out = subprocess.run(
        [nats_server_binary(), "-t", "-c", str(NATS_CONF)],
        env=bin_env(partial),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode != 0
    assert "CAMHUB_NATS_PASSWORD_GATEWAY" in out.stdout + out.stderr


async def test_each_user_logs_in_only_with_its_own_password(server: DeployNats, passwords: dict[str, str]) -> None:
    for user in (*SERVICE_USERS, "admin"):
        conn = await login(server, passwords, user)
        assert conn.nc.is_connected
        # 8 MiB: frames up to this size travel in one message (services/common/frames.py chunks above).
        assert conn.nc.max_payload == MAX_PAYLOAD
        await conn.close()
    attempts = [
        ("gateway", passwords[password_var("ingest")]),  # another user's password
        ("ingest", "wrong"),
        ("nobody", "x"),
        ("", ""),  # anonymous
    ]
    for user, password in attempts:
        with pytest.raises((nats.errors.Error, OSError)):
            nc = await nats.connect(
                server.url,
                user=user or None,
                password=password or None,
                connect_timeout=2,
                allow_reconnect=False,
                max_reconnect_attempts=0,
                error_cb=_ignore,
            )
            await nc.close()


async def _ignore(exc: Exception) -> None:
    return None


# --- subject permissions --------------------------------------------------------------------


@pytest.mark.parametrize("user", SERVICE_USERS)
async def test_publish_permissions(
    user: str, server: DeployNats, passwords: dict[str, str], admin: tuple[Conn, Recorder]
) -> None:
    """Each user publishes exactly what docs/bus.md gives it; the gateway publishes no frames."""
    _, rec = admin
    conn = await login(server, passwords, user)
    try:
        sent = {s: f"{user}:{s}".encode() for s in PUBLISH}
        allowed = {(s, sent[s]) for s, users in PUBLISH.items() if user in users}
        # Re-published until seen: see tests/deploy/support.py request_retry for why.
        deadline = time.monotonic() + 10
        while not allowed <= rec.seen and time.monotonic() < deadline:
            for subject, body in sent.items():
                await conn.nc.publish(subject, body)
            await conn.nc.flush()
            await rec.wait_for(allowed, timeout=0.5)
        for subject, users in PUBLISH.items():
            delivered = (subject, sent[subject]) in rec.seen
            if user in users:
                assert delivered, f"{user} could not publish {subject}"
            else:
                assert await conn.wait_error(f'Publish to "{subject}"'), f"no violation for {user} -> {subject}"
                assert not delivered, f"{user} published {subject}"
    finally:
        await conn.close()


@pytest.mark.parametrize("user", SERVICE_USERS)
async def test_subscribe_permissions(
    user: str, server: DeployNats, passwords: dict[str, str], admin: tuple[Conn, Recorder]
) -> None:
    """Each user subscribes only where it listens; only control receives printer commands."""
    admin_conn, _ = admin
    conn = await login(server, passwords, user)
    got: dict[str, list[bytes]] = {s: [] for s in SUBSCRIBE}
    try:
        for pattern in SUBSCRIBE:

            async def on_msg(msg: Any, pattern: str = pattern) -> None:
                got[pattern].append(msg.data)

            await conn.nc.subscribe(pattern, cb=on_msg)
        await conn.nc.flush()
        # Re-published until received: see tests/deploy/support.py request_retry for why.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(got[p] for p, users in SUBSCRIBE.items() if user in users):
            for pattern in SUBSCRIBE:
                await admin_conn.nc.publish(_concrete(pattern), f"to:{pattern}".encode())
            await admin_conn.nc.flush()
            await asyncio.sleep(0.3)
        for pattern, users in SUBSCRIBE.items():
            if user in users:
                assert f"to:{pattern}".encode() in got[pattern], f"{user} did not receive on {pattern}"
            else:
                assert await conn.wait_error(f'Subscription to "{pattern}"'), f"no violation for {user} sub {pattern}"
                assert f"to:{pattern}".encode() not in got[pattern], f"{user} received on {pattern}"
    finally:
        await conn.close()


@pytest.mark.parametrize("responder", sorted(RESPONDERS))
async def test_gateway_requests_reach_their_responder(
    responder: str, server: DeployNats, passwords: dict[str, str]
) -> None:
    """Request/reply works for the responder (allow_responses) and only for it."""
    subject = RESPONDERS[responder]
    gw = await login(server, passwords, "gateway")
    conns = {u: await login(server, passwords, u) for u in SERVICE_USERS if u != "gateway"}
    try:
        for user, conn in conns.items():

            async def answer(msg: Any, user: str = user) -> None:
                await msg.respond(json.dumps({"by": user}).encode())

            await conn.nc.subscribe(subject, queue=f"camhub-{user}", cb=answer)
            await conn.nc.flush()
        reply = await request_retry(gw.nc, subject, b"{}")
        assert json.loads(reply.data) == {"by": responder}
        for user, conn in conns.items():
            if user != responder:
                assert await conn.wait_error(f'Subscription to "{subject}"', timeout=1)
    finally:
        for conn in (gw, *conns.values()):
            await conn.close()


async def test_only_control_answers_device_commands_even_when_others_try(
    server: DeployNats, passwords: dict[str, str]
) -> None:
    """A compromised ingest/hls/egress/gateway cannot take printer commands (with access codes) off the bus."""
    control = await login(server, passwords, "control")
    others = [await login(server, passwords, u) for u in ("ingest", "hls", "egress", "gateway")]
    taken: list[str] = []
    try:
        for conn in others:

            async def steal(msg: Any, user: str = conn.user) -> None:
                taken.append(user)
                await msg.respond(b"stolen")

            await conn.nc.subscribe("camhub.device.*.cmd", cb=steal)
            await conn.nc.subscribe(">", cb=steal)
            await conn.nc.flush()

        async def ok(msg: Any) -> None:
            await msg.respond(b"ok")

        await control.nc.subscribe("camhub.device.p1.cmd", cb=ok)
        await control.nc.flush()
        gw = others[-1]
        for _ in range(5):
            reply = await request_retry(gw.nc, "camhub.device.p1.cmd", b"{}")
            assert reply.data == b"ok"
        await asyncio.sleep(0.2)
        assert taken == []
    finally:
        for conn in (control, *others):
            await conn.close()


# --- JetStream, KV and micro as the services use them ---------------------------------------------


def _settings(server: DeployNats, passwords: dict[str, str], user: str, tmp: Path) -> Any:
    return load_settings(
        nats_url=server.url, nats_user=user, nats_password=passwords[password_var(user)], data_dir=tmp, instance="t1"
    )


async def test_every_service_user_uses_every_kv_bucket(
    server: DeployNats, passwords: dict[str, str], tmp_path: Path
) -> None:
    """Create (first user), put, get, watch and delete in every bucket of services/common/subjects.py.

    Runs through the real :class:`services.common.bus.Bus`, so a bucket added to subjects.py but
    not to nats.conf fails here.
    """
    assert {"camhub-devices", "camhub-streams", "camhub-status", "camhub-leases", "camhub-tokens"} <= set(KV_BUCKETS)
    buses = {
        u: await Bus.connect(_settings(server, passwords, u, tmp_path), f"kv-{u}", connect_timeout=5)
        for u in SERVICE_USERS
    }
    try:
        for bucket in KV_BUCKETS:
            for user, bus in buses.items():
                kv = await asyncio.wait_for(bus.kv(bucket), 10)
                key = f"k-{user}"
                await kv.put(key, user.encode())
                entry = await kv.get(key)
                assert entry.value == user.encode(), (bucket, user)
                watcher = await kv.watch(key)
                try:
                    assert await _watched(watcher) == user.encode(), (bucket, user)
                finally:
                    await watcher.stop()
                await kv.delete(key)
    finally:
        for bus in buses.values():
            await bus.close()


async def _watched(watcher: Any, timeout: float = 10.0) -> bytes | None:
    """The first value a KV watcher delivers (skipping its "initial values done" None marker)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            entry = await watcher.updates(timeout=1)
        except nats.errors.TimeoutError:
            continue
        if entry is not None:
            return bytes(entry.value)
    return None


async def test_status_history_stream_written_by_control_read_by_gateway(
    server: DeployNats, passwords: dict[str, str], tmp_path: Path
) -> None:
    """Stream CAMHUB_STATUS_HISTORY captures control's status; the gateway reads it with an ordered consumer."""
    control = await Bus.connect(_settings(server, passwords, "control", tmp_path), "hist-control", connect_timeout=5)
    gateway = await Bus.connect(_settings(server, passwords, "gateway", tmp_path), "hist-gw", connect_timeout=5)
    try:
        await control.js.add_stream(
            name=subjects.STREAM_STATUS_HISTORY, subjects=[subjects.DEVICE_STATUS_ALL], max_age=24 * 3600
        )
        for i in range(3):
            await control.js.publish(subjects.device_status("p1"), f"s{i}".encode())
        sub = await gateway.js.subscribe(
            subjects.DEVICE_STATUS_ALL, ordered_consumer=True, stream=subjects.STREAM_STATUS_HISTORY
        )
        got = [(await sub.next_msg(timeout=3)).data for _ in range(3)]
        assert got == [b"s0", b"s1", b"s2"]
        await sub.unsubscribe()
    finally:
        await control.close()
        await gateway.close()


async def test_each_user_registers_its_micro_service(server: DeployNats, passwords: dict[str, str]) -> None:
    """nats-py micro as each service user: $SRV.PING/INFO/STATS and the endpoint answer the gateway."""
    conns = {u: await login(server, passwords, u) for u in SERVICE_USERS}
    services = []
    try:
        for user, conn in conns.items():
            svc = await add_service(conn.nc, name=f"camhub-{user}", version="0.0.1", metadata={"instance": "t1"})
            services.append(svc)
            if user in RESPONDERS:

                async def handler(req: Request, user: str = user) -> None:
                    await req.respond(user.encode())

                await svc.add_endpoint(
                    EndpointConfig(name="main", subject=ENDPOINTS[user], handler=handler, queue_group=f"camhub-{user}")
                )
        gw = conns["gateway"]
        for user in SERVICE_USERS:
            for verb in ("PING", "INFO", "STATS"):
                reply = await request_retry(gw.nc, f"$SRV.{verb}.camhub-{user}", b"")
                assert json.loads(reply.data)["name"] == f"camhub-{user}", (verb, user)
            if user in RESPONDERS:
                reply = await request_retry(gw.nc, RESPONDERS[user], b"")
                assert reply.data == user.encode()
        for conn in conns.values():
            assert not [e for e in conn.errors if "permissions violation" in e.lower()], conn.errors
    finally:
        for svc in services:
            await svc.stop()
        for conn in conns.values():
            await conn.close()
