"""Leases (DESIGN.md section 4): takeover after SIGKILL within 6 s, never two holders at once."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import time

from services.common.bus import Bus
from services.common.lease import Lease, lease_owner
from services.common.settings import Settings
from tests.support.procs import ROOT


async def test_lease_of_a_sigkilled_holder_is_taken_within_6_s(settings: Settings) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.lease_holder", settings.nats_servers[0], "hls.cam1", "victim"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 15)
        assert line.strip() == "held"
        bus = await Bus.connect(settings, "heir")
        assert await lease_owner(bus, "hls.cam1") == "victim"
        won = asyncio.Event()

        async def acquired() -> None:
            won.set()

        heir = Lease(bus, "hls.cam1", "heir", on_acquired=acquired)
        heir.start()
        await asyncio.sleep(1.5)
        assert not won.is_set(), "the lease was taken while its holder was alive"
        proc.kill()
        killed = time.monotonic()
        await asyncio.wait_for(won.wait(), 8)
        takeover = time.monotonic() - killed
        assert takeover <= 6.0, f"takeover took {takeover:.2f} s"
        assert await lease_owner(bus, "hls.cam1") == "heir"
        await heir.stop()
        assert await lease_owner(bus, "hls.cam1") is None  # released on stop
        await bus.close()
    finally:
        proc.kill()
        proc.wait()


async def test_concurrent_contenders_never_overlap(settings: Settings) -> None:
    """Six contenders on separate connections; holders are stopped one after another. The
    recorded ownership intervals must never overlap and the lease must keep moving."""
    buses = [await Bus.connect(settings, f"c{i}") for i in range(6)]
    intervals: list[list[float]] = []
    holding: dict[int, list[float]] = {}
    leases: list[Lease] = []

    def make(i: int) -> Lease:
        async def acquired() -> None:
            holding[i] = [time.monotonic(), float("inf")]
            intervals.append(holding[i])

        async def lost() -> None:
            holding.pop(i)[1] = time.monotonic()

        return Lease(buses[i], "control.printer1", f"c{i}", on_acquired=acquired, on_lost=lost, ttl=2.0)

    for i in range(6):
        leases.append(make(i))
        leases[-1].start()
    for _ in range(4):
        deadline = time.monotonic() + 6
        while not holding and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert len(holding) == 1, f"holders: {holding}"
        owner = next(iter(holding))
        await asyncio.sleep(0.8)
        assert list(holding) == [owner]
        await leases[owner].stop()
    for lease in leases:
        await lease.stop()
    assert len(intervals) >= 4
    spans = sorted(intervals)
    for a, b in itertools.pairwise(spans):
        assert a[1] <= b[0], f"two holders overlapped: {a} {b}"
    for b in buses:
        await b.close()


async def test_holder_that_loses_nats_gives_the_lease_up(settings: Settings, nats_server: object) -> None:
    bus = await Bus.connect(settings, "fragile")
    events: list[str] = []

    async def acquired() -> None:
        events.append("acquired")

    async def lost() -> None:
        events.append("lost")

    lease = Lease(bus, "ingest.cam9", "fragile", on_acquired=acquired, on_lost=lost, ttl=2.0)
    lease.start()
    for _ in range(50):
        if events:
            break
        await asyncio.sleep(0.1)
    assert events == ["acquired"]
    nats_server.kill()  # type: ignore[attr-defined]
    for _ in range(40):
        if "lost" in events:
            break
        await asyncio.sleep(0.1)
    assert events == ["acquired", "lost"], "a holder cut off from NATS must stop owning within 0.75 x TTL"
    await lease.stop(release=False)
    await bus.close(timeout=0.5)
