"""The gateway's JSON shapes (pydantic), camelCase on the wire as in ``briefs/bambu-cam-hls.md`` s. 7.

Request models ignore unknown fields (a client may PUT back what it GOT, ``accessCodeSet``
included); every field they do know is validated, and a failure is a 422 naming the field.
Secrets (``accessCode``, ``password``, ``publishToken``) are write-only: responses carry
``accessCodeSet`` / ``passwordSet`` / ``publishTokenSet`` and RTSP URLs with ``****`` for a
password.  The VMS models keep the snake_case of ``briefs/vms-webrtc-offer.md``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from services.common.ids import ID_PATTERN

NoControl = r"^[^\x00-\x1f\x7f]*$"
Name = Annotated[str, Field(max_length=100, pattern=NoControl)]
Secret = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x20\x7f]+$")]
Host = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9._:%\[\]-]+$")]
DeviceIdField = Annotated[str, Field(pattern=ID_PATTERN, description="id rule: ^[a-z0-9][a-z0-9_-]{0,62}$")]


class Camel(BaseModel):
    """Base: camelCase aliases, names accepted too, unknown fields ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


def check_rtsp_url(value: str | None) -> str | None:
    """``rtsp://`` or ``rtsps://`` with a host, or empty/None.

    Raises:
        ValueError: another scheme, no host, or white space.
    """
    if not value:
        return value
    if any(c.isspace() for c in value) or len(value) > 2048:
        raise ValueError("rtspUrl must be a URL without spaces, at most 2048 characters")
    try:
        parts = urlsplit(value)
        host = parts.hostname
        _ = parts.port
    except ValueError as exc:
        raise ValueError(f"rtspUrl is not a valid URL: {exc}") from None
    if parts.scheme.lower() not in ("rtsp", "rtsps") or not host:
        raise ValueError("rtspUrl must look like rtsp://host[:port]/path or rtsps://...")
    return value


# --- printers --------------------------------------------------------------------------


class PrinterIn(Camel):
    """``POST /api/printers`` and ``PUT /api/printers/{id}`` body.

    ``accessCode`` is required on POST and optional on PUT (absent keeps the stored one).
    ``rtspUrl`` overrides the camera URL the printer reports (``print.ipcam.rtsp_url``); an
    echoed ``****`` password keeps the stored one.  ``id`` (POST only) defaults to a slug of
    ``name``.  ``tlsCa`` (PEM) makes control verify the printer's certificate (CN = serial).
    """

    id: DeviceIdField | None = None
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$")]
    host: Host
    serial: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    access_code: Secret | None = None
    rtsp_url: str | None = None
    model: Annotated[str, Field(max_length=32, pattern=NoControl)] = ""
    mqtt_port: Annotated[int, Field(ge=1, le=65535)] = 8883
    tls_ca: Annotated[str, Field(max_length=16384, description="PEM of the printer's CA; empty: unverified TLS")] = ""

    @field_validator("rtsp_url")
    @classmethod
    def _rtsp(cls, v: str | None) -> str | None:
        return check_rtsp_url(v)

    @field_validator("tls_ca")
    @classmethod
    def _pem(cls, v: str) -> str:
        if v and "-----BEGIN CERTIFICATE-----" not in v:
            raise ValueError("tlsCa must be a PEM certificate (-----BEGIN CERTIFICATE-----)")
        return v


class PrinterOut(Camel):
    """A printer as the API returns it (no secret in clear)."""

    id: str
    name: str
    host: str
    serial: str
    access_code_set: bool
    rtsp_url: str | None
    model: str
    mqtt_port: int
    tls_ca_set: bool
    created_at: int = Field(description="ms since the Unix epoch")
    updated_at: int = Field(description="ms since the Unix epoch")


# --- cameras ---------------------------------------------------------------------------

CameraKind = Literal["rtsp", "webrtc", "push"]


class CameraIn(Camel):
    """``POST /api/cameras`` and ``PUT /api/cameras/{id}`` body.

    ``kind``: ``rtsp`` (pulled from ``rtspUrl``, required; optional ``username``/``password``),
    ``webrtc`` (publishes over WHIP or ``/api/signaling/offer``), ``push`` (frames POSTed to
    ``/ingest/{id}``).  ``publishToken`` (webrtc/push) is the bearer token the camera must
    present.  On PUT an absent ``password``/``publishToken`` keeps the stored one, ``""`` clears it.
    """

    id: DeviceIdField | None = None
    name: Name = ""
    kind: CameraKind
    rtsp_url: str | None = None
    username: Annotated[str, Field(max_length=128, pattern=NoControl)] = ""
    password: Annotated[str, Field(max_length=128, pattern=NoControl)] | None = None
    publish_token: Annotated[str, Field(max_length=128, pattern=r"^[^\x00-\x20\x7f]*$")] | None = None

    @field_validator("rtsp_url")
    @classmethod
    def _rtsp(cls, v: str | None) -> str | None:
        return check_rtsp_url(v)

    @model_validator(mode="after")
    def _kind_needs(self) -> CameraIn:
        if self.kind == "rtsp" and not self.rtsp_url:
            raise ValueError("an rtsp camera needs rtspUrl")
        return self


class CameraOut(Camel):
    """A camera as the API returns it."""

    id: str
    name: str
    kind: CameraKind
    rtsp_url: str | None
    username: str
    password_set: bool
    publish_token_set: bool
    created_at: int
    updated_at: int


