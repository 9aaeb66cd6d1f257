"""The control service (registration and heartbeats; its capabilities are built in its own issue)."""

from __future__ import annotations

from services.common.service import CamhubService


class ControlService(CamhubService):
    name = "control"
    description = "camhub control"
