"""A WHEP viewer in its own process, so a test can SIGKILL it (a browser that crashes says no goodbye).

``python -m tests.egress.viewer_child NATS_URL STREAM``: connects an :class:`AiortcViewer`, prints
``PLAYING <session>`` once 5 access units arrived, then keeps receiving until killed.
"""

from __future__ import annotations

import asyncio
import sys

from services.common.bus import Bus
from services.common.settings import load_settings
from tests.egress.helpers import AiortcViewer


async def main(url: str, stream: str) -> None:
    bus = await Bus.connect(load_settings(nats_url=url), "viewer-child", connect_timeout=5)
    viewer = AiortcViewer()
    reply = await viewer.connect(bus, stream)
    if not reply.get("ok"):
        print(f"FAILED {reply}", flush=True)
        return
    await viewer.wait_frames(5, timeout=10)
    print(f"PLAYING {viewer.session}", flush=True)
    await asyncio.sleep(120)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
