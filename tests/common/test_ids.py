"""The id rule holds everywhere an id enters: validators, subject builders, registry records."""

from __future__ import annotations

import pydantic
import pytest

from services.common import subjects
from services.common.ids import InvalidId, is_valid_id, sanitize_token, validate_id
from services.common.registry import Device

BAD = ["a.b", "*", ">", "", "a" * 64, "Cam1", "cam 1", "cam\n", "-lead", "_lead", "a*b", "a>b", "ä", None, 5]
GOOD = ["a", "cam1", "printer-01", "x_y", "0", "a" * 63]


@pytest.mark.parametrize("value", BAD)
def test_invalid_ids_are_rejected(value: object) -> None:
    assert not is_valid_id(value)
    with pytest.raises(InvalidId, match="invalid"):
        validate_id(value)


@pytest.mark.parametrize("value", GOOD)
def test_valid_ids_pass(value: str) -> None:
    assert validate_id(value) == value


@pytest.mark.parametrize("value", [v for v in BAD if isinstance(v, str)])
@pytest.mark.parametrize(
    "builder",
    [
        subjects.media_frames,
        subjects.media_info,
        subjects.media_events,
        subjects.hls_get,
        subjects.ingest_push,
        subjects.camera_cmd,
        subjects.device_cmd,
        subjects.device_status,
    ],
)
def test_subject_builders_refuse_bad_ids(builder: object, value: str) -> None:
    with pytest.raises(InvalidId):
        builder(value)  # type: ignore[operator]


def test_subject_builders_make_the_documented_subjects() -> None:
    assert subjects.media_frames("cam1") == "camhub.media.cam1.frames"
    assert subjects.hls_get("cam1") == "camhub.hls.cam1.get"
    assert subjects.device_cmd("p1") == "camhub.device.p1.cmd"
    assert subjects.webrtc_session("abc", "delete") == "camhub.webrtc.session.abc.delete"
    assert subjects.heartbeat("hls", "host-1") == "camhub.svc.hls.host-1.heartbeat"
    assert subjects.stream_of("camhub.media.cam1.frames") == "cam1"
    assert subjects.stream_of("camhub.ingest.push.cam2") == "cam2"
    with pytest.raises(ValueError):
        subjects.webrtc_session("abc", "rm -rf")


@pytest.mark.parametrize("value", ["a.b", "*", ">", "", "UPPER"])
def test_registry_records_refuse_bad_ids(value: str) -> None:
    with pytest.raises(pydantic.ValidationError):
        Device(id=value, kind="rtsp")


def test_sanitize_token_always_yields_a_valid_id() -> None:
    for raw in ["My.Host.local", "***", "a" * 200, "", "Ünïcode-box"]:
        assert is_valid_id(sanitize_token(raw))
