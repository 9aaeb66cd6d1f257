"""Where a printer's camera is, from its reports (research/bambu.md section 4).

* RTSPS models (X1, X1E, P2S, H2*, X2D) report ``print.ipcam.rtsp_url`` such as
  ``rtsps://192.168.1.64:322/streaming/live/1``, without credentials.  The host in it can be
  wrong (ha-bambulab issue #189), so camhub uses the configured host, adds port 322 when missing
  (older X1 firmware omitted it), and never puts credentials in the status.
  ``rtsp_url: "disable"`` means LAN Only Liveview is off: the camera is shown disabled.
* P1/A1 models report no ``rtsp_url``: their camera is JPEG frames over TLS on port 6000.
* A user override (registry ``rtsp_url``) wins over both.

The status carries ``{source, url, host, port, disabled, reason}`` (docs/bus.md); ingest adds
``bblp:<access code>`` with :func:`with_credentials` when it connects.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

RTSPS_PORT = 322
JPEG_PORT = 6000
DISABLED_REASON = 'LAN Only Liveview is off on the printer (ipcam.rtsp_url is "disable")'
#: Model name fragments of printers with the port-6000 JPEG camera (ha-bambulab ``CAMERA_IMAGE``).
JPEG_MODELS = ("P1P", "P1S", "A1", "A2L")


def _netloc(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"{shown}:{port}" if port else shown


def strip_credentials(url: str) -> str:
    """``url`` without any ``user:password@`` part (unparseable URLs come back as ``""``)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return ""
    if not host:
        return ""
    return urlunsplit(parts._replace(netloc=_netloc(host, port)))


def rtsp_url(reported: str, host: str) -> str | None:
    """The printer's reported RTSP URL with ``host`` as its host, port 322 when none was given,
    and no credentials; None when ``reported`` is not an ``rtsp``/``rtsps`` URL."""
    try:
        parts = urlsplit(reported.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("rtsp", "rtsps") or not parts.hostname:
        return None
    return urlunsplit(parts._replace(scheme=parts.scheme.lower(), netloc=_netloc(host, port or RTSPS_PORT)))


def with_credentials(url: str, access_code: str, user: str = "bblp") -> str:
    """``url`` with ``user:access_code@`` added (percent-encoded), for the RTSP client only;
    never log or publish the result."""
    parts = urlsplit(strip_credentials(url))
    auth = f"{quote(user, safe='')}:{quote(access_code, safe='')}@"
    return urlunsplit(parts._replace(netloc=auth + parts.netloc))


def is_jpeg_model(model: str) -> bool:
    """True for model names of the P1/A1 families (``"Bambu Lab P1S"``, ``"A1 mini"``)."""
    upper = model.upper()
    return any(tag in upper for tag in JPEG_MODELS)


def camera_info(
    ipcam: Any,
    *,
    host: str,
    override_url: str = "",
    camera_port: int = JPEG_PORT,
    model: str = "",
    complete: bool = False,
) -> dict[str, Any]:
    """The status ``camera`` map: ``source`` (``rtsp``, ``bambu-jpeg`` or ``none``), ``url``
    (no credentials; ``tls://host:port`` for the JPEG camera), ``host``, ``port``, ``disabled``,
    ``reason``.  ``complete`` says whether a full report has been seen (before that an absent
    ``rtsp_url`` proves nothing)."""
    if override_url:
        url = strip_credentials(override_url)
        if url:
            parts = urlsplit(url)
            return _info("rtsp", url, parts.hostname or "", parts.port or RTSPS_PORT)
        return _info("none", "", "", None, disabled=True, reason="the configured camera URL is not a valid URL")
    reported = ipcam.get("rtsp_url") if isinstance(ipcam, dict) else None
    if isinstance(reported, str) and reported.strip():
        if reported.strip().lower() == "disable":
            return _info("rtsp", "", host, RTSPS_PORT, disabled=True, reason=DISABLED_REASON)
        rewritten = rtsp_url(reported, host)
        if rewritten is None:
            return _info("none", "", "", None, disabled=True, reason="the printer reported an unusable camera URL")
        return _info("rtsp", rewritten, host, urlsplit(rewritten).port or RTSPS_PORT)
    if is_jpeg_model(model) or (complete and isinstance(ipcam, dict)):
        return _info("bambu-jpeg", f"tls://{_netloc(host, camera_port)}", host, camera_port)
    why = "the printer reports no camera" if complete else "waiting for the printer's first full report"
    return _info("none", "", "", None, reason=why)


def _info(
    source: str, url: str, host: str, port: int | None, *, disabled: bool = False, reason: str = ""
) -> dict[str, Any]:
    return {"source": source, "url": url, "host": host, "port": port, "disabled": disabled, "reason": reason}
