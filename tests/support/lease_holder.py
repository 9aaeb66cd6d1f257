"""A process that takes a lease and holds it until killed (for the SIGKILL takeover test).

Usage: python -m tests.support.lease_holder NATS_URL KEY HOLDER
Prints ``held`` once it owns the lease.
"""

from __future__ import annotations

import asyncio
import sys

from services.common.bus import Bus
from services.common.lease import Lease
from services.common.settings import load_settings


async def main(url: str, key: str, holder: str) -> None:
    bus = await Bus.connect(load_settings(nats_url=url), "lease-holder")
    got = asyncio.Event()

    async def acquired() -> None:
        got.set()

    lease = Lease(bus, key, holder, on_acquired=acquired)
    lease.start()
    await got.wait()
    print("held", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
