"""Settings read from ``CAMHUB_*`` environment variables (and nothing else).

Every service calls :func:`load_settings` once at start.  A bad value raises
:class:`SettingsError` naming the variable, e.g. ``CAMHUB_HTTP_PORT: Input should be a valid
integer``, so ``camhub up`` can print one clear line instead of a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(ValueError):
    """A ``CAMHUB_*`` variable has a value camhub cannot use."""


class Settings(BaseSettings):
    """All camhub settings; each field maps to ``CAMHUB_<FIELD>`` (upper case)."""

    model_config = SettingsConfigDict(env_prefix="CAMHUB_", extra="ignore", frozen=True)

    #: Join this NATS (``nats://host:4222``, comma separated for a cluster).  Empty: ``camhub up``
    #: starts an embedded nats-server on ``nats_port``.
    nats_url: str = ""
    nats_port: int = Field(4222, ge=1, le=65535)
    #: Monitoring port of the embedded nats-server (``/healthz``, ``/varz``).
    nats_monitor_port: int = Field(8222, ge=1, le=65535)
    nats_user: str = ""
    nats_password: str = ""
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=1, le=65535)
    data_dir: Path = Path("./data")
    #: Stable name of this replica; default ``<hostname>-<pid>``.
    instance: str = ""
    log_level: str = "INFO"
    #: Per-service Prometheus port (0 = off; the gateway serves ``/metrics`` on its HTTP port).
    metrics_port: int = Field(0, ge=0, le=65535)
    #: Key for encrypting stored secrets (access codes, RTSP passwords).  Any string; it is
    #: stretched into a Fernet key.  Empty: stored unencrypted (the API still never returns them).
    secret_key: str = ""
    #: REST API bearer token.  ``none`` disables auth explicitly (behind Zero Trust).
    auth: str = ""
    api_token: str = ""
    #: Key that signs the short-lived VMS viewer tokens; default derived from ``secret_key``.
    session_key: str = ""
    cors_origins: str = ""
    heartbeat_seconds: float = Field(2.0, gt=0)
    #: JetStream replicas for camhub's KV buckets and streams (3 on a 3-node cluster).
    kv_replicas: int = Field(1, ge=1, le=5)
    lease_ttl_seconds: float = Field(4.0, gt=1)
    # HLS
    hls_segment_seconds: float = Field(2.0, gt=0.1, le=30)
    hls_part_seconds: float = Field(0.333, gt=0.05, le=5)
    hls_window: int = Field(7, ge=3, le=100)
    hls_low_latency: bool = True
    hls_dir: str = ""
    hls_idle_seconds: float = Field(30.0, gt=0)
    # WebRTC
    #: Address ICE host candidates are gathered on (the LAN address for real cameras).
    webrtc_host: str = "127.0.0.1"
    # Control
    mqtt_tls_ca: str = ""
    command_timeout_seconds: float = Field(5.0, gt=0)
    # Ingest
    push_max_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    rtsp_timeout_seconds: float = Field(5.0, gt=0)
    #: A WHIP peer whose ICE + DTLS is not connected this long after the answer is closed.
    whip_connect_timeout_seconds: float = Field(10.0, gt=0)
    #: A connected WHIP peer that sends no video frame for this long is closed (publisher gone).
    whip_media_timeout_seconds: float = Field(10.0, gt=0)
    #: A pushed stream with no frame for this long is ended (``down``), seconds.
    push_idle_seconds: float = Field(30.0, gt=0)

    @property
    def nats_servers(self) -> list[str]:
        """The NATS URLs to connect to (embedded server when ``nats_url`` is empty)."""
        if self.nats_url:
            return [u.strip() for u in self.nats_url.split(",") if u.strip()]
        return [f"nats://127.0.0.1:{self.nats_port}"]

    def instance_id(self) -> str:
        """This replica's id: ``CAMHUB_INSTANCE`` or ``<hostname>-<pid>``, subject-safe."""
        from services.common.ids import sanitize_token

        if self.instance:
            return sanitize_token(self.instance)
        return sanitize_token(f"{os.uname().nodename}-{os.getpid()}")


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment.

    Raises:
        SettingsError: one line per bad variable, named as the user typed it.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            lines.append(f"CAMHUB_{field.upper()}: {err['msg']}")
        raise SettingsError("; ".join(lines)) from None
