"""The Bambu P1/A1 camera client: TLS port 6000, auth packet, JPEG frames (codec ``jpeg``).

:class:`BambuCameraSource` connects to ``host:port`` with TLS and no certificate verification
(the printer's certificate is issued by Bambu's private CA for ``CN=<serial>``; see
``research/bambu.md`` 1.2 and 4.2), writes the auth packet, parses frames with
:class:`~services.ingest.bambu_proto.FrameParser` and publishes each JPEG as a keyframe with a
wall-clock PTS (90 kHz ticks since the Unix epoch).  On any failure - refused, TLS error, the
printer closing the connection (wrong access code), junk, no frame for ``read_timeout`` s - it
publishes ``down`` (when it was up) and reconnects with :class:`~services.ingest.backoff.Backoff`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time

from services.common.bus import Bus
from services.common.frames import CLOCK_HZ, Frame
from services.ingest.backoff import Backoff
from services.ingest.bambu_proto import BambuProtocolError, FrameParser, auth_packet
from services.ingest.health import StreamHealth
from services.ingest.publisher import StreamPublisher

log = logging.getLogger("camhub.ingest.bambu")


def insecure_tls() -> ssl.SSLContext:
    """TLS client context without certificate or host name checks (printer certificates)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class BambuCameraSource:
    """Pull the port-6000 JPEG camera of a printer into ``stream`` until cancelled.

    Args:
        host, port: the printer (port 6000 unless the registry says otherwise).
        access_code: the printer's LAN access code (never logged).
        connect_timeout: seconds for TCP + TLS.
        read_timeout: seconds without a byte before the connection counts as dead (printers
            send a frame every 1-2 s).
    """

    def __init__(
        self,
        bus: Bus,
        stream: str,
        host: str,
        port: int,
        access_code: str,
        owner: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.stream = stream
        self.host = host
        self.port = port
        self._access_code = access_code
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.publisher = StreamPublisher(bus, stream, "bambu-jpeg", owner)
        self.backoff = backoff or Backoff()
        self.connects = 0

    @property
    def health(self) -> StreamHealth:
        return self.publisher.health

    async def run(self) -> None:
        """Connect, publish, reconnect with backoff; forever (cancel to stop)."""
        try:
            while True:
                if await self._connection():
                    self.backoff.reset()
                delay = self.backoff.next()
                self.health.reconnects += 1
                await asyncio.sleep(delay)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.publisher.stop("source removed", state="down"), 3.0)
            self.publisher.close()

    async def _connection(self) -> bool:
        self.connects += 1
        self.health.set_state("connecting", self.health.error)
        where = f"{self.host}:{self.port}"
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=insecure_tls()), self.connect_timeout
            )
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            reason = f"cannot connect to the printer camera at {where}: {exc or type(exc).__name__}"
            log.warning("stream %s: %s", self.stream, reason)
            self.health.set_state("error", reason)
            return False
        delivered = False
        reason = "connection closed"
        try:
            writer.write(auth_packet(self._access_code))
            await writer.drain()
            parser = FrameParser()
            while True:
                data = await asyncio.wait_for(reader.read(256 * 1024), self.read_timeout)
                if not data:
                    reason = "the printer closed the camera connection" + (
                        "" if delivered else " before the first frame (wrong access code?)"
                    )
                    break
                for jpeg in parser.feed(data):
                    if not self.publisher.live:
                        await self.publisher.start("jpeg", reason="reconnected")
                        self.health.error = ""
                    pts = time.time_ns() * CLOCK_HZ // 1_000_000_000
                    if await self.publisher.publish(Frame("jpeg", pts, pts, True, jpeg)):
                        delivered = True
        except BambuProtocolError as exc:
            reason = f"the peer at {where} does not speak the Bambu camera protocol: {exc}"
        except ValueError as exc:  # an access code longer than the packet's 32 bytes
            reason = f"cannot authenticate to {where}: {exc}"
        except TimeoutError:
            reason = f"no camera data from {where} for {self.read_timeout:g} s"
        except (OSError, ssl.SSLError) as exc:
            reason = f"camera connection to {where} failed: {exc or type(exc).__name__}"
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
        log.warning("stream %s: %s", self.stream, reason)
        await self.publisher.stop(reason, state="error")
        self.health.error = reason
        return delivered
