"""The device and camera registry in KV ``camhub-devices`` (DESIGN.md section 5).

Key = the device id; value = a msgpack map of :class:`Device`.  Secrets (``access_code``,
``password``, ``publish_token`` and a password inside ``rtsp_url``) are encrypted with Fernet
(from the ``cryptography`` package) when ``CAMHUB_SECRET_KEY`` is set: the stored string is
``enc:<token>``.  Nothing here logs a secret; the gateway returns them only as ``...Set: true``.

Services follow changes live with :meth:`Registry.watch`.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import AsyncIterator
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from cryptography.fernet import Fernet, InvalidToken
from pydantic import BaseModel, Field, field_validator

from services.common import codec
from services.common.bus import Bus
from services.common.ids import validate_id
from services.common.subjects import KV_DEVICES

DeviceKind = Literal["bambu", "rtsp", "webrtc", "push"]
SECRET_FIELDS = ("access_code", "password", "publish_token")


class Device(BaseModel):
    """One registered device or camera (stored form; secrets in clear in memory only).

    ``kind``: ``bambu`` (printer: host, serial, access_code, optional rtsp_url override),
    ``rtsp`` (camera pulled from rtsp_url, optional username/password), ``webrtc`` (camera that
    publishes over WHIP / signaling, optional publish_token), ``push`` (frames POSTed to
    ``/ingest/{id}``, optional publish_token).
    """

    id: str
    kind: DeviceKind
    name: str = ""
    host: str = ""
    serial: str = ""
    access_code: str = ""
    rtsp_url: str = ""
    username: str = ""
    password: str = ""
    publish_token: str = ""
    mqtt_port: int = Field(8883, ge=1, le=65535)
    camera_port: int = Field(6000, ge=1, le=65535)
    tls_ca: str = ""
    model: str = ""
    created_at: int = 0
    updated_at: int = 0

    @field_validator("id")
    @classmethod
    def _id_rule(cls, v: str) -> str:
        return validate_id(v, "device id")


class DeviceExists(ValueError):
    """:meth:`Registry.create` found a device with the same id."""


def _fernet(secret_key: str) -> Fernet | None:
    if not secret_key:
        return None
    digest = hashlib.sha256(secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def split_url_password(url: str) -> tuple[str, str]:
    """``rtsp://u:p@h/x`` -> (``rtsp://u@h/x``, ``p``); URLs without a password come back whole."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, ""
    if parts.password is None:
        return url, ""
    netloc = parts.netloc.split("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc}" if user else netloc)), parts.password


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``****`` (for logs and API responses)."""
    bare, pw = split_url_password(url)
    if not pw:
        return url
    parts = urlsplit(bare)
    user, host = parts.netloc.split("@", 1) if "@" in parts.netloc else ("", parts.netloc)
    return urlunsplit(parts._replace(netloc=f"{user}:****@{host}"))


class Registry:
    """Read and write :class:`Device` records; secrets sealed at rest with ``secret_key``."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._box = _fernet(bus.settings.secret_key)

    def _seal(self, value: str) -> str:
        if not value or self._box is None:
            return value
        return "enc:" + self._box.encrypt(value.encode()).decode()

    def _open(self, value: str) -> str:
        if not value.startswith("enc:"):
            return value
        if self._box is None:
            raise ValueError("stored secret is encrypted but CAMHUB_SECRET_KEY is not set")
        try:
            return self._box.decrypt(value[4:].encode()).decode()
        except InvalidToken:
            raise ValueError("stored secret cannot be decrypted with CAMHUB_SECRET_KEY") from None

    def _encode(self, dev: Device) -> bytes:
        raw = dev.model_dump()
        for f in SECRET_FIELDS:
            raw[f] = self._seal(raw[f])
        bare, pw = split_url_password(raw["rtsp_url"])
        if pw:
            raw["rtsp_url"] = bare
            raw["rtsp_password"] = self._seal(pw)
        return codec.pack(raw)

    def decode(self, data: bytes) -> Device:
        """Decode a stored value.

        Raises:
            codec.PayloadError, pydantic.ValidationError, ValueError: bad record.
        """
        raw: dict[str, Any] = codec.unpack_map(data)
        for f in SECRET_FIELDS:
            if isinstance(raw.get(f), str):
                raw[f] = self._open(raw[f])
        pw = raw.pop("rtsp_password", "")
        if pw and raw.get("rtsp_url"):
            parts = urlsplit(raw["rtsp_url"])
            user, host = parts.netloc.split("@", 1) if "@" in parts.netloc else ("", parts.netloc)
            from urllib.parse import quote

            raw["rtsp_url"] = urlunsplit(parts._replace(netloc=f"{user}:{quote(self._open(pw), safe='')}@{host}"))
        return Device.model_validate(raw)

    async def _kv(self) -> Any:
        return await self.bus.kv(KV_DEVICES, history=5)

    async def get(self, device_id: str) -> Device | None:
        """The device, or None when absent (or deleted)."""
        validate_id(device_id, "device id")
        kv = await self._kv()
        try:
            entry = await kv.get(device_id)
        except Exception as exc:
            if "not found" in str(exc).lower() or "deleted" in str(exc).lower():
                return None
            raise
        if not entry.value:
            return None
        return self.decode(entry.value)

    async def put(self, dev: Device) -> Device:
        """Store ``dev`` (timestamps set here); returns it."""
        now = int(time.time() * 1000)
        dev = dev.model_copy(update={"updated_at": now, "created_at": dev.created_at or now})
        kv = await self._kv()
        await kv.put(dev.id, self._encode(dev))
        return dev

    async def create(self, dev: Device) -> Device:
        """Store ``dev`` only if no record with its id exists (KV create, so two writers racing
        for one id cannot both win); timestamps set here.

        Raises:
            DeviceExists: a device with this id is already stored.
        """
        now = int(time.time() * 1000)
        dev = dev.model_copy(update={"updated_at": now, "created_at": now})
        kv = await self._kv()
        try:
            await kv.create(dev.id, self._encode(dev))
        except Exception as exc:
            if "wrong last sequence" in str(exc).lower() or "exists" in str(exc).lower():
                raise DeviceExists(f"device {dev.id!r} already exists") from None
            raise
        return dev

    async def delete(self, device_id: str) -> bool:
        """Delete; False when it did not exist."""
        if await self.get(device_id) is None:
            return False
        kv = await self._kv()
        await kv.delete(device_id)
        return True

    async def list(self) -> list[Device]:
        """Every device, sorted by id; unreadable records are skipped."""
        kv = await self._kv()
        try:
            keys = await kv.keys()
        except Exception as exc:
            if "no keys" in str(exc).lower():
                return []
            raise
        out = []
        for key in sorted(keys):
            try:
                dev = await self.get(key)
            except Exception:
                continue
            if dev is not None:
                out.append(dev)
        return out

    async def watch(self) -> AsyncIterator[tuple[str, Device | None]]:
        """Yield ``(id, device)`` for every current record, then for every change; ``device`` is
        None on delete.  Unreadable records are skipped."""
        kv = await self._kv()
        watcher = await kv.watchall()
        try:
            async for entry in watcher:
                if entry is None:
                    continue
                if entry.operation in ("DEL", "PURGE") or not entry.value:
                    yield entry.key, None
                    continue
                try:
                    yield entry.key, self.decode(entry.value)
                except Exception:
                    continue
        finally:
            try:
                await watcher.stop()
            except Exception:
                pass
