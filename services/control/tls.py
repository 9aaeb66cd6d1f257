"""TLS contexts for a printer's MQTT broker (research/bambu.md section 1.2).

Printers present a certificate from Bambu's private CA with ``CN=<serial>``, not the IP, so:

* **CA mode** (``tls_ca`` = a CA file path or inline PEM): the chain is verified and the name is
  checked against the serial, which is also sent as SNI (OpenBambuAPI ``examples/mqtt.py``).
  ``VERIFY_X509_STRICT`` is cleared (Bambu's CA lacks key-usage extensions; Python 3.13 rejects
  it otherwise).
* **unverified mode** (no CA, the default like ha-bambulab's ``disable_ssl_verify`` and
  bambulabs_api): encrypted but not authenticated; :func:`client_context` logs a warning once
  per printer.
"""

from __future__ import annotations

import logging
import socket
import ssl
from typing import Any

log = logging.getLogger("camhub.control.tls")
_warned: set[str] = set()


class SniContext(ssl.SSLContext):
    """An SSLContext that always sends (and checks) ``sni_name`` instead of the host dialled."""

    sni_name: str = ""

    def wrap_socket(  # type: ignore[override]
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None,
        session: Any = None,
    ) -> ssl.SSLSocket:
        return super().wrap_socket(
            sock,
            server_side=server_side,
            do_handshake_on_connect=do_handshake_on_connect,
            suppress_ragged_eofs=suppress_ragged_eofs,
            server_hostname=self.sni_name or server_hostname,
            session=session,
        )


def client_context(serial: str, tls_ca: str, device_id: str) -> tuple[ssl.SSLContext, bool]:
    """``(context, verified)`` for connecting to printer ``serial``.

    ``tls_ca``: a path to a PEM CA bundle, PEM text itself, or "" for unverified TLS.
    Blocking (reads the CA file): call it off the event loop.

    Raises:
        OSError: the CA file cannot be read.
        ssl.SSLError: the CA data is not a PEM certificate.
    """
    if not tls_ca:
        if device_id not in _warned:
            _warned.add(device_id)
            log.warning(
                "printer %s: TLS certificate is not verified (set the printer's tls_ca or CAMHUB_MQTT_TLS_CA "
                "to Bambu's CA to verify it)",
                device_id,
            )
        plain = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        plain.check_hostname = False
        plain.verify_mode = ssl.CERT_NONE
        return plain, False
    ctx = SniContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.sni_name = serial
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
    if "-----BEGIN" in tls_ca:
        ctx.load_verify_locations(cadata=tls_ca)
    else:
        ctx.load_verify_locations(cafile=tls_ca)
    return ctx, True
