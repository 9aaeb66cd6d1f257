"""The egress service (registration and heartbeats; its capabilities are built in its own issue)."""

from __future__ import annotations

from services.common.service import CamhubService


class EgressService(CamhubService):
    name = "egress"
    description = "camhub egress"
