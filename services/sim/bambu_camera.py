"""A Bambu P1/A1 camera simulator: TLS on port 6000, auth packet, JPEG frames.

It speaks the protocol in ``shared/research/bambu.md`` section 4.2 (see
:mod:`services.ingest.bambu_proto`): it reads the 80-byte auth packet, closes the connection when
user or access code are wrong (as the printer does, with no reply), then sends each frame as a
16-byte header (its own write) followed by a JFIF JPEG (``FF D8 FF E0``, as ha-bambulab expects),
made from a moving test pattern by FFmpeg's MJPEG encoder (PyAV).  ``--max-clients`` limits
concurrent viewers (P1 printers allow one or two); extra connections are closed after the
handshake.

    camhub sim bambu-camera --port 6000 --access-code 12345678 [--fps 1] [--width 1280 --height 720]
        [--cert cert.pem --key key.pem] [--max-clients 2] [--frames N]

Without ``--cert`` a self-signed certificate (``CN=<serial>``, SAN 127.0.0.1) is generated in a
temporary directory with ``cryptography``.  Binds 127.0.0.1 only; prints ``READY <port>``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import ipaddress
import signal
import ssl
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from services.ingest.bambu_proto import AUTH_SIZE, USER, BambuProtocolError, frame_header, parse_auth


def self_signed(directory: Path, common_name: str = "01P00A000000000") -> tuple[Path, Path]:
    """Write a self-signed EC certificate and key (PEM) for 127.0.0.1; returns their paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "camera.crt", directory / "camera.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class JpegSource:
    """Moving-pattern JFIF JPEGs from FFmpeg's MJPEG encoder."""

    def __init__(self, width: int, height: int) -> None:
        self.ctx = av.CodecContext.create("mjpeg", "w")
        self.ctx.width, self.ctx.height = width, height
        self.ctx.pix_fmt = "yuvj420p"
        self.ctx.time_base = Fraction(1, 30)
        self.ctx.sample_aspect_ratio = Fraction(1, 1)  # makes FFmpeg write the JFIF APP0 segment
        self.ctx.flags |= av.codec.context.Flags.bitexact  # no "Lavc" comment before APP0
        yy, xx = np.mgrid[0:height, 0:width]
        self._xx, self._yy = xx, yy
        self.n = 0

    def next(self) -> bytes:
        img = np.empty((self.ctx.height, self.ctx.width, 3), dtype=np.uint8)
        img[..., 0] = (self._xx + self.n * 8) % 256
        img[..., 1] = (self._yy + self.n * 4) % 256
        img[..., 2] = ((self._xx // 64 + self._yy // 64 + self.n) % 2) * 255
        vf = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuvj420p")
        vf.pts = self.n
        self.n += 1
        return b"".join(bytes(p) for p in self.ctx.encode(vf))


class CameraServer:
    """The simulated camera; :meth:`start` listens, :meth:`close` stops."""

    def __init__(
        self,
        access_code: str,
        *,
        host: str = "127.0.0.1",
        port: int = 6000,
        fps: float = 1.0,
        width: int = 1280,
        height: int = 720,
        cert: Path | None = None,
        key: Path | None = None,
        max_clients: int = 2,
        frames: int = 0,
    ) -> None:
        self.access_code = access_code
        self.host, self.port = host, port
        self.fps = fps
        self.source = JpegSource(width, height)
        self.max_clients = max_clients
        self.frames = frames
        self.clients = 0
        self.sent = 0
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if cert is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="camhub-bambu-")
            cert, key = self_signed(Path(self._tmp.name))
        self.ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ssl.load_cert_chain(str(cert), str(key or cert))
        self._server: asyncio.Server | None = None
        self._encode_lock: asyncio.Lock | None = None

    async def start(self) -> int:
        self._encode_lock = asyncio.Lock()
        self._server = await asyncio.start_server(self._client, self.host, self.port, ssl=self.ssl)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
        if self._tmp is not None:
            self._tmp.cleanup()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            packet = await asyncio.wait_for(reader.readexactly(AUTH_SIZE), 10.0)
            user, code = parse_auth(packet)
            if user != USER or code != self.access_code:
                return  # the printer answers a bad code by closing the stream
            if self.clients >= self.max_clients:
                return
            self.clients += 1
            try:
                n = 0
                while not self.frames or n < self.frames:
                    assert self._encode_lock is not None
                    async with self._encode_lock:  # one encoder, shared by every client
                        jpeg = await asyncio.to_thread(self.source.next)
                    writer.write(frame_header(len(jpeg)))
                    await writer.drain()
                    writer.write(jpeg)
                    await writer.drain()
                    n += 1
                    self.sent += 1
                    await asyncio.sleep(1.0 / self.fps)
            finally:
                self.clients -= 1
        except (OSError, asyncio.IncompleteReadError, TimeoutError, BambuProtocolError, ssl.SSLError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="camhub sim bambu-camera", description="Bambu P1/A1 port-6000 camera simulator")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=6000)
    p.add_argument("--access-code", required=True)
    p.add_argument("--fps", type=float, default=1.0)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--cert", type=Path)
    p.add_argument("--key", type=Path)
    p.add_argument("--max-clients", type=int, default=2)
    p.add_argument("--frames", type=int, default=0, help="frames per connection (0 = endless)")
    return p.parse_args(argv)


async def _serve(a: argparse.Namespace) -> None:
    server = CameraServer(
        a.access_code,
        host=a.host,
        port=a.port,
        fps=a.fps,
        width=a.width,
        height=a.height,
        cert=a.cert,
        key=a.key,
        max_clients=a.max_clients,
        frames=a.frames,
    )
    port = await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {port}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.close()  # also removes the generated certificate and key


def main(argv: list[str]) -> None:
    """``camhub sim bambu-camera ARGS``: serve until SIGTERM/SIGINT."""
    args = parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main(sys.argv[1:])