# --- commands --------------------------------------------------------------------------


class PrinterCommand(BaseModel):
    """``POST /api/printers/{id}/command``: ``{"type": "pause"}``, ``{"type": "light", "on": false}``,
    ``{"type": "speed", "level": 1-4}`` (silent, standard, sport, ludicrous), ``{"type": "gcode",
    "line": "G28"}`` (Bambu ``print.gcode_line``)."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["pause", "resume", "stop", "light", "speed", "gcode"]
    on: bool | None = None
    level: Annotated[int, Field(ge=1, le=4)] | None = None
    line: Annotated[str, Field(min_length=1, max_length=4096)] | None = None

    @model_validator(mode="after")
    def _needs(self) -> PrinterCommand:
        need = {"light": "on", "speed": "level", "gcode": "line"}.get(self.type)
        if need and getattr(self, need) is None:
            raise ValueError(f"command {self.type!r} needs {need!r}")
        return self

    def to_bus(self) -> dict[str, Any]:
        """The ``camhub.device.<id>.cmd`` request (docs/bus.md "Devices")."""
        return self.model_dump(exclude_none=True)


class CameraConfig(BaseModel):
    """``POST /api/cameras/{id}/config``: any of ``bitrate`` (kbit/s), ``fps``, ``width``, ``height``."""

    model_config = ConfigDict(extra="ignore")

    bitrate: Annotated[int, Field(ge=16, le=200_000, description="kbit/s")] | None = None
    #: Whole frames per second: the camera's data channel refuses 30.0.
    fps: Annotated[int, Field(ge=1, le=240, description="frames per second")] | None = None
    width: Annotated[int, Field(ge=16, le=7680)] | None = None
    height: Annotated[int, Field(ge=16, le=4320)] | None = None

    @model_validator(mode="after")
    def _some(self) -> CameraConfig:
        if all(v is None for v in (self.bitrate, self.fps, self.width, self.height)):
            raise ValueError("give at least one of bitrate, fps, width, height")
        return self


# --- replies ---------------------------------------------------------------------------


class Ok(BaseModel):
    ok: Literal[True] = True


class ErrorBody(BaseModel):
    """Every 4xx/5xx body."""

    ok: Literal[False] = False
    error: str
    code: str | None = Field(None, description="VMS routes only: SESSION_TOKEN_INVALID, CAMERA_MISMATCH, ...")


class CommandReply(BaseModel):
    ok: Literal[True] = True
    ack: dict[str, Any] | None = Field(None, description="the camera's data-channel answer (cameras only)")


class PushReply(BaseModel):
    ok: Literal[True] = True
    viewers: int = Field(description="viewers of the stream (200 when > 0, 202 when 0)")


class HistoryPoint(BaseModel):
    model_config = ConfigDict(extra="allow")
    ts: int = Field(description="ms since the Unix epoch")


class History(BaseModel):
    ok: Literal[True] = True
    id: str
    minutes: int
    points: list[HistoryPoint]


class StreamOut(Camel):
    """One stream of ``GET /api/streams``; rates from the owning ingest's heartbeat."""

    stream: str
    codec: str
    width: int
    height: int
    fps: float
    source: str
    owner: str
    up: bool
    epoch: int
    started_at: int
    bitrate: float | None = Field(None, description="bit/s")
    keyframe_interval: float | None = Field(None, description="s")
    last_frame_age: float | None = Field(None, description="s")
    viewers: int
    viewers_by_path: dict[str, int]
    health: dict[str, Any] | None


class CameraStatus(Camel):
    id: str
    kind: str
    name: str
    connected: bool
    stream: StreamOut | None
    viewers: int


class Health(BaseModel):
    ok: bool
    status: Literal["running", "degraded"]
    service: str
    version: str
    instance: str
    active_streams: int
    total_connections: int
    nats: bool
    services: dict[str, int]


class LiveRequest(BaseModel):
    """``POST /api/cameras/{id}/live`` body (optional)."""

    model_config = ConfigDict(extra="ignore")
    user_id: Annotated[str, Field(max_length=128, pattern=NoControl)] = "api"


class LiveSession(BaseModel):
    ok: Literal[True] = True
    session_token: str
    offer_url: str
    expires_at: int = Field(description="s since the Unix epoch")
    live_session_id: str


class WebRtcOfferRequest(BaseModel):
    """``POST /api/v1/webrtc/offer`` (briefs/vms-webrtc-offer.md 1.1)."""

    model_config = ConfigDict(extra="ignore")
    camera_id: Annotated[str, Field(max_length=128)]
    sdp: Annotated[str, Field(max_length=65536)]
    sdp_type: str = "offer"
    session_token: Annotated[str, Field(max_length=4096)]


class WebRtcAnswer(BaseModel):
    ok: Literal[True] = True
    sdp: str
    sdp_type: Literal["answer"] = "answer"
    peer_id: str
    expires_at: int


class SignalingOffer(BaseModel):
    """``POST /api/signaling/offer`` (briefs/webrtc-camera-server.md): a camera's offer."""

    model_config = ConfigDict(extra="ignore")
    camera_id: DeviceIdField
    sdp: Annotated[str, Field(max_length=65536)]
    type: str = "offer"
    token: Annotated[str, Field(max_length=1024)] = ""


class SignalingAnswer(BaseModel):
    ok: Literal[True] = True
    type: Literal["answer"] = "answer"
    sdp: str
    session_id: str
    camera_id: str
