"""Every NATS subject camhub uses, and the only place one is formatted (docs/bus.md).

Builders validate their id arguments with :func:`services.common.ids.validate_id`, so a subject
can never be widened by a caller-supplied ``.``, ``*`` or ``>``.  Wildcard forms (``*_all``)
are for subscribers.
"""

from __future__ import annotations

from functools import lru_cache

from services.common.ids import validate_id

PREFIX = "camhub"

# --- KV buckets and streams -------------------------------------------------------------
KV_DEVICES = "camhub-devices"
KV_STREAMS = "camhub-streams"
KV_STATUS = "camhub-status"
KV_LEASES = "camhub-leases"
KV_TOKENS = "camhub-tokens"
#: HLS: per stream, where its packager left off (next media sequence number), so a takeover
#: continues the media sequence (docs/bus.md, "HLS").
KV_HLS = "camhub-hls"
#: Gateway cluster secrets shared by its replicas: the generated API token's SHA-256, the VMS signing key.
KV_GATEWAY = "camhub-gateway"
STREAM_STATUS_HISTORY = "CAMHUB_STATUS_HISTORY"

# --- media -------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def media_frames(stream: str) -> str:
    """``camhub.media.<stream>.frames``: one access unit per message (docs/frames.md)."""
    return f"{PREFIX}.media.{validate_id(stream, 'stream id')}.frames"


def media_info(stream: str) -> str:
    """``camhub.media.<stream>.info``: stream description, also kept in KV ``camhub-streams``."""
    return f"{PREFIX}.media.{validate_id(stream, 'stream id')}.info"


def media_events(stream: str) -> str:
    """``camhub.media.<stream>.events``: ``up``, ``down``, ``discontinuity``, ``keyframe-request``."""
    return f"{PREFIX}.media.{validate_id(stream, 'stream id')}.events"


def media_all(stream: str) -> str:
    """``camhub.media.<stream>.*``: frames, info and events of one stream in one subscription,
    so a subscriber sees them in the order the publisher sent them."""
    return f"{PREFIX}.media.{validate_id(stream, 'stream id')}.*"


MEDIA_FRAMES_ALL = f"{PREFIX}.media.*.frames"
MEDIA_INFO_ALL = f"{PREFIX}.media.*.info"
MEDIA_EVENTS_ALL = f"{PREFIX}.media.*.events"


def stream_of(subject: str) -> str:
    """The stream id in a ``camhub.media.<stream>.<kind>`` subject (or push/hls subject)."""
    parts = subject.split(".")
    if len(parts) < 4:
        raise ValueError(f"not a per-stream subject: {subject!r}")
    return parts[2] if parts[1] in ("media", "hls") else parts[3]


# --- HLS ---------------------------------------------------------------------------------


def hls_get(stream: str) -> str:
    """``camhub.hls.<stream>.get``: request ``{path, query}`` -> HLS bytes (docs/bus.md)."""
    return f"{PREFIX}.hls.{validate_id(stream, 'stream id')}.get"


# --- ingest / egress / webrtc -------------------------------------------------------------

INGEST_WHIP = f"{PREFIX}.ingest.whip"
EGRESS_WHEP = f"{PREFIX}.egress.whep"
INGEST_PUSH_ALL = f"{PREFIX}.ingest.push.*"


def ingest_push(stream: str) -> str:
    """``camhub.ingest.push.<stream>``: a frame pushed over HTTP, handed to ingest."""
    return f"{PREFIX}.ingest.push.{validate_id(stream, 'stream id')}"


def ingest_forward(instance: str) -> str:
    """``camhub.ingest.forward.<instance>``: a pushed frame handed to the ingest replica that owns
    the stream (header ``Camhub-Stream``); same body, headers and reply as ``ingest_push``."""
    return f"{PREFIX}.ingest.forward.{validate_id(instance, 'instance')}"


def webrtc_session(sid: str, op: str) -> str:
    """``camhub.webrtc.session.<sid>.<op>``; ``op`` is ``delete``, ``patch`` or ``stats``."""
    if op not in ("delete", "patch", "stats", "*"):
        raise ValueError(f"unknown session op {op!r}")
    return f"{PREFIX}.webrtc.session.{validate_id(sid, 'session id')}.{op}"


# --- cameras and devices -------------------------------------------------------------------


def camera_cmd(camera: str) -> str:
    """``camhub.camera.<id>.cmd``: camera command -> the camera's data-channel ack."""
    return f"{PREFIX}.camera.{validate_id(camera, 'camera id')}.cmd"


def device_cmd(device: str) -> str:
    """``camhub.device.<id>.cmd``: device command -> ``{ok, error?}``."""
    return f"{PREFIX}.device.{validate_id(device, 'device id')}.cmd"


def device_status(device: str) -> str:
    """``camhub.device.<id>.status``: normalized status, also in KV ``camhub-status``."""
    return f"{PREFIX}.device.{validate_id(device, 'device id')}.status"


CAMERA_CMD_ALL = f"{PREFIX}.camera.*.cmd"
DEVICE_CMD_ALL = f"{PREFIX}.device.*.cmd"
DEVICE_STATUS_ALL = f"{PREFIX}.device.*.status"

# --- services ----------------------------------------------------------------------------


def heartbeat(service: str, instance: str) -> str:
    """``camhub.svc.<service>.<instance>.heartbeat``: load figures every few seconds."""
    return f"{PREFIX}.svc.{validate_id(service, 'service')}.{validate_id(instance, 'instance')}.heartbeat"


HEARTBEAT_ALL = f"{PREFIX}.svc.*.*.heartbeat"


def micro_name(service: str) -> str:
    """The NATS micro service name, as ``nats micro ls`` shows it: ``camhub-<service>``."""
    return f"camhub-{validate_id(service, 'service')}"
