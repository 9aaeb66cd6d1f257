"""RTSP/RTSPS pull with PyAV (FFmpeg 8.1 bundled in the wheel), reconnecting forever.

:class:`RtspSource` owns one stream: it runs a :class:`RtspReader` thread per connection (the
PyAV open + demux loop blocks, so it never runs on the event loop), turns packets into frames
(:class:`~services.ingest.demux.PacketConverter`) and publishes them with a
:class:`~services.ingest.publisher.StreamPublisher`.  Every (re)connect is a new epoch (info,
``up``, ``discontinuity``); every loss publishes ``down``; the next attempt waits
:class:`~services.ingest.backoff.Backoff` (1 s -> 30 s, reset once frames flowed), also when the
very first connect fails.

FFmpeg options (libavformat ``rtsp`` demuxer, FFmpeg 8.1 docs "rtsp" section):
``rtsp_transport=tcp`` (RTP interleaved on the RTSP connection, RFC 2326 10.12), ``timeout`` = the
socket I/O timeout in microseconds (``stimeout`` no longer exists and is silently ignored),
``allowed_media_types=video``.  FFmpeg's ``timeout`` alone bounds connect, the RTSP handshake and
each read (a stalled server is given up after about twice the timeout, measured).  PyAV's own
``timeout=(open_s, read_s)`` is not used: its interrupt callback takes the GIL on every FFmpeg
I/O poll, which with 30 streams doubled ingest CPU and made frames late
(``benchmarks/bench_ingest.py``).

RTSPS (``rtsps://``, RTSP over TLS, e.g. Bambu X1 ``rtsps://bblp:<code>@<host>:322/streaming/live/1``)
adds ``tls_verify=0``: printers and cameras present self-signed certificates.
Credentials ride in the URL (FFmpeg answers Basic and Digest challenges, RFC 2617); the
registry's ``username``/``password`` are inserted when the URL has none.  No URL with a password
is ever logged or put in health: errors are scrubbed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import av

from services.common.bus import Bus
from services.common.logs import scrub
from services.common.registry import redact_url
from services.ingest.backoff import Backoff
from services.ingest.demux import CODECS, ConvertError, PacketConverter
from services.ingest.publisher import StreamPublisher

log = logging.getLogger("camhub.ingest.rtsp")

#: Frames waiting between the reader thread and the loop; beyond this the reader drops frames
#: up to the next keyframe (counted as ``dropped``).
QUEUE_FRAMES = 120


class RtspUrlError(ValueError):
    """The configured URL is not an rtsp:// or rtsps:// URL with a host."""


def with_credentials(url: str, username: str = "", password: str = "") -> str:
    """``url`` with ``username:password@`` inserted (URL-quoted) when it carries no user.

    Raises:
        RtspUrlError: not ``rtsp://`` / ``rtsps://``, or no host.
    """
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise RtspUrlError(f"bad RTSP URL: {exc}") from None
    if parts.scheme not in ("rtsp", "rtsps") or not parts.hostname:
        raise RtspUrlError(f"not an rtsp:// or rtsps:// URL: {redact_url(url)!r}")
    if parts.username or not username:
        return url
    cred = quote(username, safe="")
    if password:
        cred += ":" + quote(password, safe="")
    return urlunsplit(parts._replace(netloc=f"{cred}@{parts.netloc}"))


def av_options(url: str, timeout_s: float) -> dict[str, str]:
    """The FFmpeg demuxer options for ``url`` (see the module docstring)."""
    opts = {
        "rtsp_transport": "tcp",
        "timeout": str(int(timeout_s * 1_000_000)),
        "allowed_media_types": "video",
        "max_delay": "500000",
    }
    if url.startswith("rtsps:"):
        opts["tls_verify"] = "0"
    return opts


_HINTS = {
    "HTTPUnauthorizedError": "authentication failed - check the user and password (printers: the access code)",
    "HTTPForbiddenError": "access forbidden",
    "HTTPNotFoundError": "no such stream path on the server",
    "InvalidDataError": "the server did not answer as an RTSP server",
    "ConnectionRefusedError": "connection refused",
    "TimeoutError": "timed out",
}


def describe_error(exc: BaseException, url: str) -> str:
    """A one-line, secret-free description of an open/read failure:
    ``rtsp://user:****@host/path: <hint> (<FFmpeg error>)``."""
    name = type(exc).__name__
    text = str(getattr(exc, "strerror", None) or str(exc) or name).replace(url, redact_url(url))
    hint = _HINTS.get(name)
    detail = f"{hint} ({name}: {text})" if hint else f"{name}: {text}"
    return scrub(f"{redact_url(url)}: {detail}")[:400]


@dataclass(slots=True)
class StreamParams:
    """What the demuxer learned when the stream opened."""

    codec: str
    width: int
    height: int
    fps: float
    config: bytes


Event = tuple[str, Any]


