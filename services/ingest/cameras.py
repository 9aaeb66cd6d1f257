"""The ``camhub.camera.<id>.cmd`` subscriptions of the cameras whose peers this ingest holds.

While a camera's WHIP session is alive - and for :data:`GRACE_S` seconds after it ends, so a
reconnecting camera finds its queued commands - this instance subscribes the camera's command
subject (a plain subscription: only the holder may answer) and serves it with the camera's
:class:`~services.ingest.camera_control.CameraControl`.  With no holder the subject has no
responder: the gateway answers 404/503 from that (``NoResponders``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from services.common import codec, subjects
from services.common.bus import Bus
from services.ingest.camera_control import CameraControl

log = logging.getLogger("camhub.ingest.cameras")

GRACE_S = 30.0


class CameraControls:
    """Per-camera controls and their command subscriptions."""

    def __init__(self, bus: Bus, *, grace_s: float = GRACE_S, timeout: float = 5.0) -> None:
        self.bus = bus
        self.grace_s = grace_s
        self.timeout = timeout
        self.controls: dict[str, CameraControl] = {}
        self._subs: dict[str, Subscription] = {}
        self._users: dict[str, int] = {}
        self._expiry: dict[str, asyncio.Task[None]] = {}
        self._inflight: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()

    async def acquire(self, camera: str) -> CameraControl:
        """The camera's control (created and subscribed on first use); pair with :meth:`release`."""
        task = self._expiry.pop(camera, None)
        if task is not None:
            task.cancel()
        self._users[camera] = self._users.get(camera, 0) + 1
        async with self._lock:
            ctl = self.controls.get(camera)
            if ctl is None:
                ctl = await self._create(camera)
        return ctl

    async def _create(self, camera: str) -> CameraControl:
        ctl = CameraControl(camera, timeout=self.timeout)

        async def on_cmd(msg: Msg) -> None:
            # each command waits for its ack in its own task: the subscription must keep
            # delivering (commands queue up while the camera reconnects)
            task = asyncio.create_task(self._on_cmd(ctl, msg), name=f"camera-cmd:{camera}")
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

        self._subs[camera] = await self.bus.subscribe(subjects.camera_cmd(camera), on_cmd, pending_msgs=256)
        await self.bus.nc.flush()  # the server knows the subscription before anyone is told
        self.controls[camera] = ctl
        return ctl

    def release(self, camera: str) -> None:
        """One user (a session) is done; after the grace period without users the control goes."""
        n = self._users.get(camera, 0) - 1
        self._users[camera] = max(0, n)
        if n > 0 or camera in self._expiry:
            return

        async def expire() -> None:
            await asyncio.sleep(self.grace_s)
            self._expiry.pop(camera, None)
            if self._users.get(camera, 0) == 0:
                await self._drop(camera)

        self._expiry[camera] = asyncio.create_task(expire(), name=f"camera-grace:{camera}")

    async def _drop(self, camera: str) -> None:
        self.controls.pop(camera, None)
        self._users.pop(camera, None)
        sub = self._subs.pop(camera, None)
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _on_cmd(self, ctl: CameraControl, msg: Msg) -> None:
        try:
            req = codec.unpack_map(msg.data)
        except codec.PayloadError as exc:
            reply = {"ok": False, "error": str(exc), "status": 400}
        else:
            reply = await ctl.command(req)
        if msg.reply:
            try:
                await self.bus.publish(msg.reply, codec.pack(reply), headers=codec.HEADERS)
            except Exception as exc:
                log.warning("camera %s: reply not sent: %s", ctl.camera, exc)

    async def close(self) -> None:
        for task in [*self._expiry.values(), *self._inflight]:
            task.cancel()
        self._expiry.clear()
        for camera in list(self.controls):
            await self._drop(camera)
