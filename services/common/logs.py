"""JSON-lines logging to stdout, with secrets scrubbed before anything is written.

Each record is one line: ``{"ts": "...Z", "level": "INFO", "service": "hls", "logger": ...,
"msg": ..., **extra}``.  :class:`ScrubFilter` replaces passwords in URLs
(``rtsps://bblp:****@host``), bearer tokens, and values of keys named like secrets
(``access_code``, ``accessCode``, ``password``, ``token``) with ``****``, so a secret that
slips into a message is never logged.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

_URL_CRED = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s/]+)@", re.I)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.I)
_KEYVAL = re.compile(
    r"""(?P<k>["']?(?:access_?code|accessCode|password|passwd|secret|token|api_token|publish_token)["']?\s*[:=]\s*)(?P<q>["']?)(?P<v>[^"',}\s]+)""",
    re.I,
)


def scrub(text: str) -> str:
    """Return ``text`` with credentials replaced by ``****``."""
    text = _URL_CRED.sub(lambda m: f"{m['scheme']}{m['user']}:****@", text)
    text = _BEARER.sub(r"\1****", text)
    return _KEYVAL.sub(lambda m: f"{m['k']}{m['q']}****", text)


_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one scrubbed JSON object."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = value if isinstance(value, int | float | bool) or value is None else scrub(str(value))
        if record.exc_info:
            out["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False)


def setup_logging(service: str, level: str = "INFO") -> None:
    """Send all logging to stdout as JSON lines tagged with ``service``."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if level.upper() in logging._nameToLevel else "INFO")
    for noisy in ("aioice", "aiortc", "nats", "amqtt", "transitions", "uvicorn.access", "libav"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
