"""``python -m services.gateway`` / ``camhub gateway``.

The gateway runs on uvloop (shipped with ``uvicorn[standard]``) when it is installed: the
WebSocket fan-out is dominated by event-loop and socket overhead, which uvloop roughly halves.
"""

import asyncio
import contextlib

from services.common.service import main as run_main
from services.gateway.service import GatewayService


def main() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    run_main(GatewayService)


if __name__ == "__main__":
    main()
