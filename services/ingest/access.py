"""Who may publish a stream: the registry entry's kind and publish token, and the stream lease.

* :class:`DeviceCache` mirrors KV ``camhub-devices`` (fed by the source manager's registry
  watch), so per-frame checks (push) cost no KV read.
* :func:`check_publisher`: a stream with no registry entry may be published without a token
  (documented in docs/bus.md); an entry of another kind (an RTSP camera, a printer) refuses
  with 409; an entry with a ``publish_token`` requires exactly that token (401, constant-time
  comparison).
* :func:`claim_stream`: one live source per stream across replicas - the lease
  ``ingest.<stream>`` in KV ``camhub-leases`` (``services.common.lease``).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from services.common.bus import Bus
from services.common.lease import Lease
from services.common.registry import Device


class DeviceCache:
    """The latest :class:`Device` per id (updated by whoever watches the registry)."""

    def __init__(self) -> None:
        self.devices: dict[str, Device] = {}

    def update(self, device_id: str, device: Device | None) -> None:
        if device is None:
            self.devices.pop(device_id, None)
        else:
            self.devices[device_id] = device

    def get(self, device_id: str) -> Device | None:
        return self.devices.get(device_id)


def check_publisher(device: Device | None, kind: str, token: str) -> tuple[int, str] | None:
    """None when a ``kind`` publisher (``webrtc`` or ``push``) presenting ``token`` may publish
    to ``device``'s stream, else ``(status, error)`` (401 or 409)."""
    if device is None:
        return None
    if device.kind != kind:
        return 409, f"stream {device.id} belongs to a {device.kind} device; it cannot be published by {kind}"
    if device.publish_token and not hmac.compare_digest(device.publish_token.encode(), token.encode()):
        return 401, "wrong or missing publish token"
    return None


def lease_key(stream: str) -> str:
    return f"ingest.{stream}"


async def claim_stream(
    bus: Bus, stream: str, instance: str, on_lost: Callable[[], Awaitable[None]] | None = None
) -> Lease | None:
    """Take the stream's lease now (one attempt) and keep renewing it; None when another source
    holds it.  ``on_lost`` runs if the lease is lost later."""
    lease = Lease(bus, lease_key(stream), instance, on_lost=on_lost)
    if not await lease.try_acquire():
        return None
    lease.start()
    return lease
