"""The hls service (registration and heartbeats; its capabilities are built in its own issue)."""

from __future__ import annotations

from services.common.service import CamhubService


class HlsService(CamhubService):
    name = "hls"
    description = "camhub hls"
