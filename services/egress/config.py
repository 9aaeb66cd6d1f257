"""Egress tuning read from ``CAMHUB_EGRESS_*`` environment variables.

The common :class:`services.common.settings.Settings` holds what several services share; these
knobs only matter to the WHEP egress, so they live here (same rules: environment only, a bad
value raises :class:`services.common.settings.SettingsError` naming the variable).
"""

from __future__ import annotations

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.settings import SettingsError


class EgressConfig(BaseSettings):
    """Each field maps to ``CAMHUB_EGRESS_<FIELD>`` (upper case)."""

    model_config = SettingsConfigDict(env_prefix="CAMHUB_EGRESS_", extra="ignore", frozen=True)

    #: WHEP sessions one egress process accepts; more get 503.
    max_sessions: int = Field(200, ge=1, le=10_000)
    #: A viewer whose ICE + DTLS handshake has not completed this long after the answer is dropped.
    handshake_seconds: float = Field(10.0, gt=0)
    #: A connected viewer from which nothing (RTCP, DTLS) arrives this long while media flows to it
    #: is dropped (a browser that was killed sends no goodbye).
    idle_seconds: float = Field(3.0, gt=0)
    #: A viewer paused this long (the stream's source is down, no frame sent) is closed.
    pause_seconds: float = Field(60.0, gt=0)
    #: Bounds of the per-stream GOP cache used to start new viewers at once (seconds of 90 kHz
    #: decode time, bytes). A GOP that outgrows them is not cached; new viewers wait for an IDR.
    gop_seconds: float = Field(4.0, gt=0, le=60)
    gop_bytes: int = Field(8 * 1024 * 1024, ge=64 * 1024)
    #: A viewer whose queue holds more than this much media (seconds of decode time) is lagging:
    #: its queue is dropped and it resumes at the next keyframe.
    lag_seconds: float = Field(1.0, gt=0)
    #: Rate of the catch-up burst (the cached GOP sent to a new viewer), bit/s.
    catchup_bitrate: int = Field(50_000_000, ge=1_000_000)
    #: A stream's feed (bus subscription + GOP cache) stays this long after its last viewer left,
    #: so a viewer that reloads its page starts from the cached GOP at once.
    linger_seconds: float = Field(30.0, ge=0)
    #: At most one ``keyframe-request`` event per stream per this many seconds.
    keyframe_request_seconds: float = Field(1.0, ge=0)


def load_egress_config(**overrides: object) -> EgressConfig:
    """Read the egress settings from the environment.

    Raises:
        SettingsError: one line per bad variable, e.g. ``CAMHUB_EGRESS_IDLE_SECONDS: ...``.
    """
    try:
        return EgressConfig(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            lines.append(f"CAMHUB_EGRESS_{field.upper()}: {err['msg']}")
        raise SettingsError("; ".join(lines)) from None
