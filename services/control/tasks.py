"""Stopping background tasks without swallowing the caller's own cancellation.

``task.cancel(); with suppress(CancelledError): await task`` also swallows a CancelledError
aimed at the *caller* (its ``await`` raises the same exception type), so a service being stopped
could keep running.  :func:`cancel_and_wait` waits with :func:`asyncio.wait` instead, which never
raises the task's outcome and lets the caller's cancellation through.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any] | asyncio.Future[Any] | None, timeout: float = 2.0) -> bool:
    """Cancel ``task`` and wait up to ``timeout`` s for it to end; True when it ended.

    Raises:
        asyncio.CancelledError: only when the caller itself is cancelled.
    """
    if task is None:
        return True
    if not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=timeout)
    if task.done() and not task.cancelled():
        task.exception()  # retrieved: no "exception was never retrieved" warning
    return task.done()
