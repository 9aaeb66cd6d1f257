"""The wire vocabulary of ``camhub.hls.<stream>.get`` (docs/bus.md, "HLS"), import-light so
the gateway can use :mod:`services.hls.client` without loading PyAV.

Reply headers: ``Camhub-Status`` (the HTTP status), ``Content-Type``, ``Cache-Control``,
``Retry-After`` (on 503); for a body split into chunks above the NATS ``max_payload``,
``Camhub-Total`` (whole body, bytes) and ``Camhub-Offset`` (where this chunk starts, bytes).
"""

from __future__ import annotations

H_STATUS = "Camhub-Status"
H_TOTAL = "Camhub-Total"
H_OFFSET = "Camhub-Offset"

#: Codecs camhub packages as HLS (H.264 in MPEG-TS and fMP4; H.265 and AV1 in fMP4).
PACKAGED_CODECS = ("h264", "h265", "av1")
