"""Control-service tunables, from ``CAMHUB_CONTROL_*`` environment variables.

The shared settings (``services/common/settings.py``) already give ``CAMHUB_MQTT_TLS_CA``
(default CA for printers without their own) and ``CAMHUB_COMMAND_TIMEOUT_SECONDS`` (5 s).
A bad value raises :class:`services.common.settings.SettingsError` naming the variable.
"""

from __future__ import annotations

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.settings import SettingsError


class ControlSettings(BaseSettings):
    """Each field maps to ``CAMHUB_CONTROL_<FIELD>``; times in seconds."""

    model_config = SettingsConfigDict(env_prefix="CAMHUB_CONTROL_", extra="ignore", frozen=True)

    #: Silence after which ``pushing.start`` is sent (ha-bambulab ``WATCHDOG_TIMER`` = 60 s).
    watchdog_seconds: float = Field(60.0, gt=0)
    #: Reconnect backoff: doubles from min to max after each failed attempt.
    backoff_min_seconds: float = Field(1.0, gt=0)
    backoff_max_seconds: float = Field(30.0, gt=0)
    #: Wait after "not authorized" (wrong access code) before trying again, unless the registry
    #: entry changes first.
    auth_retry_seconds: float = Field(300.0, gt=0)
    #: TCP connect + TLS handshake budget, and the CONNACK wait after it.
    connect_timeout_seconds: float = Field(5.0, gt=0)
    #: MQTT keepalive; a dead printer is noticed after 1.5x this.
    keepalive_seconds: int = Field(10, ge=2, le=600)
    #: Minimum gap between two ``pushall`` requests asked for by failed merges.
    pushall_min_seconds: float = Field(15.0, ge=0)
    #: Minimum gap between two published statuses of one printer (coalescing: <= 5/s).
    status_min_interval_seconds: float = Field(0.2, ge=0)
    #: Publish at least this often while reports arrive, even with nothing but times changed.
    status_refresh_seconds: float = Field(30.0, gt=0)
    #: Size cap of the ``CAMHUB_STATUS_HISTORY`` stream (besides its 24 h max age).
    history_max_bytes: int = Field(256 * 1024 * 1024, ge=1024 * 1024)
    #: Threads for blocking MQTT connects (TCP + TLS handshake) and thread joins.
    connect_threads: int = Field(32, ge=1, le=512)


def load_control_settings() -> ControlSettings:
    """Read ``CAMHUB_CONTROL_*``.

    Raises:
        SettingsError: one line per bad variable.
    """
    try:
        return ControlSettings()  # type: ignore[call-arg]
    except ValidationError as exc:
        lines = [f"CAMHUB_CONTROL_{str(e['loc'][0]).upper()}: {e['msg']}" for e in exc.errors() if e["loc"]]
        raise SettingsError("; ".join(lines)) from None