class RtspReader(threading.Thread):
    """One connection: open, demux, convert; events go to ``emit`` (called via the loop).

    Events: ``("open", StreamParams)``, ``("frame", Frame)``, ``("lost", n)``,
    ``("dropped", reason)``, then exactly one of ``("error", message)`` / ``("eof", message)``.
    """

    def __init__(
        self,
        url: str,
        timeout_s: float,
        loop: asyncio.AbstractEventLoop,
        emit: Callable[[Event], None],
        name: str = "rtsp",
    ) -> None:
        super().__init__(name=f"rtsp-{name}", daemon=True)
        self.url = url
        self.timeout_s = timeout_s
        self.loop = loop
        self._emit_cb = emit
        self._stop_flag = threading.Event()

    def stop(self) -> None:
        """Ask the thread to end (it checks between packets; a stalled read ends with FFmpeg's
        ``timeout``)."""
        self._stop_flag.set()

    @property
    def stopping(self) -> bool:
        return self._stop_flag.is_set()

    def _emit(self, event: Event) -> None:
        try:
            self.loop.call_soon_threadsafe(self._emit_cb, event)
        except RuntimeError:  # the loop is closed: the process is ending
            self._stop_flag.set()

    def run(self) -> None:
        container: Any = None
        try:
            container = av.open(self.url, options=av_options(self.url, self.timeout_s))
            if not container.streams.video:
                self._emit(("error", "the RTSP source has no video stream"))
                return
            st = container.streams.video[0]
            cc = st.codec_context
            codec = CODECS.get(cc.name)
            if codec is None:
                self._emit(("error", f"the RTSP video codec {cc.name!r} is not supported (H.264 and H.265 are)"))
                return
            rate = st.average_rate or st.guessed_rate or cc.framerate
            fps = float(rate) if rate else 0.0
            tb = st.time_base or Fraction(1, 90000)
            conv = PacketConverter(codec, bytes(cc.extradata or b""), Fraction(tb), fps)
            self._emit(("open", StreamParams(codec, int(cc.width or 0), int(cc.height or 0), fps, conv.config)))
            for pkt in container.demux(st):
                if self.stopping:
                    return
                if pkt.size == 0:
                    continue
                if pkt.is_corrupt:
                    self._emit(("lost", 1))
                try:
                    frames = conv.convert(bytes(pkt), pkt.pts, pkt.dts)
                except ConvertError:
                    self._emit(("dropped", "truncated NAL unit"))
                    continue
                for f in frames:
                    self._emit(("frame", f))
            for f in conv.flush():
                self._emit(("frame", f))
            self._emit(("eof", "the RTSP source ended the stream"))
        except Exception as exc:
            if not self.stopping:
                self._emit(("error", describe_error(exc, self.url)))
        finally:
            if container is not None:
                with contextlib.suppress(Exception):
                    container.close()
            self._emit(("closed", None))


class RtspSource:
    """Pull ``url`` into ``stream`` until cancelled; see the module docstring.

    Args:
        url: the RTSP(S) URL, credentials included (never logged).
        source: the info ``source`` value (``rtsp``).
        timeout_s: connect and read timeout, seconds (``CAMHUB_RTSP_TIMEOUT_SECONDS``).
    """

    def __init__(
        self,
        bus: Bus,
        stream: str,
        url: str,
        owner: str,
        *,
        timeout_s: float = 5.0,
        source: str = "rtsp",
        backoff: Backoff | None = None,
    ) -> None:
        self.bus = bus
        self.stream = stream
        self.url = url
        self.timeout_s = timeout_s
        self.publisher = StreamPublisher(bus, stream, source, owner)
        self.backoff = backoff or Backoff()
        self.connects = 0
        self._reader: RtspReader | None = None

    @property
    def health(self) -> Any:
        return self.publisher.health

    async def run(self) -> None:
        """Connect, publish, reconnect with backoff; forever (cancel to stop)."""
        try:
            while True:
                delivered = await self._connection()
                if delivered:
                    self.backoff.reset()
                delay = self.backoff.next()
                self.publisher.health.reconnects += 1
                log.info("stream %s: reconnecting to %s in %.1f s", self.stream, redact_url(self.url), delay)
                await asyncio.sleep(delay)
        finally:
            if self._reader is not None:
                self._reader.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.publisher.stop("source removed", state="down"), 3.0)
            self.publisher.close()

    async def _connection(self) -> bool:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event] = asyncio.Queue()
        state = {"frames": 0, "skip": False}

        def emit(event: Event) -> None:
            if event[0] == "frame":
                if state["skip"] and not event[1].key:
                    self.publisher.drop("queue full")
                    return
                state["skip"] = False
                if state["frames"] >= QUEUE_FRAMES:
                    state["skip"] = True
                    self.publisher.drop("queue full")
                    return
                state["frames"] += 1
            queue.put_nowait(event)

        self.publisher.health.set_state("connecting", self.publisher.health.error)
        reader = RtspReader(self.url, self.timeout_s, loop, emit, self.stream)
        self._reader = reader
        reader.start()
        self.connects += 1
        delivered = False
        reason, failed = "connection closed", False
        started_at = time.monotonic()
        try:
            while True:
                kind, value = await queue.get()
                if kind == "frame":
                    state["frames"] -= 1
                    if self.publisher.live and await self.publisher.publish(value):
                        delivered = True
                elif kind == "open":
                    p: StreamParams = value
                    await self.publisher.start(
                        p.codec, width=p.width, height=p.height, fps=p.fps, config=p.config, reason="reconnected"
                    )
                    self.publisher.health.error = ""
                    log.info(
                        "stream %s: connected to %s (%s %dx%d) in %.2f s",
                        self.stream,
                        redact_url(self.url),
                        p.codec,
                        p.width,
                        p.height,
                        time.monotonic() - started_at,
                    )
                elif kind == "lost":
                    self.publisher.lost(int(value))
                elif kind == "dropped":
                    self.publisher.drop(str(value))
                elif kind in ("error", "eof"):
                    reason, failed = str(value), kind == "error"
                    break
                elif kind == "closed":
                    break
        finally:
            reader.stop()
            self._reader = None
        if failed:
            log.warning("stream %s: %s", self.stream, reason)
        else:
            log.info("stream %s: %s", self.stream, reason)
        await self.publisher.stop(reason, state="error" if failed else "connecting")
        self.publisher.health.error = reason if failed else ""
        return delivered
