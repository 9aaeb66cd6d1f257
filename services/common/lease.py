"""Ownership leases in KV ``camhub-leases`` (DESIGN.md section 4, docs/bus.md "Leases").

One live resource (an RTSP pull, an HLS muxer, a printer's MQTT session) has exactly one owner.
The owner holds key ``<kind>.<id>`` whose value is its instance id:

* acquire: ``kv.create`` (succeeds only when the key is absent, deleted or expired);
* renew: ``kv.update`` with the last revision, every ``ttl/4`` s (compare-and-set, so two holders
  can never both renew);
* expiry: the bucket's ``max_age`` is the TTL (default 4 s), so a SIGKILLed owner's key vanishes
  after at most TTL and a contender (polling every ``ttl/4``) takes over within ~TTL + ttl/4;
* lost: an owner whose renewals have not succeeded for ``0.75 x TTL`` (measured from when the
  last successful renewal was *sent*) gives the resource up before the server could expire its
  key, so two owners never overlap;
* release: ``kv.delete`` with the last revision, so the next contender starts at once.

The logic is small and camhub-specific (the fencing rule above), hence written here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from services.common.bus import Bus
from services.common.subjects import KV_LEASES

log = logging.getLogger("camhub.lease")

Callback = Callable[[], Awaitable[None]]


class Lease:
    """Contend for, hold and renew one lease; callbacks run when it is won and lost.

    ``on_acquired`` runs once each time the lease is won; ``on_lost`` once each time it is lost
    (renewal failed, key taken, or :meth:`stop`).  Both are awaited inside the keeper task, so
    keep them short (start or cancel a task).
    """

    def __init__(
        self,
        bus: Bus,
        key: str,
        holder: str,
        *,
        on_acquired: Callback | None = None,
        on_lost: Callback | None = None,
        ttl: float | None = None,
    ) -> None:
        self.bus = bus
        self.key = key
        self.holder = holder
        self.ttl = ttl or bus.settings.lease_ttl_seconds
        self._on_acquired = on_acquired
        self._on_lost = on_lost
        self._rev: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def held(self) -> bool:
        """True while this process owns the lease."""
        return self._rev is not None

    def start(self) -> None:
        """Start contending in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"lease:{self.key}")

    async def stop(self, release: bool = True) -> None:
        """Stop contending; when held, run ``on_lost`` and (``release``) delete the key."""
        self._stopping = True
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # the caller itself is being cancelled: do not swallow that
            except Exception:
                pass
        if self._rev is not None:
            rev, self._rev = self._rev, None
            await self._fire(self._on_lost)
            if release:
                with contextlib.suppress(Exception):
                    kv = await self.bus.kv(KV_LEASES, ttl=self.ttl)
                    await asyncio.wait_for(kv.delete(self.key, last=rev), 2.0)

    async def _fire(self, cb: Callback | None) -> None:
        if cb is None:
            return
        try:
            await cb()
        except Exception:
            log.exception("lease %s callback failed", self.key)

    async def try_acquire(self) -> bool:
        """One attempt to create the key; True when this holder now owns it."""
        kv = await self.bus.kv(KV_LEASES, ttl=self.ttl)
        try:
            self._rev = await kv.create(self.key, self.holder.encode())
            return True
        except Exception:
            return False

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.ttl / 4
        while not self._stopping:
            try:
                if self._rev is None:
                    if await self.try_acquire():
                        log.info("lease %s acquired by %s", self.key, self.holder)
                        await self._fire(self._on_acquired)
                    else:
                        await asyncio.sleep(interval)
                    continue
                last_ok = loop.time()
                while self._rev is not None:
                    await asyncio.sleep(interval)
                    sent = loop.time()
                    try:
                        kv = await self.bus.kv(KV_LEASES, ttl=self.ttl)
                        budget = max(0.05, last_ok + 0.75 * self.ttl - sent)
                        self._rev = await asyncio.wait_for(
                            kv.update(self.key, self.holder.encode(), last=self._rev), budget
                        )
                        last_ok = sent
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        if loop.time() >= last_ok + 0.75 * self.ttl or "wrong last sequence" in str(exc):
                            log.warning("lease %s lost by %s: %s", self.key, self.holder, exc)
                            self._rev = None
                            await self._fire(self._on_lost)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("lease %s: %s", self.key, exc)
                await asyncio.sleep(interval)


async def lease_owner(bus: Bus, key: str) -> str | None:
    """The instance id holding ``key`` now, or None."""
    kv = await bus.kv(KV_LEASES, ttl=bus.settings.lease_ttl_seconds)
    try:
        entry = await kv.get(key)
    except Exception:
        return None
    return entry.value.decode() if entry.value else None
